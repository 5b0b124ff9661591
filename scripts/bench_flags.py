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
with ``--n 50000 --device cuda``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pies import CIFAR10N, cifar10n_subset  # noqa: E402
from curate.pipeline import CurateConfig, run_curate  # noqa: E402
from curate.sources import default_cache_dir  # noqa: E402
from curate.train import TrainSettings  # noqa: E402


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
        device=args.device,
        train=TrainSettings(epochs=args.epochs, finetune_epochs=args.finetune_epochs, batch_size=args.batch_size,
                            hflip=True),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", nargs="+", default=["aggre", "worse"], choices=["aggre", "worse", "random1"])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="resnet-small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--run-root", default=None, help="Where the populations are cached.")
    parser.add_argument("--population-only", action="store_true")
    parser.add_argument("--out", default=None, help="JSON output path.")
    args = parser.parse_args()
    if not (CIFAR10N / "labels.csv").exists():
        sys.exit(f"CIFAR-10N not found at {CIFAR10N}; this benchmark needs ../shared/data/cifar10n.")

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
        from bench_flags_scoring import score_label_set  # noqa: E402

        report["label_sets"][column] = score_label_set(result, clean, train_seconds)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
