"""The run: labelled images -> dense population -> compressed copies -> probabilities -> scores -> store.

Data flows one way. :func:`run_population` produces out-of-sample probabilities (resuming from
the jobs already in the run directory); :func:`analyse` turns them into scores and tables; the
FiftyOne push and the CLI read the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from curate import __version__
from curate.analysis import analyse, flag_samples, population_warnings, sample_table
from curate.crossfit import check_fold_support, stratified_folds
from curate.executor import Executor, InProcessExecutor, MemberJob
from curate.faults import checkpoint
from curate.images import BadImage, decode_images, load_in_memory
from curate.flags import CATEGORIES, Categories, in_sample_views
from curate.pies import PieScores
from curate.probes import ProbeSuite, make_probes
from curate.quality import RAW_PROPERTIES, measure_files, quality_severity
from curate.quantize import QUANT_FORMATS, check_formats
from curate.safety import check_run_dir, media_folders, run_dir_lock
from curate.robustness import CORRUPTION_NAMES, SEVERITIES, check_corruptions, robustness_table
from curate.sources import LabeledImages, SourceError
from curate.store import RunStore
from curate.train import TrainSettings, check_device


@dataclass(frozen=True)
class CurateConfig:
    """What a run computes. Two runs with equal configs on the same images give the same results.

    Attributes:
        model: model spec, see :mod:`curate.models`.
        members: population size K; every image gets exactly K out-of-sample predictions per level.
        folds: cross-fitting folds F; each member trains F networks on (F-1)/F of the images.
        sparsities: global magnitude pruning levels, ascending, each in (0, 1).
        quantizations: post-training quantization formats (:mod:`curate.quantize`), each a further
            compression level after the pruning levels.
        image_size: images are decoded to ``image_size`` x ``image_size`` RGB.
        seed: base seed; member k uses seed ``1000 * seed + k`` for its partition and initialisation.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``; not part of the fingerprint.
        alpha: family-wise significance level of the per-class tests.
        probes_per_kind: probe images of each kind (:mod:`curate.probes`) every network predicts;
            they calibrate the multi-object and corruption flags.
        robustness_images: held-out images per network that are corrupted (:mod:`curate.robustness`)
            and predicted by the network and every compressed copy of it; 0 turns robustness off.
        corruptions, severities: which ImageNet-C-style corruptions, at which severities (1..5).
        label_probes: share of each network's training images given a random wrong label
            (Metadata Archaeology's random-label probes); how the networks fit them sets the
            label-noise count (:func:`curate.flags.probe_label_noise`). 0: off, confident learning counts.
        oneshot_views: also predict every image with a one-shot pruned copy of each dense network at
            each sparsity, its magnitudes cut and nothing re-fitted (``Population.oneshot_in``); used
            by ``scripts/bench_flags.py --oneshot``, not by the flags.
        train: optimisation settings.
    """

    model: str = "resnet-small"
    members: int = 4
    folds: int = 2
    sparsities: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    quantizations: tuple[str, ...] = ("fp16", "bf16", "int8", "int4", "dyn-int8")
    image_size: int = 32
    seed: int = 0
    device: str = "auto"
    alpha: float = 0.05
    probes_per_kind: int = 256
    robustness_images: int = 64
    corruptions: tuple[str, ...] = CORRUPTION_NAMES
    severities: tuple[int, ...] = SEVERITIES
    label_probes: float = 0.0
    oneshot_views: bool = False
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsities", tuple(float(s) for s in self.sparsities))
        object.__setattr__(self, "quantizations", check_formats(self.quantizations))
        corruptions, severities = check_corruptions(self.corruptions, self.severities)
        object.__setattr__(self, "corruptions", corruptions)
        object.__setattr__(self, "severities", severities)
        if self.robustness_images < 0:
            raise ValueError(f"robustness_images must be 0 (off) or positive, got {self.robustness_images}.")
        if self.members < 2:
            raise ValueError(f"members must be at least 2 (a modal label and a t-test need a population), got {self.members}.")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2 so every image is scored out of sample, got {self.folds}.")
        if not self.sparsities:
            raise ValueError("Give at least one sparsity, e.g. --sparsities 0.3,0.5,0.7,0.9.")
        bad = [s for s in self.sparsities if not 0.0 < s < 1.0]
        if bad:
            raise ValueError(f"Sparsities must lie strictly between 0 and 1, got {bad}.")
        if list(self.sparsities) != sorted(set(self.sparsities)):
            raise ValueError(f"Sparsities must be distinct and ascending, got {list(self.sparsities)}.")
        if not 0.0 <= self.label_probes <= 0.2:
            raise ValueError(f"label_probes is the share of each network's training images given a random wrong "
                             f"label: 0 (off) to 0.2, e.g. 0.05; got {self.label_probes}.")
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {self.image_size}.")
        check_device(self.device)

    @property
    def level_names(self) -> list[str]:
        """Pruning levels (``prune30``...) in ascending sparsity, then quantization formats."""
        return [f"prune{round(s * 100):02d}" for s in self.sparsities] + list(self.quantizations)

    @property
    def level_kinds(self) -> list[str]:
        return ["prune"] * len(self.sparsities) + ["quantize"] * len(self.quantizations)

    @property
    def level_sparsities(self) -> list[float]:
        """Target sparsity of every level (0 for quantization levels)."""
        return list(self.sparsities) + [0.0] * len(self.quantizations)

    @property
    def level_bits(self) -> list[int]:
        """Bits per weight of every level (32 for pruning levels, which keep float32 weights)."""
        return [32] * len(self.sparsities) + [QUANT_FORMATS[f] for f in self.quantizations]

    @property
    def n_levels(self) -> int:
        return len(self.sparsities) + len(self.quantizations)

    @property
    def robustness(self) -> bool:
        return self.robustness_images > 0 and bool(self.corruptions) and bool(self.severities)

    def member_seed(self, member: int) -> int:
        return 1000 * self.seed + member

    def job_seed(self, member: int, fold: int) -> int:
        return 100 * self.member_seed(member) + fold

    def jobs(self) -> list[MemberJob]:
        return [MemberJob(k, f, self.job_seed(k, f)) for k in range(self.members) for f in range(self.folds)]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("sparsities", "quantizations", "corruptions", "severities"):
            data[key] = list(getattr(self, key))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CurateConfig":
        data = dict(data)
        data["train"] = TrainSettings(**data.get("train", {}))
        # Runs of curate 0.1 had neither quantization levels nor robustness.
        data.setdefault("quantizations", ())
        data.setdefault("robustness_images", 0)
        for key in ("sparsities", "quantizations", "corruptions", "severities"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def fingerprint(self, images: LabeledImages) -> str:
        """Hash of everything that determines the results: config (less device), images, labels."""
        config = self.to_dict()
        config.pop("device")
        # Features that are off leave the hash as curate 0.1 computed it, so its stored jobs stay valid.
        if not self.quantizations:
            config.pop("quantizations")
        if not self.robustness:
            for key in ("robustness_images", "corruptions", "severities"):
                config.pop(key)
        if not self.label_probes:
            config.pop("label_probes")
        if not self.oneshot_views:
            config.pop("oneshot_views")
        h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        h.update("\n".join(images.filepaths).encode())
        h.update(np.asarray(images.labels, dtype=np.int64).tobytes())
        h.update("\n".join(images.classes).encode())
        return h.hexdigest()[:16]


@dataclass
class Population:
    """Probabilities of the whole population, split by whether a network trained on the image.

    ``dense`` ``(K, N, C)`` and ``compressed`` ``(L, K, N, C)`` are out of sample: one network per
    member that never saw the image. ``dense_in`` ``(K*(F-1), N, C)`` and ``compressed_in`` are in
    sample: the member networks that did train on it. ``forgotten_in`` ``(K*(F-1), N, C)``: the same
    networks after training on their held-out images (:func:`curate.train.forget_on_second_split`);
    ``forgotten_compressed_in`` the same for each pruned copy, its zeros kept.
    """

    dense: np.ndarray
    compressed: np.ndarray
    dense_in: np.ndarray
    compressed_in: np.ndarray
    measured_sparsity: np.ndarray
    job_seconds: dict[str, float]
    aum: np.ndarray | None = None  # (N,) mean area under the margin over the networks that trained on it
    probes: ProbeSuite | None = None
    probe_probs: np.ndarray | None = None  # (L+1, K*F, P, C): dense then each level, every network
    robust_correct: np.ndarray | None = None  # (L+1, K*F, corruptions, severities) accuracy, see robustness
    robust_clean: np.ndarray | None = None  # (L+1, K*F) accuracy on the same images uncorrupted
    label_probe_labels: np.ndarray | None = None  # (K*(F-1), N) wrong label an in-sample slot trained with, or -1
    forgotten_in: np.ndarray | None = None
    forgotten_compressed_in: np.ndarray | None = None  # (len(sparsities), K*(F-1), N, C) pruned copies, same
    oneshot_in: np.ndarray | None = None  # (len(sparsities), K*(F-1), N, C) one-shot pruned, not fine-tuned


@dataclass
class RunResult:
    """Everything a finished run knows, in memory."""

    config: CurateConfig
    images: LabeledImages  # the readable images, in the order of every array below
    bad_images: list[BadImage]
    population: Population
    scores: PieScores
    levels: pd.DataFrame
    impact: pd.DataFrame
    samples: pd.DataFrame
    store: RunStore
    manifest: dict[str, Any]
    categories: Categories | None = None

    @property
    def level_names(self) -> list[str]:
        return self.config.level_names

    @property
    def dense_probs(self) -> np.ndarray:
        """Out-of-sample dense probabilities ``(K, N, C)``."""
        return self.population.dense

    @property
    def compressed_probs(self) -> np.ndarray:
        """Out-of-sample compressed probabilities ``(L, K, N, C)``."""
        return self.population.compressed


class RowView:
    """Rows ``rows`` of ``base`` without copying them: a network's training images, read batch by batch.

    Keeps a memory-mapped image cache on disk when the dataset does not fit in memory; ``rows`` is
    ascending, so every batch reads the memmap in order.
    """

    def __init__(self, base: np.ndarray, rows: np.ndarray):
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self.base[self.rows[idx]])


def _member_job_fn(config: CurateConfig, pixels: np.ndarray, labels: np.ndarray, n_classes: int,
                   folds: dict[int, np.ndarray], mean: np.ndarray, std: np.ndarray, probes: np.ndarray,
                   progress):
    """The function every job runs: train one network, compress copies of it, predict every image.

    Predictions cover all images; :func:`run_population` files the network's held-out fold as
    out-of-sample and the rest as in-sample. Robustness uses a seeded sample of the held-out fold only.
    """
    import torch

    from curate.models import build_model
    from curate.quantize import quantized_copy, runs_on_cpu_only
    from curate.train import (Normalizer, forget_on_second_split, measured_sparsity, oneshot_pruned_copy,
                              predict_probs, prune_and_finetune, resolve_device, train_dense)

    device = resolve_device(config.device)
    normalize = Normalizer(mean, std, device)
    cpu_normalize = Normalizer(mean, std, torch.device("cpu"))

    def run(job: MemberJob) -> dict[str, np.ndarray]:
        held_out = folds[job.member] == job.fold
        train_idx = np.flatnonzero(~held_out)
        train_pixels = RowView(pixels, train_idx)
        train_labels, probe_rows = label_probes(labels[train_idx], n_classes, config.label_probes, job.seed)
        torch.manual_seed(job.seed)
        started = time.perf_counter()
        model = build_model(config.model, n_classes).to(device).to(memory_format=torch.channels_last)
        margins = np.zeros((len(train_idx), 2))
        train_dense(model, train_pixels, train_labels, normalize, config.train, job.seed, progress,
                    margins=margins)
        margins[probe_rows] = np.nan  # a probe's margin is about its wrong label, not the image's own
        aum = np.full(len(labels), np.nan, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            aum[train_idx] = margins[:, 0] / margins[:, 1]
        networks = [(model, normalize)]
        for level, s in enumerate(config.sparsities):
            networks.append((prune_and_finetune(model, train_pixels, train_labels, normalize, config.train, s,
                                                job.seed + 7919 * (level + 1), progress), normalize))
        for fmt in config.quantizations:
            networks.append((quantized_copy(model, fmt), cpu_normalize if runs_on_cpu_only(fmt) else normalize))
        probs = [predict_probs(net, pixels, norm) for net, norm in networks]
        held_idx = np.flatnonzero(held_out)
        # The dense network and each pruned copy unlearn on the same held-out images, seeded alike, so
        # that the copies' forgotten views differ from the dense one's by the pruning alone.
        forgotten = np.stack([
            predict_probs(forget_on_second_split(net, RowView(pixels, held_idx), labels[held_idx], normalize,
                                                 config.train, job.seed + 104723, progress), pixels, normalize)
            for net, _ in networks[:1 + len(config.sparsities)]
        ])
        out = {
            "dense": probs[0], "compressed": np.stack(probs[1:]), "aum": aum,
            "forgotten": forgotten[0], "forgotten_compressed": forgotten[1:],
            "probes": np.stack([predict_probs(net, probes, norm) for net, norm in networks]),
            "sparsity": np.array([measured_sparsity(net) for net, _ in networks[1:]]),
            "label_probe_index": train_idx[probe_rows], "label_probe_label": train_labels[probe_rows],
        }
        if config.oneshot_views:
            out["oneshot"] = np.stack([predict_probs(oneshot_pruned_copy(model, s), pixels, normalize)
                                       for s in config.sparsities])
        if config.robustness:
            out.update(_robustness(config, job, networks, pixels, labels, held_out, probs))
        out["seconds"] = np.array(time.perf_counter() - started)
        return out

    return run


def label_probes(labels: np.ndarray, n_classes: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A network's training labels with ``share`` of them (seeded) moved to a random other class.

    Returns ``(labels_to_train_on, probe_rows)``; the given ``labels`` are not modified.
    """
    trained = np.array(labels, copy=True)
    if share <= 0 or n_classes < 2:
        return trained, np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, 104729])  # its own stream: the same job seed also seeds training
    rows = np.sort(rng.choice(len(trained), size=max(1, int(round(share * len(trained)))), replace=False))
    trained[rows] = (trained[rows] + rng.integers(1, n_classes, len(rows))) % n_classes
    return trained, rows


