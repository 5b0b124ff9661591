"""Category rules on hand-made probability arrays, answers worked out by hand."""

import numpy as np
import pytest

from curate.science.flags import (categorise, class_thresholds, confident_joint, find_label_noise, in_sample_mean, memorisation,
                          in_sample_views, label_profile,
                          population_mean, probe_error_estimate, probe_label_noise,
                          reasons, split_evenness, votes_for)


def test_class_thresholds_are_mean_self_confidence_per_class():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    # t0 = (0.9 + 0.3) / 2, t1 = (0.8 + 0.4) / 2
    np.testing.assert_allclose(class_thresholds(labels, probs), [0.6, 0.6])
    # A class nobody is labelled with is never confidently predicted.
    np.testing.assert_allclose(class_thresholds(np.array([0, 0]), np.array([[0.5, 0.5], [0.7, 0.3]])), [0.6, 1.0])


def test_find_label_noise_by_hand():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    noise = find_label_noise(labels, probs)
    # s1: p1 = 0.7 >= t1 = 0.6 and p0 = 0.3 < t0 -> noise, suggest 1.
    # s3: p0 = 0.6 >= t0 = 0.6 and p1 = 0.4 < t1 -> noise, suggest 0.
    np.testing.assert_array_equal(noise.is_noise, [False, True, False, True])
    np.testing.assert_array_equal(noise.suggested, [1, 1, 0, 0])
    np.testing.assert_allclose(noise.suggested_confidence, [0.1, 0.7, 0.2, 0.6])
    np.testing.assert_allclose(noise.score, [0.1, 0.7, 0.2, 0.6])


def test_suggested_label_is_the_most_probable_confident_other_class():
    labels = np.array([0, 1, 2, 0])
    probs = np.array([[0.1, 0.5, 0.4], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]])
    # t = [(0.1 + 0.9) / 2, 0.8, 0.8] = [0.5, 0.8, 0.8]: for sample 0, neither other class reaches
    # its threshold (0.5 < 0.8, 0.4 < 0.8), so it is not noise, but it still gets a suggestion.
    noise = find_label_noise(labels, probs)
    assert not noise.is_noise[0]
    assert noise.suggested[0] == 1


