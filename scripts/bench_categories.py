#!/usr/bin/env python
"""Benchmark: do the corruption, multi-object and label-noise flags name what was done to an image?

Copies of a dataset's own images are altered in known ways and added to it; curate runs on the
whole, and every flag is scored against what was done. The alterations are deliberately *not* the
ones curate's probe suite makes (:mod:`curate.science.probes`: side-by-side composites, Gaussian noise,
Gaussian blur, darkening, low contrast), so the probes' calibration is tested on kinds of damage
it never saw:

- corruption: ``jpeg`` (saved at JPEG quality 5), ``overexposed`` (washed out towards white),
  ``pixelated`` (reduced to a 4 x 4 mosaic), ``salt_pepper`` (15% of pixels set to black or white);
- multi-object: ``overlay`` (two images of different classes blended half and half), ``stacked``
  (one squeezed into the top half, the other into the bottom); the label is the first image's class;
- label noise: ``flipped_label`` (an unaltered copy given a random other label).

    python scripts/bench_categories.py --out out/bench_categories_digits.json
    python scripts/bench_categories.py --source cifar10n --n 2000 --out out/bench_categories_cifar10n.json
    python scripts/bench_categories.py --manifest out/digits-altered.csv   # only the images, for the App

Prints, per kind of image, how often it is a PIE and which category it gets, and per category the
precision and recall of the flags against the alterations; writes everything as JSON. The same
numbers are given for the flags as shipped (categories on PIEs; ``label_noise`` on any image) and
for each category's rule applied to every image, PIE or not.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd


from bench_pies import write_report  # noqa: E402
from curate.options import DIGITS_PRESET  # noqa: E402
from curate.science.flags import category_names, population_mean, split_evenness, top_two  # noqa: E402
from curate.population.pipeline import CurateConfig, run_curate  # noqa: E402
from curate.data.sources import LabeledImages, default_cache_dir, digits  # noqa: E402
from curate.population.train import TrainSettings  # noqa: E402

FAMILY = {"jpeg": "corruption", "overexposed": "corruption", "pixelated": "corruption",
          "salt_pepper": "corruption", "overlay": "multi_object", "stacked": "multi_object",
          "flipped_label": "label_noise"}
ORIGINAL = "original"
JPEG_QUALITY = 5


def overexposed(x: np.ndarray) -> np.ndarray:
    """Washed out: half the contrast, lifted so that the darkest pixel is 60% grey."""
    return np.clip(np.rint(0.4 * x.astype(np.float32) + 0.6 * 255), 0, 255).astype(np.uint8)


def pixelated(x: np.ndarray, side: int = 4) -> np.ndarray:
    """A ``side`` x ``side`` mosaic of block means, shown at the original size. ``x``: ``(h, w, 3)``."""
    h, w = x.shape[:2]
    rows = np.minimum(np.arange(h) * side // h, side - 1)
    cols = np.minimum(np.arange(w) * side // w, side - 1)
    sums = np.zeros((side, side, x.shape[2]))
    np.add.at(sums, (rows[:, None], cols[None, :]), x.astype(np.float64))
    counts = np.bincount(rows, minlength=side)[:, None] * np.bincount(cols, minlength=side)[None, :]
    blocks = sums / counts[..., None]
    return np.clip(np.rint(blocks[rows][:, cols]), 0, 255).astype(np.uint8)


def salt_pepper(x: np.ndarray, rng: np.random.Generator, share: float = 0.15) -> np.ndarray:
    """``share`` of the pixels set to black or white (all channels), half each."""
    out = x.copy()
    hit = rng.random(x.shape[:2]) < share
    white = rng.random(x.shape[:2]) < 0.5
    out[hit & white] = 255
    out[hit & ~white] = 0
    return out


def overlay(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Half-and-half blend of two images of the same shape."""
    return np.clip(np.rint(0.5 * a.astype(np.float32) + 0.5 * b.astype(np.float32)), 0, 255).astype(np.uint8)


