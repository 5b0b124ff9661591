"""Review conventions and what an export does with them. Pure pandas/numpy.

A reviewer works in the FiftyOne App with its own tagging UI (and in-App label editing):

==================  ==================================================================
sample tag          meaning
==================  ==================================================================
``confirmed``       the flag is right (the label is wrong, the image is corrupt, ...)
``rejected``        the flag is wrong: the sample is fine as it is
``remove``          leave the sample out of exports, whatever its flag
``relabel:<class>`` the right label is ``<class>`` (``relabel:suggested``: curate's suggestion)
``label:wrong``     label audit: the label is wrong, whatever the sample's flag
``label:right``     label audit: the label is right
==================  ==================================================================

The two ``label:*`` tags answer the label audit's one question (:mod:`curate.science.audit`) and
are kept apart from the flag review, since an audit image may carry any flag: confirming that an image
is atypical says nothing about its label.

Editing the label itself in the App counts as a relabel too: curate compares the label field
with the label the run saw. The App plugin (``curate plugin install``) sets these tags for the
selected samples with :func:`apply_decision`, one state per sample.

:func:`plan_export` turns the review table (one row per sample) and an :class:`ExportPolicy` into
one action per sample, ``keep``, ``drop`` or ``relabel``, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CONFIRMED, REJECTED, REMOVE = "confirmed", "rejected", "remove"
LABEL_WRONG, LABEL_RIGHT = "label:wrong", "label:right"
AUDIT_TAGS = (LABEL_WRONG, LABEL_RIGHT)
RELABEL_PREFIX = "relabel:"
SUGGESTED = "suggested"
REVIEW_TAGS = (CONFIRMED, REJECTED, REMOVE)
STATES = ("unreviewed", CONFIRMED, REJECTED, "relabelled", REMOVE)
DECISIONS = ("confirm", "reject", "remove", "relabel_suggested", "relabel", "label_wrong", "label_right", "clear")
EVAL_SPLITS = ("val", "validation", "test")
SPLIT_TAGS = ("train", *EVAL_SPLITS)
REQUIRED = ("sample_id", "filepath", "label", "run_label", "split", "flag", "suggested", "tags")


class ReviewError(ValueError):
    """A review tag that cannot be applied (unknown class, contradictory tags)."""


@dataclass(frozen=True)
class ExportPolicy:
    """What an export does with reviewed and unreviewed flags.

    Attributes:
        drop_confirmed: flag categories whose ``confirmed`` samples are left out (unless relabelled).
        drop_removed: leave out samples tagged ``remove``.
        apply_relabels: apply ``relabel:<class>`` tags and in-App label edits.
        drop_unreviewed: flag categories whose unreviewed samples are left out, but never in an
            evaluation split (``val``, ``validation``, ``test``) unless ``drop_unreviewed_in_eval``:
            removing flagged test images without review makes the benchmark lie.
        keep_one_duplicate: of each group of duplicates, only one image stays in training (the others
            are left out unless a reviewer tagged them ``rejected``); evaluation splits are never thinned.
            Off by default: a group is a claim worth a look (the ``duplicates`` view), not yet a decision.
    """

    drop_confirmed: tuple[str, ...] = ("label_noise", "corruption")
    drop_removed: bool = True
    apply_relabels: bool = True
    drop_unreviewed: tuple[str, ...] = ()
    drop_unreviewed_in_eval: bool = False
    keep_one_duplicate: bool = False


def split_of(tags: list[str]) -> str | None:
    """The split named by a sample's tags (``train``, ``val``, ``validation``, ``test``), if any."""
    found = [t for t in tags if t in SPLIT_TAGS]
    return found[0] if found else None


def relabel_target(tags: list[str], label: str, run_label: str, suggested: str | None, classes: list[str],
                   where: str) -> str | None:
    """The label a reviewer asked for, or ``None``. ``where`` names the sample in errors."""
    wanted = {t[len(RELABEL_PREFIX):] for t in tags if t.startswith(RELABEL_PREFIX)}
    if SUGGESTED in wanted:
        if pd.isna(suggested) or not suggested:  # None, or NaN where pandas holds a missing one
            raise ReviewError(f"{where} is tagged relabel:suggested but curate suggested no label for it; "
                              f"tag it relabel:<class> with one of {classes}.")
        wanted = (wanted - {SUGGESTED}) | {suggested}
    if len(wanted) > 1:
        raise ReviewError(f"{where} has contradictory relabel tags {sorted(wanted)}; keep one.")
    if wanted:
        target = wanted.pop()
        if target not in classes:
            raise ReviewError(f"{where} is tagged relabel:{target}, but {target!r} is not a class; "
                              f"classes are {classes}.")
        return target
    if label != run_label:
        return label  # edited in the App
    return None


