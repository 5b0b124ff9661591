#!/usr/bin/env python
"""Benchmark: how far a reviewer can trust curate's flags (issue 29).

Four questions, each on data whose truth is known:

``digits``   runs curate on copies of the digits with problems planted (:mod:`curate.data.planted`:
             wrong labels, damaged images, two digits in one image) at two noise levels, and on the
             untouched digits. Reports the calibration of P(label wrong) (reliability table, ECE), the
             expected against the true number of wrong labels among the flags, how many planted
             problems each flag found and how precisely, multi_object and ambiguous on the
             two-object images and on untouched ones, and the control level's PIE fraction per level.
``cifar10n`` reads the populations ``scripts/bench_flags.py --population-only`` stored for CIFAR-10N
             label sets (``aggre`` ~9% wrong, ``worse`` ~40%, ``clean`` a few) and fits the product's
             noise model (:func:`curate.science.flags.categorise` does the same) to their stored held-out
             predictions: calibration against the truth (label != clean label), expected against true
             wrong labels among the flags and in the dataset, and the flag set's precision and recall.

Both also audit each run as a reviewer would (:mod:`curate.science.audit`), with the truth as the reviewer,
200 times per audit size: how often the audit's 90% interval holds the true count, and how wide it is.

    python scripts/bench_trust.py digits --out out/bench_trust_digits.json
    python scripts/bench_flags.py --labels aggre worse --population-only --run-root RUNS
    python scripts/bench_trust.py cifar10n --runs aggre=RUNS/flags-aggre-... worse=RUNS/flags-worse-... \
        --out out/bench_trust_cifar10n.json

Prints the tables and writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_pies import cifar10n_subset, require_cifar10n, write_report  # noqa: E402
from curate.data.planted import TWO_OBJECTS, WRONG_LABEL, PlantedShares, plant, recovery  # noqa: E402
from curate.data.sources import default_cache_dir, digits  # noqa: E402
from curate.options import RunOptions  # noqa: E402
from curate.science.flags import population_mean  # noqa: E402
from curate.science.noise_model import fit_noise_model, reliability_table  # noqa: E402


def calibration(p_wrong: np.ndarray, truth: np.ndarray, flagged: np.ndarray) -> dict:
    """Calibration of P(label wrong) against the truth, over every image and over the flags."""
    from sklearn.metrics import roc_auc_score

    truth, flagged = np.asarray(truth, dtype=bool), np.asarray(flagged, dtype=bool)
    table, ece = reliability_table(p_wrong, truth)
    _, ece_flags = reliability_table(p_wrong[flagged], truth[flagged]) if flagged.any() else (None, float("nan"))
    tp = int((flagged & truth).sum())
    return {
        "n": int(len(truth)), "wrong": int(truth.sum()), "expected_wrong": float(p_wrong.sum()),
        "flagged": int(flagged.sum()), "wrong_among_flags": tp, "expected_among_flags": float(p_wrong[flagged].sum()),
        "precision": tp / max(1, int(flagged.sum())), "recall": tp / max(1, int(truth.sum())),
        "ece": ece, "ece_flags": ece_flags,
        "auroc": float(roc_auc_score(truth, p_wrong)) if 0 < truth.sum() < len(truth) else float("nan"),
        "reliability": table,
    }


def print_calibration(name: str, c: dict) -> None:
    print(f"\n{name}: {c['n']} images, {c['wrong']} wrong labels; expected {c['expected_wrong']:.0f}")
    print(f"  flagged {c['flagged']}: {c['wrong_among_flags']} wrong, expected {c['expected_among_flags']:.0f} "
          f"(precision {c['precision']:.3f}, recall {c['recall']:.3f}); ECE {c['ece']:.3f} (all), "
          f"{c['ece_flags']:.3f} (flags); AUROC {c['auroc']:.3f}")
    print(pd.DataFrame(c["reliability"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def audit_coverage(p_wrong: np.ndarray, flagged: np.ndarray, truth: np.ndarray, *, repeats: int = 200) -> list[dict]:
    """The label audit (:mod:`curate.science.audit`) with the truth as its reviewer, drawn ``repeats`` times per
    audit size: how often its 90% interval holds the true number of wrong labels (and the flags' true precision),
    and how wide it is, beside the noise model's own count."""
    from curate.science.audit import audit_strata, audited_p_wrong, draw_audit, estimate_from_audit

    strata = audit_strata(p_wrong, flagged)
    rows = []
    in_flags = max(1, int(truth[flagged].sum()))
    for per_stratum in (20, 50):
        counts, precisions, eces, flag_errors = [], [], [], []
        for seed in range(repeats):
            drawn = draw_audit(strata, per_stratum=per_stratum, seed=seed)
            estimate = estimate_from_audit(strata, drawn, truth, draws=4000, seed=seed)
            counts.append(estimate.wrong_labels)
            if estimate.flag_precision is not None:
                precisions.append(estimate.flag_precision.low <= truth[flagged].mean() <= estimate.flag_precision.high)
            # The probabilities calibrated by this audit, judged on the images it did not review.
            audited = audited_p_wrong(p_wrong, strata, drawn, truth)
            eces.append(reliability_table(audited[~drawn], truth[~drawn])[1])
            flag_errors.append((audited[flagged].sum() - truth[flagged].sum()) / in_flags)
        rows.append({"reviews": int(drawn.sum()), "wrong": int(truth.sum()), "model_count": float(p_wrong.sum()),
                     "coverage": float(np.mean([c.low <= truth.sum() <= c.high for c in counts])),
                     "median_width": float(np.median([c.high - c.low for c in counts])),
                     "median_estimate": float(np.median([c.estimate for c in counts])),
                     "precision_coverage": float(np.mean(precisions)) if precisions else float("nan"),
                     "audited_ece_median": float(np.median(eces)), "audited_ece_p90": float(np.quantile(eces, 0.9)),
                     "audited_flags_within_10pct": float(np.mean(np.abs(flag_errors) <= 0.1))})
    print(f"  label audit with the truth as reviewer (90% intervals, {repeats} draws each; audited_*: P(label wrong) "
          "calibrated by the audit, ECE on the images it did not review, and how often its expected count among "
          "the flags is within 10% of the truth):")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    from curate.frontends.summary import label_audit_sentence

    drawn = draw_audit(strata, seed=0)
    first = label_audit_sentence(estimate_from_audit(strata, drawn, truth), float(p_wrong.sum()), int(drawn.sum()))
    print(f"  what `curate status` says once the first audit is reviewed:\n  {first}")
    return {"rows": rows, "status_after_first_audit": first}


def prediction_shape(held_out: np.ndarray, labels: np.ndarray) -> dict:
    """What a count from held-out predictions and labels alone could read: how confident the population gets
    on each class's most typical images (97th percentile of each class's probability over all images: an
    anchor-point noise estimate reads 1 minus it as that class's noise), and how often the labels agree
    with the predictions against how often the predictions expect them to (sum of squared probabilities)."""
    q = held_out / held_out.sum(axis=1, keepdims=True)
    shape = {"ceiling_97": [float(np.percentile(q[:, k], 97)) for k in range(q.shape[1])],
             "top_probability": float(q.max(axis=1).mean()),
             "label_probability": float(q[np.arange(len(labels)), labels].mean()),
             "expected_label_probability": float((q ** 2).sum(axis=1).mean())}
    print(f"  held-out predictions: per-class 97th-percentile probability "
          f"{' '.join(f'{c:.2f}' for c in shape['ceiling_97'])}; mean top probability {shape['top_probability']:.3f}; "
          f"mean probability of the given label {shape['label_probability']:.3f} "
          f"(if the labels followed the predictions: {shape['expected_label_probability']:.3f})")
    return shape


def control_rows(levels: pd.DataFrame) -> list[dict]:
    columns = ["level", "kind", "accuracy", "pie_fraction", "excess_pie_fraction", "excess_low", "excess_high",
               "classes_impacted", "classes_impacted_beyond_control"]
    return levels[[c for c in columns if c in levels]].to_dict(orient="records")


def region_rates(result, planted: np.ndarray) -> dict:
    """multi_object and ambiguous, as rules on every image, on two-object images and on untouched ones."""
    evidence = result.categories.evidence
    multi = evidence.region.score >= evidence.region_threshold if evidence.region is not None else np.zeros(len(planted), bool)
    ambiguous = evidence.evenness >= evidence.split_threshold
    two, untouched = planted == TWO_OBJECTS, planted == ""
    out = {}
    thresholds = result.categories.thresholds
    for name, rule in (("multi_object", multi), ("ambiguous", ambiguous)):
        out[name] = {"recall_two_objects": float(rule[two].mean()) if two.any() else float("nan"),
                     "rate_untouched": float(rule[untouched].mean()),
                     "precision": float(two[rule].mean()) if rule.any() else float("nan"), "flagged": int(rule.sum())}
    # What the run promised its reviewer: the share of made two-object probes the rule passes.
    out["multi_object"]["probe_recall"] = thresholds.get("multi_object_probe_recall", float("nan"))
    out["ambiguous"]["probe_recall"] = thresholds.get("ambiguous_probe_recall", float("nan"))
    return out


def run_digits(args) -> dict:
    from curate.population.pipeline import run_curate

    report = {}
    root = Path(args.run_root or default_cache_dir() / "bench")
    for name, shares in (("planted 5%", PlantedShares(0.05, 0.03, 0.02)), ("planted 10%", PlantedShares(0.10, 0.03, 0.02)),
                         ("untouched", None)):
        images = digits() if shares is None else plant(digits(), root / f"trust-digits-{shares.wrong_labels}", shares=shares)
        options = RunOptions(epochs=args.epochs)
        config = options.config_for("digits", len(images), 32)
        run_dir = root / f"trust-{name.replace(' ', '-').replace('%', '')}-{config.fingerprint(images)}"
        started = time.time()
        result = run_curate(images, config, run_dir, progress=False)
        seconds = time.time() - started
        planted = np.array([k or "" for k in images.fields.get("planted", [None] * len(images))], dtype=object)
        truth = planted == WRONG_LABEL
        flagged = result.samples["label_noise"].to_numpy(bool)
        entry = {"seconds": seconds, "calibration": calibration(result.categories.label_wrong_probability, truth, flagged),
                 "control": control_rows(result.levels)}
        if shares is not None:
            entry["recovery"] = recovery(list(images.fields["planted"]), label_noise=flagged,
                                         corruption=result.samples["corruption"].to_numpy(bool),
                                         category=result.samples["category"].to_numpy(),
                                         duplicate=(result.samples["duplicate_cluster"] >= 0).to_numpy(),
                                         copy_of=images.fields["copy_of"], filepaths=images.filepaths)
            entry["regions"] = region_rates(result, planted)
        report[name] = entry
        print(f"\n=== digits, {name} ({seconds:.0f} s)")
        print_calibration(name, entry["calibration"])
        entry["audit"] = audit_coverage(result.categories.label_wrong_probability, flagged, truth)
        print(pd.DataFrame(entry["control"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if shares is not None:
            print(pd.DataFrame(entry["recovery"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            print(pd.DataFrame(entry["regions"]).T.to_string(float_format=lambda v: f"{v:.3f}"))
    return report


def filed(samples: pd.DataFrame, manifest: Path, truth: np.ndarray) -> dict:
    """Images per flag category as the run stored them, with the thresholds that decided two of them."""
    thresholds = json.loads(manifest.read_text()).get("flag_thresholds", {}) if manifest.exists() else {}
    pies = samples["category"].fillna("").astype(str)
    rows = [{"category": c, "PIEs": int((pies == c).sum()), "wrong labels among them": int(truth[(pies == c).to_numpy()].sum())}
            for c in sorted(set(pies) - {""})]
    return {"categories": rows, "pies": int((pies != "").sum()), "label_noise_flags": int(samples["label_noise"].sum()),
            "wrong_labels": int(truth.sum()),
            **{k: thresholds.get(k) for k in ("ambiguous_evenness", "ambiguous_probe_recall", "ambiguous_dataset_rate",
                                              "multi_object_region_confidence", "multi_object_probe_recall",
                                              "multi_object_dataset_rate", "label_noise_confident_learning_count")}}


def run_cifar10n(args) -> dict:
    require_cifar10n()
    table_report = {}
    for spec in args.runs:
        column, run_dir = spec.split("=", 1)
        _, table = cifar10n_subset(args.n, args.seed)
        classes = sorted(table["clean"].unique())
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[c] for c in table[column]])
        truth = labels != np.array([index[c] for c in table["clean"]])
        with np.load(Path(run_dir) / "probs.npz") as stored:
            levels = [str(level) for level in stored["levels"]]
            pruned = [i for i, level in enumerate(levels) if level.startswith("prune")]
            held_out = population_mean(stored["dense"], stored["compressed"][pruned])
        started = time.time()
        model = fit_noise_model(labels, held_out)
        flagged = model.p_wrong >= 0.5
        entry = calibration(model.p_wrong, truth, flagged)
        entry.update(temperature=model.temperature, noise_rate=float(1 - model.transition[0, 0]),
                     fit_seconds=time.time() - started,
                     held_out_accuracy=float((held_out.argmax(axis=1) == labels).mean()), run_dir=run_dir)
        table_report[column] = entry
        print_calibration(f"CIFAR-10N {column} (held-out accuracy {entry['held_out_accuracy']:.3f}, "
                          f"temperature {model.temperature:.2f}, noise rate {entry['noise_rate']:.3f})", entry)
        entry["audit"] = audit_coverage(model.p_wrong, flagged, truth)
        entry["what_the_predictions_show"] = prediction_shape(held_out, labels)
        samples_file = Path(run_dir) / "samples.parquet"
        if samples_file.exists():
            # What the run filed (as of the curate that last ran it), against how many labels are wrong.
            entry["filed"] = filed(pd.read_parquet(samples_file), Path(run_dir) / "manifest.json", truth)
            print(pd.DataFrame(entry["filed"]["categories"]).to_string(index=False))
            print({k: v for k, v in entry["filed"].items() if k != "categories"})
        levels_csv = Path(run_dir) / "levels.csv"
        if levels_csv.exists():
            entry["control"] = control_rows(pd.read_csv(levels_csv))
            if any(row["kind"] == "control" for row in entry["control"]):
                print(pd.DataFrame(entry["control"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return table_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["digits", "cifar10n"])
    parser.add_argument("--runs", nargs="+", default=[], metavar="LABELS=RUN_DIR",
                        help="cifar10n: the label set each stored population trained on, and its run directory.")
    parser.add_argument("--n", type=int, default=10000, help="cifar10n: the subset the populations used.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="digits: dense training epochs [default: the digits' own].")
    parser.add_argument("--run-root", default=None, help="digits: where the runs are cached.")
    parser.add_argument("--out", default=None, help="JSON output path.")
    args = parser.parse_args()
    report = run_digits(args) if args.what == "digits" else run_cifar10n(args)
    write_report(args.out, {"what": args.what, "results": report})


if __name__ == "__main__":
    sys.exit(main())