def stacked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` squeezed into the top half, ``b`` into the bottom half (row pairs averaged)."""
    h = a.shape[0] // 2 * 2

    def squeeze(x: np.ndarray) -> np.ndarray:
        return x[:h].astype(np.float32).reshape(h // 2, 2, *x.shape[1:]).mean(axis=1)

    out = np.concatenate([squeeze(a), squeeze(b)])
    if len(out) < a.shape[0]:
        out = np.concatenate([out, out[-1:]])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def choose_sources(labels: np.ndarray, per_kind: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per kind, ``per_kind`` source images (distinct across kinds) and, for composites, a partner of
    another class (-1 otherwise)."""
    n = len(labels)
    if per_kind * len(FAMILY) > n:
        raise SystemExit(f"--share too large: {len(FAMILY)} kinds x {per_kind} images exceed the {n} images.")
    order = rng.permutation(n)
    chosen = {}
    for i, kind in enumerate(FAMILY):
        first = order[i * per_kind:(i + 1) * per_kind]
        partner = np.full(per_kind, -1)
        if FAMILY[kind] == "multi_object":
            for j, source in enumerate(first):
                partner[j] = rng.choice(np.flatnonzero(labels != labels[source]))
        chosen[kind] = (first, partner)
    return chosen


def inject(images: LabeledImages, out_dir: Path, share: float, seed: int) -> tuple[LabeledImages, pd.DataFrame]:
    """The dataset plus altered copies written under ``out_dir`` (the originals are only read), and a
    table of what every image is: ``kind``, ``family``, ``class_b`` (a composite's second class)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels = images.labels
    per_kind = max(1, int(round(share * len(images))))
    filepaths, new_labels = list(images.filepaths), list(labels)
    kinds, class_b = [ORIGINAL] * len(images), [-1] * len(images)

    def read(i: int) -> np.ndarray:
        with Image.open(images.filepaths[i]) as image:
            return np.asarray(image.convert("RGB"))

    for kind, (first, partner) in choose_sources(labels, per_kind, rng).items():
        (out_dir / kind).mkdir(parents=True, exist_ok=True)
        for source, other in zip(first, partner):
            x = read(source)
            label = int(labels[source])
            if kind == "overexposed":
                x = overexposed(x)
            elif kind == "pixelated":
                x = pixelated(x)
            elif kind == "salt_pepper":
                x = salt_pepper(x, rng)
            elif kind == "overlay":
                x = overlay(x, read(other))
            elif kind == "stacked":
                x = stacked(x, read(other))
            elif kind == "flipped_label":
                label = int(rng.choice(np.delete(np.arange(len(images.classes)), label)))
            path = out_dir / kind / f"{source:06d}.{'jpg' if kind == 'jpeg' else 'png'}"
            if not path.exists():
                Image.fromarray(x).save(path, **({"quality": JPEG_QUALITY} if kind == "jpeg" else {}))
            filepaths.append(str(path))
            new_labels.append(label)
            kinds.append(kind)
            class_b.append(int(labels[other]) if other >= 0 else -1)
    truth = pd.DataFrame({"kind": kinds, "family": [FAMILY.get(k, ORIGINAL) for k in kinds], "class_b": class_b})
    altered = LabeledImages(filepaths=filepaths, labels=np.array(new_labels), classes=images.classes,
                            description=f"{images.description} + altered copies share={share} seed={seed}")
    return altered, truth


def flag_quality(truth: pd.DataFrame, flags: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per category: how many images it flags, the share that were altered into its family
    (precision), and the share of its family it flags (recall). ``flags``: name -> ``(N,)`` bool, the
    name a category, or a category, a colon and a description of the rule."""
    family = truth["family"].to_numpy()
    out = {}
    for name, flagged in flags.items():
        flagged = np.asarray(flagged, dtype=bool)
        members = family == name.split(":")[0]
        hits = int((flagged & members).sum())
        out[name] = {"flagged": int(flagged.sum()), "altered_into_it": int(members.sum()),
                         "precision": hits / flagged.sum() if flagged.any() else float("nan"),
                         "recall": hits / members.sum() if members.any() else float("nan")}
    return out


def kind_table(truth: pd.DataFrame, category: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per kind of image: count, then the share of it with each category and each extra boolean column."""
    rows = {}
    for kind in [ORIGINAL, *FAMILY]:
        chosen = truth["kind"].to_numpy() == kind
        if not chosen.any():
            continue
        row = {"images": int(chosen.sum())}
        for name, values in columns.items():
            row[name] = float(np.asarray(values, dtype=bool)[chosen].mean())
        for name in (*category_names(), ""):
            row[f"category: {name or 'none'}"] = float((category[chosen] == name).mean())
        rows[kind] = row
    return pd.DataFrame(rows).T


def score(result, truth: pd.DataFrame) -> dict:
    categories, population, config = result.categories, result.population, result.config
    if len(result.images) != len(truth):
        raise SystemExit(f"{len(truth) - len(result.images)} images could not be read; see the run's bad_images.")
    pruned = slice(0, len(config.sparsities))
    probs = population_mean(population.dense, population.compressed[pruned])
    first, second, top_prob, _ = top_two(probs)
    thresholds = categories.thresholds
    category = np.asarray(categories.category, dtype=object)
    pixel_check = categories.corruption  # the shipped flag is the pixel check, PIE or not
    unsure = top_prob <= thresholds["corruption_top_probability"]
    as_shipped = {"label_noise": categories.label_noise, "corruption": pixel_check,
                  "multi_object": category == "multi_object"}
    alternatives = {
        # curate's corruption rule before this benchmark: a PIE, a pixel check, and models as unsure as
        # of a typical corrupted probe.
        "corruption: PIE, pixel check and unsure models (old rule)": (
            result.scores.is_pie_any & pixel_check & unsure),
        "corruption: pixel check and unsure models, any image": pixel_check & unsure,
        "multi_object: its rule on any image, PIE or not": split_evenness(probs) >= thresholds["multi_object_evenness"],
    }
    class_b = truth["class_b"].to_numpy()
    labels = result.images.labels
    both_classes = (class_b >= 0) & (((first == labels) & (second == class_b)) | ((first == class_b) & (second == labels)))
    kinds = kind_table(truth, category, {
        "PIE": result.scores.is_pie_any, "pixel check fires": pixel_check,
        "label_noise flag": categories.label_noise, "models unsure": unsure,
        "multi_object rule": alternatives["multi_object: its rule on any image, PIE or not"],
        "top two = both classes": both_classes,
    })
    return {
        "images": len(truth), "altered": int((truth["kind"] != ORIGINAL).sum()),
        # How far to trust any flag: the population's held-out accuracy on the given labels, and curate's warnings.
        "dense_accuracy": float(result.levels.set_index("level").loc["dense", "accuracy"]),
        "warnings": result.manifest.get("warnings", []),
        "thresholds": {k: thresholds[k] for k in ("corruption_top_probability", "multi_object_evenness")},
        "by_kind": kinds.to_dict(orient="index"),
        "flags_as_shipped": flag_quality(truth, as_shipped),
        "alternatives": flag_quality(truth, alternatives),
        "pixel_checks_by_kind": {kind: pd.Series(categories.corruption_check[truth["kind"].to_numpy() == kind])
                                 .replace("", "none").value_counts().to_dict() for kind in [ORIGINAL, *FAMILY]},
    }


def print_report(report: dict) -> None:
    print(f"\n{report['images']} images, {report['altered']} of them altered copies; dense held-out accuracy "
          f"{report['dense_accuracy']:.3f}; thresholds "
          + ", ".join(f"{k} {v:.3f}" for k, v in report["thresholds"].items()))
    for warning in report["warnings"]:
        print(f"curate's warning: {warning}")
    print("\nShare of each kind of image (categories are given to PIEs only, as curate ships them):")
    print(pd.DataFrame(report["by_kind"]).T.to_string(float_format=lambda v: f"{v:.2f}"))
    for name, title in (("flags_as_shipped", "Flags as shipped (label_noise and corruption on any image, "
                                             "multi_object on PIEs)"),
                        ("alternatives", "Other rules, for comparison")):
        print(f"\n{title}: precision and recall against the alterations")
        print(pd.DataFrame(report[name]).T.to_string(float_format=lambda v: f"{v:.2f}"))
    print("\nWhich pixel check fires, by kind:")
    print(pd.DataFrame(report["pixel_checks_by_kind"]).fillna(0).astype(int).T.to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["digits", "cifar10n"], default="digits")
    parser.add_argument("--n", type=int, default=2000, help="cifar10n: images in the stratified subset.")
    parser.add_argument("--share", type=float, default=0.02, help="Altered copies of each kind, as a share of the images.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="Dense training epochs [curate's default].")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--run-root", default=None, help="Where the altered images and the run are cached.")
    parser.add_argument("--out", default=None, help="JSON output path.")
    parser.add_argument("--manifest", default=None, metavar="CSV",
                        help="Only write the altered dataset as a curate CSV manifest (filepath,label,kind), to "
                             "run `curate run CSV` on and look at in the App; no benchmark.")
    args = parser.parse_args()

    if args.source == "digits":
        images, image_size = digits(), DIGITS_PRESET["image_size"]  # as `curate run digits` does
        train = TrainSettings(hflip=DIGITS_PRESET["hflip"])
    else:
        from bench_pies import cifar10n_subset
        images, image_size = cifar10n_subset(args.n, args.seed)[0], 32
        train = TrainSettings(hflip=True)
    if args.epochs:
        train = replace(train, epochs=args.epochs)
    root = Path(args.run_root or default_cache_dir() / "bench") / f"categories-{args.source}-n{len(images)}-seed{args.seed}"
    altered, truth = inject(images, root / f"altered-share{args.share}", args.share, args.seed)
    if args.manifest:
        Path(args.manifest).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"filepath": altered.filepaths, "label": np.asarray(altered.classes)[altered.labels],
                      "kind": truth["kind"]}).to_csv(args.manifest, index=False)
        print(f"wrote {args.manifest}: {len(altered)} images, {int((truth['kind'] != ORIGINAL).sum())} altered")
        return
    config = CurateConfig(image_size=image_size, seed=args.seed, device=args.device, robustness_images=0, train=train)
    started = time.time()
    result = run_curate(altered, config, root / f"run-{config.fingerprint(altered)}")
    print(f"curate ran on {len(altered)} images in {time.time() - started:.0f} s")
    report = {"source": args.source, "share": args.share, "seed": args.seed, "config": config.to_dict(),
              **score(result, truth)}
    print_report(report)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
