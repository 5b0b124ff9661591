"""Flags a reviewer can trust: the noise model's P(label wrong), the control level, the region rule
for multi-object images, and the planted copy the demo runs on. Hand-worked arrays throughout."""

import json

import numpy as np
import pytest
from PIL import Image

from curate.data.planted import DAMAGES, DUPLICATE, TWO_OBJECTS, WRONG_LABEL, PlantedShares, damage, plant
from curate.data.sources import LabeledImages
from curate.science.noise_model import fit_noise_model, fit_transition, reliability_table, tempered
from curate.science.pies import compare_with_control, mark_pies
from curate.science.regions import PAIRS, REGIONS, region_split


# --- noise model ---------------------------------------------------------------------------------

def test_transition_from_certain_beliefs_is_the_confusion_count():
    # Beliefs are one-hot, so the E-step is exact: T[k, l] = (pairs (k, l) + 0.1) / (row total + 0.3).
    belief = np.eye(3)[[0, 0, 0, 0, 1, 1, 2]]
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    transition, _ = fit_transition(labels, belief, symmetric=False)
    assert transition[0] == pytest.approx([3.1 / 4.3, 1.1 / 4.3, 0.1 / 4.3])
    assert transition[1] == pytest.approx([0.1 / 2.3, 2.1 / 2.3, 0.1 / 2.3])


def test_uniform_rate_from_certain_beliefs_is_the_share_of_disagreements():
    belief = np.eye(2)[[0, 0, 0, 1]]
    labels = np.array([0, 0, 1, 1])  # one of four disagrees
    transition, _ = fit_transition(labels, belief, symmetric=True)
    assert transition == pytest.approx(np.array([[0.75, 0.25], [0.25, 0.75]]))


def test_p_wrong_is_bayes_rule_on_the_fitted_model():
    # Two classes, belief r = (0.8, 0.2) for a sample labelled 1, noise rate e: the label is wrong with
    # probability 0.8 e / (0.8 e + 0.2 (1 - e)).
    rng = np.random.default_rng(0)
    n = 4000
    truth = rng.integers(0, 2, n)
    probs = np.where(truth[:, None] == np.arange(2)[None], 0.8, 0.2)
    flip = rng.random(n) < 0.1
    labels = np.where(flip, 1 - truth, truth)
    model = fit_noise_model(labels, probs)
    e = 1 - model.transition[0, 0]
    r = tempered(np.log(probs), model.temperature)
    rows = np.arange(n)
    agree = r[rows, labels]
    expected = (1 - agree) * e / ((1 - agree) * e + agree * (1 - e))
    assert model.p_wrong == pytest.approx(expected, abs=1e-9)
    assert model.expected_wrong == pytest.approx(flip.sum(), rel=0.1)


def _synthetic(n, alpha, noise, sharpen, seed):
    rng = np.random.default_rng(seed)
    belief = rng.dirichlet(np.full(10, alpha), n)
    truth = np.array([rng.choice(10, p=p) for p in belief])
    wrong = rng.random(n) < noise
    labels = np.where(wrong, (truth + rng.integers(1, 10, n)) % 10, truth)
    probs = belief ** sharpen
    return labels, probs / probs.sum(axis=1, keepdims=True), wrong


@pytest.mark.parametrize("noise, sharpen", [(0.2, 1.0), (0.2, 2.0), (0.4, 1.0)])
def test_p_wrong_is_calibrated_when_the_population_knows_the_truth(noise, sharpen):
    labels, probs, wrong = _synthetic(4000, 0.1, noise, sharpen, seed=1)
    model = fit_noise_model(labels, probs)
    assert model.temperature == pytest.approx(sharpen, rel=0.1)  # over-confidence undone
    assert reliability_table(model.p_wrong, wrong)[1] < 0.03
    assert model.expected_wrong == pytest.approx(wrong.sum(), rel=0.1)


