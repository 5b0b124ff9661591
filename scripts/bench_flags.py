#!/usr/bin/env python
"""Benchmark: how well curate's label-noise flags find real human label errors, against the anchors.

On a stratified, seeded subset of ../shared/data/cifar10n, the population trains on the human
labels of one CIFAR-10N set (``aggre`` ~9% wrong, ``worse`` ~40% wrong); truth is "noisy label !=
clean label". Every tool ranks and flags the same images from the same training budget:

- curate: its label-noise score and flagged set (plus an ablation of its signals);
- cleanlab 2.x: ``get_label_quality_scores`` (ranking) and ``find_label_issues`` (flagged set) on the
  dense population's averaged out-of-sample probabilities;
- FiftyOne Brain: ``compute_mistakenness`` on the same averaged predictions (with logits);
- AUM (Pleiss et al. 2020): area under the margin, recorded while the same dense networks train;
  flagged when negative (the assigned label loses on average).

    python scripts/bench_flags.py --labels aggre worse --out out/bench_flags.json

Prints AUROC, AUPRC, precision at k (k = true number of errors), precision / recall / F1 of each
flagged set and wall time; writes everything as JSON. ``--population-only`` trains and stops (the
population is cached in the run directory, so later runs only score). Runs at full scale on a GPU
with ``--n 50000 --batch-size 256 --device cuda`` (docs/benchmarks.md, "On a GPU").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


from bench_pies import cifar10n_subset, require_cifar10n, require_cleanlab, write_report  # noqa: E402
from curate.science.flags import highest, in_sample_mean, in_sample_views  # noqa: E402
from curate.population.pipeline import CurateConfig, run_curate  # noqa: E402
from curate.data.sources import default_cache_dir  # noqa: E402
from curate.population.train import TrainSettings  # noqa: E402


def noisy_subset(n: int, seed: int, column: str):
    """The clean-label subset with its labels replaced by CIFAR-10N's ``column``; also the truth."""
    images, table = cifar10n_subset(n, seed)
    index = {c: i for i, c in enumerate(images.classes)}
    images.labels = np.array([index[c] for c in table[column]])
    images.description = f"cifar10n subset n={len(table)} seed={seed} labels={column}"
    clean = np.array([index[c] for c in table["clean"]])
    return images, clean


def population_config(args) -> CurateConfig:
    return CurateConfig(
        model=args.model, members=args.members, folds=args.folds, image_size=32, seed=args.seed,
        device=args.device, quantizations=(), robustness_images=0,  # the flags use dense and pruned networks only
        label_probes=args.label_probes, sparsities=tuple(args.sparsities),
        train=TrainSettings(epochs=args.epochs, finetune_epochs=args.finetune_epochs, batch_size=args.batch_size,
                            hflip=True),
    )


def f1_of_each_top_k(score: np.ndarray, is_error: np.ndarray) -> np.ndarray:
    """F1 of flagging the top k of ``score``, for k = 1 .. n: ``2 TP(k) / (k + number of errors)``.

    ``is_error`` may be 0/1 truth, or each image's probability of being an error, which gives the
    plug-in estimate of the expected F1 (Jansche 2007; Lipton et al. 2014).
    """
    is_error = np.asarray(is_error, dtype=float)
    hits = np.cumsum(is_error[np.argsort(-score, kind="stable")])
    return 2 * hits / (np.arange(1, len(score) + 1) + is_error.sum())


