"""The label audit (curate.science.audit): strata, the random draw, and the count it gives, on hand-made arrays."""

import numpy as np
import pytest

from curate.science.audit import (DOUBT, PER_STRATUM, STRATA, audit_columns, audit_record, audit_strata,
                                  audited_p_wrong, draw_audit, estimate_from_audit)


def test_strata_follow_the_flag_then_the_doubt():
    p = np.array([0.9, 0.6, 0.3, DOUBT, 0.05, np.nan])
    flagged = np.array([True, False, False, False, True, False])
    assert audit_strata(p, flagged).tolist() == ["flagged", "doubtful", "doubtful", "doubtful", "flagged", "trusted"]


def test_draw_takes_per_stratum_at_random_and_all_of_a_small_one():
    strata = np.array(["flagged"] * 5 + ["doubtful"] * 30 + ["trusted"] * 500, dtype=object)
    drawn = draw_audit(strata, per_stratum=20, seed=3)
    assert [(drawn & (strata == h)).sum() for h in STRATA] == [5, 20, 20]
    assert np.array_equal(drawn, draw_audit(strata, per_stratum=20, seed=3))
    assert not np.array_equal(drawn, draw_audit(strata, per_stratum=20, seed=4))
    # Not the first images of a stratum: a random sample.
    assert drawn[35:].nonzero()[0].max() > 100


def test_estimate_by_hand():
    # 10 flagged (5 reviewed, 4 wrong), 20 doubtful (4 reviewed, 1 wrong), 70 trusted (5 reviewed, none wrong).
    strata = np.array(["flagged"] * 10 + ["doubtful"] * 20 + ["trusted"] * 70, dtype=object)
    reviewed = np.zeros(100, bool)
    reviewed[[0, 1, 2, 3, 4, 10, 11, 12, 13, 30, 31, 32, 33, 34]] = True
    wrong = np.zeros(100, bool)
    wrong[[0, 1, 2, 3, 10]] = True
    estimate = estimate_from_audit(strata, reviewed, wrong)
    assert estimate.sizes == (10, 20, 70) and estimate.reviewed == (5, 4, 5) and estimate.wrong == (4, 1, 0)
    total = estimate.wrong_labels
    assert total.estimate == pytest.approx(10 * 4 / 5 + 20 * 1 / 4 + 0)  # 13
    # At least the five wrong labels seen; none seen among the trusted cannot rule out none there.
    assert 5 <= total.low <= 13 <= total.high <= 100 - 9
    assert estimate.flag_precision.estimate == pytest.approx(0.8)
    assert 0.4 < estimate.flag_precision.low < 0.8 < estimate.flag_precision.high <= 1.0
    assert estimate.flag_recall.estimate == pytest.approx(8 / 13)
    assert estimate.flag_recall.low < 8 / 13 < estimate.flag_recall.high
    # The same reviews give the same figures.
    assert estimate == estimate_from_audit(strata, reviewed, wrong)


def test_fully_reviewed_strata_are_counted_exactly():
    strata = np.array(["flagged"] * 4 + ["doubtful"] * 3 + ["trusted"] * 5, dtype=object)
    wrong = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    estimate = estimate_from_audit(strata, np.ones(12, bool), wrong)
    assert (estimate.wrong_labels.estimate, estimate.wrong_labels.low, estimate.wrong_labels.high) == (4, 4, 4)
    assert estimate.flag_precision.low == estimate.flag_precision.high == 0.75


def test_no_count_until_every_stratum_has_a_review():
    strata = np.array(["flagged"] * 4 + ["doubtful"] * 3 + ["trusted"] * 5, dtype=object)
    reviewed = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    estimate = estimate_from_audit(strata, reviewed, np.ones(12, bool))
    assert not estimate.complete and estimate.wrong_labels is None and estimate.flag_recall is None
    assert estimate.flag_precision.estimate == 1.0
    # An empty stratum needs no review.
    estimate = estimate_from_audit(strata[4:], np.array([1, 0, 0, 1, 0, 0, 0, 0], bool), np.zeros(8, bool))
    assert estimate.complete and estimate.flag_precision is None and estimate.wrong_labels.low == 0


def test_intervals_cover_the_truth_where_the_model_that_chose_the_strata_is_wrong():
    # A run whose P(label wrong) is far too low (as on CIFAR-10N `worse`): the flags hold few of the
    # 3,000 wrong labels and the trusted images many. The audit's 90% interval still covers the truth
    # about 90% of the time; the model's own count (here 600) never does.
    rng = np.random.default_rng(0)
    n = 10_000
    wrong = rng.random(n) < 0.3
    p_wrong = np.clip(np.where(wrong, rng.beta(2, 6, n), rng.beta(1, 12, n)), 0, 1)
    flagged = p_wrong >= 0.5
    strata = audit_strata(p_wrong, flagged)
    covered = [estimate_from_audit(strata, draw_audit(strata, seed=s), wrong, draws=4000, seed=s)
               .wrong_labels for s in range(120)]
    coverage = np.mean([c.low <= wrong.sum() <= c.high for c in covered])
    assert coverage >= 0.85, coverage
    assert p_wrong.sum() < 0.8 * wrong.sum()


