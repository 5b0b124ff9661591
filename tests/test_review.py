"""Review conventions, export plans, splits and weights on hand-made tables (no database)."""

import numpy as np
import pandas as pd
import pytest

from curate.science.review import (ExportPolicy, ReviewError, apply_decision, label_audit_review, plan_export,
                                   review_state, sample_weights, status_table, stratified_splits)

CLASSES = ["cat", "dog", "ship"]


def table(rows):
    columns = ["sample_id", "filepath", "label", "run_label", "split", "flag", "suggested", "tags"]
    return pd.DataFrame(rows, columns=columns)


ROWS = [
    # id, path, label now, label at run time, split, flag, suggestion, tags
    ("a", "/a.png", "cat", "cat", "train", "label_noise", "dog", ["confirmed"]),          # drop: confirmed noise
    ("b", "/b.png", "cat", "cat", "train", "label_noise", "dog", ["relabel:suggested"]),  # relabel -> dog
    ("c", "/c.png", "dog", "cat", "train", "atypical", None, []),                         # edited in the App
    ("d", "/d.png", "cat", "cat", "train", "multi_object", None, ["confirmed"]),           # keep: not a drop category
    ("e", "/e.png", "cat", "cat", "test", "label_noise", "dog", []),                       # unreviewed, test split
    ("f", "/f.png", "cat", "cat", "train", "label_noise", "dog", []),                      # unreviewed, train split
    ("g", "/g.png", "ship", "ship", "train", "", None, ["remove"]),                        # drop: remove
    ("h", "/h.png", "ship", "ship", None, "corruption", None, ["rejected"]),               # keep
    ("i", "/i.png", "ship", "ship", "train", "", None, []),                                # nothing to do
]


def test_default_policy_by_hand():
    plan = plan_export(table(ROWS), CLASSES).set_index("sample_id")
    assert plan["action"].to_dict() == {"a": "drop", "b": "relabel", "c": "relabel", "d": "keep", "e": "keep",
                                        "f": "keep", "g": "drop", "h": "keep", "i": "keep"}
    assert plan.loc["b", "new_label"] == "dog" and plan.loc["c", "new_label"] == "dog"
    assert plan.loc["a", "reason"] == "confirmed label_noise"
    assert plan.loc["c", "reason"] == "relabelled cat -> dog by a reviewer"
    assert plan.loc["g", "reason"] == "tagged remove by a reviewer"
    assert plan["state"].to_dict() == {"a": "confirmed", "b": "relabelled", "c": "relabelled", "d": "confirmed",
                                       "e": "unreviewed", "f": "unreviewed", "g": "remove", "h": "rejected",
                                       "i": "unreviewed"}


def test_unreviewed_flags_are_dropped_only_outside_evaluation_splits():
    policy = ExportPolicy(drop_unreviewed=("label_noise",))
    plan = plan_export(table(ROWS), CLASSES, policy).set_index("sample_id")
    assert plan.loc["f", "action"] == "drop" and plan.loc["f", "reason"] == "unreviewed label_noise flag"
    assert plan.loc["e", "action"] == "keep"
    assert plan.loc["e", "reason"] == "unreviewed label_noise kept: test is an evaluation split"
    both = plan_export(table(ROWS), CLASSES, ExportPolicy(drop_unreviewed=("label_noise",),
                                                          drop_unreviewed_in_eval=True)).set_index("sample_id")
    assert both.loc["e", "action"] == "drop"


def test_policy_switches():
    plan = plan_export(table(ROWS), CLASSES, ExportPolicy(drop_confirmed=(), drop_removed=False,
                                                          apply_relabels=False)).set_index("sample_id")
    assert set(plan["action"]) == {"keep"}
    assert plan.loc["b", "new_label"] == "cat" and plan.loc["b", "reason"] == "relabel not applied (policy)"


@pytest.mark.parametrize("tags, message", [
    (["relabel:horse"], r"relabel:horse, but 'horse' is not a class; classes are \['cat', 'dog', 'ship'\]"),
    (["relabel:dog", "relabel:ship"], r"contradictory relabel tags \['dog', 'ship'\]"),
])
def test_bad_relabel_tags_name_the_sample(tags, message):
    rows = [("z", "/z.png", "cat", "cat", "train", "label_noise", "dog", tags)]
    with pytest.raises(ReviewError, match=r"Sample z \(/z.png\).*" + message):
        plan_export(table(rows), CLASSES)