def apply_decision(tags: list[str], decision: str, label: str | None = None,
                   classes: list[str] | None = None) -> list[str]:
    """A sample's tags after a reviewer's decision, one of :data:`DECISIONS`.

    The decision replaces every earlier review tag (``confirmed``, ``rejected``, ``remove``,
    ``relabel:*``), so a sample never carries contradictory ones; other tags (splits, ``pie:*``,
    the user's own) are kept in order. ``relabel`` needs ``label`` (checked against ``classes``
    when given); ``relabel_suggested`` tags ``relabel:suggested``, resolved to curate's suggestion
    at export; ``clear`` only removes review tags. ``label_wrong`` and ``label_right`` (the label audit's
    verdicts) replace only each other, and ``clear`` removes them too.
    """
    if decision not in DECISIONS:
        raise ReviewError(f"Unknown review decision {decision!r}; use one of {list(DECISIONS)}.")
    if decision == "relabel":
        if not label:
            raise ReviewError("The relabel decision needs the right label; choose one of the classes.")
        if classes is not None and label not in classes:
            raise ReviewError(f"Cannot relabel to {label!r}: not a class; classes are {list(classes)}.")
    if decision in ("label_wrong", "label_right"):
        return [t for t in tags if t not in AUDIT_TAGS] + [LABEL_WRONG if decision == "label_wrong" else LABEL_RIGHT]
    cleared = REVIEW_TAGS + (AUDIT_TAGS if decision == "clear" else ())
    kept = [t for t in tags if t not in cleared and not t.startswith(RELABEL_PREFIX)]
    added = {
        "confirm": CONFIRMED, "reject": REJECTED, "remove": REMOVE,
        "relabel_suggested": RELABEL_PREFIX + SUGGESTED, "relabel": f"{RELABEL_PREFIX}{label}", "clear": None,
    }[decision]
    return kept + ([added] if added else [])


def review_state(tags: list[str], relabelled: bool) -> str:
    """One of :data:`STATES`; ``remove`` wins, then a relabel, then confirm/reject."""
    if REMOVE in tags:
        return REMOVE
    if relabelled:
        return "relabelled"
    if CONFIRMED in tags and REJECTED in tags:
        return "unreviewed"  # contradictory: treated as not yet decided
    if CONFIRMED in tags:
        return CONFIRMED
    if REJECTED in tags:
        return REJECTED
    return "unreviewed"