def test_suggestion_with_the_in_sample_view_sums_both_views_and_skips_the_label():
    labels = np.array([0, 1, 2, 0])
    probs = np.array([[0.1, 0.5, 0.4], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]])
    # Sample 0: held-out alone says 1 (0.5 > 0.4); the networks that trained on it put 0.3 on 2 and
    # 0.1 on 1, so both views together say 2 (0.7 > 0.6), though the label 0 has the most mass there.
    in_sample = np.array([[0.6, 0.1, 0.3], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]])
    noise = find_label_noise(labels, probs, suggestion_in_sample=in_sample)
    np.testing.assert_array_equal(noise.suggested, [2, 0, 0, 1])
    # The quoted confidence stays the held-out probability of the suggestion; the score is untouched.
    np.testing.assert_allclose(noise.suggested_confidence, [0.4, 0.1, 0.1, 0.05])
    np.testing.assert_allclose(noise.score, find_label_noise(labels, probs).score)
    with pytest.raises(ValueError, match=r"suggestion_in_sample has shape \(4, 2\)"):
        find_label_noise(labels, probs, suggestion_in_sample=in_sample[:, :2])


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"labels has shape \(3,\)"):
        find_label_noise(np.array([0, 1, 0]), np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        find_label_noise(np.array([0, 2]), np.ones((2, 2)) / 2)


def test_population_mean_pools_dense_and_compressed_networks():
    dense = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # K=2, N=1, C=2
    compressed = np.array([[[[1.0, 0.0]], [[1.0, 0.0]]]])  # L=1
    np.testing.assert_allclose(population_mean(dense, compressed), [[0.75, 0.25]])
    np.testing.assert_allclose(population_mean(dense), [[0.5, 0.5]])


def test_split_evenness():
    np.testing.assert_allclose(split_evenness(np.array([[0.5, 0.5, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])),
                               [1.0, 0.125, 0.6])


# Four classes. Probes: two-class composites split about 0.5 (median evenness 0.5); corrupted probes
# have top probability 0.4 at the median.
TWO_CLASS_PROBES = np.array([[0.6, 0.3, 0.05, 0.05], [0.5, 0.25, 0.2, 0.05], [0.4, 0.4, 0.1, 0.1]])
CORRUPTED_PROBES = np.array([[0.4, 0.2, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1]])


def _population():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0])
    probs = np.array([
        [0.90, 0.05, 0.03, 0.02],  # 0: confident, right
        [0.05, 0.85, 0.05, 0.05],  # 1: labelled 0, models say 1 -> label noise
        [0.10, 0.80, 0.05, 0.05],  # 2: right
        [0.45, 0.45, 0.05, 0.05],  # 3: labelled 1, even split 0/1 (evenness 1.0) -> multi-object
        [0.05, 0.05, 0.85, 0.05],  # 4: right
        [0.30, 0.10, 0.35, 0.25],  # 5: labelled 2, unsure -> corruption if a pixel check fires
        [0.05, 0.05, 0.05, 0.85],  # 6: right
        [0.10, 0.10, 0.15, 0.65],  # 7: right, but a PIE -> atypical
        [0.20, 0.75, 0.03, 0.02],  # 8: labelled 0, models say 1 -> label noise, NOT a PIE
    ])
    # The rest of the dataset: 21 images the models are sure of, so that an even split is rare here
    # (2 of 30 images as even as the composites: the probes pass 15x as often, above the bar of 10).
    labels = np.r_[labels, np.arange(21) % 4]
    probs = np.r_[probs, np.full((21, 4), 0.01)]
    probs[np.arange(9, 30), labels[9:]] = 0.97
    is_pie = np.r_[[False, True, False, True, False, True, False, True, False], np.zeros(21, bool)]
    severity = np.zeros((N, 2))
    severity[5, 1] = 0.6  # sample 5 is dark
    severity[0, 0] = 0.9  # sample 0 is blurry but the models are sure; not a PIE: flagged, ranked low
    return labels, probs, is_pie, severity


N = 30


# P(label wrong) per sample of _population(), as the noise model would give it on a larger population.
P_WRONG = np.r_[0.0, 0.9, 0.0, 0.3, 0.0, 0.2, 0.0, 0.1, 0.8, np.zeros(21)]


def test_categorise_assigns_one_category_per_pie_by_hand():
    labels, probs, is_pie, severity = _population()
    cats = categorise(labels, probs, is_pie, np.linspace(0, 0.8, N), TWO_CLASS_PROBES, CORRUPTED_PROBES,
                      pixel_severity=severity, check_names=("blurry", "dark"), label_wrong_probability=P_WRONG)
    assert list(cats.category) == ["", "label_noise", "", "ambiguous", "", "corruption", "", "atypical", ""] + [""] * 21
    # Labels more likely wrong than right, PIE or not, are label noise (non-PIEs tagged, not categorised).
    np.testing.assert_array_equal(np.flatnonzero(cats.label_noise), [1, 8])
    assert cats.suggested[1] == 1 and cats.suggested[8] == 1
    assert cats.scores["label_noise"] == pytest.approx(P_WRONG)
    assert cats.expected_wrong_among(cats.label_noise) == pytest.approx(1.7)
    # Calibrated thresholds: median evenness of composites (0.5, 0.5, 1.0) and median top p (0.4).
    assert cats.thresholds["ambiguous_evenness"] == pytest.approx(0.5)
    assert cats.thresholds["corruption_top_probability"] == pytest.approx(0.4)
    # Corruption score of sample 5: mean of severity 0.6 and uncertainty min(1, 0.65 / 0.6) = 1.
    assert cats.scores["corruption"][5] == pytest.approx(0.8)
    # Sample 0 is no PIE, so it has no category, but its pixel check flags it; models sure of it
    # (uncertainty 0.1 / 0.6) rank it below sample 5: (0.9 + 0.167) / 2.
    assert cats.category[0] == "" and np.flatnonzero(cats.corruption).tolist() == [0, 5]
    assert cats.scores["corruption"][0] == pytest.approx((0.9 + 0.1 / 0.6) / 2)
    assert cats.corruption_check[5] == "dark" and cats.corruption_check[0] == "blurry"
    assert cats.scores["ambiguous"][3] == pytest.approx(1.0)
    assert not cats.scores["multi_object"].any()  # no region predictions: nothing is multi-object
    for score in cats.scores.values():
        assert ((score >= 0) & (score <= 1)).all()


