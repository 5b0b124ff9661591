#!/usr/bin/env python
"""Benchmark: does a perturbed in-sample view tell memorised wrong labels from fitted right ones?

curate's label-noise ranking averages the held-out view (every anchor's input) with the in-sample
one: a network fits a wrong label worse than a right one. Trained longer, the networks memorise
wrong labels and that view fades (docs/benchmarks.md, "Longer training"). Memorised exceptions are
held in fragile parts of a network: they are the first thing pruning forgets (Hooker et al. 2019)
and the first a network unlearns when it trains on something else (second-split forgetting, Maini et
al. 2022). So the in-sample probability of the label *after* a perturbation might keep the signal
that the plain in-sample view loses. Perturbations, each applied to the trained dense networks:

- ``prune-S``: one-shot global magnitude pruning at sparsity S, no fine-tuning; batch-norm
  statistics re-estimated on the network's own training images (no labels read);
- ``noise-S``: Gaussian noise added to every prunable weight, S times that layer's weight standard
  deviation (mean of three draws);
- ``ssft-E``: E epochs of fine-tuning on the other fold (the images the network never saw, with
  their labels), then the probability of the label on the network's original training images.

Per label set and epochs: one member x two folds of dense ``resnet-small`` networks (batch 64) on the
same stratified, seeded 10,000-image subset as ``bench_flags.py``. Printed and written as JSON: per
perturbation, the clean accuracy on the dense networks' held-out images (which ``ssft`` trains on, so
its figure is not a held-out one), and the AUPRC (truth: label != clean label) of the
perturbed in-sample ranking, of its mean with the held-out view, and of the three-way mean
(held-out, in-sample, perturbed in-sample), next to curate's mean of held-out and in-sample.

    python scripts/bench_memorization.py --epochs 12 30 --out out/bench_memorization.json

Also printed, per population: the memorisation check curate uses to choose between the plain and
the forgotten in-sample view (:func:`curate.science.flags.memorisation`: do the networks fit more of their
training labels than confident learning believes are right?), and the AUPRC of the view it picks.

Networks are cached, so a second run only scores.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


from bench_flags import noisy_subset, ranking_metrics  # noqa: E402
from bench_label_probes import train_two_folds  # noqa: E402
from bench_pies import require_cifar10n, write_report  # noqa: E402
from curate.population.pipeline import CurateConfig, prepare_images  # noqa: E402
from curate.data.sources import default_cache_dir  # noqa: E402
from curate.data.store import RunStore  # noqa: E402

PERTURBATIONS = ("prune-0.5", "prune-0.7", "prune-0.9", "noise-0.25", "noise-0.5", "ssft-1", "ssft-2")


def recalibrate_batch_norm(model, pixels: np.ndarray, normalize, batch_size: int = 256) -> None:
    """Re-estimate batch-norm running statistics on ``pixels`` (cumulative average, no labels)."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            model(normalize(pixels[start:start + batch_size]))
    model.eval()


def perturbed(model, name: str, pixels, labels, train, held_out, normalize, seed: int):
    """Copies of ``model`` perturbed as ``name`` says (several for the random ones)."""
    import torch

    from curate.population.models import prunable_parameters
    from curate.population.train import TrainSettings, apply_masks, global_magnitude_masks, _fit

    kind, level = name.split("-")
    level = float(level)
    if kind == "prune":
        copy_ = copy.deepcopy(model)
        apply_masks(copy_, global_magnitude_masks(copy_, level))
        recalibrate_batch_norm(copy_, pixels[train], normalize)
        return [copy_]
    if kind == "noise":
        copies = []
        for draw in range(3):
            copy_ = copy.deepcopy(model)
            generator = torch.Generator().manual_seed(seed * 100 + draw)
            with torch.no_grad():
                for _, p in prunable_parameters(copy_):
                    p.add_(torch.randn(p.shape, generator=generator) * level * p.std())
            recalibrate_batch_norm(copy_, pixels[train], normalize)
            copies.append(copy_)
        return copies
    settings = TrainSettings(batch_size=64, hflip=True)
    copy_ = copy.deepcopy(model)
    _fit(copy_, pixels[held_out], labels[held_out], normalize, settings, int(level), settings.finetune_lr, seed)
    return [copy_.eval()]


