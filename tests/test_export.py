"""Push, simulated review in FiftyOne, export in every format, reload: counts and labels per policy."""

import json

import pandas as pd
import pytest

from helpers import TINY, curate_process, flag_label_noise, invoke


@pytest.fixture(scope="module")
def reviewed(fo, digits_run):
    """A fresh dataset from the session's digits run (same options, so no retraining), with review tags applied."""
    _, run_dir, _ = digits_run
    result = invoke("demo", "--clean", "--dataset", "test-review", "--run-dir", str(run_dir), *TINY)
    assert result.exit_code == 0, result.output
    dataset = fo.load_dataset("test-review")
    flag_label_noise(dataset, 6)
    noisy = dataset.match_tags("label_noise").sort_by("filepath")
    ids = noisy.values("id")
    plan = {"confirmed": ids[0], "relabel:suggested": ids[1], "rejected": ids[2]}
    for tag, sid in plan.items():
        dataset.select(sid).tag_samples(tag)
    clean = dataset.match(~fo.ViewField("curate_label_noise")).sort_by("filepath")
    remove_id, edit_id = clean.values("id")[:2]
    dataset.select(remove_id).tag_samples("remove")
    edited = dataset[edit_id]
    old_label = edited.ground_truth.label
    new_label = "0" if old_label != "0" else "1"
    edited.ground_truth.label = new_label  # as the App's label editor does
    edited.save()
    # Splits: the first 300 samples are test, the rest train.
    all_ids = dataset.sort_by("filepath").values("id")
    dataset.select(all_ids[:300]).tag_samples("test")
    dataset.select(all_ids[300:]).tag_samples("train")
    suggested = dataset[ids[1]].curate_suggested.label
    return dataset, {"confirmed": ids[0], "relabelled": ids[1], "rejected": ids[2], "removed": remove_id,
                     "edited": edit_id, "edited_to": new_label, "suggested": suggested}


def test_status_counts_review_states(reviewed):
    dataset, ids = reviewed
    result = invoke("status", "test-review")
    assert result.exit_code == 0, result.output
    assert "label_noise" in result.output and "confirmed" in result.output
    assert "An export now would keep 1795 samples (2 relabelled) and leave out 2" in result.output
    assert "tagged remove by a reviewer" in result.output
    # Status repeats the run's warnings (the tiny test population is too weak to trust).
    for warning in dataset.info["curate"]["curate"].get("warnings", []):
        assert warning[:60] in result.output.replace("\n", " ")


def test_label_audit_counts_what_the_reviewer_found(digits_run):
    from curate.fiftyone.export import review_plan
    from curate.science.review import label_audit_review

    from curate.frontends.summary import counts_disagree

    dataset, run_dir, output = digits_run
    assert "Label audit:" in output and "label-audit view" in output
    # The summary says when the noise model's and confident learning's counts disagree, and only then.
    samples = pd.read_parquet(run_dir / "samples.parquet")
    confident = json.loads((run_dir / "manifest.json").read_text())["label_noise_count"]["confident_learning"]
    disagree = counts_disagree(float(samples["label_wrong_probability"].sum()), confident)
    assert ("confident learning counts" in output) == disagree
    # The session's dataset, its tags restored at the end (a second dataset would cost a FiftyOne write).
    view = dataset.load_saved_view("label-audit")
    table = pd.read_parquet(run_dir / "samples.parquet")
    assert len(view) == int(table["label_audit"].sum()) >= 20
    by_path = table.set_index("filepath")
    assert all(by_path.loc[path, "audit_stratum"] == stratum
               for path, stratum in zip(*view.values(["filepath", "curate_label_audit"])))
    assert "Label audit: none reviewed yet" in invoke("status", "test-digits").output
    # The reviewer finds two audit images wrongly labelled (one tagged, one relabelled) and the rest right.
    ids = view.sort_by("filepath").values("id")
    relabel = "relabel:3" if dataset[ids[1]].ground_truth.label != "3" else "relabel:4"
    added = ["label:wrong", relabel, "label:right"]
    try:
        dataset.select(ids[0]).tag_samples("label:wrong")
        dataset.select(ids[1]).tag_samples(relabel)
        dataset.select(ids[2:]).tag_samples("label:right")
        status = invoke("status", "test-digits").output
        assert f"Label audit: {len(ids)} reviewed, 2 of them wrongly labelled. The dataset holds about" in status
        estimate = label_audit_review(review_plan(dataset))
        assert estimate.complete and estimate.wrong_labels.low >= 2
        assert f"{estimate.wrong_labels.estimate:,.0f} wrong labels" in status
        plan = review_plan(dataset).set_index("sample_id")
        assert plan.loc[ids[0], "action"] == "drop" and plan.loc[ids[0], "reason"] == "label wrong (label audit)"
        assert plan.loc[ids[1], "action"] == "relabel"
        assert (plan.loc[ids[2:], "action"] == "keep").all()
    finally:
        dataset.select(ids).untag_samples(added)


