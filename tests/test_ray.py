"""The Ray executor: a run through ``--executor ray`` gives the in-process run's results with a worker killed
mid-job (and retried), and resumes after the whole run is killed.

Each run is a subprocess on 120 digits (conftest.py's ``small_source``) that starts its own local Ray instance
(2 CPUs on CI), in a process session of its own so that anything Ray leaves behind after a SIGKILL is killed
with it. Every network uses
one thread in both executors: CPU convolutions sum in a thread-dependent order, so only equal thread counts
give equal bits (:func:`curate.population.train.configure_threads`).
"""

import json
import os
import pickle
import shutil
import signal
import sys
import tempfile
from types import SimpleNamespace

import pandas as pd
import pytest

import numpy as np

from curate.data.images import PixelFile, decode_images, decoded_file
from curate.population.executor import InProcessExecutor, RayExecutor, make_executor, nodes_not_reading
from curate.population.jobs import NetworkJobs
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


def test_a_killed_ray_run_resumes_and_gives_the_in_process_results_even_when_a_worker_dies(ray_tmp, source,
                                                                                            in_process, tmp_path):
    """The whole run killed while it trains; the next one resumes from the finished networks, and one of its
    workers dies mid-job (its driver lives on) and is retried."""
    run_dir = tmp_path / "run"
    args = ["run", source, "--run-dir", str(run_dir), "--executor", "ray"]
    killed = curate(*args, *OPTIONS, ray_tmp=ray_tmp, CURATE_KILL_AT="train")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    finished = {p.name: p.stat().st_mtime_ns for p in (run_dir / "jobs").glob("*.npz")}
    assert 1 <= len(finished) < 4
    once = tmp_path / "killed-once"
    loud = [a for a in OPTIONS if a != "-q"]  # the cost estimate is printed
    done = curate(*args, *loud, ray_tmp=ray_tmp, CURATE_KILL_AT="network", CURATE_KILL_ONCE=str(once))
    assert once.exists(), "no worker reached the kill point"
    assert done.returncode == 0, done.stderr[-3000:]  # the worker's job was retried, and the run completed
    assert f"({len(finished)} more already in the run directory)" in done.stdout
    assert "one network after another on one of the cluster's workers; ray runs them" in done.stdout  # the estimate
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "jobs").glob("*.npz") if p.name in finished} == finished
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # The workers read the decoded pixels from the run directory: nothing the size of the dataset was shipped.
    assert manifest["executor"] == (f"ray (a local instance; 1 cpus, 0 gpus per job; pixels read from "
                                    f"{run_dir / 'images-8.u8'} on every node)")
    outputs = _outputs(run_dir)
    assert outputs["samples"]["pie"].any() and len(outputs["levels"]) > 3  # something to compare
    _assert_same(outputs, in_process)


def test_executor_choices_are_checked(monkeypatch):
    assert isinstance(make_executor("local"), InProcessExecutor)
    with pytest.raises(ValueError, match="--executor must be one of local, serial, ray, ray://HOST:PORT .* got 'spark'"):
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


def test_the_default_batch_follows_the_gpus_the_networks_get_not_the_machine_that_starts_the_run(
        monkeypatch, small_source, tmp_path):
    import curate.options
    import curate.population.executor as executor_module
    import curate.population.pipeline as pipeline
    from curate import api

    def ray_with(gpus_per_node):
        return lambda: SimpleNamespace(is_initialized=lambda: True, **vars(_cluster([8, 8], gpus_per_node)))

    monkeypatch.setattr(executor_module, "import_ray", ray_with(1))
    assert RayExecutor().trains_on_gpu("auto") and RayExecutor(job_gpus=0.25).trains_on_gpu("auto")
    assert not RayExecutor().trains_on_gpu("cpu") and not RayExecutor(job_gpus=0).trains_on_gpu("auto")
    monkeypatch.setattr(executor_module, "import_ray", ray_with(0))
    assert not RayExecutor().trains_on_gpu("auto")

    # The run is configured with the cluster's answer, though this machine (a CPU here) starts it.
    monkeypatch.setattr(executor_module, "import_ray", ray_with(1))
    asked, default_batch_size = [], curate.options.default_batch_size
    monkeypatch.setattr(curate.options, "default_batch_size",
                        lambda n_train, *, gpu=False: asked.append(gpu) or default_batch_size(n_train, gpu=gpu))

    class Configured(Exception):
        pass

    def stop(images, config, *args, **kwargs):
        raise Configured(config)

    monkeypatch.setattr(pipeline, "run_curate", stop)
    with pytest.raises(Configured):
        api.run(small_source, to_fiftyone=False, run_dir=tmp_path / "run", progress=False, executor="ray")
    assert asked == [True]


