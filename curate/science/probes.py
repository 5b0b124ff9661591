"""Probe suites: images of known category made from the dataset itself, to calibrate the flags.

After Metadata Archaeology (Siddiqui et al. 2022): a probe's category is known by construction, so
the population's behaviour on probes says, for this dataset and these models, what a two-object
image or a corrupted image looks like to them. curate predicts probes with every network (no
network trains on them), and :mod:`curate.science.flags` sets its multi-object and corruption thresholds
from those predictions instead of from constants.

Pure numpy (and scipy's Gaussian filter) over uint8 arrays ``(n, 3, h, w)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

TWO_CLASS = "two_class"
CORRUPTIONS = ("noise", "blur", "dark", "low_contrast")
KINDS = (TWO_CLASS, *CORRUPTIONS)


@dataclass
class ProbeSuite:
    """Probe images and what they are.

    Attributes:
        pixels: uint8 ``(p, 3, h, w)``.
        kinds: ``(p,)`` one of :data:`KINDS` each.
        class_a: ``(p,)`` class of the (left) source image.
        class_b: ``(p,)`` class of the right source image for two-class composites, else -1.
    """

    pixels: np.ndarray
    kinds: np.ndarray
    class_a: np.ndarray
    class_b: np.ndarray

    def __len__(self) -> int:
        return len(self.kinds)

    def mask(self, *kinds: str) -> np.ndarray:
        return np.isin(self.kinds, kinds)


def two_class_composites(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two objects in one frame: ``a`` and ``b`` ``(n, 3, h, w)`` each shrunk to 45-55% of the side and placed
    in opposite halves (left/right or top/bottom, anywhere within their half) on the pair's mean border
    colour, as objects fall in real photos rather than on the windows' grid."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    h, w = a.shape[-2:]
    border = np.concatenate([x[..., [0, -1], :].reshape(*x.shape[:2], -1) for x in (a, b)]
                            + [x[..., :, [0, -1]].reshape(*x.shape[:2], -1) for x in (a, b)], axis=-1)
    out = np.broadcast_to(border.mean(axis=-1)[..., None, None], a.shape).copy()
    for i in range(len(a)):
        for x, (top, left, sh, sw) in zip((a[i], b[i]), two_object_placements(h, w, rng)):
            out[i, :, top:top + sh, left:left + sw] = _resize(x, sh, sw)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def two_object_placements(h: int, w: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Where two objects go in an ``h x w`` frame: each shrunk to 45-55% of the side, in opposite halves
    (left/right or top/bottom, at random), anywhere within its half; ``(top, left, height, width)`` each."""
    side_by_side = rng.random() < 0.5
    placed = []
    for k in range(2):
        scale = rng.uniform(0.45, 0.55)
        sh, sw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        if side_by_side:
            top = rng.integers(0, h - sh + 1)
            left = rng.integers(0, max(0, w // 2 - sw) + 1) if k == 0 else rng.integers(min(w // 2, w - sw), w - sw + 1)
        else:
            left = rng.integers(0, w - sw + 1)
            top = rng.integers(0, max(0, h // 2 - sh) + 1) if k == 0 else rng.integers(min(h // 2, h - sh), h - sh + 1)
        placed.append((int(top), int(left), sh, sw))
    return placed


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` ``(c, h, w)`` resized by area averaging (each output pixel the mean of the input it covers)."""
    return _area_matrix(image.shape[-2], height) @ image @ _area_matrix(image.shape[-1], width).T


def _area_matrix(side: int, new: int) -> np.ndarray:
    """``(new, side)``: row ``i`` averages input pixels over ``[i, i + 1) * side / new``, by overlap."""
    edges = np.arange(new + 1) * side / new
    starts, stops = edges[:-1, None], edges[1:, None]
    pixel = np.arange(side)[None, :]
    overlap = np.clip(np.minimum(stops, pixel + 1) - np.maximum(starts, pixel), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def corrupt(images: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A corrupted copy at a fixed, strong severity (about ImageNet-C severity 3 to 4)."""
    x = images.astype(np.float32)
    size = images.shape[-1]
    if kind == "noise":
        x = x + rng.normal(0.0, 0.2 * 255, size=x.shape)
    elif kind == "blur":
        x = gaussian_filter(x, sigma=(0, 0, size / 16, size / 16))
    elif kind == "dark":
        x = x * 0.15
    elif kind == "low_contrast":
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        x = mean + (x - mean) * 0.15
    else:
        raise ValueError(f"Unknown corruption {kind!r}; choose one of {CORRUPTIONS}.")
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def make_probes(pixels: np.ndarray, labels: np.ndarray, per_kind: int = 256, seed: int = 0) -> ProbeSuite:
    """``per_kind`` probes of every kind in :data:`KINDS`, drawn from ``pixels`` with a fixed seed.

    Two-class composites pair images of two different classes; corruptions are copies of single
    images. Sources are drawn uniformly, so classes appear in proportion to the dataset.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0 or len(np.unique(labels)) < 2:
        raise ValueError("Probes need images of at least two classes.")
    rng = np.random.default_rng(seed)
    chunks, kinds, class_a, class_b = [], [], [], []

    first = rng.integers(0, n, per_kind)
    second = rng.integers(0, n, per_kind)
    clash = labels[first] == labels[second]
    while clash.any():
        second[clash] = rng.integers(0, n, int(clash.sum()))
        clash = labels[first] == labels[second]
    chunks.append(two_class_composites(np.asarray(pixels[first]), np.asarray(pixels[second]), rng))
    kinds += [TWO_CLASS] * per_kind
    class_a.append(labels[first])
    class_b.append(labels[second])

    for kind in CORRUPTIONS:
        source = rng.integers(0, n, per_kind)
        chunks.append(corrupt(np.asarray(pixels[source]), kind, rng))
        kinds += [kind] * per_kind
        class_a.append(labels[source])
        class_b.append(np.full(per_kind, -1))
    return ProbeSuite(np.concatenate(chunks), np.array(kinds), np.concatenate(class_a), np.concatenate(class_b))
