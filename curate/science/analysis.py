"""Tables built from the populations' probabilities: per sample, per level, per class. Pure pandas/numpy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from curate.science.flags import (Categories, categorise, in_sample_mean, memorisation, population_mean, probe_label_noise,
                          reasons, votes_for)
from curate.science.pies import NO_LEVEL, PieScores, pie_overlap, score_pies
from curate.science.probes import CORRUPTIONS, TWO_CLASS
from curate.science.stats import impact_table, member_accuracies

FINE_TUNED_KINDS = ("prune", "filter")
"""Level kinds made by fine-tuning a copy of the dense network, as the control level is."""
CONTROL = "control"
"""Name of the control level (fine-tuned like a pruning level, at sparsity 0) in the tables."""


def level_table(
    dense_probs: np.ndarray,
    compressed_probs: np.ndarray,
    labels: np.ndarray,
    level_names: list[str],
    sparsities: list[float],
    scores: PieScores,
    impact: pd.DataFrame,
    measured_sparsity: np.ndarray | None = None,
    kinds: list[str] | None = None,
    bits: list[int] | None = None,
    control_probs: np.ndarray | None = None,
    footprint: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row for the dense population, one for the control level (with ``control_probs``) and one per
    level: accuracy, PIEs, impacted classes, and with a control, each level's PIEs beyond it.

    Accuracy is each member's out-of-sample top-1 accuracy against the given labels, mean and
    standard deviation over members. ``kinds`` (``prune``/``quantize``/``filter``/``distill``) and
    ``bits`` (per weight) describe the levels; ``compression`` is the weight-memory ratio to dense float32,
    counting only the kept weights of a pruned network (index overhead ignored) and the bits of a
    quantized one. ``footprint`` ``(L+1, 3)`` (dense first; :mod:`curate.population.footprint`) adds
    ``weights``, ``memory_kb``, ``mmacs`` (millions of multiply-accumulates per image) and ``latency_ms``
    (CPU, per image) and ``speedup`` (dense latency over the level's), and ``compression`` then counts
    the weights each copy really has.
    """
    kinds = kinds or ["prune"] * len(level_names)
    bits = bits or [32] * len(level_names)
    n = len(labels)
    dense_acc = member_accuracies(dense_probs, labels)

    def costs(i: int, level_bits: int) -> dict:
        if footprint is None:
            return {}
        weights, macs, latency = (float(v) for v in footprint[i])
        return {"weights": weights, "memory_kb": weights * level_bits / 8 / 1024, "mmacs": macs / 1e6,
                "latency_ms": latency, "speedup": float(footprint[0, 2]) / max(latency, 1e-12),
                "compression": float(footprint[0, 0]) * 32 / max(weights * level_bits, 1e-9)}

    rows = [{
        "level": "dense", "kind": "dense", "sparsity": 0.0, "measured_sparsity": 0.0, "bits": 32,
        "compression": 1.0,
        "accuracy": dense_acc.mean(), "accuracy_std": dense_acc.std(ddof=1) if len(dense_acc) > 1 else 0.0,
        "pies": 0, "pie_fraction": 0.0, "classes_impacted": 0, **costs(0, 32),
    }]
    control = scores.control
    if control is not None and control_probs is not None:
        control_acc = member_accuracies(control_probs, labels)
        rows.append({
            "level": CONTROL, "kind": CONTROL, "sparsity": 0.0, "measured_sparsity": 0.0, "bits": 32,
            "compression": 1.0, "accuracy": control_acc.mean(),
            "accuracy_std": control_acc.std(ddof=1) if len(control_acc) > 1 else 0.0,
            "pies": int(control.is_pie.sum()), "pie_fraction": control.fraction,
            "classes_impacted": int(impact[impact["level"] == CONTROL]["significant"].sum())
            if CONTROL in set(impact["level"]) else 0,
        })
    for i, name in enumerate(level_names):
        acc = member_accuracies(compressed_probs[i], labels)
        level_impact = impact[impact["level"] == name]
        rows.append({
            "level": name,
            "kind": kinds[i],
            "sparsity": sparsities[i],
            "bits": bits[i],
            "compression": 32.0 / bits[i] / max(1e-9, 1.0 - sparsities[i]),
            "measured_sparsity": float(measured_sparsity[i]) if measured_sparsity is not None else np.nan,
            "accuracy": acc.mean(),
            "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
            "pies": int(scores.is_pie[i].sum()),
            "pie_fraction": scores.is_pie[i].sum() / n,
            "classes_impacted": int(level_impact["significant"].sum()),
            **costs(i + 1, bits[i]),
            # Quantized copies are not fine-tuned and students are trained afresh, so fine-tuning's noise
            # floor is not theirs to clear.
            **({} if control is None or kinds[i] not in FINE_TUNED_KINDS else {
                "pies_beyond_control": int(control.beyond[i].sum()),
                "excess_pie_fraction": float(control.excess[i]),
                "excess_low": float(control.low[i]), "excess_high": float(control.high[i]),
                "classes_impacted_beyond_control": int(level_impact["significant_beyond_control"].sum())
                if "significant_beyond_control" in level_impact else 0}),
        })
    return pd.DataFrame(rows)


