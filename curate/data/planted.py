"""A copy of a dataset with known problems planted in it: wrong labels and damaged images.

The demo runs curate on such a copy so that it can end by saying how many of the planted problems
curate found and how precisely, the one thing a real dataset cannot tell you. The originals are
never touched: damaged images are new files under their own folder, and every planted sample says
what was done to it in a ``planted`` field (``wrong_label``, ``jpeg_blocks``, ``noise``,
``washed_out``, ``two_objects`` or empty) with its ``original_label``, so nothing is confused with the real data.

:func:`damage` is pure (pixels in, pixels out, the JPEG round trip aside); :func:`plant` writes files.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.data.sources import LabeledImages
from curate.science.probes import two_object_placements

DAMAGES = ("jpeg_blocks", "noise", "washed_out")
WRONG_LABEL = "wrong_label"
TWO_OBJECTS = "two_objects"
DUPLICATE = "duplicate"
_JPEG_QUALITY = 5


def damage(pixels: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A damaged copy of ``pixels`` (``(H, W)`` or ``(H, W, 3)`` uint8).

    ``jpeg_blocks``: re-encoded at JPEG quality 5 (8x8 blocking); ``noise``: Gaussian noise of
    standard deviation 60 (of 255); ``washed_out``: contrast cut to a fifth around a light grey, the
    look of an over-exposed photo.
    """
    pixels = np.asarray(pixels)
    if kind == "jpeg_blocks":
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=_JPEG_QUALITY)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(Image.fromarray(pixels).mode))
    if kind == "noise":
        noisy = pixels.astype(np.float64) + rng.normal(0.0, 60.0, pixels.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)
    if kind == "washed_out":
        return np.clip(200.0 + 0.2 * (pixels.astype(np.float64) - 128.0), 0, 255).astype(np.uint8)
    raise ValueError(f"Unknown damage {kind!r}; choose one of {DAMAGES}.")


