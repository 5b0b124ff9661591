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
from curate.analysis import analyse, flag_samples, sample_table
from curate.crossfit import check_fold_support, stratified_folds
from curate.executor import Executor, InProcessExecutor, MemberJob
from curate.images import BadImage, decode_images, load_in_memory
from curate.flags import CATEGORIES, Categories
from curate.pies import PieScores
from curate.probes import ProbeSuite, make_probes
from curate.quality import measure_files, quality_severity
from curate.sources import LabeledImages, SourceError
from curate.store import RunStore
from curate.train import TrainSettings


@dataclass(frozen=True)
class CurateConfig:
    """What a run computes. Two runs with equal configs on the same images give the same results.

    Attributes:
        model: model spec, see :mod:`curate.models`.
        members: population size K; every image gets exactly K out-of-sample predictions per level.
        folds: cross-fitting folds F; each member trains F networks on (F-1)/F of the images.
        sparsities: global magnitude pruning levels, ascending, each in (0, 1).
        image_size: images are decoded to ``image_size`` x ``image_size`` RGB.
        seed: base seed; member k uses seed ``1000 * seed + k`` for its partition and initialisation.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``; not part of the fingerprint.
        alpha: family-wise significance level of the per-class tests.
        probes_per_kind: probe images of each kind (:mod:`curate.probes`) every network predicts;
            they calibrate the multi-object and corruption flags.
        train: optimisation settings.
    """

    model: str = "resnet-small"
    members: int = 4
    folds: int = 2
    sparsities: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    image_size: int = 32
    seed: int = 0
    device: str = "auto"
    alpha: float = 0.05
    probes_per_kind: int = 256
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsities", tuple(float(s) for s in self.sparsities))
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
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {self.image_size}.")

    @property
    def level_names(self) -> list[str]:
        return [f"prune{round(s * 100):02d}" for s in self.sparsities]

    def member_seed(self, member: int) -> int:
        return 1000 * self.seed + member

    def job_seed(self, member: int, fold: int) -> int:
        return 100 * self.member_seed(member) + fold

    def jobs(self) -> list[MemberJob]:
        return [MemberJob(k, f, self.job_seed(k, f)) for k in range(self.members) for f in range(self.folds)]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["sparsities"] = list(self.sparsities)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CurateConfig":
        data = dict(data)
        data["train"] = TrainSettings(**data.get("train", {}))
        data["sparsities"] = tuple(data["sparsities"])
        return cls(**data)

    def fingerprint(self, images: LabeledImages) -> str:
        """Hash of everything that determines the results: config (less device), images, labels."""
        config = self.to_dict()
        config.pop("device")
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
    sample: the member networks that did train on it.
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
    """The function every job runs: train one network, prune copies of it, predict every image.

    Predictions cover all images; :func:`run_population` files the network's held-out fold as
    out-of-sample and the rest as in-sample.
    """
    import torch

    from curate.models import build_model
    from curate.train import (Normalizer, measured_sparsity, predict_probs, prune_and_finetune,
                              resolve_device, train_dense)

    device = resolve_device(config.device)
    normalize = Normalizer(mean, std, device)

    def run(job: MemberJob) -> dict[str, np.ndarray]:
        train_idx = np.flatnonzero(folds[job.member] != job.fold)
        train_pixels = RowView(pixels, train_idx)
        torch.manual_seed(job.seed)
        started = time.perf_counter()
        model = build_model(config.model, n_classes).to(device).to(memory_format=torch.channels_last)
        margins = np.zeros((len(train_idx), 2))
        train_dense(model, train_pixels, labels[train_idx], normalize, config.train, job.seed, progress,
                    margins=margins)
        aum = np.full(len(labels), np.nan, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            aum[train_idx] = margins[:, 0] / margins[:, 1]
        dense = predict_probs(model, pixels, normalize)
        probe_probs = [predict_probs(model, probes, normalize)]
        compressed, sparsity = [], []
        for level, s in enumerate(config.sparsities):
            pruned = prune_and_finetune(model, train_pixels, labels[train_idx], normalize, config.train, s,
                                        job.seed + 7919 * (level + 1), progress)
            compressed.append(predict_probs(pruned, pixels, normalize))
            probe_probs.append(predict_probs(pruned, probes, normalize))
            sparsity.append(measured_sparsity(pruned))
        return {
            "dense": dense, "compressed": np.stack(compressed), "aum": aum, "probes": np.stack(probe_probs),
            "sparsity": np.array(sparsity), "seconds": np.array(time.perf_counter() - started),
        }

    return run


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
    check_fold_support(kept.labels, config.folds, kept.classes)
    return kept, load_in_memory(pixels), bad


def image_quality(filepaths: list[str], store: RunStore, progress: bool = True) -> pd.DataFrame:
    """Raw pixel-quality properties of every image, measured once per run directory."""
    path = store.root / "quality.parquet"
    if path.exists():
        cached = pd.read_parquet(path)
        if cached["filepath"].tolist() == list(filepaths):
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
    n, n_classes, n_levels = len(images), len(images.classes), len(config.sparsities)
    dense = np.full((config.members, n, n_classes), np.nan, dtype=np.float32)
    compressed = np.full((n_levels, config.members, n, n_classes), np.nan, dtype=np.float32)
    n_in = config.members * (config.folds - 1)
    dense_in = np.full((n_in, n, n_classes), np.nan, dtype=np.float32)
    compressed_in = np.full((n_levels, n_in, n, n_classes), np.nan, dtype=np.float32)
    sparsity_sum = np.zeros(n_levels)
    aum_sum, aum_count = np.zeros(n), np.zeros(n)
    probes = make_probes(pixels, images.labels, config.probes_per_kind, seed=config.seed)
    probe_probs = np.full((n_levels + 1, config.members * config.folds, len(probes), n_classes), np.nan,
                          dtype=np.float32)
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
        compressed_in[:, slot, trained] = out["compressed"][:, trained]
        sparsity_sum[:] += out["sparsity"]
        seen = np.isfinite(out["aum"])
        aum_sum[seen] += out["aum"][seen]
        aum_count[seen] += 1
        probe_probs[:, job.member * config.folds + job.fold] = out["probes"]
        seconds[job.name] = float(out["seconds"])

    todo = []
    for job in jobs:
        cached = store.load_job(job.name, fingerprint)
        if cached is None or "probes" not in cached:  # job files of curate 0.1 lack margins and probes
            todo.append(job)
        else:
            place(job, cached)
    if todo:
        mean, std = Normalizer.channel_stats(pixels)
        n_train = int(n * (config.folds - 1) / config.folds)
        total = len(todo) * steps_for(n_train, config.train, n_levels)
        done_note = f" ({len(jobs) - len(todo)} of {len(jobs)} resumed from {store.root})" if len(todo) < len(jobs) else ""
        with tqdm(total=total, desc=f"train+prune {len(todo)} networks{done_note}", unit="step",
                  disable=not progress, smoothing=0.05, mininterval=0.5 if sys.stderr.isatty() else 30) as bar:
            job_fn = _member_job_fn(config, pixels, images.labels, n_classes, folds, mean, std, probes.pixels,
                                    bar.update)
            for job, out in executor.map(job_fn, todo):
                store.save_job(job.name, fingerprint, **out)
                place(job, out)
    if any(np.isnan(a).any() for a in (dense, compressed, dense_in, compressed_in, probe_probs)):
        raise RuntimeError("Some images received no out-of-sample prediction; the run directory may be corrupt. "
                           f"Delete {store.root / 'jobs'} and run again.")
    with np.errstate(invalid="ignore", divide="ignore"):
        aum = (aum_sum / aum_count).astype(np.float32)
    return Population(dense, compressed, dense_in, compressed_in, sparsity_sum / len(jobs), seconds, aum,
                      probes, probe_probs)


def run_curate(
    images: LabeledImages,
    config: CurateConfig,
    run_dir,
    executor: Executor | None = None,
    progress: bool = True,
) -> RunResult:
    """The whole computation for one source: decode, populations, scores, tables, run directory."""
    store = RunStore(run_dir)
    started = time.time()
    previous = store.read_json("manifest.json") or {}
    manifest: dict[str, Any] = {
        "curate_version": __version__,
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": images.description,
        "config": config.to_dict(),
        "python": platform.python_version(),
    }
    if previous.get("status") == "running":
        manifest["resumed_from"] = previous.get("started")
    store.write_json("manifest.json", manifest)

    kept, pixels, bad = prepare_images(images, config, store, progress)
    fingerprint = config.fingerprint(kept)
    population = run_population(kept, pixels, config, store, executor, progress)
    dense, compressed, seconds = population.dense, population.compressed, population.job_seconds
    scores, levels, impact = analyse(dense, compressed, kept.labels, kept.classes, config.level_names,
                                     list(config.sparsities), config.alpha, population.measured_sparsity)
    severity = quality_severity(image_quality(kept.filepaths, store, progress))
    categories, reasons = flag_samples(dense, compressed, kept.labels, kept.classes, config.level_names, scores,
                                       population.probe_probs, population.probes.kinds, severity,
                                       population.dense_in, population.compressed_in)
    samples = sample_table(scores, kept.labels, kept.classes, config.level_names, kept.filepaths, kept.splits,
                           kept.sample_ids, categories, reasons)
    samples = pd.concat([samples, severity.add_prefix("quality_")], axis=1)
    store.save_probs(config.level_names, dense=dense, compressed=compressed,
                     dense_in=population.dense_in, compressed_in=population.compressed_in, aum=population.aum,
                     probe_probs=population.probe_probs, probe_kinds=population.probes.kinds,
                     probe_class_a=population.probes.class_a, probe_class_b=population.probes.class_b)
    store.save_table("samples.parquet", samples)
    store.save_table("classes.csv", impact)
    store.save_table("levels.csv", levels)

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
        "files": ["manifest.json", "probs.npz", "samples.parquet", "classes.csv", "levels.csv", "quality.parquet",
                  "jobs/"],
    })
    store.write_json("manifest.json", manifest)
    return RunResult(config, kept, bad, population, scores, levels, impact, samples, store, manifest, categories)
