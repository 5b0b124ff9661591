"""Pruning Identified Exemplars (Hooker et al. 2019, arXiv 1911.05248), as pure functions.

Every function here takes plain numpy arrays and nothing else: no torch, no files, no database.

Shapes used throughout:

- ``dense_probs``: ``(n_members, n_samples, n_classes)``, the out-of-sample predicted class
  probabilities of each dense population member.
- ``compressed_probs``: ``(n_levels, n_members, n_samples, n_classes)``, the same for each
  compression level (e.g. one level per pruning sparsity).

The paper's definition: at compression level ``t`` an image is a PIE when the modal top-1 label
of the compressed population differs from the modal top-1 label of the dense population.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_LEVEL = -1
"""Value of :func:`lowest_pie_level` for a sample that is a PIE at no level."""


def _check_probs(probs: np.ndarray, name: str, ndim: int) -> np.ndarray:
    probs = np.asarray(probs)
    if probs.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions, got shape {probs.shape}; "
            f"expected {'(n_levels, ' if ndim == 4 else '('}n_members, n_samples, n_classes)."
        )
    if probs.shape[-2] == 0 or probs.shape[-1] < 2:
        raise ValueError(f"{name} needs at least one sample and two classes, got shape {probs.shape}.")
    if not np.all(np.isfinite(probs)):
        raise ValueError(f"{name} contains NaN or infinite values; check the model outputs.")
    return probs


def _check_pair(dense_probs: np.ndarray, compressed_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dense_probs = _check_probs(dense_probs, "dense_probs", 3)
    compressed_probs = _check_probs(compressed_probs, "compressed_probs", 4)
    if compressed_probs.shape[2:] != dense_probs.shape[1:]:
        raise ValueError(
            f"compressed_probs has shape {compressed_probs.shape} but dense_probs has shape "
            f"{dense_probs.shape}: the sample and class axes must match."
        )
    return dense_probs, compressed_probs


def member_predictions(probs: np.ndarray) -> np.ndarray:
    """Top-1 label of every member for every sample: ``argmax`` over the last axis."""
    return np.asarray(probs).argmax(axis=-1)


def vote_counts(probs: np.ndarray) -> np.ndarray:
    """Number of members whose top-1 label is each class.

    Args:
        probs: ``(n_members, n_samples, n_classes)``.

    Returns:
        ``(n_samples, n_classes)`` integer counts summing to ``n_members`` per sample.
    """
    probs = _check_probs(probs, "probs", 3)
    n_classes = probs.shape[-1]
    preds = member_predictions(probs)  # (members, samples)
    counts = np.zeros((probs.shape[1], n_classes), dtype=np.int64)
    for member_preds in preds:
        counts[np.arange(probs.shape[1]), member_preds] += 1
    return counts


def modal_labels(probs: np.ndarray) -> np.ndarray:
    """Modal top-1 label of a population, per sample.

    Ties between classes with the same number of votes are broken deterministically: first by
    the larger summed probability the population gives the tied classes, then by the smaller
    class index. Breaking ties by probability mass keeps the choice meaningful (the population
    leans that way), and the index rule makes it total, so repeated runs always agree.

    Args:
        probs: ``(n_members, n_samples, n_classes)``.

    Returns:
        ``(n_samples,)`` integer labels.
    """
    probs = _check_probs(probs, "probs", 3)
    counts = vote_counts(probs)
    mass = probs.sum(axis=0)
    is_top = counts == counts.max(axis=1, keepdims=True)
    # Among top-voted classes pick the largest mass; argmax returns the first index on exact ties.
    tie_mass = np.where(is_top, mass, -np.inf)
    return tie_mass.argmax(axis=1)


def mark_pies(dense_probs: np.ndarray, compressed_probs: np.ndarray) -> np.ndarray:
    """Boolean PIE mask per level: compressed modal label != dense modal label.

    Returns:
        ``(n_levels, n_samples)`` booleans.
    """
    dense_probs, compressed_probs = _check_pair(dense_probs, compressed_probs)
    dense_modal = modal_labels(dense_probs)
    return np.stack([modal_labels(level) != dense_modal for level in compressed_probs])


def flip_share(dense_probs: np.ndarray, compressed_probs: np.ndarray) -> np.ndarray:
    """Share of compressed members whose top-1 label leaves the dense modal label.

    A continuous companion of :func:`mark_pies`: 0 when every compressed member agrees with the
    dense population, 1 when none does.

    Returns:
        ``(n_levels, n_samples)`` floats in [0, 1].
    """
    dense_probs, compressed_probs = _check_pair(dense_probs, compressed_probs)
    dense_modal = modal_labels(dense_probs)
    compressed_preds = member_predictions(compressed_probs)  # (levels, members, samples)
    return (compressed_preds != dense_modal[None, None, :]).mean(axis=1)


def probability_drop(dense_probs: np.ndarray, compressed_probs: np.ndarray) -> np.ndarray:
    """Drop in the mean probability of the dense modal label from dense to compressed.

    Positive when compression takes probability away from the label the dense population
    chose; in [-1, 1].

    Returns:
        ``(n_levels, n_samples)`` floats.
    """
    dense_probs, compressed_probs = _check_pair(dense_probs, compressed_probs)
    dense_modal = modal_labels(dense_probs)
    idx = np.arange(dense_probs.shape[1])
    dense_p = dense_probs.mean(axis=0)[idx, dense_modal]
    compressed_p = compressed_probs.mean(axis=1)[:, idx, dense_modal]
    return dense_p[None, :] - compressed_p


def lowest_pie_level(is_pie: np.ndarray) -> np.ndarray:
    """Index of the first level (levels ordered weakest to strongest) at which a sample is a PIE.

    Args:
        is_pie: ``(n_levels, n_samples)`` booleans from :func:`mark_pies`.

    Returns:
        ``(n_samples,)`` level indices, :data:`NO_LEVEL` (-1) where the sample is never a PIE.
    """
    is_pie = np.asarray(is_pie, dtype=bool)
    if is_pie.ndim != 2:
        raise ValueError(f"is_pie must be (n_levels, n_samples), got shape {is_pie.shape}.")
    first = is_pie.argmax(axis=0)
    return np.where(is_pie.any(axis=0), first, NO_LEVEL)


@dataclass(frozen=True)
class ControlComparison:
    """PIEs against the control level: what fine-tuning alone changes (:func:`compare_with_control`).

    Attributes:
        is_pie: ``(n_samples,)`` the control population's modal label differs from the dense one's: a
            PIE that needs no compression at all.
        beyond: ``(n_levels, n_samples)`` a PIE at the level that the control does not also produce.
        excess: ``(n_levels,)`` the level's PIE fraction minus the control's.
        low, high: ``(n_levels,)`` the ``confidence`` interval of ``excess``.
    """

    is_pie: np.ndarray
    beyond: np.ndarray
    excess: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def fraction(self) -> float:
        return float(self.is_pie.mean())


def compare_with_control(dense_probs: np.ndarray, control_probs: np.ndarray, is_pie: np.ndarray, *,
                         confidence: float = 0.95) -> ControlComparison:
    """How many PIEs each level makes beyond the control level.

    The control copy of each dense network is fine-tuned exactly as a pruning level is, at sparsity
    0, so the control population's disagreements with the dense one are the noise floor of PIEs:
    what fine-tuning and a finite population produce with no compression. A level's excess is its
    PIE fraction minus the control's; both are measured on the same images, so the interval is the
    paired one (normal approximation of the mean of ``is_pie - control_pie`` per image).

    Args:
        dense_probs: ``(n_members, n_samples, n_classes)``; ``control_probs``: the same for the control copies.
        is_pie: ``(n_levels, n_samples)`` from :func:`mark_pies`.
    """
    from scipy.stats import norm

    dense_probs = _check_probs(dense_probs, "dense_probs", 3)
    control_probs = _check_probs(control_probs, "control_probs", 3)
    if control_probs.shape[1:] != dense_probs.shape[1:]:
        raise ValueError(f"control_probs has shape {control_probs.shape} but dense_probs has {dense_probs.shape}: "
                         "the sample and class axes must match.")
    is_pie = np.asarray(is_pie, dtype=bool)
    if is_pie.ndim != 2 or is_pie.shape[1] != dense_probs.shape[1]:
        raise ValueError(f"is_pie must be (n_levels, {dense_probs.shape[1]}), got shape {is_pie.shape}.")
    control = modal_labels(control_probs) != modal_labels(dense_probs)
    difference = is_pie.astype(np.float64) - control[None, :]
    n = difference.shape[1]
    excess = difference.mean(axis=1)
    half = norm.ppf(0.5 + confidence / 2) * difference.std(axis=1, ddof=1 if n > 1 else 0) / np.sqrt(n)
    return ControlComparison(is_pie=control, beyond=is_pie & ~control[None, :], excess=excess,
                             low=excess - half, high=excess + half)


@dataclass(frozen=True)
class PieScores:
    """Everything curate computes per sample from the two populations.

    Attributes:
        dense_modal: ``(n_samples,)`` modal label of the dense population.
        dense_confidence: ``(n_samples,)`` mean dense probability of ``dense_modal``.
        dense_mean_probs: ``(n_samples, n_classes)`` mean dense probabilities.
        compressed_modal: ``(n_levels, n_samples)`` modal label of each compressed population.
        compressed_confidence: ``(n_levels, n_samples)`` its mean probability at that level.
        is_pie: ``(n_levels, n_samples)`` the paper's PIE mask.
        flip_share: ``(n_levels, n_samples)`` see :func:`flip_share`.
        probability_drop: ``(n_levels, n_samples)`` see :func:`probability_drop`.
        lowest_level: ``(n_samples,)`` see :func:`lowest_pie_level`, over the pruning ladder.
        pie_score: ``(n_samples,)`` mean of ``flip_share`` over the ladder's levels, in [0, 1]. Averaging over
            levels rewards samples that are forgotten early (at low compression) and by many
            members, which is how the paper orders PIEs by how hard they are.
        control: the comparison with the control level (:func:`compare_with_control`), when the run has one.
    """

    dense_modal: np.ndarray
    dense_confidence: np.ndarray
    dense_mean_probs: np.ndarray
    compressed_modal: np.ndarray
    compressed_confidence: np.ndarray
    is_pie: np.ndarray
    flip_share: np.ndarray
    probability_drop: np.ndarray
    lowest_level: np.ndarray
    pie_score: np.ndarray
    control: ControlComparison | None = None

    @property
    def is_pie_any(self) -> np.ndarray:
        """``(n_samples,)`` True where the sample is a PIE at one level or more."""
        return self.is_pie.any(axis=0)


def score_pies(dense_probs: np.ndarray, compressed_probs: np.ndarray, ladder_levels: int | None = None,
               control_probs: np.ndarray | None = None) -> PieScores:
    """Compute the PIE mask and continuous scores for every sample and level in one pass.

    ``ladder_levels``: the first that many levels form an ordered ladder (pruning at ascending
    sparsity); ``lowest_level`` and ``pie_score`` are taken over the ladder only. Later levels (e.g.
    quantization formats, which are not steps of one ladder) still get their own PIE mask. Default:
    every level is on the ladder. ``control_probs`` ``(n_members, n_samples, n_classes)``: the control
    level's predictions (:func:`compare_with_control`).
    """
    dense_probs, compressed_probs = _check_pair(dense_probs, compressed_probs)
    idx = np.arange(dense_probs.shape[1])
    dense_mean = dense_probs.mean(axis=0)
    dense_modal = modal_labels(dense_probs)
    compressed_modal = np.stack([modal_labels(level) for level in compressed_probs])
    compressed_mean = compressed_probs.mean(axis=1)
    is_pie = compressed_modal != dense_modal[None, :]
    flips = flip_share(dense_probs, compressed_probs)
    ladder = slice(0, compressed_probs.shape[0] if ladder_levels is None else ladder_levels)
    if ladder.stop < 1:
        raise ValueError(f"ladder_levels must be at least 1, got {ladder_levels}.")
    return PieScores(
        dense_modal=dense_modal,
        dense_confidence=dense_mean[idx, dense_modal],
        dense_mean_probs=dense_mean,
        compressed_modal=compressed_modal,
        compressed_confidence=np.take_along_axis(compressed_mean, compressed_modal[..., None], axis=-1)[..., 0],
        is_pie=is_pie,
        flip_share=flips,
        probability_drop=probability_drop(dense_probs, compressed_probs),
        lowest_level=lowest_pie_level(is_pie[ladder]),
        pie_score=flips[ladder].mean(axis=0),
        control=None if control_probs is None else compare_with_control(dense_probs, control_probs, is_pie),
    )


def pie_overlap(is_pie: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Do two compression levels forget the same images? Jaccard overlap of their PIE sets, and what it
    would be by chance.

    Args:
        is_pie: ``(n_levels, n_samples)`` from :func:`mark_pies`.

    Returns:
        ``(shared, jaccard, chance)``, each ``(n_levels, n_levels)``: ``|A & B|`` (the diagonal holds each
        level's PIE count), ``|A & B| / |A | B|`` (0 where both sets are empty), and the same ratio of expectations for two sets of the same sizes drawn independently,
        ``pq / (p + q - pq)`` at PIE fractions ``p`` and ``q``.
    """
    is_pie = np.asarray(is_pie, dtype=bool)
    if is_pie.ndim != 2:
        raise ValueError(f"is_pie must be (n_levels, n_samples), got shape {is_pie.shape}.")
    as_float = is_pie.astype(np.float64)
    both = as_float @ as_float.T
    sizes = as_float.sum(axis=1)
    either = sizes[:, None] + sizes[None, :] - both
    rate = sizes / max(1, is_pie.shape[1])
    expected_either = rate[:, None] + rate[None, :] - rate[:, None] * rate[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        jaccard = np.where(either > 0, both / np.maximum(either, 1), 0.0)
        chance = np.where(expected_either > 0, rate[:, None] * rate[None, :] / np.maximum(expected_either, 1e-12), 0.0)
    return both.astype(np.int64), jaccard, chance
