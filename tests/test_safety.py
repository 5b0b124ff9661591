"""Nothing lost: exports, weights, reports and run directories never destroy what curate did not write,
and one process at a time writes a run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import PRUNE_ONLY, invoke


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def digits_dataset(digits_run):
    dataset, run_dir, _ = digits_run
    media_root = Path(dataset.first().filepath).parent.parent
    return dataset, run_dir, media_root


@pytest.mark.parametrize("where", ["parent", "same", "child"])
@pytest.mark.parametrize("fmt", ["csv", "folder"])
def test_export_never_goes_into_or_over_the_source_images(digits_dataset, where, fmt):
    """Issue 24, finding 1: `export OUT --force` with OUT a parent of the images deleted them."""
    dataset, _, media_root = digits_dataset
    class_dir = media_root / "3"
    out = {"parent": media_root, "same": class_dir, "child": class_dir / "export"}[where]
    before = _tree(media_root)
    result = invoke("export", dataset.name, str(out), "--format", fmt, "--force")
    assert result.exit_code == 2, result.output
    assert "holding the dataset's images" in result.output and str(class_dir.parent) in result.output
    assert _tree(media_root) == before, "source images changed"
    assert not (class_dir / "export").exists()


def test_force_replaces_only_a_curate_export(digits_dataset, tmp_path):
    dataset, _, _ = digits_dataset
    out = tmp_path / "unrelated"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    result = invoke("export", dataset.name, str(out), "--format", "csv", "--force")
    assert result.exit_code == 2, result.output
    assert "not written by `curate export`" in result.output and "thesis.tex" in result.output
    assert (out / "thesis.tex").read_text() == "years of work"

    export = tmp_path / "export"
    assert invoke("export", dataset.name, str(export), "--format", "csv").exit_code == 0
    marker = json.loads((export / "curate_export.json").read_text())
    assert set(marker["files"]) == {"manifest.csv", "changes.csv"}
    # A file the user added to an export is theirs: --force refuses and names it.
    (export / "notes.txt").write_text("mine")
    result = invoke("export", dataset.name, str(export), "--format", "csv", "--force")
    assert result.exit_code == 2 and "notes.txt" in result.output, result.output
    assert (export / "notes.txt").read_text() == "mine"
    (export / "notes.txt").unlink()
    # An export curate wrote, untouched, is replaced by --force.
    result = invoke("export", dataset.name, str(export), "--format", "folder", "--force")
    assert result.exit_code == 0, result.output
    assert not (export / "manifest.csv").exists() and (export / "curate_export.json").exists()


def test_export_folder_with_only_some_split_tags(fo, digits_run, tmp_path):
    """Issue 24, finding 3: a missing split is NaN, which FiftyOne refused as a tag."""
    _, run_dir, _ = digits_run
    from helpers import TINY

    assert invoke("demo", "--clean", "--dataset", "test-partial-splits", "--run-dir", str(run_dir), *TINY).exit_code == 0
    dataset = fo.load_dataset("test-partial-splits")
    dataset.select(dataset.sort_by("filepath").values("id")[:100]).tag_samples("test")
    for fmt in ("folder", "fiftyone"):
        result = invoke("export", "test-partial-splits", str(tmp_path / fmt), "--format", fmt)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "folder" / "test").is_dir() and (tmp_path / "folder" / "unassigned").is_dir()
    exported = fo.Dataset.from_dir(str(tmp_path / "fiftyone"), fo.types.FiftyOneDataset)
    assert exported.count_sample_tags() == {"test": 100}
    assert len(exported) == len(dataset) - json.loads(
        (tmp_path / "fiftyone" / "curate_export.json").read_text())["counts"]["dropped"]


def test_weights_report_and_screenshot_never_overwrite_other_files(digits_dataset, tmp_path):
    dataset, run_dir, media_root = digits_dataset
    image = sorted((media_root / "5").iterdir())[0]
    before = image.read_bytes()
    for args in (["weights", dataset.name, str(media_root / "5" / "w.csv"), "--force"],
                 ["report", dataset.name, "--out", str(image), "--force"],
                 ["report", dataset.name, "--out", str(tmp_path / "r.html"), "--screenshot", str(image), "--force"]):
        result = invoke(*args)
        assert result.exit_code == 2 and "holding the dataset's images" in result.output, (args, result.output)
    assert image.read_bytes() == before

    mine = tmp_path / "mine.csv"
    mine.write_text("a,b\n1,2\n")
    result = invoke("weights", dataset.name, str(mine), "--force")
    assert result.exit_code == 2 and "not a weights file curate wrote" in result.output, result.output
    page = tmp_path / "page.html"
    page.write_text("<html>my page</html>")
    result = invoke("report", dataset.name, "--out", str(page), "--force")
    assert result.exit_code == 2 and "not a report file curate wrote" in result.output, result.output
    assert mine.read_text() == "a,b\n1,2\n" and page.read_text() == "<html>my page</html>"
    # Files curate wrote are replaced.
    weights = tmp_path / "w.csv"
    report = tmp_path / "r.html"
    for _ in range(2):
        assert invoke("weights", dataset.name, str(weights), "--force").exit_code == 0
        assert invoke("report", dataset.name, "--out", str(report), "--force").exit_code == 0


def test_run_dir_among_the_images_or_full_of_other_files_is_refused(digits_dataset, tmp_path):
    _, _, media_root = digits_dataset
    result = invoke("demo", "--dataset", "test-runs-dir", "--run-dir", str(media_root / "7"), *PRUNE_ONLY)
    assert result.exit_code == 2 and "holding the dataset's images" in result.output, result.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "data.bin").write_bytes(b"x")
    result = invoke("demo", "--dataset", "test-runs-dir", "--run-dir", str(busy), *PRUNE_ONLY)
    assert result.exit_code == 2 and "data.bin" in result.output, result.output
    assert sorted(os.listdir(busy)) == ["data.bin"]


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from curate.data.safety import {which}
    with {which}(*sys.argv[1:]):
        print("held", flush=True)
        time.sleep(60)
""")


