"""Common corruptions in the style of ImageNet-C / CIFAR-10-C, and the robustness tables built on them.

Hendrycks & Dietterich (ICLR 2019) corrupt each evaluation image at five severities. curate uses six of
their corruptions, with the severity parameters of their CIFAR-10-C generator (``make_cifar_c.py`` in
github.com/hendrycks/robustness), which suit the small images curate trains on:

============== ===================================================== ===========================
corruption     what it does                                          severities 1..5
============== ===================================================== ===========================
gaussian_noise add N(0, c) per pixel and channel (pixels in [0, 1])  c = .04 .06 .08 .09 .10
gaussian_blur  Gaussian filter, sigma c pixels at 32 px (scaled)     c = .4 .6 .7 .8 1.0
contrast       (x - channel mean) * c + channel mean                 c = .75 .5 .4 .3 .15
brightness     add c to HSV value (hue and saturation kept)          c = .05 .1 .15 .2 .3
jpeg           re-encode as JPEG at quality c                        c = 80 65 58 50 40
pixelate       box-downsample to c x size, box-upsample back         c = .95 .9 .85 .75 .65
============== ===================================================== ===========================

The packaged ImageNet-C re-implementations (``imagecorruptions``) pull in OpenCV, scikit-image and
ImageMagick and are tuned for 224 px images; these six need only numpy, scipy and Pillow. The
functions here are pure: uint8 ``(n, 3, h, w)`` in, uint8 of the same shape out, deterministic given
the generator.
"""

from __future__ import annotations

import io

import numpy as np

SEVERITY_PARAMETERS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "jpeg": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}
CORRUPTION_NAMES: tuple[str, ...] = tuple(SEVERITY_PARAMETERS)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def _unit(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(pixels, dtype=np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _gaussian_noise(pixels, c, rng):
    x = _unit(pixels)
    return _to_uint8(x + rng.normal(scale=c, size=x.shape).astype(np.float32))


def _gaussian_blur(pixels, c, rng):
    from scipy.ndimage import gaussian_filter

    sigma = c * pixels.shape[-1] / 32.0  # the CIFAR-10-C sigmas are for 32 px images
    return _to_uint8(gaussian_filter(_unit(pixels), sigma=(0, 0, sigma, sigma), mode="nearest"))


def _contrast(pixels, c, rng):
    x = _unit(pixels)
    means = x.mean(axis=(2, 3), keepdims=True)
    return _to_uint8((x - means) * c + means)


def _brightness(pixels, c, rng):
    # In HSV every RGB channel is proportional to V for fixed hue and saturation, so adding c to V
    # scales the pixel by (V + c) / V; black pixels (V = 0, no hue) become grey c.
    x = _unit(pixels)
    value = x.max(axis=1, keepdims=True)
    new_value = np.clip(value + c, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(value > 0, x * (new_value / np.where(value > 0, value, 1.0)), new_value)
    return _to_uint8(scaled)


def _jpeg(pixels, c, rng):
    from PIL import Image

    out = np.empty_like(pixels)
    for i, image in enumerate(pixels):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(buffer, "JPEG", quality=int(c))
        buffer.seek(0)
        out[i] = np.asarray(Image.open(buffer).convert("RGB")).transpose(2, 0, 1)
    return out


def _pixelate(pixels, c, rng):
    from PIL import Image

    h, w = pixels.shape[2:]
    small = (max(1, int(w * c)), max(1, int(h * c)))
    out = np.empty_like(pixels)
    for i, image in enumerate(pixels):
        pil = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))
        out[i] = np.asarray(pil.resize(small, Image.BOX).resize((w, h), Image.BOX)).transpose(2, 0, 1)
    return out


_FUNCTIONS = {
    "gaussian_noise": _gaussian_noise, "gaussian_blur": _gaussian_blur, "contrast": _contrast,
    "brightness": _brightness, "jpeg": _jpeg, "pixelate": _pixelate,
}


def check_corruptions(names, severities) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Validate corruption names and severities; returns them as tuples."""
    names, severities = tuple(names), tuple(int(s) for s in severities)
    unknown = [n for n in names if n not in SEVERITY_PARAMETERS]
    if unknown:
        raise ValueError(f"Unknown corruption(s) {unknown}; choose from {list(CORRUPTION_NAMES)}.")
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise ValueError(f"Severities must be integers 1 to 5 (ImageNet-C's scale), got {bad}.")
    return names, severities


def corrupt(pixels: np.ndarray, name: str, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A corrupted copy of ``pixels`` (uint8 ``(n, 3, h, w)``) at ``severity`` 1..5; the input is untouched."""
    check_corruptions([name], [severity])
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"pixels must be uint8 (n, 3, h, w), got {pixels.dtype} {pixels.shape}.")
    rng = rng if rng is not None else np.random.default_rng(0)
    return _FUNCTIONS[name](pixels, SEVERITY_PARAMETERS[name][severity - 1], rng)


def corrupted_suite(pixels: np.ndarray, names, severities, seed: int = 0) -> np.ndarray:
    """Every corruption at every severity: uint8 ``(len(names), len(severities), n, 3, h, w)``."""
    names, severities = check_corruptions(names, severities)
    rng = np.random.default_rng(seed)
    return np.stack([np.stack([corrupt(pixels, name, s, rng) for s in severities]) for name in names])
