"""After review: read the review state from FiftyOne, export cleaned splits, write sample weights.

The decisions are made by the pure functions of :mod:`curate.science.review`; this module reads the
dataset and writes files. It never modifies the dataset or the images: exports are built from new
samples in a temporary dataset, written to a hidden directory beside ``out`` and moved into place
only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from curate import __version__
from curate.science.flags import flag_of
from curate.fiftyone.write import COMPLETE, LABEL_FIELD, METHOD, run_status
from curate.science.review import ExportPolicy, plan_export, sample_weights, split_of, stratified_splits
from curate.data.store import RunStore, RunStoreVersionError
from curate.data.safety import (EXPORT_MARKER, OutputError, check_not_media, check_replaceable_export,
                                check_replaceable_file, files_under, media_folders, run_media_folders)

FORMATS = ("folder", "fiftyone", "csv")


class ExportError(RuntimeError):
    """An export that cannot proceed (existing output, unknown run)."""


def run_record(dataset, run_key: str = METHOD):
    """The recorded config of curate run ``run_key`` on ``dataset``."""
    if not dataset.has_run(run_key):
        runs = dataset.list_runs(method=METHOD)
        raise ExportError(f"Dataset {dataset.name!r} has no curate run {run_key!r}; its runs: {runs or 'none'}. "
                          f"Run `curate run ... --dataset {dataset.name}` first or pass --run-key.")
    config = dataset.get_run_info(run_key).config
    if run_status(config) != COMPLETE:
        raise ExportError(f"Run {run_key!r} of dataset {dataset.name!r} was interrupted while it was written to "
                          f"FiftyOne, so its fields are incomplete. Run the same `curate run ... --dataset "
                          f"{dataset.name} --run-key {run_key}` again to finish it (finished networks are reused), "
                          f"or remove it with `curate runs {dataset.name} --delete {run_key}`.")
    return config


def run_warnings(dataset, run_key: str = METHOD) -> list[str]:
    """The warnings run ``run_key`` recorded about its population (:func:`curate.science.analysis.population_warnings`)."""
    return list((dataset.info.get("curate") or {}).get(run_key, {}).get("warnings") or [])


def _results_dir(config, dataset, run_key: str) -> Path:
    """The run directory a run record names, checked to still hold the run's results."""
    run_dir = Path(config.run_dir)
    if not (run_dir / "samples.parquet").exists():
        raise ExportError(f"Run {run_key!r} recorded its results in {run_dir}, which is gone; run "
                          f"`curate run ... --dataset {dataset.name} --run-key {run_key}` again to rebuild it.")
    store = RunStore(run_dir)
    try:
        store.check_version()
    except RunStoreVersionError as exc:
        raise ExportError(str(exc)) from None
    status = (store.read_json("manifest.json") or {}).get("status")
    if status != "complete":
        raise ExportError(f"Run directory {run_dir} of run {run_key!r} is being rewritten or was interrupted "
                          f"(status {status!r}); let that run finish, or run `curate run ... --dataset "
                          f"{dataset.name} --run-key {run_key}` again.")
    return run_dir


def _classes_in(run_dir: Path) -> list[str]:
    return list(json.loads((run_dir / "manifest.json").read_text())["classes"])


def run_classes(dataset, run_key: str = METHOD) -> list[str]:
    """The classes run ``run_key`` learnt, from its manifest (no pass over the samples)."""
    return _classes_in(_results_dir(run_record(dataset, run_key), dataset, run_key))


def review_table(dataset, run_key: str = METHOD) -> tuple[pd.DataFrame, list[str]]:
    """One row per sample the run scored: current and run-time label, split, flag, suggestion, tags, PIE.

    Returns ``(table, classes)``, the columns :func:`curate.science.review.plan_export` needs plus
    ``pie``, ``pie_score``, ``p_label_wrong`` (the run's P(label wrong), NaN for runs without it),
    ``audit_stratum`` and ``label_audit`` (:mod:`curate.science.audit`; None and False for runs without it).
    """
    from curate.fiftyone.runs import recorded_names  # imports FiftyOne, which curate.api's import must not

    config = run_record(dataset, run_key)
    names = recorded_names(config, run_key)
    label_field = config.label_field or LABEL_FIELD
    run_dir = _results_dir(config, dataset, run_key)
    run_samples = pd.read_parquet(run_dir / "samples.parquet")
    classes = _classes_in(run_dir)
    scored = dataset.exists(names.pie)
    ids, paths, labels, tags, category, noisy, suggested, pie, pie_score, corrupt = scored.values([
        "id", "filepath", f"{label_field}.label", "tags", names.category, names.label_noise,
        f"{names.suggested}.label", names.pie, names.pie_score, names.corruption])
    by_path = run_samples.set_index("filepath")
    run_labels = [by_path["label"].get(p, label) for p, label in zip(paths, labels)]
    # Runs before the noise model have no probability: NaN, which the status leaves out.
    wrong = by_path["label_wrong_probability"] if "label_wrong_probability" in by_path else pd.Series(dtype=float)
    p_wrong = [float(wrong.get(p, np.nan)) for p in paths]
    keeper = by_path["duplicate_keep"] if "duplicate_keep" in by_path else pd.Series(dtype=bool)
    duplicate_keep = [bool(keeper.get(p, True)) for p in paths]
    # Runs before the label audit have none: no image is in it.
    stratum = by_path["audit_stratum"] if "audit_stratum" in by_path else pd.Series(dtype=object)
    drawn = by_path["label_audit"] if "label_audit" in by_path else pd.Series(dtype=bool)
    flags = [flag_of(c, n, x) for c, n, x in zip(category, noisy, corrupt)]
    table = pd.DataFrame({
        "sample_id": ids, "filepath": paths, "label": labels, "run_label": run_labels,
        "split": [split_of(t) for t in tags], "flag": flags, "suggested": suggested, "tags": tags,
        "pie": [bool(p) for p in pie], "pie_score": [float(s or 0.0) for s in pie_score], "p_label_wrong": p_wrong,
        "duplicate_keep": duplicate_keep,
        "audit_stratum": [stratum.get(p) for p in paths], "label_audit": [bool(drawn.get(p, False)) for p in paths],
    })
    return table, classes