def _hold(which: str, *args: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.format(which=which), *args],
                              stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_of_the_same_run_is_refused_until_the_first_dies(fo, tmp_path):
    """Issue 24, finding 6: two processes on one run; a crashed holder leaves no stale lock."""
    run_dir = tmp_path / "run"
    holder = _hold("run_dir_lock", str(run_dir))
    try:
        result = invoke("demo", "--dataset", "test-locked", "--run-dir", str(run_dir), *PRUNE_ONLY)
        assert result.exit_code == 2, result.output
        assert "being written by another curate process" in result.output and f"pid {holder.pid}" in result.output
    finally:
        holder.kill()
        holder.wait()

    fo.Dataset("test-locked", persistent=True)
    holder = _hold("dataset_lock", "test-locked", "curate")
    try:
        result = invoke("demo", "--dataset", "test-locked", "--run-dir", str(tmp_path / "other"), *PRUNE_ONLY)
        assert result.exit_code == 2 and "Run 'curate' of FiftyOne dataset 'test-locked'" in result.output
        result = invoke("runs", "test-locked", "--delete", "curate")
        assert result.exit_code == 2 and "another curate process" in result.output
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, and the kernel still releases the lock
        holder.wait()
    # Another run key on the same dataset is a different run and is not blocked.
    from curate.data.safety import dataset_lock

    with dataset_lock("test-locked", "other_key"):
        pass


def test_a_busy_database_is_not_reported_as_a_missing_mongod(monkeypatch):
    import fiftyone as fo
    from fiftyone.core.service import ServiceListenTimeout

    from curate.fiftyone.db import DatabaseBusy, import_fiftyone

    calls = []

    def slow(*_args, **_kwargs):
        calls.append(1)
        raise ServiceListenTimeout("MongoDB")

    monkeypatch.setattr(fo, "list_datasets", slow)
    with pytest.raises(DatabaseBusy) as error:
        import_fiftyone(retry_waits=(0.0, 0.0))
    assert len(calls) == 3, "asked once and retried twice"
    message = str(error.value)
    assert "did not answer in time" in message and "pip install" not in message
    # Answering on a retry is success.
    answers = iter([ServiceListenTimeout("MongoDB"), None])

    def flaky(*_args, **_kwargs):
        answer = next(answers)
        if answer:
            raise answer
        return []

    monkeypatch.setattr(fo, "list_datasets", flaky)
    assert import_fiftyone(retry_waits=(0.0,)) is fo
