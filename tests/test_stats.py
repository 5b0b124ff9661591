"""Per-class impact statistics on hand-made arrays with answers worked out by hand."""

import numpy as np
import pytest

from bench_pies import paired_t_test  # measured and not adopted: lives with the benchmarks (scripts/)
from curate.science.stats import class_impact, holm_correction, impact_table, member_recalls, welch_t_test

LABELS = np.array([0, 0, 1, 1])


def probs_from_preds(preds, n_classes=2):
    preds = np.asarray(preds)
    out = np.full(preds.shape + (n_classes,), 0.1)
    np.put_along_axis(out, preds[..., None], 0.9, axis=-1)
    return out


# Dense members both perfect. Compressed member C predicts 0 0 0 1, member D predicts 0 0 0 0.
DENSE = probs_from_preds([[0, 0, 1, 1], [0, 0, 1, 1]])
COMPRESSED = probs_from_preds([[0, 0, 0, 1], [0, 0, 0, 0]])


def test_member_recalls():
    np.testing.assert_allclose(member_recalls(COMPRESSED, LABELS), [[1.0, 0.5], [1.0, 0.0]])


def test_holm_correction():
    # sorted: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to the running max 0.06
    np.testing.assert_allclose(holm_correction(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    assert np.isnan(holm_correction(np.array([np.nan, 0.2])))[0]


def test_welch_degenerate_cases():
    assert welch_t_test([1, 1], [1, 1]) == (0.0, 1.0)
    t, p = welch_t_test([1, 1], [0.5, 0.5])
    assert np.isnan(t) and np.isnan(p)  # no spread to test against: not tested, never "significant"


def test_paired_t_test_by_hand():
    # Differences [1, 2, 2]: mean 5/3, sample sd sqrt(1/3), se 1/3 -> t = 5, df = 2, for which the
    # two-sided p is 1 - t / sqrt(2 + t^2).
    t, p = paired_t_test([1, 2, 3], [2, 4, 5])
    assert t == pytest.approx(5.0) and p == pytest.approx(1 - 5 / np.sqrt(27))
    assert paired_t_test([1, 2], [1, 2]) == (0.0, 1.0)
    t, p = paired_t_test([1, 2], [1.5, 2.5])
    assert np.isnan(t) and np.isnan(p)  # the same shift in every member: no spread to test against
    with pytest.raises(ValueError, match="one value per member"):
        paired_t_test([1, 2, 3], [1, 2])


def test_pairing_finds_a_change_every_member_shows():
    # Six members that differ a lot on class 0 (recall 1.0 down to 0.6); every compressed copy loses 6
    # or 7 more of its 100 class-0 images. Across members the loss hides in the spread (Welch); member
    # by member it is plain (paired).
    labels = np.repeat([0, 1, 2], 100)
    dense_preds, compressed_preds = np.tile(labels, (6, 1)), np.tile(labels, (6, 1))
    for m in range(6):
        dense_preds[m, :8 * m] = 1
        compressed_preds[m, :8 * m + 6 + m % 2] = 1
    dense, compressed = probs_from_preds(dense_preds, 3), probs_from_preds(compressed_preds, 3)
    paired = class_impact(dense, compressed, labels, test=paired_t_test)
    welch = class_impact(dense, compressed, labels)
    assert paired.loc[0, "normalized_change"] == welch.loc[0, "normalized_change"] < -0.04
    assert paired.loc[0, "significant"] and paired.loc[0, "p_adjusted"] < 1e-4
    assert not welch.loc[0, "significant"] and welch.loc[0, "p_value"] > 0.4
    with pytest.raises(ValueError, match="one value per member"):
        class_impact(dense, compressed[:5], labels, test=paired_t_test)
    assert len(class_impact(dense, compressed[:5], labels)) == 3  # Welch's needs no pairs


def test_tied_members_do_not_make_a_class_significantly_impacted():
    # Two members per population, each getting every class-0 image right with the same accuracy:
    # class 0's normalised recall moves only because the overall accuracy does, and identically in
    # both members, so there is nothing to test (this read p = 0 before).
    labels = np.array([0, 0, 1, 1, 1, 1])
    right = np.eye(2)[labels]
    dense = np.stack([right, right])
    compressed = dense.copy()
    compressed[:, 2] = np.eye(2)[0]  # both compressed members now miss one class-1 image
    table = class_impact(dense, compressed, labels)
    assert table.loc[0, "dense_recall"] == table.loc[0, "compressed_recall"] == 1.0
    assert table.loc[0, "normalized_change"] > 0 and np.isnan(table.loc[0, "p_value"])
    assert not table["significant"].any()


def test_class_impact_by_hand():
    # Normalised recall = recall / accuracy. Dense: [1, 1] for both members.
    # C: accuracy 0.75 -> [1/0.75, 0.5/0.75] = [4/3, 2/3]; D: accuracy 0.5 -> [2, 0].
    # Class 0: mean 5/3, sample variance 2/9, se = sqrt(2/9 / 2) = 1/3 -> t = (5/3 - 1) / (1/3) = 2.
    # Welch df = 1 (the dense sample has no variance): p = 2 * (1 - Cauchy cdf(2)) = 1 - 2 atan(2) / pi.
    # The paired test reads each member's change [1/3, 1]: the same t, df and p.
    # Class 1: mean 1/3 -> t = -2, same p. Holm: both adjusted to 2p.
    table = class_impact(DENSE, COMPRESSED, LABELS, ["zero", "one"])
    p = 1 - 2 * np.arctan(2) / np.pi
    paired = class_impact(DENSE, COMPRESSED, LABELS, ["zero", "one"], test=paired_t_test)
    np.testing.assert_allclose(paired["t"], [2.0, -2.0])
    np.testing.assert_allclose(paired["p_value"], [p, p])
    assert table["class"].tolist() == ["zero", "one"]
    np.testing.assert_allclose(table["t"], [2.0, -2.0])
    np.testing.assert_allclose(table["p_value"], [p, p])
    np.testing.assert_allclose(table["p_adjusted"], [2 * p, 2 * p])
    np.testing.assert_allclose(table["normalized_change"], [2 / 3, -2 / 3])
    np.testing.assert_allclose(table["compressed_recall"], [1.0, 0.25])
    assert table["support"].tolist() == [2, 2]
    assert not table["significant"].any()


def test_significance_with_a_clear_effect():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    dense = probs_from_preds(np.tile(labels, (10, 1)))
    # Compressed members lose about half of class 1, with member-to-member variation.
    preds = np.tile(labels, (10, 1))
    for m in range(10):
        lost = rng.choice(np.arange(200, 400), size=90 + m, replace=False)
        preds[m, lost] = 0
    table = class_impact(dense, probs_from_preds(preds), labels)
    assert table.loc[1, "significant"] and table.loc[1, "normalized_change"] < -0.3
    # Class 0 keeps recall 1 while accuracy drops: relatively it gains, and significantly.
    assert table.loc[0, "normalized_change"] > 0


def test_impact_table_stacks_levels_and_needs_two_members():
    table = impact_table(DENSE, np.stack([COMPRESSED, DENSE]), LABELS, ["a", "b"])
    assert table["level"].tolist() == ["a", "a", "b", "b"]
    np.testing.assert_allclose(table[table.level == "b"]["p_value"], [1.0, 1.0])
    with pytest.raises(ValueError, match="at least 2 members"):
        class_impact(DENSE[:1], COMPRESSED, LABELS)


def test_summary_says_when_nothing_is_impacted_and_which_tests_were_not_run():
    import pandas as pd

    from curate.frontends.summary import impact_summary

    impact = pd.DataFrame({"level": ["prune50"] * 3, "class": ["0", "1", "2"], "normalized_change": [-0.001, 0.0, -0.2],
                           "dense_recall": [1.0, 0.9, 0.85], "compressed_recall": [1.0, 0.9, 0.6],
                           "p_value": [np.nan, 1.0, 0.3], "p_adjusted": [np.nan, 1.0, 0.6],
                           "significant": [False, False, False]})
    text = impact_summary(impact, 0.05)
    assert text.startswith("No class significantly impacted")
    assert "1 of 3 class tests not run" in text

    impact.loc[2, ["p_value", "p_adjusted", "significant"]] = [0.001, 0.003, True]
    text = impact_summary(impact, 0.05)
    assert text.startswith("Classes significantly impacted") and "-20.0%" in text and "prune50" in text
    assert "0.850 -> 0.600" in text  # the recalls the relative change is of
    assert "1 of 3 class tests not run" in text