def flag_samples(dense_probs, compressed_probs, labels, classes, level_names, scores: PieScores,
                 probe_probs: np.ndarray, probe_kinds: np.ndarray, *, severity: pd.DataFrame | None = None,
                 in_sample_probs: np.ndarray | None = None, label_probe_labels: np.ndarray | None = None,
                 forgotten_probs: np.ndarray | None = None, region_probs: np.ndarray | None = None,
                 probe_region_probs: np.ndarray | None = None, probe_labels: np.ndarray | None = None):
    """Categories (:func:`curate.science.flags.categorise`) and one reason per sample. Returns ``(categories, reasons)``.

    ``probe_probs`` ``(1 + pruning levels, networks, P, C)`` are the dense and pruned networks' predictions
    on the probe suite;
    ``in_sample_probs`` ``(slots, N, C)`` the in-sample predictions, one slot per network that
    trained on the image, as trained (for the label-noise score); ``forgotten_probs`` the same after
    second-split forgetting (:func:`curate.population.train.forget_on_second_split`), read instead where the
    networks have memorised wrong labels (:func:`curate.science.flags.memorisation`; the check is recorded in
    ``categories.thresholds``); ``label_probe_labels`` ``(slots, N)`` the wrong labels of random-label
    probes per in-sample slot (-1: none), which set the label-noise count
    (:func:`curate.science.flags.probe_label_noise`); ``region_probs`` ``(members, R, N, C)`` the held-out
    predictions of each image half and ``probe_region_probs`` ``(networks, R, P2, C)`` the two-class probes'
    (for ``multi_object``, :mod:`curate.science.regions`), scored as labelled ``probe_labels`` (one of each
    composite's classes).
    """
    probs = population_mean(dense_probs, compressed_probs)
    in_sample = probed = check = as_trained = None
    probed_run = label_probe_labels is not None and (np.asarray(label_probe_labels) >= 0).any()
    keep = np.asarray(label_probe_labels) < 0 if probed_run else None
    if in_sample_probs is not None:
        # The suggestion reads the view as trained even where the score reads the forgotten one.
        as_trained = in_sample_mean(in_sample_probs, keep, probs)
    if in_sample_probs is not None and forgotten_probs is not None:
        check = memorisation(labels, probs, in_sample_probs, keep)
    read_forgotten = check is not None and check.memorised
    score_views = forgotten_probs if read_forgotten else in_sample_probs
    if probed_run and score_views is not None:
        probed = probe_label_noise(labels, probs, score_views, label_probe_labels)
        in_sample = probed.in_sample
    elif score_views is not None:
        # Without probes nothing is left out, so the view as trained is already its plain mean.
        in_sample = population_mean(forgotten_probs) if read_forgotten else as_trained
    probe_mean = np.asarray(probe_probs, dtype=np.float64).mean(axis=(0, 1))
    kinds = np.asarray(probe_kinds)
    categories = categorise(
        labels, probs, scores.is_pie_any, scores.pie_score,
        probe_mean[kinds == TWO_CLASS], probe_mean[np.isin(kinds, CORRUPTIONS)],
        pixel_severity=None if severity is None else severity.to_numpy(),
        check_names=tuple(severity.columns) if severity is not None else (),
        in_sample_probs=in_sample,
        label_noise_count=None if probed is None else probed.count,
        label_wrong_probability=None if probed is None else probed.p_wrong,
        suggestion_in_sample=as_trained,
        region_probs=None if region_probs is None else np.asarray(region_probs, dtype=np.float64).mean(axis=0),
        two_class_probe_regions=None if probe_region_probs is None
        else np.asarray(probe_region_probs, dtype=np.float64).mean(axis=0),
        two_class_probe_labels=None if probe_labels is None else np.asarray(probe_labels)[kinds == TWO_CLASS],
    )
    # What the label-noise score read, beside the categories' own thresholds, for the run record.
    categories = dataclasses.replace(categories, thresholds={
        **categories.thresholds,
        **({"label_noise_probes": probed.n_probes, "label_noise_probe_c": probed.c} if probed is not None else {}),
        **({"in_sample_fitted": check.fitted, "labels_right": check.right,
            "in_sample_after_forgetting": int(check.memorised)} if check is not None else {}),
    })
    networks = np.concatenate([dense_probs[None], compressed_probs])
    votes = votes_for(networks, categories.suggested)
    text = reasons(categories, labels, probs, classes, votes, networks.shape[0] * networks.shape[1],
                   scores.dense_modal, scores.compressed_modal, scores.is_pie, level_names)
    return categories, text


