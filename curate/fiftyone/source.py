"""A FiftyOne dataset as a source of labelled images, and the resolution of any source string
(``digits``, a folder, a CSV manifest, or a FiftyOne dataset name)."""

from __future__ import annotations

from pathlib import Path

from curate.data.sources import LabeledImages, SourceError, _examples, _from_names, _plural, digits, from_csv, from_folder


def from_fiftyone(dataset_name: str, label_field: str = "ground_truth") -> LabeledImages:
    """Samples of an existing FiftyOne dataset with ``fo.Classification`` labels in ``label_field``.

    Samples without a label are left out (their count is in the description); split tags ``train``,
    ``val``/``validation`` and ``test`` become splits.
    """
    from curate.fiftyone.db import import_fiftyone

    fo = import_fiftyone()
    if not fo.dataset_exists(dataset_name):
        raise SourceError(f"FiftyOne dataset {dataset_name!r} does not exist; see `fiftyone datasets list`.")
    dataset = fo.load_dataset(dataset_name)
    candidates = sorted(dataset.get_field_schema(embedded_doc_type=fo.Classification))
    hint = (
        f"pass --label-field with one of its Classification fields: {', '.join(candidates)}."
        if candidates
        else "it has no Classification field; curate reads labels from fo.Classification(label=...)."
    )
    if not dataset.has_sample_field(label_field):
        raise SourceError(f"FiftyOne dataset {dataset_name!r} has no field {label_field!r}; {hint}")
    if label_field not in candidates:
        field = dataset.get_field(label_field)
        # Name what the field holds: "Classifications" or "Detections" says more than EmbeddedDocumentField.
        document = getattr(field, "document_type", None)
        kind = document.__name__ if document is not None else type(field).__name__.removesuffix("Field")
        article = "an" if kind[:1] in "AEIOU" else "a"
        raise SourceError(
            f"Field {label_field!r} of FiftyOne dataset {dataset_name!r} is {article} {kind} field, not a "
            f"Classification (curate needs one label per image); {hint}"
        )
    ids, paths, labels, tags = dataset.values(["id", "filepath", f"{label_field}.label", "tags"])
    keep, seen, repeated = [], set(), []
    for i, label in enumerate(labels):
        if label is None:
            continue
        if paths[i] in seen:
            repeated.append(ids[i])  # the same image in two samples would be trained on and scored against itself
            continue
        seen.add(paths[i])
        keep.append(i)
    notes = [f"{_plural(len(repeated), 'sample')} of {dataset_name!r} repeat the file of an earlier sample and were "
             f"left out, untouched (sample ids {_examples(repeated)}): one image is scored once."] if repeated else []
    if not keep:
        raise SourceError(f"No sample of {dataset_name!r} has a label in {label_field!r}.")
    split_names = {"train": "train", "val": "val", "validation": "val", "test": "test"}
    splits = []
    for i in keep:
        found = [split_names[t] for t in tags[i] if t in split_names]
        splits.append(found[0] if found else None)
    description = f"fiftyone {dataset_name}:{label_field}"
    unlabelled = sum(label is None for label in labels)
    if unlabelled:
        description += f"; {unlabelled} sample{'s' if unlabelled > 1 else ''} without a label left out, untouched"
    return _from_names(
        [paths[i] for i in keep], [labels[i] for i in keep], splits, description,
        sample_ids=[ids[i] for i in keep], label_field=label_field, notes=notes,
    )


def load_source(source: str, label_field: str = "ground_truth") -> LabeledImages:
    """Resolve ``source``: ``digits``, ``digits-planted`` (the demo's copy of the digits with wrong labels,
    damaged and two-object images planted, :func:`curate.data.planted.plant`), a directory, a ``.csv``
    file, or a FiftyOne dataset name."""
    if source == "digits":
        return digits()
    if source == "digits-planted":
        from curate.data.planted import plant
        from curate.data.sources import default_cache_dir

        return plant(digits(), default_cache_dir() / "digits-planted")
    path = Path(source).expanduser()
    if path.is_dir():
        return from_folder(path)
    if path.suffix.lower() == ".csv":
        return from_csv(path)
    if path.exists():
        raise SourceError(f"{source} is a file but not a .csv manifest; pass a folder, a .csv or a dataset name.")
    from curate.fiftyone.db import import_fiftyone

    fo = import_fiftyone()
    if fo.dataset_exists(source):
        return from_fiftyone(source, label_field)
    raise SourceError(
        f"Source {source!r} is neither 'digits', 'digits-planted', an existing folder, a .csv manifest, "
        "nor a FiftyOne dataset (see `fiftyone datasets list`)."
    )
