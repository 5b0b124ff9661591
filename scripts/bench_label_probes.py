#!/usr/bin/env python
"""Benchmark: two label-noise signals tried for curate's flags, measured on CIFAR-10N's human labels.

1. **Random-label probes injected into training** (Metadata Archaeology, Siddiqui et al. 2022): every
   network trains with a share of its training images relabelled to a random other class. Such a
   probe's held-out and in-sample profile is that of a known mislabel, so positive-unlabelled
   learning (Elkan & Noto 2008: a classifier of probes against real images) gives each real image a
   probability that its label is wrong, a ranking and an error count, without a threshold.
2. **A feature-space label vote**: for each held-out image, the share of its nearest held-out
   neighbours (cosine, in the penultimate features of the network that did not train on it) that
   carry its label. The held-out networks saw half the labels; the vote reads the other half.

Both need the networks themselves (features, relabelled training), so this script trains its own
small population per label set: one member x two folds, dense networks only, curate's
``resnet-small`` at 12 epochs, on the same stratified, seeded 10,000-image subset as
``bench_flags.py``. The label sets: ``clean`` (CIFAR-10's own labels: every flag is a false alarm
as far as the truth here knows), ``aggre`` (9% wrong) and ``worse`` (40% wrong).

    python scripts/bench_label_probes.py --out out/bench_label_probes.json

Prints, per label set: error counts (truth, confident learning as curate counts them, the probes'
estimate), the F1 of curate's ranking flagged at each count, and the AUPRC of each ranking; writes
everything as JSON. Predictions are cached, so a second run only scores.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd


from bench_flags import noisy_subset, ranking_metrics, set_metrics  # noqa: E402
from bench_pies import require_cifar10n, write_report  # noqa: E402
from curate.science.flags import confident_joint, highest, label_profile, probe_error_estimate  # noqa: E402
from curate.population.pipeline import CurateConfig, prepare_images  # noqa: E402
from curate.data.sources import default_cache_dir  # noqa: E402
from curate.data.store import RunStore  # noqa: E402


def train_two_folds(pixels: np.ndarray, labels: np.ndarray, n_classes: int, args, relabel=None, name: str = ""):
    """Train one dense ``resnet-small`` per half of a stratified two-fold split, each on the other half.

    ``relabel(train)``, if given, returns the labels the network for that half trains on (called before
    each network trains). Yields ``(folds, fold, train, model,
    normalize)`` as each network finishes.
    """
    import torch

    from curate.science.crossfit import stratified_folds
    from curate.population.models import build_model
    from curate.population.train import Normalizer, TrainSettings, configure_threads, train_dense

    configure_threads()
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    settings = TrainSettings(epochs=args.epochs, batch_size=64, hflip=True)
    folds = stratified_folds(labels, 2, args.seed)
    for fold in (0, 1):
        train = np.flatnonzero(folds != fold)
        trained_labels = labels if relabel is None else relabel(train)
        started = time.time()
        model = train_dense(build_model("resnet-small", n_classes), pixels[train], trained_labels[train], normalize,
                            settings, seed=args.seed + fold)
        print(f"  {name}network {fold + 1}/2 trained in {time.time() - started:.0f} s", flush=True)
        yield folds, fold, train, model, normalize


def train_population(pixels: np.ndarray, labels: np.ndarray, n_classes: int, args) -> dict[str, np.ndarray]:
    """Two cross-fitted networks, each with ``args.probe_share`` of its training images relabelled.

    Returns held-out and in-sample probabilities, both networks' penultimate features for every
    image, the fold of each image, and which images were probes with which label.
    """
    import torch

    n = len(labels)
    rng = np.random.default_rng(args.seed)
    held_out = np.zeros((n, n_classes), np.float32)
    in_sample = np.zeros((n, n_classes), np.float32)
    features = []
    probe = np.zeros(n, dtype=bool)
    trained_labels = labels.copy()

    def relabel(train: np.ndarray) -> np.ndarray:
        probes = rng.choice(train, size=int(round(args.probe_share * len(train))), replace=False)
        probe[probes] = True
        trained_labels[probes] = (labels[probes] + rng.integers(1, n_classes, len(probes))) % n_classes
        return trained_labels

    for folds, fold, train, model, normalize in train_two_folds(pixels, labels, n_classes, args, relabel):
        probs, feats = [], []
        with torch.no_grad():
            for start in range(0, n, 500):
                hidden = torch.amax(model.features(normalize(pixels[start:start + 500])), dim=(2, 3))
                feats.append(hidden.numpy())
                probs.append(torch.softmax(model.head(hidden), dim=1).numpy())
        probs = np.concatenate(probs)
        held_out[folds == fold] = probs[folds == fold]
        in_sample[train] = probs[train]
        features.append(np.concatenate(feats))
    return {"held_out": held_out, "in_sample": in_sample, "features": np.stack(features), "folds": folds,
            "probe": probe, "trained_labels": trained_labels}


def neighbour_vote(features: np.ndarray, folds: np.ndarray, labels: np.ndarray, n_classes: int, k: int) -> np.ndarray:
    """Share of each image's ``k`` nearest held-out neighbours (itself excluded) carrying each class."""
    vote = np.zeros((len(labels), n_classes))
    for fold in (0, 1):
        idx = np.flatnonzero(folds == fold)
        f = features[fold][idx]
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        similarity = f @ f.T
        np.fill_diagonal(similarity, -np.inf)
        nearest = np.argpartition(-similarity, k, axis=1)[:, :k]
        neighbour_labels = labels[idx][nearest]
        for c in range(n_classes):
            vote[idx, c] = (neighbour_labels == c).mean(axis=1)
    return vote


