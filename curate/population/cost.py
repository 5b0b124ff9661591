"""What a population will cost, predicted before paying for it from a short timed warm-up.

The count of optimiser steps and predicted images is exact (it follows from the configuration and the
folds); the seconds are that count times the speed measured on this machine with the run's own model,
batch size and images, so the estimate is only as good as the warm-up is typical: the first steps of a
CUDA run include kernel selection, and a machine shared with other work runs slower than it measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from curate.population.config import CurateConfig

WARMUP_STEPS = 4
GPU_TIMED_PASSES = 8
"""Prediction passes the estimate times on a GPU (at least 1,024 images): one pass is too short to time."""


@dataclass(frozen=True)
class CostEstimate:
    """Networks, steps and predictions a population needs, and the seconds they are expected to take."""

    networks: int
    dense_steps: int           # per network
    finetune_steps: int        # per network, every pruning level (unstructured and filter) and the control copy
    distill_steps: int         # per network, every distilled student
    forget_steps: int          # per network, the dense network's and every pruned copy's
    predicted_images: int      # per network, every version of it, mirror images included
    seconds_per_step: float
    seconds_per_image: float   # prediction
    device: str
    resumed: int = 0           # networks already in the run directory
    distill_step_cost: float = 1.0  # a student's step against a dense one: its MACs plus the teacher's forward pass
    embedded_images: int = 0   # once a population: the first job's features for the duplicate search
    at_a_time: int = 1         # networks training in parallel (worker processes), each timed at its own threads

    @property
    def steps(self) -> int:
        return self.dense_steps + self.finetune_steps + self.forget_steps + self.distill_steps

    @property
    def parts(self) -> dict[str, float]:
        """Estimated seconds of each kind of work, all networks together."""
        return {
            "dense training": self.networks * self.dense_steps * self.seconds_per_step,
            "pruning fine-tuning": self.networks * self.finetune_steps * self.seconds_per_step,
            "distillation": self.networks * self.distill_steps * self.seconds_per_step * self.distill_step_cost,
            "second-split forgetting": self.networks * self.forget_steps * self.seconds_per_step,
            "predictions": (self.networks * self.predicted_images + self.embedded_images) * self.seconds_per_image,
        }

    @property
    def seconds(self) -> float:
        """Wall seconds: the work of every network, shared by the networks that train at a time."""
        return sum(self.parts.values()) / self.at_a_time

    def lines(self, config: CurateConfig) -> list[str]:
        """The estimate in plain words, with the cheapest ways to make it smaller."""
        resumed = f" ({self.resumed} more already in the run directory)" if self.resumed else ""
        parts = self.parts
        share = ", ".join(f"{name} {100 * s / max(sum(parts.values()), 1e-9):.0f}%" for name, s in parts.items())
        at_a_time = f", {self.at_a_time} networks at a time" if self.at_a_time > 1 else ""
        lines = [
            f"Population: {self.networks} networks to train{resumed}, {self.steps:,} optimiser steps and "
            f"{self.predicted_images:,} image predictions each.",
            f"Estimated {format_seconds(self.seconds)} on {self.device}{at_a_time} ({share}; timed on "
            f"{WARMUP_STEPS} warm-up steps).",
        ]
        hints = []
        biggest = max(parts, key=parts.get)
        if biggest == "dense training" and config.train.epochs > 4:
            hints.append(f"--epochs {config.train.epochs // 2} (halves dense training; weaker networks, noisier PIEs)")
        if biggest == "pruning fine-tuning" and config.train.finetune_epochs > 1:
            hints.append(f"--finetune-epochs {max(1, config.train.finetune_epochs // 2)}")
        if biggest == "distillation" and len(config.distillations) > 1:
            hints.append(f"--distill {config.distillations[0]} (one student)")
        if biggest == "predictions" and config.robustness:
            hints.append("--robustness-images 0 (no corrupted copies to predict)")
        if config.members > 2:
            hints.append("--members 2 (half the networks; PIEs need several members per image)")
        if self.device == "cpu":
            hints.append("--device cuda on a machine with a GPU")
        if hints:
            lines.append("Cheaper: " + "; ".join(hints) + ".")
        return lines


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def work_per_network(config: CurateConfig, n_images: int, n_train: int, n_probes: int,
                     n_region_probes: int | None = None) -> dict[str, int]:
    """Optimiser steps of each kind, and images predicted, for one network and its compressed copies
    (named as :class:`CostEstimate`'s fields); ``n_region_probes``: the probes whose windows are predicted
    (None: all)."""
    from curate.population.train import REGIONS, steps_per_epoch

    settings = config.train
    n_held_out = n_images - n_train
    pruned = len(config.sparsities)
    versions = 1 + config.n_levels
    flips = 2 if settings.flip_test and settings.hflip else 1
    robust = (config.robustness_images * len(config.corruptions) * len(config.severities)
              if config.robustness else 0)
    per_epoch = steps_per_epoch(n_train, settings.batch_size)
    n_region_probes = n_probes if n_region_probes is None else n_region_probes
    return {
        "dense_steps": per_epoch * settings.epochs,
        # The control copy (sparsity 0) is fine-tuned as a pruning level is.
        "finetune_steps": per_epoch * settings.finetune_epochs * (pruned + len(config.filter_prunings) + 1),
        "distill_steps": per_epoch * settings.epochs * len(config.distillations),
        "forget_steps": steps_per_epoch(n_held_out, settings.batch_size) * settings.forget_epochs * (1 + pruned)
        if n_held_out and settings.forget_epochs else 0,
        # The dense network and its pruned copies on every image and probe, the other kinds on the held-out
        # images, as is the control copy; the forgotten copies on the training images; the dense network's
        # windows of each held-out image and two-class probe.
        "predicted_images": flips * ((1 + pruned) * (n_images + n_probes) + (versions - pruned) * n_held_out
                                     + (1 + pruned) * n_train)
        + versions * robust + len(REGIONS) * (n_held_out + n_region_probes),
    }


def embedded_images(n_images: int) -> int:
    """Images the feature job embeds once a population: every image and the copies it makes
    (:func:`curate.population.features.features_and_copies`)."""
    from curate.population.features import COPIES

    return n_images + min(COPIES, n_images)


def estimate_cost(config: CurateConfig, pixels: np.ndarray, n_classes: int, mean: np.ndarray, std: np.ndarray, *,
                  networks: int, n_train: int, n_probes: int, n_region_probes: int | None = None, resumed: int = 0,
                  embedded_images: int = 0, threads: int | None = None, at_a_time: int = 1,
                  together: int = 1, n_images: int | None = None) -> CostEstimate:
    """Time :data:`WARMUP_STEPS` training steps and a batch of predictions with the run's own model on
    its own images, then scale by the work the population needs (``embedded_images``: the feature job's,
    :func:`embedded_images`, when it is among the ``networks``). ``threads``: time with as many torch
    threads as each network will have (default: as now); ``at_a_time``: networks that will train at once
    in parallel; ``together``: networks that train stacked as one (timed so, :func:`curate.population.train.fit`);
    ``n_images``: the images of the run, where ``pixels`` are a sample of them (:func:`timing_sample`)."""
    import torch

    from curate.population.models import build_model, stack_networks
    from curate.population.train import (FitPart, Normalizer, fit, image_shape, predict_probs, prediction_batch,
                                         resolve_device, synchronize)

    device = resolve_device(config.device)
    normalize = Normalizer(mean, std, device)
    batch = min(config.train.batch_size, n_train)
    rows = np.arange(min(len(pixels), batch * WARMUP_STEPS))
    labels = np.arange(len(rows)) % n_classes
    rng_state, threads_now = torch.random.get_rng_state(), torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        model = build_model(config.model, n_classes).to(device).to(memory_format=torch.channels_last)
        trained = stack_networks([model] * together) if together > 1 else model
        one = dict(normalize=normalize, settings=config.train, epochs=1, peak_lr=config.train.lr)
        fit(trained, [FitPart(pixels[rows[:batch]], labels[:batch], seed)  # untimed: one-time setup of the kernels
                      for seed in range(together)], **one)
        synchronize(device)
        started = time.perf_counter()
        fit(trained, [FitPart(pixels[rows], labels, seed) for seed in range(together)], **one)
        synchronize(device)
        per_step = (time.perf_counter() - started) / max(1, len(rows) // batch) / together
        # Untimed first: on a GPU the first batch of a shape also picks its kernels. Timed without this, 1,024
        # images said 50 minutes for a 50,000-image population that took 4.4 on an H200 (docs/benchmarks.md).
        per_batch = prediction_batch(model, image_shape(pixels), device)
        predict_probs(model, pixels[:per_batch], normalize)
        synchronize(device)
        # Whole passes of the shape just set up: a last, partial one would be a new shape, set up while timed.
        wanted = 1024 if device.type == "cpu" else max(1024, GPU_TIMED_PASSES * per_batch)
        predicted = pixels[:per_batch * max(1, min(wanted, len(pixels)) // per_batch)]
        started = time.perf_counter()
        predict_probs(model, predicted, normalize)
        synchronize(device)
        per_image = (time.perf_counter() - started) / len(predicted)
    finally:
        torch.random.set_rng_state(rng_state)
        torch.set_num_threads(threads_now)
    n_images = len(pixels) if n_images is None else n_images
    return CostEstimate(networks=networks, **work_per_network(config, n_images, n_train, n_probes, n_region_probes),
                        seconds_per_step=per_step, seconds_per_image=per_image, device=str(device), resumed=resumed,
                        embedded_images=embedded_images, at_a_time=max(1, min(at_a_time, networks)),
                        distill_step_cost=_distill_step_cost(config, model, n_classes))


TIMING_BYTES = 256 * 2 ** 20


def timing_sample(config: CurateConfig, pixels: np.ndarray) -> np.ndarray:
    """The first images of ``pixels``, as many as :func:`estimate_cost` times (its warm-up steps and its
    prediction passes), up to :data:`TIMING_BYTES` beyond the warm-up's: what travels to a cluster's worker
    when the estimate is timed there."""
    from curate.population.train import GPU_PREDICT_BATCH

    per_image = max(1, int(np.prod(pixels.shape[1:])) * pixels.dtype.itemsize)
    warmup = config.train.batch_size * WARMUP_STEPS
    return pixels[:max(warmup, min(GPU_TIMED_PASSES * GPU_PREDICT_BATCH, TIMING_BYTES // per_image))]


def _distill_step_cost(config: CurateConfig, teacher, n_classes: int) -> float:
    """A student's training step as a share of a dense one: training costs about three forward passes, so
    the student's MACs over the teacher's, plus a third for the teacher's forward pass (most expensive student)."""
    if not config.distillations:
        return 1.0
    from curate.population.footprint import macs_per_image
    from curate.population.models import SmallResNet

    dense = macs_per_image(teacher, config.image_size)
    student = max(macs_per_image(SmallResNet(n_classes, *config.student(spec)), config.image_size)
                  for spec in config.distillations)
    return student / max(dense, 1.0) + 1.0 / 3.0
