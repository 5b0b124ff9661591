#!/usr/bin/env python
"""Benchmark: does one chained pruning schedule mark the same PIEs as independent ramps, for less work?

The dense population (K members x F folds) trains once. Its networks are then compressed three or more
ways, each at every sparsity:

- ``independent`` (seed A and seed B): every level is its own copy of the dense network, ramped from 0
  over ``--finetune-epochs`` epochs, as curate has done; A and B differ only in the fine-tuning seed, so
  their agreement is how well the method agrees with itself.
- ``chained-E``: each level continues from the previous level's copy, ``E`` epochs per level.

For each level, the PIE sets of two variants are compared by Jaccard overlap. A cheaper schedule is
adoptable when its PIE sets agree with independent A about as well as independent B does.

    python scripts/bench_pruning_schedule.py digits --out out/bench_pruning_schedule_digits.json
    python scripts/bench_pruning_schedule.py cifar10n --n 4000 --epochs 16 --out out/bench_pruning_schedule_cifar.json
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from bench_pies import cifar10n_subset, write_report


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def main() -> None:
    import torch

    from curate.data.images import decode_images, load_in_memory
    from curate.data.sources import default_cache_dir, digits
    from curate.population.models import build_model
    from curate.population.train import (Normalizer, TrainSettings, configure_threads, predict_probs, prune_levels,
                                         train_dense)
    from curate.science.crossfit import stratified_folds
    from curate.science.pies import mark_pies

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=["digits", "cifar10n"])
    parser.add_argument("--n", type=int, default=4000, help="CIFAR-10N subset size")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--finetune-epochs", type=int, default=6, help="per level, independent schedule")
    parser.add_argument("--chained-epochs", default="1,2,3", help="per level, chained schedule")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sparsities", default="0.3,0.5,0.7,0.9")
    parser.add_argument("--no-second-seed", action="store_true",
                        help="skip independent-B (same seeds on the same machine reproduce an earlier run's A)")
    parser.add_argument("--out")
    args = parser.parse_args()
    configure_threads()

    if args.source == "digits":
        images, size, hflip = digits(default_cache_dir() / "digits"), 16, False
    else:
        images, _ = cifar10n_subset(args.n, 0)
        size, hflip = 32, True
    cache = default_cache_dir() / "bench" / f"schedule-{args.source}-{len(images)}-{size}.u8"
    cache.parent.mkdir(parents=True, exist_ok=True)
    pixels, ok, _ = decode_images(images.filepaths, size, cache, progress=False)
    pixels, labels = load_in_memory(pixels), images.labels[ok]
    n, n_classes = len(labels), int(labels.max()) + 1
    sparsities = [float(s) for s in args.sparsities.split(",")]
    base = TrainSettings(epochs=args.epochs, finetune_epochs=args.finetune_epochs, batch_size=args.batch_size,
                         hflip=hflip)
    variants = {"independent-A": (dataclasses.replace(base), 0)}
    if not args.no_second_seed:
        variants["independent-B"] = (dataclasses.replace(base), 1)
    for e in (int(v) for v in args.chained_epochs.split(",")):
        variants[f"chained-{e}"] = (dataclasses.replace(base, finetune_epochs=e, prune_schedule="chained"), 0)
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    dense = np.full((args.members, n, n_classes), np.nan, dtype=np.float32)
    compressed = {name: np.full((len(sparsities), args.members, n, n_classes), np.nan, dtype=np.float32)
                  for name in variants}
    seconds = {name: 0.0 for name in ["dense", *variants]}
    for member in range(args.members):
        folds = stratified_folds(labels, args.folds, 1000 * member)
        for fold in range(args.folds):
            held, train = folds == fold, np.flatnonzero(folds != fold)
            seed = 100 * (1000 * member) + fold
            torch.manual_seed(seed)
            started = time.perf_counter()
            model = build_model("resnet-small", n_classes).to(memory_format=torch.channels_last)
            train_dense(model, pixels[train], labels[train], normalize, base, seed)
            seconds["dense"] += time.perf_counter() - started
            dense[member, held] = predict_probs(model, pixels[held], normalize)
            for name, (settings, offset) in variants.items():
                started = time.perf_counter()
                pruned = prune_levels(model, pixels[train], labels[train], normalize, settings, sparsities,
                                      seed + 15485863 * offset)
                for level, copy in enumerate(pruned):
                    compressed[name][level, member, held] = predict_probs(copy, pixels[held], normalize)
                seconds[name] += time.perf_counter() - started
            print(f"member {member} fold {fold} done", flush=True)

    truth = labels
    dense_acc = float((dense.argmax(-1) == truth).mean())
    pies = {name: mark_pies(dense, probs) for name, probs in compressed.items()}
    rows = []
    print(f"\n{args.source}: {n} images, {args.members} x {args.folds} networks, dense held-out accuracy "
          f"{dense_acc:.3f} ({seconds['dense']:.0f} s)")
    print(f"{'schedule':<14} {'compress s':>10}  " + "  ".join(f"{f'{round(100 * s)}%: acc PIE% J(A)':>22}"
                                                             for s in sparsities))
    for name in variants:
        acc = (compressed[name].argmax(-1) == truth).mean(axis=(1, 2))
        share = pies[name].mean(axis=1)
        overlap = [jaccard(pies[name][i], pies["independent-A"][i]) for i in range(len(sparsities))]
        rows.append({"schedule": name, "seconds": seconds[name], "accuracy": acc.tolist(),
                     "pie_fraction": share.tolist(), "jaccard_with_independent_A": overlap})
        print(f"{name:<14} {seconds[name]:>10.0f}  " + "  ".join(
            f"{a:>9.3f} {100 * p:>5.2f} {j:>6.2f}" for a, p, j in zip(acc, share, overlap)))
    write_report(args.out, {"source": args.source, "n": n, "members": args.members, "folds": args.folds,
                            "epochs": args.epochs, "batch_size": args.batch_size, "sparsities": sparsities,
                            "dense_accuracy": dense_acc, "dense_seconds": seconds["dense"], "rows": rows})


if __name__ == "__main__":
    main()