def score_label_set(population: dict[str, np.ndarray], labels: np.ndarray, clean: np.ndarray, args) -> dict:
    probe, trained_labels = population["probe"], population["trained_labels"]
    held_out, in_sample = population["held_out"], population["in_sample"]
    real = ~probe
    n_classes = held_out.shape[1]
    y, is_error = labels[real], (labels != clean)[real]
    rows = np.arange(len(y))
    ho, ins = held_out[real], in_sample[real]
    curate_score = 1 - 0.5 * (ho + ins)[rows, y]  # curate's label-noise ranking (held-out + in-sample)

    estimate = probe_error_estimate(label_profile(ho, ins, y),
                                    label_profile(held_out[probe], in_sample[probe], trained_labels[probe]), args.seed)
    joint = confident_joint(y, ho)
    counts = {"truth": int(is_error.sum()), "confident learning (curate now)": int(joint.sum() - np.trace(joint)),
              "random-label probes": int(round(estimate.count))}
    vote = neighbour_vote(population["features"], population["folds"], labels, n_classes, args.k)[real]
    rankings = {
        "curate: 1 - mean(held-out, in-sample) p(label)": curate_score,
        "probes: P(wrong) from probes vs real": estimate.p_wrong + 1e-9 * curate_score,
        f"neighbour vote against the label (k={args.k})": 1 - vote[rows, y],
        "curate + neighbour vote (mean)": 1 - (0.5 * (ho + ins)[rows, y] + vote[rows, y]) / 2,
    }
    has_errors = bool(is_error.any())
    return {
        "n_real": int(real.sum()), "n_probes": int(probe.sum()), "base_rate": float(is_error.mean()),
        "held_out_clean_accuracy": float((ho.argmax(axis=1) == clean[real]).mean()),
        "counts": counts,
        "f1_at_count": {name: set_metrics(is_error, highest(curate_score, count)) for name, count in counts.items()
                        if has_errors},
        "rankings": {name: ranking_metrics(is_error, score) for name, score in rankings.items()} if has_errors else {},
        "median_in_sample_p": {
            "probes (random wrong label)": float(np.median(in_sample[probe][np.arange(probe.sum()),
                                                                            trained_labels[probe]])),
            "real, label wrong": float(np.median(ins[rows, y][is_error])) if has_errors else None,
            "real, label right": float(np.median(ins[rows, y][~is_error])),
        },
        "probe_c": estimate.c,
    }


def print_label_set(column: str, entry: dict) -> None:
    print(f"\n{column}: {entry['n_real']} real images ({100 * entry['base_rate']:.1f}% mislabelled), "
          f"{entry['n_probes']} probes; held-out accuracy on the clean labels {entry['held_out_clean_accuracy']:.3f}")
    print("Estimated number of wrong labels:", ", ".join(f"{k} {v}" for k, v in entry["counts"].items()))
    if entry["f1_at_count"]:
        print("curate's ranking flagged at each count:")
        print(pd.DataFrame(entry["f1_at_count"]).T.round(3).to_string())
        print(pd.DataFrame(entry["rankings"]).T.round(3).to_string())
    print("Median in-sample probability of the trained label:",
          ", ".join(f"{k} {v:.3f}" for k, v in entry["median_in_sample_p"].items() if v is not None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", nargs="+", default=["clean", "aggre", "worse"],
                        choices=["clean", "aggre", "worse", "random1"])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--probe-share", type=float, default=0.05,
                        help="Share of each network's training images relabelled as probes.")
    parser.add_argument("--k", type=int, default=50, help="Neighbours in the feature-space vote.")
    parser.add_argument("--out", default=None, help="JSON output path.")
    args = parser.parse_args()
    require_cifar10n()

    report = {"args": vars(args), "label_sets": {}}
    for column in args.labels:
        images, clean = noisy_subset(args.n, args.seed, column)
        key = f"n{args.n}-seed{args.seed}-e{args.epochs}-p{args.probe_share}"
        store = RunStore(default_cache_dir() / "bench" / f"label-probes-{column}-{key}")
        cached = store.root / "population.npz"
        if cached.exists():
            population = dict(np.load(cached))
        else:
            print(f"\n{column}: training two networks with probes", flush=True)
            kept, pixels, _ = prepare_images(images, CurateConfig(image_size=32), store)
            if len(kept) != len(images):
                sys.exit(f"{len(images) - len(kept)} images could not be read; see {store.root}.")
            population = train_population(pixels, images.labels, len(images.classes), args)
            np.savez(cached, **population)
        report["label_sets"][column] = score_label_set(population, images.labels, clean, args)
        print_label_set(column, report["label_sets"][column])
    write_report(args.out, report)


if __name__ == "__main__":
    main()