def ranking_metrics(is_error: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC (average precision) and precision at k = number of errors; higher score = more suspect.

    Also the oracle: the best F1 any top-k of the ranking reaches, and that k. It reads the truth, so
    no tool can choose it; it bounds what any flag count could give this ranking.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    k = int(is_error.sum())
    f1_at = f1_of_each_top_k(score, is_error)
    return {"auroc": float(roc_auc_score(is_error, score)), "auprc": float(average_precision_score(is_error, score)),
            "precision_at_k": float(f1_at[k - 1]),  # flagging exactly k: precision = recall = F1
            "oracle_f1": float(f1_at.max()), "oracle_flagged": int(f1_at.argmax()) + 1}


def set_metrics(is_error: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    flagged = np.asarray(flagged, dtype=bool)
    tp = int((flagged & is_error).sum())
    precision = tp / max(1, int(flagged.sum()))
    recall = tp / max(1, int(is_error.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"flagged": int(flagged.sum()), "precision": precision, "recall": recall, "f1": f1}


def rank01(values: np.ndarray) -> np.ndarray:
    """Percentile rank in [0, 1] (ties averaged): puts signals of different units on one scale."""
    from scipy.stats import rankdata

    return (rankdata(values) - 1) / max(1, len(values) - 1)


def brain_mistakenness(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> np.ndarray:
    """FiftyOne Brain's compute_mistakenness on these predictions (logits = log probabilities)."""
    import fiftyone.brain as fob

    from curate.fiftyone.db import import_fiftyone

    fo = import_fiftyone()

    dataset = fo.Dataset()
    logits = np.log(np.clip(probs, 1e-12, 1.0))
    dataset.add_samples([
        fo.Sample(filepath=f"/bench/{i}.png", gt=fo.Classification(label=classes[y]),
                  pred=fo.Classification(label=classes[int(p.argmax())], confidence=float(p.max()),
                                         logits=logit.tolist()))
        for i, (y, p, logit) in enumerate(zip(labels, probs, logits))
    ], progress=False)
    fob.compute_mistakenness(dataset, "pred", label_field="gt", use_logits=True, progress=False)
    values = np.array(dataset.values("mistakenness"), dtype=float)
    dataset.delete()
    return values


def calibrated_count(labels: np.ndarray, probs: np.ndarray) -> int:
    """Confident learning's error count from the calibrated joint (cleanlab's ``off_diagonal_calibrated``)."""
    from curate.science.flags import confident_joint

    joint = confident_joint(labels, probs, calibrate=True)
    return int(round(joint.sum() - np.trace(joint)))


def vote_share_against(population, labels: np.ndarray) -> np.ndarray:
    """Share of every network, held-out and in-sample, dense and compressed, whose top class is not the label."""
    stacks = [population.dense, population.dense_in,
              population.compressed.reshape(-1, *population.compressed.shape[2:]),
              population.compressed_in.reshape(-1, *population.compressed_in.shape[2:])]
    tops = np.concatenate([s.argmax(axis=-1) for s in stacks])
    return (tops != labels[None]).mean(axis=0)


def noise_transitions(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``(C, C)`` noise transitions ``T[given, true]`` = T(given | true), estimated from the calibrated
    confident joint of ``probs`` (each column sums to 1)."""
    from curate.science.flags import confident_joint

    joint = confident_joint(labels, probs, calibrate=True)
    return joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-12)


def true_class_posterior(labels: np.ndarray, probs: np.ndarray, transitions: np.ndarray | None = None) -> np.ndarray:
    """``(N, C)``: P(true class = j | x, given label), treating ``probs`` as p(true | x), with
    ``transitions`` T(given | true) (:func:`noise_transitions` of ``probs`` when ``None``)."""
    if transitions is None:
        transitions = noise_transitions(labels, probs)
    weighted = transitions[labels] * probs  # T(given | j) p(j | x)
    return weighted / np.maximum(weighted.sum(axis=1, keepdims=True), 1e-12)


def transition_posterior(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """P(true class = given label | x, given label): :func:`true_class_posterior` at the given label."""
    return true_class_posterior(labels, probs)[np.arange(len(labels)), labels]


def calibration(quoted: np.ndarray, right: np.ndarray) -> dict[str, float]:
    """How well a quoted probability says how often something is right: Brier score and expected
    calibration error (ten equal-width bins, weighted by their counts). Lower is better for both."""
    quoted, right = np.asarray(quoted, dtype=float), np.asarray(right, dtype=float)
    if len(quoted) == 0:
        return {"brier": float("nan"), "ece": float("nan")}
    bins = np.minimum((quoted * 10).astype(int), 9)
    ece = sum(abs(quoted[bins == b].mean() - right[bins == b].mean()) * (bins == b).sum()
              for b in np.unique(bins)) / len(quoted)
    return {"brier": float(((quoted - right) ** 2).mean()), "ece": float(ece)}


def expected_f1_count(score: np.ndarray, p_wrong: np.ndarray) -> int:
    """How many of the top of ``score`` to flag so that the F1 expected under ``p_wrong`` is highest."""
    return int(f1_of_each_top_k(score, p_wrong).argmax()) + 1


def suggestion_metrics(labels: np.ndarray, clean: np.ndarray, flagged: np.ndarray, suggested: np.ndarray,
                       confidence: np.ndarray, held_out: np.ndarray,
                       other_confidences: dict[str, np.ndarray] | None = None) -> dict:
    """How often a suggested label is the true one: on the flagged images that are truly mislabelled
    (what a reviewer accepting ``relabel:suggested`` gets right), on every mislabelled image, and
    against the held-out mean's top class (what cleanlab's Datalab and Brain show as the prediction; it
    offers no correction where it is the given label). Also the suggestion's quoted confidence, binned,
    against how often the suggestion is the true label on the flagged images, with its
    :func:`calibration` there, and that of ``other_confidences`` (name -> ``(N,)`` candidates)."""
    is_error = labels != clean
    top = held_out.argmax(axis=1)
    right_error = flagged & is_error
    right_on_flagged = (suggested == clean)[flagged]
    out = {
        "calibration_on_flagged": {
            "quoted": calibration(confidence[flagged], right_on_flagged),
            **{name: calibration(np.asarray(other)[flagged], right_on_flagged)
               for name, other in (other_confidences or {}).items()}},
        "flagged_errors": int(right_error.sum()),
        "suggested_right_on_flagged_errors": float((suggested == clean)[right_error].mean()) if right_error.any() else None,
        "top_class_right_on_flagged_errors": float((top == clean)[right_error].mean()) if right_error.any() else None,
        "suggested_right_on_all_errors": float((suggested == clean)[is_error].mean()) if is_error.any() else None,
        "top_class_right_on_all_errors": float((top == clean)[is_error].mean()) if is_error.any() else None,
        "suggested_right_on_flagged": float((suggested == clean)[flagged].mean()) if flagged.any() else None,
        "reliability": {},
    }
    edges = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0 + 1e-9]
    for lo, hi in zip(edges[:-1], edges[1:]):
        chosen = flagged & (confidence >= lo) & (confidence < hi)
        if chosen.any():
            out["reliability"][f"{lo:.1f}-{min(hi, 1.0):.1f}"] = {
                "flagged": int(chosen.sum()), "mean_quoted": float(confidence[chosen].mean()),
                "suggestion_right": float((suggested == clean)[chosen].mean())}
    return out


def suggestion_confidences(labels: np.ndarray, held_out: np.ndarray, suggested: np.ndarray) -> dict[str, np.ndarray]:
    """Candidate probabilities that the suggestion is the true label, tried against the quoted one
    (held-out p(suggestion), which ignores that the given label may be right)."""
    rows = np.arange(len(labels))
    transitions = noise_transitions(labels, held_out)
    posterior = true_class_posterior(labels, held_out, transitions)
    share = held_out[rows, suggested] / np.maximum(1 - held_out[rows, labels], 1e-12)
    # Networks trained on noisy labels predict p(given | x) = T p(true | x): undo T before the posterior.
    unmixed = np.clip(np.linalg.lstsq(transitions, held_out.T, rcond=None)[0].T, 0.0, None)
    unmixed /= np.maximum(unmixed.sum(axis=1, keepdims=True), 1e-12)
    return {"tried: posterior P(true = suggestion | x, label), transitions from the confident joint":
                posterior[rows, suggested],
            "tried: P(label wrong) from that posterior x suggestion's share of the other classes":
                (1 - posterior[rows, labels]) * share,
            "tried: that posterior of T^-1 p (the noise undone first)":
                true_class_posterior(labels, unmixed, transitions)[rows, suggested]}


def score_label_set(result, clean: np.ndarray) -> dict:
    """Every tool's ranking and flagged set for one label set, and curate's ablation."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from curate.science.flags import find_label_noise, memorisation, other_classes, population_mean

    labels = result.images.labels
    is_error = labels != clean
    population = result.population
    dense_mean = population.dense.mean(axis=0)
    pooled = population_mean(population.dense, population.compressed)
    dense_in, compressed_in, forgotten_in = population.dense_in, population.compressed_in, population.forgotten_in
    forgotten_compressed_in = population.forgotten_compressed_in
    # A probe's in-sample view is about its wrong label: leave it out, as curate does.
    keep = None if population.label_probe_labels is None else population.label_probe_labels < 0

    def in_sample(views: np.ndarray) -> np.ndarray:
        return in_sample_mean(views, keep, pooled)
    tools: dict[str, dict] = {}

    def add(name: str, score: np.ndarray, flagged: np.ndarray | None, seconds: float) -> None:
        entry = {**ranking_metrics(is_error, score), "seconds": round(seconds, 2)}
        if flagged is not None:
            entry.update(set_metrics(is_error, flagged))
        tools[name] = entry

    started = time.perf_counter()
    quality = get_label_quality_scores(labels, dense_mean)
    issues = find_label_issues(labels, dense_mean)
    add("cleanlab", 1 - quality, issues, time.perf_counter() - started)

    started = time.perf_counter()
    mistakenness = brain_mistakenness(labels, dense_mean, result.images.classes)
    # Brain flags nothing by itself; its field is a ranking. Flag where it exceeds 0.5 (wrong and confident).
    add("fiftyone_brain_mistakenness", mistakenness, mistakenness > 0.5, time.perf_counter() - started)

    # An image that was a random-label probe in every network that trained on it has no margin of its own.
    aum = np.nan_to_num(population.aum, nan=0.0)
    add("aum", -aum, aum < 0, 0.0)

    curate = result.categories
    started = time.perf_counter()
    check = memorisation(labels, pooled, in_sample_views(dense_in, compressed_in), keep)
    find_label_noise(labels, pooled, in_sample(in_sample_views(*((forgotten_in, forgotten_compressed_in)
                                                               if check.memorised else (dense_in, compressed_in)))))
    add("curate", curate.scores["label_noise"], curate.label_noise, time.perf_counter() - started)

    # Ablation: what each signal adds, ranking and flagged set (count from confident learning, then
    # the top of the ranking), from the anchors' input up to curate's.
    rows = np.arange(len(labels))
    dense_in_mean = in_sample(dense_in)
    pooled_in = in_sample(in_sample_views(dense_in, compressed_in))
    forgotten_mean = in_sample(forgotten_in)
    pooled_forgotten = in_sample(in_sample_views(forgotten_in, forgotten_compressed_in))
    ablation = {
        "dense held-out (the anchors' input)": find_label_noise(labels, dense_mean),
        "+ compressed held-out pooled": find_label_noise(labels, pooled),
        "dense held-out + dense in-sample": find_label_noise(labels, dense_mean, dense_in_mean),
        "+ compressed, held-out + in-sample as trained": find_label_noise(labels, pooled, pooled_in),
        "dense held-out + in-sample after forgetting": find_label_noise(labels, dense_mean, forgotten_mean),
        "+ compressed held-out, + dense in-sample after forgetting": find_label_noise(labels, pooled,
                                                                                       forgotten_mean),
        "+ compressed, held-out + in-sample after forgetting": find_label_noise(labels, pooled, pooled_forgotten),
        "tried: held-out, in-sample and in-sample after forgetting": find_label_noise(
            labels, pooled, 0.5 * (pooled_in + pooled_forgotten)),
    }
    # curate reads one of the two in-sample views, whichever the memorisation check picks.
    curate_noise = ablation["+ compressed, held-out + in-sample " + ("after forgetting" if check.memorised
                                                                     else "as trained")]
    ablation = {name: (noise.score, noise.is_noise) for name, noise in ablation.items()}
    all_mean = 0.5 * (pooled + pooled_in)
    posterior_wrong = 1 - transition_posterior(labels, pooled)

    def top_other(p: np.ndarray) -> np.ndarray:
        return other_classes(p, labels).argmax(axis=1)

    def other_max(p: np.ndarray) -> np.ndarray:
        return other_classes(p, labels).max(axis=1)

    ablation.update({
        "curate + AUM (rank mean)": ((rank01(curate_noise.score)
                                      + rank01(-aum)) / 2, None),
        "in-sample pooled only, 1 - p(label)": (1 - pooled_in[rows, labels], None),
        "tried: class-normalised, 1 - p / t(label)": (
            1 - all_mean[rows, labels] / find_label_noise(labels, all_mean).thresholds[labels], None),
        "tried: margin, max other p - p(label)": (other_max(all_mean) - all_mean[rows, labels], None),
        "tried: -(log p_held-out + log p_in-sample)": (
            -(np.log(pooled[rows, labels] + 1e-6) + np.log(pooled_in[rows, labels] + 1e-6)), None),
        "tried: held-out : in-sample weighted 1 : 3": (1 - (0.25 * pooled + 0.75 * pooled_in)[rows, labels], None),
        "tried: held-out : in-sample weighted 3 : 1": (1 - (0.75 * pooled + 0.25 * pooled_in)[rows, labels], None),
        "tried: share of networks whose top class is not the label": (
            vote_share_against(population, labels) + 0.01 * (1 - all_mean[rows, labels]), None),
        "tried: 1 - P(true = label | x, label), noise transitions from the confident joint": (
            1 - transition_posterior(labels, all_mean), None),
        "tried: curate's ranking, count from the calibrated confident joint": (
            curate_noise.score, highest(curate_noise.score, calibrated_count(labels, pooled))),
        "tried: curate's ranking, count = sum of P(wrong) (transition posterior, held-out)": (
            curate_noise.score, highest(curate_noise.score, int(round(posterior_wrong.sum())))),
        "tried: curate's ranking, flagged where expected F1 under P(wrong) is highest": (
            curate_noise.score, highest(curate_noise.score, expected_f1_count(curate_noise.score, posterior_wrong))),
        "PIE score only": (result.scores.pie_score, result.scores.is_pie_any),
        "in-sample forgetting at 90%: dense_in - compressed_in p(label)": (
            (dense_in_mean - in_sample(compressed_in[-1]))[rows, labels], None),
    })
    ablation_rows = {}
    for name, (score, flagged) in ablation.items():
        row = ranking_metrics(is_error, score)
        if flagged is not None:
            row.update(set_metrics(is_error, flagged))
        ablation_rows[name] = row

    reliability = {}
    if "label_wrong_probability" in result.samples:
        # Is the P(label wrong) that flags quote (with --label-probes) what it says?
        quoted = result.samples["label_wrong_probability"].to_numpy(dtype=float)
        edges = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0 + 1e-9]
        for lo, hi in zip(edges[:-1], edges[1:]):
            chosen = np.isfinite(quoted) & (quoted >= lo) & (quoted < hi)
            if chosen.any():
                reliability[f"{lo:.1f}-{min(hi, 1.0):.1f}"] = {
                    "images": int(chosen.sum()), "mean_quoted": float(quoted[chosen].mean()),
                    "truly_wrong": float(is_error[chosen].mean())}

    pie = result.scores.is_pie_any
    best_anchor = max((v["auprc"], k) for k, v in tools.items() if k != "curate")
    best_f1 = max((v["f1"], k) for k, v in tools.items() if k != "curate")
    job_seconds = sum(result.manifest.get("job_seconds", {}).values())
    return {
        "n": len(labels), "base_rate": float(is_error.mean()), "warnings": result.manifest.get("warnings", []),
        "label_noise_count": {"truth": int(is_error.sum()), **result.manifest.get("label_noise_count", {})},
        "in_sample_view": result.manifest.get("in_sample_view"),
        # Truth behind the warnings: the share of wrong labels among the images given each label.
        "error_rate_by_label": {c: float(is_error[labels == i].mean())
                                for i, c in enumerate(result.images.classes)},
        "population_seconds": round(job_seconds, 1),  # shared by every tool: same networks, same budget
        "tools": tools, "ablation": ablation_rows, "p_label_wrong_reliability": reliability,
        "suggested_label": {**suggestion_metrics(
            labels, clean, curate.label_noise, curate.suggested, curate.suggested_confidence, dense_mean,
            other_confidences=suggestion_confidences(labels, pooled, curate.suggested)),
                            "alternatives_right_on_flagged_errors": {
                                name: float((top_other(view) == clean)[curate.label_noise & is_error].mean())
                                for name, view in (("pooled held-out", pooled), ("dense held-out", dense_mean),
                                                   ("pooled held-out + in-sample as trained", pooled + pooled_in),
                                                   ("pooled held-out + in-sample after forgetting",
                                                    pooled + pooled_forgotten))}
                            | {"pooled held-out, confident classes first (curate's rule before 2026-12)": float(
                                (find_label_noise(labels, pooled).suggested == clean)[
                                    curate.label_noise & is_error].mean())}},
        "pies": {"count": int(pie.sum()), "error_share": float(is_error[pie].mean()) if pie.any() else None,
                 "base_rate": float(is_error.mean())},
        "categories": {c: int((curate.category == c).sum()) for c in ("label_noise", "corruption", "multi_object",
                                                                       "atypical")},
        "goal": {"auprc_ratio_vs_best_anchor": tools["curate"]["auprc"] / best_anchor[0],
                 "best_anchor_auprc": best_anchor[1],
                 "f1_beats_every_anchor": tools["curate"]["f1"] > best_f1[0], "best_anchor_f1": best_f1[1]},
    }


def print_label_set(column: str, entry: dict) -> None:
    print(f"\n{column}: {entry['n']} images, {100 * entry['base_rate']:.1f}% of labels wrong; every tool reads "
          f"the same population ({entry['population_seconds']:.0f} s of training); seconds below are scoring only")
    print(pd.DataFrame(entry["tools"]).T.round(3).to_string())
    print("\nAblation of curate's label-noise signals:")
    print(pd.DataFrame(entry["ablation"]).T.round(3).to_string())
    print("Estimated number of wrong labels:", ", ".join(f"{k} {v}" for k, v in entry["label_noise_count"].items()))
    view = entry.get("in_sample_view")
    if view:
        print(f"Memorisation check: the networks fit {100 * view['fitted']:.1f}% of their training labels; confident "
              f"learning believes {100 * view['labels_right']:.1f}% are right; curate reads the in-sample view "
              f"{view['view']}")
    if entry["p_label_wrong_reliability"]:
        print("\nP(label wrong) as quoted by the flags, against the truth:")
        print(pd.DataFrame(entry["p_label_wrong_reliability"]).T.round(2).to_string())
    suggestion = entry.get("suggested_label")
    if suggestion and suggestion["flagged_errors"]:
        print(f"\nSuggested labels: right on {100 * suggestion['suggested_right_on_flagged_errors']:.1f}% of the "
              f"{suggestion['flagged_errors']} flagged images that are truly mislabelled (the held-out top class: "
              f"{100 * suggestion['top_class_right_on_flagged_errors']:.1f}%); on all mislabelled images "
              f"{100 * suggestion['suggested_right_on_all_errors']:.1f}% "
              f"(top class {100 * suggestion['top_class_right_on_all_errors']:.1f}%); on every flagged image "
              f"{100 * suggestion['suggested_right_on_flagged']:.1f}%")
        print("Other suggestions, right on the flagged images that are truly mislabelled: " + ", ".join(
            f"{name} {100 * v:.1f}%" for name, v in suggestion.get("alternatives_right_on_flagged_errors", {}).items()))
        print("Quoted confidence of the suggestion against how often it is the true label (flagged images):")
        print(pd.DataFrame(suggestion["reliability"]).T.round(2).to_string())
        print("Calibration of the quoted confidence and of candidates (flagged images; lower is better):")
        print(pd.DataFrame(suggestion["calibration_on_flagged"]).T.round(4).to_string())
    pies = entry["pies"]
    if pies["error_share"] is not None:
        print(f"\nPIEs: {pies['count']}, of which {100 * pies['error_share']:.1f}% mislabelled "
              f"(base rate {100 * pies['base_rate']:.1f}%, {pies['error_share'] / pies['base_rate']:.2f}x)")
    for warning in entry["warnings"]:
        print(f"curate's warning: {warning}")
    rates = ", ".join(f"{c} {100 * r:.0f}%" for c, r in entry["error_rate_by_label"].items())
    print(f"Truth, wrong labels among the images given each label: {rates}")
    goal = entry["goal"]
    print(f"Goal: curate AUPRC / best anchor ({goal['best_anchor_auprc']}) = {goal['auprc_ratio_vs_best_anchor']:.3f}"
          f" (target >= 1.15); F1 beats every anchor: {goal['f1_beats_every_anchor']}")


def argument_parser(description: str) -> argparse.ArgumentParser:
    """The population options (also read by scripts that score bench_flags' stored populations)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", nargs="+", default=["aggre", "worse"], choices=["aggre", "worse", "random1", "clean"])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="resnet-small")
    parser.add_argument("--sparsities", type=float, nargs="+", default=list(CurateConfig().sparsities))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--label-probes", type=float, default=0.0,
                        help="curate run's --label-probes: share of each network's training images given a random "
                             "wrong label, which then set the label-noise count.")
    parser.add_argument("--run-root", default=None, help="Where the populations are cached.")
    parser.add_argument("--population-only", action="store_true")
    parser.add_argument("--out", default=None, help="JSON output path.")
    return parser


def main() -> None:
    args = argument_parser(__doc__).parse_args()
    require_cifar10n()
    require_cleanlab()

    config = population_config(args)
    report = {"config": config.to_dict(), "n": args.n, "seed": args.seed, "label_sets": {}}
    for column in args.labels:
        images, clean = noisy_subset(args.n, args.seed, column)
        run_dir = Path(args.run_root or default_cache_dir() / "bench") / f"flags-{column}-{config.fingerprint(images)}"
        started = time.time()
        result = run_curate(images, config, run_dir)
        train_seconds = time.time() - started
        print(f"\n{column}: population of {len(result.images)} images in {train_seconds:.0f} s ({run_dir})")
        if args.population_only:
            continue
        report["label_sets"][column] = score_label_set(result, clean)
        print_label_set(column, report["label_sets"][column])
    write_report(args.out, report)


if __name__ == "__main__":
    main()
