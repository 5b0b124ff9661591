"""The Ray executor: a run through ``--executor ray`` gives the in-process run's results with a worker killed
mid-job (and retried), and resumes after the whole run is killed.

Each run is a subprocess on 120 digits (conftest.py's ``small_source``) that starts its own local Ray instance
(2 CPUs on CI), in a process session of its own so that anything Ray leaves behind after a SIGKILL is killed
with it. Every network uses
one thread in both executors: CPU convolutions sum in a thread-dependent order, so only equal thread counts
give equal bits (:func:`curate.population.train.configure_threads`).
"""

import json
import shutil
import signal
import sys
import tempfile
from types import SimpleNamespace

import pandas as pd
import pytest

from curate.population.executor import InProcessExecutor, RayExecutor, make_executor
from helpers import SMALL, curate_process

OPTIONS = [*SMALL, "--no-fiftyone"]
# Timings differ from run to run; everything else a run stores must not.
TIMING_COLUMNS = ["latency_ms", "speedup"]


@pytest.fixture(scope="module")
def ray_tmp():
    pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]" (scripts/dev setup installs it)')
    path = tempfile.mkdtemp(prefix="curate-ray-")  # short: Ray's socket paths must stay under 107 characters
    yield path
    shutil.rmtree(path, ignore_errors=True)


def curate(*args, ray_tmp=None, **env_extra):
    return curate_process(*args, **({"RAY_TMPDIR": ray_tmp} if ray_tmp else {}), **env_extra)


def _outputs(run_dir):
    return {"samples": pd.read_parquet(run_dir / "samples.parquet").drop(columns=["sample_id"], errors="ignore"),
            "levels": pd.read_csv(run_dir / "levels.csv").drop(columns=TIMING_COLUMNS),
            "overlap": pd.read_csv(run_dir / "overlap.csv")}


def _assert_same(outputs, expected):
    for name, table in expected.items():
        pd.testing.assert_frame_equal(outputs[name], table, obj=name)


@pytest.fixture(scope="module")
def in_process(ray_tmp, small_run):
    """The same run with the in-process executor (conftest.py's ``small_run``; it also writes to FiftyOne, which
    leaves the run directory as it is)."""
    return _outputs(small_run)


@pytest.fixture(scope="module")
def source(small_source):
    return small_source


def test_a_ray_run_gives_the_in_process_results_even_when_a_worker_dies(ray_tmp, source, in_process, tmp_path):
    once = tmp_path / "killed-once"
    run_dir = tmp_path / "run"
    done = curate("run", source, "--run-dir", str(run_dir), "--executor", "ray", *OPTIONS, ray_tmp=ray_tmp,
                  CURATE_KILL_AT="network", CURATE_KILL_ONCE=str(once))
    assert once.exists(), "no worker reached the kill point"  # one died mid-job (its driver lives on) ...
    assert done.returncode == 0, done.stderr[-3000:]  # ... was retried, and the run completed
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["executor"].startswith("ray (a local instance; 1 cpus, 0 gpus per job")
    outputs = _outputs(run_dir)
    assert outputs["samples"]["pie"].any() and len(outputs["levels"]) > 3  # something to compare
    _assert_same(outputs, in_process)


def test_an_interrupted_ray_run_resumes_from_the_finished_jobs(ray_tmp, source, in_process, tmp_path):
    killed = curate("run", source, "--run-dir", str(tmp_path), "--executor", "ray", *OPTIONS, ray_tmp=ray_tmp,
                    CURATE_KILL_AT="train")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    finished = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.npz")}
    assert 1 <= len(finished) < 4
    loud = [a for a in OPTIONS if a != "-q"]  # the cost estimate is printed
    done = curate("run", source, "--run-dir", str(tmp_path), "--executor", "ray", *loud, ray_tmp=ray_tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"({len(finished)} more already in the run directory)" in done.stdout
    assert "one network after another on this machine; ray runs them in parallel" in done.stdout  # the estimate
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.npz") if p.name in finished} == finished
    _assert_same(_outputs(tmp_path), in_process)


def test_executor_choices_are_checked(monkeypatch):
    assert isinstance(make_executor("local"), InProcessExecutor)
    with pytest.raises(ValueError, match="--executor must be one of local, ray, ray://HOST:PORT .* got 'spark'"):
        make_executor("spark")
    with pytest.raises(ValueError, match="add --executor ray"):
        make_executor("local", job_gpus=1)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r'not installed: pip install "curate\[ray\]"'):
        make_executor("ray")


def _cluster(cpus_per_node, gpus_per_node=0):
    nodes = [{"Alive": True, "Resources": {"CPU": c, **({"GPU": gpus_per_node} if gpus_per_node else {})}}
             for c in cpus_per_node]
    return SimpleNamespace(nodes=lambda: nodes, cluster_resources=lambda: {
        "CPU": sum(cpus_per_node), **({"GPU": gpus_per_node * len(nodes)} if gpus_per_node else {})})


def test_jobs_ask_for_a_share_of_the_cluster():
    # 8 jobs on two 16-CPU nodes: 4 CPUs each, so all 8 run at once.
    assert RayExecutor()._job_resources(_cluster([16, 16]), 8) == {"num_cpus": 4, "num_gpus": 0}
    # More jobs than CPUs: one each, the rest queue.
    assert RayExecutor()._job_resources(_cluster([2]), 8) == {"num_cpus": 1, "num_gpus": 0}
    # A GPU each where there are GPUs, unless the run is told to use the CPU.
    assert RayExecutor()._job_resources(_cluster([8, 8], 1), 8) == {"num_cpus": 1, "num_gpus": 1}
    assert RayExecutor(device="cpu")._job_resources(_cluster([8], 1), 8)["num_gpus"] == 0
    assert RayExecutor(job_gpus=0.25)._job_resources(_cluster([8], 1), 8) == {"num_cpus": 1, "num_gpus": 0.25}
    with pytest.raises(ValueError, match="asks for 32 CPUs, but no node of the Ray cluster has more than 16"):
        RayExecutor(job_cpus=32)._job_resources(_cluster([16, 16]), 8)
