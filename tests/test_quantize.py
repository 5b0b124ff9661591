"""Post-training quantization levels: per-channel integer rounding, float formats, torch dynamic int8."""

import pytest
import torch

from curate.population.models import build_model
from curate.population.quantize import fake_quantize_per_channel, quantized_copy


def test_int4_per_channel_by_hand():
    w = torch.tensor([[0.7, -0.35, 0.1, 0.0], [7.0, 3.5, -1.0, 0.2]])
    q = fake_quantize_per_channel(w, 4)  # qmax 7: scales 0.1 and 1.0
    assert torch.allclose(q, torch.tensor([[0.7, -0.4, 0.1, 0.0], [7.0, 4.0, -1.0, 0.0]]))


def test_integer_levels_error_and_scale_invariance():
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3)
    for bits in (4, 8):
        q = fake_quantize_per_channel(w, bits)
        qmax = 2 ** (bits - 1) - 1
        scale = w.reshape(16, -1).abs().amax(1) / qmax
        assert ((q - w).reshape(16, -1).abs().amax(1) <= scale / 2 + 1e-6).all()
        assert max(len(torch.unique(c)) for c in q.reshape(16, -1)) <= 2 * qmax + 1
    # Scaling an output channel (as folding batch norm does) scales its quantized weights alike.
    factor = torch.linspace(0.5, 3.0, 16)[:, None, None, None]
    assert torch.allclose(fake_quantize_per_channel(w * factor, 4), fake_quantize_per_channel(w, 4) * factor,
                          atol=1e-5)


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "int8", "int4", "dyn-int8"])
def test_quantized_copy_is_close_and_leaves_the_model_alone(fmt):
    torch.manual_seed(0)
    model = build_model("resnet-small:16", 10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        dense = model(x)
        quantized = quantized_copy(model, fmt)(x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    tolerance = {"fp16": 1e-2, "bf16": 5e-2, "int8": 5e-2, "dyn-int8": 5e-2, "int4": 1.0}[fmt]
    assert (quantized - dense).abs().max() < tolerance * dense.abs().max()
    if fmt in ("int4", "int8", "bf16"):
        assert not torch.equal(quantized, dense)


def test_unknown_format_is_named():
    with pytest.raises(ValueError, match="int3"):
        quantized_copy(build_model("resnet-small:16", 10), "int3")
