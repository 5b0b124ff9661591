#!/usr/bin/env python
"""Benchmark: per-level accuracy, PIE fraction and what PIEs are made of, on digits and CIFAR-10N.

Runs the curate pipeline (no FiftyOne) and prints a table; writes everything to a JSON file.

    python scripts/bench_pies.py digits --out out/bench_digits.json
    python scripts/bench_pies.py cifar10n --n 10000 --out out/bench_cifar10n.json

For CIFAR-10N the population trains on the original (clean) labels of a stratified, seeded subset;
the human re-labels then say which images people get wrong. The paper's claim that PIEs
over-index on mislabelled and ambiguous images is measured as the share of PIEs whose human label
(``aggre``, ``worse``) differs from the clean one, against the base rate in the subset.
For digits, ``--flip`` flips that share of labels at random (seeded) before training and reports
the flipped share among PIEs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps


from curate.science.findings import compression_comparison, most_forgotten_classes, pie_accuracy_table  # noqa: E402
from curate.science.pies import score_pies  # noqa: E402
from curate.population.pipeline import CurateConfig, run_curate  # noqa: E402
from curate.science.findings import robustness_summary  # noqa: E402
from curate.science.stats import impact_table, member_accuracies, member_recalls  # noqa: E402
from curate.data.sources import LabeledImages, default_cache_dir, digits  # noqa: E402
from curate.population.train import TrainSettings  # noqa: E402

# CURATE_CIFAR10N points elsewhere (e.g. where a GPU machine unpacked a copy); the default is ../shared.
CIFAR10N = Path(os.environ.get("CURATE_CIFAR10N")
                or Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10n")



# Measured and not adopted (docs/benchmarks.md, "Tried: a paired test"): kept here, not in curate.
def paired_t_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided paired t-test of ``b`` against ``a`` (``b[m]`` and ``a[m]`` are one member's values); (t, p).

    As :func:`welch_t_test`, ``(0.0, 1.0)`` when every member's difference is 0 and ``(NaN, NaN)``,
    not tested, when all differences are equal but not 0: with no spread there is no variance to
    weigh the change against.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"A paired test needs one value per member on each side, got shapes {a.shape} and {b.shape}.")
    difference = b - a
    if difference.var() == 0:
        if difference.mean() == 0:
            return 0.0, 1.0
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        result = sps.ttest_rel(b, a)
    return float(result.statistic), float(result.pvalue)

def require_cifar10n(root: Path = CIFAR10N) -> None:
    """Stop, saying where it was looked for, when the CIFAR-10N folder is absent."""
    if not (root / "labels.csv").exists():
        sys.exit(f"CIFAR-10N not found at {root} (expected labels.csv and train/); it lives in ../shared/data.")


def require_cleanlab() -> None:
    """Stop before any training when cleanlab, the anchor these benchmarks score against, is missing
    (it is not a dependency of curate itself); otherwise the error would come after the population trained."""
    import importlib.util

    if importlib.util.find_spec("cleanlab") is None:
        sys.exit("cleanlab is not installed; the benchmark scores it as an anchor. Install the bench extra: "
                 "pip install -e '.[bench]' (or .venv/bin/pip install -e '.[bench]').")


def cifar10n_subset(n: int, seed: int, root: Path = CIFAR10N) -> tuple[LabeledImages, pd.DataFrame]:
    """A stratified, seeded subset of CIFAR-10N with clean labels, plus its human-label table."""
    require_cifar10n(root)
    table = pd.read_csv(root / "labels.csv")
    per_class = n // table["clean"].nunique()
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(table["clean"].to_numpy() == c), per_class, replace=False)
              for c in sorted(table["clean"].unique())]
    subset = table.iloc[np.sort(np.concatenate(picked))].reset_index(drop=True)
    classes = sorted(subset["clean"].unique())
    index = {c: i for i, c in enumerate(classes)}
    images = LabeledImages(
        filepaths=[str(root / p) for p in subset["filepath"]],
        labels=np.array([index[c] for c in subset["clean"]]),
        classes=classes,
        description=f"cifar10n subset n={len(subset)} seed={seed}",
    )
    return images, subset


def write_report(path: str | None, report: dict) -> None:
    """Write a benchmark's report as JSON (when ``--out`` was given)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {path}")


