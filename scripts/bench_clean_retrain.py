#!/usr/bin/env python
"""Experiment: a second round of networks trained without the first round's flags, same budget.

Networks trained on noisy labels learn the noise, and their held-out predictions carry it: at 40%
wrong labels (``worse``) the held-out accuracy of bench_flags' networks is under 50%. Cross-validated
cleaning (INCV, Chen et al. ICML 2019; confident learning's prune-and-retrain, Northcutt et al. 2021)
trains a second set of networks on the images the first set does not suspect, whose held-out
predictions then carry less of the noise. This script tests that at bench_flags' training budget
(K = 4 members x F = 2 folds, same architecture and epochs), split in two rounds:

- round 1: members 0 and 1 of bench_flags' cached population (a population's members do not depend
  on how many there are), with their pruned copies and forgetting copies; curate's rule on them
  (pooled held-out, in-sample view picked by the memorisation check) flags confident learning's count;
- round 2: members 2 and 3, fold splits and seeds as in that population, trained dense from scratch on
  their training fold less round 1's flagged images; each predicts every image it did not train on.

Rule, written before any round-2 network was trained (primary row):
  score = 1 - (p(label | round-2 held-out mean) + p(label | round-1 in-sample view)) / 2,
  flagged = the top of it, as many as confident learning counts on the round-2 held-out mean.
Other rows are ablations. The anchors are bench_flags' own, from the full one-round population
(same number of networks and epochs), read from its JSON.

    python scripts/bench_clean_retrain.py --labels worse --epochs 30 --anchors out/bench_flags_e30_worse.json \
        --out out/bench_clean_retrain_e30_worse.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


from bench_flags import (argument_parser, noisy_subset, population_config, ranking_metrics,  # noqa: E402
                         set_metrics)
from bench_pies import require_cifar10n, write_report  # noqa: E402
from curate.science.flags import (find_label_noise, highest, in_sample_mean, in_sample_views, memorisation,  # noqa: E402
                          population_mean)
from curate.population.pipeline import run_curate  # noqa: E402
from curate.data.sources import default_cache_dir  # noqa: E402

ROUND_1 = (0, 1)
ROUND_2 = (2, 3)


def round_two(result, config, flagged: np.ndarray, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Round-2 networks' mean prediction on the images each did not train on ``(N, C)``, and on those
    it did ``(N, C)`` (NaN where none did). Cached per job in ``cache``."""
    import torch

    from curate.science.crossfit import stratified_folds
    from curate.population.models import build_model
    from curate.population.pipeline import RowView
    from curate.population.train import Normalizer, configure_threads, predict_probs, resolve_device, train_dense

    configure_threads()
    labels = result.images.labels
    n, n_classes = len(labels), len(result.images.classes)
    size = config.image_size
    pixels = np.fromfile(result.store.image_cache(size), dtype=np.uint8).reshape(n, 3, size, size)
    device = resolve_device(config.device)
    mean, std = Normalizer.channel_stats(pixels)
    normalize = Normalizer(mean, std, device)
    held_sum, held_count = np.zeros((n, n_classes)), np.zeros(n)
    in_sum, in_count = np.zeros((n, n_classes)), np.zeros(n)
    cache.mkdir(parents=True, exist_ok=True)
    for member in ROUND_2:
        folds = stratified_folds(labels, config.folds, config.member_seed(member))
        for fold in range(config.folds):
            trained = (folds != fold) & ~flagged
            path = cache / f"member{member:02d}-fold{fold:02d}.npz"
            if path.exists():
                probs = np.load(path)["probs"]
            else:
                seed = config.job_seed(member, fold)
                torch.manual_seed(seed)
                started = time.perf_counter()
                model = build_model(config.model, n_classes).to(device).to(memory_format=torch.channels_last)
                idx = np.flatnonzero(trained)
                train_dense(model, RowView(pixels, idx), labels[idx], normalize, config.train, seed)
                probs = predict_probs(model, pixels, normalize)
                np.savez(path, probs=probs, trained=trained, seconds=time.perf_counter() - started)
                print(f"  round 2 member {member} fold {fold}: {trained.sum()} images, "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
            held_sum[~trained] += probs[~trained]
            held_count[~trained] += 1
            in_sum[trained] += probs[trained]
            in_count[trained] += 1
    held = held_sum / held_count[:, None]
    with np.errstate(invalid="ignore"):
        return held, in_sum / in_count[:, None]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--anchors", nargs="+", required=True, help="bench_flags JSON(s) with the anchors' rows.")
    args = parser.parse_args()
    require_cifar10n()
    config = population_config(args)
    anchors = {}
    for path in args.anchors:
        anchors.update(json.loads(Path(path).read_text())["label_sets"])
    report = {"config": config.to_dict(), "rule": "see the module docstring", "label_sets": {}}
    for column in args.labels:
        images, clean = noisy_subset(args.n, args.seed, column)
        run_dir = Path(args.run_root or default_cache_dir() / "bench") / f"flags-{column}-{config.fingerprint(images)}"
        result = run_curate(images, config, run_dir)  # loads the cached population
        labels, pop = result.images.labels, result.population
        is_error = labels != clean
        rows = np.arange(len(labels))
        r1 = list(ROUND_1)
        pruned = slice(0, len(config.sparsities))
        held_1 = population_mean(pop.dense[r1], pop.compressed[pruned][:, r1])
        # F = 2: in-sample slot = member.
        as_trained = in_sample_views(pop.dense_in[r1], pop.compressed_in[pruned][:, r1])
        forgotten = in_sample_views(pop.forgotten_in[r1], pop.forgotten_compressed_in[:, r1])
        check = memorisation(labels, held_1, as_trained)
        in_1 = in_sample_mean(forgotten if check.memorised else as_trained, None, held_1)
        noise_1 = find_label_noise(labels, held_1, in_1)
        flagged_1 = noise_1.is_noise
        print(f"\n{column}: round 1 (members {ROUND_1}) flags {flagged_1.sum()} images, "
              f"{100 * is_error[flagged_1].mean():.1f}% truly wrong; memorised: {check.memorised}", flush=True)

        started = time.time()
        held_2, in_2 = round_two(result, config, flagged_1, run_dir / "round2")
        seconds_2 = time.time() - started
        noise_2 = find_label_noise(labels, held_2)
        primary = 1 - 0.5 * (held_2[rows, labels] + in_1[rows, labels])
        primary_flagged = highest(primary, noise_2.n_estimated)
        held_all = 0.5 * (held_1 + held_2)
        rows_out = {
            "rule: round-2 held-out + round-1 in-sample": (primary, primary_flagged),
            "round 1 alone (curate on members 0, 1)": (noise_1.score, flagged_1),
            "round-2 held-out alone": (noise_2.score, noise_2.is_noise),
            "round-1 + round-2 held-out, + round-1 in-sample": (
                1 - 0.5 * (held_all[rows, labels] + in_1[rows, labels]), None),
            "round-2 held-out + round-2 in-sample where trained, else round-1 in-sample": (
                1 - 0.5 * (held_2[rows, labels] + np.where(np.isfinite(in_2[:, 0]), in_2[rows, labels],
                                                             in_1[rows, labels])), None),
        }
        table = {}
        for name, (score, flagged) in rows_out.items():
            table[name] = ranking_metrics(is_error, score)
            if flagged is not None:
                table[name].update(set_metrics(is_error, flagged))
        anchor_rows = {k: v for k, v in anchors[column]["tools"].items() if k != "curate"}
        best = max(v["auprc"] for v in anchor_rows.values())
        best_f1 = max(v["f1"] for v in anchor_rows.values())
        entry = {"round_1_flagged": int(flagged_1.sum()), "round_1_precision": float(is_error[flagged_1].mean()),
                 "memorised": check.memorised, "round_2_seconds": round(seconds_2, 1),
                 "round_2_heldout_accuracy_vs_clean": float((held_2.argmax(1) == clean).mean()),
                 "round_1_heldout_accuracy_vs_clean": float((held_1.argmax(1) == clean).mean()),
                 "rows": table, "anchors": anchor_rows,
                 "goal": {"auprc_ratio": table["rule: round-2 held-out + round-1 in-sample"]["auprc"] / best,
                          "f1_beats_every_anchor": table["rule: round-2 held-out + round-1 in-sample"]["f1"] > best_f1}}
        report["label_sets"][column] = entry
        print(pd.DataFrame({**table, **{f"anchor: {k}": v for k, v in anchor_rows.items()}}).T.round(3).to_string())
        print(f"held-out accuracy against the clean labels: round 1 {entry['round_1_heldout_accuracy_vs_clean']:.3f}, "
              f"round 2 {entry['round_2_heldout_accuracy_vs_clean']:.3f}; round 2 trained in {seconds_2:.0f} s")
        print(f"Goal: AUPRC ratio {entry['goal']['auprc_ratio']:.3f} (target >= 1.15); "
              f"F1 beats every anchor: {entry['goal']['f1_beats_every_anchor']}")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
