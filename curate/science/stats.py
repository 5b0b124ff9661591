"""Per-class impact of compression, as pure functions over numpy arrays.

Following Hooker et al. (2019, section 2.1), a class is *impacted* by compression when its recall
changes by more (or less) than the model's overall accuracy does. For every member ``m`` we
normalise each class's recall by that member's top-1 accuracy, ``recall[m, c] / accuracy[m]``, so
that a class which merely follows the overall accuracy loss has the same normalised recall before
and after compression. The dense and compressed populations give two samples of this quantity per
class; Welch's two-sided t-test (unequal variances) compares them, as in the paper, and the p-values
are corrected for the number of classes tested with Holm's step-down procedure (it controls the
family-wise error rate like Bonferroni and is never less powerful).

curate's compressed member ``m`` is a copy of dense member ``m``, so the two samples are paired; a
paired test was measured and not adopted (docs/benchmarks.md, "Tried: a paired test"; its code is in
``scripts/bench_pies.py``, which passes it as ``test``). Welch's test is valid for paired samples
whose correlation is not negative, only conservative.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps


def member_recalls(probs: np.ndarray, labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Recall of every class for every member.

    Args:
        probs: ``(n_members, n_samples, n_classes)`` predicted probabilities.
        labels: ``(n_samples,)`` integer labels the recall is measured against.

    Returns:
        ``(n_members, n_classes)``; NaN for a class with no sample.
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    n_classes = probs.shape[-1] if n_classes is None else n_classes
    if labels.shape != (probs.shape[1],):
        raise ValueError(f"labels has shape {labels.shape}, expected ({probs.shape[1]},) to match probs.")
    preds = probs.argmax(axis=-1)
    correct = preds == labels[None, :]
    support = np.bincount(labels, minlength=n_classes).astype(float)
    hits = np.stack([np.bincount(labels, weights=row, minlength=n_classes) for row in correct.astype(float)])
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / support[None, :]


def member_accuracies(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Top-1 accuracy of every member, ``(n_members,)``."""
    probs = np.asarray(probs)
    return (probs.argmax(axis=-1) == np.asarray(labels)[None, :]).mean(axis=1)


def holm_correction(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries are ignored and stay NaN)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def welch_t_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided Welch t-test of ``b`` against ``a``; (t, p).

    Returns ``(0.0, 1.0)`` when both samples are constant and equal (nothing changed) and
    ``(NaN, NaN)``, not tested, when both are constant but differ: with no spread in either sample
    there is no variance to weigh the difference against. That happens with few members whose
    values tie, e.g. two members that both get a class fully right and have the same accuracy, so
    that a 0.1% shift of the normalised recall would otherwise read as p = 0.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.var() == 0 and b.var() == 0:
        if a.mean() == b.mean():
            return 0.0, 1.0
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        # One constant sample (e.g. every dense member perfect on a class) is legitimate here.
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        result = sps.ttest_ind(b, a, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def class_impact(
    dense_probs: np.ndarray,
    compressed_probs: np.ndarray,
    labels: np.ndarray,
    class_names: list[str] | None = None,
    alpha: float = 0.05,
    *,
    test=welch_t_test,
) -> pd.DataFrame:
    """Per-class impact of one compression level.

    Args:
        dense_probs: ``(n_members, n_samples, n_classes)``.
        compressed_probs: ``(n_members', n_samples, n_classes)`` at one level.
        labels: ``(n_samples,)`` labels recall is measured against.
        class_names: names for the ``class`` column; indices when omitted.
        alpha: family-wise significance level after Holm correction.
        test: ``(dense_values, compressed_values) -> (t, p)`` per class; :func:`welch_t_test`, the
            paper's test (see the module docstring).

    Returns:
        One row per class with the columns ``class``, ``support``, ``dense_recall``,
        ``compressed_recall`` (population means), ``dense_norm_recall``,
        ``compressed_norm_recall`` (means of recall / member accuracy),
        ``normalized_change`` (relative change of the normalised recall:
        ``compressed_norm_recall / dense_norm_recall - 1``; negative means the class lost more than
        the model did overall), ``t``, ``p_value``, ``p_adjusted`` and ``significant``.
    """
    dense_probs = np.asarray(dense_probs)
    compressed_probs = np.asarray(compressed_probs)
    labels = np.asarray(labels)
    n_classes = dense_probs.shape[-1]
    if len(dense_probs) < 2 or len(compressed_probs) < 2:
        raise ValueError(
            "class_impact needs at least 2 members per population for a t-test, got "
            f"{len(dense_probs)} dense and {len(compressed_probs)} compressed; train more members."
        )
    names = list(class_names) if class_names is not None else [str(c) for c in range(n_classes)]
    dense_recall = member_recalls(dense_probs, labels, n_classes)
    comp_recall = member_recalls(compressed_probs, labels, n_classes)
    dense_norm = dense_recall / member_accuracies(dense_probs, labels)[:, None]
    comp_norm = comp_recall / member_accuracies(compressed_probs, labels)[:, None]
    support = np.bincount(labels, minlength=n_classes)

    t_values, p_values = np.full(n_classes, np.nan), np.full(n_classes, np.nan)
    for c in range(n_classes):
        if support[c] > 0:
            t_values[c], p_values[c] = test(dense_norm[:, c], comp_norm[:, c])
    p_adjusted = holm_correction(p_values)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = comp_norm.mean(axis=0) / dense_norm.mean(axis=0) - 1.0
    return pd.DataFrame(
        {
            "class": names,
            "support": support,
            "dense_recall": dense_recall.mean(axis=0),
            "compressed_recall": comp_recall.mean(axis=0),
            "dense_norm_recall": dense_norm.mean(axis=0),
            "compressed_norm_recall": comp_norm.mean(axis=0),
            "normalized_change": change,
            "t": t_values,
            "p_value": p_values,
            "p_adjusted": p_adjusted,
            "significant": p_adjusted < alpha,
        }
    )


def impact_table(
    dense_probs: np.ndarray,
    compressed_probs: np.ndarray,
    labels: np.ndarray,
    level_names: list[str],
    class_names: list[str] | None = None,
    alpha: float = 0.05,
    *,
    test=welch_t_test,
) -> pd.DataFrame:
    """:func:`class_impact` for every level, stacked with a leading ``level`` column."""
    if len(level_names) != len(compressed_probs):
        raise ValueError(f"{len(level_names)} level names for {len(compressed_probs)} levels.")
    frames = []
    for name, level in zip(level_names, compressed_probs):
        frame = class_impact(dense_probs, level, labels, class_names, alpha, test=test)
        frame.insert(0, "level", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
