"""Post-training quantization of a trained network, as compression levels beside pruning.

Every format is post-training and needs no data:

- ``fp16``, ``bf16``: every convolution and linear weight rounded to that float format.
- ``int8``, ``int4``: symmetric per-output-channel integer weights, scale ``max|w| / (2^(b-1) - 1)``
  per channel, round to nearest. Per-channel symmetric scales are invariant to a per-channel factor,
  so quantizing before or after folding batch norm into the convolution gives the same integers.
- ``dyn-int8``: torch's dynamic quantization (int8 weights, activations quantized on the fly), which
  applies to ``nn.Linear`` layers only and runs on CPU; on a small ResNet that is the classifier head.

The float and integer formats are weight-only: the copy holds the rounded (dequantized) weights and
computes exactly as the dense network does (float32 on CPU; bfloat16 autocast on CUDA, like every curate
prediction), so the comparison isolates what rounding the weights forgets. Under CUDA's bfloat16
autocast, convolutions and linear layers already see bfloat16 weights, so there the bf16 level equals
dense and fp16 nearly so: compare float formats on CPU. Full half-precision inference was not used
because CPU float16 convolutions are ~15x slower than float32 in torch 2.14.
Batch-norm parameters and biases stay in float32, as in deployed int8 models.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from curate.population.models import weight_layers

QUANT_FORMATS: dict[str, int] = {"fp16": 16, "bf16": 16, "int8": 8, "int4": 4, "dyn-int8": 8}
"""Format name -> bits per weight."""


def check_formats(formats) -> tuple[str, ...]:
    formats = tuple(formats)
    unknown = [f for f in formats if f not in QUANT_FORMATS]
    if unknown:
        raise ValueError(f"Unknown quantization format(s) {unknown}; choose from {list(QUANT_FORMATS)}.")
    if len(set(formats)) != len(formats):
        raise ValueError(f"Quantization formats repeat: {list(formats)}.")
    return formats


@torch.no_grad()
def fake_quantize_per_channel(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """``weight`` rounded to symmetric signed ``bits``-bit integers per output channel (dim 0), dequantized."""
    if bits < 2:
        raise ValueError(f"bits must be at least 2, got {bits}.")
    qmax = 2 ** (bits - 1) - 1
    flat = weight.reshape(weight.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp(min=torch.finfo(weight.dtype).tiny) / qmax
    q = torch.clamp(torch.round(flat / scale[:, None]), -qmax, qmax)
    return (q * scale[:, None]).reshape(weight.shape).to(weight.dtype)


def _weight_layers(model: nn.Module):
    return [m for m in weight_layers(model) if m.weight is not None]


@torch.no_grad()
def quantized_copy(model: nn.Module, fmt: str) -> nn.Module:
    """A quantized copy of ``model`` in format ``fmt`` (see the module docstring); ``model`` is untouched."""
    check_formats([fmt])
    if fmt == "dyn-int8":
        return dynamic_int8_copy(model)
    quantized = copy.deepcopy(model).eval()
    for layer in _weight_layers(quantized):
        w = layer.weight.data
        if fmt in ("fp16", "bf16"):
            dtype = torch.float16 if fmt == "fp16" else torch.bfloat16
            rounded = w.to(dtype).to(w.dtype)
        else:
            rounded = fake_quantize_per_channel(w, QUANT_FORMATS[fmt])
        # Keep the weights' memory layout: a channels-last network made contiguous runs slower, and its
        # measured latency would then be the layout's, not the quantization's.
        channels_last = w.ndim == 4 and w.is_contiguous(memory_format=torch.channels_last)
        layer.weight.data = rounded.contiguous(memory_format=torch.channels_last) if channels_last else rounded
    return quantized


def dynamic_int8_copy(model: nn.Module) -> nn.Module:
    """torch's dynamic int8 quantization of the linear layers, on CPU (the only backend it has)."""
    quantized = copy.deepcopy(model).eval().cpu()
    if not any(isinstance(m, nn.Linear) for m in quantized.modules()):
        return quantized  # nothing it applies to: the copy equals the dense network
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, but still ships (2.14) and needs
        # no extra dependency; the level simply disappears from QUANT_FORMATS when torch drops it.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(quantized, {nn.Linear}, dtype=torch.qint8)


def runs_on_cpu_only(fmt: str) -> bool:
    return fmt == "dyn-int8"
