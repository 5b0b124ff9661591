"""Where labelled images come from: an image folder tree, a CSV manifest or the embedded default
(scikit-learn's digits); a FiftyOne dataset is read by :mod:`curate.fiftyone.source`.

Every loader returns a :class:`LabeledImages`: absolute file paths, integer labels, the class names
and an optional split per image. Nothing here decodes pixels (see :mod:`curate.data.images`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class SourceError(ValueError):
    """A source cannot be read as labelled images; the message names the file or value and the fix."""


@dataclass
class LabeledImages:
    """A labelled image-classification dataset as curate sees it.

    Attributes:
        filepaths: absolute paths, one per image.
        labels: ``(n,)`` integer indices into ``classes``.
        classes: class names, sorted.
        splits: one split name per image (``train``, ``val``, ``test``...) or None.
        description: where the images came from, for logs and the run manifest.
        sample_ids: FiftyOne sample ids when the source is a FiftyOne dataset.
        label_field: the FiftyOne field the labels came from, for a FiftyOne source.
        fields: a CSV manifest's other columns (annotator, source...), name -> one string or None per
            image, written as fields on the samples curate creates, so reviewers can filter by them.
        root: the folder a folder source was read from (no output may go inside it).
        notes: what the loader changed or left out and the user should know (duplicates merged,
            images in nested folders), printed before the run.
    """

    filepaths: list[str]
    labels: np.ndarray
    classes: list[str]
    splits: list[str | None] = field(default_factory=list)
    description: str = ""
    sample_ids: list[str] | None = None
    label_field: str | None = None
    fields: dict[str, list[str | None]] = field(default_factory=dict)
    root: str | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if not self.splits:
            self.splits = [None] * len(self.filepaths)
        if not (len(self.filepaths) == len(self.labels) == len(self.splits)):
            raise SourceError("filepaths, labels and splits must have the same length.")
        if any(len(values) != len(self.filepaths) for values in self.fields.values()):
            raise SourceError("Every extra field needs one value per image.")

    def __len__(self) -> int:
        return len(self.filepaths)

    def subset(self, keep: np.ndarray) -> "LabeledImages":
        """The images where ``keep`` (a boolean mask or index array) selects them."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        return LabeledImages(
            filepaths=[self.filepaths[i] for i in idx],
            labels=self.labels[idx],
            classes=self.classes,
            splits=[self.splits[i] for i in idx],
            description=self.description,
            sample_ids=None if self.sample_ids is None else [self.sample_ids[i] for i in idx],
            label_field=self.label_field,
            fields={name: [values[i] for i in idx] for name, values in self.fields.items()},
            root=self.root,
            notes=list(self.notes),
        )

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return dict(zip(self.classes, counts.tolist()))


