#!/usr/bin/env python
"""Benchmark: does cleaning or PIE-weighting a noisy training set give a better model?

Training pool: the stratified, seeded 10,000-image CIFAR-10N subset of bench_flags.py with the
``worse`` human labels (~40% wrong). Test set: other CIFAR-10 training images (disjoint from the
pool, stratified, seeded) scored against their CLEAN labels. The same network and budget is
trained, for several seeds, on:

- ``noisy``: every image, noisy labels;
- ``curate_drop``: curate's suspected label errors left out (no human review);
- ``curate_relabel``: curate's suspected label errors relabelled to its suggestion;
- ``pie_weighted``: every image, PIEs drawn twice as often (``curate weights`` scheme ``factor``);
- ``cleanlab_drop``: cleanlab's ``find_label_issues`` left out (same population's probabilities).

The flags come from the population bench_flags.py trains (cached; trained here if absent).

    python scripts/bench_retrain.py --retrain-epochs 8 --seeds 0 1 --out out/bench_retrain.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


from bench_flags import argument_parser, noisy_subset, population_config  # noqa: E402
from bench_pies import CIFAR10N, require_cifar10n, require_cleanlab, write_report  # noqa: E402
from curate.data.images import decode_images, load_in_memory  # noqa: E402
from curate.population.pipeline import run_curate  # noqa: E402
from curate.data.sources import default_cache_dir  # noqa: E402
from curate.population.train import TrainSettings  # noqa: E402

VARIANTS = ("noisy", "curate_drop", "curate_relabel", "pie_weighted", "cleanlab_drop")


def test_set(pool_paths: list[str], n: int, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    """``n`` stratified images outside the pool, with clean labels."""
    table = pd.read_csv(CIFAR10N / "labels.csv")
    table["path"] = [str(CIFAR10N / p) for p in table["filepath"]]
    rest = table[~table["path"].isin(set(pool_paths))]
    classes = sorted(table["clean"].unique())
    rng = np.random.default_rng(seed + 12345)
    picked = [rng.choice(rest.index[rest["clean"] == c], n // len(classes), replace=False) for c in classes]
    chosen = rest.loc[np.sort(np.concatenate(picked))]
    index = {c: i for i, c in enumerate(classes)}
    return chosen["path"].tolist(), np.array([index[c] for c in chosen["clean"]]), classes


def train_and_test(pixels, labels, weights, test_pixels, test_labels, settings, seed, device) -> float:
    import torch

    from curate.population.models import build_model
    from curate.population.train import Normalizer, predict_probs, resolve_device, train_dense

    device = resolve_device(device)
    mean, std = Normalizer.channel_stats(pixels)
    normalize = Normalizer(mean, std, device)
    torch.manual_seed(seed)
    model = build_model("resnet-small", 10).to(device).to(memory_format=torch.channels_last)
    train_dense(model, pixels, labels, normalize, settings, seed, sample_weights=weights)
    return float((predict_probs(model, test_pixels, normalize).argmax(1) == test_labels).mean())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # The population options come from bench_flags.py, so the cached population is found and matches.
    parser = argument_parser(__doc__)
    parser.set_defaults(labels=["worse"])
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="Retraining seeds.")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--retrain-epochs", type=int, default=12, help="Epochs of each retrained network.")
    parser.add_argument("--pie-factor", type=float, default=2.0)
    args = parser.parse_args(argv)
    if len(args.labels) != 1:
        parser.error(f"--labels takes one label set here, got {args.labels}; run once per label set.")
    args.labels = args.labels[0]
    return args


def main() -> None:
    args = parse_args()
    require_cifar10n()
    require_cleanlab()

    from cleanlab.filter import find_label_issues

    from curate.science.review import ExportPolicy, plan_export, sample_weights

    images, clean = noisy_subset(args.n, args.seed, args.labels)
    config = population_config(args)
    run_dir = Path(args.run_root or default_cache_dir() / "bench") / f"flags-{args.labels}-{config.fingerprint(images)}"
    result = run_curate(images, config, run_dir)
    labels = result.images.labels
    cats = result.categories
    pixels = load_in_memory(decode_images(result.images.filepaths, 32, result.store.image_cache(32))[0])
    test_paths, test_labels, _ = test_set(result.images.filepaths, args.n_test, args.seed)
    test_cache = default_cache_dir() / "bench" / f"cifar10n-test-{args.n_test}-{args.seed}.u8"
    test_pixels = load_in_memory(decode_images(test_paths, 32, test_cache)[0])

    keep_curate = ~cats.label_noise
    issues = find_label_issues(labels, result.population.dense.mean(axis=0))
    plan = plan_export(pd.DataFrame({
        "sample_id": np.arange(len(labels)).astype(str), "filepath": result.images.filepaths,
        "label": np.asarray(result.images.classes)[labels], "run_label": np.asarray(result.images.classes)[labels],
        "split": None, "flag": "", "suggested": None, "tags": [[] for _ in labels]}),
        result.images.classes, ExportPolicy())
    pie_w = sample_weights(plan, result.scores.pie_score, result.scores.is_pie_any, "factor",
                           args.pie_factor)["weight"].to_numpy()
    relabelled = np.where(cats.label_noise, cats.suggested, labels)
    setups = {
        "noisy": (np.arange(len(labels)), labels, None),
        "curate_drop": (np.flatnonzero(keep_curate), labels, None),
        "curate_relabel": (np.arange(len(labels)), relabelled, None),
        "pie_weighted": (np.arange(len(labels)), labels, pie_w),
        "cleanlab_drop": (np.flatnonzero(~issues), labels, None),
    }
    settings = TrainSettings(epochs=args.retrain_epochs, batch_size=args.batch_size, hflip=True)
    is_error = labels != clean
    report = {"labels": args.labels, "n_pool": len(labels), "n_test": len(test_labels),
              "pool_error_rate": float(is_error.mean()), "settings": settings.__dict__, "variants": {}}
    for name in args.variants:
        rows, train_labels, weights = setups[name]
        train_error = float((train_labels[rows] != clean[rows]).mean())
        accs, seconds = [], []
        for seed in args.seeds:
            started = time.time()
            acc = train_and_test(pixels[rows], train_labels[rows], None if weights is None else weights[rows],
                                 test_pixels, test_labels, settings, seed, args.device)
            accs.append(acc)
            seconds.append(time.time() - started)
            print(f"{name:15s} seed {seed}: test accuracy {acc:.4f} ({seconds[-1]:.0f} s)", flush=True)
        report["variants"][name] = {
            "train_images": int(len(rows)), "train_label_error": train_error,
            "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "accuracies": accs, "seconds": float(np.mean(seconds)),
        }
    print(f"\n{args.labels} labels: pool {len(labels)} images, {100 * is_error.mean():.1f}% wrong; "
          f"test {len(test_labels)} images, clean labels")
    print(pd.DataFrame(report["variants"]).T[["train_images", "train_label_error", "accuracy_mean",
                                               "accuracy_std"]].round(4).to_string())
    write_report(args.out, report)


if __name__ == "__main__":
    main()
