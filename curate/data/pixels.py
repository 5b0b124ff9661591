"""Raw pixel-quality properties of image files: what :mod:`curate.science.quality` turns into the
corruption checks' severities. Reads files with PIL, so it lives here and not with the science.

:func:`measure_image` reads raw properties of one PIL image; :func:`measure_images` the same of many at
once, and :func:`measure_files` of every file, in chunks over all cores.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter, ImageStat

from curate.data.images import first_image_pixels, worth_a_process_pool

_BLOCK_SIDES = range(2, 9)  # enlargement factors (block sides) the pixelation check looks for
_BLOCK_CROP = 128  # measured on a central crop: block structure survives cropping, not resizing
_BLUR_MAX_SIDE = 64  # CleanVision measures blur on images at most 64 px on a side
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)


def _brightness(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return np.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 255


_SQUARES = np.arange(256, dtype=np.int32) ** 2


def brightness_percentiles(rgb: np.ndarray, percents: tuple[float, ...]) -> np.ndarray:
    """``np.percentile`` of :func:`_brightness` over each image of a uint8 batch ``(n, h, w, 3)``, ``(len(percents), n)``.

    Order statistics are taken on exact integer keys (1000 x the squared brightness, with 255 as 1) and only
    the few that a percentile interpolates between are turned into brightness: the same values as the
    float64 image, at a fraction of its memory and time.
    """
    n = len(rgb)
    keys = (241 * _SQUARES[rgb[..., 0]] + 691 * _SQUARES[rgb[..., 1]] + 68 * _SQUARES[rgb[..., 2]]).reshape(n, -1)
    size = keys.shape[1]
    positions = [p / 100 * (size - 1) for p in percents]
    lows = [int(np.floor(x)) for x in positions]
    kth = sorted({k for lo in lows for k in (lo, min(lo + 1, size - 1))})
    ordered = np.partition(keys, kth, axis=1)
    out = np.empty((len(percents), n))
    for i, (x, lo) in enumerate(zip(positions, lows)):
        below = np.sqrt(ordered[:, lo] / 1000.0) / 255
        above = np.sqrt(ordered[:, min(lo + 1, size - 1)] / 1000.0) / 255
        out[i] = below + (x - lo) * (above - below)
    return out


def jpeg_quality(image: Image.Image) -> float:
    """Estimated IJG quality (1..100) of a JPEG from its luminance table; NaN for other formats."""
    tables = getattr(image, "quantization", None)
    if not tables or 0 not in tables:
        return float("nan")
    table = np.asarray(tables[0], dtype=np.float64)
    if table.shape != _IJG_LUMA.shape:
        return float("nan")
    unclipped = (table > 1) & (table < 255)  # the encoder clips scaled entries to 1..255
    ratios = 100.0 * table[unclipped] / _IJG_LUMA[unclipped] if unclipped.any() else 100.0 * table / _IJG_LUMA
    scale = float(np.median(ratios))
    quality = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return float(np.clip(quality, 1, 100))


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkaer (1996) fast estimate of the standard deviation of additive noise, in 0..255 units."""
    return float(noise_sigmas(np.asarray(gray)[None])[0])


def block_variance(gray: np.ndarray) -> float:
    """Share of an image's variance left inside its best-fitting ``k``-pixel blocks, in [0, 1].

    For each block side ``k`` in 2..8 and each offset, rows (and columns) are cut into runs of ``k``
    pixels; the variance inside the runs, relative to the image's, is near 0 when every run repeats one
    value, as in an image enlarged ``k`` times by repeating pixels or a mosaic of ``k``-pixel tiles, and
    large for a photograph. Rows and columns are fitted separately (so a cost of O(k) passes, not
    O(k^2)) and averaged; the smallest over ``k`` is returned. 1.0 for flat or too small images.
    """
    return float(block_variances(np.asarray(gray)[None])[0])


def measure_image(image: Image.Image) -> dict[str, float]:
    """Raw quality properties of one image (CleanVision's, plus noise, contrast, blocks and JPEG quality)."""
    return measure_images([image])[0]


RAW_PROPERTIES = ("width", "height", "brightness_perc_99", "brightness_perc_5", "entropy", "blurriness",
                  "grayscale_hist_std", "noise_sigma", "contrast", "block_variance", "jpeg_quality")


