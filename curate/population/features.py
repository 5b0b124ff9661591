"""What a dense network sees in an image: its features, for near-duplicate search
(:func:`curate.science.duplicates.feature_duplicates`), and the copies that set the search's threshold."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

COPIES = 256
"""Images the first job copies to calibrate the feature threshold: a share of 1 in 200 on a 50,000-image set."""
COPY_KINDS = ("shifted", "mirrored", "cropped", "resized", "recoloured")
"""How the made copies differ from their originals, one kind per copy in turn: a sixteenth of the side,
left-right, the central 85% enlarged back, down to 80% and back, brightness and contrast +-15%."""


def last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear layer whose input could serve as its features.")
    return linears[-1]


@torch.no_grad()
def embed(model: nn.Module, pixels: np.ndarray, normalize, batch_size: int | None = None) -> np.ndarray:
    """``(n, D)`` float16: the input of the model's last linear layer (its classifier) for each image."""
    from curate.population.train import for_inference, image_shape, prediction_batch

    model = for_inference(model)
    batch_size = batch_size or prediction_batch(model, image_shape(pixels), normalize.device)
    captured: list[torch.Tensor] = []
    hook = last_linear(model).register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0].flatten(1).float()))
    try:
        out = []
        for start in range(0, len(pixels), batch_size):
            captured.clear()
            model(normalize(pixels[start:start + batch_size]))
            out.append(captured[-1].cpu().numpy())
    finally:
        hook.remove()
    return np.concatenate(out).astype(np.float16) if out else np.zeros((0, last_linear(model).in_features), np.float16)


def made_copies(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A near copy of each image of ``pixels`` ``(n, c, h, w)`` uint8, of the kinds :data:`COPY_KINDS` in turn."""
    x = torch.as_tensor(np.asarray(pixels)).float()
    _, _, h, w = x.shape
    out = x.clone()
    for i in range(len(x)):
        kind = COPY_KINDS[i % len(COPY_KINDS)]
        image = x[i:i + 1]
        if kind == "shifted":
            dy, dx = (max(1, round(side / 16)) * int(rng.choice([-1, 1])) for side in (h, w))
            padded = F.pad(image, (abs(dx), abs(dx), abs(dy), abs(dy)), mode="replicate")
            image = padded[..., abs(dy) + dy:abs(dy) + dy + h, abs(dx) + dx:abs(dx) + dx + w]
        elif kind == "mirrored":
            image = image.flip(3)
        elif kind == "cropped":
            ch, cw = max(1, round(0.85 * h)), max(1, round(0.85 * w))
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            image = F.interpolate(image[..., top:top + ch, left:left + cw], size=(h, w), mode="bilinear",
                                  align_corners=False)
        elif kind == "resized":
            small = F.interpolate(image, size=(max(1, round(0.8 * h)), max(1, round(0.8 * w))), mode="bilinear",
                                  align_corners=False)
            image = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        else:
            mean = image.mean()
            image = (image - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.85, 1.15)
        out[i] = image[0]
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


def features_and_copies(model: nn.Module, pixels, normalize, seed: int) -> dict[str, np.ndarray]:
    """The fields a job stores for the duplicate search: ``features`` of every image, and ``copy_features`` of
    copies of ``copy_rows`` (a seeded sample of up to :data:`COPIES` images)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(pixels), min(COPIES, len(pixels)), replace=False))
    return {"features": embed(model, pixels, normalize),
            "copy_features": embed(model, made_copies(pixels[rows], rng), normalize), "copy_rows": rows}