@pytest.mark.parametrize("missing", [None, np.nan])  # pandas' string dtype stores a missing value as NaN
def test_relabel_suggested_without_a_suggestion_is_an_error(missing):
    rows = [("z", "/z.png", "cat", "cat", "train", "atypical", missing, ["relabel:suggested"])]
    with pytest.raises(ReviewError, match="curate suggested no label"):
        plan_export(table(rows), CLASSES)


@pytest.mark.parametrize("decision, label, expected", [
    ("confirm", None, ["train", "pie", "mine", "confirmed"]),
    ("reject", None, ["train", "pie", "mine", "rejected"]),
    ("remove", None, ["train", "pie", "mine", "remove"]),
    ("relabel_suggested", None, ["train", "pie", "mine", "relabel:suggested"]),
    ("relabel", "ship", ["train", "pie", "mine", "relabel:ship"]),
    ("clear", None, ["train", "pie", "mine"]),
])
def test_a_decision_replaces_every_earlier_review_tag(decision, label, expected):
    # A hand-tagging session left contradictory tags; the user's own tags, split and pie stay in order.
    tags = ["train", "confirmed", "pie", "rejected", "relabel:dog", "mine", "remove"]
    assert apply_decision(tags, decision, label, CLASSES) == expected


def test_decisions_give_the_state_they_name():
    for decision, state in [("confirm", "confirmed"), ("reject", "rejected"), ("remove", "remove"),
                            ("clear", "unreviewed")]:
        assert review_state(apply_decision(["rejected"], decision), relabelled=False) == state


@pytest.mark.parametrize("decision, label, message", [
    ("approve", None, r"Unknown review decision 'approve'; use one of \['confirm'"),
    ("relabel", None, "needs the right label"),
    ("relabel", "horse", r"Cannot relabel to 'horse': not a class; classes are \['cat', 'dog', 'ship'\]"),
])
def test_bad_decisions_say_what_is_wrong(decision, label, message):
    with pytest.raises(ReviewError, match=message):
        apply_decision([], decision, label, CLASSES)


def test_status_table_counts_flags_by_state():
    counts = status_table(plan_export(table(ROWS), CLASSES))
    assert counts.loc["label_noise", "confirmed"] == 1 and counts.loc["label_noise", "relabelled"] == 1
    assert counts.loc["label_noise", "unreviewed"] == 2 and counts.loc["label_noise", "total"] == 4
    assert counts.loc["(no flag)", "remove"] == 1
    assert counts["total"].sum() == len(ROWS)


def test_stratified_splits_divide_every_class():
    labels = np.array([0] * 10 + [1] * 20 + [2] * 3)
    splits = stratified_splits(labels, (0.8, 0.1, 0.1), seed=0)
    for cls, expected in ((0, (8, 1, 1)), (1, (16, 2, 2))):
        got = tuple(int((splits[labels == cls] == s).sum()) for s in ("train", "val", "test"))
        assert got == expected
    assert (splits[labels == 2] == "train").sum() >= 2  # 2.4 train, 0.3, 0.3 -> largest remainders
    assert list(stratified_splits(labels, (0.8, 0.1, 0.1), seed=0)) == list(splits)  # seeded
    with pytest.raises(ValueError, match="summing to 1"):
        stratified_splits(labels, (0.8, 0.1), seed=0)