def test_a_weak_population_on_clean_labels_calls_few_labels_wrong():
    # Beliefs from a flat Dirichlet: the population is right on ~30%; none of the labels is wrong.
    labels, probs, wrong = _synthetic(4000, 1.0, 0.0, 1.0, seed=2)
    assert wrong.sum() == 0
    assert fit_noise_model(labels, probs).expected_wrong < 0.01 * len(labels)


def test_noise_model_names_bad_input():
    with pytest.raises(ValueError, match="labels has shape"):
        fit_noise_model(np.zeros(3, dtype=int), np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        fit_noise_model(np.array([0, 2]), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="finite"):
        fit_noise_model(np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]))


def test_reliability_table_by_hand():
    rows, ece = reliability_table(np.array([0.05, 0.05, 0.95, 0.95]), np.array([0, 1, 1, 1]))
    assert [r["n"] for r in rows] == [2, 2]
    assert rows[0]["observed"] == 0.5 and rows[1]["observed"] == 1.0
    assert ece == pytest.approx((2 * 0.45 + 2 * 0.05) / 4)


# --- control level -------------------------------------------------------------------------------

def _onehot(classes, n_classes=3):
    return np.eye(n_classes)[np.asarray(classes)]


def test_control_comparison_by_hand():
    # Two members, four samples. Dense modal: 0 0 1 2. Control modal: 1 0 1 2 (sample 0 moves).
    dense = np.stack([_onehot([0, 0, 1, 2]), _onehot([0, 0, 1, 2])])
    control = np.stack([_onehot([1, 0, 1, 2]), _onehot([1, 0, 1, 2])])
    # Level A forgets samples 0 and 3; level B forgets sample 0 only.
    level_a = np.stack([_onehot([2, 0, 1, 0]), _onehot([2, 0, 1, 0])])
    level_b = np.stack([_onehot([1, 0, 1, 2]), _onehot([1, 0, 1, 2])])
    is_pie = mark_pies(dense, np.stack([level_a, level_b]))
    result = compare_with_control(dense, control, is_pie)
    assert result.is_pie.tolist() == [True, False, False, False]
    assert result.beyond.tolist() == [[False, False, False, True], [False, False, False, False]]
    assert result.excess == pytest.approx([0.25, 0.0])
    # Paired differences of level A: (0, 0, 0, 1): sd 0.5, so the 95% half-width is 1.96 * 0.5 / 2.
    assert result.high[0] - result.excess[0] == pytest.approx(1.959964 * 0.5 / 2, rel=1e-5)
    assert result.low[1] == result.high[1] == 0.0


def test_control_comparison_checks_shapes():
    dense = np.stack([_onehot([0, 1]), _onehot([0, 1])])
    with pytest.raises(ValueError, match="control_probs has shape"):
        compare_with_control(dense, np.stack([_onehot([0, 1, 2])] * 2), np.zeros((1, 2), dtype=bool))


# --- regions -------------------------------------------------------------------------------------

def test_region_split_by_hand():
    c = 3

    def p(cls, conf):
        row = np.full(c, (1 - conf) / (c - 1))
        row[cls] = conf
        return row

    # Every window of every sample says 2 at p 0.5 unless set below.
    regions = np.array([[p(2, 0.5)] * 3 for _ in REGIONS])
    # Sample 0: middle-left says 0 (0.9), middle-right says 1 (0.8): two objects side by side, score 0.8.
    regions[REGIONS.index("middle-left"), 0] = p(0, 0.9)
    regions[REGIONS.index("middle-right"), 0] = p(1, 0.8)
    # Sample 1: only overlapping windows disagree (top-left vs top-centre): no score.
    regions[REGIONS.index("top-left"), 1] = p(0, 0.9)
    regions[REGIONS.index("top-centre"), 1] = p(1, 0.9)
    # Sample 2: top-centre 0 (0.6), bottom-centre 1 (0.7): score 0.6 from the top/bottom pair.
    regions[REGIONS.index("top-centre"), 2] = p(0, 0.6)
    regions[REGIONS.index("bottom-centre"), 2] = p(1, 0.7)
    split = region_split(regions)
    # Sample 1's windows also disagree with non-overlapping windows that say 2 at p 0.5: score 0.5.
    assert split.score == pytest.approx([0.8, 0.5, 0.6])
    assert [REGIONS[w] for w in PAIRS[split.pair[0]]] == ["middle-left", "middle-right"]
    assert (split.first[0], split.second[0]) == (0, 1)
    assert [REGIONS[w] for w in PAIRS[split.pair[2]]] == ["top-centre", "bottom-centre"]
    with pytest.raises(ValueError, match="region_probs must be"):
        region_split(regions[:4])


