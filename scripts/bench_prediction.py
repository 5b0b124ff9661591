#!/usr/bin/env python
"""Benchmark: how fast a network predicts on the CPU, before and after batch norm folding and cache-sized batches.

Predictions are a third of a CIFAR population's estimated time (`curate run` prints the split). This times
:func:`curate.population.train.predict_probs` on the shapes curate predicts (digits at 16 px with the demo's
width-16 network, CIFAR at 32 px with the default width 32), one thread as in a worker process, three ways:
as before (batches of 512, batch norm run as its own layer), with batch norm folded into the convolutions
(:func:`curate.population.train.for_inference`), and as now (folded, :func:`curate.population.train.prediction_batch`
images a batch). The three take turns, round after round, and the fastest round counts. It also checks that
the predictions agree.

    python scripts/bench_prediction.py --out out/bench_prediction.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench_pies import write_report
from curate.population import train
from curate.population.models import SmallResNet
from curate.population.train import Normalizer, predict_probs, prediction_batch

SHAPES = ((16, 16, "digits, the demo"), (32, 32, "CIFAR, default"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fold = train.for_inference
    rows = []
    print(f"{'shape':<18} {'before ms/img':>13} {'folded':>8} {'now':>8} {'now batch':>9} {'speed-up':>8} {'max diff':>9}")
    for size, width, name in SHAPES:
        torch.manual_seed(0)
        model = SmallResNet(10, width).to(memory_format=torch.channels_last)
        with torch.no_grad():  # trained-looking batch norms
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.5, 2.0)
        pixels = np.random.default_rng(0).integers(0, 256, (args.images, 3, size, size), dtype=np.uint8)
        normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
        batch = prediction_batch(model, pixels.shape[1:], torch.device("cpu"))
        ways = {"before": (False, 512), "folded": (True, 512), "now": (True, batch)}
        best = {k: np.inf for k in ways}
        out = {}
        for _ in range(args.rounds):
            for way, (folded, size_of_batch) in ways.items():
                train.for_inference = fold if folded else (lambda m: m.eval())
                started = time.perf_counter()
                out[way] = predict_probs(model, pixels, normalize, batch_size=size_of_batch)
                best[way] = min(best[way], time.perf_counter() - started)
        train.for_inference = fold
        ms = {k: 1000 * v / args.images for k, v in best.items()}
        diff = float(np.abs(out["now"] - out["before"]).max())
        rows.append({"shape": name, "image_size": size, "width": width, "batch_now": batch, "ms_per_image": ms,
                     "speedup": ms["before"] / ms["now"], "max_probability_difference": diff})
        print(f"{name:<18} {ms['before']:>13.3f} {ms['folded']:>8.3f} {ms['now']:>8.3f} {batch:>9} "
              f"{ms['before'] / ms['now']:>7.2f}x {diff:>9.1e}", flush=True)
    write_report(args.out, {"images": args.images, "threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