def test_a_pie_with_a_pixel_issue_is_corruption_even_when_the_models_are_sure():
    labels, probs, is_pie, severity = _population()
    is_pie[0] = True
    cats = categorise(labels, probs, is_pie, np.zeros(N), TWO_CLASS_PROBES, CORRUPTED_PROBES,
                      pixel_severity=severity, check_names=("blurry", "dark"), label_wrong_probability=P_WRONG)
    assert cats.category[0] == "corruption" and cats.corruption[0]
    without_pixels = categorise(labels, probs, is_pie, np.zeros(N), TWO_CLASS_PROBES, CORRUPTED_PROBES,
                                label_wrong_probability=P_WRONG)
    assert not without_pixels.corruption.any() and without_pixels.category[5] == "ambiguous"  # 0.35 vs 0.30


def test_windows_that_disagree_confidently_are_multi_object():
    from curate.science.regions import REGIONS

    labels = np.array([0, 0] + [1] * 10)
    probs = np.array([[0.5, 0.5], [0.5, 0.5]] + [[0.1, 0.9]] * 10)  # samples 0 and 1: even splits
    # Every window agrees with the whole image, except sample 0's: its middle-left window is
    # confidently 0 and its middle-right window confidently 1.
    regions = np.repeat(probs[None], len(REGIONS), axis=0)
    regions[REGIONS.index("middle-left"), 0] = [0.95, 0.05]
    regions[REGIONS.index("middle-right"), 0] = [0.1, 0.9]
    # Two two-object probes: left and right windows say 0 at 0.9 and 1 at 0.85 (score 0.85), and 0 at
    # 0.97 and 1 at 0.95 (score 0.95).
    probe_regions = np.full((len(REGIONS), 2, 2), 0.5)
    probe_regions[REGIONS.index("middle-left")] = [[0.9, 0.1], [0.97, 0.03]]
    probe_regions[REGIONS.index("middle-right")] = [[0.15, 0.85], [0.05, 0.95]]
    kwargs = dict(label_wrong_probability=np.zeros(12), region_probs=regions, two_class_probe_regions=probe_regions)
    cats = categorise(labels, probs, np.ones(12, dtype=bool), np.zeros(12), np.array([[0.5, 0.5]]),
                      np.array([[0.5, 0.5]]), two_class_probe_labels=np.array([1, 0]), **kwargs)
    # At 0.85 every probe passes and 1 of the 12 images (0.083): a likelihood ratio of 12 >= 10.
    assert cats.thresholds["multi_object_region_confidence"] == pytest.approx(0.85)
    assert cats.thresholds["multi_object_probe_recall"] == 1.0
    assert cats.thresholds["multi_object_dataset_rate"] == pytest.approx(1 / 12)
    # Sample 1's even split is no evidence here: 2 of 12 images are as even as the composite (a ratio of 6).
    assert list(cats.category[:3]) == ["multi_object", "atypical", "atypical"]
    assert cats.thresholds["ambiguous_evenness"] is None
    assert cats.scores["multi_object"] == pytest.approx([0.9] + [0] * 11)
    # Probes labelled as neither of their objects (class 2 of 3) score 0: nothing rules in, nothing is found.
    three = np.concatenate([regions, np.zeros((*regions.shape[:2], 1))], axis=2)
    probe_three = np.concatenate([probe_regions, np.zeros((*probe_regions.shape[:2], 1))], axis=2)
    unrelated = categorise(labels, np.c_[probs, np.zeros(12)], np.ones(12, dtype=bool), np.zeros(12),
                           np.array([[0.5, 0.5, 0]]), np.array([[0.5, 0.5, 0]]), label_wrong_probability=np.zeros(12),
                           region_probs=three, two_class_probe_regions=probe_three,
                           two_class_probe_labels=np.array([2, 2]))
    assert unrelated.thresholds["multi_object_region_confidence"] is None
    assert unrelated.thresholds["multi_object_dataset_rate"] == 0.0 and "multi_object" not in set(unrelated.category)


