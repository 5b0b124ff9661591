"""Digits with 10% of labels flipped at random: curate's label-noise flags find them.

PIEs cannot (a held-out PIE never depends on the image's own label; docs/benchmarks.md), so the
random-flip criterion is checked on the label-noise flags, which read the label.
"""

import numpy as np

from curate.population.config import CurateConfig
from curate.population.pipeline import run_curate
from curate.population.train import TrainSettings


def test_random_flips_are_flagged_as_label_noise(digits_images, tmp_path):
    images = digits_images.subset(np.ones(len(digits_images), dtype=bool))
    rng = np.random.default_rng(0)
    flipped = rng.random(len(images)) < 0.10
    true_labels = images.labels.copy()
    images.labels = images.labels.copy()
    images.labels[flipped] = (images.labels[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    # Enough training for the digits to be learnt (about 0.98 held-out accuracy; the demo's quarter-width network);
    # one pruning level.
    config = CurateConfig(model="resnet-small:16", members=2, folds=2, sparsities=(0.9,), image_size=16,
                          train=TrainSettings(epochs=10, finetune_epochs=1, batch_size=32, hflip=False),
                          probes_per_kind=64, quantizations=(), robustness_images=0,
                          filter_prunings=(), distillations=())  # label noise reads neither
    result = run_curate(images, config, tmp_path / "run", progress=False)
    flagged = result.categories.label_noise
    assert result.manifest["warnings"] == []  # a population that learnt digits raises no warning
    base_rate = flipped.mean()
    precision = flipped[flagged].mean()
    recall = flagged[flipped].mean()
    assert precision >= 3 * base_rate, (precision, base_rate)
    assert recall >= 0.8, recall
    # The suggested label is the true one for most flagged flips.
    hits = flagged & flipped
    assert (result.categories.suggested[hits] == true_labels[hits]).mean() >= 0.9
