"""Write a run into a FiftyOne dataset: per-sample fields, the ``pie`` tag, saved views, a recorded run.

Everything a run writes is listed in its recorded run config (fields, tag, views), so running again
under the same run key first removes exactly that and nothing else, and ``curate runs NAME --delete``
can remove a run completely. User samples are never deleted: curate only adds samples (for a folder
or CSV source) and adds or replaces its own fields.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate import __version__
from curate.data.faults import checkpoint
from curate.science.flags import category_names, flag_of
from curate.science.pies import NO_LEVEL

METHOD = "curate"
LABEL_FIELD = "ground_truth"
# A run's record says "writing" from before its first field is written until after its last.
WRITING, COMPLETE = "writing", "complete"


@dataclass(frozen=True)
class RunNames:
    """Field, tag and view names a run writes under one run key (:func:`names_for`)."""

    category: str
    label_noise: str
    corruption: str
    corruption_score: str
    suggested: str
    flag_score: str
    reason: str
    hardness: str  # FiftyOne Brain's fields
    mistakenness: str
    category_tags: dict[str, str]
    label_noise_tag: str
    corruption_tag: str
    category_views: dict[str, str]
    label_noise_view: str
    corruption_view: str
    dense: str
    levels: dict[str, str]  # level name -> field of its predictions
    pie: str
    pie_score: str
    pie_level: str
    pie_levels: str
    pie_beyond_control: str
    p_label_wrong: str
    p_label_wrong_audited: str  # written by curate calibrate, not by the run
    label_audit: str
    label_audit_view: str
    duplicate_cluster: str
    duplicate_tag: str
    leak_tag: str
    duplicates_view: str
    tag: str
    views: dict[str, str]  # "all" and each level name -> saved view

    @property
    def fields(self) -> list[str]:
        """The per-sample fields curate writes itself (the brain fields are written by FiftyOne Brain)."""
        return [self.dense, *self.levels.values(), self.pie, self.pie_score, self.pie_level, self.pie_levels,
                self.pie_beyond_control, self.p_label_wrong, self.p_label_wrong_audited, self.label_audit,
                self.duplicate_cluster, self.category, self.label_noise, self.corruption, self.corruption_score,
                self.suggested, self.flag_score, self.reason]

    @property
    def tags(self) -> list[str]:
        return [self.tag, *self.category_tags.values(), self.label_noise_tag, self.corruption_tag, self.duplicate_tag,
                self.leak_tag]

    @property
    def all_views(self) -> list[str]:
        return [*self.views.values(), *self.category_views.values(), self.label_noise_view, self.corruption_view,
                self.duplicates_view, self.label_audit_view]


def names_for(run_key: str, level_names: list[str], categories: tuple[str, ...] | None = None) -> RunNames:
    """Field, tag and view names a run writes under ``run_key`` (``categories``: the flag categories,
    default every registered one)."""
    categories = category_names() if categories is None else categories
    tag = "pie" if run_key == METHOD else f"{run_key}:pie"
    prefix = "" if run_key == METHOD else f"{run_key}-"
    brain_prefix = "" if run_key == METHOD else f"{run_key}_"
    return RunNames(
        category=f"{run_key}_category",
        label_noise=f"{run_key}_label_noise",
        corruption=f"{run_key}_corruption",
        corruption_score=f"{run_key}_corruption_score",
        suggested=f"{run_key}_suggested",
        flag_score=f"{run_key}_flag_score",
        reason=f"{run_key}_reason",
        hardness=f"{brain_prefix}hardness",
        mistakenness=f"{brain_prefix}mistakenness",
        category_tags={c: f"{tag}:{c}" for c in categories},
        label_noise_tag="label_noise" if run_key == METHOD else f"{run_key}:label_noise",
        corruption_tag="corruption" if run_key == METHOD else f"{run_key}:corruption",
        category_views={c: f"{prefix}pies-{c}" for c in categories},
        label_noise_view=f"{prefix}label-noise",
        corruption_view=f"{prefix}corruption",
        dense=f"{run_key}_dense",
        levels={name: f"{run_key}_{name}" for name in level_names},
        pie=f"{run_key}_pie",
        pie_score=f"{run_key}_pie_score",
        pie_level=f"{run_key}_pie_level",
        pie_levels=f"{run_key}_pie_levels",
        pie_beyond_control=f"{run_key}_pie_beyond_control",
        p_label_wrong=f"{run_key}_p_label_wrong",
        p_label_wrong_audited=f"{run_key}_p_label_wrong_audited",
        label_audit=f"{run_key}_label_audit",
        label_audit_view=f"{prefix}label-audit",
        duplicate_cluster=f"{run_key}_duplicate_cluster",
        duplicate_tag="duplicate" if run_key == METHOD else f"{run_key}:duplicate",
        leak_tag="leak" if run_key == METHOD else f"{run_key}:leak",
        duplicates_view=f"{prefix}duplicates",
        tag=tag,
        views={"all": f"{prefix}pies", **{name: f"{prefix}pies-{name}" for name in level_names}},
    )


def run_field_clashes(run_key: str, columns) -> list[str]:
    """The names in ``columns`` (a CSV manifest's extra columns) that a run under ``run_key`` writes to.

    Covers every field the run may write, whatever its levels: ``{run_key}_*`` and FiftyOne Brain's
    hardness and mistakenness fields.
    """
    names = names_for(run_key, [])
    return [c for c in columns if c.startswith(f"{run_key}_") or c in (names.hardness, names.mistakenness)]


def get_or_create_dataset(fo, name: str, filepaths: list[str], labels: list[str], splits: list[str | None],
                          fields: dict[str, list[str | None]] | None = None):
    """The persistent dataset ``name`` holding every path in ``filepaths``; adds the missing ones.

    New samples get the source label as ``ground_truth``, their split as a sample tag and ``fields``
    (a CSV manifest's other columns). Existing samples are left exactly as they are.
    """
    fields = fields or {}
    dataset = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    existing = set(dataset.values("filepath")) if len(dataset) else set()
    new = []
    for i, (path, label, split) in enumerate(zip(filepaths, labels, splits)):
        if path in existing:
            continue
        sample = fo.Sample(filepath=path, tags=[split] if split else [])
        sample[LABEL_FIELD] = fo.Classification(label=label)
        for field, values in fields.items():
            sample[field] = values[i]
        new.append(sample)
    if new:
        import fiftyone.core.fields as fof

        check_text_fields(dataset, fields)
        for field in fields:
            if not dataset.has_sample_field(field):
                dataset.add_sample_field(field, fof.StringField)
        half = len(new) // 2
        dataset.add_samples(new[:half], progress=False)
        checkpoint("fiftyone:samples")
        dataset.add_samples(new[half:], progress=False)
    return dataset


def check_text_fields(dataset, fields) -> None:
    """Raise ValueError if ``dataset`` has a field named like one of ``fields`` that is not text."""
    import fiftyone.core.fields as fof

    schema = dataset.get_field_schema()
    for field in fields:
        if field in schema and not isinstance(schema[field], fof.StringField):
            raise ValueError(f"Dataset {dataset.name!r} already has a field {field!r} of type "
                             f"{type(schema[field]).__name__}; the CSV column of that name holds text. "
                             "Rename the column, or write to a new dataset.")


def remove_run(dataset, run_key: str) -> bool:
    """Remove everything run ``run_key`` wrote: fields, tags, saved views, Brain runs and the run record.

    Works on a run that was interrupted while it was written (its record lists what it was about to
    write before any of it was written), so a kill at any point leaves nothing this cannot remove.
    FiftyOne's own ``dataset.delete_run(run_key)`` does the same (:class:`curate.fiftyone.runs.CurateRun`).
    """
    if not dataset.has_run(run_key):
        return False
    import fiftyone.core.runs as fors

    from curate.fiftyone.runs import remove_written

    # Not through dataset.delete_run's cleanup: FiftyOne logs a failed cleanup and deletes the record
    # anyway, which would leave fields no record lists. Cleaned up here, the record goes only after.
    remove_written(dataset, dataset.get_run_info(run_key).config, run_key)
    fors.Run.delete_run(dataset, run_key, cleanup=False)
    return True


def update_run_info(dataset, run_key: str, values: dict[str, Any] | None) -> None:
    """Merge ``values`` into ``dataset.info["curate"][run_key]``; ``None`` removes the entry.

    Builds new dicts rather than editing the stored ones in place: FiftyOne tracks changes to
    ``info`` by assignment, and an in-place edit of a nested dict is validated as a field of its own.
    """
    info = copy.deepcopy(dict(dataset.info))
    runs = dict(info.get("curate") or {})
    if values is None:
        if run_key not in runs:
            return
        del runs[run_key]
    else:
        runs[run_key] = {**runs.get(run_key, {}), **values}
    info["curate"] = runs
    dataset.info = info
    dataset.save()


def run_status(config) -> str:
    """:data:`COMPLETE`, or :data:`WRITING` for a run whose write to FiftyOne was interrupted."""
    return getattr(config, "status", COMPLETE)


def _dataset_and_ids(fo, images, dataset_name: str):
    if images.sample_ids is None:
        dataset = get_or_create_dataset(fo, dataset_name, images.filepaths,
                                        np.asarray(images.classes, dtype=object)[images.labels].tolist(),
                                        images.splits, images.fields)
        id_by_path = dict(zip(*dataset.values(["filepath", "id"])))
        return dataset, [id_by_path[p] for p in images.filepaths]
    return fo.load_dataset(dataset_name), list(images.sample_ids)


def push_run(result, dataset_name: str, run_key: str = METHOD):
    """Write ``result`` (a :class:`curate.population.pipeline.RunResult`) into FiftyOne; returns the dataset.

    Crash-consistent: the run is recorded first, with status ``writing`` and the list of every
    field, tag, view and Brain run it is about to write, and marked ``complete`` last. Killed at
    any point in between, the next ``curate run`` (or ``curate runs --delete``) removes exactly
    what the interrupted one wrote and nothing else. One writer at a time per dataset and run key.
    """
    from curate.fiftyone.db import import_fiftyone
    from curate.data.safety import dataset_lock

    fo = import_fiftyone()
    if not run_key.isidentifier():
        raise ValueError(f"Run key {run_key!r} must be a Python identifier (letters, digits, underscores).")
    with dataset_lock(dataset_name, run_key):
        dataset, ids = _dataset_and_ids(fo, result.images, dataset_name)
        remove_run(dataset, run_key)
        names = names_for(run_key, result.level_names, result.categories.names)
        brain_keys = brain_keys_for(dataset, names)
        label_field = result.images.label_field or LABEL_FIELD
        from curate.fiftyone.runs import CurateRunConfig

        config = CurateRunConfig(
            status=WRITING,
            curate_version=__version__,
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            run_dir=str(result.store.root),
            curate_config=result.config.to_dict(),
            label_field=label_field,
            levels=result.level_names,
            categories=list(result.categories.names),
            fields=names.fields,
            tag=names.tag,
            tags=names.tags,
            views=names.all_views,
            brain_runs=list(brain_keys.values()),
            flag_thresholds=result.categories.thresholds,
        )
        dataset.register_run(run_key, config, overwrite=True)
        checkpoint("fiftyone:record")
        _write_fields(fo, dataset, ids, result, names)
        counts = _write_tags(dataset, ids, result, names)
        checkpoint("fiftyone:tags")
        write_brain_fields(dataset.select(ids), names, label_field, brain_keys)
        save_views(dataset, run_key, names, result.level_names)
        configure_app(dataset, run_key, names, label_field, result.level_names, result.config.level_kinds)
        checkpoint("fiftyone:complete")
        categories = result.categories
        results = dataset.init_run_results(
            run_key,
            n_samples=len(ids),
            categories={name: int((categories.category == name).sum()) for name in categories.names},
            levels=result.levels.to_dict(orient="records"),
            # Each level of another compression kind against the pruning level nearest in memory.
            overlaps=[] if result.matched_overlaps is None else result.matched_overlaps.to_dict(orient="records"),
            bad_images=[b.__dict__ for b in result.bad_images],
            **counts,
        )
        dataset.save_run_results(run_key, results, overwrite=True)
        update_run_info(dataset, run_key, {
            "run_dir": str(result.store.root), "version": __version__,
            "warnings": list(result.manifest.get("warnings", [])),
            "label_noise_count": dict(result.manifest.get("label_noise_count", {})),
            "in_sample_view": result.manifest.get("in_sample_view")})
        config.status = COMPLETE
        dataset.update_run_config(run_key, config)
    return dataset


def _write_fields(fo, dataset, ids: list[str], result, names: RunNames) -> None:
    """The run's per-sample fields (predictions per level, PIE marks, flags and reasons).

    Every field is declared first with its type (:func:`declare_fields`), and written in one update a sample
    (:func:`write_values`), neither inferring the schema nor validating value by value; each level's
    predictions are passed as FiftyOne's own stored form of a Classification (:func:`classification_documents`).
    Writing the demo's 1,797 samples took 30 s in a profile, half of it building and validating 21,564
    Classification objects one by one.
    """
    classes = np.asarray(result.images.classes, dtype=object)
    scores = result.scores
    is_pie_any = scores.is_pie_any  # a property: computed once, not per sample
    level_names = result.level_names
    sparsities = list(result.config.sparsities)

    with np.errstate(divide="ignore"):
        dense_logits = np.log(np.clip(scores.dense_mean_probs, 1e-12, 1.0))
    values: dict[str, list] = {field: [] for field in names.fields if field != names.p_label_wrong_audited}
    values[names.dense] = [fo.Classification(label=str(classes[scores.dense_modal[i]]),
                                             confidence=float(scores.dense_confidence[i]),
                                             logits=dense_logits[i].astype(float).tolist()) for i in range(len(ids))]
    for level, field in enumerate(names.levels.values()):
        values[field] = classification_documents(fo, classes[scores.compressed_modal[level]],
                                                 scores.compressed_confidence[level],
                                                 [["pie"] if pie else [] for pie in scores.is_pie[level]])
    for i in range(len(ids)):
        lowest = int(scores.lowest_level[i])
        values[names.pie].append(bool(is_pie_any[i]))
        values[names.pie_score].append(float(scores.pie_score[i]))
        values[names.pie_level].append(float(sparsities[lowest]) if lowest != NO_LEVEL else None)
        values[names.pie_levels].append([level_names[t] for t in np.flatnonzero(scores.is_pie[:, i])])
        values[names.pie_beyond_control].append(None if scores.control is None else bool(scores.control.beyond[:, i].any()))
    categories = result.categories
    samples = result.samples
    # An audit image's field is its stratum; the others have none (runs before the audit: no image).
    audit = ([str(h) if drawn else None for h, drawn in zip(samples["audit_stratum"], samples["label_audit"])]
             if "label_audit" in samples else [None] * len(ids))
    reasons = samples["reason"].tolist()
    clusters = samples["duplicate_cluster"].tolist() if "duplicate_cluster" in samples else [-1] * len(ids)
    for i in range(len(ids)):
        category = categories.category[i]
        noisy, corrupt = bool(categories.label_noise[i]), bool(categories.corruption[i])
        values[names.category].append(category or None)
        values[names.label_noise].append(noisy)
        values[names.corruption].append(corrupt)
        # The corruption view's own order: a corrupted image also flagged as label noise has the
        # label-noise score as its flag score.
        values[names.corruption_score].append(float(categories.scores["corruption"][i]) if corrupt else None)
        values[names.suggested].append(fo.Classification(
            label=str(classes[categories.suggested[i]]), confidence=float(categories.suggested_confidence[i]),
        ) if noisy else None)
        score_of = flag_of(category, noisy, corrupt)
        values[names.flag_score].append(float(categories.scores[score_of][i]) if score_of else None)
        values[names.reason].append(reasons[i] or None)
        values[names.duplicate_cluster].append(int(clusters[i]) if clusters[i] >= 0 else None)
        wrong = None if categories.label_wrong_probability is None else float(categories.label_wrong_probability[i])
        values[names.p_label_wrong].append(wrong if wrong is not None and np.isfinite(wrong) else None)
        values[names.label_audit].append(audit[i])
    declare_fields(dataset, {field: types for field, types in field_types(fo, names).items()
                             if not dataset.has_sample_field(field)})
    write_values(dataset, ids, values, halfway=lambda: checkpoint("fiftyone:fields"))


def write_values(dataset, ids: list[str], values: dict[str, list], *, halfway=None) -> None:
    """Set each field of ``values`` (a value per sample of ``ids``, in FiftyOne's own form) on the samples, as
    ``set_values(..., validate=False)`` stores them, and the samples' ``last_modified_at``.

    One update per sample with every field, through FiftyOne's internal bulk write where this FiftyOne has it
    (a ``set_values`` a field sends a field's update to every sample, 29 times for a run), else one
    ``set_values`` a field; the stored samples are the same either way (tested). ``halfway()`` is called with half
    of the samples written (or half of the fields).
    """
    bulk_write = _bulk_writer(dataset)
    if bulk_write is None:
        for n, (field, field_values) in enumerate(values.items()):
            if n == len(values) // 2 and halfway is not None:
                halfway()
            dataset.set_values(field, dict(zip(ids, field_values)), key_field="id", expand_schema=False,
                               validate=False)
        return
    from bson import ObjectId
    from pymongo import UpdateOne

    stored = {}
    for field, field_values in values.items():
        schema_field = dataset.get_field(field)
        stored[field] = [None if v is None else schema_field.to_mongo(v) for v in field_values]
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # FiftyOne stores naive UTC
    updates = [UpdateOne({"_id": ObjectId(sample_id)},
                         {"$set": {**{field: column[row] for field, column in stored.items()}, "last_modified_at": now}})
               for row, sample_id in enumerate(ids)]
    half = len(updates) // 2
    if half:
        bulk_write(updates[:half], ids=ids[:half])
    if halfway is not None:
        halfway()
    bulk_write(updates[half:], ids=ids[half:])


def field_types(fo, names: RunNames) -> dict[str, tuple[Any, dict]]:
    """The type of every field a run writes (``add_sample_field``'s arguments): declared before the
    write, since a run can find no PIE or flag at all and FiftyOne cannot infer a type from Nones."""
    import fiftyone.core.fields as fof

    classification = (fof.EmbeddedDocumentField, {"embedded_doc_type": fo.Classification})
    return {names.dense: classification, **{field: classification for field in names.levels.values()},
            names.pie: (fof.BooleanField, {}), names.pie_score: (fof.FloatField, {}),
            names.pie_level: (fof.FloatField, {}), names.pie_levels: (fof.ListField, {"subfield": fof.StringField}),
            names.pie_beyond_control: (fof.BooleanField, {}), names.p_label_wrong: (fof.FloatField, {}),
            names.label_audit: (fof.StringField, {}), names.duplicate_cluster: (fof.IntField, {}),
            names.category: (fof.StringField, {}), names.label_noise: (fof.BooleanField, {}),
            names.corruption: (fof.BooleanField, {}), names.corruption_score: (fof.FloatField, {}),
            names.suggested: classification, names.flag_score: (fof.FloatField, {}),
            names.reason: (fof.StringField, {})}


def declare_fields(dataset, types: dict[str, tuple[Any, dict]]) -> None:
    """Add the sample fields ``types`` (``add_sample_field``'s arguments; fields the dataset lacks) to ``dataset``
    in one schema update.

    ``add_sample_field`` reloads the dataset after each field, 27 times for a run. Through FiftyOne's internal
    schema merge where this FiftyOne has it, else one field at a time; the schema is the same either way (tested).
    """
    if not types:
        return
    merge = getattr(dataset, "_merge_sample_field_schema", None)
    try:
        from fiftyone.core.odm.utils import create_field

        if merge is not None:
            merge({field: create_field(field, kind, **kwargs) for field, (kind, kwargs) in types.items()})
            return
    except (ImportError, TypeError):  # another FiftyOne's internals: the public way below
        pass
    for field, (kind, kwargs) in types.items():
        dataset.add_sample_field(field, kind, **kwargs)


def _bulk_writer(dataset):
    """FiftyOne's internal bulk write of sample updates (what ``set_values`` calls), or None where this FiftyOne
    has none of that signature."""
    import inspect

    write = getattr(dataset, "_bulk_write", None)
    try:
        return write if write is not None and "ids" in inspect.signature(write).parameters else None
    except (TypeError, ValueError):
        return None


def classification_documents(fo, labels, confidences, tags) -> list[dict]:
    """A Classification per sample as FiftyOne stores it: the serialized form of ``fo.Classification``,
    with each sample's label, confidence and tags and an id of its own. Building a Classification object
    per sample and serializing it costs ~0.3 ms; this copies one serialized template."""
    from bson import ObjectId

    template = dict(fo.Classification(label="", confidence=0.0, tags=[]).to_mongo())
    return [{**template, "_id": ObjectId(), "label": str(label), "confidence": float(confidence), "tags": list(t)}
            for label, confidence, t in zip(labels, confidences, tags)]


def _write_tags(dataset, ids: list[str], result, names: RunNames) -> dict[str, int]:
    """The run's sample tags; returns the counts the run results record."""
    categories = result.categories
    pie_ids = [sid for sid, pie in zip(ids, result.scores.is_pie_any) if pie]
    if pie_ids:
        dataset.select(pie_ids).tag_samples(names.tag)
    for name, tag in names.category_tags.items():
        chosen = [sid for sid, c in zip(ids, categories.category) if c == name]
        if chosen:
            dataset.select(chosen).tag_samples(tag)
    noisy_ids = [sid for sid, noisy in zip(ids, categories.label_noise) if noisy]
    if noisy_ids:
        dataset.select(noisy_ids).tag_samples(names.label_noise_tag)
    corrupt_ids = [sid for sid, corrupt in zip(ids, categories.corruption) if corrupt]
    if corrupt_ids:
        dataset.select(corrupt_ids).tag_samples(names.corruption_tag)
    counts = {}
    samples = result.samples
    for tag, column in ((names.duplicate_tag, "duplicate_cluster"), (names.leak_tag, "leak")):
        if column not in samples:
            continue
        values = samples[column].to_numpy()
        chosen = [sid for sid, v in zip(ids, values >= 0 if column == "duplicate_cluster" else values) if v]
        if chosen:
            dataset.select(chosen).tag_samples(tag)
        counts[f"n_{column.split('_')[0]}"] = len(chosen)
    return {"n_pies": len(pie_ids), "n_label_noise": len(noisy_ids), "n_corruption": len(corrupt_ids), **counts}


def save_views(dataset, run_key: str, names: RunNames, level_names: list[str]) -> None:
    from fiftyone import ViewField as F

    dataset.save_view(
        names.views["all"],
        dataset.match_tags(names.tag).sort_by(names.pie_score, reverse=True),
        description=f"PIEs of run {run_key!r} at any compression level, highest PIE score first",
        overwrite=True,
    )
    checkpoint("fiftyone:views")
    for name in level_names:
        dataset.save_view(
            names.views[name],
            dataset.match(F(names.pie_levels).contains(name)).sort_by(names.pie_score, reverse=True),
            description=f"PIEs of run {run_key!r} at level {name}",
            overwrite=True,
        )
    for name, view_name in names.category_views.items():
        dataset.save_view(
            view_name,
            dataset.match(F(names.category) == name).sort_by(names.flag_score, reverse=True),
            description=f"PIEs of run {run_key!r} in category {name}, highest score first",
            overwrite=True,
        )
    audited = dataset.has_sample_field(names.p_label_wrong_audited)
    dataset.save_view(
        names.label_noise_view,
        dataset.match(F(names.label_noise) == True).sort_by(  # noqa: E712
            names.p_label_wrong_audited if audited else names.p_label_wrong, reverse=True),
        description=f"Every suspected label error of run {run_key!r} (PIE or not), highest P(label wrong)"
                    f"{' by the label audit' if audited else ''} first",
        overwrite=True,
    )
    dataset.save_view(
        names.duplicates_view,
        dataset.exists(names.duplicate_cluster).sort_by(names.duplicate_cluster).group_by(
            names.duplicate_cluster, order_by="filepath"),
        description=f"Exact and near duplicates found by run {run_key!r}, one group per cluster",
        overwrite=True,
    )
    dataset.save_view(
        names.label_audit_view,
        dataset.exists(names.label_audit).shuffle(seed=0),
        description=f"Images of run {run_key!r} drawn at random to count its wrong labels: tag each label:wrong (or "
                    "relabel it) or label:right; curate status counts them",
        overwrite=True,
    )
    dataset.save_view(
        names.corruption_view,
        dataset.match(F(names.corruption) == True).sort_by(names.corruption_score, reverse=True),  # noqa: E712
        description=f"Every image of run {run_key!r} that a pixel check flags (PIE or not), worst first",
        overwrite=True,
    )


CARD_COLORS = ("#4b5563", "#15803d", "#c2410c", "#7c3aed")  # label, suggestion, dense, strongest level


def app_groups(run_key: str) -> tuple[str, str]:
    """Names of the App sidebar groups a run adds: its review fields, and its other compression levels."""
    return f"{run_key}: review", f"{run_key}: other levels"


def configure_app(dataset, run_key: str, names: RunNames, label_field: str, level_names: list[str],
                  kinds: list[str]) -> None:
    """Open the App on what a reviewer needs.

    A grid card shows four labels: the given label, curate's suggestion, the dense population's
    prediction and the strongest compressed level's (the last pruning level); the sidebar gets a
    group of the review fields (expanded) and one of the other levels' predictions (collapsed), and
    the dataset's other groups stay as they were, less the fields moved here.
    """
    import fiftyone as fo
    from fiftyone.core.odm.dataset import ActiveFields, SidebarGroupDocument

    pruned = [name for name, kind in zip(level_names, kinds) if kind == "prune"]
    strongest = names.levels[pruned[-1] if pruned else level_names[-1]] if level_names else None
    card = [label_field, names.suggested, names.dense] + ([strongest] if strongest else [])
    audited = [names.p_label_wrong_audited] if dataset.has_sample_field(names.p_label_wrong_audited) else []
    review = [names.category, *audited, names.p_label_wrong, names.reason, names.suggested, names.dense,
              *([strongest] if strongest else []), names.label_noise, names.corruption, names.pie,
              names.pie_score, names.pie_beyond_control, names.pie_levels, names.flag_score, names.label_audit]
    others = [field for field in names.levels.values() if field != strongest]
    review_group, levels_group = app_groups(run_key)
    config = dataset.app_config
    groups = list(config.sidebar_groups or fo.DatasetAppConfig.default_sidebar_groups(dataset))
    moved = set(review) | set(others)
    kept = []
    for group in groups:
        if group.name in (review_group, levels_group):
            continue
        group.paths = [path for path in group.paths if path not in moved]
        kept.append(group)
    at = next((i + 1 for i, group in enumerate(kept) if group.name == "tags"), 0)
    kept.insert(at, SidebarGroupDocument(name=review_group, paths=review, expanded=True))
    kept.append(SidebarGroupDocument(name=levels_group, paths=others, expanded=False))
    config.sidebar_groups = kept
    config.active_fields = ActiveFields(paths=card)
    # One colour per role, the same on every card: label, suggestion, dense, compressed.
    scheme = config.color_scheme or fo.ColorScheme()
    fields = [f for f in (scheme.fields or []) if f.get("path") not in card]
    fields += [{"path": path, "fieldColor": color} for path, color in zip(card, CARD_COLORS)]
    scheme.color_by, scheme.fields = "field", fields
    config.color_scheme = scheme
    dataset.save()


def unconfigure_app(dataset, run_key: str, fields: list[str]) -> None:
    """Undo :func:`configure_app` for ``run_key``: its sidebar groups and its fields on the cards go."""
    config = dataset.app_config
    groups = config.sidebar_groups
    changed = False
    if groups:
        names = app_groups(run_key)
        kept = [group for group in groups if group.name not in names]
        changed = len(kept) != len(groups)
        config.sidebar_groups = kept
    active = config.active_fields
    if active is not None and active.paths and set(active.paths) & set(fields):
        active.paths = [path for path in active.paths if path not in set(fields)]
        changed = True
    scheme = config.color_scheme
    if scheme is not None and scheme.fields and any(f.get("path") in set(fields) for f in scheme.fields):
        scheme.fields = [f for f in scheme.fields if f.get("path") not in set(fields)]
        changed = True
    if changed:
        dataset.save()


def brain_keys_for(dataset, names: RunNames) -> dict[str, str]:
    """The Brain keys this run will write ``hardness`` and ``mistakenness`` under.

    Called after the run's previous record was removed, so any Brain run or field still there is
    someone else's (the user's own Brain run, say, or one left by a crash of a curate older than
    crash-consistent writes): it is left alone and this run writes ``<run key>_hardness`` instead.
    """
    keys = {}
    for base in ("hardness", "mistakenness"):
        key = getattr(names, base)
        if dataset.has_sample_field(key) or dataset.has_brain_run(key):
            key = f"{names.dense.rsplit('_', 1)[0]}_{base}"
            if dataset.has_sample_field(key) or dataset.has_brain_run(key):
                raise ValueError(f"Dataset {dataset.name!r} already has a field or Brain run {getattr(names, base)!r} and "
                                 f"{key!r} that this run did not write; curate will not overwrite them. Delete "
                                 f"one (dataset.delete_brain_run({key!r}) or dataset.delete_sample_field({key!r})) "
                                 "or pick another --run-key.")
        keys[base] = key
    return keys


def write_brain_fields(samples, names: RunNames, label_field: str, keys: dict[str, str]) -> list[str]:
    """FiftyOne Brain's ``hardness`` and ``mistakenness`` from the dense population's mean prediction,
    under the keys :func:`brain_keys_for` chose. Returns the keys written.

    Recorded as the Brain's own runs (its configs, registration and results), so the Brain and the App
    treat them as if ``compute_hardness`` / ``compute_mistakenness(use_logits=True)`` had made them; the
    values are the Brain's formulas computed for all samples at once (:func:`brain_values`) and written in
    one batch, where the Brain saves sample by sample (about 7 ms a sample: two hours on a million).
    A Brain whose internals moved computes them itself.
    """
    import fiftyone.brain as fob

    try:
        from fiftyone.brain.internal.core.hardness import HardnessConfig
        from fiftyone.brain.internal.core.mistakenness import ClassificationMistakennessConfig
    except ImportError:  # pragma: no cover - a FiftyOne Brain other than the one curate is tested with
        fob.compute_hardness(samples, names.dense, hardness_field=keys["hardness"], progress=False)
        checkpoint("fiftyone:brain")
        fob.compute_mistakenness(samples, names.dense, label_field, mistakenness_field=keys["mistakenness"],
                                 use_logits=True, progress=False)
        return list(keys.values())

    ids, logits, predicted, labels = samples.values(["id", f"{names.dense}.logits", f"{names.dense}.label",
                                                     f"{label_field}.label"])
    hardness, mistakenness = brain_values(logits, predicted, labels)
    for config, key, values in ((HardnessConfig(names.dense, keys["hardness"]), keys["hardness"], hardness),
                                (ClassificationMistakennessConfig(names.dense, label_field, keys["mistakenness"], True),
                                 keys["mistakenness"], mistakenness)):
        method = config.build()
        method.ensure_requirements()
        method.register_run(samples, key, cleanup=False)
        method.register_samples(samples)
        samples.set_values(key, dict(zip(ids, values)), key_field="id")
        method.save_run_results(samples, key, None)
        if key == keys["hardness"]:
            checkpoint("fiftyone:brain")
    return list(keys.values())


def brain_values(logits: list, predicted: list, labels: list) -> tuple[list, list]:
    """FiftyOne Brain's hardness (the entropy of the softmax of the logits) and classification mistakenness
    with logits (``(s * exp(-entropy) + 1) / 2``, ``s`` = 1 where the prediction is not the label, -1 where
    it is) of each sample; None where a sample has no logits (hardness) or neither label (mistakenness),
    as the Brain writes."""
    from scipy.special import softmax
    from scipy.stats import entropy

    hardness, mistakenness = [], []
    have = [i for i, row in enumerate(logits) if row is not None]
    entropies = np.full(len(logits), np.nan)
    if have:
        rows = np.array([logits[i] for i in have], dtype=np.float64)
        entropies[have] = entropy(softmax(rows, axis=1), axis=1)
    for i, (row, pred, label) in enumerate(zip(logits, predicted, labels)):
        hardness.append(float(entropies[i]) if row is not None else None)
        if pred is None and label is None:
            mistakenness.append(None)
        elif row is None:
            mistakenness.append(1.0)
        else:
            agree = 1.0 if pred is not None and label is not None and pred == label else 0.0
            mistakenness.append(((agree * -2.0 + 1.0) * float(np.exp(-entropies[i])) + 1.0) / 2.0)
    return hardness, mistakenness


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
            "status": run_status(config),
            "run_dir": getattr(config, "run_dir", None),
        })
    return rows