def test_ambiguous_is_off_where_an_even_split_is_common_and_the_summary_says_so():
    from curate.frontends.summary import ambiguous_sentence

    labels, probs, is_pie, _ = _population()
    # A weak population: a third of the dataset's images split as evenly as the composites (0.5 or more).
    weak = probs.copy()
    weak[9:19] = [0.4, 0.3, 0.2, 0.1]
    weak[19] = [0.45, 0.45, 0.05, 0.05]
    cats = categorise(labels, weak, is_pie, np.zeros(N), TWO_CLASS_PROBES, CORRUPTED_PROBES,
                      label_wrong_probability=P_WRONG)
    # At evenness 0.5 the probes pass 3 of 3 and the dataset 13 of 30; at 1.0, 1 of 3 and 2 of 30: ratios 2.3 and 5.
    assert cats.thresholds["ambiguous_evenness"] is None and cats.thresholds["ambiguous_probe_recall"] == 0
    assert "ambiguous" not in set(cats.category) and cats.category[3] == "atypical"
    assert ambiguous_sentence(None, 0.0, 0.0).startswith("ambiguous is off for this run")
    strong = categorise(labels, probs, is_pie, np.zeros(N), TWO_CLASS_PROBES, CORRUPTED_PROBES,
                        label_wrong_probability=P_WRONG)
    t = strong.thresholds
    assert (t["ambiguous_evenness"], t["ambiguous_probe_recall"], t["ambiguous_dataset_rate"]) == pytest.approx((0.5, 1, 2 / 30))
    assert ambiguous_sentence(0.5, 1.0, 2 / 30) == ("ambiguous: a near tie between two classes (second probability "
                                                    "at least 50% of the first) on 100% of made two-class images and "
                                                    "6.7% of this dataset's images.")


def test_no_probe_predictions_is_a_clear_error():
    labels, probs, is_pie, _ = _population()
    with pytest.raises(ValueError, match="no probes"):
        categorise(labels, probs, is_pie, np.zeros(N), np.empty((0, 4)), CORRUPTED_PROBES)


def test_reasons_read_like_sentences():
    labels, probs, is_pie, severity = _population()
    cats = categorise(labels, probs, is_pie, np.zeros(N), TWO_CLASS_PROBES, CORRUPTED_PROBES,
                      pixel_severity=severity, check_names=("blurry", "dark"), label_wrong_probability=P_WRONG)
    member_probs = np.stack([probs] * 3 + [np.roll(probs, 1, axis=1)])  # 4 networks, 3 agree with the mean
    votes = votes_for(member_probs, cats.suggested)
    dense_modal = probs.argmax(axis=1)
    compressed_modal = np.stack([np.where(is_pie, (dense_modal + 1) % 4, dense_modal)])
    text = reasons(cats, labels, probs, ["cat", "dog", "car", "ship"], votes, 4, dense_modal, compressed_modal,
                   is_pie[None, :], ["prune90"])
    assert text[1] == "3 of 4 models say dog (mean p 0.85); labelled cat (mean p 0.05); P(label wrong) ~ 0.90"
    assert text[3] == "models split between cat (p 0.45) and dog (p 0.45); labelled dog"
    assert text[5] == "dark image; models' top class car at p 0.35; labelled car"
    assert text[0] == "blurry image; models' top class cat at p 0.90; labelled cat"  # not a PIE, still said
    assert text[7] == "labelled ship; dense models say ship, compressed copies forget it: prune90 say cat"
    assert text[8].startswith("3 of 4 models say dog") and text[2] == "" and not any(text[9:])