def test_audited_probabilities_by_hand():
    p = np.array([0.9, 0.7, 0.6, 0.8,  0.3, 0.2, 0.1,  0.01, 0.02, 0.03])
    strata = audit_strata(p, p >= 0.5)
    reviewed = np.array([1, 0, 0, 0,  0, 0, 0,  1, 1, 0], bool)
    wrong = np.array([0, 1, 1, 1,  1, 1, 1,  1, 0, 1], bool)
    audited = audited_p_wrong(p, strata, reviewed, wrong)
    # Reviewed images take their verdict; wrong is read nowhere else.
    assert audited[[0, 7, 8]].tolist() == [0.0, 1.0, 0.0]
    # Flagged: 0 of 1 reviewed wrong, the model's mean 0.75 worth one review: (0 + 0.75) / 2 for the three others.
    assert audited[1:4].mean() == pytest.approx(0.375)
    # Their order stays, and one shift of the log-odds moved them all.
    assert audited[2] < audited[1] < audited[3]
    logit = lambda q: np.log(q / (1 - q))  # noqa: E731
    assert np.ptp(logit(audited[1:4]) - logit(p[1:4])) == pytest.approx(0, abs=1e-6)
    # Doubtful: nothing reviewed, the model's probabilities stay. Trusted: 1 of 2 wrong, prior 0.02: 1.02 / 3.
    assert audited[4:7].tolist() == p[4:7].tolist()
    assert audited[9] == pytest.approx(1.02 / 3)
    # Nothing reviewed: the run's probabilities.
    assert np.array_equal(audited_p_wrong(p, strata, np.zeros(10, bool), wrong), p)


def test_audited_probabilities_stay_small_where_every_reviewed_label_is_right():
    # Clean labels: the model's trusted mean is 0.002 and 20 reviews find nothing; a flat prior would
    # put the rest near 0.024 (0.5 / 21), the model-centred one keeps them near 0.0001.
    p = np.full(1000, 0.002)
    strata = audit_strata(p, np.zeros(1000, bool))
    drawn = draw_audit(strata, seed=0)
    audited = audited_p_wrong(p, strata, drawn, np.zeros(1000, bool))
    assert audited[~drawn].max() == pytest.approx(0.002 / 21)


def test_audited_probabilities_count_what_the_model_missed():
    # A run whose probabilities expect 43% of its 3,000 wrong labels. After a 60-image audit they sum to
    # a count that is right on average over audits, and always inside the audit's own interval: as
    # precise as the audit, no more (20 reviews of 5,400 trusted images leave a wide spread).
    rng = np.random.default_rng(1)
    n = 10_000
    wrong = rng.random(n) < 0.3
    p_wrong = np.clip(np.where(wrong, rng.beta(2, 6, n), rng.beta(1, 12, n)), 0, 1)
    strata = audit_strata(p_wrong, p_wrong >= 0.5)
    errors = []
    for seed in range(40):
        drawn = draw_audit(strata, seed=seed)
        total = audited_p_wrong(p_wrong, strata, drawn, wrong).sum()
        interval = estimate_from_audit(strata, drawn, wrong, draws=4000, seed=seed).wrong_labels
        assert interval.low <= total <= interval.high
        errors.append(total / wrong.sum() - 1)
    assert abs(np.mean(errors)) < 0.05, errors
    assert p_wrong.sum() < 0.5 * wrong.sum()


def test_columns_and_record():
    p = np.r_[np.full(30, 0.8), np.full(30, 0.2), np.full(100, 0.01)]
    columns = audit_columns(p, p >= 0.5, seed=1)
    assert list(columns) == ["audit_stratum", "label_audit"]
    assert int(columns["label_audit"].sum()) == 3 * PER_STRATUM
    record = audit_record(columns)
    assert record["strata"] == {"flagged": {"images": 30, "audit": 20}, "doubtful": {"images": 30, "audit": 20},
                                "trusted": {"images": 100, "audit": 20}}


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="one value per image"):
        audit_strata(np.zeros(3), np.zeros(4, bool))
    with pytest.raises(ValueError, match="Unknown audit strata"):
        draw_audit(np.array(["flagged", "maybe"], dtype=object))
    with pytest.raises(ValueError, match="level must lie"):
        estimate_from_audit(np.array(["flagged"], dtype=object), np.ones(1, bool), np.ones(1, bool), level=90)
    with pytest.raises(ValueError, match="one value per image"):
        audited_p_wrong(np.zeros(3), np.array(["trusted"] * 2, dtype=object), np.zeros(3, bool), np.zeros(3, bool))
    with pytest.raises(ValueError, match="prior_weight must be positive"):
        audited_p_wrong(np.zeros(1), np.array(["trusted"], dtype=object), np.ones(1, bool), np.ones(1, bool),
                        prior_weight=0)


