#!/usr/bin/env python
"""Benchmark: could random-label probes choose how much curate's in-sample view should weigh?

Reads populations that ``bench_flags.py --label-probes`` trained (no training here). For each
weight w of the in-sample view against the held-out one (curate uses 0.5), prints the AUPRC of
``1 - ((1 - w) p_held-out + w p_in-sample)(label)`` against the human-label errors, and how well the
same weighting tells the random-label probes from real images (AUROC over every network and image it
trained on), plus how far the networks memorised the probes: the mean in-sample and held-out
probability of a probe's wrong label.

    python scripts/bench_flags.py --labels aggre worse --label-probes 0.05 --population-only
    python scripts/bench_in_sample_weight.py --labels aggre worse --label-probes 0.05 --out out/bench_in_sample_weight.json

Takes bench_flags' population options (``--epochs``, ``--n``, ...) to find the same run directories.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


from bench_flags import argument_parser, noisy_subset, population_config  # noqa: E402
from bench_pies import require_cifar10n, write_report  # noqa: E402
from curate.science.flags import in_sample_mean, in_sample_views, population_mean  # noqa: E402
from curate.data.sources import default_cache_dir  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def weigh(held_out: np.ndarray, in_sample: np.ndarray, w: float) -> np.ndarray:
    return 1 - ((1 - w) * held_out + w * in_sample)


def in_sample_weights(labels: np.ndarray, is_error: np.ndarray, held_out: np.ndarray, views: np.ndarray,
                      probe_labels: np.ndarray) -> dict:
    """Per weight: AUPRC on the real errors, AUROC of probes against real (network, image) pairs."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    real = probe_labels < 0
    in_sample = in_sample_mean(views, real, held_out)
    rows = np.arange(len(labels))
    probe_slot, probe_image = np.nonzero(~real)
    real_slot, real_image = np.nonzero(real)
    wrong = probe_labels[probe_slot, probe_image]
    table = {}
    for w in WEIGHTS:
        probe_score = weigh(held_out[probe_image, wrong], views[probe_slot, probe_image, wrong], w)
        real_score = weigh(held_out[real_image, labels[real_image]], views[real_slot, real_image, labels[real_image]], w)
        table[w] = {
            "auprc_human_errors": float(average_precision_score(is_error, weigh(held_out, in_sample, w)[rows, labels])),
            "auroc_probes_vs_real": float(roc_auc_score(np.r_[np.ones(len(probe_score)), np.zeros(len(real_score))],
                                                        np.r_[probe_score, real_score])),
        }
    return {"weights": table,
            "probe_label_p_in_sample": float(views[probe_slot, probe_image, wrong].mean()),
            "probe_label_p_held_out": float(held_out[probe_image, wrong].mean())}


def main() -> None:
    args = argument_parser(__doc__).parse_args()
    require_cifar10n()
    if not args.label_probes:
        sys.exit("Give --label-probes (e.g. 0.05): the weights are judged against the probes.")
    config = population_config(args)
    report = {"config": config.to_dict(), "label_sets": {}}
    for column in args.labels:
        images, clean = noisy_subset(args.n, args.seed, column)
        run_dir = Path(args.run_root or default_cache_dir() / "bench") / f"flags-{column}-{config.fingerprint(images)}"
        if not (run_dir / "probs.npz").exists():
            sys.exit(f"No population at {run_dir}; train it first with bench_flags.py and the same options.")
        with np.load(run_dir / "probs.npz") as probs:
            pruned = slice(0, len(config.sparsities))  # the flags pool the pruned copies, not quantized ones
            held_out = population_mean(probs["dense"], probs["compressed"][pruned])
            views = in_sample_views(probs["dense_in"], probs["compressed_in"][pruned])
            entry = in_sample_weights(images.labels, images.labels != clean, held_out, views,
                                      probs["label_probe_labels"])
        report["label_sets"][column] = entry
        print(f"\n{column}: in-sample weight w (curate: 0.5); probes' wrong label: mean p in-sample "
              f"{entry['probe_label_p_in_sample']:.3f}, held-out {entry['probe_label_p_held_out']:.3f}")
        print(pd.DataFrame(entry["weights"]).T.round(3).to_string())
    write_report(args.out, report)


if __name__ == "__main__":
    main()