def test_windows_that_overlap_are_never_paired():
    for a, b in PAIRS:
        rows, cols = abs(a // 3 - b // 3), abs(a % 3 - b % 3)
        assert rows == 2 or cols == 2  # half a side apart: windows of half the side cannot overlap
    assert len(PAIRS) == 16


def test_likelihood_ratio_threshold_by_hand():
    from curate.science.regions import likelihood_ratio_threshold, pass_rate

    # Positives 0.6, 0.7, 0.9; 20 negatives, three of them high. At 0.6 the positives pass 1.0 and the
    # negatives 0.15 (ratio 6.7 < 10); at 0.7, 2/3 against 0.05 (13.3): the lowest threshold that rules in.
    negatives = np.array([0.1] * 17 + [0.62, 0.65, 0.95])
    assert likelihood_ratio_threshold(np.array([0.6, 0.7, 0.9]), negatives) == 0.7
    assert likelihood_ratio_threshold(np.array([0.6, 0.7, 0.9]), negatives, ratio=5) == 0.6
    assert likelihood_ratio_threshold(np.array([0.1]), np.array([0.5])) == float("inf")
    assert pass_rate(negatives, 0.7) == pytest.approx(0.05) and pass_rate(negatives, float("inf")) == 0.0


# --- planted copy --------------------------------------------------------------------------------

def test_damage_kinds_change_pixels_as_documented():
    rng = np.random.default_rng(0)
    image = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    washed = damage(image, "washed_out", rng)
    assert washed.std() < 0.25 * image.std() and washed.mean() > 170
    noisy = damage(image, "noise", rng)
    assert 30 < np.abs(noisy.astype(float) - image).mean() < 60
    assert damage(image, "jpeg_blocks", rng).shape == image.shape
    with pytest.raises(ValueError, match="Unknown damage"):
        damage(image, "scratches", rng)


def test_plant_marks_every_change_and_leaves_the_originals(tmp_path):
    originals = tmp_path / "originals"
    paths, labels = [], []
    rng = np.random.default_rng(0)
    for i in range(100):
        path = originals / f"{i % 4}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(path)
        paths.append(str(path))
        labels.append(i % 4)
    before = {p: open(p, "rb").read() for p in paths}
    images = LabeledImages(filepaths=paths, labels=np.array(labels), classes=["0", "1", "2", "3"])
    planted = plant(images, tmp_path / "planted", shares=PlantedShares(0.1, 0.06, 0.04), seed=3)
    kinds = np.array([k or "" for k in planted.fields["planted"]])
    assert (kinds == WRONG_LABEL).sum() == 10 and np.isin(kinds, DAMAGES).sum() == 6 and (kinds == TWO_OBJECTS).sum() == 4
    assert (kinds == DUPLICATE).sum() == 1
    original = np.array([planted.classes.index(c) for c in planted.fields["original_label"]])
    assert ((planted.labels != original) == (kinds == WRONG_LABEL)).all()
    changed = np.array([p != q for p, q in zip(planted.filepaths, paths)])
    assert (changed == np.isin(kinds, [*DAMAGES, TWO_OBJECTS, DUPLICATE])).all()
    copy = int(np.flatnonzero(kinds == DUPLICATE)[0])
    source = paths.index(planted.fields["copy_of"][copy])
    assert planted.labels[copy] == images.labels[source] and kinds[source] == ""
    assert all(str(tmp_path / "planted") in p for p in np.array(planted.filepaths)[changed])
    assert {p: open(p, "rb").read() for p in paths} == before  # originals untouched
    again = plant(images, tmp_path / "planted", shares=PlantedShares(0.1, 0.06, 0.04), seed=3)
    assert again.filepaths == planted.filepaths and (again.labels == planted.labels).all()
    with pytest.raises(ValueError, match="wrong_labels must lie"):
        PlantedShares(wrong_labels=0.7)


# --- end to end ----------------------------------------------------------------------------------

def test_the_demo_finds_its_planted_problems_and_the_app_opens_on_them(fo, tmp_path, monkeypatch):
    """`curate demo` on the planted digits: wrong labels and damaged images found at >= 3x their base
    rate, the summary says so, the dataset marks what was planted, the App config shows four labels
    per card, the label-noise view is sorted by P(label wrong), and `curate status` compares."""
    from helpers import invoke

    monkeypatch.setenv("CURATE_HOME", str(tmp_path / "home"))  # the planted copy is written here
    result = invoke("demo", "--dataset", "test-planted", "--run-dir", str(tmp_path / "run"), "--members", "2",
                    "--epochs", "6", "--sparsities", "0.9", "--quantize", "none", "--filter-prune", "none", "--distill", "none", "--robustness-images", "0", "-q")
    assert result.exit_code == 0, result.output
    assert "Planted problems found" in result.output and "expected to be real errors" in result.output
    assert "PIEs the control does not also produce" in result.output
    dataset = fo.load_dataset("test-planted")
    planted = np.array([p or "" for p in dataset.values("planted")])
    flagged_noise = np.array(dataset.values("curate_label_noise"))
    flagged_damage = np.array(dataset.values("curate_corruption"))
    for truth, flagged in ((planted == WRONG_LABEL, flagged_noise), (np.isin(planted, DAMAGES), flagged_damage)):
        assert flagged.any()
        assert truth[flagged].mean() >= 3 * truth.mean(), (truth[flagged].mean(), truth.mean())
    # Damaged and two-object images are new files in the planted copy; the rest are the digits' own.
    paths = np.array(dataset.values("filepath"))
    in_copy = np.array([p.startswith(str(tmp_path / "home" / "digits-planted") + "/") for p in paths])
    assert (in_copy == np.isin(planted, [*DAMAGES, TWO_OBJECTS, DUPLICATE])).all()
    # Every planted near copy is found in a group of duplicates with its original.
    clusters = np.array([c if c is not None else -1 for c in dataset.values("curate_duplicate_cluster")])
    copies = np.flatnonzero(planted == DUPLICATE)
    originals = [list(paths).index(p) for p in np.array(dataset.values("copy_of"))[copies]]
    assert (clusters[copies] >= 0).all() and (clusters[copies] == clusters[originals]).all()
    assert len(dataset.load_saved_view("duplicates")) >= 2 * len(copies)
    # The first network's features searched for copies too, and the summary says what they added.
    record = json.loads((tmp_path / "run" / "manifest.json").read_text())["duplicates"]
    assert record["feature_copy_recall"] >= 0.5 or record["feature_similarity"] is None
    # Every hash pair was checked against its pixels (the planted copies among them), at a chance level set by
    # random pairs of two of these images of one label.
    assert record["hash_pairs_checked"] >= len(copies) and -1.0 < record["pixel_chance_level"] < 1.0
    assert "Duplicates: " in result.output and "the network's features added" in result.output
    config = dataset.app_config
    assert config.active_fields.paths == ["ground_truth", "curate_suggested", "curate_dense", "curate_prune90"]
    groups = {g.name: g for g in config.sidebar_groups}
    assert groups["curate: review"].expanded and "curate_p_label_wrong" in groups["curate: review"].paths
    assert "curate_label_audit" in groups["curate: review"].paths
    view = dataset.load_saved_view("label-noise")
    wrong = view.values("curate_p_label_wrong")
    assert wrong == sorted(wrong, reverse=True) and min(wrong) >= 0.5
    status = invoke("status", "test-planted")
    assert "expected to hold" in status.output, status.output
    assert invoke("runs", "test-planted", "--delete", "curate").exit_code == 0
    dataset.reload()
    assert "curate: review" not in {g.name for g in dataset.app_config.sidebar_groups or []}
    assert not dataset.app_config.active_fields or "curate_dense" not in dataset.app_config.active_fields.paths


# --- duplicates ----------------------------------------------------------------------------------

def test_perceptual_hash_sets_half_the_bits_and_survives_small_changes():
    from curate.science.duplicates import _popcount, perceptual_hash, shifted_hashes

    rng = np.random.default_rng(1)
    images = rng.random((20, 32, 32)).cumsum(axis=1).cumsum(axis=2)  # smooth, photo-like
    hashes = perceptual_hash(images)
    assert (np.abs(_popcount(hashes) - 32) <= 1).all()  # median threshold over 63 AC terms
    brighter = perceptual_hash(images * 1.1 + 5)
    assert (hashes == brighter).all()  # the DCT's ranks ignore brightness and contrast
    variants = shifted_hashes(images)
    assert variants.shape == (10, 20) and (variants[4] == hashes).all()
    assert (variants[9] == perceptual_hash(images[:, :, ::-1])).all()  # the mirror image's


def test_shifted_and_mirrored_copies_are_near_duplicates_of_their_originals():
    from curate.science.duplicates import find_duplicates, shifted_hashes

    rng = np.random.default_rng(2)
    originals = rng.random((30, 64, 64)).cumsum(axis=1).cumsum(axis=2)
    originals = originals + rng.normal(0, originals.std() * 0.5, originals.shape[:1])[:, None, None] * \
        np.linspace(-1, 1, 64)[None, None, :]  # a left-right gradient of its own: no image is its own mirror
    copies = np.concatenate([originals[:5, :, ::-1],  # mirrored
                             np.pad(originals[5:10], ((0, 0), (0, 0), (4, 0)), mode="edge")[:, :, :64],  # shifted
                             np.pad(originals[10:15, :, ::-1], ((0, 0), (4, 0), (0, 0)), mode="edge")[:, :64]])  # both
    gray = np.concatenate([originals, copies])
    found = find_duplicates(shifted_hashes(gray), [""] * len(gray), [None] * len(gray))
    assert (found.cluster[30:] == np.arange(15)).all()  # each copy joins its original, and nothing else does
    assert (found.cluster[15:30] == -1).all()
    no_mirror = find_duplicates(shifted_hashes(gray)[:9], [""] * len(gray), [None] * len(gray))
    assert (no_mirror.cluster[30:35] == -1).all()  # without the mirror image's hash, flipped copies are missed


def test_the_shifted_and_mirrored_copies_also_pass_the_pixel_check():
    from curate.science.duplicates import find_duplicates, shifted_hashes

    rng = np.random.default_rng(2)
    originals = rng.random((30, 64, 64)).cumsum(axis=1).cumsum(axis=2)
    originals += rng.normal(size=originals.shape) * originals.std() * 0.05  # detail beyond the layout
    copies = np.concatenate([originals[:5, :, ::-1],
                             np.pad(originals[5:10], ((0, 0), (0, 0), (4, 0)), mode="edge")[:, :, :64]])
    gray = np.concatenate([originals, copies])
    found = find_duplicates(shifted_hashes(gray), [""] * len(gray), [None] * len(gray), images=gray)
    assert (found.cluster[30:] == np.arange(10)).all()


def test_a_pixel_check_drops_pairs_that_share_a_layout_only_and_keeps_copies_and_identical_files():
    from curate.science.duplicates import aligned_correlation, chance_agreement, confirm_by_pixels

    rng = np.random.default_rng(0)
    images = rng.normal(size=(300, 32, 32))
    images[1] = 1.3 * images[0] + 20  # a copy, brighter and with more contrast: pixels agree fully
    images[3] = np.pad(images[2], 2, mode="edge")[4:36, 2:34]  # shifted by a hash's step; 2 rows made up
    images[5] = images[4][:, ::-1]  # mirrored
    # two small objects on one plain sky: the hashes' coarse layout is alike, the pixels are not
    images[6], images[7] = 5 + rng.normal(size=(32, 32)), 5 + rng.normal(size=(32, 32))
    scores = aligned_correlation(images, np.array([[0, 1], [2, 3], [4, 5]]))
    assert scores[0] == pytest.approx(1.0) and 0.9 < scores[1] < 1.0 and scores[2] == pytest.approx(1.0)
    pairs = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [10, 11]])
    digests = [str(i) for i in range(300)]
    digests[11] = digests[10]  # the same file twice: kept whatever its pixels say
    digests[6] = digests[7] = ""  # files no one could read are not thereby the same file: still checked
    check = confirm_by_pixels(pairs, digests, images)
    assert check.pairs.tolist() == [[0, 1], [2, 3], [4, 5], [10, 11]]
    assert check.checked == 4 and check.dropped == 1
    assert check.threshold == chance_agreement(images, exclude=pairs)
    assert 0.0 < check.threshold < 0.5  # unrelated noise images: 0.1% of random pairs exceed a low level
    # the pairs under test are not drawn as chance: a dataset of copies only still keeps them
    copies = np.concatenate([images[20:70], 2 * images[20:70] + 1])
    twins = np.stack([np.arange(50), 50 + np.arange(50)], axis=1)
    assert len(confirm_by_pixels(twins, [str(i) for i in range(100)], copies).pairs) == 50


