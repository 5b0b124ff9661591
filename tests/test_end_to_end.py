"""Digits and folder sources end to end through the CLI into a real FiftyOne database."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate.science.quality import CHECKS
from helpers import PRUNE_ONLY, TINY, invoke


def snapshot(dataset, run_key="curate"):
    fields = sorted(f for f in dataset.get_field_schema() if f.startswith(run_key + "_"))
    return {
        "n": len(dataset),
        "fields": fields,
        "tags": dataset.count_sample_tags(),
        "views": sorted(dataset.list_saved_views()),
        "runs": sorted(dataset.list_runs()),
        "brain_runs": sorted(dataset.list_brain_runs()),
        "hardness": dataset.values("hardness") if dataset.has_sample_field("hardness") else None,
        "scores": dataset.values(f"{run_key}_pie_score"),
        "dense": dataset.values(f"{run_key}_dense.label"),
    }


def test_digits_demo_writes_fields_tags_views_and_run(fo, digits_run):
    dataset, run_dir, output = digits_run
    assert len(dataset) == 1797
    assert "Review in the App:" in output and "curate app test-digits --view pies" in output
    assert "curate report test-digits" in output
    # The tiny population is far too weak to trust (about 25% accurate) and the digits' labels are right:
    # it takes its disagreements for its own doubt, flags almost nothing, and says how far to trust that.
    assert "expected to hold about" in output
    assert dataset.count_sample_tags().get("label_noise", 0) <= 0.01 * len(dataset)
    assert dataset.info["curate"]["curate"]["warnings"] == json.loads((run_dir / "manifest.json").read_text())["warnings"]

    sample = dataset.first()
    dense = sample["curate_dense"]
    assert isinstance(dense, fo.Classification) and len(dense.logits) == 10
    assert 0.0 <= dense.confidence <= 1.0
    assert isinstance(sample["curate_prune90"], fo.Classification)

    table = pd.read_parquet(run_dir / "samples.parquet")
    n_pies = int(table["pie"].sum())
    assert dataset.count_sample_tags().get("pie", 0) == n_pies == dataset.match_tags("pie").count()
    assert dataset.count_values("curate_pie").get(True, 0) == n_pies
    # Fields agree with the run store, sample by sample.
    by_path = table.set_index("filepath")
    paths, scores = dataset.values(["filepath", "curate_pie_score"])
    np.testing.assert_allclose(scores, by_path.loc[paths, "pie_score"].to_numpy())

    quantized = ["fp16", "bf16", "int8", "int4", "dyn-int8"]
    # By default a resnet-small run also has a filter-pruned copy and a distilled student of every network.
    others = ["filter50", "distill50"]
    assert set(dataset.list_saved_views()) == {
        "pies", "pies-prune50", "pies-prune90", "pies-label_noise", "pies-corruption", "pies-multi_object",
        "pies-ambiguous", "pies-atypical", "label-noise", "corruption", "duplicates", "label-audit",
        *(f"pies-{q}" for q in quantized + others)}
    assert isinstance(sample["curate_int4"], fo.Classification)
    assert isinstance(sample["curate_filter50"], fo.Classification)
    assert len(dataset.load_saved_view("pies-distill50")) == int(table["distill50_pie"].sum())
    pies_view = dataset.load_saved_view("pies")
    assert len(pies_view) == n_pies
    view_scores = pies_view.values("curate_pie_score")
    assert view_scores == sorted(view_scores, reverse=True)
    assert len(dataset.load_saved_view("pies-prune90")) == int(table["prune90_pie"].sum())

    assert dataset.list_runs() == ["curate"]
    info = dataset.get_run_info("curate")
    assert info.config.method == "curate" and info.config.curate_version
    assert info.config.curate_config["members"] == 2
    results = dataset.load_run_results("curate", cache=False)
    assert results.n_pies == n_pies
    # The comparison across compression kinds travels with the run: sizes, speed and shared PIEs.
    assert {r["level"] for r in results.overlaps} == {"fp16", "bf16", "int8", "int4", "dyn-int8", "filter50", "distill50"}
    assert next(r for r in results.levels if r["level"] == "filter50")["speedup"] > 0

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_images"] == 1797
    assert len(list((run_dir / "jobs").glob("*.npz"))) == 4
    classes = pd.read_csv(run_dir / "classes.csv")
    assert set(classes["level"]) == {"control", "prune50", "prune90", *quantized, *others} and len(classes) == 100
    levels = pd.read_csv(run_dir / "levels.csv").set_index("level")
    assert levels["kind"].tolist() == ["dense", "control", "prune", "prune"] + ["quantize"] * 5 + ["filter", "distill"]
    # Every fine-tuned level is read against the control; quantized copies are not fine-tuned and students
    # are trained afresh, so not them.
    assert levels.loc[["prune50", "prune90", "filter50"], "excess_low"].notna().all()
    assert levels.loc[quantized + ["distill50"], "excess_pie_fraction"].isna().all()
    assert levels.loc["int4", "bits"] == 4 and levels.loc["int4", "compression"] == pytest.approx(8)
    assert levels.loc["prune90", "compression"] == pytest.approx(10, rel=0.01)
    # Half the channels of every layer: about a quarter of the weights; a half-width student likewise.
    assert levels.loc["filter50", "compression"] == pytest.approx(4, rel=0.1)
    assert levels.loc["distill50", "compression"] == pytest.approx(4, rel=0.1)
    assert levels.loc["filter50", "mmacs"] < 0.35 * levels.loc["dense", "mmacs"]
    assert (levels.loc[["dense", "filter50", "distill50"], ["weights", "memory_kb", "latency_ms", "speedup"]] > 0).all().all()
    # One job times every version's CPU latency (one architecture); the others only count weights and MACs.
    timed = {path.stem: np.isfinite(np.load(path)["footprint"][:, 2]).all() for path in (run_dir / "jobs").glob("*.npz")}
    assert timed == {name: name == "member00-fold00" for name in timed} and len(timed) == 4
    overlap = pd.read_csv(run_dir / "overlap.csv")
    assert len(overlap) == 9 * 8 // 2
    pair = overlap[(overlap["level_a"] == "prune90") & (overlap["level_b"] == "filter50")].iloc[0]
    assert pair["shared"] == int((table["prune90_pie"] & table["filter50_pie"]).sum())
    # Robustness: every level, 6 corruptions, clean + 5 severities.
    robust = pd.read_csv(run_dir / "robustness.csv")
    assert len(robust) == 10 * 6 * 6 and robust["accuracy"].between(0, 1).all()
    assert (robust[robust["level"] == "dense"]["vs_dense"] == 0).all()
    # Each network corrupts only images it never trained on, and its clean accuracy there is read from
    # the same held-out predictions the PIEs use.
    from curate.science.crossfit import stratified_folds
    from curate.population.config import CurateConfig

    config = CurateConfig.from_dict(manifest["config"])
    labels = table["label"].map({c: i for i, c in enumerate(manifest["classes"])}).to_numpy()
    probs = np.load(run_dir / "probs.npz")
    for job in config.jobs():
        stored = np.load(run_dir / "jobs" / f"{job.name}.npz")
        rows = stored["robust_rows"]
        folds = stratified_folds(labels, config.folds, config.member_seed(job.member))
        assert len(rows) == 64 and (folds[rows] == job.fold).all()
        dense_right = probs["dense"][job.member, rows].argmax(axis=1) == labels[rows]
        assert stored["robust_clean"][0] == pytest.approx(dense_right.mean())
    # The label-noise score reads the in-sample view as trained, or, where the networks fit more training
    # labels than confident learning believes right (memorised), after second-split forgetting: copies
    # of the networks that trained on each image, trained further on the images they never saw.
    forgotten = probs["forgotten_in"]
    assert forgotten.shape == probs["dense_in"].shape and np.isfinite(forgotten).all()
    assert not np.allclose(forgotten, probs["dense_in"])
    rows = np.arange(len(labels))
    pruned = probs["compressed"][:len(config.sparsities)]
    held_out = np.concatenate([probs["dense"], pruned.reshape(-1, *pruned.shape[2:])]).mean(axis=0)
    # Each in-sample network is pooled with its pruned copies, which forget on the same images.
    forgotten_pruned = probs["forgotten_compressed_in"]
    assert forgotten_pruned.shape == (len(config.sparsities), *forgotten.shape)
    assert not np.allclose(forgotten_pruned, probs["compressed_in"][:len(config.sparsities)])
    plain = (probs["dense_in"] + probs["compressed_in"][:len(config.sparsities)].sum(axis=0)) / (1 + len(forgotten_pruned))
    fitted = (plain.argmax(axis=2) == labels).mean()
    right = 1 - manifest["label_noise_count"]["confident_learning"] / len(labels)
    view = manifest["in_sample_view"]
    assert view["fitted"] == pytest.approx(fitted) and view["labels_right"] == pytest.approx(right)
    assert view["view"] == ("after forgetting" if fitted > right else "as trained")
    assert f"in-sample view read {view['view']}" in output
    chosen = (forgotten + forgotten_pruned.sum(axis=0)) / (1 + len(forgotten_pruned)) if fitted > right else plain
    in_sample = chosen.mean(axis=0)
    expected = 1 - 0.5 * (held_out[rows, labels] + in_sample[rows, labels])
    np.testing.assert_allclose(table["label_noise_rank_score"], np.clip(expected, 0, 1), atol=1e-5)
    np.testing.assert_allclose(table["label_noise_score"], table["label_wrong_probability"])


def test_flags_become_fields_tags_and_views(fo, digits_run):
    dataset, run_dir, output = digits_run
    table = pd.read_parquet(run_dir / "samples.parquet")
    assert "PIEs by category" in output and "Suspected label errors" in output
    tags = dataset.count_sample_tags()
    pies = table[table["pie"]]
    assert (pies["category"] != "").all() and (table.loc[~table["pie"], "category"] == "").all()
    categories = ("label_noise", "corruption", "multi_object", "ambiguous", "atypical")
    for category in categories:
        expected = int((table["category"] == category).sum())
        assert tags.get(f"pie:{category}", 0) == expected
        view = dataset.load_saved_view(f"pies-{category}")
        assert len(view) == expected
        scores = view.values("curate_flag_score")
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= s <= 1 for s in scores)
    # Every PIE carries exactly one category tag.
    assert sum(tags.get(f"pie:{c}", 0) for c in categories) == len(pies)

    noisy = dataset.match_tags("label_noise")
    assert len(noisy) == int(table["label_noise"].sum()) == len(dataset.load_saved_view("label-noise"))
    if len(noisy):
        given, suggested = noisy.values(["ground_truth.label", "curate_suggested.label"])
        assert all(g != s for g, s in zip(given, suggested))
        assert all(r and " models say " in r for r in noisy.values("curate_reason"))
    # Degraded images (a pixel check fires) are flagged PIE or not, each with the check in its reason.
    corrupt = dataset.match_tags("corruption")
    assert len(corrupt) == int(table["corruption"].sum()) == len(dataset.load_saved_view("corruption"))
    assert set(corrupt.values("filepath")) == set(table.loc[table["corruption_check"] != "", "filepath"])
    # Ordered by the corruption rule's own score, also where a corrupted image's flag score is another rule's.
    paths, scores = dataset.load_saved_view("corruption").values(["filepath", "curate_corruption_score"])
    assert scores == sorted(scores, reverse=True)
    assert scores == table.set_index("filepath").loc[paths, "corruption_score"].tolist()
    assert dataset.match(fo.ViewField("curate_corruption_score") != None).count() == len(corrupt)  # noqa: E711
    plain = corrupt.match(~fo.ViewField("tags").contains("pie")).match(~fo.ViewField("tags").contains("label_noise"))
    assert all(" image; models' top class " in r for r in plain.values("curate_reason"))
    assert all(dataset.match_tags("pie").values("curate_reason"))
    assert dataset.match_tags(["pie", "label_noise", "corruption"]).count() + dataset.match(
        ~fo.ViewField("curate_reason").exists()).count() == len(dataset)

    # FiftyOne Brain's own fields, from the dense population's mean prediction.
    assert sorted(dataset.list_brain_runs()) == ["hardness", "mistakenness"]
    hardness, mistakenness = dataset.values("hardness"), dataset.values("mistakenness")
    assert all(h is not None and h >= 0 for h in hardness) and all(m is not None for m in mistakenness)
    info = dataset.get_run_info("curate").config
    assert info.brain_runs == ["hardness", "mistakenness"] and "pie:atypical" in info.tags
    # ambiguous is on only where made two-class images pass 10x as often as the dataset's own.
    thresholds = info.flag_thresholds
    if thresholds["ambiguous_evenness"] is None:
        assert thresholds["ambiguous_probe_recall"] == 0 and not dataset.match_tags("pie:ambiguous").count()
    else:
        assert 0 < thresholds["ambiguous_evenness"] <= 1
        assert thresholds["ambiguous_probe_recall"] >= max(10 * thresholds["ambiguous_dataset_rate"], 1e-9)


def test_rerun_is_idempotent_and_resumes(fo, digits_run):
    dataset, run_dir, _ = digits_run
    before = snapshot(dataset)
    job_times = {p.name: p.stat().st_mtime_ns for p in (run_dir / "jobs").glob("*.npz")}
    result = invoke("demo", "--clean", "--dataset", "test-digits", "--run-dir", str(run_dir), *TINY)
    assert result.exit_code == 0, result.output
    dataset.reload()
    assert snapshot(dataset) == before
    # No network was retrained: every job file is untouched.
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "jobs").glob("*.npz")} == job_times


def test_a_second_run_key_leaves_the_first_alone_and_can_be_deleted(fo, digits_run, tmp_path):
    dataset, _, _ = digits_run
    before = snapshot(dataset)
    result = invoke("demo", "--clean", "--dataset", "test-digits", "--run-key", "other", "--run-dir", str(tmp_path / "o"), *TINY,
                    "--quantize", "none", "--filter-prune", "none", "--distill", "none", "--robustness-images", "0")
    assert result.exit_code == 0, result.output
    # Pruning only: no quantization levels, no robustness table.
    assert pd.read_csv(tmp_path / "o" / "levels.csv")["level"].tolist() == ["dense", "control", "prune50", "prune90"]
    assert not (tmp_path / "o" / "robustness.csv").exists()
    from curate.report.html import build_report

    page = build_report(tmp_path / "o")
    assert "Compression levels" in page and "Robustness to corruption" not in page and "int8" not in page
    dataset.reload()
    assert dataset.has_sample_field("other_prune90") and not dataset.has_sample_field("other_int8")
    assert snapshot(dataset)["scores"] == before["scores"]
    assert sorted(dataset.list_runs()) == ["curate", "other"]
    assert "other-pies" in dataset.list_saved_views()
    listing = invoke("runs", "test-digits")
    assert "other" in listing.output and "curate" in listing.output

    deleted = invoke("runs", "test-digits", "--delete", "other")
    assert deleted.exit_code == 0
    dataset.reload()
    assert snapshot(dataset) == before
    assert "other:pie" not in dataset.count_sample_tags()
    assert not any(f.startswith("other_") for f in dataset.get_field_schema())


def test_folder_source_with_corrupt_and_missing_images(fo, tmp_path):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    root = tmp_path / "images"
    for i in range(200):
        path = root / f"digit{bunch.target[i]}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((bunch.images[i] * 15).astype(np.uint8)).save(path)
    # Degraded copies, kept with their digit: the corruption view must hold them, worst first.
    for i in range(200, 206):
        path = root / f"digit{bunch.target[i]}" / f"dark{i}.png"
        Image.fromarray((bunch.images[i] * 15 * (0.02 + 0.01 * (i - 200))).astype(np.uint8)).save(path)
    corrupt = root / "digit0" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    missing = root / "digit1" / "missing.png"
    missing.symlink_to(tmp_path / "does-not-exist.png")

    result = invoke("run", str(root), "--dataset", "test-folder", "--run-dir", str(tmp_path / "run"), *PRUNE_ONLY)
    assert result.exit_code == 0, result.output
    assert "2 image(s) could not be read and were left out" in result.output
    assert str(corrupt) in result.output and str(missing) in result.output
    dataset = fo.load_dataset("test-folder")
    assert len(dataset) == 206
    view = dataset.load_saved_view("corruption")
    assert {Path(p).name for p in view.values("filepath")} >= {f"dark{i}.png" for i in range(200, 206)}
    scores = view.values("curate_corruption_score")
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert len(set(scores)) > 1
    # The summary says which checks fired, by each image's most severe one.
    line = next(x for x in result.output.splitlines() if x.startswith("Degraded images"))
    by_check = dict(part.rsplit(" ", 1) for part in line.split("%): ", 1)[1].split(", "))
    assert sum(map(int, by_check.values())) == len(view) and set(by_check) <= {c.replace("_", " ") for c in CHECKS}, line
    assert set(dataset.distinct("ground_truth.label")) == {f"digit{d}" for d in range(10)}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert {b["path"] for b in manifest["bad_images"]} == {str(corrupt), str(missing)}


def test_csv_columns_become_sample_fields(fo, tmp_path):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rows = ["filepath,label,annotator"]
    for i in range(120):
        path = tmp_path / "images" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((bunch.images[i] * 15).astype(np.uint8)).save(path)
        rows.append(f"images/{path.name},d{bunch.target[i]},{'ann' + str(i % 3) if i % 10 else ''}")
    manifest = tmp_path / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n")

    # A clash with an existing field is named before any training.
    clash = fo.Dataset("test-csv-fields-clash", persistent=True)
    clash.add_sample_field("annotator", fo.IntField)
    result = invoke("run", str(manifest), "--dataset", "test-csv-fields-clash", "--run-dir", str(tmp_path / "r0"),
                    *PRUNE_ONLY)
    assert result.exit_code != 0 and "field 'annotator' of type IntField" in result.output
    assert not (tmp_path / "r0").exists()
    # So is a column the run would overwrite with its own fields.
    for header, run_key in (("mistakenness", "curate"), ("other_category", "other")):
        renamed = tmp_path / f"{header}.csv"
        renamed.write_text(manifest.read_text().replace("annotator", header, 1))
        result = invoke("run", str(renamed), "--dataset", "test-csv-fields-clash", "--run-key", run_key,
                        "--run-dir", str(tmp_path / "r0"), *PRUNE_ONLY)
        assert result.exit_code != 0 and f"['{header}'] would be overwritten" in result.output, result.output
        assert not (tmp_path / "r0").exists()

    result = invoke("run", str(manifest), "--dataset", "test-csv-fields", "--run-dir", str(tmp_path / "run"),
                    *PRUNE_ONLY)
    assert result.exit_code == 0, result.output
    dataset = fo.load_dataset("test-csv-fields")
    by_path = dict(zip(*dataset.values(["filepath", "annotator"])))
    assert by_path[str(tmp_path / "images" / "001.png")] == "ann1"
    assert by_path[str(tmp_path / "images" / "010.png")] is None
    assert dataset.count_values("annotator") == {"ann0": 36, "ann1": 36, "ann2": 36, None: 12}


def test_a_class_too_small_for_the_folds_is_named(tmp_path):
    root = tmp_path / "images"
    for cls, n in (("many", 6), ("lonely", 1)):
        for i in range(n):
            path = root / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(path)
    result = invoke("run", str(root), "--no-fiftyone", "--run-dir", str(tmp_path / "run"), *PRUNE_ONLY)
    assert result.exit_code == 2
    assert "'lonely' (1 image)" in result.output


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "curate", "run", "--help"], capture_output=True, text=True)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "--sparsities" in text and "a CSV manifest with columns filepath,label[,split]" in text


def test_the_dev_launcher_keeps_the_callers_directory(tmp_path):
    # README: "prefix every command with scripts/dev curate"; a relative path must mean the user's folder.
    launcher = Path(__file__).resolve().parents[1] / "scripts" / "dev"
    out = subprocess.run(["bash", str(launcher), "curate", "run", "labels.csv", "--no-fiftyone"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 2 and f"CSV manifest {tmp_path / 'labels.csv'} does not exist" in out.stderr, out.stderr


def test_app_and_runs_name_a_missing_dataset_or_view(fo, digits_run):
    missing = invoke("runs", "no-such-dataset")
    assert missing.exit_code == 2 and "FiftyOne dataset 'no-such-dataset' does not exist" in missing.output
    bad_view = invoke("app", "test-digits", "--view", "nope")
    assert bad_view.exit_code == 2 and "has no saved view 'nope'; it has: pies, pies-prune50, pies-prune90" in bad_view.output
    unknown_run = invoke("runs", "test-digits", "--delete", "nope")
    assert unknown_run.exit_code == 2 and "has no run 'nope'" in unknown_run.output


def test_bad_compression_options_are_named(tmp_path):
    bad_format = invoke("demo", "--no-fiftyone", "--run-dir", str(tmp_path / "r"), *TINY, "--quantize", "int3")
    assert bad_format.exit_code == 2 and "int3" in bad_format.output and "int8" in bad_format.output
    bad_count = invoke("demo", "--no-fiftyone", "--run-dir", str(tmp_path / "r"), *TINY, "--robustness-images", "-1")
    assert bad_count.exit_code == 2 and "--robustness-images" in bad_count.output and "x>=0" in bad_count.output


def test_a_job_stored_with_the_windows_of_every_probe_is_resumed_to_the_same_flags(tmp_path):
    """Jobs stored by a curate that predicted the windows of every probe, not only of the two-class composites
    (before 2026-12-04), are read as they are: no network is retrained, and the flags are the same."""
    from curate.science.probes import TWO_CLASS

    args = ["run", "digits", "--no-fiftyone", "--run-dir", str(tmp_path), *PRUNE_ONLY]
    assert invoke(*args).exit_code == 0
    before = pd.read_parquet(tmp_path / "samples.parquet")
    with np.load(tmp_path / "probs.npz") as probs:
        kinds = probs["probe_kinds"]
    two_class = np.flatnonzero(kinds == TWO_CLASS)
    assert 0 < len(two_class) < len(kinds)
    for path in (tmp_path / "jobs").glob("*.npz"):
        with np.load(path) as stored:
            arrays = dict(stored)
        windows = arrays["probe_regions"]
        assert windows.shape[1] == len(two_class)  # this curate predicts the composites' windows only
        every = np.full((windows.shape[0], len(kinds), windows.shape[2]), 1.0 / windows.shape[2], dtype=windows.dtype)
        every[:, two_class] = windows
        np.savez_compressed(path, **{**arrays, "probe_regions": every})
    stored_at = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.npz")}
    assert invoke(*args).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.npz")} == stored_at  # none retrained
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "samples.parquet"), before)