def noise_sigmas(gray: np.ndarray) -> np.ndarray:
    """:func:`noise_sigma` of every image of a batch ``(n, h, w)`` of one size, computed together."""
    g = np.asarray(gray, dtype=np.float64)
    n, h, w = g.shape
    if h < 3 or w < 3:
        return np.zeros(n)
    # Immerkaer's kernel [[1,-2,1],[-2,4,-2],[1,-2,1]] is the outer product of two second differences: two
    # passes instead of nine, and on integer grey levels the same sums exactly.
    across = g[:, :, :-2] - 2 * g[:, :, 1:-1] + g[:, :, 2:]
    response = across[:, :-2] - 2 * across[:, 1:-1] + across[:, 2:]
    return math.sqrt(math.pi / 2) * np.abs(response).sum(axis=(1, 2)) / (6 * (w - 2) * (h - 2))


def block_variances(gray: np.ndarray) -> np.ndarray:
    """:func:`block_variance` of every image of a batch ``(n, h, w)`` of one size, computed together."""
    g = np.asarray(gray, dtype=np.float64)
    n, h, w = g.shape
    top, left = max(0, (h - _BLOCK_CROP) // 2), max(0, (w - _BLOCK_CROP) // 2)
    g = g[:, top:top + _BLOCK_CROP, left:left + _BLOCK_CROP]
    total = g.reshape(n, -1).var(axis=1)
    flat = total <= 0
    safe_total = np.where(flat, 1.0, total)

    def prefix_sums(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zero = np.zeros((*x.shape[:2], 1))
        return np.concatenate([zero, x.cumsum(axis=2)], axis=2), np.concatenate([zero, (x * x).cumsum(axis=2)], axis=2)

    def best_along_rows(sums, k: int) -> np.ndarray:
        c1, c2 = sums
        length = c1.shape[2] - 1
        best = np.full(n, np.inf)
        for offset in range(k):
            runs = (length - offset) // k
            if runs >= 2:
                # Strided views, not gathered copies: the run boundaries are every k-th prefix sum.
                stop = offset + k * runs
                mean = (c1[:, :, offset + k:stop + 1:k] - c1[:, :, offset:stop:k]) / k
                inside = ((c2[:, :, offset + k:stop + 1:k] - c2[:, :, offset:stop:k]) / k - mean * mean).mean(axis=(1, 2))
                best = np.minimum(best, np.maximum(0.0, inside) / safe_total)
        return np.where(np.isfinite(best), best, 1.0)

    # Contiguous copies: a cumulative sum along a strided axis is several times slower.
    rows, columns = prefix_sums(np.ascontiguousarray(g)), prefix_sums(np.ascontiguousarray(g.transpose(0, 2, 1)))
    best = np.ones(n)
    for k in _BLOCK_SIDES:
        if min(g.shape[1:]) < 2 * k:
            break
        best = np.minimum(best, 0.5 * (best_along_rows(rows, k) + best_along_rows(columns, k)))
    return np.where(flat, 1.0, best)


def measure_images(images: list[Image.Image]) -> list[dict[str, float]]:
    """:func:`measure_image` of every image, the arithmetic done together for images of one size: a few
    array operations over a batch cost far less than the same operations on each small image.
    Each image's properties do not depend on the others in its batch (a test holds it)."""
    rows: list[dict[str, float]] = []
    rgbs, grays = [], []
    for image in images:
        quality = jpeg_quality(image)
        width, height = image.size
        rgb = image.convert("RGB")
        small = rgb
        ratio = max(width, height) / _BLUR_MAX_SIDE
        if ratio > 1:
            small = rgb.resize((max(int(width // ratio), 1), max(int(height // ratio), 1)))
        gray_small = small.convert("L")
        rows.append({
            "width": float(width), "height": float(height), "entropy": float(rgb.entropy()),
            "blurriness": float(np.sqrt(ImageStat.Stat(gray_small.filter(ImageFilter.FIND_EDGES)).var[0])),
            "grayscale_hist_std": float(np.std(gray_small.histogram())), "jpeg_quality": quality,
        })
        rgbs.append(np.asarray(rgb))
        grays.append(np.asarray(rgb.convert("L")))
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, gray in enumerate(grays):
        by_size.setdefault(gray.shape, []).append(i)
    for same_size in by_size.values():
        # Sub-batches of about a million pixels: large enough to pay for numpy's per-call cost, small enough
        # that the float arrays stay in cache (a batch of 256 photos would stream ~100 MB per operation).
        height, width = grays[same_size[0]].shape
        step = max(1, _BATCH_PIXELS // max(1, height * width))
        for start in range(0, len(same_size), step):
            _measure_batch(same_size[start:start + step], rgbs, grays, rows)
    return [{name: row[name] for name in RAW_PROPERTIES} for row in rows]


_BATCH_PIXELS = 1 << 20


def _measure_batch(members: list[int], rgbs, grays, rows) -> None:
    """The array properties of images ``members`` (of one size), computed together, into their ``rows``."""
    rgb = np.stack([rgbs[i] for i in members])
    gray = np.stack([grays[i] for i in members]).astype(np.float64)
    high, low = brightness_percentiles(rgb, (99, 5))
    noise = noise_sigmas(gray)
    contrast = gray.reshape(len(members), -1).std(axis=1) / 255
    blocks = block_variances(gray)
    for j, i in enumerate(members):
        rows[i].update({"brightness_perc_99": float(high[j]), "brightness_perc_5": float(low[j]),
                        "noise_sigma": float(noise[j]), "contrast": float(contrast[j]),
                        "block_variance": float(blocks[j])})


def _measure_chunk(paths: list[str]) -> list[dict[str, float]]:
    """:func:`measure_images` of the readable files among ``paths``; an empty row for each unreadable one."""
    images, readable = [], []
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image)
                readable.append(i)
        except Exception:  # unreadable images are reported by the decoder, not here
            continue
    rows: list[dict[str, float]] = [{} for _ in paths]
    for i, row in zip(readable, measure_images(images)):
        rows[i] = row
    return rows


CHUNK = 256
"""Images measured together: enough for the batched arithmetic to pay, few enough to bound the memory
(256 images of 1024 x 1024 take about 2 GB for each float64 array over the batch)."""
def measure_files(filepaths: list[str], workers: int | None = None, progress: bool = True) -> pd.DataFrame:
    """:func:`measure_image` for every readable file, one row per path (NaN rows for unreadable ones).

    Chunks of :data:`CHUNK` files are measured together (:func:`measure_images`), in a pool of ``workers``
    processes (default: one per core) when there is enough work (:func:`curate.data.images.worth_a_process_pool`):
    the arithmetic is numpy's and PIL's, but the Python around it would hold the GIL in threads.
    """
    from tqdm.auto import tqdm

    chunks = [list(filepaths[i:i + CHUNK]) for i in range(0, len(filepaths), CHUNK)]
    workers = workers or os.cpu_count() or 1
    rows: list[dict[str, float]] = []
    done = 0  # chunks measured
    with tqdm(total=len(filepaths), desc="image quality", disable=not progress, unit="img") as bar:
        if workers > 1 and len(chunks) > 1 and worth_a_process_pool(len(filepaths), first_image_pixels(filepaths)):
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool

            # spawn, not fork: the parent holds torch's thread pools, which a forked child can deadlock on.
            try:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                    for chunk_rows in pool.map(_measure_chunk, chunks):
                        rows += chunk_rows
                        done += 1
                        bar.update(len(chunk_rows))
            except BrokenProcessPool:
                # A worker could not start (a __main__ that spawn cannot re-import, such as `python -`):
                # measure what is left here.
                pass
        for chunk in chunks[done:]:
            rows += _measure_chunk(chunk)
            bar.update(len(chunk))
    table = pd.DataFrame(rows, columns=list(RAW_PROPERTIES))
    table.insert(0, "filepath", list(filepaths))
    return table


def file_digests(filepaths: list[str], workers: int | None = None) -> list[str]:
    """SHA-256 of each file's bytes ("" for a file that cannot be read): equal digests are exact duplicates."""
    import hashlib

    def one(path: str) -> str:
        try:
            with open(path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except OSError:
            return ""

    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(pool.map(one, filepaths, chunksize=64))
