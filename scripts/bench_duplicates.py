#!/usr/bin/env python
"""Benchmark: exact and near duplicates on CIFAR-10N images with known copies planted (issue 29).

Takes a seeded subset of the CIFAR-10N training images and adds copies of some of them, written by
this script to a temporary folder: exact copies (the same bytes), and near copies re-encoded as JPEG
(quality 70), resized (down to 80% and back), shifted (2 px, edge-padded), colour-jittered (brightness
+-15%, contrast +-15%), all four together, mirrored left to right, cropped (the central 75% enlarged
back) and rotated (8 degrees, edges filled). curate's duplicate search
(:func:`curate.science.duplicates.find_duplicates`, on the images as a run decodes them) must put each
copy in one group with its original. Reports recall per kind of copy, the precision of the pairs found
(a found pair is right when it joins a copy and its original; CIFAR's own near-duplicates, which no one
planted, are listed apart), and the time per 10,000 images of hashing and searching.

``--features`` also trains one network as a run's first job does (curate's defaults, on every image: the
copies carry their original's label) and searches its features
(:func:`curate.science.duplicates.feature_duplicates`, threshold from copies the network makes of its own
images), reporting recall per kind for the hashes, the features and both, and the feature pairs' precision.

Hash pairs are kept where their pixels agree better than chance (:func:`curate.science.duplicates.confirm_by_pixels`,
as a run does); ``--no-pixel-check`` keeps every hash pair, as curate did before. ``--pixel-check`` prints the study
behind it (docs/benchmarks.md, "Duplicates"): every hash pair's pixel agreement (the correlation of the two grey
images at the best of the hashes' alignments) by kind of pair, against two ways to set a threshold: the lowest
score that copies made of the dataset's own images reach (resized, shifted, both; 512 copies), and the score that
only 0.1% of random pairs exceed (curate's), each for three seeds.

    python scripts/bench_duplicates.py --n 10000 --copies 500 --out out/bench_duplicates.json
    python scripts/bench_duplicates.py --n 10000 --copies 540 --features --out out/bench_duplicates_features.json
    python scripts/bench_duplicates.py --n 10000 --copies 540 --pixel-check --out out/bench_duplicates_pixel_check.json
    python scripts/bench_duplicates.py --chance any|class ...   # the pixel check's chance pairs (curate's: class)
    python scripts/bench_duplicates.py --digits --out out/bench_duplicates_digits.json

``--chance any`` draws the pixel check's chance pairs from any two images instead of two of one class.
``--digits`` runs no CIFAR: on the demo's planted digits (18 near copies) and the untouched digits, it counts
the hash pairs each way of drawing chance pairs keeps, planted copies and others, for five seeds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_pies import cifar10n_subset, write_report  # noqa: E402
from curate.data.images import decode_images  # noqa: E402
from curate.data.pixels import file_digests  # noqa: E402
from curate.science.duplicates import (MIRRORED, NEAR_BITS, UNSHIFTED, _popcount, aligned_correlation,  # noqa: E402
                                      chance_agreement, confirm_by_pixels, find_duplicates, near_pairs,
                                      shifted_hashes)

KINDS = ("exact", "jpeg70", "resized", "shifted", "colour", "mirrored", "all four", "cropped", "rotated")


def altered(image, kind: str, rng: np.random.Generator):
    from PIL import Image, ImageEnhance

    if kind in ("resized", "all four"):
        w, h = image.size
        image = image.resize((max(1, int(w * 0.8)), max(1, int(h * 0.8))), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    if kind in ("shifted", "all four"):
        pixels = np.asarray(image)
        dx, dy = rng.choice([-2, 2]), rng.choice([-2, 2])
        padded = np.pad(pixels, ((2, 2), (2, 2), (0, 0)), mode="edge")
        image = Image.fromarray(padded[2 + dy:2 + dy + pixels.shape[0], 2 + dx:2 + dx + pixels.shape[1]])
    if kind in ("colour", "all four"):
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.85, 1.15))
    if kind == "mirrored":
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    if kind == "cropped":
        w, h = image.size
        cw, ch = round(0.75 * w), round(0.75 * h)
        left, top = (w - cw) // 2, (h - ch) // 2
        image = image.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BILINEAR)
    if kind == "rotated":
        image = image.rotate(float(rng.choice([-8, 8])), resample=Image.BILINEAR, fillcolor=tuple(
            int(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0)))
    return image


def feature_search(pixels: np.ndarray, labels: np.ndarray, known: np.ndarray, seed: int) -> tuple[dict, float]:
    """Train one network as a run's first job does, and search its features; (record, seconds)."""
    import torch

    from curate.options import RunOptions
    from curate.population.features import features_and_copies
    from curate.population.models import build_model
    from curate.population.train import Normalizer, configure_threads, train_dense
    from curate.science.duplicates import feature_duplicates

    configure_threads()
    config = RunOptions().config_for("folder", len(pixels), 32)
    mean, std = Normalizer.channel_stats(pixels)
    normalize = Normalizer(mean, std, torch.device("cpu"))
    torch.manual_seed(seed)
    started = time.perf_counter()
    model = build_model(config.model, int(labels.max()) + 1).to(memory_format=torch.channels_last)
    train_dense(model, pixels, labels, normalize, config.train, seed)
    trained = time.perf_counter()
    found = feature_duplicates(**features_and_copies(model, pixels, normalize, seed), known=known)
    return {**found.record(), "pairs": found.pairs.tolist(), "train_seconds": trained - started,
            "search_seconds": time.perf_counter() - trained}, trained - started