def test_the_pixel_check_reads_photos_block_averaged_as_the_hashes_do():
    from curate.science.duplicates import _grey, aligned_correlation

    rng = np.random.default_rng(1)
    photos = rng.normal(size=(3, 3, 256, 256)).cumsum(axis=2).cumsum(axis=3)  # smooth colour images, 256 px
    photos = photos + rng.normal(size=photos.shape) * photos.std() * 0.2
    photos[1] = np.pad(photos[0], ((0, 0), (16, 0), (0, 0)), mode="edge")[:, :256]  # shifted a sixteenth
    scores = aligned_correlation(photos, np.array([[0, 1], [0, 2]]))
    assert scores[0] > 0.95 and scores[0] > scores[1]
    assert _grey(photos, np.array([2, 0])).shape == (2, 32, 32)  # read at the hashes' 32 x 32, not 256 x 256


def test_near_pairs_match_brute_force():
    from curate.science.duplicates import NEAR_BITS, _popcount, near_pairs

    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 40, dtype=np.uint64)
    flips = np.array([np.uint64(1) << np.uint64(b) for b in rng.integers(0, 64, 40)], dtype=np.uint64)
    hashes = np.concatenate([base, base[:20] ^ flips[:20], base[:5] ^ flips[20:25] ^ flips[25:30],
                             base[:5] ^ flips[30:35] ^ flips[35:40] ^ flips[20:25] ^ flips[:5]])  # 4 bits: too far
    i, j = np.triu_indices(len(hashes), k=1)
    brute = np.stack([i, j], axis=1)[_popcount(hashes[i] ^ hashes[j]) <= NEAR_BITS]
    assert near_pairs(hashes).tolist() == brute.tolist()