def _robustness(config: CurateConfig, job: MemberJob, networks, pixels, labels, held_out, probs):
    """Accuracy of the network and each compressed copy on corrupted copies of held-out images."""
    from curate.robustness import corrupted_suite
    from curate.train import predict_probs

    rng = np.random.default_rng(job.seed)
    candidates = np.flatnonzero(held_out)
    rows = np.sort(rng.choice(candidates, size=min(config.robustness_images, len(candidates)), replace=False))
    suite = corrupted_suite(np.asarray(pixels[rows]), config.corruptions, config.severities, seed=job.seed)
    n_corruptions, n_severities, m = suite.shape[:3]
    flat = suite.reshape(-1, *suite.shape[3:])
    truth = np.tile(labels[rows], n_corruptions * n_severities)
    correct = np.stack([
        (predict_probs(net, flat, norm).argmax(axis=1) == truth).reshape(n_corruptions, n_severities, m).mean(axis=2)
        for net, norm in networks
    ])
    clean = np.array([(p[rows].argmax(axis=1) == labels[rows]).mean() for p in probs])
    return {"robust_rows": rows, "robust_correct": correct, "robust_clean": clean}


def prepare_images(images: LabeledImages, config: CurateConfig, store: RunStore, progress: bool = True):
    """Decode once; drop unreadable images (reported); check every class can be cross-fitted."""
    if len(images) == 0:
        raise SourceError(f"The source {images.description} has no images.")
    pixels, ok, bad = decode_images(images.filepaths, config.image_size, store.image_cache(config.image_size),
                                    progress=progress)
    if not ok.any():
        raise SourceError(f"None of the {len(images)} images of {images.description} could be read; "
                          f"first failure: {bad[0].path}: {bad[0].reason}")
    kept = images.subset(ok)
    try:
        check_fold_support(kept.labels, config.folds, kept.classes)
    except ValueError as error:
        if not bad:
            raise
        # The class may be short only because images could not be read; say which, or the count reads wrong.
        raise ValueError(f"{error} {len(bad)} of the {len(images)} images could not be read and were left out "
                         f"(first: {bad[0].path}: {bad[0].reason}).") from None
    return kept, load_in_memory(pixels), bad