def digits_study(seeds: int = 5) -> dict:
    """The pixel check on the demo's digits: per source and way of drawing chance pairs, for each seed, the
    chance level and the hash pairs kept (planted copy pairs, others)."""
    from curate.fiftyone.source import load_source
    from curate.science.duplicates import duplicate_pairs

    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in ("digits-planted", "digits"):
            images = load_source(source)
            paths = images.filepaths
            pixels = np.asarray(decode_images(paths, 32, Path(tmp) / f"{source}.u8", progress=False)[0])
            digests = file_digests(paths)
            pairs = duplicate_pairs(shifted_hashes(pixels.astype(np.float32).mean(axis=1)), digests)
            index = {path: i for i, path in enumerate(paths)}
            planted = {tuple(sorted((i, index[c]))) for i, c in enumerate(images.fields.get("copy_of", [])) if c}
            for chance in ("any", "class"):
                rows = []
                for seed in range(seeds):
                    checked = confirm_by_pixels(pairs, digests, pixels, seed=seed,
                                                labels=images.labels if chance == "class" else None)
                    kept = {tuple(sorted(p)) for p in checked.pairs.tolist()}
                    rows.append({"seed": seed, "chance_level": checked.threshold, "planted_kept": len(kept & planted),
                                 "others_kept": len(kept - planted)})
                report[f"{source}/{chance}"] = {"hash_pairs": len(pairs), "planted_pairs": len(planted), "seeds": rows}
                print(f"{source:<15} chance pairs {chance:<5}: {len(pairs)} hash pairs, {len(planted)} planted; "
                      "by seed (chance level, planted kept, others kept): "
                      + ", ".join(f"({r['chance_level']:.3f}, {r['planted_kept']}, {r['others_kept']})" for r in rows))
    return report


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--copies", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--near-bits", type=int, default=NEAR_BITS)
    parser.add_argument("--features", action="store_true", help="also train one network and search its features")
    parser.add_argument("--no-pixel-check", action="store_true",
                        help="keep every hash pair (before 2026-12-05: no pixel check)")
    parser.add_argument("--chance", choices=["class", "any"], default="class",
                        help="the pixel check's chance pairs: two images of one class (curate's), or any two")
    parser.add_argument("--pixel-check", action="store_true",
                        help="print every hash pair's pixel agreement by kind, and the thresholds considered")
    parser.add_argument("--digits", action="store_true", help="the pixel check on the demo's digits only (no CIFAR)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.digits:
        write_report(args.out, digits_study())
        return
    images, _ = cifar10n_subset(args.n, args.seed)
    rng = np.random.default_rng(args.seed)
    sources = rng.choice(len(images), args.copies, replace=False)
    kinds = np.array(KINDS)[np.arange(args.copies) % len(KINDS)]
    # A copy carries its original's label, as a duplicate in a dataset mostly does.
    chance_labels = np.concatenate([images.labels, images.labels[sources]]) if args.chance == "class" else None
    with tempfile.TemporaryDirectory() as tmp:
        paths = list(images.filepaths)
        for k, (source, kind) in enumerate(zip(sources, kinds)):
            out = Path(tmp) / f"copy-{k}.{'png' if kind != 'jpeg70' else 'jpg'}"
            if kind == "exact":
                out = Path(tmp) / f"copy-{k}{Path(paths[source]).suffix}"
                out.write_bytes(Path(paths[source]).read_bytes())
            else:
                with Image.open(paths[source]) as image:
                    copy = altered(image.convert("RGB"), kind, rng)
                copy.save(out, **({"quality": 70} if kind == "jpeg70" else {}))
            paths.append(str(out))
        started = time.perf_counter()
        pixels, ok, bad = decode_images(paths, 32, Path(tmp) / "cache.u8", progress=False)
        pixels = np.array(pixels)  # the cache file goes with the folder
        decoded = time.perf_counter()
        variants = shifted_hashes(np.asarray(pixels, dtype=np.float32).mean(axis=1))
        hashes = variants[UNSHIFTED]
        digests = file_digests(paths)
        found = find_duplicates(variants, digests, [None] * len(paths), max_bits=args.near_bits,
                                images=None if args.no_pixel_check else pixels, labels=chance_labels)
        searched = time.perf_counter()
        checked = None if args.no_pixel_check else confirm_by_pixels(
            near_pairs(variants, max_bits=args.near_bits), digests, pixels, labels=chance_labels)
    n = len(images)
    copy_index = n + np.arange(args.copies)
    together = found.cluster[copy_index] == found.cluster[sources]
    together &= found.cluster[copy_index] >= 0
    recall = {kind: float(together[kinds == kind].mean()) for kind in KINDS}
    without_mirror = find_duplicates(variants[:MIRRORED], digests, [None] * len(paths), max_bits=args.near_bits,
                                     images=None if args.no_pixel_check else pixels, labels=chance_labels)
    mirrored = kinds == "mirrored"
    mirrored_without = float(((without_mirror.cluster[copy_index] == without_mirror.cluster[sources])
                              & (without_mirror.cluster[copy_index] >= 0))[mirrored].mean())
    pairs = near_pairs(variants, max_bits=args.near_bits) if checked is None else checked.pairs
    planted_pairs = {(int(s), int(c)) for s, c in zip(sources, copy_index)}
    exact_pairs = {(int(s), int(c)) for s, c in zip(sources[kinds == "exact"], copy_index[kinds == "exact"])}
    right = sum((int(a), int(b)) in planted_pairs for a, b in pairs)
    natural = [(int(a), int(b)) for a, b in pairs if a < n and b < n]
    wrong = len(pairs) - right - len(natural)
    i, j = rng.integers(0, n, 20000), rng.integers(0, n, 20000)
    random_bits = _popcount(hashes[i[i != j]] ^ hashes[j[i != j]])
    per_10k = (searched - decoded) / len(paths) * 10000
    report = {
        "n": n, "copies": args.copies, "near_bits": args.near_bits, "recall": recall,
        "pixel_check": None if checked is None else {**checked.record(), "chance_pairs": args.chance},
        "recall_all": float(together.mean()), "recall_mirrored_without_mirror_hash": mirrored_without, "pairs_found": int(len(pairs)), "planted_pairs_found": right,
        "natural_pairs": len(natural), "other_pairs": wrong,
        "precision_excluding_natural": right / max(1, right + wrong),
        "exact_found": int(found.exact[copy_index[kinds == "exact"]].sum()), "exact_planted": len(exact_pairs),
        "random_pair_bits": {"mean": float(random_bits.mean()), "std": float(random_bits.std()),
                             "share_within_near_bits": float((random_bits <= args.near_bits).mean())},
        "seconds": {"decode": decoded - started, "hash_and_search": searched - decoded,
                    "hash_and_search_per_10k": per_10k},
        "natural_examples": [[images.filepaths[a], images.filepaths[b]] for a, b in natural[:10]],
    }
    print(f"{n} CIFAR-10N images + {args.copies} planted copies (near = at most {args.near_bits} of 64 bits apart)")
    print("recall per kind of copy: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in recall.items())
          + f" (mirrored without the mirror image's hash: {100 * mirrored_without:.0f}%)")
    if checked is not None:
        print(f"pixel check: chance level {checked.threshold:.3f} ({'two images of one class' if args.chance == 'class' else 'any two images'}); "
              f"{checked.dropped} of {checked.checked} hash pairs left out")
    print(f"pairs found {len(pairs)}: planted {right}, CIFAR's own {len(natural)}, other {wrong}; "
          f"precision (planted / (planted + other)) {report['precision_excluding_natural']:.3f}")
    print(f"random pairs of images: {random_bits.mean():.1f} +- {random_bits.std():.1f} bits apart; "
          f"{100 * report['random_pair_bits']['share_within_near_bits']:.3f}% within {args.near_bits}")
    print(f"hash + search: {searched - decoded:.2f} s ({per_10k:.2f} s per 10,000 images); decode {decoded - started:.1f} s")
    if args.features:
        labels = np.concatenate([images.labels, images.labels[sources]])
        record, _ = feature_search(pixels, labels, found.is_duplicate, args.seed)
        feature_pairs = np.asarray(record.pop("pairs"), dtype=np.int64).reshape(-1, 2)
        both = find_duplicates(variants, digests, [None] * len(paths), max_bits=args.near_bits, feature_pairs=feature_pairs,
                               images=None if args.no_pixel_check else pixels, labels=chance_labels)
        alone = {tuple(p) for p in feature_pairs.tolist()}
        by_features = np.array([(int(s), int(c)) in alone for s, c in zip(sources, copy_index)])
        with_both = (both.cluster[copy_index] == both.cluster[sources]) & (both.cluster[copy_index] >= 0)
        right_f = sum(p in planted_pairs for p in alone)
        natural_f = [p for p in alone if p[0] < n and p[1] < n]
        record.update(
            recall_features={kind: float(by_features[kinds == kind].mean()) for kind in KINDS},
            recall_both={kind: float(with_both[kinds == kind].mean()) for kind in KINDS},
            planted_pairs=right_f, natural_pairs=len(natural_f), other_pairs=len(alone) - right_f - len(natural_f),
            new_natural_pairs=[[images.filepaths[a], images.filepaths[b]] for a, b in natural_f
                               if found.cluster[a] < 0 or found.cluster[a] != found.cluster[b]][:20])
        report["features"] = record
        threshold = record["feature_similarity"]
        print(f"\nfeatures of one network ({record['train_seconds']:.0f} s to train, {record['search_seconds']:.1f} s to "
              f"search): threshold {threshold if threshold is None else round(threshold, 3)}, made copies pass "
              f"{100 * record['feature_copy_recall']:.0f}%, images without a copy "
              f"{100 * record['feature_neighbour_rate']:.2f}%")
        print("kind        hashes  features  both")
        for kind in KINDS:
            print(f"{kind:<10} {100 * recall[kind]:6.0f}% {100 * record['recall_features'][kind]:8.0f}% "
                  f"{100 * record['recall_both'][kind]:5.0f}%")
        print(f"feature pairs {len(alone)}: planted {right_f}, CIFAR's own {len(natural_f)}, other "
              f"{record['other_pairs']}; precision (planted / (planted + other)) "
              f"{right_f / max(1, right_f + record['other_pairs']):.3f}")
    if args.pixel_check:
        gray = np.asarray(pixels, dtype=np.float64).mean(axis=1)
        every = near_pairs(variants, max_bits=args.near_bits)
        kind_of = np.array([dict(zip(zip(sources.tolist(), copy_index.tolist()), kinds)).get(
            (int(a), int(b)), "CIFAR's own" if b < n else "other") for a, b in every])
        scores = aligned_correlation(gray, every)
        record = {"pairs": {k: sorted(np.round(scores[kind_of == k], 3).tolist()) for k in np.unique(kind_of)},
                  "made_copies_min": {}, "chance_level": {}}
        print("\naligned pixel correlation of the pairs found, by kind (min / median / max):")
        for k, values in record["pairs"].items():
            print(f"  {k:<12} {len(values):4d} pairs  {values[0]:.3f} / {np.median(values):.3f} / {values[-1]:.3f}")
        print("  CIFAR's own, every pair: " + " ".join(f"{v:.2f}" for v in record["pairs"].get("CIFAR's own", [])))
        for seed in (0, 1, 2):
            made = made_copy_scores(gray[:n], np.random.default_rng(seed))
            record["made_copies_min"][seed] = {k: float(v.min()) for k, v in made.items()}
            print(f"  made copies, seed {seed}: lowest " + ", ".join(f"{k} {v.min():.3f}" for k, v in made.items()))
            record["chance_level"][seed] = chance_agreement(gray, exclude=every, seed=seed)
            print(f"  random pairs, seed {seed}: 0.1% exceed {record['chance_level'][seed]:.3f}")
        report["pixel_study"] = record
    write_report(args.out, report)


def made_copy_scores(gray: np.ndarray, rng: np.random.Generator, copies: int = 512, shift: int = 2) -> dict:
    """:func:`aligned_correlation` of ``copies`` images with copies of them resized (to 80% and back), shifted by
    ``shift`` px (edge-padded) and both."""
    from scipy import ndimage

    originals = gray[rng.choice(len(gray), min(copies, len(gray)), replace=False)]
    m, h, w = originals.shape

    def resized(g):
        small = ndimage.zoom(g, (1, 0.8, 0.8), order=1)
        return ndimage.zoom(small, (1, h / small.shape[1], w / small.shape[2]), order=1)[:, :h, :w]

    def shifted(g):
        padded = np.pad(g, ((0, 0), (shift, shift), (shift, shift)), mode="edge")
        dy, dx = rng.choice([-shift, shift], 2)
        return padded[:, shift + dy:shift + dy + h, shift + dx:shift + dx + w]

    pairs = np.stack([np.arange(m), m + np.arange(m)], axis=1)
    return {kind: aligned_correlation(np.concatenate([originals, copy]), pairs)
            for kind, copy in (("resized", resized(originals)), ("shifted", shifted(originals)),
                               ("both", shifted(resized(originals))))}


if __name__ == "__main__":
    main()
