#!/usr/bin/env python
"""Benchmark: do networks trained together (stacked as one, ``--train-together``) train faster than one by one?

K members x F folds are independent networks of one architecture. curate can stack G of them as one
network whose convolutions have ``groups=G`` (:func:`curate.population.models.stack_networks`), so that G
small operations become one large one. This times the product's own training loop
(:func:`curate.population.train.fit`: batches, augmentation, optimiser) for G networks both ways, at the
shapes curate trains: digits at 16 px with the demo's width-16 network, CIFAR at 32 px with the default
width 32, at the default batch and at a GPU-sized one.

    python scripts/bench_together.py --out out/bench_together_cpu.json
    python scripts/bench_together.py --max-batch 64 --out out/bench_together_cpu_small.json
    python scripts/bench_together.py --count-operations --out out/bench_together_operations.json
    python scripts/bench_together.py --device cuda --out out/bench_together_cuda.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from curate.population.models import SmallResNet, stack_networks
from curate.population.train import FitPart, Normalizer, TrainSettings, fit, synchronize

SHAPES = ((16, 16, 56, "digits, the demo"), (32, 32, 64, "CIFAR, default batch"), (32, 32, 512, "CIFAR, GPU batch"))


def time_fit(size: int, width: int, batch: int, networks: int, steps: int, device: torch.device) -> dict:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (batch * steps, 3, size, size), dtype=np.uint8)
    labels = rng.integers(0, 10, batch * steps)
    normalize = Normalizer(*Normalizer.channel_stats(pixels), device)
    settings = TrainSettings(batch_size=batch)
    parts = [FitPart(pixels, labels, seed) for seed in range(networks)]
    models = [SmallResNet(10, width).to(device).to(memory_format=torch.channels_last) for _ in range(networks)]
    stacked = stack_networks(models)
    out = {"size": size, "width": width, "batch": batch, "networks": networks, "steps": steps}
    one_by_one = lambda: [fit(m, [p], normalize, settings, 1, 0.05) for m, p in zip(models, parts)]  # noqa: E731
    together = lambda: fit(stacked, parts, normalize, settings, 1, 0.05)  # noqa: E731
    for name, run in (("one_by_one", one_by_one), ("together", together)):
        run()  # one-time setup of the kernels
        synchronize(device)
        started = time.perf_counter()
        run()
        synchronize(device)
        out[f"{name}_ms_per_step"] = 1000 * (time.perf_counter() - started) / steps
    return out


def operations_a_step(networks: int, margins: bool, batch: int = 64, steps: int = 2) -> float:
    """Top-level torch operations one training step of ``networks`` stacked CIFAR-sized networks issues (the CPU
    profiler's count): on a GPU each is a launch, or a CPU-side draw, and their number is what a small network's
    step costs there."""
    from torch.profiler import ProfilerActivity, profile

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (batch * steps, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, batch * steps)
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    parts = [FitPart(pixels, labels, seed, margins=np.zeros((len(labels), 2)) if margins else None)
             for seed in range(networks)]
    stacked = stack_networks([SmallResNet(10, 8).to(memory_format=torch.channels_last) for _ in range(networks)])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit(stacked, parts, normalize, TrainSettings(batch_size=batch), 1, 0.05)
    return sum(e.cpu_parent is None and e.name.startswith("aten::") for e in prof.events()) / steps


def count_operations(networks: int) -> dict:
    rows = {f"{g} networks{' with margins' if m else ''}": operations_a_step(g, m) for m in (False, True)
            for g in (2, networks)}
    print("top-level torch operations a training step of stacked networks (CPU profiler):")
    for name, count in rows.items():
        print(f"  {name:<28} {count:>6.0f}")
    for m in ("", " with margins"):
        extra = (rows[f"{networks} networks{m}"] - rows[f"2 networks{m}"]) / (networks - 2)
        print(f"  each network more{m:<14} {extra:>6.1f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=8, help="G: the default population's K x F")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: every core)")
    parser.add_argument("--max-batch", type=int, help="leave out the shapes of larger batches (on 2 CPU cores the "
                                                        "GPU batch alone takes about ten minutes)")
    parser.add_argument("--shapes", help="SIZE:WIDTH:BATCH,... instead of the default three (e.g. 32:64:512)")
    parser.add_argument("--count-operations", action="store_true",
                        help="count the torch operations a stacked step issues instead of timing (seconds, any machine)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.count_operations:
        rows = count_operations(args.networks)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"operations_a_step": rows}, indent=2))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = 20 if device.type == "cuda" else 6
    shapes = SHAPES if not args.shapes else [(*map(int, spec.split(":")), "CIFAR" if spec.startswith("32:") else "")
                                             for spec in args.shapes.split(",")]
    rows = [dict(time_fit(size, width, batch, args.networks, steps, device), shape=what)
            for size, width, batch, what in shapes if args.max_batch is None or batch <= args.max_batch]
    print(f"{args.networks} networks, {device}, {torch.get_num_threads()} threads: one step of every network")
    print(f"{'shape':<24} {'image':>6} {'width':>6} {'batch':>6} {'one by one ms':>14} {'together ms':>12} "
          f"{'speed-up':>9}")
    for r in rows:
        print(f"{r['shape']:<24} {r['size']:>6} {r['width']:>6} {r['batch']:>6} {r['one_by_one_ms_per_step']:>14.0f} "
              f"{r['together_ms_per_step']:>12.0f} {r['one_by_one_ms_per_step'] / r['together_ms_per_step']:>8.2f}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                                              "rows": rows}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
