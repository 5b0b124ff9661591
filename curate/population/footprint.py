"""What a network costs to keep and to run: weights, multiply-accumulates and measured CPU latency.

- weights: the convolution and linear weights that are not zero. An unstructured-pruned copy keeps its
  shape but stores only its nonzero weights (index overhead not counted); a filter-pruned copy or a
  distilled student is smaller outright; a quantized copy has the dense network's weights at fewer bits
  (memory is weights times bits, :func:`curate.science.analysis.level_table`).
- MACs: multiply-accumulates of one image through the convolution and linear layers, each layer's count
  scaled by the share of its weights that are nonzero: the work a sparse kernel could skip. Dense
  kernels skip none of it, which the latency shows.
- latency: the fastest of several timings of forward passes over a batch of images on the CPU, in
  milliseconds per image (the minimum, because other work on the machine only ever adds time). The
  network keeps its memory layout (curate trains channels-last), which matters as much as its size.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from curate.population.models import weight_layers

LATENCY_BATCH = 64
LATENCY_REPEATS = 7


def nonzero_weights(model: nn.Module) -> int:
    """Nonzero convolution and linear weights."""
    return int(sum(int((m.weight != 0).sum()) for m in weight_layers(model)))


@torch.no_grad()
def macs_per_image(model: nn.Module, image_size: int, channels: int = 3) -> float:
    """Multiply-accumulates of one ``channels x image_size x image_size`` image, each convolution and
    linear layer's scaled by the nonzero share of its weights."""
    total = [0.0]

    def count(module, _inputs, output):
        w = module.weight
        density = float((w != 0).sum()) / max(1, w.numel())
        if isinstance(module, nn.Conv2d):
            per_output = w.shape[1] * w.shape[2] * w.shape[3]  # in_channels / groups * kernel
            total[0] += density * output.shape[1] * output.shape[2] * output.shape[3] * per_output
        else:
            total[0] += density * w.shape[0] * w.shape[1]

    probe = copy.deepcopy(model).float().cpu().eval()
    handles = [m.register_forward_hook(count) for m in weight_layers(probe)]
    try:
        probe(torch.zeros(1, channels, image_size, image_size))
    finally:
        for h in handles:
            h.remove()
    return total[0]


@torch.no_grad()
def cpu_latencies_ms(models: list[nn.Module], image_size: int, batch: int = LATENCY_BATCH,
                     repeats: int = LATENCY_REPEATS, channels: int = 3, min_seconds: float = 0.02) -> np.ndarray:
    """Milliseconds per image of each network on the CPU: the fastest of ``repeats`` timings, each of as
    many forward passes over ``batch`` images as fill ``min_seconds``.

    The networks take turns, round after round, so that a machine that slows down or speeds up during
    the measurement (other work, clock changes) affects them all alike.
    """
    nets = [copy.deepcopy(m).cpu().eval() for m in models]
    x = torch.randn(batch, channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
    passes = []
    for net in nets:  # warm-up, which also sets how many passes fill a timing
        started = time.perf_counter()
        net(x)
        passes.append(max(1, int(min_seconds / max(time.perf_counter() - started, 1e-6))))
    best = np.full(len(nets), np.inf)
    for _ in range(repeats):
        for i, net in enumerate(nets):
            started = time.perf_counter()
            for _ in range(passes[i]):
                net(x)
            best[i] = min(best[i], (time.perf_counter() - started) / passes[i])
    return 1000.0 * best / batch


def footprints(models: list[nn.Module], image_size: int, *, shapes_of: list[nn.Module | None] | None = None,
               latency: bool = True) -> np.ndarray:
    """``(len(models), 3)``: each network's ``[weights, macs, latency_ms]`` (see the module docstring).

    ``shapes_of[i]``: count weights and MACs on this network instead of ``models[i]`` (a quantized copy, whose
    layers torch may have replaced with ones that hide their weights, counts as the network it was
    quantized from); the latency is always the model's own. ``latency=False``: NaN latencies, not timed.
    """
    shapes_of = shapes_of or [None] * len(models)
    counted = [shape if shape is not None else model for model, shape in zip(models, shapes_of)]
    latency = cpu_latencies_ms(models, image_size) if latency else np.full(len(models), np.nan)
    return np.array([[nonzero_weights(m), macs_per_image(m, image_size), t] for m, t in zip(counted, latency)],
                    dtype=np.float64)


def footprint(model: nn.Module, image_size: int) -> np.ndarray:
    """``[weights, macs, latency_ms]`` of one network."""
    return footprints([model], image_size)[0]
