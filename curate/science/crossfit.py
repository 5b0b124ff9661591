"""Cross-fitting: which images each population member trains on and which it scores.

Each member ``k`` (one seed) draws its own stratified partition of the images into ``F`` folds and
trains ``F`` networks, network ``f`` on every fold but ``f``. Network ``f`` then scores fold ``f``.
Every image is therefore scored exactly once per member, by a network that never saw it, so each
image gets exactly ``K`` out-of-sample predictions per compression level, whatever ``F`` is.
Different seeds draw different partitions, so members differ in data as well as initialisation.
"""

from __future__ import annotations

import numpy as np


def check_fold_support(labels: np.ndarray, n_folds: int, class_names: list[str]) -> None:
    """Raise naming every class with fewer images than folds (it cannot be cross-fitted)."""
    counts = np.bincount(np.asarray(labels), minlength=len(class_names))
    short = [(class_names[c], int(n)) for c, n in enumerate(counts) if 0 < n < n_folds]
    if short:
        listed = ", ".join(f"{name!r} ({n} image{'s' if n != 1 else ''})" for name, n in short)
        raise ValueError(
            f"Too few images to cross-fit over {n_folds} folds in class(es) {listed}: every class needs at "
            f"least {n_folds}. Add images, lower --folds, or leave those classes out of the source."
        )
    if n_folds < 2:
        raise ValueError(f"--folds must be at least 2 so that every image is scored out of sample, got {n_folds}.")


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Assign each image a fold in ``[0, n_folds)``, class by class, in a seeded random order.

    Within each class the images are shuffled and dealt round-robin, so each fold gets
    ``floor`` or ``ceil`` of ``n_c / n_folds`` images of class ``c``; the deal starts at a random
    fold per class so the folds stay balanced in size too.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        start = rng.integers(n_folds)
        folds[idx] = (np.arange(len(idx)) + start) % n_folds
    return folds
