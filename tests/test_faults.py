"""Fault injection: `curate run` is killed with SIGKILL at every phase (curate.data.faults.POINTS), and the
next run must finish with exactly the results of a run that was never interrupted.

Each kill is real: the process sends itself SIGKILL (no cleanup handler or ``finally`` runs) at a
named point. The runs are subprocesses on the test session's own database, on 120 digits.
"""

import shutil

import pandas as pd
import pytest

from curate.data.faults import POINTS
from helpers import SMALL, curate_process, invoke

OPTIONS = SMALL
# One run after another into a fresh dataset: the computation, and the samples curate adds to a new dataset.
FRESH_POINTS = ["decode", "train", "score", "store", "fiftyone:samples"]
# Re-runs over a dataset that holds a complete run: every other step of the FiftyOne write.
RERUN_POINTS = [p for p in POINTS if p.startswith("fiftyone:") and p not in FRESH_POINTS]
# "network" kills a worker: tests/test_ray.py
# "calibrate" is tested with curate calibrate (tests/test_export.py).
assert set(FRESH_POINTS + RERUN_POINTS + ["report", "network", "calibrate"]) == set(POINTS), "every point is tested"
SAMPLE_FIELDS = ["filepath", "curate_pie", "curate_pie_score", "curate_pie_levels", "curate_category",
                 "curate_label_noise", "curate_reason", "curate_dense.label", "hardness", "mistakenness", "tags"]


curate = curate_process


@pytest.fixture(scope="module")
def source(small_source):
    return small_source


@pytest.fixture(scope="module")
def baseline(fo, small_run):
    return small_run, _state(fo, "fault-baseline", small_run)


def _state(fo, name, run_dir):
    """What a run leaves: its per-sample table, and the dataset's fields, tags, views and run record."""
    dataset = fo.load_dataset(name)
    dataset.reload()
    values = dict(zip(SAMPLE_FIELDS, dataset.values(SAMPLE_FIELDS)))
    table = pd.DataFrame(values).sort_values("filepath").reset_index(drop=True)
    table["tags"] = table["tags"].map(sorted)
    views = {v: len(dataset.load_saved_view(v)) for v in dataset.list_saved_views()}
    config = dataset.get_run_info("curate").config
    samples = pd.read_parquet(run_dir / "samples.parquet").drop(columns=["sample_id"], errors="ignore")
    return {"table": table, "views": views, "status": getattr(config, "status", None),
            "brain": sorted(dataset.list_brain_runs()), "samples": samples.sort_values("filepath").reset_index(drop=True),
            "fields": sorted(f for f in dataset.get_field_schema() if f.startswith("curate_"))}


def _assert_same(state, expected):
    pd.testing.assert_frame_equal(state["samples"], expected["samples"])
    pd.testing.assert_frame_equal(state["table"], expected["table"])
    for key in ("views", "status", "brain", "fields"):
        assert state[key] == expected[key], key


def _killed(result):
    assert result.returncode == -9, f"expected SIGKILL, got {result.returncode}: {result.stderr[-2000:]}"


def test_a_kill_at_each_step_of_the_computation_resumes_to_the_same_results(fo, source, baseline, tmp_path):
    """Killed at each step in turn, each kill in the run that resumes the one killed before it (so every
    step is also resumed from the state a kill left); the run that finally finishes has the results of the
    run that was never interrupted."""
    name = "fault-computation"
    run_dir = tmp_path / "run"
    args = ["run", source, "--dataset", name, "--run-dir", str(run_dir), *OPTIONS]
    finished: dict[str, bytes] = {}
    for i, point in enumerate(FRESH_POINTS):
        _killed(curate(*args, kill_at=point))
        assert not fo.dataset_exists(name) or not fo.load_dataset(name).has_run("curate"), f"recorded at {point}"
        if i:
            assert "resumed_from" in (run_dir / "manifest.json").read_text(), point
        jobs = {p.name: p.read_bytes() for p in (run_dir / "jobs").glob("*.npz")}
        if point == "train":
            assert len(jobs) == 1, "killed after the first network was stored"
        if point == "fiftyone:samples":
            assert 0 < len(fo.load_dataset(name)) < 120, "killed half way through adding the samples"
        for name_, content in finished.items():  # finished networks are reused byte for byte, not retrained
            assert jobs[name_] == content, (point, name_)
        finished = jobs
    done = curate(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in (run_dir / "jobs").glob("*.npz")} == finished
    _assert_same(_state(fo, name, run_dir), baseline[1])


