#!/usr/bin/env python
"""Benchmark: what each compression kind forgets, at what size, speed and accuracy (issue 27).

Runs curate (no FiftyOne) with unstructured pruning, quantization, filter pruning and distilled students
on one population, once per filter-ranking criterion, and prints per level: weight memory, MACs and
measured CPU latency against dense, held-out accuracy, PIE fraction (and beyond the control level for
fine-tuned kinds), classes impacted, and how strongly its PIEs over-index on images known to be hard;
then the PIE-set overlap of every level with the pruning level nearest in memory.

- ``digits``: the demo's digits with problems planted (:mod:`curate.data.planted`): a PIE is
  meaningful when the image had a problem planted (wrong label, damage, two digits, near copy).
- ``cifar10n``: a stratified subset with the original (clean) labels; an image is hard for people when
  CIFAR-10N's three annotators (``random1-3``) do not all give the clean label.

``lift`` is the share of a level's PIEs that are known-hard images over the base rate: which ranking
criterion (Taylor or L1) marks the more meaningful PIEs.

    python scripts/bench_compression.py digits --out out/bench_compression_digits.json
    python scripts/bench_compression.py cifar10n --n 4000 --criteria taylor --out out/bench_compression_cifar.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_pies import cifar10n_subset, write_report  # noqa: E402
from curate.data.sources import default_cache_dir, digits  # noqa: E402
from curate.options import RunOptions, parse_fractions, parse_names  # noqa: E402
from curate.population.pipeline import run_curate  # noqa: E402
from curate.science.findings import pie_accuracy_table  # noqa: E402


def known_hard(dataset: str, args):
    """The images, and which of them are known to be hard (see the module docstring)."""
    if dataset == "digits":
        from curate.data.planted import plant

        images = plant(digits(), default_cache_dir() / "digits-planted")
        return images, np.array([bool(k) for k in images.fields["planted"]]), "digits-planted"
    images, table = cifar10n_subset(args.n, args.seed)
    humans = table[["random1", "random2", "random3"]].to_numpy()
    return images, (humans != table["clean"].to_numpy()[:, None]).any(axis=1), "cifar10n"


def run_once(images, hard, source, args, criterion: str) -> dict:
    options = RunOptions(members=args.members, folds=args.folds, epochs=args.epochs,
                         finetune_epochs=args.finetune_epochs, sparsities=parse_fractions(args.sparsities, "s", "0.5"),
                         quantize=parse_names(args.quantize), filter_prune=parse_fractions(args.filter_prune, "f", "0.5"),
                         filter_criterion=criterion, distill=parse_names(args.distill),
                         robustness_images=0, seed=args.seed, device=args.device)
    config = options.config_for(source, len(images))
    run_dir = default_cache_dir() / "bench" / f"compression-{args.dataset}-{config.fingerprint(images)}"
    started = time.time()
    result = run_curate(images, config, run_dir, progress=not args.quiet)
    seconds = time.time() - started
    levels = result.levels
    scores = result.scores
    names = config.level_names
    pie_acc = pie_accuracy_table(scores.dense_modal, scores.compressed_modal, result.images.labels, scores.is_pie,
                                 names).set_index("level")
    base = float(hard.mean())
    rows = []
    for row in levels.itertuples():
        entry = {k: getattr(row, k) for k in ("level", "kind", "compression", "memory_kb", "mmacs", "latency_ms",
                                              "speedup", "accuracy", "pie_fraction", "classes_impacted")}
        if row.level in names:
            i = names.index(row.level)
            pies = scores.is_pie[i]
            entry["hard_share_in_pies"] = float(hard[pies].mean()) if pies.any() else float("nan")
            entry["lift"] = entry["hard_share_in_pies"] / base if base else float("nan")
            entry["excess_pie_fraction"] = getattr(row, "excess_pie_fraction", float("nan"))
            entry["dense_accuracy_pies"] = float(pie_acc.loc[row.level, "dense_accuracy_pies"])
        rows.append(entry)
    matched = result.matched_overlaps
    return {"criterion": criterion, "seconds": round(seconds, 1), "run_dir": str(run_dir),
            "config": config.to_dict(), "hard_base_rate": base, "levels": rows,
            "matched_overlaps": matched.to_dict(orient="records"),
            "overlap": result.overlap.to_dict(orient="records")}


def print_run(entry: dict) -> None:
    from tabulate import tabulate

    print(f"\nfilter criterion {entry['criterion']}: {entry['seconds']:.0f} s; known-hard base rate "
          f"{100 * entry['hard_base_rate']:.1f}%")
    table = [[r["level"], r["kind"], f"{r['compression']:.1f}x", f"{r['memory_kb']:.0f}" if r["memory_kb"] == r["memory_kb"] else "",
              f"{r['mmacs']:.2f}" if r["mmacs"] == r["mmacs"] else "",
              f"{r['speedup']:.2f}x" if r["speedup"] == r["speedup"] else "", f"{r['accuracy']:.3f}",
              f"{100 * r['pie_fraction']:.2f}%",
              f"{100 * r['excess_pie_fraction']:+.2f}%" if r.get("excess_pie_fraction") == r.get("excess_pie_fraction")
              and "excess_pie_fraction" in r else "",
              r["classes_impacted"], f"{r['lift']:.1f}x" if r.get("lift") == r.get("lift") and "lift" in r else ""]
             for r in entry["levels"]]
    print(tabulate(table, headers=["level", "kind", "smaller", "KB", "MMACs", "CPU speed", "accuracy", "PIE %",
                                   "beyond control", "classes", "lift"]))
    print("\nPIE overlap with the pruning level nearest in memory:")
    print(tabulate([[m["level"], m["matched"], m["shared"], f"{m['jaccard']:.2f}", f"{m['chance']:.3f}",
                     f"{m['ratio']:.1f}x" if m["ratio"] == m["ratio"] else ""] for m in entry["matched_overlaps"]],
                   headers=["level", "pruning level", "shared PIEs", "overlap", "chance", "over chance"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["digits", "cifar10n"])
    parser.add_argument("--n", type=int, default=4000, help="CIFAR-10N subset size (stratified).")
    parser.add_argument("--criteria", default="taylor,l1", help="Filter ranking criteria, one run each.")
    parser.add_argument("--members", type=int, default=RunOptions.members)
    parser.add_argument("--folds", type=int, default=RunOptions.folds)
    parser.add_argument("--epochs", type=int, default=None, help="[default: curate's for the data]")
    parser.add_argument("--finetune-epochs", type=int, default=RunOptions.finetune_epochs)
    parser.add_argument("--sparsities", default="0.3,0.5,0.7,0.9")
    parser.add_argument("--quantize", default="int8,int4")
    parser.add_argument("--filter-prune", default="0.3,0.5,0.7")
    parser.add_argument("--distill", default="0.5,0.25,0.5:2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    images, hard, source = known_hard(args.dataset, args)
    report = {"dataset": args.dataset, "n_images": len(images), "runs": []}
    for criterion in parse_names(args.criteria):
        entry = run_once(images, hard, source, args, criterion)
        report["runs"].append(entry)
        print_run(entry)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