def image_quality(filepaths: list[str], store: RunStore, progress: bool = True) -> pd.DataFrame:
    """Raw pixel-quality properties of every image, measured once per run directory."""
    path = store.root / "quality.parquet"
    if path.exists():
        cached = pd.read_parquet(path)
        # A run measured by an older curate lacks newer properties: measure again.
        if cached["filepath"].tolist() == list(filepaths) and set(RAW_PROPERTIES) <= set(cached.columns):
            return cached
    raw = measure_files(filepaths, progress=progress)
    store.save_table("quality.parquet", raw)
    return raw


def run_population(
    images: LabeledImages,
    pixels: np.ndarray,
    config: CurateConfig,
    store: RunStore,
    executor: Executor | None = None,
    progress: bool = True,
) -> Population:
    """Train, compress and score the whole population, resuming from jobs already stored."""
    from tqdm.auto import tqdm

    from curate.train import Normalizer, configure_threads, steps_for

    configure_threads()
    executor = executor or InProcessExecutor()
    fingerprint = config.fingerprint(images)
    n, n_classes, n_levels = len(images), len(images.classes), config.n_levels
    n_networks = config.members * config.folds
    dense = np.full((config.members, n, n_classes), np.nan, dtype=np.float32)
    compressed = np.full((n_levels, config.members, n, n_classes), np.nan, dtype=np.float32)
    n_in = config.members * (config.folds - 1)
    dense_in = np.full((n_in, n, n_classes), np.nan, dtype=np.float32)
    forgotten_in = np.full((n_in, n, n_classes), np.nan, dtype=np.float32)
    forgotten_compressed_in = np.full((len(config.sparsities), n_in, n, n_classes), np.nan, dtype=np.float32)
    compressed_in = np.full((n_levels, n_in, n, n_classes), np.nan, dtype=np.float32)
    oneshot_in = (np.full((len(config.sparsities), n_in, n, n_classes), np.nan, dtype=np.float32)
                  if config.oneshot_views else np.zeros((0, n_in, n, n_classes), dtype=np.float32))
    sparsity_sum = np.zeros(n_levels)
    aum_sum, aum_count = np.zeros(n), np.zeros(n)
    probes = make_probes(pixels, images.labels, config.probes_per_kind, seed=config.seed)
    probe_probs = np.full((n_levels + 1, n_networks, len(probes), n_classes), np.nan, dtype=np.float32)
    shape = (len(config.corruptions), len(config.severities)) if config.robustness else (0, 0)
    robust_correct = np.full((n_levels + 1, n_networks, *shape), np.nan)
    robust_clean = np.full((n_levels + 1, n_networks), np.nan if config.robustness else 0.0)
    probe_labels = np.full((n_in, n), -1, dtype=np.int64)
    seconds: dict[str, float] = {}

    jobs = config.jobs()
    folds = {k: stratified_folds(images.labels, config.folds, config.member_seed(k)) for k in range(config.members)}

    def place(job: MemberJob, out: dict[str, np.ndarray]) -> None:
        member_folds = folds[job.member]
        held_out = member_folds == job.fold
        dense[job.member, held_out] = out["dense"][held_out]
        compressed[:, job.member, held_out] = out["compressed"][:, held_out]
        # In-sample slot of this network for each image it trained on: its rank among the
        # member's F-1 networks that saw that image.
        trained = np.flatnonzero(~held_out)
        slot = job.member * (config.folds - 1) + job.fold - (job.fold > member_folds[trained])
        dense_in[slot, trained] = out["dense"][trained]
        forgotten_in[slot, trained] = out["forgotten"][trained]
        forgotten_compressed_in[:, slot, trained] = out["forgotten_compressed"][:, trained]
        compressed_in[:, slot, trained] = out["compressed"][:, trained]
        if config.oneshot_views:
            oneshot_in[:, slot, trained] = out["oneshot"][:, trained]
        if config.label_probes:
            slot_of = np.full(n, -1)
            slot_of[trained] = slot
            probed = out["label_probe_index"]
            probe_labels[slot_of[probed], probed] = out["label_probe_label"]
        sparsity_sum[:] += out["sparsity"]
        seen = np.isfinite(out["aum"])
        aum_sum[seen] += out["aum"][seen]
        aum_count[seen] += 1
        network = job.member * config.folds + job.fold
        probe_probs[:, network] = out["probes"]
        if config.robustness:
            robust_correct[:, network] = out["robust_correct"]
            robust_clean[:, network] = out["robust_clean"]
        seconds[job.name] = float(out["seconds"])

    todo = []
    for job in jobs:
        cached = store.load_job(job.name, fingerprint)
        # Jobs stored by earlier curate versions may lack the probes (0.1), robustness or forgetting arrays.
        if (cached is None or "probes" not in cached or "forgotten_compressed" not in cached
                or (config.robustness and "robust_correct" not in cached)
                or (config.label_probes and "label_probe_index" not in cached)
                or (config.oneshot_views and "oneshot" not in cached)):
            todo.append(job)
        else:
            place(job, cached)
    if todo:
        mean, std = Normalizer.channel_stats(pixels)
        n_train = int(n * (config.folds - 1) / config.folds)
        total = len(todo) * steps_for(n_train, config.train, len(config.sparsities), n - n_train)
        done_note = f" ({len(jobs) - len(todo)} of {len(jobs)} resumed from {store.root})" if len(todo) < len(jobs) else ""
        with tqdm(total=total, desc=f"train+prune {len(todo)} networks{done_note}", unit="step",
                  disable=not progress, smoothing=0.05, mininterval=0.5 if sys.stderr.isatty() else 30) as bar:
            job_fn = _member_job_fn(config, pixels, images.labels, n_classes, folds, mean, std, probes.pixels,
                                    bar.update)
            for job, out in executor.map(job_fn, todo):
                store.save_job(job.name, fingerprint, **out)
                checkpoint("train")
                place(job, out)
    if any(np.isnan(a).any() for a in (dense, compressed, dense_in, compressed_in, forgotten_in,
                                       forgotten_compressed_in, oneshot_in, probe_probs, robust_correct,
                                       robust_clean)):
        raise RuntimeError("Some images received no out-of-sample prediction; the run directory may be corrupt. "
                           f"Delete {store.root / 'jobs'} and run again.")
    with np.errstate(invalid="ignore", divide="ignore"):
        aum = (aum_sum / aum_count).astype(np.float32)
    return Population(dense, compressed, dense_in, compressed_in, sparsity_sum / len(jobs), seconds, aum,
                      probes, probe_probs, robust_correct, robust_clean,
                      probe_labels if config.label_probes else None, forgotten_in, forgotten_compressed_in,
                      oneshot_in if config.oneshot_views else None)


