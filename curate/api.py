"""curate's Python API: one composition of a run, and the review, export, weights and report steps.

The command line (:mod:`curate.frontends.cli`) and the App operators (:mod:`curate.frontends.app_plugin`) are thin
callers of these functions; every decision a run makes (the dataset it writes to, the batch size,
the digits preset, the checks before training, the locks) is made here, once.

>>> import curate
>>> outcome = curate.run("path/to/images", dataset="my-data", epochs=8)     # doctest: +SKIP
>>> outcome.result.samples                                                  # doctest: +SKIP
>>> curate.export("my-data", "out/clean", fmt="csv")                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from curate.fiftyone.export import ExportError
from curate.fiftyone.db import DatabaseUnavailable, import_fiftyone
from curate.options import (DEFAULT_LABEL_FIELD, DEFAULT_RUN_KEY, DEMO_DATASET, RunOptions, is_pretrained,
                            run_option_defaults)
from curate.report.html import ReportError
from curate.science.review import ExportPolicy, ReviewError
from curate.data.safety import LockHeld, OutputError
from curate.data.sources import SourceError

__all__ = ["RunOptions", "RunOutcome", "ReviewStatus", "run", "demo", "status", "calibrate", "export", "weights", "report",
           "ReportOutcome", "runs", "delete_run", "run_option_defaults", "USER_ERRORS"]


# Errors that are the user's to fix; front ends show their message, not a traceback.
USER_ERRORS = (SourceError, ExportError, ReportError, ReviewError, OutputError, LockHeld, DatabaseUnavailable,
               ValueError)


@dataclass
class RunOutcome:
    """A finished run: the computation's result, and where it was written."""

    result: Any  # curate.population.pipeline.RunResult
    dataset: str | None
    run_key: str
    seconds: float


def default_run_dir(dataset: str | None, run_key: str) -> Path:
    from curate.data.sources import default_cache_dir

    return default_cache_dir() / "runs" / (dataset or "no-dataset") / run_key


def _say_nothing(message: str, kind: str = "info") -> None:
    pass


def _quietly(function: Callable[[], Any]) -> Callable[[], None]:
    def call() -> None:
        try:
            function()
        except Exception:  # whoever calls function again sees the error
            pass
    return call


def run(source: str, *, dataset: str | None = None, label_field: str = DEFAULT_LABEL_FIELD,
        run_key: str = DEFAULT_RUN_KEY, run_dir: str | os.PathLike | None = None, to_fiftyone: bool = True,
        progress: bool = True, say: Callable[[str, str], None] = _say_nothing, options: RunOptions | None = None,
        **option_values) -> RunOutcome:
    """Train, compress and score a population on ``source``, mark its PIEs and flags, write FiftyOne.

    Args:
        source: a folder of class sub-folders, a CSV manifest, a FiftyOne dataset name, or ``digits``.
        dataset: the FiftyOne dataset to write to (created if missing); a FiftyOne source is its own.
        run_dir: where the heavy arrays go [default ``~/.cache/curate/runs/DATASET/RUN_KEY``].
        to_fiftyone: ``False`` computes and stores the run without writing to FiftyOne.
        say: called with ``(message, kind)`` for what the user should see before training
            (``kind`` is ``info`` or ``note``).
        options, option_values: a :class:`RunOptions`, or its fields as keywords (``epochs=8``).
    """
    from curate.population.pipeline import run_curate
    from curate.data.safety import check_run_dir, dataset_lock, media_folders, run_dir_lock
    from curate.data.images import native_size
    from curate.fiftyone.source import load_source
    from curate.population.executor import check_not_starting_worker

    check_not_starting_worker()  # before reading a single image

    options = dataclasses.replace(options or RunOptions(), **option_values)
    started = time.time()
    images = load_source(source, label_field)
    native = native_size(images.filepaths)
    executor = options.make_executor()  # before training: a missing Ray or a bad address fails at once
    try:
        # The batch size follows the device the networks train on: a Ray cluster's GPUs, not this machine's CPU.
        config = options.config_for(source, len(images), native, gpu=executor.trains_on_gpu(options.device))
        if images.sample_ids is not None and dataset and dataset != source:
            raise SourceError(f"Source {source!r} is a FiftyOne dataset: its fields are written to it, so "
                              f"--dataset must be {source!r} or left out, not {dataset!r}.")
        dataset = dataset or (source if images.sample_ids is not None else None)
        if dataset is None and to_fiftyone:
            raise SourceError("Name the FiftyOne dataset to write to with --dataset NAME (or pass --no-fiftyone).")
        if images.fields and dataset and to_fiftyone:
            _check_csv_columns(images, dataset, run_key)
        run_dir = check_run_dir(run_dir or default_run_dir(dataset, run_key), media_folders(images.filepaths))
        say(f"Source: {images.description} ({len(images)} images, {len(images.classes)} classes)", "info")
        for note in images.notes:
            say(note, "note")
        from_scratch = not (config.weights or is_pretrained(config.model))
        if native and native >= 64 and config.image_size < native and from_scratch:
            say(f"The images are about {native} px; {config.model} trains from scratch on them at "
                f"{config.image_size} px. Networks trained from scratch on {len(images):,} photos are weak, and a "
                "weak population flags more images by chance. A pretrained backbone does better: --model "
                "tv:resnet18:pretrained (downloads its weights once) or --weights PATH (a local checkpoint).", "note")
        # Both locks before training, not only before writing: a second run would otherwise train for an
        # hour and then be refused. The kernel releases them if this process dies.
        with contextlib.ExitStack() as locks:
            locks.enter_context(run_dir_lock(run_dir))
            if to_fiftyone:
                locks.enter_context(dataset_lock(dataset, run_key))
                # FiftyOne's import and its database's start take seconds (7 s in a profile of the demo): done while
                # the networks train, they cost no wall time. A failure here is raised again where push_run connects.
                connecting = threading.Thread(target=_quietly(import_fiftyone), name="curate-connect-fiftyone",
                                              daemon=True)
                connecting.start()
            # The cost estimate goes where the caller's messages go; without a caller's, to stderr with progress.
            result = run_curate(images, config, run_dir, executor, progress=progress,
                                say=None if say is _say_nothing or not progress else say)
            if to_fiftyone:
                from curate.fiftyone.write import push_run

                connecting.join()
                say(f"Writing fields, tags and views to FiftyOne dataset {dataset!r} ...", "info")
                push_run(result, dataset, run_key)
    finally:
        executor.close()  # a Ray connection opened to ask for its GPUs goes, however the run ends
    return RunOutcome(result, dataset if to_fiftyone else None, run_key, time.time() - started)


