"""The local executor: worker processes where they pay, and the same results as one network after another.

Worker processes are spawned: a job function must be importable there, as this module's are.
"""

import json
import subprocess
import sys
import os

import pandas as pd
import pytest

from curate.population import executor as executors
from curate.population.executor import InProcessExecutor, MemberJob, ProcessExecutor, make_executor
from helpers import SMALL, invoke


def _job_report(job, progress):
    """A job that reports three steps and says where it ran."""
    progress(3)
    return job.member, os.environ["OMP_NUM_THREADS"], os.getpid()


def _failing_job(job, progress):
    if job.member == 1:
        raise ValueError(f"bad input in job {job.name}")
    return job.member


def test_local_chooses_worker_processes_only_where_they_pay(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    local = InProcessExecutor()
    chosen = local.for_work(8, 100.0, "cpu")
    assert isinstance(chosen, ProcessExecutor) and (chosen.workers, chosen.threads) == (2, 1)
    assert local.description == "local (2 worker processes, 1 thread each)"  # what the manifest records
    local.for_work(8, 10.0, "cpu")  # the same executor, a later run too small for workers
    assert local.description == "local"
    # Too little work to pay for starting processes, one network, a GPU, or never asked to.
    for args in ((8, 10.0, "cpu"), (1, 100.0, "cpu"), (8, 100.0, "cuda:0")):
        assert InProcessExecutor().for_work(*args).__class__ is InProcessExecutor, args
    assert make_executor("serial").for_work(8, 100.0, "cpu").description == "serial"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a machine shared down to one core
    assert InProcessExecutor().for_work(8, 100.0, "cpu").__class__ is InProcessExecutor
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    chosen = InProcessExecutor().for_work(3, 100.0, "cpu")
    assert (chosen.workers, chosen.threads) == (3, 2)


def test_worker_processes_run_every_job_relay_progress_and_raise_a_jobs_error():
    jobs = [MemberJob(member, 0, seed=member) for member in range(3)]
    steps = []
    results = dict(ProcessExecutor(2, threads=1).map(_job_report, jobs, steps.append))
    assert sorted(job.member for job in results) == [0, 1, 2]
    assert {threads for _, threads, _ in results.values()} == {"1"}
    assert os.getpid() not in {pid for _, _, pid in results.values()}
    assert sum(steps) == 9
    with pytest.raises(ValueError, match="bad input in job member01-fold00"):
        list(ProcessExecutor(2).map(_failing_job, jobs))


def _outputs(run_dir):
    return {"samples": pd.read_parquet(run_dir / "samples.parquet").drop(columns=["sample_id"], errors="ignore"),
            "levels": pd.read_csv(run_dir / "levels.csv").drop(columns=["latency_ms", "speedup"]),
            "overlap": pd.read_csv(run_dir / "overlap.csv")}


def test_a_run_in_worker_processes_gives_the_serial_results(small_source, small_run, tmp_path, monkeypatch):
    # conftest's small_run trained its networks one after another, one thread each; here two workers of
    # one thread each train them at once (the small run is below the threshold, so it is lowered).
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(executors, "PARALLEL_FROM_SECONDS", 0.0)
    loud = [a for a in SMALL if a != "-q"]
    result = invoke("run", small_source, "--run-dir", str(tmp_path), "--no-fiftyone", *loud)
    assert result.exit_code == 0, result.output
    assert "2 networks at a time" in result.output and "train 2 at a time in worker processes of 1 thread each" in result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["executor"] == "local (2 worker processes, 1 thread each)"
    expected = _outputs(small_run)
    for name, table in _outputs(tmp_path).items():
        pd.testing.assert_frame_equal(table, expected[name], obj=name)


def test_a_script_that_calls_curate_at_import_is_told_to_guard_the_call(small_source, tmp_path):
    # Each spawned worker imports the script that started the run; an unguarded call would start a run in
    # every worker. The workers refuse at once, and the run says how to fix the script.
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import curate.population.executor as executor\n"
        "executor.PARALLEL_FROM_SECONDS = 0.0\n"
        "from curate import api\n"
        f"api.run({small_source!r}, run_dir={str(tmp_path / 'run')!r}, to_fiftyone=False, progress=False,\n"
        "        members=2, folds=2, epochs=1, finetune_epochs=1, sparsities=(0.5,), quantize=(), filter_prune=(),\n"
        "        distill=(), robustness_images=0, image_size=8)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "2"}, cwd=tmp_path)
    assert done.returncode != 0
    assert "curate was called while a worker process was starting" in done.stderr, done.stderr[-3000:]
    assert 'outside `if __name__ == "__main__":`' in done.stderr


def test_pixels_shared_read_only_with_workers_are_read_without_a_torch_warning():
    # Worker processes read the pixels read-only; torch warns (once a process, on the user's screen) when
    # it is handed an array it cannot write.
    import subprocess
    import sys

    code = ("import numpy as np, torch\n"
            "from curate.population.train import Normalizer\n"
            "pixels = np.zeros((2, 3, 4, 4), np.uint8); pixels.flags.writeable = False\n"
            "Normalizer(np.zeros(3), np.ones(3), torch.device('cpu'))(pixels)\n")
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers end with their parent through Linux's prctl")
def test_workers_end_when_the_run_that_started_them_is_killed(tmp_path):
    # A killed run runs no cleanup; its workers used to go on training for minutes, on the next run's cores.
    import signal
    import time

    script = tmp_path / "long_run.py"
    script.write_text(
        "import os, sys, time\n"
        "from curate.population.executor import MemberJob, ProcessExecutor\n"
        "def job(member_job, progress):\n"
        "    open(os.path.join(sys.argv[1], f'{os.getpid()}.pid'), 'w').close()\n"
        "    time.sleep(300)\n"
        "if __name__ == '__main__':\n"
        "    list(ProcessExecutor(2).map(job, [MemberJob(m, 0, seed=m) for m in range(2)]))\n")
    run = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while len(pids := [int(p.stem) for p in tmp_path.glob("*.pid")]) < 2:
            assert time.monotonic() < deadline and run.poll() is None, "the workers never started their jobs"
            time.sleep(0.2)
        assert all(_alive(pid) for pid in pids)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in pids if _alive(pid)], "workers outlived the killed run"
    finally:
        run.kill()
        for pid in [int(p.stem) for p in tmp_path.glob("*.pid")]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
