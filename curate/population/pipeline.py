"""The run: labelled images -> dense population -> compressed copies -> probabilities -> scores -> store.

Data flows one way. :func:`run_population` produces out-of-sample probabilities (resuming from
the jobs already in the run directory); :func:`analyse` turns them into scores and tables; the
FiftyOne push and the CLI read the result.
"""

from __future__ import annotations

import functools
import math
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import pandas as pd

from curate import __version__
from curate.science.analysis import analyse, flag_samples, matched_overlaps, overlap_table, population_warnings, sample_table
from curate.science.audit import audit_columns, audit_record
from curate.science.crossfit import check_fold_support, stratified_folds
from curate.population.executor import (Executor, InProcessExecutor, MemberJob, ProcessExecutor,
                                       check_not_starting_worker, group_jobs)
from curate.data.faults import checkpoint
from curate.data.images import BadImage, decode_images, decoded_file, load_in_memory
from curate.science.flags import Categories, in_sample_views
from curate.science.pies import PieScores
from curate.science.probes import TWO_CLASS, ProbeSuite, make_probes
from curate.data.pixels import RAW_PROPERTIES, file_digests, measure_files
from curate.science.duplicates import (confirm_by_pixels, duplicate_columns, duplicate_pairs, duplicate_warnings,
                                      feature_duplicates, group_duplicates, in_a_pair, shifted_hashes)
from curate.science.quality import quality_severity
from curate.data.safety import check_run_dir, media_folders, run_dir_lock
from curate.science.findings import robustness_table
from curate.data.sources import LabeledImages, SourceError
from curate.data.store import RUN_STORE_VERSION, RunStore
from curate.population.config import CurateConfig
from curate.population.jobs import NetworkJobs, NetworkResult, is_feature_job
from curate.science.regions import REGIONS


@dataclass(kw_only=True)
class Population:
    """Probabilities of the whole population, split by whether a network trained on the image.

    ``dense`` ``(K, N, C)`` and ``compressed`` ``(L, K, N, C)`` are out of sample: one network per
    member that never saw the image. ``dense_in`` ``(K*(F-1), N, C)`` and ``compressed_in``
    ``(len(sparsities), K*(F-1), N, C)`` (the pruning levels: the flags read no other kind in sample) are in
    sample: the member networks that did train on it. ``forgotten_in`` ``(K*(F-1), N, C)``: the same
    networks after training on their held-out images (:func:`curate.population.train.forget_on_second_split`);
    ``forgotten_compressed_in`` the same for each pruned copy, its zeros kept.
    """

    dense: np.ndarray
    compressed: np.ndarray
    control: np.ndarray  # (K, N, C) out of sample: each dense network's control copy (sparsity 0)
    regions: np.ndarray  # (K, R, N, C) out of sample: each dense network on each image half (train.REGIONS)
    probe_regions: np.ndarray  # (K*F, R, P2, C) every dense network on each two-class probe's windows
    dense_in: np.ndarray
    compressed_in: np.ndarray
    measured_sparsity: np.ndarray
    job_seconds: dict[str, float]
    footprint: np.ndarray | None = None  # (L+1, 3) mean over networks: weights, MACs, CPU ms per image (footprint)
    aum: np.ndarray | None = None  # (N,) mean area under the margin over the networks that trained on it
    probes: ProbeSuite | None = None
    probe_probs: np.ndarray | None = None  # (1 + len(sparsities), K*F, P, C): dense then each pruning level
    robust_correct: np.ndarray | None = None  # (L+1, K*F, corruptions, severities) accuracy, see robustness
    robust_clean: np.ndarray | None = None  # (L+1, K*F) accuracy on the same images uncorrupted
    label_probe_labels: np.ndarray | None = None  # (K*(F-1), N) wrong label an in-sample slot trained with, or -1
    forgotten_in: np.ndarray | None = None
    forgotten_compressed_in: np.ndarray | None = None  # (len(sparsities), K*(F-1), N, C) pruned copies, same
    features: dict[str, np.ndarray] | None = None  # the first job's features and made copies (jobs.is_feature_job)
    estimated_seconds: float | None = None  # the cost estimate of the networks trained now (None: all resumed)
    seconds: float | None = None  # what they took
    together: int | None = None  # networks trained as one batched computation (None: all resumed)