def test_count_from_confident_learning_ranking_with_in_sample_view():
    labels = np.array([0, 0, 0, 1, 1, 1])
    held_out = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.2, 0.8], [0.45, 0.55]])
    in_sample = held_out.copy()
    in_sample[2] = [0.9, 0.1]   # the networks that trained on sample 2 fit its label easily
    in_sample[5] = [0.95, 0.05]  # ... and could not fit sample 5's label
    noise = find_label_noise(labels, held_out, in_sample)
    # t0 = (0.9 + 0.8 + 0.2) / 3 = 0.633, t1 = (0.9 + 0.8 + 0.55) / 3 = 0.75. Only sample 2 passes the
    # confident-learning rule (p1 = 0.8 >= 0.75, p0 = 0.2 < 0.633): one error estimated.
    assert noise.n_estimated == 1 and np.flatnonzero(noise.confident).tolist() == [2]
    # Scores: 1 - mean(held-out, in-sample) p(label): sample 2 -> 1 - 0.55 = 0.45, sample 5 -> 0.70.
    np.testing.assert_allclose(noise.score[[2, 5]], [0.45, 0.70])
    assert np.flatnonzero(noise.is_noise).tolist() == [5]  # the one most likely wrong
    assert noise.suggested[5] == 0
    with pytest.raises(ValueError, match="in_sample_probs has shape"):
        find_label_noise(labels, held_out, in_sample[:, :1])


def test_count_is_the_off_diagonal_of_the_confident_joint():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    probs = np.array([
        [0.35, 0.30, 0.35], [0.30, 0.30, 0.40], [0.40, 0.55, 0.05],  # t0 = (0.35 + 0.30 + 0.40) / 3 = 0.35
        [0.20, 0.50, 0.30], [0.20, 0.50, 0.30], [0.10, 0.50, 0.40],  # t1 = 0.50
        [0.10, 0.10, 0.80], [0.10, 0.10, 0.80], [0.10, 0.20, 0.70],  # t2 = 0.7667
    ])
    noise = find_label_noise(labels, probs)
    # Sample 2 is confident in its label (0.40 >= 0.35) *and* in class 1 (0.55 >= 0.50), which is more
    # probable: the confident joint puts it off the diagonal. Sample 1 and 8 are confident in nothing.
    assert np.flatnonzero(noise.confident).tolist() == [2] and noise.n_estimated == 1
    assert noise.suggested[2] == 1