def review_plan(dataset, run_key: str = METHOD, policy: ExportPolicy = ExportPolicy(),
                splits: tuple[float, ...] | None = None, seed: int = 0) -> pd.DataFrame:
    """:func:`review_table` planned by :func:`curate.science.review.plan_export`: one action per sample, with why.

    ``splits`` (fractions such as ``(0.8, 0.1, 0.1)``) replaces the split tags with seeded stratified
    splits of every scored sample, drawn before the policy is applied, so that ``drop_unreviewed``
    spares the new val/test splits as it spares tagged ones (drawn after the drops, the evaluation
    splits would lose their flagged, hardest images).
    """
    table, classes = review_table(dataset, run_key)
    if splits is not None:
        table["split"] = stratified_splits(table["label"].to_numpy(), splits, seed)
    return plan_export(table, classes, policy)


def _replace_dir(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished export ``tmp`` to ``out``; an old ``out`` goes only if curate exported it."""
    old = None
    if out.exists() or out.is_symlink():
        _check_out(out, force, ())  # again: the directory may have changed while the export ran
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_out(out: Path, force: bool, folders) -> None:
    """Refuse an ``out`` among the source images, or an existing one that is not a curate export."""
    try:
        check_not_media(out, folders, "Export directory")
        if out.exists() or out.is_symlink():
            if not force:
                raise ExportError(f"{out} already exists; choose a new directory or pass --force to replace it.")
            check_replaceable_export(out)
    except OutputError as exc:
        raise ExportError(str(exc)) from None


def dataset_media_folders(dataset, run_key: str) -> set[Path]:
    """The folders holding the dataset's images, and those of the run's own source."""
    run_dir = _results_dir(run_record(dataset, run_key), dataset, run_key)
    return media_folders(dataset.distinct("filepath")) | run_media_folders(run_dir)


def export_dataset(dataset, out: str | os.PathLike, *, fmt: str = "folder", policy: ExportPolicy = ExportPolicy(),
                   splits: tuple[float, ...] | None = None, seed: int = 0, run_key: str = METHOD,
                   force: bool = False) -> dict[str, Any]:
    """Export the cleaned dataset to ``out`` (a new directory) and return the export manifest.

    ``splits``: ``None`` keeps the dataset's split tags; fractions such as ``(0.8, 0.1, 0.1)`` make
    seeded stratified train/val/test splits instead (:func:`review_plan`).
    """
    from curate.fiftyone.db import import_fiftyone

    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose one of {FORMATS}.")
    out = Path(out).expanduser().absolute()
    _check_out(out, force, dataset_media_folders(dataset, run_key))
    plan = review_plan(dataset, run_key, policy, splits, seed)
    kept = plan[plan["action"] != "drop"].copy()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        if fmt == "csv":
            tmp.mkdir()
            kept[["filepath", "new_label", "split"]].rename(columns={"new_label": "label"}).to_csv(
                tmp / "manifest.csv", index=False)
        else:
            # FiftyOne's exporters create the directory; given one that exists, they warn that the
            # export "will be merged with existing files", which reads as if curate merged into old output.
            fo = import_fiftyone()
            _export_with_fiftyone(fo, kept, tmp, fmt)
            tmp.mkdir(exist_ok=True)  # nothing was kept: the exporters wrote nothing
        changes = plan[plan["action"] != "keep"][["sample_id", "filepath", "run_label", "new_label", "split",
                                                 "flag", "state", "action", "reason"]]
        changes.to_csv(tmp / "changes.csv", index=False)
        manifest = {
            "curate_version": __version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dataset": dataset.name, "run_key": run_key, "format": fmt,
            "policy": {k: list(v) if isinstance(v, tuple) else v for k, v in policy.__dict__.items()},
            "splits": list(splits) if splits is not None else "dataset tags", "seed": seed,
            "counts": {
                "scored": len(plan), "exported": len(kept),
                "dropped": int((plan["action"] == "drop").sum()),
                "relabelled": int((plan["action"] == "relabel").sum()),
                "per_split": {str(k): int(v) for k, v in kept["split"].fillna("unassigned").value_counts().items()},
            },
            "changes": changes.to_dict(orient="records"),
            "kept_with_note": plan[(plan["action"] == "keep") & (plan["reason"] != "")][
                ["sample_id", "filepath", "reason"]].to_dict(orient="records"),
            # What --force may delete later: these files and nothing else.
            "files": files_under(tmp),
        }
        (tmp / EXPORT_MARKER).write_text(json.dumps(manifest, indent=2, default=str))
        _replace_dir(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _has_split(split) -> bool:
    """A split name; pandas holds a missing one as None or NaN, and NaN is truthy."""
    return isinstance(split, str) and bool(split)


def _export_with_fiftyone(fo, kept: pd.DataFrame, tmp: Path, fmt: str) -> None:
    """Write ``kept`` through FiftyOne's exporters, from a temporary dataset of new samples."""
    scratch = fo.Dataset()
    try:
        scratch.add_samples([
            fo.Sample(filepath=path, tags=[split] if _has_split(split) else [],
                      ground_truth=fo.Classification(label=label))
            for path, label, split in zip(kept["filepath"], kept["new_label"], kept["split"])
        ], progress=False)
        if fmt == "fiftyone":
            scratch.export(export_dir=str(tmp), dataset_type=fo.types.FiftyOneDataset, export_media=True,
                           progress=False)
            return
        split_names = [s for s in kept["split"].unique() if _has_split(s)]
        if not split_names:
            scratch.export(export_dir=str(tmp), dataset_type=fo.types.ImageClassificationDirectoryTree,
                           label_field="ground_truth", progress=False)
            return
        for split in split_names:
            scratch.match_tags(split).export(export_dir=str(tmp / split),
                                             dataset_type=fo.types.ImageClassificationDirectoryTree,
                                             label_field="ground_truth", progress=False)
        unassigned = scratch.match(fo.ViewField("tags").length() == 0)
        if len(unassigned):
            unassigned.export(export_dir=str(tmp / "unassigned"),
                              dataset_type=fo.types.ImageClassificationDirectoryTree,
                              label_field="ground_truth", progress=False)
    finally:
        scratch.delete()


def write_weights(dataset, out: str | os.PathLike, *, scheme: str = "factor", factor: float = 2.0,
                  policy: ExportPolicy = ExportPolicy(), run_key: str = METHOD, force: bool = False) -> pd.DataFrame:
    """Per-sample weights (:func:`curate.science.review.sample_weights`) to a CSV or parquet file."""
    out = Path(out).expanduser().absolute()
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ExportError(f"Weights go to a .csv or .parquet file, got {out.name!r}.")
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; choose a new file or pass --force to replace it.")
    try:
        check_not_media(out, dataset_media_folders(dataset, run_key), "Weights file")
        check_replaceable_file(out, "weights")
    except OutputError as exc:
        raise ExportError(str(exc)) from None
    plan = review_plan(dataset, run_key, policy)
    weights = sample_weights(plan, plan["pie_score"].to_numpy(), plan["pie"].to_numpy(), scheme, factor)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if out.suffix.lower() == ".csv":
        weights.to_csv(tmp, index=False)
    else:
        weights.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return weights


def weighted_sampler(weights, num_samples: int | None = None, replacement: bool = True, generator=None):
    """A ``torch.utils.data.WeightedRandomSampler`` over the rows of a weights file or table.

    Args:
        weights: a path to a file written by ``curate weights``, a DataFrame with a ``weight``
            column, or an array of weights, in the order of the dataset the sampler will index.
        num_samples: draws per epoch; defaults to the number of samples with non-zero weight.
    """
    import torch
    from torch.utils.data import WeightedRandomSampler

    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        weights = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    if isinstance(weights, pd.DataFrame):
        if "weight" not in weights.columns:
            raise ValueError(f"The weights table has no 'weight' column; columns are {list(weights.columns)}.")
        weights = weights["weight"].to_numpy()
    values = np.asarray(weights, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or (values < 0).any() or not np.isfinite(values).all():
        raise ValueError("Weights must be a non-empty 1-D array of finite, non-negative numbers.")
    if not (values > 0).any():
        raise ValueError("Every weight is zero: nothing to sample.")
    n = num_samples if num_samples is not None else int((values > 0).sum())
    return WeightedRandomSampler(torch.tensor(values, dtype=torch.double), n, replacement=replacement,
                                 generator=generator)