def _from_names(filepaths: list[str], names: list[str], splits: list[str | None], description: str,
                sample_ids: list[str] | None = None, label_field: str | None = None,
                fields: dict[str, list[str | None]] | None = None, root: str | None = None,
                notes: list[str] | None = None) -> LabeledImages:
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return LabeledImages(
        filepaths=filepaths,
        labels=np.array([index[n] for n in names], dtype=np.int64),
        classes=classes,
        splits=splits,
        description=description,
        sample_ids=sample_ids,
        label_field=label_field,
        fields=fields or {},
        root=root,
        notes=notes or [],
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _examples(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def from_folder(root: str | os.PathLike) -> LabeledImages:
    """Images laid out as ``root/<class>/<image>``; files with other extensions are ignored."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise SourceError(f"Image folder {root} does not exist or is not a directory.")
    filepaths, names, nested, empty = [], [], [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = 0
        for path in sorted(class_dir.rglob("*")):
            # A dangling symlink is kept so that it is reported as missing rather than silently skipped.
            if (path.is_file() or path.is_symlink()) and path.suffix.lower() in IMAGE_EXTENSIONS:
                filepaths.append(str(path))
                names.append(class_dir.name)
                found += 1
                if path.parent != class_dir:
                    nested.append(str(path.relative_to(root)))
        if not found:
            empty.append(class_dir.name)
    notes = []
    if nested:
        notes.append(f"{_plural(len(nested), 'image')} in folders nested inside a class folder took that class folder's "
                     f"label (e.g. {_examples(nested)}); if the nested folders are classes of their own, point "
                     "curate at their parent or list the images in a CSV manifest.")
    if empty:
        notes.append(f"{_plural(len(empty), 'class folder')} without images left out: {_examples(empty, 10)}.")
    if not filepaths:
        raise SourceError(
            f"No images found under {root}. Expected one sub-folder per class, e.g. "
            f"{root}/cat/001.jpg, with extensions {', '.join(IMAGE_EXTENSIONS)}."
        )
    return _from_names(filepaths, names, [None] * len(filepaths), f"folder {root}", root=str(root), notes=notes)


def from_csv(path: str | os.PathLike) -> LabeledImages:
    """A CSV manifest with columns ``filepath,label`` and optionally ``split``.

    Relative file paths are resolved against the CSV's own directory. Any other column (``annotator``,
    ``source``...) is kept as a string field for the samples curate creates (empty cells: None).
    """
    import pandas as pd

    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SourceError(f"CSV manifest {path} does not exist.")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several types for malformed files
        raise SourceError(f"Could not parse CSV manifest {path}: {exc}") from exc
    missing = {"filepath", "label"} - set(table.columns)
    if missing:
        raise SourceError(
            f"CSV manifest {path} lacks column(s) {sorted(missing)}; found {list(table.columns)}. "
            "Expected a header 'filepath,label' (and optionally ',split')."
        )
    empty = table.index[(table["filepath"] == "") | (table["label"] == "")].tolist()
    if empty:
        raise SourceError(f"CSV manifest {path}: empty filepath or label on data row(s) {[i + 2 for i in empty[:10]]}.")
    missing_labels = table.index[table["label"].str.strip().str.lower().isin(_MISSING_LABELS)].tolist()
    if missing_labels:
        shown = sorted(set(table["label"].iloc[missing_labels]))
        raise SourceError(f"CSV manifest {path}: label(s) {shown} on data row(s) {[i + 2 for i in missing_labels[:10]]} "
                          "look like missing values, not classes; give those images a label or remove their rows.")
    base = path.parent
    filepaths = [os.path.normpath(p if os.path.isabs(p) else (base / p).resolve()) for p in table["filepath"]]
    splits = _check_splits(path, table["split"].tolist()) if "split" in table.columns else None
    extra = [c for c in table.columns if c not in ("filepath", "label", "split")]
    for column in extra:
        problem = _field_name_problem(column)
        if problem:
            raise SourceError(f"CSV manifest {path}: column {column!r} cannot become a FiftyOne field ({problem}); "
                              "rename or drop it.")
    fields = {c: [v or None for v in table[c]] for c in extra}
    splits = splits or [None] * len(table)
    keep, notes = _merge_duplicate_rows(path, filepaths, table["label"].tolist(), splits)
    return _from_names([filepaths[i] for i in keep], [table["label"].iat[i] for i in keep], [splits[i] for i in keep],
                       f"csv {path}", fields={c: [v[i] for i in keep] for c, v in fields.items()}, notes=notes)


# Cells that pandas or a spreadsheet write for "no value"; as labels they would become a class.
_MISSING_LABELS = {"nan", "none", "null", "n/a", "na", "<na>", "nat", "-"}
_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def _check_splits(path: Path, values: list[str]) -> list[str | None]:
    """Split names, case-folded (``Train`` is ``train``, ``validation`` is ``val``); anything else refused."""
    unknown = [i for i, v in enumerate(values) if v.strip() and v.strip().lower() not in _SPLITS]
    if unknown:
        shown = sorted({values[i] for i in unknown})
        raise SourceError(f"CSV manifest {path}: split value(s) {shown} on data row(s) {[i + 2 for i in unknown[:10]]} "
                          "are not train, val (or validation) or test; fix them or leave the cell empty for no split.")
    return [_SPLITS[v.strip().lower()] if v.strip() else None for v in values]


def _merge_duplicate_rows(path: Path, filepaths: list[str], labels: list[str],
                          splits: list[str | None]) -> tuple[list[int], list[str]]:
    """Rows to keep when an image is listed more than once, and a note saying what was merged.

    An image listed twice would sit in a training fold and in the fold it is scored on, and be
    scored against itself. Repeats that agree (same label and split) are merged into the first row;
    repeats that disagree are refused, since curate cannot know which label is meant.
    """
    first: dict[str, int] = {}
    keep, repeats, conflicts = [], [], []
    for i, filepath in enumerate(filepaths):
        if filepath not in first:
            first[filepath] = i
            keep.append(i)
            continue
        j = first[filepath]
        repeats.append(i)
        if (labels[i], splits[i]) != (labels[j], splits[j]):
            conflicts.append(f"{filepath} (row {j + 2}: {labels[j]}/{splits[j] or 'no split'}, "
                             f"row {i + 2}: {labels[i]}/{splits[i] or 'no split'})")
    if conflicts:
        raise SourceError(f"CSV manifest {path} lists {_plural(len(conflicts), 'image')} more than once with different "
                          f"labels or splits: {_examples(conflicts)}. One image has one label and one split; remove "
                          "the rows that are wrong.")
    notes = []
    if repeats:
        notes.append(f"CSV manifest {path.name}: {_plural(len(repeats), 'repeated row')} of the same image, label and "
                     f"split merged into the first (data rows {_examples([str(i + 2) for i in repeats], 10)}), so no "
                     "image is scored against itself.")
    return keep, notes


# Fields every FiftyOne sample has, and the label field curate writes the CSV's labels to.
_RESERVED_FIELDS = {"id", "filepath", "tags", "metadata", "media_type", "created_at", "last_modified_at",
                    "ground_truth"}


def _field_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a sample field curate creates from a CSV column, or None."""
    if not name or name.startswith("_") or "." in name or "$" in name:
        return "field names cannot be empty, start with '_' or contain '.' or '$'"
    if name in _RESERVED_FIELDS:
        return "FiftyOne or curate already uses that name"
    if name.startswith("curate_"):
        return "curate's own fields start with 'curate_'"
    if name.startswith("Unnamed:"):  # pandas' name for a column without a header
        return "the column has no header"
    return None


def default_cache_dir() -> Path:
    """Where curate keeps data it writes for itself: ``$CURATE_HOME`` or ``~/.cache/curate``."""
    return Path(os.environ.get("CURATE_HOME", Path.home() / ".cache" / "curate")).expanduser()


def digits(cache_dir: str | os.PathLike | None = None, scale: int = 4) -> LabeledImages:
    """scikit-learn's handwritten digits (1,797 8x8 images), written once as PNGs.

    The 8x8 images are enlarged ``scale`` times with nearest-neighbour sampling so that the FiftyOne
    App shows them at a legible size; the pixels are the originals.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(cache_dir or default_cache_dir() / "digits").expanduser().resolve()
    bunch = load_digits()
    names = [str(t) for t in bunch.target]
    filepaths = [str(root / name / f"{i:04d}.png") for i, name in enumerate(names)]
    done = root / ".complete"
    if not done.exists():
        for i, (image, path) in enumerate(zip(bunch.images, filepaths)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(image * (255.0 / 16.0), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).resize((8 * scale, 8 * scale), Image.NEAREST).save(path)
        done.write_text(f"{len(filepaths)} images\n")
    return _from_names(filepaths, names, [None] * len(filepaths), f"digits {root}")