def plan_export(table: pd.DataFrame, classes: list[str], policy: ExportPolicy = ExportPolicy()) -> pd.DataFrame:
    """One action per sample: ``keep``, ``drop`` or ``relabel``, the label it exports with, and why.

    Args:
        table: one row per sample with columns ``sample_id, filepath, label`` (in the dataset now),
            ``run_label`` (when curate ran), ``split`` (or None), ``flag`` (``label_noise``,
            ``corruption``, ``multi_object``, ``atypical`` or ``""``), ``suggested`` (or None),
            ``tags`` (list of sample tags).
        classes: the valid class names.

    Returns:
        ``table`` plus ``state``, ``action``, ``new_label`` and ``reason``.
    """
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"The review table lacks columns {missing}; expected {list(REQUIRED)}.")
    states, actions, new_labels, reasons = [], [], [], []
    for row in table.itertuples(index=False):
        tags = list(row.tags)
        where = f"Sample {row.sample_id} ({row.filepath})"
        target = relabel_target(tags, row.label, row.run_label, row.suggested, classes, where)
        state = review_state(tags, target is not None and target != row.run_label)
        flag = row.flag or ""
        in_eval = row.split in EVAL_SPLITS
        action, new_label, reason = "keep", row.label, ""
        if state == REMOVE and policy.drop_removed:
            action, reason = "drop", "tagged remove by a reviewer"
        elif state == "relabelled" and policy.apply_relabels:
            action, new_label, reason = "relabel", target, f"relabelled {row.run_label} -> {target} by a reviewer"
        elif state == CONFIRMED and flag in policy.drop_confirmed:
            action, reason = "drop", f"confirmed {flag}"
        elif LABEL_WRONG in tags and "label_noise" in policy.drop_confirmed:
            action, reason = "drop", "label wrong (label audit)"
        elif (state == "unreviewed" and flag and flag in policy.drop_unreviewed
              and not (flag == "label_noise" and LABEL_RIGHT in tags)):  # the audit said the label is right
            if in_eval and not policy.drop_unreviewed_in_eval:
                reason = f"unreviewed {flag} kept: {row.split} is an evaluation split"
            else:
                action, reason = "drop", f"unreviewed {flag} flag"
        elif (policy.keep_one_duplicate and not in_eval and state != REJECTED
              and not bool(getattr(row, "duplicate_keep", True))):
            action, reason = "drop", "duplicate: one image of its group stays in training"
        elif state == "relabelled":
            reason = "relabel not applied (policy)"
        states.append(state)
        actions.append(action)
        new_labels.append(new_label)
        reasons.append(reason)
    out = table.copy()
    out["state"], out["action"], out["new_label"], out["reason"] = states, actions, new_labels, reasons
    return out


def status_table(plan: pd.DataFrame) -> pd.DataFrame:
    """Counts of samples by flag (rows) and review state (columns), with totals."""
    flags = plan["flag"].replace("", "(no flag)")
    counts = pd.crosstab(flags, plan["state"]).reindex(columns=list(STATES), fill_value=0)
    counts["total"] = counts.sum(axis=1)
    return counts


def label_noise_review(plan: pd.DataFrame, p_wrong: np.ndarray | None = None) -> dict[str, float]:
    """The label-noise flags reviewed so far against what the run expected of them.

    ``plan`` is :func:`plan_export`'s with a ``p_label_wrong`` column. Among the samples flagged
    ``label_noise`` that a reviewer decided (confirmed, rejected or relabelled; ``remove`` says
    nothing about the label): ``expected``, the sum of their P(label wrong), against ``confirmed``,
    how many the reviewer found wrong (confirmed or relabelled). ``unreviewed_expected``: what the
    rest of the flags should still hold. ``p_wrong`` (one per plan row) replaces the run's
    probabilities, e.g. with :func:`audited_label_probabilities`.
    """
    if "p_label_wrong" not in plan:
        raise ValueError("The plan has no p_label_wrong column; it comes from curate.fiftyone.export.review_table.")
    if p_wrong is not None and len(p_wrong) != len(plan):
        raise ValueError(f"p_wrong has {len(p_wrong)} values for a plan of {len(plan)} samples.")
    is_flag = (plan["flag"] == "label_noise").to_numpy()
    flagged = plan[is_flag]
    decided = flagged["state"].isin([CONFIRMED, REJECTED, "relabelled"])
    wrong = flagged["state"].isin([CONFIRMED, "relabelled"])
    p = pd.Series(np.asarray(p_wrong, dtype=float)[is_flag] if p_wrong is not None
                  else flagged["p_label_wrong"].astype(float).to_numpy(), index=flagged.index)
    return {"flags": int(len(flagged)), "reviewed": int(decided.sum()),
            "expected": float(np.nansum(p[decided])), "confirmed": int((decided & wrong).sum()),
            "unreviewed": int((~decided).sum()), "unreviewed_expected": float(np.nansum(p[~decided])),
            "has_probabilities": bool(p.notna().any())}