def test_status_sentence_in_plain_words():
    from curate.frontends.summary import label_audit_sentence

    strata = np.array(["flagged"] * 10 + ["doubtful"] * 20 + ["trusted"] * 70, dtype=object)
    reviewed, wrong = np.zeros(100, bool), np.zeros(100, bool)
    assert "none reviewed yet. Tag the 6 images" in label_audit_sentence(
        estimate_from_audit(strata, reviewed, wrong), 3.0, 6)
    reviewed[[0, 1, 10]] = True
    wrong[[0]] = True
    partial = label_audit_sentence(estimate_from_audit(strata, reviewed, wrong), 3.0, 6)
    assert "3 reviewed, 1 of them wrongly labelled; review at least one trusted image" in partial
    assert "flags are 50% right" in partial and "3 audit images left" in partial
    reviewed[30] = True
    done = label_audit_sentence(estimate_from_audit(strata, reviewed, wrong), 3.0, 4)
    assert "The dataset holds about 5 wrong labels (90% interval " in done and "networks' count was 3" in done
    assert "catch 100% of the wrong labels" in done and "left to review" not in done


def test_the_summary_says_when_two_counts_from_the_same_predictions_disagree():
    from curate.frontends.summary import count_disagreement_sentence, counts_disagree

    # CIFAR-10N worse (the networks learned the noise) and clean labels with a weak population
    # (confident learning counts confusion): both disagree; trained digits: they agree.
    assert counts_disagree(1373, 4125) and counts_disagree(37, 2607)
    assert not counts_disagree(96, 84) and not counts_disagree(0, 2) and not counts_disagree(0.2, 0)
    sentence = count_disagreement_sentence(1373.0, 4125)
    assert "counts 4,125 wrong labels against the noise model's 1,373" in sentence and "label audit" in sentence


def test_status_reads_the_flags_with_the_audited_probabilities():
    import pandas as pd

    from curate.frontends.summary import status_lines
    from curate.science.review import audited_label_probabilities

    # Four flags the run thought 30% wrong each; the reviewer found both audited flags wrong.
    plan = pd.DataFrame({
        "flag": ["label_noise"] * 4 + [""] * 4, "p_label_wrong": [0.3] * 4 + [0.01] * 4,
        "audit_stratum": ["flagged"] * 4 + ["trusted"] * 4, "label_audit": [True, True, False, False, True, False, False, False],
        "tags": [["label:wrong"], ["label:wrong"], [], [], ["label:right"], [], [], []],
        "state": ["unreviewed"] * 8, "action": ["keep"] * 8, "reason": [""] * 8})
    audited = audited_label_probabilities(plan)
    assert audited[:2].tolist() == [1.0, 1.0] and audited[2:4].mean() == pytest.approx((2 + 0.3) / 3)

    from curate.api import ReviewStatus

    counts = pd.DataFrame({"unreviewed": [4, 4], "total": [4, 4]}, index=["label_noise", "(no flag)"])

    def status_text(calibration=None):
        return "\n".join(line for line, _ in status_lines(ReviewStatus("d", "curate", plan, counts, [], calibration)))

    text = status_text()
    assert "the 4 flags are expected to hold about 4 wrong labels by the label audit (1 by the networks alone)" in text
    # Three audit images are decided: the App's audited probabilities are missing, stale, then current.
    assert "To write what the audit says into the App" in text and "curate calibrate d." in text
    assert ("calibrated with 2 audit reviews (1 wrong); 3 are decided now (2 wrong): curate calibrate d again"
            in status_text({"reviewed": 2, "wrong": 1}))
    assert "curate calibrate" not in status_text({"reviewed": 3, "wrong": 2})
    assert "curate calibrate d again" in status_text({"reviewed": 3, "wrong": 1})  # a verdict changed since
    # Without a decided audit image, the run's own probabilities.
    plan["tags"] = [[]] * 8
    text = status_text()
    assert "expected to hold about 1 wrong labels." in text and "curate calibrate" not in text


def test_audited_reason_quotes_both_values_and_replaces_an_earlier_calibration():
    from curate.science.flags import audited_reason

    reason = "7 of 8 models say 3 (mean p 0.84); labelled 5 (mean p 0.05); P(label wrong) ~ 0.62"
    once = audited_reason(reason, 0.91, 0.62)
    assert once == ("7 of 8 models say 3 (mean p 0.84); labelled 5 (mean p 0.05); "
                    "P(label wrong) ~ 0.91 by the label audit (0.62 by the networks alone)")
    assert audited_reason(once, 0.88, 0.62) == once.replace("0.91", "0.88")
    assert audited_reason("low contrast image; models' top class 9", 0.5, 0.1) == "low contrast image; models' top class 9"
    assert audited_reason(reason, float("nan"), 0.62) == reason
    # An image the audit itself reviewed says so; a later calibration (the reviewer changed their mind) rewrites it.
    found = audited_reason(once, 0.0, 0.62, verdict=False)
    assert found == ("7 of 8 models say 3 (mean p 0.84); labelled 5 (mean p 0.05); the label audit found the label "
                     "right (P(label wrong) 0.62 by the networks alone)")
    assert audited_reason(found, 1.0, 0.62, verdict=True) == found.replace("label right", "label wrong")
    assert audited_reason(found, 0.7, 0.62) == once.replace("0.91", "0.70")