def test_confident_joint_by_hand():
    labels = np.array([0, 0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    # t0 = (0.9 + 0.3 + 0.5) / 3 = 0.567, t1 = (0.8 + 0.4) / 2 = 0.6. Confident classes: sample 0 -> 0,
    # 1 -> 1, 2 -> none (0.5 < both), 3 -> 1, 4 -> 0 (0.6 >= 0.6).
    np.testing.assert_array_equal(confident_joint(labels, probs), [[1, 1], [1, 1]])
    # Calibrated: row 0 holds 2 counted samples of the 3 labelled 0, so it scales by 3/2.
    np.testing.assert_allclose(confident_joint(labels, probs, calibrate=True), [[1.5, 1.5], [1, 1]])
    assert find_label_noise(labels, probs).n_estimated == 2  # the raw joint's off-diagonal


def test_label_profile_by_hand():
    held_out = np.array([[0.8, 0.2], [0.5, 0.5]])
    in_sample = np.array([[0.9, 0.1], [0.25, 0.75]])
    profile = label_profile(held_out, in_sample, np.array([0, 1]))
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    expected = [[logit(0.8), logit(0.2), logit(0.9), logit(0.1)],
                [logit(0.5), logit(0.5), logit(0.75), logit(0.25)]]
    assert np.allclose(profile, expected)
    with pytest.raises(ValueError, match="in_sample has shape"):
        label_profile(held_out, in_sample[:1], np.array([0, 1]))


def test_probe_error_estimate_counts_and_ranks_wrong_labels():
    # Right labels sit near +2 on every profile feature; wrong labels and probes near -2.
    rng = np.random.default_rng(0)
    right = rng.normal(2.0, 1.0, size=(800, 4))
    wrong = rng.normal(-2.0, 1.0, size=(200, 4))
    probes = rng.normal(-2.0, 1.0, size=(300, 4))
    estimate = probe_error_estimate(np.concatenate([right, wrong]), probes)
    assert 170 <= estimate.count <= 230  # 200 wrong labels
    is_wrong = np.r_[np.zeros(800, bool), np.ones(200, bool)]
    assert estimate.p_wrong[is_wrong].min() > estimate.p_wrong[~is_wrong].max()  # separable here: ranked perfectly
    assert estimate.p_wrong[is_wrong].mean() > 0.8 and estimate.p_wrong[~is_wrong].mean() < 0.05
    # With no wrong labels among the real samples, the count is near zero.
    assert probe_error_estimate(right, probes).count < 20


def test_probe_error_estimate_needs_enough_probes():
    with pytest.raises(ValueError, match="inject more probes"):
        probe_error_estimate(np.zeros((100, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="same n_features"):
        probe_error_estimate(np.zeros((100, 4)), np.zeros((30, 3)))


def test_find_label_noise_takes_a_count():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    noise = find_label_noise(labels, probs, count=1)
    assert noise.n_estimated == 1 and noise.is_noise.tolist() == [False, False, False, True]
    assert noise.confident.sum() == 2  # still reports confident learning's own rule
    with pytest.raises(ValueError, match="non-negative"):
        find_label_noise(labels, probs, count=-1)


def test_probe_label_noise_leaves_probe_networks_out_of_the_in_sample_view():
    rng = np.random.default_rng(1)
    n, c = 400, 2
    labels = np.tile([0, 1], n // 2)
    held_out = np.full((n, c), 0.5)
    # Two in-sample slots. Real pairs: the label fitted (p 0.9). Probes: their wrong label barely fitted (p 0.1).
    views = np.zeros((2, n, c))
    views[:, np.arange(n), labels] = 0.9
    views[:, np.arange(n), 1 - labels] = 0.1
    views += rng.normal(0, 0.02, size=views.shape)
    probe_labels = np.full((2, n), -1)
    probe_labels[0, :40] = 1 - labels[:40]  # slot 0 trained samples 0..39 with the wrong label
    probe_labels[1, :2] = 1 - labels[:2]  # samples 0 and 1 were probes in both slots
    result = probe_label_noise(labels, held_out, views, probe_labels)
    assert result.n_probes == 42
    assert np.allclose(result.in_sample[2:40], views[1, 2:40])  # slot 0 left out
    assert np.allclose(result.in_sample[40:], views[:, 40:].mean(axis=0))
    assert np.allclose(result.in_sample[:2], held_out[:2])  # no slot trained them with their own label
    assert np.isnan(result.p_wrong[:2]).all() and np.isfinite(result.p_wrong[2:]).all()
    assert result.count < 10  # every real label is fitted: next to no wrong labels
    with pytest.raises(ValueError, match="probe_labels has shape"):
        probe_label_noise(labels, held_out, views, probe_labels[:1])


def test_probe_label_noise_counts_real_labels_fitted_like_probes():
    rng = np.random.default_rng(2)
    n, c = 600, 2
    labels = np.tile([0, 1], n // 2)
    held_out = np.full((n, c), 0.5)
    fitted = np.full(n, 0.9)
    fitted[100:160] = 0.1  # 60 real labels the networks fit no better than a probe's wrong label
    views = np.zeros((2, n, c))
    views[:, np.arange(n), labels] = fitted
    views[:, np.arange(n), 1 - labels] = 1 - fitted
    probe_labels = np.full((2, n), -1)
    probe_labels[0, 300:360] = 1 - labels[300:360]
    probe_labels[1, 400:460] = 1 - labels[400:460]
    # (a probe's wrong label is the class these views give p 0.1: fitted as badly as samples 100..159)
    views += rng.normal(0, 0.02, size=views.shape)
    result = probe_label_noise(labels, held_out, views, probe_labels)
    assert 50 <= result.count <= 70
    assert result.p_wrong[100:160].min() > np.nanmax(np.r_[result.p_wrong[:100], result.p_wrong[160:]])


def test_in_sample_views_average_to_the_population_mean_and_skip_left_out_slots():
    rng = np.random.default_rng(3)
    dense_in, compressed_in = rng.random((2, 5, 3)), rng.random((4, 2, 5, 3))
    views = in_sample_views(dense_in, compressed_in)
    assert views.shape == (2, 5, 3)
    assert np.allclose(in_sample_mean(views, None, np.zeros((5, 3))), population_mean(dense_in, compressed_in))
    keep = np.ones((2, 5), dtype=bool)
    keep[0, 1] = False
    keep[:, 4] = False
    fallback = np.full((5, 3), 7.0)
    mean = in_sample_mean(views, keep, fallback)
    assert np.allclose(mean[1], views[1, 1]) and np.allclose(mean[4], 7.0)
    assert np.allclose(mean[[0, 2, 3]], views[:, [0, 2, 3]].mean(axis=0))


def test_flag_of_prefers_the_pie_category_then_label_noise_then_corruption():
    from curate.science.flags import flag_of

    assert flag_of("multi_object", True, True) == "multi_object"
    assert flag_of("", True, True) == flag_of(None, True, False) == "label_noise"
    assert flag_of("", False, True) == "corruption"
    assert flag_of(None, False, False) == ""


def _memorisation_case():
    labels = np.array([0, 0, 0, 1, 1, 1])
    held_out = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.2, 0.8], [0.45, 0.55]])
    # Confident learning counts one wrong label (sample 2; worked out in the test above): 5 of 6 right.
    fits_all = np.eye(2)[labels][None].repeat(2, axis=0) * 0.9 + 0.05    # (2 slots, 6, 2): every label fitted
    fits_four = fits_all.copy()
    fits_four[:, [2, 5]] = fits_four[:, [2, 5], ::-1]                      # samples 2 and 5 not fitted
    return labels, held_out, fits_all, fits_four


def test_memorisation_compares_fitted_labels_with_those_believed_right():
    labels, held_out, fits_all, fits_four = _memorisation_case()
    check = memorisation(labels, held_out, fits_all)
    assert check.right == pytest.approx(5 / 6) and check.fitted == 1.0 and check.memorised
    check = memorisation(labels, held_out, fits_four)
    assert check.fitted == pytest.approx(4 / 6) and not check.memorised
    # Pairs left out (random-label probes) are not counted: here only the fitted ones are kept.
    keep = np.ones((2, 6), dtype=bool)
    keep[:, [2, 5]] = False
    assert memorisation(labels, held_out, fits_four, keep).fitted == 1.0
    with pytest.raises(ValueError, match="in_sample_views has shape"):
        memorisation(labels, held_out, fits_all[0])
    with pytest.raises(ValueError, match="keep has shape"):
        memorisation(labels, held_out, fits_all, keep[:1])


@pytest.mark.parametrize("memorised", [True, False])
def test_flag_samples_reads_the_forgotten_view_only_where_the_networks_memorised(memorised):
    from curate.science.analysis import flag_samples
    from curate.science.pies import score_pies

    labels, held_out, fits_all, fits_four = _memorisation_case()
    plain = fits_all if memorised else fits_four
    forgotten = np.full_like(plain, 0.5)
    forgotten[:, :, 0] = 0.3
    forgotten[:, :, 1] = 0.7
    dense = held_out[None].repeat(2, axis=0)
    compressed = dense[None]
    probe_probs = np.full((2, 2, 2, 2), 0.5)  # (levels + 1, networks, probes, classes)
    categories, _ = flag_samples(dense, compressed, labels, ["a", "b"], ["p50"], score_pies(dense, compressed),
                                 probe_probs, np.array(["two_class", "noise"]), in_sample_probs=plain,
                                 forgotten_probs=forgotten)
    read = forgotten if memorised else plain
    expected = 1 - 0.5 * (held_out[np.arange(6), labels] + read.mean(axis=0)[np.arange(6), labels])
    np.testing.assert_allclose(categories.evidence.noise.score, expected)
    assert categories.thresholds["in_sample_after_forgetting"] == int(memorised)
    assert categories.thresholds["labels_right"] == pytest.approx(5 / 6)