def train_and_perturb(pixels, labels, n_classes: int, args, cache: Path) -> dict[str, np.ndarray]:
    """Held-out and in-sample probabilities of the label, plain and under every perturbation."""
    import torch

    from curate.population.train import Normalizer, predict_probs

    n = len(labels)
    out = {"held_out": np.zeros(n, np.float32), "in_sample": np.zeros(n, np.float32)}
    for name in PERTURBATIONS:
        out[f"held_out:{name}"] = np.zeros(n, np.float32)
        out[f"in_sample:{name}"] = np.zeros(n, np.float32)
        out[f"accuracy:{name}"] = np.zeros(n, np.int64)
    out["accuracy"] = np.zeros(n, np.int64)
    cache.mkdir(parents=True, exist_ok=True)

    def networks():
        nets = [cache / f"fold{fold}.pt" for fold in (0, 1)]
        if all(p.exists() for p in nets):
            from curate.science.crossfit import stratified_folds
            from curate.population.models import build_model

            folds = stratified_folds(labels, 2, args.seed)
            normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
            for fold, path in zip((0, 1), nets):
                model = build_model("resnet-small", n_classes)
                model.load_state_dict(torch.load(path))
                yield folds, fold, np.flatnonzero(folds != fold), model.eval(), normalize
            return
        for folds, fold, train, model, normalize in train_two_folds(pixels, labels, n_classes, args):
            torch.save(model.state_dict(), nets[fold])
            yield folds, fold, train, model, normalize

    for folds, fold, train, model, normalize in networks():
        held = np.flatnonzero(folds == fold)
        probs = predict_probs(model, pixels, normalize)
        out["held_out"][held] = probs[held, labels[held]]
        out["in_sample"][train] = probs[train, labels[train]]
        out["accuracy"][held] = probs[held].argmax(axis=1)
        for name in PERTURBATIONS:
            started = time.time()
            copies = perturbed(model, name, pixels, labels, train, held, normalize, args.seed + fold)
            probs = np.mean([predict_probs(m, pixels, normalize) for m in copies], axis=0)
            out[f"held_out:{name}"][held] = probs[held, labels[held]]
            out[f"in_sample:{name}"][train] = probs[train, labels[train]]
            out[f"accuracy:{name}"][held] = probs[held].argmax(axis=1)
            print(f"  network {fold + 1}/2, {name}: {time.time() - started:.0f} s", flush=True)
    return out


def full_predictions(pixels, labels, n_classes: int, networks_dir: Path, seed: int) -> dict[str, np.ndarray]:
    """Held-out and in-sample class probabilities ``(N, C)`` of the two cached networks."""
    import torch

    from curate.science.crossfit import stratified_folds
    from curate.population.models import build_model
    from curate.population.train import Normalizer, predict_probs

    folds = stratified_folds(labels, 2, seed)
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    out = {"held_out": np.zeros((len(labels), n_classes)), "in_sample": np.zeros((len(labels), n_classes))}
    for fold in (0, 1):
        model = build_model("resnet-small", n_classes)
        model.load_state_dict(torch.load(networks_dir / f"fold{fold}.pt"))
        probs = predict_probs(model.eval(), pixels, normalize)
        out["held_out"][folds == fold] = probs[folds == fold]
        out["in_sample"][folds != fold] = probs[folds != fold]
    return out


