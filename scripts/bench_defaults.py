#!/usr/bin/env python
"""How many members (K) and folds (F)? Measure it on digits rather than guess.

For each (K, F) the population is trained twice with different base seeds. Reported per config:
wall time of one population, out-of-sample dense accuracy (modal label vs the true label), PIE
fraction, and the stability of the PIE set across the two seeds (Jaccard index of the sets of
images that are PIEs at any level, and at the strongest level). A PIE set that changes with the
seed is noise; more members make the modal labels, and so the PIEs, more stable.

    python scripts/bench_defaults.py --configs 2x2,4x2,8x2,4x4 --out out/bench_defaults.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


from curate.population.pipeline import CurateConfig, run_curate  # noqa: E402
from curate.data.sources import digits  # noqa: E402
from curate.population.train import TrainSettings  # noqa: E402


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="2x2,4x2,8x2,4x4", help="Comma-separated KxF pairs.")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    images = digits()
    truth = images.labels.copy()
    rows = []
    for spec in args.configs.split(","):
        k, f = (int(x) for x in spec.lower().split("x"))
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            n_train = len(images) * (f - 1) // f
            config = CurateConfig(members=k, folds=f, image_size=16, seed=seed, train=TrainSettings(
                epochs=args.epochs, finetune_epochs=args.finetune_epochs, hflip=False,
                batch_size=int(min(256, max(32, n_train // 16)))))
            started = time.time()
            with tempfile.TemporaryDirectory(prefix="curate-bench-") as run_dir:
                result = run_curate(images, config, run_dir, progress=False)
            runs.append((time.time() - started, result))
        (t0, r0), (_, r1) = runs[0], runs[1]
        row = {
            "members": k, "folds": f, "networks": k * f, "seconds": round(t0, 1),
            "dense_accuracy": float((r0.scores.dense_modal == truth).mean()),
            "pie_fraction_any": float(r0.scores.is_pie_any.mean()),
            "pie_fraction_strongest": float(r0.scores.is_pie[-1].mean()),
            "jaccard_any": jaccard(r0.scores.is_pie_any, r1.scores.is_pie_any),
            "jaccard_strongest": jaccard(r0.scores.is_pie[-1], r1.scores.is_pie[-1]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    header = list(rows[0])
    print("\n" + " | ".join(header))
    for row in rows:
        print(" | ".join(f"{row[h]:.3f}" if isinstance(row[h], float) else str(row[h]) for h in header))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