def _check_csv_columns(images, dataset: str, run_key: str) -> None:
    """Before training, not after: a CSV column that clashes with a field would fail the write."""
    from curate.fiftyone.db import import_fiftyone
    from curate.fiftyone.write import check_text_fields, run_field_clashes

    clashes = run_field_clashes(run_key, images.fields)
    if clashes:
        raise SourceError(f"CSV column(s) {clashes} would be overwritten by the fields run key "
                          f"{run_key!r} writes; rename the column(s) or pick another --run-key.")
    fo = import_fiftyone()
    if fo.dataset_exists(dataset):
        check_text_fields(fo.load_dataset(dataset), images.fields)


def demo(*, dataset: str = DEMO_DATASET, clean: bool = False, **kwargs) -> RunOutcome:
    """:func:`run` on scikit-learn's handwritten digits (1,797 images, no download needed), with wrong
    labels, damaged and two-object images planted in a copy (field ``planted``) so the run can say
    how many it found; ``clean`` runs the untouched digits."""
    return run("digits" if clean else "digits-planted", dataset=dataset, **kwargs)


def load_dataset(name_or_dataset):
    """The FiftyOne dataset ``name_or_dataset`` (a name, or a dataset returned as is)."""
    if not isinstance(name_or_dataset, str):
        return name_or_dataset
    from curate.fiftyone.db import import_fiftyone

    fo = import_fiftyone()
    if not fo.dataset_exists(name_or_dataset):
        raise SourceError(f"FiftyOne dataset {name_or_dataset!r} does not exist; run "
                          f"`curate run SOURCE --dataset {name_or_dataset}` first.")
    dataset = fo.load_dataset(name_or_dataset)
    # FiftyOne keeps one Dataset object per name in a process; in a long-lived one (the App's server)
    # it may predate another process's run, so read the run records and schema afresh.
    dataset.reload()
    return dataset


@dataclass
class ReviewStatus:
    """Review progress of one run: the export plan, flags by review state, the run's warnings."""

    dataset: str
    run_key: str
    plan: Any    # pandas.DataFrame, one row per scored sample (curate.science.review.plan_export)
    counts: Any  # pandas.DataFrame, flags x review states
    warnings: list[str]
    calibration: dict | None = None  # the audit reviews the App's audited P(label wrong) was last calibrated with