def test_a_kill_at_each_step_of_the_fiftyone_write_is_repaired_by_the_next_run(fo, source, baseline, tmp_path):
    """The dataset holds a complete run; each re-run is killed at one step of the write, then run again."""
    base_dir, expected = baseline
    name = "fault-fiftyone"
    run_dir = tmp_path / "run"
    shutil.copytree(base_dir, run_dir)  # finished networks: the re-runs only score and write
    args = ["run", source, "--dataset", name, "--run-dir", str(run_dir), *OPTIONS]
    assert invoke(*args).exit_code == 0
    # Killed in a subprocess; inspected and repaired in this process (no interpreter start-up each time).
    for point in RERUN_POINTS:
        _killed(curate(*args, kill_at=point))
        status = invoke("status", name)
        # The run is recorded as incomplete, and says how to repair it.
        assert status.exit_code == 2 and "interrupted while it was written" in status.output, status.output
        assert "writing" in invoke("runs", name).output
        done = invoke(*args)
        assert done.exit_code == 0, (point, done.output[-3000:])
        _assert_same(_state(fo, name, run_dir), expected)


def test_an_interrupted_write_can_be_deleted_without_a_trace(fo, source, baseline, tmp_path):
    name = "fault-delete"
    run_dir = tmp_path / "run"
    shutil.copytree(baseline[0], run_dir)
    args = ["run", source, "--dataset", name, "--run-dir", str(run_dir), *OPTIONS]
    _killed(curate(*args, kill_at="fiftyone:brain"))
    deleted = invoke("runs", name, "--delete", "curate")
    assert deleted.exit_code == 0, deleted.output
    dataset = fo.load_dataset(name)
    dataset.reload()
    assert not dataset.list_runs() and not dataset.list_brain_runs() and not dataset.list_saved_views()
    assert not [f for f in dataset.get_field_schema() if f.startswith("curate_") or f in ("hardness", "mistakenness")]
    assert set(dataset.distinct("tags")) == set(), "no tag of the run is left"
    assert len(dataset) == 120, "the samples themselves stay"


def test_a_kill_while_the_report_is_written_leaves_no_half_report(fo, baseline, tmp_path):
    out = tmp_path / "report.html"
    _killed(curate("report", "fault-baseline", "--out", str(out), kill_at="report"))
    assert not out.exists()
    done = invoke("report", "fault-baseline", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert out.read_text().rstrip().endswith("</html>")


def test_a_brain_run_curate_did_not_record_is_left_alone(fo, source, baseline, tmp_path):
    """Issue 24, finding 2: a dataset with a Brain `hardness` run and no curate record crashed every re-run."""
    name = "fault-foreign-brain"
    run_dir = tmp_path / "run"
    shutil.copytree(baseline[0], run_dir)
    args = ["run", source, "--dataset", name, "--run-dir", str(run_dir), *OPTIONS]
    assert invoke(*args).exit_code == 0
    dataset = fo.load_dataset(name)
    # The state a kill left before crash-consistent writes: Brain runs and fields, no curate record.
    # (FiftyOne's dataset.delete_run would clean them up through curate's run class; drop the record alone.)
    import fiftyone.core.runs as fors

    fors.Run.delete_run(dataset, "curate", cleanup=False)
    assert dataset.has_brain_run("hardness") and not dataset.has_run("curate")
    done = invoke(*args)
    assert done.exit_code == 0, done.output[-3000:]
    dataset.reload()
    assert dataset.has_brain_run("hardness") and dataset.has_brain_run("curate_hardness")
    assert dataset.values("curate_hardness") == pytest.approx(dataset.values("hardness"))
    assert dataset.get_run_info("curate").config.brain_runs == ["curate_hardness", "curate_mistakenness"]