def sample_table(
    scores: PieScores,
    labels: np.ndarray,
    classes: list[str],
    level_names: list[str],
    filepaths: list[str],
    splits: list[str | None],
    *,
    sample_ids: list[str] | None = None,
    categories: Categories | None = None,
    flag_reasons: list[str] | None = None,
) -> pd.DataFrame:
    """One row per image with its label, dense and compressed predictions, PIE scores and flags."""
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
    if scores.control is not None:
        table["control_pie"] = scores.control.is_pie
        table["pie_beyond_control"] = scores.control.beyond.any(axis=0)
    if categories is not None:
        table["category"] = categories.category
        table["label_noise"] = categories.label_noise
        table["corruption"] = categories.corruption
        table["suggested_label"] = names[categories.suggested]
        table["suggested_confidence"] = categories.suggested_confidence
        for name, values in categories.scores.items():
            table[f"{name}_score"] = values
        table["corruption_check"] = categories.corruption_check
        if categories.evidence is not None:
            # The confident-learning ranking (held-out and in-sample p(label)), kept beside P(label wrong).
            table["label_noise_rank_score"] = categories.evidence.noise.score
        if categories.label_wrong_probability is not None:
            table["label_wrong_probability"] = categories.label_wrong_probability
        table["reason"] = flag_reasons
    if sample_ids is not None:
        table = {"sample_id": sample_ids, **table}
    for i, name in enumerate(level_names):
        table[f"{name}_label"] = names[scores.compressed_modal[i]]
        table[f"{name}_confidence"] = scores.compressed_confidence[i]
        table[f"{name}_pie"] = scores.is_pie[i]
        table[f"{name}_flip_share"] = scores.flip_share[i]
        table[f"{name}_probability_drop"] = scores.probability_drop[i]
    return pd.DataFrame(table)


def analyse(dense_probs, compressed_probs, labels, classes, level_names, sparsities, *, alpha=0.05,
            measured_sparsity=None, kinds=None, bits=None, control_probs=None, footprint=None):
    """Scores and the per-level and per-class tables for one run. Returns ``(scores, levels, impact)``.

    The pruning levels (``kinds`` ``prune``, which come first) form the ladder of
    :func:`curate.science.pies.score_pies`. With ``control_probs`` (the control level,
    :func:`curate.science.pies.compare_with_control`), the impact table also has a ``control`` level
    and, for every level, its per-class impact against the control rather than the dense population
    (``normalized_change_beyond_control``, ``significant_beyond_control``).
    """
    ladder = None if kinds is None else sum(k == "prune" for k in kinds) or None
    scores = score_pies(dense_probs, compressed_probs, ladder, control_probs)
    impact = impact_table(dense_probs, compressed_probs, labels, level_names, classes, alpha)
    if control_probs is not None:
        beyond = impact_table(control_probs, compressed_probs, labels, level_names, classes, alpha)
        impact["normalized_change_beyond_control"] = beyond["normalized_change"].to_numpy()
        impact["significant_beyond_control"] = beyond["significant"].to_numpy()
        own = impact_table(dense_probs, np.asarray(control_probs)[None], labels, [CONTROL], classes, alpha)
        impact = pd.concat([own, impact], ignore_index=True)
    levels = level_table(dense_probs, compressed_probs, labels, level_names, sparsities, scores, impact,
                         measured_sparsity, kinds, bits, control_probs, footprint)
    return scores, levels, impact


