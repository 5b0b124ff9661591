"""Random-label probes injected into training: the relabelling, and `curate run --label-probes` end to end."""

import json

import numpy as np
import pandas as pd
import pytest

from curate.population.jobs import label_probes
from helpers import PRUNE_ONLY, invoke


def test_label_probes_relabel_a_seeded_share_and_leave_the_given_labels_alone():
    labels = np.tile(np.arange(10), 100)
    given = labels.copy()
    trained, rows = label_probes(labels, 10, 0.05, seed=3)
    assert len(rows) == 50 and np.all(np.diff(rows) > 0)
    assert np.all(trained[rows] != labels[rows])  # always another class
    assert np.array_equal(np.delete(trained, rows), np.delete(labels, rows))
    assert np.array_equal(labels, given)
    again, rows_again = label_probes(labels, 10, 0.05, seed=3)
    assert np.array_equal(again, trained) and np.array_equal(rows_again, rows)
    assert not np.array_equal(label_probes(labels, 10, 0.05, seed=4)[1], rows)
    unchanged, none = label_probes(labels, 10, 0.0, seed=3)
    assert len(none) == 0 and np.array_equal(unchanged, labels)


def test_run_with_label_probes_counts_from_them_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = ["run", "digits", "--no-fiftyone", "--run-dir", str(run_dir), *PRUNE_ONLY, "--label-probes", "0.05"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    counts = manifest["label_noise_count"]
    assert set(counts) == {"confident_learning", "label_probes", "probes"}
    assert manifest["config"]["label_probes"] == 0.05

    probs = np.load(run_dir / "probs.npz")
    probe_labels = probs["label_probe_labels"]  # (members x (folds - 1), images)
    assert probe_labels.shape == (2, 1797)
    # 5% of each network's ~898 training images, two networks per in-sample slot.
    assert np.all(np.abs((probe_labels >= 0).sum(axis=1) - 90) <= 2)
    assert counts["probes"] == int((probe_labels >= 0).sum())
    samples = pd.read_parquet(run_dir / "samples.parquet")
    is_probe = probe_labels >= 0
    given = pd.Categorical(samples["label"], categories=[str(i) for i in range(10)]).codes
    slot, image = np.nonzero(is_probe)
    assert np.all(probe_labels[slot, image] != given[image])
    # The memorisation check counts the networks' fit of the real labels only, never of a probe's wrong one.
    plain_views = (probs["dense_in"] + probs["compressed_in"].sum(axis=0)) / (1 + len(probs["compressed_in"]))
    fits = plain_views.argmax(axis=2) == given[None, :]
    assert manifest["in_sample_view"]["fitted"] == pytest.approx(fits[~is_probe].mean())
    assert manifest["in_sample_view"]["fitted"] != pytest.approx(fits.mean())
    wrong = samples["label_wrong_probability"]
    assert wrong.dropna().between(0, 1).all() and wrong.notna().mean() > 0.99
    flagged = samples[samples["label_noise"]]
    assert 0 < len(flagged) <= counts["label_probes"]  # those with P >= 0.5, at most the count
    # Samples that were probes in every network that trained on them have no estimate to quote.
    quoted = flagged["reason"].str.contains(r"P\(label wrong\) ~ \d\.\d\d")
    assert quoted.equals(flagged["label_wrong_probability"].notna()) and quoted.mean() > 0.99

    # Re-running trains nothing: every job is resumed from the run directory.
    job_times = {p.name: p.stat().st_mtime_ns for p in (run_dir / "jobs").glob("*.npz")}
    assert invoke(*args).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "jobs").glob("*.npz")} == job_times

    # Without probes: confident learning's count is reported, and the probability is the noise model's.
    plain = tmp_path / "plain"
    assert invoke("run", "digits", "--no-fiftyone", "--run-dir", str(plain), *PRUNE_ONLY).exit_code == 0
    assert set(json.loads((plain / "manifest.json").read_text())["label_noise_count"]) == {"confident_learning"}
    plain_p = pd.read_parquet(plain / "samples.parquet")["label_wrong_probability"]
    assert plain_p.notna().all() and not np.allclose(plain_p, wrong.fillna(0))


def test_label_probes_out_of_range_is_named(tmp_path):
    result = invoke("run", "digits", "--no-fiftyone", "--run-dir", str(tmp_path / "r"), *PRUNE_ONLY,
                    "--label-probes", "0.5")
    assert result.exit_code == 2
    assert "--label-probes" in result.output and "0.5" in result.output