def enrichment(is_pie: np.ndarray, is_error: np.ndarray) -> dict:
    base = float(is_error.mean())
    share = float(is_error[is_pie].mean()) if is_pie.any() else float("nan")
    return {"pies": int(is_pie.sum()), "error_share_in_pies": share, "base_rate": base,
            "ratio": share / base if base > 0 and is_pie.any() else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["digits", "cifar10n"])
    parser.add_argument("--n", type=int, default=10000, help="CIFAR-10N subset size (stratified).")
    parser.add_argument("--flip", type=float, default=0.0, help="digits: share of labels flipped at random.")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--model", default="resnet-small")
    parser.add_argument("--batch-size", type=int, default=None, help="Default: as the CLI (images per network / 16, 32..256).")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--quantize", default="fp16,bf16,int8,int4,dyn-int8",
                        help="Quantization levels (comma-separated, or none).")
    parser.add_argument("--robustness-images", type=int, default=64, help="Corrupted held-out images per network.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--out", default=None, help="JSON output path.")
    args = parser.parse_args()

    human = None
    if args.dataset == "digits":
        images = digits()
        size, hflip = args.image_size or 16, False
        flipped = np.zeros(len(images), dtype=bool)
        if args.flip > 0:
            rng = np.random.default_rng(args.seed)
            flipped = rng.random(len(images)) < args.flip
            images.labels = images.labels.copy()
            images.labels[flipped] = (images.labels[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    else:
        images, human = cifar10n_subset(args.n, args.seed)
        size, hflip = args.image_size or 32, True
    n_train = len(images) * (args.folds - 1) // args.folds
    config = CurateConfig(
        model=args.model, members=args.members, folds=args.folds, image_size=size, seed=args.seed,
        device=args.device, robustness_images=args.robustness_images,
        quantizations=tuple(q for q in args.quantize.split(",") if q and q != "none"),
        train=TrainSettings(epochs=args.epochs, finetune_epochs=args.finetune_epochs, hflip=hflip,
                            batch_size=args.batch_size or int(min(256, max(32, n_train // 16)))),
    )
    run_dir = args.run_dir or default_cache_dir() / "bench" / f"{args.dataset}-{config.fingerprint(images)}"
    started = time.time()
    result = run_curate(images, config, run_dir)
    seconds = time.time() - started

    levels = result.levels
    report = {
        "dataset": args.dataset, "n_images": len(result.images), "seconds": round(seconds, 1),
        "config": config.to_dict(), "run_dir": str(run_dir),
        "levels": levels.to_dict(orient="records"),
        "pies_any_level": int(result.scores.is_pie_any.sum()),
    }
    print(f"\n{args.dataset}: {len(result.images)} images, {seconds:.0f} s, run dir {run_dir}")
    print(levels.round(4).to_string(index=False))

    # PIEs vs labelling errors: what the paper says PIEs over-index on.
    errors: dict[str, np.ndarray] = {}
    if args.dataset == "digits" and args.flip > 0:
        errors["flipped"] = flipped
        true_labels = digits().labels
        recovered = float((result.scores.dense_modal[flipped] == true_labels[flipped]).mean())
        report["flipped_images_dense_modal_is_true_label"] = recovered
        print(f"\nOn flipped images the held-out dense modal label is the true one for {recovered:.3f} of them")
        flagged = result.categories.label_noise
        report["label_noise_flags"] = {
            "flagged": int(flagged.sum()), "precision": float(flipped[flagged].mean()) if flagged.any() else None,
            "recall": float(flagged[flipped].mean()),
            "suggestion_is_true_label": float((result.categories.suggested[flagged & flipped]
                                               == true_labels[flagged & flipped]).mean()),
        }
        print(f"label_noise flags: {report['label_noise_flags']}")
        # The paper's mechanism on the training images themselves: do the compressed copies of the
        # networks that trained on an image forget its (memorised) flipped label?
        in_sample = score_pies(result.population.dense_in, result.population.compressed_in)
        report["in_sample_pies"] = {
            level: {**enrichment(in_sample.is_pie[i], flipped),
                    "dense_in_sample_says_given_label_on_flipped": float(
                        (in_sample.dense_modal[flipped] == result.images.labels[flipped]).mean())}
            for i, level in enumerate(result.level_names)}
        print("\nIn-sample PIEs (dense vs compressed copies of the networks that trained on each image) "
              "vs flipped labels:")
        print(pd.DataFrame(report["in_sample_pies"]).T.round(3).to_string())
    if human is not None:
        kept = pd.Series(result.images.filepaths).str.replace(str(CIFAR10N) + "/", "", regex=False)
        rows = human.set_index("filepath").loc[kept]
        for column in ("aggre", "worse", "random1"):
            errors[column] = (rows[column] != rows["clean"]).to_numpy()
        # Trained on the clean labels, so every label-noise flag is a false alarm unless CIFAR-10 itself
        # is wrong; how often did people also stumble on the flagged images?
        flagged = result.categories.label_noise
        hard_for_people = errors["aggre"]
        report["label_noise_flags_on_clean_labels"] = {
            "flagged": int(flagged.sum()), "share": float(flagged.mean()),
            "aggre_error_share_among_flagged": float(hard_for_people[flagged].mean()) if flagged.any() else None,
            "aggre_error_base_rate": float(hard_for_people.mean()),
        }
        print(f"\nlabel_noise flags on the clean labels: {report['label_noise_flags_on_clean_labels']}")
    report["enrichment"] = {}
    for name, is_error in errors.items():
        per_level = {level: enrichment(result.scores.is_pie[i], is_error)
                     for i, level in enumerate(result.level_names)}
        per_level["any"] = enrichment(result.scores.is_pie_any, is_error)
        report["enrichment"][name] = per_level
        print(f"\nPIEs vs {name} label errors (base rate {per_level['any']['base_rate']:.3f}):")
        print(pd.DataFrame(per_level).T.round(3).to_string())
    # The paper: dense accuracy on PIEs vs the rest.
    correct = result.scores.dense_modal == result.images.labels
    pie = result.scores.is_pie_any
    report["dense_accuracy"] = {
        "all": float(correct.mean()),
        "pies": float(correct[pie].mean()) if pie.any() else None,
        "non_pies": float(correct[~pie].mean()),
    }
    print(f"\nDense population (modal) accuracy: all {correct.mean():.4f}, "
          f"PIEs {report['dense_accuracy']['pies']}, non-PIEs {correct[~pie].mean():.4f}")
    # The paper's analyses: PIEs per level, accuracy with and without them, pruning vs quantization.
    pie_acc = pie_accuracy_table(result.scores.dense_modal, result.scores.compressed_modal, result.images.labels,
                                 result.scores.is_pie, result.level_names)
    report["pie_accuracy"] = pie_acc.to_dict(orient="records")
    print("\nDense accuracy on PIEs and without them, per level:")
    print(pie_acc.round(4).to_string(index=False))
    comparison = compression_comparison(result.levels, result.impact)
    report["compression_comparison"] = comparison.to_dict(orient="records")
    print("\nPruning vs quantization, by weight-memory compression:")
    print(comparison.round(4).to_string(index=False))
    # Each compressed copy is a copy of one dense network: the paired test reads each member's change,
    # Welch's (curate's and the paper's) treats the populations as independent. What each finds here,
    # and how closely a member's dense and compressed normalised recalls move together:
    dense, labels = result.population.dense, result.images.labels
    paired = impact_table(dense, result.population.compressed, labels, result.level_names, result.images.classes,
                          test=paired_t_test)
    class_tests = pd.concat([
        impact.groupby("level", sort=False).agg(**{f"classes_impacted_{test}": ("significant", "sum"),
                                                  f"min_p_adjusted_{test}": ("p_adjusted", "min")})
        for test, impact in (("welch", result.impact), ("paired", paired))], axis=1).reset_index()
    def normalised_recalls(probs):  # (members, classes), as class_impact computes them
        return member_recalls(probs, labels) / member_accuracies(probs, labels)[:, None]

    dense_norm = normalised_recalls(dense)
    class_tests["within_member_correlation"] = [
        np.nanmean([np.corrcoef(dense_norm[:, c], compressed_norm[:, c])[0, 1] for c in range(dense.shape[-1])])
        for compressed_norm in map(normalised_recalls, result.population.compressed)]
    report["class_tests_welch_vs_paired"] = class_tests.to_dict(orient="records")
    print("\nClasses significantly impacted (Holm, alpha 0.05): Welch's t-test (curate, the paper) vs paired; "
          "mean over classes of the members' dense-compressed correlation:")
    print(class_tests.round(4).to_string(index=False))
    forgotten = most_forgotten_classes(result.impact, top=10)
    report["most_forgotten_classes"] = forgotten.to_dict(orient="records")
    print("\nMost forgotten classes (significant first):")
    print(forgotten[["level", "class", "normalized_change", "p_adjusted", "significant"]].round(4).to_string(index=False))
    if config.robustness:
        robust = result.store.load_table("robustness.csv")  # written by run_curate
        summary = robustness_summary(robust)
        report["robustness"] = robust.to_dict(orient="records")
        report["robustness_summary"] = summary.reset_index().to_dict(orient="records")
        print("\nAccuracy under corruption (mean over severities 1-5), per level:")
        print(summary.round(3).to_string())
    write_report(args.out, report)


if __name__ == "__main__":
    main()
