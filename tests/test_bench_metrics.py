"""The benchmark scripts' metrics on hand-made rankings (they decide what docs/benchmarks.md claims)."""


import numpy as np
import pytest

from bench_flags import (  # noqa: E402
    calibration, expected_f1_count, ranking_metrics, set_metrics, suggestion_confidences, suggestion_metrics)
from bench_noise_models import confusion_densities, confusion_p_wrong, fit_confusions, synthetic  # noqa: E402


def test_ranking_metrics_oracle_is_the_best_f1_of_any_top_k():
    is_error = np.array([1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    metrics = ranking_metrics(is_error, score)
    f1_of_top = [set_metrics(is_error, np.arange(8) < k)["f1"] for k in range(1, 9)]
    assert metrics["oracle_f1"] == pytest.approx(max(f1_of_top))
    assert metrics["oracle_flagged"] == int(np.argmax(f1_of_top)) + 1 == 3
    assert metrics["precision_at_k"] == pytest.approx(2 / 3)


def test_a_perfect_ranking_has_oracle_f1_one_at_the_true_count():
    is_error = np.array([0, 1, 0, 1, 1, 0], dtype=bool)
    metrics = ranking_metrics(is_error, is_error.astype(float))
    assert metrics["oracle_f1"] == 1.0 and metrics["oracle_flagged"] == 3 and metrics["auprc"] == 1.0


def test_expected_f1_count_flags_the_likely_errors_only():
    p_wrong = np.array([0.95, 0.9, 0.05, 0.02, 0.9, 0.01])
    assert expected_f1_count(p_wrong, p_wrong) == 3
    assert expected_f1_count(np.zeros(4), np.zeros(4)) == 1  # nothing likely wrong: the smallest set


def test_suggestion_metrics_count_right_suggestions_on_flagged_errors_only():
    labels = np.array([0, 0, 1, 1, 2])
    clean = np.array([1, 0, 2, 1, 0])  # images 0, 2 and 4 are mislabelled
    flagged = np.array([True, True, True, False, False])  # 0 and 2 flagged errors, 1 a false alarm
    suggested = np.array([1, 2, 0, 0, 0])  # right on 0, wrong on 2; right on unflagged error 4
    confidence = np.array([0.9, 0.3, 0.85, 0.5, 0.5])
    held_out = np.array([[0.8, 0.1, 0.1], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2]])

    result = suggestion_metrics(labels, clean, flagged, suggested, confidence, held_out)
    assert result["flagged_errors"] == 2
    assert result["suggested_right_on_flagged_errors"] == 0.5
    assert result["top_class_right_on_flagged_errors"] == 0.5  # image 0's top class is its wrong label
    assert result["suggested_right_on_all_errors"] == pytest.approx(2 / 3)
    assert result["top_class_right_on_all_errors"] == pytest.approx(2 / 3)
    assert result["suggested_right_on_flagged"] == pytest.approx(1 / 3)
    assert result["reliability"]["0.8-1.0"] == {"flagged": 2, "mean_quoted": pytest.approx(0.875),
                                                "suggestion_right": 0.5}
    assert result["reliability"]["0.2-0.4"]["suggestion_right"] == 0.0
    # Quoted 0.9, 0.3, 0.85 on the flagged images, of which only the first suggestion is right.
    assert result["calibration_on_flagged"]["quoted"]["brier"] == pytest.approx((0.1**2 + 0.3**2 + 0.85**2) / 3)


def test_calibration_is_zero_where_quoted_rates_come_true_and_penalises_overstatement():
    quoted = np.array([0.25] * 4 + [0.75] * 4)
    right = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    assert calibration(quoted, right)["ece"] == pytest.approx(0.0)
    assert calibration(quoted, right)["brier"] == pytest.approx(0.1875)
    overstated = calibration(np.full(8, 0.9), right)
    assert overstated["ece"] == pytest.approx(0.4) and overstated["brier"] > 0.1875


def test_suggestion_confidences_discount_a_label_the_transitions_trust():
    # Class 0 labels are always confidently class 0, so the noise transitions say a 0 label is right:
    # a sample labelled 0 that leans to class 1 is then less likely truly 1 than its p(1) says.
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    probs = np.array([[0.9, 0.1]] * 4 + [[0.1, 0.9], [0.2, 0.8], [0.2, 0.8], [0.4, 0.6]])
    suggested = np.array([1, 1, 1, 1, 0, 0, 0, 1])
    candidates = suggestion_confidences(labels, probs, suggested)
    posterior, wrong_share, unmixed = candidates.values()
    assert posterior[7] < probs[7, 1] and wrong_share[7] <= posterior[7] + 1e-12
    assert all(np.all((c >= 0) & (c <= 1 + 1e-12)) for c in candidates.values())
    assert wrong_share[4] == pytest.approx(0.0)  # a trusted label 1: nothing to suggest instead


def test_population_transfer_round_trips_jobs_that_the_run_store_resumes(tmp_path):
    from population_transfer import pack, unpack

    from curate.data.store import RunStore

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(5, 50)).astype(np.float32)
    index = np.arange(7)
    RunStore(tmp_path / "gpu").save_job("member00-fold00", "abc123", compressed=probs, label_probe_index=index)
    pack(tmp_path / "gpu", tmp_path / "jobs.tar")
    unpack(tmp_path / "jobs.tar", tmp_path / "here")

    job = RunStore(tmp_path / "here").load_job("member00-fold00", "abc123")
    assert job is not None, "the unpacked job must keep the fingerprint that run_curate resumes by"
    assert job["compressed"].dtype == np.float32
    np.testing.assert_allclose(job["compressed"], probs, rtol=1e-3, atol=1e-7)
    assert not np.array_equal(job["compressed"], probs)  # it did travel as float16
    np.testing.assert_array_equal(job["label_probe_index"], index)
    with pytest.raises(SystemExit, match="No trained networks"):
        pack(tmp_path / "empty", tmp_path / "none.tar")