def _exported_labels(fo, out, fmt):
    """File name -> (label, split) of every exported image (digits file names are unique)."""
    rows = {}
    if fmt == "csv":
        table = pd.read_csv(out / "manifest.csv", dtype=str)
        for path, label, split in zip(table["filepath"], table["label"], table["split"]):
            rows[path.split("/")[-1]] = (label, split)
    elif fmt == "folder":
        for split_dir in sorted(p for p in out.iterdir() if p.is_dir()):
            loaded = fo.Dataset.from_dir(dataset_dir=str(split_dir),
                                         dataset_type=fo.types.ImageClassificationDirectoryTree)
            for path, label in zip(*loaded.values(["filepath", "ground_truth.label"])):
                rows[path.split("/")[-1]] = (label, split_dir.name)
            loaded.delete()
    else:
        loaded = fo.Dataset.from_dir(dataset_dir=str(out), dataset_type=fo.types.FiftyOneDataset)
        for path, label, tags in zip(*loaded.values(["filepath", "ground_truth.label", "tags"])):
            rows[path.split("/")[-1]] = (label, tags[0] if tags else None)
        loaded.delete()
    return rows


@pytest.mark.parametrize("fmt", ["folder", "csv", "fiftyone"])
def test_export_formats_reload_with_the_reviewed_labels(fo, reviewed, tmp_path, fmt, caplog):
    dataset, ids = reviewed
    before = dataset.count_sample_tags(), dataset.values("ground_truth.label")
    out = tmp_path / f"export-{fmt}"
    with caplog.at_level("WARNING"):
        result = invoke("export", "test-review", str(out), "--format", fmt)
    assert result.exit_code == 0, result.output
    # A new directory: FiftyOne has no reason to warn that the export "will be merged with existing files".
    assert not [r for r in caplog.records if "already exists" in r.getMessage()], caplog.text
    manifest = json.loads((out / "curate_export.json").read_text())
    counts = manifest["counts"]
    assert counts["exported"] == 1795 and counts["dropped"] == 2 and counts["relabelled"] == 2
    assert set(counts["per_split"]) == {"train", "test"} and sum(counts["per_split"].values()) == 1795
    changes = pd.read_csv(out / "changes.csv", dtype=str)
    assert sorted(changes["action"]) == ["drop", "drop", "relabel", "relabel"]

    rows = _exported_labels(fo, out, fmt)
    assert len(rows) == 1795
    name = {sid: path.split("/")[-1] for sid, path in zip(*dataset.values(["id", "filepath"]))}
    assert name[ids["confirmed"]] not in rows and name[ids["removed"]] not in rows
    assert rows[name[ids["relabelled"]]][0] == ids["suggested"]
    assert rows[name[ids["edited"]]][0] == ids["edited_to"]
    rejected = dataset[ids["rejected"]]
    assert rows[name[ids["rejected"]]] == (rejected.ground_truth.label, "test" if "test" in rejected.tags else "train")
    # Every other sample keeps its label and split.
    untouched = [sid for sid in name if sid not in (ids["confirmed"], ids["removed"], ids["relabelled"], ids["edited"])]
    labels = dict(zip(dataset.values("id"), dataset.values("ground_truth.label")))
    assert all(rows[name[sid]][0] == labels[sid] for sid in untouched)
    # The dataset and its images are untouched.
    assert (dataset.count_sample_tags(), dataset.values("ground_truth.label")) == before


