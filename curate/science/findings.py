"""The paper's analyses (Hooker et al. 2019) on a run's arrays and tables. Pure numpy/pandas.

- :func:`pie_accuracy_table`: per level, how many images are PIEs and how the dense population does
  on them, on the rest, and on the dataset without them (the paper's ImageNet result: removing PIEs
  lifts dense top-1 from 76.75% to 81.20%).
- :func:`most_forgotten_classes`: the per-class normalised recall change, most forgotten first.
- :func:`compression_comparison`: every compression kind, level by level, on equal terms
  (accuracy, PIE fraction, classes significantly impacted, weight-memory compression).
- :func:`robustness_table`, :func:`robustness_summary`: accuracy under corruptions
  (:mod:`curate.population.robustness` makes them), dense against every compressed level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pie_accuracy_table(dense_modal: np.ndarray, compressed_modal: np.ndarray, labels: np.ndarray,
                       is_pie: np.ndarray, level_names: list[str]) -> pd.DataFrame:
    """Dense and compressed accuracy of the population's modal label on PIEs and on the rest.

    Args:
        dense_modal: ``(N,)`` modal label of the dense population.
        compressed_modal: ``(L, N)`` modal label of each compressed population.
        labels: ``(N,)`` the labels accuracy is measured against.
        is_pie: ``(L, N)`` PIE mask per level.
        level_names: ``L`` names.

    Returns:
        One row per level: ``pies``, ``pie_fraction``, ``dense_accuracy`` (all images),
        ``dense_accuracy_pies``, ``dense_accuracy_without_pies`` (the non-PIEs, i.e. the dataset with
        that level's PIEs removed), ``lift_without_pies`` (difference to all images), and the
        compressed population's ``compressed_accuracy`` and ``compressed_accuracy_pies``. A level with
        no PIE has NaN for accuracies on PIEs.
    """
    dense_modal, labels = np.asarray(dense_modal), np.asarray(labels)
    compressed_modal, is_pie = np.atleast_2d(compressed_modal), np.atleast_2d(np.asarray(is_pie, dtype=bool))
    if is_pie.shape != compressed_modal.shape or is_pie.shape[1] != len(labels) or len(level_names) != len(is_pie):
        raise ValueError(f"Shapes disagree: is_pie {is_pie.shape}, compressed_modal {compressed_modal.shape}, "
                         f"{len(labels)} labels, {len(level_names)} level names.")
    dense_right = dense_modal == labels
    rows = []
    for name, pie, modal in zip(level_names, is_pie, compressed_modal):
        compressed_right = modal == labels
        without = dense_right[~pie].mean() if (~pie).any() else np.nan
        rows.append({
            "level": name,
            "pies": int(pie.sum()),
            "pie_fraction": float(pie.mean()),
            "dense_accuracy": float(dense_right.mean()),
            "dense_accuracy_pies": float(dense_right[pie].mean()) if pie.any() else np.nan,
            "dense_accuracy_without_pies": float(without),
            "lift_without_pies": float(without - dense_right.mean()),
            "compressed_accuracy": float(compressed_right.mean()),
            "compressed_accuracy_pies": float(compressed_right[pie].mean()) if pie.any() else np.nan,
        })
    return pd.DataFrame(rows)


def most_forgotten_classes(impact: pd.DataFrame, level: str | None = None, top: int | None = None) -> pd.DataFrame:
    """Rows of ``impact`` (from :func:`curate.science.stats.impact_table`) ordered most forgotten first.

    Significant classes come first, then the rest, each by ascending ``normalized_change`` (the
    class lost more than the model did overall). ``level`` restricts to one level.
    """
    rows = impact if level is None else impact[impact["level"] == level]
    ordered = rows.assign(_not_significant=~rows["significant"].astype(bool)).sort_values(
        ["_not_significant", "normalized_change"], kind="stable").drop(columns="_not_significant")
    return ordered.head(top) if top is not None else ordered


def compression_comparison(levels: pd.DataFrame, impact: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every compression level side by side (pruning, quantization, filter pruning, distillation), ordered
    by weight-memory compression, with its weights' memory, MACs and CPU latency when the run measured them.

    ``accuracy_change`` is the level's mean held-out accuracy minus the dense population's. With the
    per-class ``impact`` table, ``class_disturbance`` is the mean over classes of the absolute
    normalised recall change: how unevenly a level treats the classes, a continuous companion of
    ``classes_impacted`` that does not depend on how many members the t-test has.
    """
    dense = levels[levels["level"] == "dense"]
    if dense.empty:
        raise ValueError("levels has no 'dense' row; pass the run's levels table (levels.csv).")
    base = float(dense["accuracy"].iloc[0])
    table = levels[levels["level"] != "dense"].copy()
    if "kind" not in table:
        table["kind"] = "prune"
    if "compression" not in table:
        table["compression"] = 1.0 / (1.0 - table["sparsity"])
    table["accuracy_change"] = table["accuracy"] - base
    columns = ["level", "kind", "compression", *[c for c in ("memory_kb", "mmacs", "latency_ms", "speedup")
                                                  if c in table], "accuracy", "accuracy_change", "pies",
               "pie_fraction", "classes_impacted"]
    if impact is not None:
        disturbance = impact.assign(_abs=impact["normalized_change"].abs()).groupby("level")["_abs"].mean()
        table["class_disturbance"] = table["level"].map(disturbance)
        columns.append("class_disturbance")
    return table.sort_values(["compression", "kind"], kind="stable")[columns].reset_index(drop=True)


def comparable_pairs(comparison: pd.DataFrame) -> list[tuple[str, str]]:
    """Each level of another compression kind paired with the (unstructured) pruning level nearest to it in
    weight-memory compression (log scale)."""
    prune = comparison[comparison["kind"] == "prune"]
    if prune.empty:
        return []
    pairs = []
    for row in comparison[~comparison["kind"].isin(["prune", "dense", "control"])].itertuples():
        distance = (np.log(prune["compression"]) - np.log(row.compression)).abs()
        pairs.append((row.level, prune["level"].iloc[int(np.argmin(distance.to_numpy()))]))
    return pairs


def robustness_table(correct: np.ndarray, clean_correct: np.ndarray, level_names: list[str],
                     corruptions, severities) -> pd.DataFrame:
    """Accuracy of the dense and each compressed population per corruption and severity.

    Args:
        correct: ``(L+1, networks, n_corruptions, n_severities)`` accuracy of each network on its own
            held-out sample of corrupted images; row 0 of the first axis is the dense network, then
            each compression level in ``level_names`` order.
        clean_correct: ``(L+1, networks)`` accuracy of the same networks on the same images uncorrupted.

    Returns:
        One row per level, corruption and severity (severity 0 = clean images), with the mean and
        standard deviation over networks, the accuracy relative to clean (``retained``), and the
        difference to the dense population at the same corruption and severity (``vs_dense``).
    """
    correct, clean_correct = np.asarray(correct, dtype=float), np.asarray(clean_correct, dtype=float)
    names = ["dense", *level_names]
    if correct.shape[0] != len(names) or correct.shape[2:] != (len(corruptions), len(severities)):
        raise ValueError(f"correct has shape {correct.shape}; expected ({len(names)}, networks, "
                         f"{len(corruptions)}, {len(severities)}).")
    rows = []
    for li, level in enumerate(names):
        clean = clean_correct[li]
        for ci, corruption in enumerate(corruptions):
            rows.append({"level": level, "corruption": corruption, "severity": 0, "accuracy": clean.mean(),
                         "accuracy_std": clean.std(ddof=1) if len(clean) > 1 else 0.0})
            for si, severity in enumerate(severities):
                acc = correct[li, :, ci, si]
                rows.append({"level": level, "corruption": corruption, "severity": int(severity),
                             "accuracy": acc.mean(), "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else 0.0})
    table = pd.DataFrame(rows)
    clean_by_level = dict(zip(names, clean_correct.mean(axis=1)))
    table["retained"] = table["accuracy"] / table["level"].map(clean_by_level).clip(lower=1e-12)
    dense = table[table["level"] == "dense"].set_index(["corruption", "severity"])["accuracy"]
    table["vs_dense"] = table["accuracy"] - [dense[(c, s)] for c, s in zip(table["corruption"], table["severity"])]
    return table


def robustness_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over severities 1..5 per level and corruption (ImageNet-C's per-corruption average), wide.

    ``mean`` averages the corruptions; ``retained`` is ``mean / clean``, the share of its clean accuracy a
    level keeps under corruption (the paper compares this across compression levels).
    """
    corrupted = table[table["severity"] > 0]
    summary = corrupted.pivot_table(index="level", columns="corruption", values="accuracy", aggfunc="mean", sort=False)
    summary["mean"] = summary.mean(axis=1)
    clean = table[table["severity"] == 0].groupby("level", sort=False)["accuracy"].first()
    summary.insert(0, "clean", clean.reindex(summary.index))
    summary["retained"] = summary["mean"] / summary["clean"].clip(lower=1e-12)
    return summary