def test_duplicates_clusters_keepers_and_leaks():
    from curate.science.duplicates import find_duplicates

    hashes = np.array([0b1111, 0b1110, 2**40 - 1, 2**40 - 1, 0xAAAAAAAAAAAAAAAA, 0], dtype=np.uint64)
    digests = ["a", "b", "c", "c", "d", "e"]  # images 2 and 3: the same file content
    splits = ["train", "train", "train", "test", None, None]
    found = find_duplicates(hashes, digests, splits)
    # 0 and 1 differ in one bit; 5 (all zeros) is 4 bits from 0 and 3 from 1: one cluster of three.
    assert found.cluster.tolist() == [0, 0, 2, 2, -1, 0]
    assert found.exact.tolist() == [False, False, True, True, False, False]
    assert found.distance.tolist() == [1, 1, 0, 0, -1, 3]
    assert found.keep.tolist() == [True, False, True, True, True, False]  # one per cluster in training
    assert found.leak.tolist() == [False, False, True, True, False, False]


def test_nearest_neighbours_by_centred_cosine_by_hand():
    from curate.science.duplicates import nearest_neighbours

    # Centred on the mean (1, 1): rows become (1, 0), (0.9, 0), (-1, 0.1), (-0.9, -0.1) up to scale.
    features = np.array([[2.0, 1.0], [1.9, 1.0], [0.0, 1.1], [0.1, 0.9]])
    index, similarity = nearest_neighbours(features, k=2, chunk=3)  # chunks of 3 rows: 2 blocks
    assert index[:, 0].tolist() == [1, 0, 3, 2]
    assert similarity[0, 0] == pytest.approx(1.0)
    assert similarity[2, 0] == pytest.approx(np.dot([-1, 0.1], [-0.9, -0.1]) / np.hypot(-1, 0.1) / np.hypot(-0.9, -0.1))
    assert (similarity[:, 0] >= similarity[:, 1]).all()


