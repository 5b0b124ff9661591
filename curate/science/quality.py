"""Pixel-level image quality: the signals behind the ``corruption`` flag.

The checks follow CleanVision's definitions (cleanlab's image auditing package, v0.3) so users who
know its issue types read the same scores: ``dark``, ``light``, ``low_information``, ``blurry``,
``odd_aspect_ratio``, ``odd_size`` (same formulas, same default thresholds). Five checks it lacks
are added: ``noisy`` (Immerkaer's fast noise estimate, flagged as an outlier of the dataset's own
distribution with CleanVision's IQR rule), ``low_contrast`` (RMS contrast, an outlier below the
dataset's own distribution by the same rule, on a log scale: washed-out, hazy or faded images, which
CleanVision's ``light`` and ``dark`` miss unless nearly every pixel is white or black),
``pixelated`` (a small image enlarged by repeating pixels, or a mosaic: the share of the image's
variance left inside its best-fitting k x k blocks, an outlier below the dataset's own distribution
on a log scale, so a dataset whose images are all enlarged the same way flags none of them),
``washed_out`` (no dark pixels left: the 5th-percentile brightness above mid-grey and above the
dataset's ``Q3 + 3 IQR``; a lifted black point that ``low_contrast`` misses on photographs, whose
contrast varies too much for its fence) and ``heavy_compression`` (the JPEG quality the file was
saved at, estimated from its luminance quantisation table).

:func:`curate.data.pixels.measure_image` reads raw properties of one PIL image; :func:`quality_severity`
turns the table of raw properties of a dataset into per-check severities in [0, 1] (0: no issue).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# CleanVision 0.3 defaults: an image has the issue when its score is below the threshold.
CLEANVISION_THRESHOLDS = {
    "dark": 0.32,
    "light": 0.05,
    "low_information": 0.3,
    "blurry": 0.29,
    "odd_aspect_ratio": 0.35,
}
IQR_FACTOR = 3.0  # CleanVision's odd_size rule, also used for noise
HEAVY_JPEG_QUALITY = 30  # below this the IJG encoder's blocking is plainly visible
CHECKS = (*CLEANVISION_THRESHOLDS, "odd_size", "noisy", "low_contrast", "pixelated", "washed_out",
          "heavy_compression")
_WASHED_OUT_FLOOR = 0.5  # a washed-out image's darkest 5% are brighter than mid-grey, whatever the dataset
_CONTRAST_FLOOR = 1.0 / 255  # RMS contrast of one grey level: flat images sit here on the log scale
_BLOCK_FLOOR = 1e-4  # within-block variance share of an exact enlargement, on the log scale
# IJG standard luminance quantisation table (quality 50), for estimating JPEG quality.


def _iqr_fences(values: np.ndarray) -> tuple[float, float] | None:
    """CleanVision's outlier fences ``(Q1 - 3 IQR, Q3 + 3 IQR)`` of the finite values; None if there are none."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None
    q1, q3 = np.percentile(finite, [25, 75])
    return float(q1 - IQR_FACTOR * (q3 - q1)), float(q3 + IQR_FACTOR * (q3 - q1))


def quality_scores(raw: pd.DataFrame) -> pd.DataFrame:
    """CleanVision's issue scores (lower is worse, in [0, 1]) from :func:`measure_image` rows."""
    blur = 1 - np.exp(-0.01 * raw["blurriness"].to_numpy(float))
    hist = 1 - np.exp(-0.01 * raw["grayscale_hist_std"].to_numpy(float))
    hist[hist <= 0.18] = 0  # CleanVision's color_threshold
    width, height = raw["width"].to_numpy(float), raw["height"].to_numpy(float)
    return pd.DataFrame({
        "dark": raw["brightness_perc_99"].to_numpy(float),
        "light": 1 - raw["brightness_perc_5"].to_numpy(float),
        "low_information": np.minimum(1.0, 0.1 * raw["entropy"].to_numpy(float)),
        "blurry": np.minimum(blur + hist, 1.0),
        "odd_aspect_ratio": np.minimum(width / height, height / width),
    }, index=raw.index)