def test_export_refuses_to_overwrite_and_force_replaces(reviewed, tmp_path):
    out = tmp_path / "exists"
    assert invoke("export", "test-review", str(out), "--format", "csv").exit_code == 0
    (out / "marker").write_text("mine")
    refused = invoke("export", "test-review", str(out), "--format", "csv")
    assert refused.exit_code == 2 and "already exists" in refused.output and "--force" in refused.output
    assert (out / "marker").exists()
    # --force replaces curate's export, but not a file someone added to it (tests/test_safety.py has more).
    refused = invoke("export", "test-review", str(out), "--format", "csv", "--force")
    assert refused.exit_code == 2 and "marker" in refused.output and (out / "marker").read_text() == "mine"
    (out / "marker").unlink()
    (out / "manifest.csv").write_text("stale")
    forced = invoke("export", "test-review", str(out), "--format", "csv", "--force")
    assert forced.exit_code == 0 and (out / "manifest.csv").read_text() != "stale"
    assert not list(tmp_path.glob(".exists.*"))  # no partial or old directory left behind


def test_drop_unreviewed_spares_the_test_split(reviewed, tmp_path):
    dataset, _ = reviewed
    out = tmp_path / "strict"
    result = invoke("export", "test-review", str(out), "--format", "csv", "--drop-unreviewed", "label_noise")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "manifest.csv")
    unreviewed_noise = dataset.match_tags("label_noise").match_tags(
        ["confirmed", "rejected", "relabel:suggested"], bool=False)
    in_test = unreviewed_noise.match_tags("test")
    in_train = unreviewed_noise.match_tags("train")
    exported = set(table["filepath"])
    assert all(p in exported for p in in_test.values("filepath"))
    assert not any(p in exported for p in in_train.values("filepath"))


def test_stratified_splits_on_export(reviewed, tmp_path):
    out = tmp_path / "split"
    result = invoke("export", "test-review", str(out), "--format", "csv", "--splits", "0.8,0.1,0.1", "--seed", "3")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "manifest.csv")
    counts = table["split"].value_counts()
    assert abs(counts["train"] / len(table) - 0.8) < 0.01 and abs(counts["test"] / len(table) - 0.1) < 0.01


def test_new_splits_are_drawn_before_unreviewed_flags_are_dropped(reviewed, tmp_path):
    dataset, _ = reviewed
    out = tmp_path / "split-strict"
    result = invoke("export", "test-review", str(out), "--format", "csv", "--splits", "0.6,0.2,0.2", "--seed", "1",
                    "--drop-unreviewed", "label_noise")
    assert result.exit_code == 0, result.output
    kept = pd.read_csv(out / "manifest.csv")
    changes = pd.read_csv(out / "changes.csv")
    dropped = changes[changes["action"] == "drop"]
    # Every scored sample got a split, the dropped ones too, in the asked proportions.
    every = pd.concat([kept["split"], dropped["split"]])
    assert len(every) == len(dataset) and every.notna().all()
    assert abs((every == "train").mean() - 0.6) < 0.01 and abs((every == "test").mean() - 0.2) < 0.01
    # Unreviewed label noise is dropped from the new train split only; val and test keep theirs.
    unreviewed = dropped["reason"] == "unreviewed label_noise flag"
    assert unreviewed.any() and set(dropped.loc[unreviewed, "split"]) == {"train"}
    unreviewed_noise = set(dataset.match_tags("label_noise").match_tags(
        ["confirmed", "rejected", "relabel:suggested"], bool=False).values("filepath"))
    kept_in_eval = kept[kept["split"].isin(["val", "test"])]
    assert unreviewed_noise & set(kept_in_eval["filepath"])  # flagged images stay in the evaluation splits


def test_weights_file_and_sampler(reviewed, tmp_path):
    dataset, ids = reviewed
    out = tmp_path / "weights.csv"
    result = invoke("weights", "test-review", str(out), "--factor", "3")
    assert result.exit_code == 0, result.output
    weights = pd.read_csv(out, dtype={"label": str})
    path_of = dict(zip(dataset.values("id"), dataset.values("filepath")))
    by_path = weights.set_index("filepath")
    assert by_path.loc[path_of[ids["confirmed"]], "weight"] == 0
    assert by_path.loc[path_of[ids["removed"]], "weight"] == 0
    up = weights["weight"] == 3
    pies = set(dataset.match_tags("pie").values("filepath"))
    dropped = {path_of[ids["confirmed"]], path_of[ids["removed"]]}
    assert set(weights.loc[up, "filepath"]) == pies - dropped
    assert (weights.loc[up, "reason"].str.startswith("PIE, score ")).all()
    assert set(weights.loc[weights["weight"] == 1, "filepath"]) == set(path_of.values()) - pies - dropped
    assert weights["weight"].sum() == pytest.approx(len(weights) - 2 + 2 * up.sum())
    assert weights.loc[weights["filepath"] == path_of[ids["relabelled"]], "label"].item() == ids["suggested"]
    from curate import weighted_sampler

    sampler = weighted_sampler(out)
    assert len(sampler) == int((weights["weight"] > 0).sum())
    assert invoke("weights", "test-review", str(out)).exit_code == 2  # exists, no --force