def status(dataset, *, run_key: str = DEFAULT_RUN_KEY, policy: ExportPolicy = ExportPolicy()) -> ReviewStatus:
    """Flags by review state, and what an export under ``policy`` would do now."""
    from curate.fiftyone.export import review_plan, run_warnings
    from curate.science.review import status_table

    dataset = load_dataset(dataset)
    plan = review_plan(dataset, run_key, policy)
    from curate.fiftyone.calibrate import calibration_of

    return ReviewStatus(dataset.name, run_key, plan, status_table(plan), run_warnings(dataset, run_key),
                        calibration_of(dataset, run_key))


def calibrate(dataset, *, run_key: str = DEFAULT_RUN_KEY):
    """Rescale every sample's P(label wrong) by the label-audit images reviewed so far and write it to
    the App (``<run>_p_label_wrong_audited``, the label-noise view's order, the reasons); returns a
    :class:`curate.fiftyone.calibrate.Calibration`. Call it again after more reviews."""
    from curate.data.safety import dataset_lock

    dataset = load_dataset(dataset)  # before anything imports fiftyone: it configures the database first
    from curate.fiftyone.calibrate import calibrate_run

    with dataset_lock(dataset.name, run_key):
        return calibrate_run(dataset, run_key)


def export(dataset, out: str | os.PathLike, *, fmt: str = "folder", policy: ExportPolicy = ExportPolicy(),
           splits: tuple[float, ...] | None = None, seed: int = 0, run_key: str = DEFAULT_RUN_KEY,
           force: bool = False) -> dict[str, Any]:
    """The reviewed dataset, cleaned, to the new directory ``out``; returns the export manifest."""
    from curate.fiftyone.export import export_dataset

    return export_dataset(load_dataset(dataset), out, fmt=fmt, policy=policy, splits=splits, seed=seed,
                          run_key=run_key, force=force)


def weights(dataset, out: str | os.PathLike, *, scheme: str = "factor", factor: float = 2.0,
            policy: ExportPolicy = ExportPolicy(), run_key: str = DEFAULT_RUN_KEY, force: bool = False):
    """Per-sample training weights to ``out`` (.csv or .parquet); returns the table."""
    from curate.fiftyone.export import write_weights

    return write_weights(load_dataset(dataset), out, scheme=scheme, factor=factor, policy=policy, run_key=run_key,
                         force=force)


@dataclass
class ReportOutcome:
    path: Path
    screenshot: Path | None = None


def report(dataset=None, *, run_key: str = DEFAULT_RUN_KEY, run_dir: str | os.PathLike | None = None,
           out: str | os.PathLike | None = None, title: str | None = None, force: bool = False,
           screenshot: str | os.PathLike | None = None) -> ReportOutcome:
    """The HTML report of a run (of ``dataset``, or of ``run_dir`` directly), and optionally a PNG of it
    rendered in headless Chromium.

    With a dataset, the report's path is recorded in ``dataset.info["curate"][run_key]["report"]``.
    """
    from curate.fiftyone.export import run_record
    from curate.fiftyone.write import update_run_info
    from curate.data.safety import check_not_media, run_media_folders
    from curate.report.html import write_report

    if (dataset is None) == (run_dir is None):
        raise ValueError("Give a dataset NAME or --run-dir DIR (one of them).")
    if dataset is not None:
        dataset = load_dataset(dataset)
        run_dir = Path(run_record(dataset, run_key).run_dir)
    name = dataset.name if dataset is not None else Path(run_dir).name
    if screenshot is not None:
        check_not_media(screenshot, run_media_folders(run_dir), "Screenshot")
    path = write_report(run_dir, out, title=title or f"curate report: {name}", force=force).resolve()
    if dataset is not None:
        update_run_info(dataset, run_key, {"report": str(path)})
    shot = None
    if screenshot is not None:
        from curate.report.browser import BrowserUnavailable, screenshot as photograph

        try:
            shot = photograph(path.as_uri(), screenshot, 1300, 2400)
        except BrowserUnavailable as exc:
            raise ReportError(str(exc)) from None
    return ReportOutcome(path, shot)


def runs(dataset) -> list[dict[str, Any]]:
    """Every curate run recorded on ``dataset``, with its status (``complete`` or ``writing``)."""
    from curate.fiftyone.write import list_curate_runs

    return list_curate_runs(load_dataset(dataset))


def delete_run(dataset, run_key: str) -> None:
    """Remove run ``run_key``'s fields, tags, views, Brain runs and record (images and labels stay)."""
    from curate.fiftyone.write import remove_run
    from curate.data.safety import dataset_lock

    dataset = load_dataset(dataset)
    with dataset_lock(dataset.name, run_key):
        if not remove_run(dataset, run_key):
            raise SourceError(f"Dataset {dataset.name!r} has no run {run_key!r}.")