def audit_verdicts(plan: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which label-audit images a reviewer decided, and which of those have a wrong label.

    An audit image's label is wrong when tagged ``label:wrong`` or relabelled, right when tagged
    ``label:right``; other tags (a flag's ``confirmed``, ``remove``) say nothing about it.
    """
    drawn = plan["label_audit"].astype(bool).to_numpy()
    said_wrong = np.array([LABEL_WRONG in tags for tags in plan["tags"]], dtype=bool)
    said_right = np.array([LABEL_RIGHT in tags for tags in plan["tags"]], dtype=bool)
    wrong = said_wrong | (plan["state"] == "relabelled").to_numpy()
    return drawn & (wrong | said_right), wrong


def _has_audit(plan: pd.DataFrame) -> bool:
    return "label_audit" in plan and bool(plan["label_audit"].astype(bool).any())


def label_audit_review(plan: pd.DataFrame, *, level: float = 0.9):
    """The dataset's wrong labels, and the label-noise flags' precision and recall, from the label-audit
    images reviewed so far (:func:`curate.science.audit.estimate_from_audit`); ``None`` for runs without an audit.

    ``plan`` is :func:`plan_export`'s with ``audit_stratum`` and ``label_audit`` columns.
    """
    from curate.science.audit import estimate_from_audit

    if not _has_audit(plan):
        return None
    decided, wrong = audit_verdicts(plan)
    return estimate_from_audit(plan["audit_stratum"].to_numpy(dtype=object), decided, wrong, level=level)


def audited_label_probabilities(plan: pd.DataFrame) -> np.ndarray | None:
    """Every sample's P(label wrong) calibrated by the label audit reviewed so far
    (:func:`curate.science.audit.audited_p_wrong`); ``None`` for runs without an audit or without
    probabilities, and the run's own probabilities while no audit image is decided."""
    from curate.science.audit import audited_p_wrong

    if not _has_audit(plan) or "p_label_wrong" not in plan:
        return None
    p_wrong = plan["p_label_wrong"].astype(float).to_numpy()
    if not np.isfinite(p_wrong).any():
        return None
    decided, wrong = audit_verdicts(plan)
    return audited_p_wrong(p_wrong, plan["audit_stratum"].to_numpy(dtype=object), decided, wrong)


def stratified_splits(labels: np.ndarray, fractions: tuple[float, ...], seed: int,
                      names: tuple[str, ...] = ("train", "val", "test")) -> np.ndarray:
    """Seeded stratified assignment of each sample to a split, class by class.

    ``fractions`` (summing to 1) are split among each class's samples by largest remainder, so
    every class is divided as evenly as integer counts allow.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) > len(names) or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"Split fractions must be {len(names)} or fewer non-negative numbers summing to 1, "
                         f"e.g. 0.8,0.1,0.1; got {fractions}.")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=object)
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        exact = np.array(fractions) * len(idx)
        counts = np.floor(exact).astype(int)
        counts[np.argsort(-(exact - counts), kind="stable")[: len(idx) - counts.sum()]] += 1
        start = 0
        for name, count in zip(names, counts):
            out[idx[start:start + count]] = name
            start += count
    return out


def sample_weights(plan: pd.DataFrame, pie_score: np.ndarray, is_pie: np.ndarray, scheme: str = "factor",
                   factor: float = 2.0) -> pd.DataFrame:
    """Per-sample training weights from an export plan: PIEs up, dropped samples to zero.

    Schemes: ``factor``: every PIE weighs ``factor``; ``score``: ``1 + (factor - 1) * pie_score``
    (a PIE at every level and for every member weighs ``factor``). Samples the plan drops
    (confirmed noise, removed) weigh 0. Returns ``filepath, label, weight, reason``.
    """
    if scheme not in ("factor", "score"):
        raise ValueError(f"Unknown weighting scheme {scheme!r}; use 'factor' or 'score'.")
    if factor < 1:
        raise ValueError(f"factor must be at least 1 (PIEs are upweighted), got {factor}.")
    is_pie = np.asarray(is_pie, dtype=bool)
    score = np.clip(np.asarray(pie_score, dtype=np.float64), 0, 1)
    weight = np.ones(len(plan))
    up = factor if scheme == "factor" else 1 + (factor - 1) * score
    weight = np.where(is_pie, up, weight)
    reasons = np.where(is_pie, np.char.add("PIE, score ", np.char.mod("%.2f", score)), "")
    dropped = (plan["action"] == "drop").to_numpy()
    weight[dropped] = 0.0
    reasons = np.where(dropped, plan["reason"].to_numpy(dtype=str), reasons)
    return pd.DataFrame({"filepath": plan["filepath"].to_numpy(), "label": plan["new_label"].to_numpy(),
                         "weight": weight, "reason": reasons})
