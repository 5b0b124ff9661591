"""Shared by the tests: the tiny population settings and a CLI runner."""

from click.testing import CliRunner

from curate.frontends.cli import main

# Small and fast: enough to exercise every stage, not to be accurate.
TINY = ["--members", "2", "--folds", "2", "--epochs", "2", "--finetune-epochs", "1",
        "--sparsities", "0.5,0.9", "--image-size", "8", "-q"]
# For tests of something else: unstructured pruning only, no other compression kinds or robustness.
PRUNE_ONLY = [*TINY, "--quantize", "none", "--filter-prune", "none", "--distill", "none", "--robustness-images", "0"]


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