def test_feature_duplicates_pass_pairs_as_similar_as_made_copies_and_stand_down_otherwise():
    from curate.science.duplicates import feature_duplicates, find_duplicates

    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(200, 16))
    features = np.concatenate([distinct, distinct[:3] + 0.05 * rng.normal(size=(3, 16))])  # 200-202 copy 0-2
    copy_rows = np.arange(50)
    copies = features[copy_rows] + 0.05 * rng.normal(size=(50, 16))
    known = np.isin(np.arange(203), [0, 1, 2, 200, 201, 202])
    found = feature_duplicates(features, copies, copy_rows, known=known)
    # Made copies sit at similarity ~0.99, an image's nearest distinct neighbour far below: every copy passes,
    # no image without a copy does (a likelihood ratio far above 100), and the three planted pairs are found,
    # alone. Images 0-2 have a copy: told so, their nearest neighbours do not count against the threshold.
    assert found.copy_recall == 1.0 and found.neighbour_rate == 0.0 and 0.9 < found.threshold < 1
    assert found.pairs.tolist() == [[0, 200], [1, 201], [2, 202]]
    assert found.record()["feature_pairs"] == 3
    hashes = rng.integers(0, 2**63, 203, dtype=np.uint64)  # ~32 bits apart: no pair by hash
    merged = find_duplicates(hashes, [""] * 203,
                             [None] * 203, feature_pairs=found.pairs)
    assert merged.cluster[[0, 200, 1, 201]].tolist() == [0, 0, 1, 1] and (merged.cluster[3:200] == -1).all()
    # Not told, the copies count as look-alikes: 6 of 203 images pass where every made copy does, a ratio of
    # 34, below the bar of 100: nothing is found.
    unknown = feature_duplicates(features, copies, copy_rows)
    assert unknown.threshold == np.inf and len(unknown.pairs) == 0
    # A network that maps copies no closer than other images: a few pass by chance, too few to set a threshold.
    blind = feature_duplicates(features, rng.normal(size=(50, 16)), copy_rows, known=known)
    assert blind.threshold == np.inf and len(blind.pairs) == 0 and blind.record()["feature_similarity"] is None


