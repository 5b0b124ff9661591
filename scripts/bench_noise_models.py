#!/usr/bin/env python
"""Benchmark (tried, not adopted): can a noise model in which annotators confuse look-alike classes
calibrate P(label wrong) on human noise without a label audit? (issue 29)

curate's noise model (:mod:`curate.science.noise_model`) explains a wrong label as a *slip*: any other
class alike. People mislabel an image as a class it resembles (a cat as a dog), and under slips alone such
a label is a coincidence, so the model reads it as the population's doubt: on CIFAR-10N ``aggre`` its
probabilities run low (ECE 0.069). The model tried here adds *confusions*: with share ``w_confusion`` the
annotator names another class ``l`` as often as the image resembles it, ``r_l / (1 - r_k)`` (the belief
``r`` renormalised over the classes other than the true ``k``), beside slips (``w_slip``) and right labels
(``w_right``). The label's probability is a mixture of three fixed densities, so EM finds the weights at
each temperature; the temperature is searched as the product does.

``synthetic`` draws beliefs from a Dirichlet, true classes from the beliefs and wrong labels either
uniformly (slips) or from the belief over the other classes (confusions), and fits slips only (curate's
``uniform``), the full matrix (``matrix``) and the confusion model, jointly with the temperature and at
the temperature the slips-only model fits. ``--runs LABELS=RUN_DIR`` does the same on populations that
``scripts/bench_flags.py --population-only`` stored for CIFAR-10N label sets.

    python scripts/bench_noise_models.py synthetic --out out/bench_noise_models_synthetic.json
    python scripts/bench_noise_models.py cifar10n --runs aggre=RUNS/flags-aggre-... --out out/bench_noise_models_cifar10n.json

Prints one row per case and fit; writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pies import cifar10n_subset, require_cifar10n, write_report  # noqa: E402
from curate.science.flags import population_mean  # noqa: E402
from curate.science.noise_model import (best_temperature, fit_noise_model, normalised_log_probs,  # noqa: E402
                                        reliability_table, tempered)


def confusion_densities(labels: np.ndarray, belief: np.ndarray) -> np.ndarray:
    """``(N, 3)``: each given label's probability if it is right, a confusion or a slip, before the weights."""
    n, c = belief.shape
    rows = np.arange(n)
    agree = belief[rows, labels]
    odds = belief / np.maximum(1.0 - belief, 1e-12)
    contested = agree * (odds.sum(axis=1) - odds[rows, labels])  # sum_{k != y} r_k r_y / (1 - r_k)
    return np.stack([agree, contested, (1.0 - agree) / (c - 1)], axis=1)


def fit_confusion_weights(labels: np.ndarray, belief: np.ndarray, iterations: int = 300) -> tuple[np.ndarray, float]:
    """EM for the weights (right, confusion, slip); concave, so the global maximum. Also the mean log-likelihood."""
    densities = confusion_densities(labels, belief)
    weights = np.array([0.98, 0.01, 0.01])
    for _ in range(iterations):
        joint = densities * weights
        updated = (joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-300)).mean(axis=0)
        if np.abs(updated - weights).max() < 1e-8:
            weights = updated
            break
        weights = updated
    return weights, float(np.log(np.maximum(densities @ weights, 1e-300)).mean())


def confusion_p_wrong(labels: np.ndarray, belief: np.ndarray, weights: np.ndarray) -> np.ndarray:
    joint = confusion_densities(labels, belief) * weights
    return 1.0 - joint[:, 0] / np.maximum(joint.sum(axis=1), 1e-300)


def fit_confusions(labels: np.ndarray, probs: np.ndarray, temperature: float | None = None) -> dict:
    """The confusion model with the temperature searched (golden section on log T in [0.1, 10], as the
    product's) or fixed."""
    log_probs = normalised_log_probs(probs)
    if temperature is None:
        temperature = best_temperature(lambda t: fit_confusion_weights(labels, tempered(log_probs, t))[1])
    belief = tempered(log_probs, temperature)
    weights, log_likelihood = fit_confusion_weights(labels, belief)
    return {"p_wrong": confusion_p_wrong(labels, belief, weights), "temperature": temperature,
            "weights": weights.round(4).tolist(), "log_likelihood": log_likelihood}


