"""Write a run into a FiftyOne dataset: per-sample fields, the ``pie`` tag, saved views, a recorded run.

Everything a run writes is listed in its recorded run config (fields, tag, views), so running again
under the same run key first removes exactly that and nothing else, and ``curate runs NAME --delete``
can remove a run completely. User samples are never deleted: curate only adds samples (for a folder
or CSV source) and adds or replaces its own fields.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from curate import __version__
from curate.pies import NO_LEVEL

METHOD = "curate"
LABEL_FIELD = "ground_truth"


def names_for(run_key: str, level_names: list[str]) -> dict[str, Any]:
    """Field, tag and view names a run writes under ``run_key``."""
    tag = "pie" if run_key == METHOD else f"{run_key}:pie"
    prefix = "" if run_key == METHOD else f"{run_key}-"
    return {
        "dense": f"{run_key}_dense",
        "levels": {name: f"{run_key}_{name}" for name in level_names},
        "pie": f"{run_key}_pie",
        "pie_score": f"{run_key}_pie_score",
        "pie_level": f"{run_key}_pie_level",
        "pie_levels": f"{run_key}_pie_levels",
        "tag": tag,
        "views": {"all": f"{prefix}pies", **{name: f"{prefix}pies-{name}" for name in level_names}},
    }


def _all_fields(names: dict[str, Any]) -> list[str]:
    return [names["dense"], *names["levels"].values(), names["pie"], names["pie_score"], names["pie_level"],
            names["pie_levels"]]


def get_or_create_dataset(fo, name: str, filepaths: list[str], labels: list[str], splits: list[str | None]):
    """The persistent dataset ``name`` holding every path in ``filepaths``; adds the missing ones.

    New samples get the source label as ``ground_truth`` and their split as a sample tag.
    Existing samples are left exactly as they are.
    """
    dataset = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    existing = set(dataset.values("filepath")) if len(dataset) else set()
    new = []
    for path, label, split in zip(filepaths, labels, splits):
        if path in existing:
            continue
        sample = fo.Sample(filepath=path, tags=[split] if split else [])
        sample[LABEL_FIELD] = fo.Classification(label=label)
        new.append(sample)
    if new:
        dataset.add_samples(new, progress=False)
    return dataset


def remove_run(dataset, run_key: str) -> bool:
    """Remove everything run ``run_key`` wrote: fields, tag, saved views and the run record."""
    if not dataset.has_run(run_key):
        return False
    config = dataset.get_run_info(run_key).config
    fields = getattr(config, "fields", None) or []
    tag = getattr(config, "tag", None)
    views = getattr(config, "views", None) or []
    for view_name in views:
        if dataset.has_saved_view(view_name):
            dataset.delete_saved_view(view_name)
    if tag:
        dataset.untag_samples(tag)
    present = [f for f in fields if dataset.has_sample_field(f)]
    if present:
        dataset.delete_sample_fields(present)
    dataset.delete_run(run_key)
    return True


def push_run(result, dataset_name: str, run_key: str = METHOD):
    """Write ``result`` (a :class:`curate.pipeline.RunResult`) into FiftyOne; returns the dataset."""
    from curate.fo_db import import_fiftyone

    fo = import_fiftyone()
    if not run_key.isidentifier():
        raise ValueError(f"Run key {run_key!r} must be a Python identifier (letters, digits, underscores).")
    images = result.images
    classes = np.asarray(images.classes, dtype=object)
    label_names = classes[images.labels].tolist()
    if images.sample_ids is None:
        dataset = get_or_create_dataset(fo, dataset_name, images.filepaths, label_names, images.splits)
        id_by_path = dict(zip(*dataset.values(["filepath", "id"])))
        ids = [id_by_path[p] for p in images.filepaths]
    else:
        dataset = fo.load_dataset(dataset_name)
        ids = list(images.sample_ids)

    remove_run(dataset, run_key)
    names = names_for(run_key, result.level_names)
    scores = result.scores
    level_names = result.level_names
    sparsities = list(result.config.sparsities)

    with np.errstate(divide="ignore"):
        dense_logits = np.log(np.clip(scores.dense_mean_probs, 1e-12, 1.0))
    values: dict[str, list] = {field: [] for field in _all_fields(names)}
    for i in range(len(ids)):
        values[names["dense"]].append(fo.Classification(
            label=str(classes[scores.dense_modal[i]]), confidence=float(scores.dense_confidence[i]),
            logits=dense_logits[i].astype(float).tolist(),
        ))
        for level, (name, field) in enumerate(names["levels"].items()):
            values[field].append(fo.Classification(
                label=str(classes[scores.compressed_modal[level, i]]),
                confidence=float(scores.compressed_confidence[level, i]),
                tags=["pie"] if scores.is_pie[level, i] else [],
            ))
        lowest = int(scores.lowest_level[i])
        values[names["pie"]].append(bool(lowest != NO_LEVEL))
        values[names["pie_score"]].append(float(scores.pie_score[i]))
        values[names["pie_level"]].append(float(sparsities[lowest]) if lowest != NO_LEVEL else None)
        values[names["pie_levels"]].append([level_names[t] for t in np.flatnonzero(scores.is_pie[:, i])])
    for field, field_values in values.items():
        dataset.set_values(field, dict(zip(ids, field_values)), key_field="id")

    pie_ids = [sid for sid, lowest in zip(ids, scores.lowest_level) if lowest != NO_LEVEL]
    if pie_ids:
        dataset.select(pie_ids).tag_samples(names["tag"])

    from fiftyone import ViewField as F

    dataset.save_view(
        names["views"]["all"],
        dataset.match_tags(names["tag"]).sort_by(names["pie_score"], reverse=True),
        description=f"PIEs of run {run_key!r} at any compression level, highest PIE score first",
        overwrite=True,
    )
    for name in level_names:
        dataset.save_view(
            names["views"][name],
            dataset.match(F(names["pie_levels"]).contains(name)).sort_by(names["pie_score"], reverse=True),
            description=f"PIEs of run {run_key!r} at level {name}",
            overwrite=True,
        )

    levels = result.levels
    config = dataset.init_run(
        method=METHOD,
        curate_version=__version__,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        run_dir=str(result.store.root),
        curate_config=result.config.to_dict(),
        label_field=images.label_field or LABEL_FIELD,
        levels=level_names,
        fields=_all_fields(names),
        tag=names["tag"],
        views=list(names["views"].values()),
    )
    dataset.register_run(run_key, config, overwrite=True)
    results = dataset.init_run_results(
        run_key,
        n_samples=len(ids),
        n_pies=len(pie_ids),
        levels=levels.to_dict(orient="records"),
        bad_images=[b.__dict__ for b in result.bad_images],
    )
    dataset.save_run_results(run_key, results, overwrite=True)
    info = dict(dataset.info)
    info.setdefault("curate", {})[run_key] = {"run_dir": str(result.store.root), "version": __version__}
    dataset.info = info
    dataset.save()
    return dataset


def list_curate_runs(dataset) -> list[dict[str, Any]]:
    """Summary of every curate run recorded on ``dataset``."""
    rows = []
    for key in dataset.list_runs(method=METHOD):
        info = dataset.get_run_info(key)
        config = info.config
        n_pies = None
        try:
            n_pies = dataset.load_run_results(key, cache=False, load_view=False).n_pies
        except Exception:
            pass
        rows.append({
            "run_key": key,
            "date": getattr(config, "date", None),
            "version": getattr(config, "curate_version", None),
            "levels": ",".join(getattr(config, "levels", []) or []),
            "pies": n_pies,
            "run_dir": getattr(config, "run_dir", None),
        })
    return rows
