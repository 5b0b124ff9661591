"""More than one object: image halves that are confidently different classes. Pure numpy.

A near tie between two classes over the whole image is ambiguity: it also comes from fine-grained
classes, bad labels and blur. Two objects leave a different trace: one part of the image is
confidently one class and another part, not overlapping it, confidently another. Each held-out
network predicts nine windows of half the image's side (:data:`REGIONS`, a 3 x 3 grid at quarter
steps, each enlarged twice to full size, so an object that fills half the frame is seen at the
scale the network learned); the population's mean per window is compared between every two
windows that do not overlap (:data:`PAIRS`).

The threshold is not a constant: the population also predicts the windows of two-class composite
probes (:mod:`curate.science.probes`: two images of different classes shrunk to about half the side
and placed anywhere in opposite halves, as objects fall in photos, not on the windows' grid), each
scored as if labelled as one of its objects, as a dataset's two-object image would be. The threshold
is the lowest at which the probes pass at least :data:`MIN_LIKELIHOOD_RATIO` times as often as the
dataset's own images (:func:`likelihood_ratio_threshold`); where no threshold does, the windows cannot
tell two objects from one on this data and ``multi_object`` finds nothing. Measured on the planted
digits (docs/benchmarks.md), the probes' recall at the threshold predicts the recall on planted
two-object images (0.25 against 0.19); probes on the windows' grid, scored without a label, promised
0.81 where 0.31 was found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = 3  # windows per axis, at offsets 0, 1/4 and 1/2 of the side
REGIONS = tuple(f"{('top', 'middle', 'bottom')[r]}-{('left', 'centre', 'right')[c]}" for r in range(GRID) for c in range(GRID))
PAIRS = tuple((a, b) for a in range(len(REGIONS)) for b in range(a + 1, len(REGIONS))
              if abs(a // GRID - b // GRID) == GRID - 1 or abs(a % GRID - b % GRID) == GRID - 1)
"""Pairs of windows that do not overlap: half a side apart in a row or a column."""


@dataclass
class RegionSplit:
    """Result of :func:`region_split`.

    Attributes:
        score: ``(N,)`` in [0, 1]: over the pairs of non-overlapping windows whose top classes
            differ, the largest of the two windows' smaller top probability; 0 when every pair agrees.
        first, second: ``(N,)`` the two windows' top classes in the best pair (equal when score is 0).
        p_first, p_second: their probabilities.
        pair: ``(N,)`` index into :data:`PAIRS` of the best pair.
    """

    score: np.ndarray
    first: np.ndarray
    second: np.ndarray
    p_first: np.ndarray
    p_second: np.ndarray
    pair: np.ndarray


def region_split(region_probs: np.ndarray, labels: np.ndarray | None = None) -> RegionSplit:
    """How confidently non-overlapping windows of each image disagree.

    Args:
        region_probs: ``(len(REGIONS), N, C)`` mean held-out probabilities of each window.
        labels: ``(N,)`` given labels; when passed, only pairs in which one window is the labelled
            class count: an image of two objects is labelled as one of them, and the other is the
            surprise (without it, a population unsure of every fragment pairs any two of them).
    """
    region_probs = np.asarray(region_probs, dtype=np.float64)
    if region_probs.ndim != 3 or region_probs.shape[0] != len(REGIONS):
        raise ValueError(f"region_probs must be ({len(REGIONS)}, n_samples, n_classes), got shape {region_probs.shape}.")
    top = region_probs.argmax(axis=2)  # (R, N)
    p_top = region_probs.max(axis=2)
    differ = [top[a] != top[b] for a, b in PAIRS]
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (region_probs.shape[1],):
            raise ValueError(f"labels has shape {labels.shape}; expected ({region_probs.shape[1]},).")
        differ = [d & ((top[a] == labels) | (top[b] == labels)) for d, (a, b) in zip(differ, PAIRS)]
    scores = np.stack([np.where(d, np.minimum(p_top[a], p_top[b]), 0.0) for d, (a, b) in zip(differ, PAIRS)])
    best = scores.argmax(axis=0)
    rows = np.arange(region_probs.shape[1])
    a_index = np.asarray([a for a, _ in PAIRS])[best]
    b_index = np.asarray([b for _, b in PAIRS])[best]
    return RegionSplit(score=scores[best, rows], first=top[a_index, rows], second=top[b_index, rows],
                       p_first=p_top[a_index, rows], p_second=p_top[b_index, rows], pair=best)


MIN_LIKELIHOOD_RATIO = 10.0
"""How many times more often a two-object probe must pass than an image of the dataset. A likelihood ratio
of 10 is the usual bar for evidence that rules a finding in: it turns 1-in-10 prior odds into even odds.
The dataset's own images stand in for single-object ones, so the ratio is if anything understated."""


def likelihood_ratio_threshold(positive: np.ndarray, negative: np.ndarray, *,
                               ratio: float = MIN_LIKELIHOOD_RATIO) -> float:
    """The lowest threshold ``t`` with ``mean(positive >= t) >= ratio * mean(negative >= t)`` (and some
    positive passing); infinity when there is none."""
    positive = np.asarray(positive, dtype=np.float64)
    negative = np.asarray(negative, dtype=np.float64)
    positive, negative = positive[np.isfinite(positive)], negative[np.isfinite(negative)]
    if len(positive) == 0 or len(negative) == 0:
        raise ValueError(f"Need positive and negative scores to set a threshold, got {len(positive)} and {len(negative)}.")
    candidates = np.unique(positive)
    tpr = 1.0 - np.searchsorted(np.sort(positive), candidates, side="left") / len(positive)
    fpr = 1.0 - np.searchsorted(np.sort(negative), candidates, side="left") / len(negative)
    passing = np.flatnonzero(tpr >= ratio * fpr)
    return float(candidates[passing[0]]) if len(passing) else float("inf")


def pass_rate(scores: np.ndarray, threshold: float) -> float:
    """Share of finite ``scores`` at or above ``threshold``."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    return float((scores >= threshold).mean()) if len(scores) else float("nan")