@dataclass(kw_only=True)
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
    overlap: pd.DataFrame | None = None  # every pair of levels' PIE overlap (analysis.overlap_table)

    @property
    def matched_overlaps(self) -> pd.DataFrame | None:
        """Each level that is not unstructured pruning against the pruning level nearest in memory."""
        return None if self.overlap is None else matched_overlaps(self.levels, self.overlap)

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


HASH_SIZE = 32  # duplicates are hashed at this size at least: at 8 or 16 px, unrelated digits hash alike


HASH_CHUNK = 1024  # images hashed at a time: grey float copies of a chunk, never of the whole dataset


def hash_pixels(filepaths: list[str], pixels: np.ndarray, image_size: int, store: RunStore,
                progress: bool = True) -> np.ndarray:
    """The images the duplicate search reads: the run's own pixels when they are at least :data:`HASH_SIZE` px,
    else the files decoded again at that size (cached in the run directory)."""
    if image_size >= HASH_SIZE:
        return pixels
    pixels, ok, _ = decode_images(filepaths, HASH_SIZE, store.image_cache(HASH_SIZE), progress=progress)
    if not ok.all():  # the same files decoded a moment ago; they cannot have become unreadable
        raise RuntimeError("Images changed while the run read them; run again.")
    return pixels


def image_hashes(pixels: np.ndarray) -> np.ndarray:
    """The duplicate hashes of every image of ``pixels`` (:func:`hash_pixels`), ``(10, n)``
    (:func:`curate.science.duplicates.shifted_hashes`). Chunk by chunk, so memory does not grow with the dataset."""
    return np.concatenate([shifted_hashes(np.asarray(pixels[i:i + HASH_CHUNK], dtype=np.float32).mean(axis=1))
                           for i in range(0, len(pixels), HASH_CHUNK)], axis=1)


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
    *,
    say: Callable[[str, str], None] | None = None,
) -> Population:
    """Train, compress and score the whole population, resuming from jobs already stored.

    Before training, ``say(line, "info")`` receives the cost estimate (:mod:`curate.population.cost`);
    by default it goes to stderr when ``progress`` is on.
    """
    from tqdm.auto import tqdm

    from curate.population.cost import embedded_images, estimate_cost, timing_sample
    from curate.population.train import Normalizer, configure_threads, resolve_device

    configure_threads()
    say = say or (_to_stderr if progress else _silent)
    executor = executor or InProcessExecutor()
    fingerprint = config.fingerprint(images)
    n, n_classes, n_levels = len(images), len(images.classes), config.n_levels
    n_networks = config.members * config.folds
    dense = np.full((config.members, n, n_classes), np.nan, dtype=np.float32)
    compressed = np.full((n_levels, config.members, n, n_classes), np.nan, dtype=np.float32)
    control = np.full((config.members, n, n_classes), np.nan, dtype=np.float32)
    regions = np.full((config.members, len(REGIONS), n, n_classes), np.nan, dtype=np.float32)
    n_in = config.members * (config.folds - 1)
    dense_in = np.full((n_in, n, n_classes), np.nan, dtype=np.float32)
    forgotten_in = np.full((n_in, n, n_classes), np.nan, dtype=np.float32)
    forgotten_compressed_in = np.full((len(config.sparsities), n_in, n, n_classes), np.nan, dtype=np.float32)
    compressed_in = np.full((len(config.sparsities), n_in, n, n_classes), np.nan, dtype=np.float32)
    sparsity_sum = np.zeros(n_levels)
    aum_sum, aum_count = np.zeros(n), np.zeros(n)
    # No more probes of a kind than the dataset has images: they calibrate thresholds against the dataset,
    # and on a small one they would otherwise cost more predictions than the images themselves.
    probes = make_probes(pixels, images.labels, min(config.probes_per_kind, n), seed=config.seed)
    probe_probs = np.full((1 + len(config.sparsities), n_networks, len(probes), n_classes), np.nan, dtype=np.float32)
    # Only the two-class probes' windows are read (they set the multi-object threshold).
    region_probe_rows = np.flatnonzero(probes.mask(TWO_CLASS))
    probe_regions = np.full((n_networks, len(REGIONS), len(region_probe_rows), n_classes), np.nan, dtype=np.float32)
    shape = (len(config.corruptions), len(config.severities)) if config.robustness else (0, 0)
    robust_correct = np.full((n_levels + 1, n_networks, *shape), np.nan)
    robust_clean = np.full((n_levels + 1, n_networks), np.nan if config.robustness else 0.0)
    probe_labels = np.full((n_in, n), -1, dtype=np.int64)
    seconds: dict[str, float] = {}
    estimated_seconds = population_seconds = together = None

    jobs = config.jobs()
    job_index = {job.name: i for i, job in enumerate(jobs)}
    footprints = np.full((len(jobs), n_levels + 1, 3), np.nan)
    folds = {k: stratified_folds(images.labels, config.folds, config.member_seed(k)) for k in range(config.members)}

    def place(job: MemberJob, out: NetworkResult) -> None:
        member_folds = folds[job.member]
        held_out = member_folds == job.fold
        dense[job.member, held_out] = out.dense[held_out]
        compressed[:, job.member, held_out] = out.compressed[:, held_out]
        control[job.member, held_out] = out.control[held_out]
        regions[job.member, :, held_out] = out.regions[:, held_out].transpose(1, 0, 2)
        # In-sample slot of this network for each image it trained on: its rank among the
        # member's F-1 networks that saw that image.
        trained = np.flatnonzero(~held_out)
        slot = job.member * (config.folds - 1) + job.fold - (job.fold > member_folds[trained])
        dense_in[slot, trained] = out.dense[trained]
        forgotten_in[slot, trained] = out.forgotten[trained]
        forgotten_compressed_in[:, slot, trained] = out.forgotten_compressed[:, trained]
        compressed_in[:, slot, trained] = out.compressed[:len(config.sparsities), trained]
        if config.label_probes:
            slot_of = np.full(n, -1)
            slot_of[trained] = slot
            probed = out.label_probe_index
            probe_labels[slot_of[probed], probed] = out.label_probe_label
        sparsity_sum[:] += out.sparsity
        footprints[job_index[job.name]] = out.footprint
        seen = np.isfinite(out.aum)
        aum_sum[seen] += out.aum[seen]
        aum_count[seen] += 1
        network = job.member * config.folds + job.fold
        probe_probs[:, network] = out.probes[:1 + len(config.sparsities)]  # a job stored by an older curate has all levels
        stored = out.probe_regions  # a job stored by an older curate has every probe's windows
        probe_regions[network] = stored[:, region_probe_rows] if stored.shape[1] == len(probes) else stored
        if config.robustness:
            robust_correct[:, network] = out.robust_correct
            robust_clean[:, network] = out.robust_clean
        seconds[job.name] = out.seconds
        if is_feature_job(job) and out.features is not None:  # a job stored by an older curate has none
            features.update(features=out.features, copy_features=out.copy_features, copy_rows=out.copy_rows)

    features: dict[str, np.ndarray] = {}
    todo = []
    for job in jobs:
        cached = store.load_job(job.name, fingerprint)  # None when absent or from another configuration
        if cached is not None and NetworkResult.complete(cached):
            place(job, NetworkResult.from_arrays(cached))
        else:
            todo.append(job)
    if todo:
        mean, std = Normalizer.channel_stats(pixels)
        n_train = int(n * (config.folds - 1) / config.folds)
        estimate = functools.partial(estimate_cost, config, timing_sample(config, pixels), n_classes, mean, std,
                                     n_images=n, networks=len(todo),
                                     n_train=n_train, n_probes=len(probes), n_region_probes=len(region_probe_rows),
                                     resumed=len(jobs) - len(todo),
                                     embedded_images=embedded_images(n) if any(map(is_feature_job, todo)) else 0)
        together = networks_together(executor, config, len(todo))
        groups = group_jobs(todo, together)
        # Timed as the networks will train: in worker processes (fewer threads each, side by side) where the
        # work turns out large enough for them, else in this process, timed again with every thread.
        planned = executor.for_work(len(groups), math.inf, str(resolve_device(config.device)))
        cost = (estimate(threads=planned.threads, at_a_time=planned.workers, together=together)
                if isinstance(planned, ProcessExecutor)
                else executor.run_once(functools.partial(estimate, together=together), len(groups)))
        executor = executor.for_work(len(groups), cost.seconds * cost.at_a_time, cost.device)
        if isinstance(planned, ProcessExecutor) and not isinstance(executor, ProcessExecutor):
            cost = estimate(together=together)
        for line in cost.lines(config):
            say(line, "info")
        if isinstance(executor, ProcessExecutor):
            say(f"The networks train {executor.workers} at a time in worker processes of {executor.threads} "
                f"thread{'s' * (executor.threads > 1)} each (--executor serial: one after another in this "
                "process).", "info")
        if together > 1:
            say(f"{together} networks train at a time as one batched computation (--train-together).", "info")
        if executor.name != InProcessExecutor.name:
            say(f"That is for one network after another on one of the cluster's workers; {executor.name} runs them "
                "in parallel where the cluster has room.", "info")
        estimated_seconds = cost.seconds
        total = len(todo) * cost.steps
        done_note = f" ({len(jobs) - len(todo)} of {len(jobs)} resumed from {store.root})" if len(todo) < len(jobs) else ""
        with tqdm(total=total, desc=f"train+prune {len(todo)} networks{done_note}", unit="step",
                  disable=not progress, smoothing=0.05, mininterval=0.5 if sys.stderr.isatty() else 30) as bar:
            # Jobs elsewhere read the decoded cache where they can, rather than receive a copy of every image.
            pixel_file = (None if isinstance(executor, InProcessExecutor)
                          else decoded_file(store.image_cache(config.image_size), images.filepaths))
            network_jobs = NetworkJobs(config, pixels, images.labels, n_classes, folds, mean, std, probes.pixels,
                                       pixel_file, region_probe_rows)
            started = time.perf_counter()
            done = 0
            for group, outs in executor.map(network_jobs, groups, bar.update):
                for job, out in zip(group.jobs, outs):
                    store.save_job(job.name, fingerprint, **out.arrays())
                    checkpoint("train")
                    place(job, out)
                done += len(group.jobs)
                # Executors that run jobs elsewhere cannot relay their steps: count finished jobs instead.
                bar.update(max(0, min(total, done * cost.steps) - bar.n))
            population_seconds = time.perf_counter() - started
    if any(np.isnan(a).any() for a in (dense, compressed, control, regions, probe_regions, dense_in, compressed_in, forgotten_in,
                                       forgotten_compressed_in, probe_probs, robust_correct,
                                       robust_clean)):
        raise RuntimeError("Some images received no out-of-sample prediction; the run directory may be corrupt. "
                           f"Delete {store.root / 'jobs'} and run again.")
    with np.errstate(invalid="ignore", divide="ignore"):
        aum = (aum_sum / aum_count).astype(np.float32)
    return Population(dense=dense, compressed=compressed, control=control, regions=regions,
                      probe_regions=probe_regions, dense_in=dense_in, compressed_in=compressed_in,
                      measured_sparsity=sparsity_sum / len(jobs), job_seconds=seconds,
                      footprint=_mean_footprint(footprints), aum=aum, probes=probes,
                      probe_probs=probe_probs, robust_correct=robust_correct, robust_clean=robust_clean,
                      label_probe_labels=probe_labels if config.label_probes else None, forgotten_in=forgotten_in,
                      forgotten_compressed_in=forgotten_compressed_in, features=features or None,
                      estimated_seconds=estimated_seconds,
                      seconds=population_seconds, together=together)


