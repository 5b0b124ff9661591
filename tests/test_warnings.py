"""Warnings when a population is too weak, or labels too wrong, for the flags to mean much."""

import numpy as np

from curate.science.analysis import population_warnings
from curate.population.config import CurateConfig
from curate.population.pipeline import run_curate
from curate.population.train import TrainSettings

CLASSES = [str(c) for c in range(10)]


def test_a_population_no_better_than_the_majority_label_is_named():
    labels = np.repeat(np.arange(10), 10)  # 100 images, majority rate 10%
    modal = (labels + 1) % 10
    modal[:12] = labels[:12]  # right on 12%: P(X >= 12 | n=100, p=0.1) = 0.30, not beyond chance
    (warning,) = population_warnings(labels, modal, np.zeros(100, dtype=bool), CLASSES)
    assert "right on 12.0% of held-out images" in warning and "most common label (10.0%)" in warning
    modal[:30] = labels[:30]  # 30%: P = 1e-8
    assert population_warnings(labels, modal, np.zeros(100, dtype=bool), CLASSES) == []


def test_classes_with_half_their_labels_flagged_are_named():
    labels = np.repeat(np.arange(10), 10)
    flagged = np.zeros(100, dtype=bool)
    flagged[30:35] = True  # class 3: 5 of 10 flagged (50%)
    flagged[70:74] = True  # class 7: 4 of 10 (40%), below half
    (warning,) = population_warnings(labels, labels, flagged, CLASSES)
    assert "images labelled 3 (50%) are flagged" in warning and "7 (" not in warning


def test_digits_with_shuffled_labels_warn(digits_images, tmp_path):
    images = digits_images.subset(np.ones(len(digits_images), dtype=bool))
    images.labels = np.random.default_rng(0).permutation(images.labels)
    config = CurateConfig(members=2, folds=2, sparsities=(0.9,), image_size=8,
                          train=TrainSettings(epochs=2, finetune_epochs=1, batch_size=64, hflip=False),
                          probes_per_kind=32, quantizations=(), robustness_images=0)
    result = run_curate(images, config, tmp_path / "run", progress=False)
    warnings = result.manifest["warnings"]
    assert any("no better than always answering the most common label" in w for w in warnings), warnings