def overlap_table(scores: PieScores, level_names: list[str], kinds: list[str] | None = None) -> pd.DataFrame:
    """Every pair of levels: how many PIEs they share, their Jaccard overlap and its chance value
    (:func:`curate.science.pies.pie_overlap`), and ``ratio``, the overlap over chance."""
    kinds = kinds or ["prune"] * len(level_names)
    shared, jaccard, chance = pie_overlap(scores.is_pie)
    rows = [{"level_a": level_names[i], "kind_a": kinds[i], "level_b": level_names[j], "kind_b": kinds[j],
             "pies_a": int(shared[i, i]), "pies_b": int(shared[j, j]), "shared": int(shared[i, j]),
             "jaccard": float(jaccard[i, j]), "chance": float(chance[i, j]),
             "ratio": float(jaccard[i, j] / chance[i, j]) if chance[i, j] > 0 else np.nan}
            for i in range(len(level_names)) for j in range(i + 1, len(level_names))]
    return pd.DataFrame(rows, columns=["level_a", "kind_a", "level_b", "kind_b", "pies_a", "pies_b", "shared",
                                       "jaccard", "chance", "ratio"])


def matched_overlaps(levels: pd.DataFrame, overlap: pd.DataFrame) -> pd.DataFrame:
    """For every level of another kind, the unstructured pruning level nearest to it in weight memory
    (:func:`curate.science.findings.comparable_pairs`) and the overlap of their PIE sets: do compressions
    of about the same size forget the same images?"""
    from curate.science.findings import comparable_pairs

    columns = ["level", "matched", "memory_kb", "matched_memory_kb", "shared", "jaccard", "chance", "ratio"]
    if "memory_kb" not in levels:
        return pd.DataFrame(columns=columns)
    memory = dict(zip(levels["level"], levels["memory_kb"]))
    rows = []
    for level, matched in comparable_pairs(levels):
        pair = overlap[((overlap["level_a"] == level) & (overlap["level_b"] == matched))
                       | ((overlap["level_b"] == level) & (overlap["level_a"] == matched))].iloc[0]
        rows.append({"level": level, "matched": matched, "memory_kb": memory[level], "matched_memory_kb": memory[matched],
                     "shared": int(pair["shared"]), "jaccard": float(pair["jaccard"]), "chance": float(pair["chance"]),
                     "ratio": float(pair["ratio"])})
    return pd.DataFrame(rows, columns=columns)


def population_warnings(labels: np.ndarray, dense_modal: np.ndarray, label_noise: np.ndarray,
                        classes: list[str], alpha: float = 0.01) -> list[str]:
    """Plain warnings when the population is too weak, or the labels too wrong, for the flags to mean much.

    Two checks, neither a tuned constant:

    - the dense population's held-out modal prediction does not beat always answering the most
      common label (one-sided binomial test at ``alpha``): it has learned nothing to compare with;
    - for some class, at least half the images labelled with it are flagged as label noise.
      Confident learning, like every method that learns from the labels it checks, assumes most
      images of each label are right; past half, it can no longer tell which side is wrong.

    Returns one sentence per failed check (empty when the run looks sound).
    """
    labels, dense_modal = np.asarray(labels), np.asarray(dense_modal)
    label_noise = np.asarray(label_noise, dtype=bool)
    n, n_classes = len(labels), len(classes)
    warnings = []
    counts = np.bincount(labels, minlength=n_classes)
    majority = counts.max() / max(n, 1)
    hits = int((dense_modal == labels).sum())
    if n and binomtest(hits, n, majority, alternative="greater").pvalue >= alpha:
        warnings.append(
            f"The dense population is right on {100 * hits / n:.1f}% of held-out images, no better than always "
            f"answering the most common label ({100 * majority:.1f}%): it has not learned these classes, so its "
            f"PIEs and flags are noise. Train longer (--epochs), give it more images, or pick a model suited to "
            f"the image size (--model).")
    flagged = np.bincount(labels[label_noise], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(counts > 0, flagged / np.maximum(counts, 1), 0.0)
    bad = [f"{classes[c]} ({100 * share[c]:.0f}%)" for c in np.flatnonzero(share >= 0.5)]
    if bad:
        warnings.append(
            f"Half or more of the images labelled {', '.join(bad)} are flagged as label noise. curate (like "
            f"confident learning) assumes most labels of every class are right; here either the population is "
            f"too weak (held-out accuracy {100 * hits / max(n, 1):.1f}%) or those labels are mostly wrong. Check a "
            f"few by eye before acting on these flags.")
    return warnings