def test_made_copies_and_features_come_from_the_network():
    import torch

    from curate.population.features import COPY_KINDS, embed, features_and_copies, made_copies
    from curate.population.models import build_model
    from curate.population.train import Normalizer

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 3, 16, 16), dtype=np.uint8)
    copies = made_copies(pixels, np.random.default_rng(1))
    assert copies.shape == pixels.shape and copies.dtype == np.uint8
    mirrored = COPY_KINDS.index("mirrored")
    assert (copies[mirrored] == pixels[mirrored][:, :, ::-1]).all()
    assert all(not np.array_equal(copies[i], pixels[i]) for i in range(len(pixels)))
    torch.manual_seed(0)
    model = build_model("resnet-small:8", 3)
    normalize = Normalizer(np.full(3, 0.5), np.full(3, 0.25), torch.device("cpu"))
    features = embed(model, pixels, normalize, batch_size=5)
    assert features.shape == (12, model.head.in_features) and features.dtype == np.float16
    # The features are what the classifier reads: its output from them is the model's output.
    with torch.no_grad():
        logits = model.eval()(normalize(pixels))
        assert torch.allclose(model.head(torch.as_tensor(features.astype(np.float32))), logits, atol=0.05)
    fields = features_and_copies(model, pixels, normalize, seed=3)
    assert fields["copy_features"].shape == (12, features.shape[1]) and sorted(fields["copy_rows"]) == list(range(12))


