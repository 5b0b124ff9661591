"""Shared by the tests: the tiny population settings, a CLI runner and a curate subprocess."""

import os
import signal
import subprocess
import sys
from types import SimpleNamespace

from click.testing import CliRunner

from curate.frontends.cli import main

# Small and fast: enough to exercise every stage, not to be accurate.
TINY = ["--members", "2", "--folds", "2", "--epochs", "2", "--finetune-epochs", "1",
        "--sparsities", "0.5,0.9", "--image-size", "8", "-q"]
# For tests of something else: unstructured pruning only, no other compression kinds or robustness.
PRUNE_ONLY = [*TINY, "--quantize", "none", "--filter-prune", "none", "--distill", "none", "--robustness-images", "0"]


# The fault-injection and Ray tests' runs on 120 digits (conftest.py's `small_source`), in subprocesses.
SMALL = ["--members", "2", "--folds", "2", "--epochs", "1", "--finetune-epochs", "1", "--sparsities", "0.5,0.9",
         "--image-size", "8", "--quantize", "fp16", "--robustness-images", "0", "--batch-size", "32", "-q"]
_FAULT_VARIABLES = ("CURATE_KILL_AT", "CURATE_KILL_ONCE", "RAY_ADDRESS")


def curate_process(*args, kill_at=None, **env_extra):
    """``python -m curate ARGS`` with one thread per network (``kill_at``: the fault point at which it kills
    itself), in a session of its own that is killed afterwards: Ray's agents outlive a killed driver."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_extra}
    for name in _FAULT_VARIABLES:
        if name not in env_extra:
            env.pop(name, None)
    if kill_at:
        env["CURATE_KILL_AT"] = kill_at
    process = subprocess.Popen([sys.executable, "-m", "curate", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=600)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return SimpleNamespace(returncode=process.returncode, stdout=out, stderr=err)


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def flag_label_noise(dataset, n: int, run_key: str = "curate") -> list[str]:
    """Mark the first ``n`` samples (by file path) as suspected label errors, as a run would have, with the
    next class as the suggestion; returns their ids. For review and export tests, whose tiny population is
    rightly too weak to flag any label (the planted demo test covers the flags themselves)."""
    import fiftyone as fo

    view = dataset.sort_by("filepath").limit(n)
    ids, labels = view.values("id"), view.values("ground_truth.label")
    classes = sorted(set(dataset.distinct("ground_truth.label")))
    suggested = [fo.Classification(label=classes[(classes.index(label) + 1) % len(classes)]) for label in labels]
    dataset.set_values(f"{run_key}_label_noise", dict(zip(ids, [True] * n)), key_field="id")
    dataset.set_values(f"{run_key}_suggested", dict(zip(ids, suggested)), key_field="id")
    # A flagged PIE's category is label_noise, as the run gives it (label_noise comes first).
    categories = view.values(f"{run_key}_category")
    dataset.set_values(f"{run_key}_category", dict(zip(ids, ["label_noise" if c else None for c in categories])),
                       key_field="id")
    reasons = [f"3 of 4 models say {s.label} (mean p 0.80); labelled {label} (mean p 0.10); P(label wrong) ~ 0.90"
               for s, label in zip(suggested, labels)]
    dataset.set_values(f"{run_key}_reason", dict(zip(ids, reasons)), key_field="id")
    dataset.select(ids).tag_samples("label_noise" if run_key == "curate" else f"{run_key}:label_noise")
    return ids
