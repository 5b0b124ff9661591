"""Tables built from the populations' probabilities: per sample, per level, per class. Pure pandas/numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from curate.pies import NO_LEVEL, PieScores, score_pies
from curate.stats import impact_table, member_accuracies


def level_table(
    dense_probs: np.ndarray,
    compressed_probs: np.ndarray,
    labels: np.ndarray,
    level_names: list[str],
    sparsities: list[float],
    scores: PieScores,
    impact: pd.DataFrame,
    measured_sparsity: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row for the dense population and one per level: accuracy, PIEs, impacted classes.

    Accuracy is each member's out-of-sample top-1 accuracy against the given labels, mean and
    standard deviation over members.
    """
    n = len(labels)
    dense_acc = member_accuracies(dense_probs, labels)
    rows = [{
        "level": "dense", "sparsity": 0.0, "measured_sparsity": 0.0,
        "accuracy": dense_acc.mean(), "accuracy_std": dense_acc.std(ddof=1) if len(dense_acc) > 1 else 0.0,
        "pies": 0, "pie_fraction": 0.0, "classes_impacted": 0,
    }]
    for i, name in enumerate(level_names):
        acc = member_accuracies(compressed_probs[i], labels)
        level_impact = impact[impact["level"] == name]
        rows.append({
            "level": name,
            "sparsity": sparsities[i],
            "measured_sparsity": float(measured_sparsity[i]) if measured_sparsity is not None else np.nan,
            "accuracy": acc.mean(),
            "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
            "pies": int(scores.is_pie[i].sum()),
            "pie_fraction": scores.is_pie[i].sum() / n,
            "classes_impacted": int(level_impact["significant"].sum()),
        })
    return pd.DataFrame(rows)


def sample_table(
    scores: PieScores,
    labels: np.ndarray,
    classes: list[str],
    level_names: list[str],
    filepaths: list[str],
    splits: list[str | None],
    sample_ids: list[str] | None = None,
) -> pd.DataFrame:
    """One row per image with its label, dense and compressed predictions and PIE scores."""
    names = np.asarray(classes, dtype=object)
    lowest = np.array([level_names[i] if i != NO_LEVEL else None for i in scores.lowest_level], dtype=object)
    table = {
        "filepath": filepaths,
        "split": splits,
        "label": names[labels],
        "dense_label": names[scores.dense_modal],
        "dense_confidence": scores.dense_confidence,
        "pie": scores.is_pie_any,
        "pie_score": scores.pie_score,
        "lowest_pie_level": lowest,
    }
    if sample_ids is not None:
        table = {"sample_id": sample_ids, **table}
    for i, name in enumerate(level_names):
        table[f"{name}_label"] = names[scores.compressed_modal[i]]
        table[f"{name}_confidence"] = scores.compressed_confidence[i]
        table[f"{name}_pie"] = scores.is_pie[i]
        table[f"{name}_flip_share"] = scores.flip_share[i]
        table[f"{name}_probability_drop"] = scores.probability_drop[i]
    return pd.DataFrame(table)


def analyse(dense_probs, compressed_probs, labels, classes, level_names, sparsities, alpha=0.05,
            measured_sparsity=None):
    """Scores and the per-level and per-class tables for one run. Returns ``(scores, levels, impact)``."""
    scores = score_pies(dense_probs, compressed_probs)
    impact = impact_table(dense_probs, compressed_probs, labels, level_names, classes, alpha)
    levels = level_table(dense_probs, compressed_probs, labels, level_names, sparsities, scores, impact,
                         measured_sparsity)
    return scores, levels, impact
