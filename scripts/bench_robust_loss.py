#!/usr/bin/env python
"""Benchmark: would a noise-robust training loss make curate's label-noise ranking pull away from the anchors?

curate's ranking adds, to the held-out view every anchor reads, the in-sample view: how well the
networks that trained on an image fit its label. With cross-entropy the networks memorise wrong
labels, so at heavy noise (CIFAR-10N ``worse``) that view adds little. Losses built to resist
memorisation should keep a wrong label's in-sample probability low, and widen curate's lead:

- ``ce``: cross-entropy, what curate trains with;
- ``gce``: generalised cross-entropy ``(1 - p_y ** q) / q``, q = 0.7 (Zhang & Sabuncu 2018);
- ``sce``: symmetric cross-entropy ``0.1 CE + 1.0 RCE`` (Wang et al. 2019, their CIFAR-10 setting).

Per loss and label set: one member x two folds of dense ``resnet-small`` networks, 12 epochs, on the
same stratified, seeded 10,000-image subset as ``bench_flags.py``. Printed and written as JSON: the
held-out accuracy on the clean labels, and the AUPRC (truth: label != clean label) of the held-out
ranking ``1 - p(label)`` (cleanlab's self-confidence: the anchors' input), of the in-sample one, and of
curate's (their mean); the ratio of curate's to the held-out ranking on the same networks, and to the
held-out ranking of cross-entropy networks (an anchor run the usual way).

    python scripts/bench_robust_loss.py --out out/bench_robust_loss.json

Populations are cached, so a second run only scores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_flags import noisy_subset, ranking_metrics  # noqa: E402
from bench_label_probes import train_two_folds  # noqa: E402
from bench_pies import require_cifar10n, write_report  # noqa: E402
from curate.pipeline import CurateConfig, prepare_images  # noqa: E402
from curate.sources import default_cache_dir  # noqa: E402
from curate.store import RunStore  # noqa: E402

LOSSES = ("ce", "gce", "sce")


def loss_function(name: str):
    import torch
    import torch.nn.functional as F

    def generalised_ce(logits, y, q=0.7):
        p_label = torch.softmax(logits.float(), dim=1).gather(1, y[:, None]).squeeze(1).clamp_min(1e-7)
        return ((1 - p_label ** q) / q).mean()

    def symmetric_ce(logits, y, alpha=0.1, beta=1.0):
        probs = torch.softmax(logits.float(), dim=1).clamp(1e-7, 1.0)
        one_hot = F.one_hot(y, logits.shape[1]).float().clamp(1e-4, 1.0)
        reverse = -(probs * torch.log(one_hot)).sum(dim=1).mean()
        return alpha * F.cross_entropy(logits, y) + beta * reverse

    return {"ce": F.cross_entropy, "gce": generalised_ce, "sce": symmetric_ce}[name]


def train_population(pixels: np.ndarray, labels: np.ndarray, n_classes: int, loss: str, args) -> dict[str, np.ndarray]:
    """Two cross-fitted dense networks: held-out and in-sample probabilities of every image."""
    from curate.train import predict_probs

    n = len(labels)
    held_out = np.zeros((n, n_classes))
    in_sample = np.zeros((n, n_classes))
    for folds, fold, train, model, normalize in train_two_folds(pixels, labels, n_classes, args,
                                                                loss_fn=loss_function(loss), name=f"{loss}: "):
        probs = predict_probs(model, pixels, normalize)
        held_out[folds == fold] = probs[folds == fold]
        in_sample[train] = probs[train]
    return {"held_out": held_out, "in_sample": in_sample}


def score(population: dict[str, np.ndarray], labels: np.ndarray, clean: np.ndarray) -> dict:
    held_out, in_sample = population["held_out"], population["in_sample"]
    is_error = labels != clean
    rows = np.arange(len(labels))
    rankings = {"held-out (anchors' input)": 1 - held_out[rows, labels],
                "in-sample": 1 - in_sample[rows, labels],
                "curate: mean of both": 1 - 0.5 * (held_out + in_sample)[rows, labels]}
    return {"held_out_clean_accuracy": float((held_out.argmax(axis=1) == clean).mean()),
            "auprc": {name: ranking_metrics(is_error, s)["auprc"] for name, s in rankings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", nargs="+", default=["aggre", "worse"], choices=["aggre", "worse", "random1"])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", default=None, help="JSON output path.")
    args = parser.parse_args()
    require_cifar10n()

    report = {"args": vars(args), "label_sets": {}}
    for column in args.labels:
        images, clean = noisy_subset(args.n, args.seed, column)
        store = RunStore(default_cache_dir() / "bench" / f"robust-loss-{column}-n{args.n}-seed{args.seed}-e{args.epochs}")
        pixels = None
        entry = {}
        for loss in args.losses:
            cached = store.root / f"{loss}.npz"
            if not cached.exists():
                if pixels is None:
                    kept, pixels, _ = prepare_images(images, CurateConfig(image_size=32), store)
                    if len(kept) != len(images):
                        sys.exit(f"{len(images) - len(kept)} images could not be read; see {store.root}.")
                print(f"\n{column}: training two networks with the {loss} loss", flush=True)
                np.savez(cached, **train_population(pixels, images.labels, len(images.classes), loss, args))
            entry[loss] = score(dict(np.load(cached)), images.labels, clean)
        if "ce" in entry:
            anchor = entry["ce"]["auprc"]["held-out (anchors' input)"]
            for result in entry.values():
                own = result["auprc"]
                result["curate_vs_same_networks_held_out"] = own["curate: mean of both"] / own["held-out (anchors' input)"]
                result["curate_vs_cross_entropy_held_out"] = own["curate: mean of both"] / anchor
        report["label_sets"][column] = entry
        table = pd.DataFrame({loss: {"clean accuracy (held-out)": r["held_out_clean_accuracy"], **r["auprc"],
                                     **{k: v for k, v in r.items() if k.startswith("curate_vs")}}
                              for loss, r in entry.items()}).T
        print(f"\n{column}: {100 * (images.labels != clean).mean():.1f}% of labels wrong; AUPRC by training loss")
        print(table.round(3).to_string())
    write_report(args.out, report)


if __name__ == "__main__":
    main()