def quality_severity(raw: pd.DataFrame) -> pd.DataFrame:
    """Severity of every check in :data:`CHECKS` per image, in [0, 1]; 0 means no issue.

    CleanVision checks: ``(threshold - score) / threshold`` when the score is below its threshold.
    ``odd_size`` and ``noisy``: how far the image's value lies beyond the dataset's IQR fence
    (``Q3 + 3 IQR``, and ``Q1 - 3 IQR`` for size), relative to the fence. ``low_contrast``: how far
    the RMS contrast lies below ``exp(Q1 - 3 IQR)`` of the log contrasts, relative to that fence
    (1 for a flat image). ``pixelated``: the same on the within-block variance share
    (:func:`block_variance`; 1 for an exact enlargement). ``washed_out``: how far the 5th-percentile
    brightness lies above ``max(Q3 + 3 IQR, 0.5)``, relative to the room left above it. ``heavy_compression``:
    how far the estimated JPEG quality lies below 30. Rows of unreadable images are all NaN.
    """
    scores = quality_scores(raw)
    out = pd.DataFrame(index=raw.index)
    for check, threshold in CLEANVISION_THRESHOLDS.items():
        out[check] = np.clip((threshold - scores[check].to_numpy()) / threshold, 0, 1)
    size = np.sqrt(raw["width"].to_numpy(float) * raw["height"].to_numpy(float))
    fences = _iqr_fences(size)
    if fences is not None:
        low, high = fences
        above = np.clip((size - high) / max(high, 1e-9), 0, 1)
        below = np.clip((low - size) / max(low, 1e-9), 0, 1) if low > 0 else np.zeros_like(size)
        out["odd_size"] = np.maximum(above, below)
    else:
        out["odd_size"] = np.nan
    sigma = raw["noise_sigma"].to_numpy(float)
    fences = _iqr_fences(sigma)
    if fences is not None:
        fence = max(fences[1], 1e-9)
        out["noisy"] = np.clip((sigma - fence) / fence, 0, 1)
    else:
        out["noisy"] = np.nan
    # Contrast spans orders of magnitude across natural images, so its fence is taken on a log scale.
    log_contrast = np.log(np.maximum(raw["contrast"].to_numpy(float), _CONTRAST_FLOOR))
    fences = _iqr_fences(log_contrast)
    if fences is not None:
        fence = math.exp(fences[0])
        out["low_contrast"] = np.clip(1 - np.exp(log_contrast) / max(fence, 1e-12), 0, 1)
    else:
        out["low_contrast"] = np.nan
    # Same rule on the share of variance inside k x k blocks: 1 for an exact enlargement of a small image.
    log_blocks = np.log(np.maximum(raw["block_variance"].to_numpy(float), _BLOCK_FLOOR))
    fences = _iqr_fences(log_blocks)
    if fences is not None:
        share, fence = np.exp(log_blocks), math.exp(fences[0])
        # Strictly below the fence: where every image is an enlargement (fence at the floor), none is flagged.
        depth = np.clip(1 - (share - _BLOCK_FLOOR) / max(fence - _BLOCK_FLOOR, 1e-12), 0, 1)
        out["pixelated"] = np.where(share < fence, depth, 0.0)
    else:
        out["pixelated"] = np.nan
    black_point = raw["brightness_perc_5"].to_numpy(float)
    fences = _iqr_fences(black_point)
    if fences is not None:
        fence = max(fences[1], _WASHED_OUT_FLOOR)
        lift = np.clip((black_point - fence) / max(1 - fence, 1e-9), 0, 1)
        out["washed_out"] = np.where(black_point > fence, lift, 0.0)
    else:
        out["washed_out"] = np.nan
    quality = raw["jpeg_quality"].to_numpy(float)
    out["heavy_compression"] = np.where(np.isfinite(quality),
                                        np.clip((HEAVY_JPEG_QUALITY - quality) / HEAVY_JPEG_QUALITY, 0, 1), 0.0)
    unreadable = raw["width"].isna().to_numpy()
    out.loc[unreadable, :] = np.nan
    return out