def test_a_pairs_distance_is_zero_for_the_same_file_only_not_for_two_files_no_one_could_read():
    from curate.science.duplicates import group_duplicates

    hashes = np.array([0b0, 0b111, 0b0, 0b11, 0b1000], dtype=np.uint64)
    digests = ["", "", "a", "a", "b"]
    found = group_duplicates(np.array([[0, 1], [2, 3]]), hashes, digests, [None] * 5)
    assert found.distance.tolist() == [3, 3, 0, 0, -1]  # 0 and 1: three bits apart; 2 and 3: one file twice
    assert found.exact.tolist() == [False, False, True, True, False]


def test_same_label_pairs_pair_images_of_one_label_drawn_evenly():
    from curate.science.duplicates import same_label_pairs

    labels = np.array(["cat", "dog", "cat", "cat", "emu", "dog", "owl"])
    pairs = same_label_pairs(labels, 14_000, np.random.default_rng(0))
    assert (labels[pairs[:, 0]] == labels[pairs[:, 1]]).all()
    assert np.bincount(pairs[:, 0], minlength=7).min() > 1_700  # every image starts about 2,000 pairs
    cats = pairs[labels[pairs[:, 0]] == "cat", 1]
    assert set(cats.tolist()) == {0, 2, 3}


def test_the_pixel_check_asks_more_of_a_pair_than_two_images_of_one_class_usually_agree():
    from curate.science.duplicates import aligned_correlation, chance_agreement, confirm_by_pixels

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(50), 8)
    templates = rng.normal(size=(50, 32, 32))
    strength = rng.uniform(0.2, 1.2, size=400)  # how much of its class an image shows: pairs agree 0.04-0.6
    images = strength[:, None, None] * templates[labels] + rng.normal(size=(400, 32, 32))
    images[1] = images[0] + 0.05 * rng.normal(size=(32, 32))  # a copy
    # two images of class 1 that show more of it than most (a look-alike pair, not a copy)
    images[8], images[9] = 1.15 * templates[1] + rng.normal(size=(2, 32, 32))
    pairs = np.array([[0, 1], [8, 9]])
    digests = [str(i) for i in range(400)]
    any_two = confirm_by_pixels(pairs, digests, images)
    one_class = confirm_by_pixels(pairs, digests, images, labels=labels)
    assert one_class.threshold == chance_agreement(images, exclude=pairs, labels=labels)
    assert any_two.threshold < aligned_correlation(images, pairs)[1] < one_class.threshold
    assert any_two.pairs.tolist() == [[0, 1], [8, 9]]
    assert one_class.pairs.tolist() == [[0, 1]] and one_class.dropped == 1
    # no label with two images: the chance level falls back to any two images
    assert chance_agreement(images, labels=np.arange(400)) == chance_agreement(images)
    with pytest.raises(ValueError, match="399 labels for 400 images"):
        chance_agreement(images, labels=labels[1:])


def test_the_summary_says_multi_object_is_given_to_pies_only():
    from curate.frontends.summary import multi_object_sentence

    sentence = multi_object_sentence(0.8, 0.29, 0.027)
    assert "pass 29% of made two-object images and 2.7% of this dataset's images" in sentence
    assert "PIEs only" in sentence and "none of the others" in sentence
    assert "off for this run" in multi_object_sentence(None, 0.0, 0.0)