def gate(full: dict[str, np.ndarray], population: dict[str, np.ndarray], labels: np.ndarray,
         clean: np.ndarray) -> dict:
    """curate's choice of in-sample view (:func:`curate.science.flags.memorisation`) and its AUPRC."""
    from curate.science.flags import memorisation

    check = memorisation(labels, full["held_out"], full["in_sample"][None])
    chosen = population["in_sample:ssft-1"] if check.memorised else population["in_sample"]
    return {"fitted": check.fitted, "right": check.right, "memorised": check.memorised,
            "view": "after forgetting" if check.memorised else "as trained",
            "auprc": ranking_metrics(labels != clean, 1 - (population["held_out"] + chosen) / 2)["auprc"]}


def score(population: dict[str, np.ndarray], labels: np.ndarray, clean: np.ndarray) -> dict:
    """AUPRC of each ranking (1 - probability of the label), per perturbation; ``none`` is curate's."""
    is_error = labels != clean

    def auprc(p_label):
        return ranking_metrics(is_error, 1 - p_label)["auprc"]

    ho, ins = population["held_out"], population["in_sample"]
    table = {"none": {"clean accuracy": float((population["accuracy"] == clean).mean()),
                      "in-sample": auprc(ins), "+ held-out": auprc((ho + ins) / 2),
                      "held-out alone (anchors' input)": auprc(ho)}}
    for name in PERTURBATIONS:
        pins, pho = population[f"in_sample:{name}"], population[f"held_out:{name}"]
        table[name] = {
            "clean accuracy": float((population[f"accuracy:{name}"] == clean).mean()),
            "in-sample": auprc(pins),
            "+ held-out": auprc((ho + pins) / 2),
            "+ held-out + plain in-sample": auprc((ho + ins + pins) / 3),
            "+ held-out + plain in-sample + perturbed held-out": auprc((ho + ins + pins + pho) / 4),
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", nargs="+", default=["aggre", "worse"], choices=["aggre", "worse", "random1"])
    parser.add_argument("--epochs", nargs="+", type=int, default=[12, 30])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON output path.")
    args = parser.parse_args()
    require_cifar10n()

    report = {"args": vars(args), "results": {}}
    for column in args.labels:
        images, clean = noisy_subset(args.n, args.seed, column)
        for epochs in args.epochs:
            run_args = argparse.Namespace(**{**vars(args), "epochs": epochs})
            store = RunStore(default_cache_dir() / "bench" / f"memorization-{column}-n{args.n}-seed{args.seed}-e{epochs}")
            cached = store.root / "scores.npz"
            if not cached.exists():
                kept, pixels, _ = prepare_images(images, CurateConfig(image_size=32), store)
                if len(kept) != len(images):
                    sys.exit(f"{len(images) - len(kept)} images could not be read; see {store.root}.")
                print(f"\n{column}, {epochs} epochs: two networks", flush=True)
                np.savez(cached, **train_and_perturb(pixels, images.labels, len(images.classes), run_args,
                                                     store.root / "networks"))
            table = score(dict(np.load(cached)), images.labels, clean)
            report["results"][f"{column}-e{epochs}"] = table
            full_cache = store.root / "full_predictions.npz"
            if not full_cache.exists():
                _, pixels, _ = prepare_images(images, CurateConfig(image_size=32), store)
                np.savez(full_cache, **full_predictions(pixels, images.labels, len(images.classes),
                                                        store.root / "networks", args.seed))
            choice = gate(dict(np.load(full_cache)), dict(np.load(cached)), images.labels, clean)
            report["results"][f"{column}-e{epochs}-gate"] = choice
            print(f"\n{column}, {epochs} epochs: {100 * (images.labels != clean).mean():.1f}% of labels wrong; "
                  "AUPRC of 1 - p(label) by view (rows: perturbation of the in-sample view; clean accuracy: "
                  "of the perturbed networks on the dense networks' held-out images, which ssft trained on)")
            print(pd.DataFrame(table).T.round(3).to_string(na_rep=""))
            print(f"memorisation check: the networks fit {100 * choice['fitted']:.1f}% of their training labels; "
                  f"confident learning believes {100 * choice['right']:.1f}% are right -> in-sample view "
                  f"{choice['view']}; held-out + that view: AUPRC {choice['auprc']:.3f}")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
