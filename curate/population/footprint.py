"""What a network costs to keep and to run: weights, multiply-accumulates and measured CPU latency.

- weights: the convolution and linear weights that are not zero. An unstructured-pruned copy keeps its
  shape but stores only its nonzero weights (index overhead not counted); a filter-pruned copy or a
  distilled student is smaller outright; a quantized copy has the dense network's weights at fewer bits
  (memory is weights times bits, :func:`curate.science.analysis.level_table`).
- MACs: multiply-accumulates of one image through the convolution and linear layers, each layer's count
  scaled by the share of its weights that are nonzero: the work a sparse kernel could skip. Dense
  kernels skip none of it, which the latency shows.
- latency: the fastest of several forward passes over a batch of images on the CPU, in milliseconds per
  image (the minimum, because other work on the machine only ever adds time).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

FOOTPRINT_COLUMNS = ("weights", "macs", "latency_ms")
LATENCY_BATCH = 64
LATENCY_REPEATS = 7


def _weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def nonzero_weights(model: nn.Module) -> int:
    """Nonzero convolution and linear weights."""
    return int(sum(int((m.weight != 0).sum()) for m in _weight_layers(model)))


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
    handles = [m.register_forward_hook(count) for m in _weight_layers(probe)]
    try:
        probe(torch.zeros(1, channels, image_size, image_size))
    finally:
        for h in handles:
            h.remove()
    return total[0]


@torch.no_grad()
def cpu_latency_ms(model: nn.Module, image_size: int, batch: int = LATENCY_BATCH, repeats: int = LATENCY_REPEATS,
                   channels: int = 3) -> float:
    """Milliseconds per image of the fastest of ``repeats`` forward passes over ``batch`` images on the CPU
    (after one warm-up)."""
    net = copy.deepcopy(model).cpu().eval()
    x = torch.randn(batch, channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
    net(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - started)
    return 1000.0 * float(np.min(times)) / batch


def footprint(model: nn.Module, image_size: int, *, shape_of: nn.Module | None = None) -> np.ndarray:
    """``[weights, macs, latency_ms]`` of ``model`` (see the module docstring).

    ``shape_of``: count weights and MACs on this network instead (a quantized copy, whose layers torch may
    have replaced with ones that hide their weights, counts as the network it was quantized from); the
    latency is always ``model``'s own.
    """
    counted = shape_of if shape_of is not None else model
    return np.array([nonzero_weights(counted), macs_per_image(counted, image_size),
                     cpu_latency_ms(model, image_size)], dtype=np.float64)