def run_curate(
    images: LabeledImages,
    config: CurateConfig,
    run_dir,
    executor: Executor | None = None,
    progress: bool = True,
) -> RunResult:
    """The whole computation for one source: decode, populations, scores, tables, run directory.

    ``run_dir`` must be empty, new or an earlier curate run directory, and outside the folders that
    hold the images (:func:`curate.safety.check_run_dir`); one process at a time writes it.
    """
    run_dir = check_run_dir(run_dir, media_folders(images.filepaths))
    with run_dir_lock(run_dir):
        return _run_curate(images, config, run_dir, executor, progress)


def _run_curate(images: LabeledImages, config: CurateConfig, run_dir, executor: Executor | None,
                progress: bool) -> RunResult:
    store = RunStore(run_dir)
    started = time.time()
    previous = store.read_json("manifest.json") or {}
    manifest: dict[str, Any] = {
        "curate_version": __version__,
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": images.description,
        "source_root": images.root,
        "config": config.to_dict(),
        "python": platform.python_version(),
    }
    if previous.get("status") == "running":
        manifest["resumed_from"] = previous.get("started")
    store.write_json("manifest.json", manifest)

    kept, pixels, bad = prepare_images(images, config, store, progress)
    fingerprint = config.fingerprint(kept)
    population = run_population(kept, pixels, config, store, executor, progress)
    checkpoint("score")
    dense, compressed, seconds = population.dense, population.compressed, population.job_seconds
    scores, levels, impact = analyse(dense, compressed, kept.labels, kept.classes, config.level_names,
                                     config.level_sparsities, config.alpha, population.measured_sparsity,
                                     config.level_kinds, config.level_bits)
    severity = quality_severity(image_quality(kept.filepaths, store, progress))
    # The flags pool the dense networks with their pruned copies (measured in bench_flags); quantized
    # copies are near-duplicates of the dense networks and would only re-weight them. Networks trained
    # long enough memorise their training labels, wrong ones included, and the plain in-sample view then
    # hides the errors it is meant to find; where they have (curate.flags.memorisation), the in-sample
    # view is read after second-split forgetting, which costs a little where they have not
    # (docs/benchmarks.md, "Second-split forgetting").
    pruned = slice(0, len(config.sparsities))
    categories, reasons = flag_samples(dense, compressed[pruned], kept.labels, kept.classes, config.level_names,
                                       scores, population.probe_probs[:1 + len(config.sparsities)],
                                       population.probes.kinds, severity,
                                       in_sample_views(population.dense_in, population.compressed_in[pruned]),
                                       population.label_probe_labels,
                                       in_sample_views(population.forgotten_in, population.forgotten_compressed_in))
    samples = sample_table(scores, kept.labels, kept.classes, config.level_names, kept.filepaths, kept.splits,
                           kept.sample_ids, categories, reasons)
    samples = pd.concat([samples, severity.add_prefix("quality_")], axis=1)
    store.save_probs(config.level_names, dense=dense, compressed=compressed,
                     dense_in=population.dense_in, compressed_in=population.compressed_in,
                     forgotten_in=population.forgotten_in,
                     forgotten_compressed_in=population.forgotten_compressed_in, aum=population.aum,
                     probe_probs=population.probe_probs, probe_kinds=population.probes.kinds,
                     probe_class_a=population.probes.class_a, probe_class_b=population.probes.class_b,
                     robust_correct=population.robust_correct, robust_clean=population.robust_clean,
                     **({} if population.label_probe_labels is None
                        else {"label_probe_labels": population.label_probe_labels}))
    checkpoint("store")
    store.save_table("samples.parquet", samples)
    store.save_table("classes.csv", impact)
    store.save_table("levels.csv", levels)
    if config.robustness:
        store.save_table("robustness.csv", robustness_table(population.robust_correct, population.robust_clean,
                                                            config.level_names, config.corruptions,
                                                            config.severities))

    import torch

    manifest.update({
        "status": "complete",
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "fingerprint": fingerprint,
        "torch": torch.__version__,
        "n_images": len(kept),
        "classes": kept.classes,
        "bad_images": [b.__dict__ for b in bad],
        "job_seconds": seconds,
        "job_seeds": {job.name: job.seed for job in config.jobs()},
        "out_of_sample_predictions_per_image": config.members,
        "levels": levels.to_dict(orient="records"),
        "flag_thresholds": categories.thresholds,
        "flags": {name: int((categories.category == name).sum()) for name in CATEGORIES},
        "label_noise_any": int(categories.label_noise.sum()),
        "in_sample_view": {
            "view": "after forgetting" if categories.thresholds["in_sample_after_forgetting"] else "as trained",
            "fitted": categories.thresholds["in_sample_fitted"], "labels_right": categories.thresholds["labels_right"]},
        "label_noise_count": {
            "confident_learning": categories.thresholds["label_noise_confident_learning_count"],
            **({"label_probes": categories.thresholds["label_noise_estimated_count"],
                "probes": categories.thresholds["label_noise_probes"]} if config.label_probes else {}),
        },
        "warnings": population_warnings(kept.labels, scores.dense_modal, categories.label_noise, kept.classes),
        "files": ["manifest.json", "probs.npz", "samples.parquet", "classes.csv", "levels.csv", "quality.parquet",
                  *(["robustness.csv"] if config.robustness else []), "jobs/"],
    })
    store.write_json("manifest.json", manifest)
    return RunResult(config, kept, bad, population, scores, levels, impact, samples, store, manifest, categories)