def synthetic(n: int, alpha: float, noise: float, sharpen: float, seed: int, wrong_labels: str):
    """Beliefs ~ Dirichlet(alpha), truth ~ belief, a share ``noise`` of labels wrong (``slips``: uniform over the
    other classes; ``confusions``: drawn from the belief over the other classes); the population reports
    ``belief ** sharpen`` (over-confident for sharpen > 1)."""
    rng = np.random.default_rng(seed)
    belief = rng.dirichlet(np.full(10, alpha), n)
    truth = (belief.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1).clip(0, 9)
    wrong = rng.random(n) < noise
    if wrong_labels == "slips":
        other = (truth + rng.integers(1, 10, n)) % 10
    else:
        towards = belief.copy()
        towards[np.arange(n), truth] = 0.0
        towards /= towards.sum(axis=1, keepdims=True)
        other = (towards.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1).clip(0, 9)
    labels = np.where(wrong, other, truth)
    probs = belief ** sharpen
    return labels, probs / probs.sum(axis=1, keepdims=True), wrong


def compare(labels: np.ndarray, probs: np.ndarray, wrong: np.ndarray, case: dict) -> list[dict]:
    rows = []
    fits = {kind: fit_noise_model(labels, probs, symmetric=kind == "uniform") for kind in ("uniform", "matrix")}
    for kind, model in fits.items():
        rows.append({**case, "model": kind, "temperature": model.temperature, "p_wrong": model.p_wrong})
    rows.append({**case, "model": "confusions", **fit_confusions(labels, probs)})
    rows.append({**case, "model": "confusions at uniform's T",
                 **fit_confusions(labels, probs, temperature=fits["uniform"].temperature)})
    for row in rows:
        p_wrong = row.pop("p_wrong")
        flagged = p_wrong >= 0.5
        row.update(true_wrong=int(wrong.sum()), expected_wrong=float(p_wrong.sum()),
                   ece=reliability_table(p_wrong, wrong)[1], flagged=int(flagged.sum()),
                   flagged_wrong=int((flagged & wrong).sum()))
    return rows


SYNTHETIC_CASES = [  # (Dirichlet alpha: 0.1 a confident population, 1.0 a weak one; noise share; sharpen)
    (0.1, 0.2, 1.0), (0.1, 0.2, 2.0), (0.3, 0.1, 1.0), (1.0, 0.1, 1.0), (0.3, 0.0, 1.0), (1.0, 0.0, 1.0)]


def run_synthetic(args) -> list[dict]:
    rows = []
    for wrong_labels in ("slips", "confusions"):
        for alpha, noise, sharpen in SYNTHETIC_CASES:
            if noise == 0.0 and wrong_labels == "confusions":
                continue  # no wrong labels: the same case as under slips
            labels, probs, wrong = synthetic(args.n, alpha, noise, sharpen, args.seed, wrong_labels)
            case = {"wrong labels": wrong_labels if noise else "none", "alpha": alpha, "noise": noise,
                    "sharpen": sharpen}
            rows += compare(labels, probs, wrong, case)
    return rows


def run_cifar10n(args) -> list[dict]:
    require_cifar10n()
    rows = []
    for spec in args.runs:
        column, run_dir = spec.split("=", 1)
        _, table = cifar10n_subset(args.n, args.seed)
        index = {c: i for i, c in enumerate(sorted(table["clean"].unique()))}
        labels = np.array([index[c] for c in table[column]])
        wrong = labels != np.array([index[c] for c in table["clean"]])
        with np.load(Path(run_dir) / "probs.npz") as stored:
            pruned = [i for i, level in enumerate(stored["levels"]) if str(level).startswith("prune")]
            probs = population_mean(stored["dense"], stored["compressed"][pruned])
        rows += compare(labels, probs, wrong, {"labels": column,
                                              "held-out accuracy": float((probs.argmax(axis=1) == labels).mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["synthetic", "cifar10n"])
    parser.add_argument("--runs", nargs="+", default=[], metavar="LABELS=RUN_DIR")
    parser.add_argument("--n", type=int, default=None, help="synthetic: images a case [4000]; cifar10n: the subset [10000].")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON output path.")
    args = parser.parse_args()
    started = time.time()
    if args.what == "synthetic":
        args.n = args.n or 4000
        rows = run_synthetic(args)
    else:
        args.n = args.n or 10000
        rows = run_cifar10n(args)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{time.time() - started:.0f} s")
    if args.out:
        write_report(args.out, {"what": args.what, "n": args.n, "seed": args.seed, "rows": rows})


if __name__ == "__main__":
    main()