def test_weights_upweight_pies_and_zero_dropped_samples():
    plan = plan_export(table(ROWS), CLASSES)
    is_pie = np.array([True, True, True, True, True, True, False, True, False])
    pie_score = np.array([0.5, 1.0, 0.25, 0.5, 0.5, 0.5, 0.0, 0.75, 0.0])
    w = sample_weights(plan, pie_score, is_pie, "factor", 3.0)
    assert w["weight"].tolist() == [0.0, 3.0, 3.0, 3.0, 3.0, 3.0, 0.0, 3.0, 1.0]
    assert w.loc[0, "reason"] == "confirmed label_noise" and w.loc[1, "reason"] == "PIE, score 1.00"
    assert w.loc[1, "label"] == "dog"  # relabelled
    s = sample_weights(plan, pie_score, is_pie, "score", 3.0)
    # 1 + 2 x score for PIEs
    np.testing.assert_allclose(s["weight"], [0.0, 3.0, 1.5, 2.0, 2.0, 2.0, 0.0, 2.5, 1.0])
    assert s["weight"].sum() == pytest.approx(14.0)
    with pytest.raises(ValueError, match="factor must be at least 1"):
        sample_weights(plan, pie_score, is_pie, "factor", 0.5)


def test_weighted_sampler_draws_by_weight():
    import torch

    from curate import weighted_sampler

    sampler = weighted_sampler(pd.DataFrame({"weight": [0.0, 1.0, 3.0]}), num_samples=4000,
                               generator=torch.Generator().manual_seed(0))
    draws = np.bincount(list(sampler), minlength=3)
    assert draws[0] == 0 and 0.7 < draws[2] / 4000 < 0.8
    assert len(weighted_sampler(np.array([0.0, 1.0, 2.0]))) == 2
    with pytest.raises(ValueError, match="Every weight is zero"):
        weighted_sampler(np.zeros(3))


def test_label_audit_verdicts_count_and_a_wrong_label_leaves_the_export():
    rows = table(ROWS)
    # Audit images: a (flagged, label:wrong), h (label:right, its corruption flag rejected), i (unflagged,
    # label:wrong), d (confirmed multi_object: says nothing of its label), c (relabelled in the App: wrong),
    # g (removed: says nothing of its label).
    verdicts = {"a": ["confirmed", "label:wrong"], "h": ["rejected", "label:right"], "i": ["label:wrong"]}
    rows["tags"] = [verdicts.get(sid, tags) for sid, tags in zip(rows["sample_id"], rows["tags"])]
    rows["label_audit"] = rows["sample_id"].isin(["a", "c", "d", "g", "h", "i"])
    rows["audit_stratum"] = ["flagged", "flagged", "doubtful", "trusted", "flagged", "flagged", "trusted", "doubtful",
                             "trusted"]
    plan = plan_export(rows, CLASSES)
    by_id = plan.set_index("sample_id")
    assert by_id.loc["i", "action"] == "drop" and by_id.loc["i", "reason"] == "label wrong (label audit)"
    assert by_id.loc["i", "state"] == "unreviewed"  # the flag review is a separate question
    assert by_id.loc["d", "action"] == "keep" and by_id.loc["h", "action"] == "keep"
    estimate = label_audit_review(plan)
    # Decided: flagged a (wrong); doubtful c (wrong), h (right); trusted i (wrong). d and g say nothing.
    assert estimate.reviewed == (1, 2, 1) and estimate.wrong == (1, 1, 1)
    assert estimate.sizes == (4, 2, 3)
    assert estimate.wrong_labels.estimate == pytest.approx(4 * 1 + 2 * 0.5 + 3 * 1)
    assert label_audit_review(plan.drop(columns=["label_audit", "audit_stratum"])) is None
    # An unreviewed label-noise flag whose label the audit found right is not dropped as unreviewed noise.
    rows.loc[rows["sample_id"] == "f", "tags"] = pd.Series([["label:right"]], index=rows.index[rows["sample_id"] == "f"])
    dropping = plan_export(rows, CLASSES, ExportPolicy(drop_unreviewed=("label_noise",))).set_index("sample_id")
    assert dropping.loc["f", "action"] == "keep" and dropping.loc["f", "state"] == "unreviewed"


def test_audit_verdicts_replace_each_other_not_the_flag_review():
    tags = apply_decision(["train", "confirmed"], "label_wrong")
    assert tags == ["train", "confirmed", "label:wrong"]
    assert apply_decision(tags, "label_right") == ["train", "confirmed", "label:right"]
    assert apply_decision(tags, "reject") == ["train", "label:wrong", "rejected"]
    assert apply_decision(tags, "clear") == ["train"]
