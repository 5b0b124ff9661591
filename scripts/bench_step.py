#!/usr/bin/env python
"""Benchmark: one training step and one prediction of one network on the CPU, with torch's SGD and GELU and with curate's.

A worker trains and predicts with one thread. This times, on the shapes curate trains (digits at 16 px with
the demo's width-16 network and batch 56, CIFAR at 32 px with the default width 32 and batch 64):

- a training step (forward, loss, backward, optimiser step) with ``torch.optim.SGD`` and ``nn.GELU`` (before),
  with curate's :class:`curate.population.train.NesterovSGD` (same arithmetic, bit for bit), and with that
  and curate's :class:`curate.population.models.GELU` (computed in the tensor's memory order; now);
- a prediction batch (batch norm folded, :func:`curate.population.train.predict_probs`) with ``nn.GELU`` and with curate's GELU;
- the import that torch's optimizers do on first use, ``torch._dynamo``, in a fresh process: paid once by
  every process that trains (the run's cost estimate, each worker), and no longer by curate.

The ways take turns, round after round, and the fastest round counts. It also reports how far the two
GELUs' predictions are apart.

    python scripts/bench_step.py --out out/bench_step.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench_pies import write_report
from curate.population.models import GELU, SmallResNet
from curate.population.train import NesterovSGD, Normalizer, predict_probs

SHAPES = ((16, 16, 56, "digits, the demo"), (32, 32, 64, "CIFAR, default"))


def with_torchs_gelu(model: nn.Module) -> nn.Module:
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, GELU):
                setattr(module, name, nn.GELU())
    return model


def optimiser(model: nn.Module, ours: bool):
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    if ours:
        return NesterovSGD([(decay, 5e-4), (no_decay, 0.0)], momentum=0.9, lr=0.01)
    return torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                           lr=0.01, momentum=0.9, nesterov=True)


def step_seconds(model, opt, x, y, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - started) / steps


def import_seconds(module: str, repeats: int = 3) -> float:
    """Seconds a fresh interpreter takes to import ``module`` after torch (the fastest of ``repeats``)."""
    code = f"import time, torch; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
               for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps a round")
    parser.add_argument("--images", type=int, default=2048, help="images predicted a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'shape':<18} {'step: torch':>12} {'our SGD':>8} {'+ GELU':>8} {'speed-up':>8} "
          f"{'predict ms/img: torch GELU':>27} {'ours':>6} {'speed-up':>8} {'max diff':>8}")
    for size, width, batch, name in SHAPES:
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (args.images, 3, size, size), dtype=np.uint8)
        normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
        x = normalize(pixels[:batch]).contiguous(memory_format=torch.channels_last)
        y = torch.as_tensor(rng.integers(0, 10, batch))
        torch.manual_seed(0)
        start = SmallResNet(10, width).state_dict()
        trainers = {}
        for way, (ours_sgd, ours_gelu) in {"torch": (False, False), "our SGD": (True, False),
                                           "our SGD and GELU": (True, True)}.items():
            model = SmallResNet(10, width)
            model.load_state_dict(start)
            model = (model if ours_gelu else with_torchs_gelu(model)).to(memory_format=torch.channels_last).train()
            trainers[way] = (model, optimiser(model, ours_sgd))
            step_seconds(*trainers[way], x, y, 2)  # untimed: kernels and momentum set up
        best = {way: np.inf for way in trainers}
        for _ in range(args.rounds):
            for way, (model, opt) in trainers.items():
                best[way] = min(best[way], step_seconds(model, opt, x, y, args.steps))
        # Predictions: the same trained weights with either GELU.
        state = trainers["our SGD and GELU"][0].state_dict()
        predictors = {"torch GELU": with_torchs_gelu(SmallResNet(10, width)), "our GELU": SmallResNet(10, width)}
        for model in predictors.values():
            model.load_state_dict(state)
            model.to(memory_format=torch.channels_last)
        fastest, out = {k: np.inf for k in predictors}, {}
        for _ in range(args.rounds):
            for way, model in predictors.items():
                model.eval()
                started = time.perf_counter()
                out[way] = predict_probs(model, pixels, normalize)
                fastest[way] = min(fastest[way], time.perf_counter() - started)
        step_ms = {k: 1000 * v for k, v in best.items()}
        predict_ms = {k: 1000 * v / args.images for k, v in fastest.items()}
        diff = float(np.abs(out["torch GELU"] - out["our GELU"]).max())
        rows.append({"shape": name, "image_size": size, "width": width, "batch": batch, "step_ms": step_ms,
                     "step_speedup": step_ms["torch"] / step_ms["our SGD and GELU"], "predict_ms_per_image": predict_ms,
                     "predict_speedup": predict_ms["torch GELU"] / predict_ms["our GELU"],
                     "max_probability_difference": diff})
        print(f"{name:<18} {step_ms['torch']:>10.2f}ms {step_ms['our SGD']:>8.2f} {step_ms['our SGD and GELU']:>8.2f} "
              f"{step_ms['torch'] / step_ms['our SGD and GELU']:>7.2f}x {predict_ms['torch GELU']:>27.3f} "
              f"{predict_ms['our GELU']:>6.3f} {predict_ms['torch GELU'] / predict_ms['our GELU']:>7.2f}x {diff:>8.1e}",
              flush=True)
    dynamo = import_seconds("torch._dynamo")
    print(f"torch._dynamo's import, paid once by every process that trains with torch.optim: {dynamo:.2f} s")
    write_report(args.out, {"threads": args.threads, "steps": args.steps, "images": args.images, "rows": rows,
                            "dynamo_import_seconds": dynamo})


if __name__ == "__main__":
    main()