def test_in_sample_weights_scores_each_view_and_the_probes_memorisation():
    from bench_in_sample_weight import in_sample_weights

    labels = np.array([0, 0, 1, 1])
    is_error = np.array([True, False, False, False])
    # Held-out networks doubt image 0's label; in-sample networks memorised it (and the probe's label).
    held_out = np.array([[0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    views = np.array([[[0.95, 0.05], [0.6, 0.4], [0.1, 0.9], [0.9, 0.1]]])
    probe_labels = np.array([[-1, -1, -1, 0]])  # image 3 trained with the wrong label 0 in the one slot

    result = in_sample_weights(labels, is_error, held_out, views, probe_labels)
    assert result["weights"][0.0]["auprc_human_errors"] == 1.0
    assert result["weights"][1.0]["auprc_human_errors"] < 1.0  # memorised: the error looks right in sample
    assert result["probe_label_p_in_sample"] == 0.9 and result["probe_label_p_held_out"] == 0.3
    # Held-out scores 1 - p: the probe's 0.7 beats the real pairs' 0.1 and 0.2, not image 0's 0.9.
    assert result["weights"][0.0]["auroc_probes_vs_real"] == pytest.approx(2 / 3)


def test_bench_categories_alterations_do_what_their_names_say():
    from bench_categories import overexposed, overlay, pixelated, salt_pepper, stacked

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 24, 3)).astype(np.uint8)
    washed = overexposed(x)
    assert washed.min() >= 153 and washed.std() < 0.5 * x.std()
    mosaic = pixelated(x, side=4)
    assert mosaic.shape == x.shape and len(np.unique(mosaic[..., 0])) <= 16
    np.testing.assert_allclose(mosaic[:8, :6].astype(float).mean(axis=(0, 1)), x[:8, :6].mean(axis=(0, 1)), atol=0.5)
    assert np.array_equal(pixelated(x, side=1)[0, 0], np.rint(x.reshape(-1, 3).mean(axis=0)).astype(np.uint8))
    dotted = salt_pepper(x, rng, share=0.5)
    changed = (dotted != x).any(axis=2)
    assert 0.4 < changed.mean() < 0.6  # half hit (768 pixels drawn), a few of them already black or white
    assert set(np.unique(dotted[changed])) <= {0, 255}

    black, white = np.zeros_like(x), np.full_like(x, 255)
    assert np.all(overlay(black, white) == 128)
    both = stacked(black, white)
    assert both.shape == x.shape and np.all(both[:16] == 0) and np.all(both[16:] == 255)
    assert stacked(black[:31], white[:31]).shape == (31, 24, 3)


def test_bench_categories_sources_are_distinct_and_composites_pair_two_classes():
    from bench_categories import FAMILY, choose_sources

    labels = np.repeat(np.arange(3), 10)
    chosen = choose_sources(labels, 3, np.random.default_rng(0))
    firsts = np.concatenate([first for first, _ in chosen.values()])
    assert len(firsts) == len(set(firsts)) == 3 * len(FAMILY)
    for kind, (first, partner) in chosen.items():
        if FAMILY[kind] == "multi_object":
            assert np.all(labels[partner] != labels[first])
        else:
            assert np.all(partner == -1)
    with pytest.raises(SystemExit, match="--share too large"):
        choose_sources(labels, 5, np.random.default_rng(0))


def test_bench_categories_flag_quality_and_kind_table():
    import pandas as pd
    from bench_categories import flag_quality, kind_table

    truth = pd.DataFrame({"kind": ["original", "original", "jpeg", "overlay", "flipped_label"],
                          "family": ["original", "original", "corruption", "multi_object", "label_noise"],
                          "class_b": [-1, -1, -1, 2, -1]})
    flags = {"corruption": np.array([1, 0, 1, 0, 0], bool), "multi_object": np.zeros(5, bool),
             "label_noise": np.array([0, 0, 0, 0, 1], bool)}
    quality = flag_quality(truth, flags)
    assert quality["corruption"] == {"flagged": 2, "altered_into_it": 1, "precision": 0.5, "recall": 1.0}
    assert np.isnan(quality["multi_object"]["precision"]) and quality["multi_object"]["recall"] == 0.0
    assert quality["label_noise"]["precision"] == quality["label_noise"]["recall"] == 1.0

    category = np.array(["atypical", "", "corruption", "", "label_noise"], dtype=object)
    table = kind_table(truth, category, {"PIE": np.array([1, 0, 1, 0, 1], bool)})
    assert list(table.index) == ["original", "jpeg", "overlay", "flipped_label"]
    assert table.loc["original", "images"] == 2 and table.loc["original", "PIE"] == 0.5
    assert table.loc["original", "category: atypical"] == 0.5 and table.loc["original", "category: none"] == 0.5
    assert table.loc["jpeg", "category: corruption"] == 1.0


def test_bench_retrain_reads_the_population_bench_flags_stores():
    # bench_retrain.py reuses bench_flags.py's cached population: same options, same config.
    import bench_flags
    import bench_retrain

    args = bench_retrain.parse_args(["--seed", "1", "--retrain-epochs", "8"])
    assert args.labels == "worse" and args.retrain_epochs == 8
    flags_args = bench_flags.argument_parser("").parse_args(["--labels", "worse", "--seed", "1"])
    assert bench_flags.population_config(args).to_dict() == bench_flags.population_config(flags_args).to_dict()
    with pytest.raises(SystemExit):
        bench_retrain.parse_args(["--labels", "aggre", "worse"])


def test_bench_population_human_errors_compare_each_levels_pies_with_the_human_error_rate():
    import pandas as pd
    from bench_population import human_errors

    paths = [f"/c/{i}.jpg" for i in range(8)]
    human = pd.DataFrame({"clean": list("aaaabbbb"), "aggre": list("baaabbbb"), "random1": list("bbaaabbb"),
                          "worse": list("bbbbaaaa")}, index=paths)
    samples = pd.DataFrame({
        "filepath": paths[::-1],  # the run's own order; the human labels are looked up by path
        "dense_label": list("bbbbaaaa"),
        "prune30_label": list("bbbbaaab"),  # one PIE: image 0, which aggre mislabels
        "control_pie": [True] + [False] * 7,  # one PIE: image 7, which aggre labels right
        "pie": [True, False, False, False, False, False, False, True],
        "pie_beyond_control": [False] * 7 + [True],
        "suggested_label": list("aaaaaaaa"),
    })
    result = human_errors(samples, human)
    assert set(result) == {"prune30", "control", "any level", "beyond the control"}
    assert result["prune30"]["pie_fraction"] == 1 / 8
    assert result["prune30"]["aggre"]["base_rate"] == 1 / 8
    assert result["prune30"]["aggre"]["ratio"] == pytest.approx(8.0)  # its one PIE is the one aggre error
    assert result["control"]["aggre"]["ratio"] == 0.0
    assert result["any level"]["worse"]["ratio"] == pytest.approx(1.0)  # every label is wrong in worse
    assert result["beyond the control"]["aggre"]["pies"] == 1


def test_the_tried_confusion_model_by_hand():
    # Belief (0.6, 0.4), label 1: right 0.4; a confusion from class 0, 0.6 x 0.4 / (1 - 0.6) = 0.6; a slip 0.6.
    belief, labels = np.array([[0.6, 0.4]]), np.array([1])
    assert confusion_densities(labels, belief) == pytest.approx(np.array([[0.4, 0.6, 0.6]]))
    assert confusion_p_wrong(labels, belief, np.array([0.9, 0.1, 0.0])) == pytest.approx([0.06 / 0.42])
    # Each part is a distribution over the labels an image can get.
    rng = np.random.default_rng(0)
    belief = rng.dirichlet(np.ones(4), 5)
    for part in range(3):
        total = sum(confusion_densities(np.full(5, label), belief)[:, part] for label in range(4))
        assert total == pytest.approx(np.ones(5))


def test_the_tried_confusion_model_finds_confusions_a_confident_population_sees():
    labels, probs, wrong = synthetic(2000, 0.1, 0.2, 1.0, seed=0, wrong_labels="confusions")
    fit = fit_confusions(labels, probs)
    assert fit["p_wrong"].sum() == pytest.approx(wrong.sum(), rel=0.2)


def test_airbench_whitening_decorrelates_the_patches_it_was_fitted_on():
    import torch
    import torch.nn.functional as F

    from bench_airbench import FastNet, predict, whiten

    images = torch.randn(64, 3, 8, 8) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1)
    images[:, 1] += images[:, 0]  # correlated channels
    net = FastNet(10)
    whiten(net.whiten, images)
    responses = F.conv2d(images, net.whiten.weight[:12]).permute(0, 2, 3, 1).reshape(-1, 12).double()
    second_moments = responses.T @ responses / len(responses)
    assert torch.allclose(second_moments, torch.eye(12, dtype=torch.double), atol=0.02)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12]) and not net.whiten.weight.requires_grad

    # Test-time views: a network that only sees the mirror-symmetric part predicts the same from 1, 2 or 6 views
    # of a mirror-symmetric, translation-invariant (constant) image.
    net.eval()
    flat = torch.ones(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(predict(net, flat, 1), predict(net, flat, 2), atol=1e-5)
        assert torch.allclose(predict(net, flat, 1), predict(net, flat, 6), atol=1e-5)