def _mean_footprint(footprints: np.ndarray) -> np.ndarray:
    """The networks' mean ``[weights, macs, latency_ms]`` per version; latency over the jobs that timed it."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": no job timed it
        return np.nanmean(footprints, axis=0)


def networks_together(executor: Executor, config: CurateConfig, n_jobs: int) -> int:
    """How many networks train as one batched computation: what the executor was asked for
    (``--train-together``), else every network of the run on a GPU of this machine and one at a time on a
    CPU (where a small network already keeps a core busy; docs/benchmarks.md, "Networks trained together")
    or on a Ray cluster (which spreads them over its GPUs)."""
    from curate.options import small_resnet_width
    from curate.population.train import resolve_device

    asked = getattr(executor, "together", None)
    if asked is None:
        local_gpu = executor.name == InProcessExecutor.name and resolve_device(config.device).type == "cuda"
        asked = n_jobs if local_gpu else 1
    # Only resnet-small networks stack; others train one at a time whatever was asked.
    return max(1, min(asked, n_jobs)) if small_resnet_width(config.model) is not None else 1


def _to_stderr(message: str, kind: str = "info") -> None:
    print(message, file=sys.stderr, flush=True)


def _silent(message: str, kind: str = "info") -> None:
    pass


def run_curate(
    images: LabeledImages,
    config: CurateConfig,
    run_dir,
    executor: Executor | None = None,
    progress: bool = True,
    *,
    say: Callable[[str, str], None] | None = None,
) -> RunResult:
    """The whole computation for one source: decode, populations, scores, tables, run directory.

    ``run_dir`` must be empty, new or an earlier curate run directory, and outside the folders that
    hold the images (:func:`curate.data.safety.check_run_dir`); one process at a time writes it.
    """
    run_dir = check_run_dir(run_dir, media_folders(images.filepaths))
    with run_dir_lock(run_dir):
        return _run_curate(images, config, run_dir, executor, progress, say)


def _run_curate(images: LabeledImages, config: CurateConfig, run_dir, executor: Executor | None,
                progress: bool, say) -> RunResult:
    check_not_starting_worker()
    store = RunStore(run_dir)
    store.check_version()
    executor = executor or InProcessExecutor()
    started = time.time()
    previous = store.read_json("manifest.json") or {}
    manifest: dict[str, Any] = {
        "curate_version": __version__,
        "run_store_version": RUN_STORE_VERSION,
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
    population = run_population(kept, pixels, config, store, executor, progress, say=say)
    checkpoint("score")
    dense, compressed, seconds = population.dense, population.compressed, population.job_seconds
    scores, levels, impact = analyse(dense, compressed, kept.labels, kept.classes, config.level_names,
                                     config.level_sparsities, alpha=config.alpha,
                                     measured_sparsity=population.measured_sparsity, kinds=config.level_kinds,
                                     bits=config.level_bits, control_probs=population.control,
                                     footprint=population.footprint)
    severity = quality_severity(image_quality(kept.filepaths, store, progress))
    at_hash_size = hash_pixels(kept.filepaths, pixels, config.image_size, store, progress)
    hashes, digests = image_hashes(at_hash_size), file_digests(kept.filepaths)
    # The hashes see an image's coarse layout only; pairs whose pixels agree no better than two images of one
    # class usually do go.
    checked = confirm_by_pixels(duplicate_pairs(hashes, digests), digests, at_hash_size, labels=kept.labels,
                                seed=config.seed)
    pairs, by_features = checked.pairs, None
    if population.features and len(population.features["features"]) == len(kept):
        by_features = feature_duplicates(**population.features, known=in_a_pair(len(kept), pairs))
        pairs = np.concatenate([pairs, by_features.pairs])
    duplicates = group_duplicates(pairs, hashes, digests, kept.splits)
    # The flags pool the dense networks with their pruned copies (measured in bench_flags); quantized
    # copies are near-duplicates of the dense networks and would only re-weight them. Networks trained
    # long enough memorise their training labels, wrong ones included, and the plain in-sample view then
    # hides the errors it is meant to find; where they have (curate.science.flags.memorisation), the in-sample
    # view is read after second-split forgetting, which costs a little where they have not
    # (docs/benchmarks.md, "Second-split forgetting").
    pruned = slice(0, len(config.sparsities))
    categories, reasons = flag_samples(dense, compressed[pruned], kept.labels, kept.classes, config.level_names,
                                       scores, population.probe_probs,
                                       population.probes.kinds, severity=severity,
                                       in_sample_probs=in_sample_views(population.dense_in,
                                                                       population.compressed_in[pruned]),
                                       label_probe_labels=population.label_probe_labels,
                                       forgotten_probs=in_sample_views(population.forgotten_in,
                                                                       population.forgotten_compressed_in),
                                       region_probs=population.regions, probe_region_probs=population.probe_regions,
                                       probe_labels=population.probes.class_a)
    samples = sample_table(scores, kept.labels, kept.classes, config.level_names, kept.filepaths, kept.splits,
                           sample_ids=kept.sample_ids, categories=categories, flag_reasons=reasons)
    # A random sample for a reviewer to count the wrong labels with, whatever the networks learned.
    audit = audit_columns(categories.label_wrong_probability, categories.label_noise, seed=config.seed)
    samples = pd.concat([samples, severity.add_prefix("quality_"), duplicate_columns(duplicates), audit], axis=1)
    store.save_probs(config.level_names, dense=dense, compressed=compressed, control=population.control,
                     regions=population.regions, probe_regions=population.probe_regions,
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
    overlap = overlap_table(scores, config.level_names, config.level_kinds)
    store.save_table("overlap.csv", overlap)
    if config.robustness:
        store.save_table("robustness.csv", robustness_table(population.robust_correct, population.robust_clean,
                                                            config.level_names, config.corruptions,
                                                            config.severities))

    import torch

    manifest.update({
        "status": "complete",
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "executor": executor.description,
        "networks_trained_together": population.together,
        "fingerprint": fingerprint,
        "torch": torch.__version__,
        "n_images": len(kept),
        "classes": kept.classes,
        "bad_images": [b.__dict__ for b in bad],
        "job_seconds": seconds,
        "population_seconds": {"estimated": population.estimated_seconds, "measured": population.seconds},
        "job_seeds": {job.name: job.seed for job in config.jobs()},
        "out_of_sample_predictions_per_image": config.members,
        "levels": levels.to_dict(orient="records"),
        "flag_thresholds": categories.thresholds,
        "flags": {name: int((categories.category == name).sum()) for name in categories.names},
        "label_noise_any": int(categories.label_noise.sum()),
        "in_sample_view": {
            "view": "after forgetting" if categories.thresholds["in_sample_after_forgetting"] else "as trained",
            "fitted": categories.thresholds["in_sample_fitted"], "labels_right": categories.thresholds["labels_right"]},
        "label_noise_count": {
            "confident_learning": categories.thresholds["label_noise_confident_learning_count"],
            **({"label_probes": categories.thresholds["label_noise_estimated_count"],
                "probes": categories.thresholds["label_noise_probes"]} if config.label_probes else {}),
        },
        "warnings": population_warnings(kept.labels, scores.dense_modal, categories.label_noise, kept.classes)
        + duplicate_warnings(duplicates),
        "duplicates": {"images": int(duplicates.is_duplicate.sum()), "clusters": int(len(np.unique(
            duplicates.cluster[duplicates.is_duplicate]))), "exact": int(duplicates.exact.sum()),
            "leaks": int(duplicates.leak.sum()), **checked.record(),
            **({} if by_features is None else by_features.record())},
        "label_audit": audit_record(audit),
        "files": ["manifest.json", "probs.npz", "samples.parquet", "classes.csv", "levels.csv", "overlap.csv",
                  "quality.parquet",
                  *(["robustness.csv"] if config.robustness else []), "jobs/"],
    })
    store.write_json("manifest.json", manifest)
    return RunResult(config=config, images=kept, bad_images=bad, population=population, scores=scores, levels=levels,
                     impact=impact, samples=samples, store=store, manifest=manifest, categories=categories,
                     overlap=overlap)
