#!/usr/bin/env python
"""Benchmark: FiftyOne Brain's hardness and mistakenness, as the Brain computes them and as curate writes them.

Side by side on one throwaway dataset (its own mongod) of N samples with a ground-truth label and a prediction
with logits: ``fiftyone.brain.compute_hardness`` + ``compute_mistakenness(use_logits=True)``, which save sample
by sample, against :func:`curate.fiftyone.write.write_brain_fields`, which records the same Brain runs and
writes the same values in one batch each. Rounds alternate; the fastest of each counts. Checks the values agree.

    python scripts/bench_brain_fields.py --n 2000 --out out/bench_brain_fields.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from types import SimpleNamespace

import numpy as np

from bench_pies import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="curate-bench-brain-")
    os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(home, "mongo")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    try:
        import fiftyone as fo
        import fiftyone.brain as fob

        from curate.fiftyone.write import write_brain_fields

        rng = np.random.default_rng(0)
        classes = [str(c) for c in range(10)]
        logits = rng.normal(0, 2, (args.n, 10))
        dataset = fo.Dataset()
        dataset.add_samples([fo.Sample(filepath=f"/nowhere/{i}.png", gt=fo.Classification(label=classes[i % 10]),
                                       pred=fo.Classification(label=classes[int(row.argmax())], logits=row.tolist()))
                             for i, row in enumerate(logits)])
        best = {"brain": np.inf, "curate": np.inf}
        for r in range(args.rounds):
            started = time.perf_counter()
            fob.compute_hardness(dataset, "pred", hardness_field=f"brain_h{r}", progress=False)
            fob.compute_mistakenness(dataset, "pred", "gt", mistakenness_field=f"brain_m{r}", use_logits=True,
                                     progress=False)
            best["brain"] = min(best["brain"], time.perf_counter() - started)
            started = time.perf_counter()
            write_brain_fields(dataset, SimpleNamespace(dense="pred"), "gt",
                               {"hardness": f"curate_h{r}", "mistakenness": f"curate_m{r}"})
            best["curate"] = min(best["curate"], time.perf_counter() - started)
        diff = max(float(np.abs(np.array(dataset.values(f"brain_{k}0")) - np.array(dataset.values(f"curate_{k}0"))).max())
                   for k in ("h", "m"))
        print(f"{args.n:,} samples: FiftyOne Brain {best['brain']:.1f} s, curate {best['curate']:.1f} s "
              f"({best['brain'] / best['curate']:.1f}x); largest difference {diff:.1e}")
        write_report(args.out, {"n": args.n, "seconds": best, "speedup": best["brain"] / best["curate"],
                                "max_difference": diff})
        dataset.delete()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