def test_export_of_an_unknown_run_key_is_a_clear_error(reviewed, tmp_path):
    result = invoke("export", "test-review", str(tmp_path / "x"), "--run-key", "nope")
    assert result.exit_code == 2 and "has no curate run 'nope'" in result.output
    assert not (tmp_path / "x").exists()


def test_weighted_training_example_runs(reviewed, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    weights = tmp_path / "w.csv"
    assert invoke("weights", "test-review", str(weights)).exit_code == 0
    example = Path(__file__).resolve().parents[1] / "examples" / "train_weighted.py"
    out = subprocess.run([sys.executable, str(example), str(weights), "--epochs", "1", "--image-size", "16",
                          "--batch-size", "256"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "epoch 1: 1795 weighted draws" in out.stdout


def test_calibrate_writes_the_audited_probabilities_to_the_app_and_status_says_when_they_are_stale(fo, reviewed):
    """Last in this module: it rewrites the reasons and finally deletes the run."""
    import numpy as np

    from curate.fiftyone.export import review_plan
    from curate.science.review import audited_label_probabilities

    dataset, _ = reviewed
    refused = invoke("calibrate", "test-review")
    assert refused.exit_code == 2 and "No image of the 'label-audit' view is reviewed yet" in refused.output
    audit = dataset.load_saved_view("label-audit").sort_by("filepath").values("id")
    dataset.select(audit[0]).tag_samples("label:wrong")
    dataset.select(audit[1:-1]).tag_samples("label:right")
    status = invoke("status", "test-review").output
    assert "To write what the audit says into the App" in status and "curate calibrate test-review" in status

    # Killed after the audited field, before the reasons and views: status still asks for a calibration,
    # and the next one finishes the job as if nothing had happened.
    killed = curate_process("calibrate", "test-review", kill_at="calibrate")
    assert killed.returncode == -9 and dataset.reload() is None
    assert dataset.has_sample_field("curate_p_label_wrong_audited")
    assert "To write what the audit says into the App" in invoke("status", "test-review").output
    result = invoke("calibrate", "test-review")
    assert result.exit_code == 0, result.output
    assert f"calibrated by {len(audit) - 1} reviewed label-audit images (1 wrongly labelled)" in result.output
    expected = audited_label_probabilities(review_plan(dataset))
    plan_ids = review_plan(dataset)["sample_id"].tolist()
    written = dict(zip(*dataset.values(["id", "curate_p_label_wrong_audited"])))
    assert np.allclose([written[sid] for sid in plan_ids], expected, equal_nan=True)
    # The reviewed audit images carry their verdicts; the label-noise view sorts by the audited value.
    assert written[audit[0]] == 1.0 and written[audit[1]] == 0.0
    view = dataset.load_saved_view("label-noise")
    ordered = view.values("curate_p_label_wrong_audited")
    assert len(ordered) >= 6 and ordered == sorted(ordered, reverse=True)
    reasons = view.values("curate_reason")
    assert all(r.count("by the label audit") + r.count("the label audit found the label") == 1 for r in reasons)
    assert all(f"P(label wrong) ~ {p:.2f} by the label audit" in r for r, p in zip(reasons, ordered)
               if "the label audit found" not in r)
    review_group = next(g for g in dataset.app_config.sidebar_groups if g.name == "curate: review")
    assert "curate_p_label_wrong_audited" in review_group.paths
    assert "To write what the audit says" not in invoke("status", "test-review").output

    dataset.select(audit[-1]).tag_samples("label:right")
    stale = invoke("status", "test-review").output
    assert f"calibrated with {len(audit) - 1} audit reviews (1 wrong); {len(audit)} are decided now (1 wrong)" in stale
    again = invoke("calibrate", "test-review")
    assert again.exit_code == 0 and f"calibrated by {len(audit)} reviewed" in again.output
    assert all(r.count("by the label audit") + r.count("the label audit found the label") == 1
               for r in dataset.load_saved_view("label-noise").values("curate_reason"))
    # The audited field belongs to the run: deleting the run takes it along.
    assert invoke("runs", "test-review", "--delete", "curate").exit_code == 0
    assert not dataset.has_sample_field("curate_p_label_wrong_audited")
