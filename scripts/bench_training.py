#!/usr/bin/env python
"""Benchmark: accuracy per second of training recipes for one network, as a population member trains.

One network trains on one fold of a seeded, stratified CIFAR-10N subset (clean labels) and predicts the
other fold, as each of curate's networks does with F = 2. Every recipe is one set of
:class:`curate.population.train.TrainSettings` (plus a model spec); the table gives held-out accuracy
with and without test-time flip averaging, and the seconds the training took.

    python scripts/bench_training.py --n 10000 --out out/bench_training.json
    python scripts/bench_training.py --n 10000 --recipes base,b64,b64-ls --epochs 8,16
    python scripts/bench_training.py --n 50000 --device cuda --recipes w64-b512-lr0.28,w128-b512-lr0.28 --epochs 16,32

A recipe is a name below or a spec of dash-separated parts: ``wW`` (resnet-small:W), ``bB`` (batch), ``lrX``
(peak learning rate; fine-tuning is not run here), ``lsX`` (label smoothing), ``cP`` (translation padding),
``wh`` (the first layer starts as a whitening of the images' patches).
``--folds 5`` trains on four fifths instead of half, to show what the training set's size costs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench_pies import cifar10n_subset, write_report
from curate.data.images import decode_images, load_in_memory
from curate.science.crossfit import stratified_folds

# name -> (model spec, TrainSettings overrides); epochs come from --epochs.
RECIPES = {
    "base": ("resnet-small", {"batch_size": 256}),
    "b64": ("resnet-small", {"batch_size": 64}),
    "b64-ls": ("resnet-small", {"batch_size": 64, "label_smoothing": 0.2}),
    "b32-ls": ("resnet-small", {"batch_size": 32, "label_smoothing": 0.2}),
    "b32-ls-c4": ("resnet-small", {"batch_size": 32, "label_smoothing": 0.2, "crop_padding": 4}),
    "b16-ls": ("resnet-small", {"batch_size": 16, "label_smoothing": 0.2}),
    "b64-ls-c4": ("resnet-small", {"batch_size": 64, "label_smoothing": 0.2, "crop_padding": 4}),
    "b64-c4": ("resnet-small", {"batch_size": 64, "crop_padding": 4}),
    "b64-ls-w48": ("resnet-small:48", {"batch_size": 64, "label_smoothing": 0.2}),
    "b64-ls-w24": ("resnet-small:24", {"batch_size": 64, "label_smoothing": 0.2}),
}


def parse_recipe(name: str) -> tuple[str, dict]:
    """``(model spec, TrainSettings overrides)`` of a recipe: a name of :data:`RECIPES` or a spec such as
    ``w64-b512-lr0.28-ls0.2``."""
    if name in RECIPES:
        return RECIPES[name]
    model, overrides = "resnet-small", {}
    keys = {"lr": ("lr", float), "ls": ("label_smoothing", float), "w": (None, int), "b": ("batch_size", int),
            "c": ("crop_padding", int)}
    for part in name.split("-"):
        if part == "wh":
            overrides["whiten"] = True
            continue
        key = next((k for k in keys if part.startswith(k) and part[len(k):].replace(".", "", 1).isdigit()), None)
        if key is None:
            raise SystemExit(f"Unknown recipe part {part!r} in {name!r}: use a name of {sorted(RECIPES)} or parts "
                             f"wW, bB, lrX, lsX, cP, wh (e.g. w64-b512-lr0.28).")
        field, kind = keys[key]
        if field is None:
            model = f"resnet-small:{kind(part[len(key):])}"
        else:
            overrides[field] = kind(part[len(key):])
    return model, overrides


def train_one(model_spec: str, settings, pixels, labels, train, held_out, seed: int = 0, device: str = "cpu") -> dict:
    import torch

    from curate.population.models import build_model
    from curate.population.train import (Normalizer, initialise, predict_probs, resolve_device, synchronize,
                                         train_dense)

    device = resolve_device(device)
    torch.manual_seed(seed)
    normalize = Normalizer(*Normalizer.channel_stats(pixels), device)
    model = build_model(model_spec, int(labels.max()) + 1).to(device)
    model = initialise(model, pixels[train], normalize, settings).to(memory_format=torch.channels_last)
    synchronize(device)
    started = time.perf_counter()
    train_dense(model, pixels[train], labels[train], normalize, settings, seed)
    synchronize(device)
    seconds = time.perf_counter() - started
    plain = predict_probs(model, pixels[held_out], normalize).argmax(1)
    flipped = predict_probs(model, pixels[held_out], normalize, flip=True).argmax(1)
    return {"seconds": seconds, "accuracy": float((plain == labels[held_out]).mean()),
            "accuracy_flip": float((flipped == labels[held_out]).mean())}


def main() -> None:
    from curate.population.train import TrainSettings, configure_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--epochs", default="16")
    parser.add_argument("--folds", type=int, default=2, help="train on (F-1)/F of the images, predict the rest")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", default="/tmp/curate-bench-training")
    parser.add_argument("--out")
    args = parser.parse_args()
    configure_threads()
    images, _ = cifar10n_subset(args.n, args.seed)
    from pathlib import Path

    Path(args.cache).mkdir(parents=True, exist_ok=True)
    pixels, ok, _ = decode_images(images.filepaths, 32, Path(args.cache) / f"cifar-{args.n}-{args.seed}.u8")
    pixels, labels = load_in_memory(pixels), images.labels[ok]
    folds = stratified_folds(labels, args.folds, 1000 * args.seed)
    train, held_out = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    rows = []
    print(f"{len(train)} training and {len(held_out)} held-out images, {args.device}")
    print(f"{'recipe':<20} {'model':<16} {'epochs':>6} {'seconds':>8} {'held-out acc':>13} {'with flips':>11}")
    for name in args.recipes.split(","):
        model_spec, overrides = parse_recipe(name)
        for epochs in (int(e) for e in args.epochs.split(",")):
            settings = TrainSettings(epochs=epochs, **overrides)
            result = train_one(model_spec, settings, pixels, labels, train, held_out, args.seed, args.device)
            rows.append({"recipe": name, "model": model_spec, "epochs": epochs, **overrides, **result})
            print(f"{name:<20} {model_spec:<16} {epochs:>6} {result['seconds']:>8.0f} "
                  f"{result['accuracy']:>13.3f} {result['accuracy_flip']:>11.3f}", flush=True)
        write_report(args.out, {"n": args.n, "seed": args.seed, "device": args.device, "folds": args.folds,
                                "train_images": len(train), "rows": rows})


if __name__ == "__main__":
    main()