def test_a_run_that_fails_after_asking_the_cluster_for_gpus_leaves_no_ray_connection(monkeypatch, small_source,
                                                                                        tmp_path):
    import curate.population.executor as executor_module
    import curate.population.pipeline as pipeline
    from curate import api

    calls, connected = [], []
    cluster = _cluster([8], 1)
    ray = SimpleNamespace(is_initialized=lambda: bool(connected), nodes=cluster.nodes,
                          cluster_resources=cluster.cluster_resources,
                          init=lambda **kwargs: calls.append("init") or connected.append(True),
                          shutdown=lambda: calls.append("shutdown") or connected.clear())
    monkeypatch.setattr(executor_module, "import_ray", lambda: ray)

    def fail(*args, **kwargs):
        raise RuntimeError("the run failed before training")

    monkeypatch.setattr(pipeline, "run_curate", fail)
    with pytest.raises(RuntimeError, match="before training"):
        api.run(small_source, to_fiftyone=False, run_dir=tmp_path / "run", progress=False, executor="ray")
    assert calls == ["init", "shutdown"] and not connected
    # A connection the caller opened is the caller's: asked, not closed.
    connected.append(True)
    calls.clear()
    with pytest.raises(RuntimeError, match="before training"):
        api.run(small_source, to_fiftyone=False, run_dir=tmp_path / "run", progress=False, executor="ray")
    assert calls == [] and connected


@pytest.fixture
def decoded(small_source, tmp_path):
    """The small source decoded into a cache file, and jobs that know where it is."""
    paths = pd.read_csv(small_source)["filepath"].tolist()
    pixels, ok, _ = decode_images(paths, 8, tmp_path / "images-8.u8", progress=False)
    assert ok.all()
    pixel_file = decoded_file(tmp_path / "images-8.u8", paths)
    jobs = NetworkJobs(None, np.array(pixels), np.zeros(len(paths), int), 10, {}, np.zeros(3), np.ones(3),
                       np.zeros((0, 3, 8, 8), np.uint8), pixel_file)
    return SimpleNamespace(paths=paths, pixels=np.array(pixels), file=pixel_file, jobs=jobs)


def test_jobs_travel_without_their_pixels_when_the_cache_can_be_read(decoded):
    assert decoded.file.shape == decoded.pixels.shape and decoded.file.readable()
    travelled = pickle.loads(pickle.dumps(decoded.jobs))
    assert len(pickle.dumps(decoded.jobs)) < decoded.pixels.nbytes / 4  # the probes and labels, not the images
    assert travelled.pixels is None and np.array_equal(travelled.read_pixels(), decoded.pixels)
    carrying = pickle.loads(pickle.dumps(decoded.jobs.carrying_pixels()))
    assert carrying.pixel_file is None and np.array_equal(carrying.pixels, decoded.pixels)
    # A cache of other images (or in another order) is not these pixels.
    assert decoded_file(decoded.file.path, decoded.paths[::-1]) is None
    moved = PixelFile(decoded.file.path + ".elsewhere", decoded.file.shape, decoded.file.digest)
    lost = pickle.loads(pickle.dumps(NetworkJobs(**{**decoded.jobs.__dict__, "pixel_file": moved})))
    with pytest.raises(RuntimeError, match=r"cannot read the run's decoded pixels at .*elsewhere.*--run-dir"):
        lost.read_pixels()


def test_ray_ships_the_pixels_only_to_nodes_that_cannot_read_them(decoded, ray_tmp):
    import ray

    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=ray_tmp, log_to_driver=False)
    try:
        assert nodes_not_reading(ray, decoded.file) == []
        executor = RayExecutor()
        assert executor._by_reference_where_possible(ray, decoded.jobs) is decoded.jobs
        assert executor.pixels_via == f"read from {decoded.file.path} on every node"
        # Another file at that path (another run directory mounted there, say): the node does not read it.
        other = PixelFile(decoded.file.path, decoded.file.shape, "0" * 64)
        assert nodes_not_reading(ray, other) == [ray.util.get_node_ip_address()]
        with pytest.warns(UserWarning, match=r"1 Ray node\(s\) .* cannot read the decoded pixels .* object store"):
            shipped = executor._by_reference_where_possible(ray, NetworkJobs(**{**decoded.jobs.__dict__,
                                                                                 "pixel_file": other}))
        assert shipped.pixel_file is None and np.array_equal(shipped.pixels, decoded.pixels)
        assert executor.pixels_via == "through the object store"
    finally:
        ray.shutdown()


def test_the_cost_estimate_is_timed_on_a_worker_of_the_cluster(monkeypatch, small_source, tmp_path, ray_tmp):
    """A run started on a laptop against a GPU cluster is timed on the cluster, not on the laptop's CPU."""
    import ray

    from curate import api
    from curate.population.cost import CostEstimate

    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=ray_tmp, log_to_driver=False)
    try:
        assert RayExecutor().run_once(os.getpid, 8) != os.getpid()
    finally:
        ray.shutdown()

    class Timed(Exception):
        pass

    def run_once(self, fn, n_jobs):
        raise Timed(fn(), n_jobs)

    monkeypatch.setattr(RayExecutor, "run_once", run_once)
    monkeypatch.setattr(RayExecutor, "trains_on_gpu", lambda self, device: False)
    with pytest.raises(Timed) as timed:
        api.run(small_source, to_fiftyone=False, run_dir=tmp_path / "run", progress=False, executor="ray")
    cost, n_jobs = timed.value.args
    assert isinstance(cost, CostEstimate) and cost.networks == n_jobs == 8 and cost.seconds > 0