def two_objects(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``a`` and ``b`` (same shape, ``(H, W)`` or ``(H, W, 3)`` uint8) shrunk to 45-55% of the side and
    placed in opposite halves (left/right or top/bottom, at random) of a canvas of their mean border
    colour: two objects in one frame, placed as the two-object probes are
    (:func:`curate.science.probes.two_object_placements`)."""
    from PIL import Image

    h, w = a.shape[:2]
    border = np.concatenate([x[[0, -1]].reshape(-1, *x.shape[2:]) for x in (a, b)]
                            + [x[:, [0, -1]].reshape(-1, *x.shape[2:]) for x in (a, b)])
    canvas = np.empty_like(a)
    canvas[...] = np.rint(border.astype(np.float64).mean(axis=0)).astype(np.uint8)
    for x, (top, left, sh, sw) in zip((a, b), two_object_placements(h, w, rng)):
        canvas[top:top + sh, left:left + sw] = np.asarray(Image.fromarray(x).resize((sw, sh), Image.BILINEAR))
    return canvas


@dataclass(frozen=True)
class PlantedShares:
    """What share of the images gets a wrong label, a damage (split evenly between :data:`DAMAGES`), or
    is replaced by two objects of different classes in one frame (:func:`two_objects`, labelled as one
    of them), or by a near copy of another image (re-encoded as JPEG and brightened a little, with that
    image's label). No image gets two, so each planted problem has one right answer."""

    wrong_labels: float = 0.05
    damaged: float = 0.03
    two_objects: float = 0.02
    duplicates: float = 0.01

    def __post_init__(self) -> None:
        for name in ("wrong_labels", "damaged", "two_objects", "duplicates"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.5:
                raise ValueError(f"PlantedShares.{name} must lie in [0, 0.5), got {value}.")
        if self.wrong_labels + self.damaged + self.two_objects + 2 * self.duplicates >= 1.0:
            raise ValueError("PlantedShares: the shares must leave some images untouched.")


def plant(images: LabeledImages, root: str | os.PathLike, *, shares: PlantedShares = PlantedShares(),
          seed: int = 0) -> LabeledImages:
    """``images`` with wrong labels and damaged images planted, as new :class:`LabeledImages`.

    A wrong label is drawn uniformly from the other classes. A damaged image is written as a PNG
    (the JPEG damage as a JPEG, so its file says what it is) under ``root``; the other images keep
    their own files. Deterministic in ``seed``; files already written are reused.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    n, n_classes = len(images), len(images.classes)
    order = rng.permutation(n)
    n_wrong, n_damaged = int(round(shares.wrong_labels * n)), int(round(shares.damaged * n))
    n_pairs = int(round(shares.two_objects * n))
    wrong, damaged = order[:n_wrong], order[n_wrong:n_wrong + n_damaged]
    paired = order[n_wrong + n_damaged:n_wrong + n_damaged + n_pairs]
    n_copies = int(round(shares.duplicates * n))
    copies = order[n_wrong + n_damaged + n_pairs:n_wrong + n_damaged + n_pairs + n_copies]
    untouched = order[n_wrong + n_damaged + n_pairs + n_copies:]
    copied = untouched[:n_copies]  # each copy's original, left untouched
    # The second object of each pair: an untouched image of another class.
    partners = np.array([rng.choice(untouched[images.labels[untouched] != images.labels[i]]) for i in paired],
                        dtype=np.int64)
    labels = images.labels.copy()
    labels[wrong] = (labels[wrong] + rng.integers(1, n_classes, len(wrong))) % n_classes
    planted = np.full(n, "", dtype=object)
    planted[wrong] = WRONG_LABEL
    planted[damaged] = np.asarray(DAMAGES, dtype=object)[np.arange(len(damaged)) % len(DAMAGES)]
    planted[paired] = TWO_OBJECTS
    planted[copies] = DUPLICATE
    labels[copies] = images.labels[copied]
    filepaths = list(images.filepaths)
    copy_of: list[str | None] = [None] * n
    root = Path(root).expanduser().resolve()
    for i, j in zip(copies, copied):
        out = root / DUPLICATE / f"{Path(filepaths[j]).stem}-copy-{i}.jpg"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(filepaths[j]) as source:
                pixels = np.asarray(source.convert("L" if source.mode in ("L", "1", "P") else "RGB"))
            partial = out.with_name(out.name + ".partial")
            brighter = np.clip(pixels.astype(np.int16) + 12, 0, 255).astype(np.uint8)
            Image.fromarray(brighter).save(partial, format="JPEG", quality=90)
            partial.replace(out)
        filepaths[i] = str(out)
        copy_of[i] = images.filepaths[j]
    for i, j in zip(paired, partners):
        out = root / TWO_OBJECTS / f"{Path(filepaths[i]).stem}-{i}-with-{j}.png"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(filepaths[i]) as first, Image.open(filepaths[j]) as second:
                mode = "L" if first.mode in ("L", "1", "P") and second.mode in ("L", "1", "P") else "RGB"
                a, b = np.asarray(first.convert(mode)), np.asarray(second.convert(mode).resize(first.size))
            partial = out.with_name(out.name + ".partial")
            Image.fromarray(two_objects(a, b, np.random.default_rng([seed, int(i), int(j)]))).save(partial, format="PNG")
            partial.replace(out)
        filepaths[i] = str(out)
    for i in damaged:
        suffix = ".jpg" if planted[i] == "jpeg_blocks" else ".png"
        out = root / planted[i] / f"{Path(filepaths[i]).stem}-{i}{suffix}"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(filepaths[i]) as source:
                pixels = np.asarray(source.convert("L" if source.mode in ("L", "1", "P") else "RGB"))
            partial = out.with_name(out.name + ".partial")
            if planted[i] == "jpeg_blocks":  # the file itself is the damage, as a camera or a site would save it
                Image.fromarray(pixels).save(partial, format="JPEG", quality=_JPEG_QUALITY)
            else:
                damaged_pixels = damage(pixels, planted[i], np.random.default_rng([seed, int(i)]))
                Image.fromarray(damaged_pixels).save(partial, format="PNG")
            partial.replace(out)
        filepaths[i] = str(out)
    fields = dict(images.fields)
    fields["planted"] = [p or None for p in planted]
    fields["original_label"] = [
        images.classes[c] for c in np.where(planted == DUPLICATE, labels, images.labels)]
    fields["copy_of"] = copy_of
    return LabeledImages(
        filepaths=filepaths, labels=labels, classes=images.classes, splits=list(images.splits),
        description=(f"{images.description} with {n_wrong} wrong labels, {n_damaged} damaged images, "
                     f"{n_pairs} two-object images and {n_copies} near copies planted (seed {seed})"),
        fields=fields, root=images.root,
        notes=[*images.notes, f"Planted {n_wrong} wrong labels, {n_damaged} damaged images, {n_pairs} two-object "
                              f"images and {n_copies} near copies (fields `planted`, `copy_of`); the originals are "
                              "untouched."])


def recovery(planted: list[str | None], *, label_noise: np.ndarray, corruption: np.ndarray,
             category: np.ndarray, duplicate: np.ndarray | None = None, copy_of: list[str | None] | None = None,
             filepaths: list[str] | None = None) -> list[dict]:
    """How many planted problems a run found, and how precisely, one row per kind of problem.

    A wrong label counts as found when flagged ``label_noise``; a damaged image when flagged
    ``corruption``; a two-object image when its PIE category is ``multi_object``; a near copy when it
    is tagged ``duplicate`` (``duplicate``; its original, also tagged, counts as a right flag). Precision is the
    share of the flag's samples that were planted with that problem; ``lift`` is precision over the
    problem's base rate (how much better than picking images at random).
    """
    kinds = np.array([k or "" for k in planted], dtype=object)
    n = len(kinds)
    rows = []
    for name, is_planted, flagged in (
            ("wrong label", kinds == WRONG_LABEL, np.asarray(label_noise, dtype=bool)),
            ("damaged image", np.isin(kinds, DAMAGES), np.asarray(corruption, dtype=bool)),
            ("two objects", kinds == TWO_OBJECTS, np.asarray(category, dtype=object) == "multi_object"),
            ("near copy", kinds == DUPLICATE, None if duplicate is None else np.asarray(duplicate, dtype=bool))):
        if flagged is None:
            continue
        planted_n, flagged_n, found = int(is_planted.sum()), int(flagged.sum()), int((is_planted & flagged).sum())
        if planted_n == 0:
            continue
        right = is_planted
        if name == "near copy" and copy_of is not None and filepaths is not None:
            originals = {p for p in copy_of if p}
            right = is_planted | np.array([p in originals for p in filepaths])
        precision = int((right & flagged).sum()) / flagged_n if flagged_n else float("nan")
        rows.append({"problem": name, "planted": planted_n, "found": found, "recall": found / planted_n,
                     "flagged": flagged_n, "precision": precision, "lift": precision / (planted_n / n)})
    return rows
