"""Where population jobs run. The science never sees this: it receives finished arrays.

A job is one network of the population (a member seed and the fold it leaves out) together with
its compressed copies; executors run groups of jobs (:class:`JobGroup`), whose networks train as one
batched computation where they can (one job a group unless asked, or on a GPU). Groups are
independent, so any engine that can map a function over a list can run them:
:class:`InProcessExecutor` runs them one after another in this process, or hands them
to :class:`ProcessExecutor` (several at a time in worker processes of this machine) where the work
is large enough to pay for starting them; :class:`RayExecutor` runs them on the workers of a Ray
cluster (a local one it starts, or one it joins). Either way the caller stores each result as it
arrives, so an interrupted run resumes from every job that finished, wherever it ran.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, TypeVar

R = TypeVar("R")
Progress = Callable[[int], None]

EXECUTORS = ("local", "serial", "ray", "ray://HOST:PORT")
"""What ``--executor`` accepts (:func:`make_executor`)."""
RAY_INSTALL = 'pip install "curate[ray]"  (or, in a clone: pip install -e ".[ray]")'


@dataclass(frozen=True)
class MemberJob:
    """Train member ``member`` (seed ``seed``) on every fold but ``fold``; score ``fold``."""

    member: int
    fold: int
    seed: int

    @property
    def name(self) -> str:
        return f"member{self.member:02d}-fold{self.fold:02d}"


@dataclass(frozen=True)
class JobGroup:
    """Jobs that one worker runs together: their networks train as one batched computation where they can
    (:func:`curate.population.train.fit_together`), which fills a GPU that one small network leaves idle."""

    jobs: tuple[MemberJob, ...]

    @property
    def name(self) -> str:
        return self.jobs[0].name if len(self.jobs) == 1 else f"{self.jobs[0].name} and {len(self.jobs) - 1} more"


def group_jobs(jobs: list[MemberJob], together: int) -> list[JobGroup]:
    """``jobs`` in order, ``together`` to a group (the last may be smaller)."""
    size = max(1, together)
    return [JobGroup(tuple(jobs[i:i + size])) for i in range(0, len(jobs), size)]


class Executor(Protocol):
    name: str  # what --executor calls it
    description: str  # recorded in the run's manifest
    together: int | None  # networks a group (--train-together); None: the pipeline's default

    def map(self, fn: Callable[[JobGroup, Progress | None], R], groups: Iterable[JobGroup],
            progress: Progress | None = None) -> Iterator[tuple[JobGroup, R]]:
        """Run ``fn(group, progress)`` on every group, yielding ``(group, result)`` as each finishes (any order).

        ``fn`` is picklable (:class:`curate.population.jobs.NetworkJobs`); ``progress(steps)`` reports
        training steps where the executor can relay them (this machine), else the caller counts jobs.
        """

    def for_work(self, n_groups: int, estimated_seconds: float, device: str) -> "Executor":
        """The executor to run ``n_groups`` groups with, given their estimated seconds one after another on
        ``device``."""

    def trains_on_gpu(self, device: str) -> bool:
        """Whether the networks will train on a GPU when the run asks for ``device`` (what its default batch
        size follows)."""

    def run_once(self, fn: Callable[[], R], n_jobs: int) -> R:
        """``fn()``, called once where and as a job of a run of ``n_jobs`` jobs would run (the cost estimate's
        warm-up, timed on the device and threads the networks will get)."""

    def close(self) -> None:
        """Let go of what the executor opened before :meth:`map` (a Ray connection); a run calls it however it ends."""


PARALLEL_FROM_SECONDS = 30.0
"""Estimated seconds of work from which ``local`` trains networks in parallel worker processes: each starts
Python and torch afresh (a few seconds), which a small population does not win back."""


class InProcessExecutor:
    """``local``: jobs one after another in this process; with ``parallel``, several at a time in worker
    processes where :meth:`for_work` finds that it pays. ``serial`` never starts processes.

    Small networks leave cores idle when one network uses them all, so on a CPU a worker per core, one
    thread each, trains a population faster than one network after another (the demo: 1.5x on 2 cores;
    docs/benchmarks.md, "Demo wall time").
    """

    name = "local"

    def __init__(self, parallel: bool = True, together: int | None = None):
        self.parallel, self.together = parallel, together
        self.description = "local" if parallel else "serial"  # what the manifest records; for_work may refine it

    def for_work(self, n_groups: int, estimated_seconds: float, device: str) -> "InProcessExecutor | ProcessExecutor":
        """The executor for ``n_groups`` groups of jobs estimated to take ``estimated_seconds`` one after another on
        ``device``: worker processes on a CPU with several cores and more than :data:`PARALLEL_FROM_SECONDS`
        of work, else this one. Records the choice in :attr:`description` (the run's manifest)."""
        self.description = "local" if self.parallel else "serial"  # this run's choice, not an earlier run's
        cores = cpu_budget()
        if (not self.parallel or not device.startswith("cpu") or n_groups < 2 or cores < 2
                or estimated_seconds < PARALLEL_FROM_SECONDS):
            return self
        workers = min(n_groups, cores)
        chosen = ProcessExecutor(workers, threads=max(1, cores // workers))
        self.description = chosen.description
        return chosen

    def trains_on_gpu(self, device: str) -> bool:
        from curate.options import runs_on_gpu

        return runs_on_gpu(device)

    def run_once(self, fn, n_jobs):
        return fn()

    def close(self) -> None:
        pass

    def map(self, fn, groups, progress=None):
        for group in groups:
            yield group, fn(group, progress)


def cpu_budget() -> int:
    """The cores this run may use: OMP_NUM_THREADS where set (to share the machine), else every core."""
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    return int(wanted) if wanted.isdigit() and int(wanted) > 0 else max(1, os.cpu_count() or 1)


class ProcessExecutor:
    """Run jobs ``workers`` at a time in fresh worker processes of this machine, ``threads`` torch threads each.

    Workers are spawned (not forked: a forked child inherits torch's thread pool mid-use) and read the
    run's decoded pixels memory-mapped, one copy shared by all. Their training steps reach the caller's
    progress bar through a queue. If the caller stops (an error, Ctrl+C) the workers are terminated; the
    jobs that finished were stored and a rerun resumes from them. As with any use of multiprocessing, a
    Python script that calls curate must do so under ``if __name__ == "__main__":`` (a worker imports
    the script), or choose ``executor="serial"``.
    """

    name = "local"

    together = None

    def __init__(self, workers: int, threads: int = 1):
        if workers < 1 or threads < 1:
            raise ValueError(f"workers and threads must be at least 1, got {workers} and {threads}.")
        self.workers, self.threads = workers, threads

    @property
    def description(self) -> str:
        return f"local ({self.workers} worker processes, {self.threads} thread{'s' * (self.threads > 1)} each)"

    def map(self, fn, jobs, progress=None):
        import multiprocessing
        import threading
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        context = multiprocessing.get_context("spawn")
        steps = context.SimpleQueue() if progress is not None else None
        relay = None
        if steps is not None:
            def forward() -> None:
                while (done := steps.get()) is not None:
                    progress(done)
            relay = threading.Thread(target=forward, name="curate-progress", daemon=True)
            relay.start()
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                   initargs=(self.threads, steps, os.getpid()))
        pending = {}
        try:
            pending = {pool.submit(_run_in_worker, fn, job): job for job in jobs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise RuntimeError(
                            f"A worker process stopped while training {job.name}: out of memory or killed, or, from a "
                            "Python script, the script calls curate outside `if __name__ == \"__main__\":` (each "
                            "worker imports it). The jobs that finished are stored; run again to resume (--executor "
                            "serial trains one network at a time in this process).") from None
                    yield job, result
        finally:
            if pending:  # stopped early: do not leave networks training
                for future in pending:
                    future.cancel()
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            if steps is not None:
                steps.put(None)
                relay.join()


WORKER_START = ("curate was called while a worker process was starting: each worker imports the script that "
                "started the run, and this script calls curate at import. Put the call under "
                "`if __name__ == \"__main__\":`, or pass executor=\"serial\".")


def check_not_starting_worker() -> None:
    """Refuse to run while a spawned worker imports its parent's script (an unguarded call would start a run in
    every worker); multiprocessing's own check comes only later, after images are read."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(WORKER_START)


_worker_steps = None


def _start_worker(threads: int, steps, parent: int) -> None:
    global _worker_steps
    _die_with(parent)
    # Read by curate.population.train.configure_threads when a job starts: the job's share of the cores.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    _worker_steps = steps


def _die_with(parent: int) -> None:
    """End this worker when the process that started it ends, however it ends. A killed ``curate run`` (SIGTERM,
    SIGKILL, a closed terminal) runs no cleanup, and its workers went on training their networks for minutes,
    on the cores of whatever ran next. Linux only (prctl); elsewhere a worker ends after its job."""
    import signal

    libc = _linux_libc()
    if libc is None:
        return
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the request took hold
        os._exit(1)


def _run_in_worker(fn, job):
    report = _worker_steps.put if _worker_steps is not None else None
    try:
        return fn(job, report)
    finally:
        _release_memory()


def _release_memory() -> None:
    """Give a finished job's memory back before the next one: glibc keeps freed heap pages of torch's
    CPU tensors (200-400 MB a job on 1,500 CIFAR images), and a worker runs several jobs."""
    import gc

    gc.collect()
    libc = _linux_libc()
    if libc is not None and hasattr(libc, "malloc_trim"):  # glibc's; musl has nothing to trim
        libc.malloc_trim(0)


def _linux_libc():
    """The C library of this Linux process, for prctl and malloc_trim; None elsewhere."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


class RayExecutor:
    """Run jobs as Ray tasks: in parallel, each where its resources are, retried when its worker dies.

    Args:
        address: a Ray cluster to join (``ray://HOST:PORT`` for Ray Client, ``auto`` for one started with
            ``ray start`` on this machine); None joins ``RAY_ADDRESS`` if set, else starts a local Ray
            instance for the run and stops it afterwards.
        job_cpus, job_gpus: what each job asks for. None: a GPU per job when the cluster has GPUs and
            ``device`` allows them, and an even share of the cluster's CPUs (at least one, at most a node's).
        max_retries: how often a job whose worker process or node dies is run again. An exception raised
            by the job itself is not retried: it would only fail again; it stops the run with its message.
        num_cpus: CPUs of a local instance this executor starts (None: all of this machine's).
    """

    def __init__(self, address: str | None = None, *, job_cpus: float | None = None, job_gpus: float | None = None,
                 max_retries: int = 3, device: str = "auto", num_cpus: int | None = None, together: int | None = None):
        self.address, self.job_cpus, self.job_gpus, self.together = address, job_cpus, job_gpus, together
        self.max_retries, self.device, self.num_cpus = max_retries, device, num_cpus
        self.resources: dict[str, float] = {}
        self.pixels_via = ""
        self._connected = False  # by trains_on_gpu, before map: map disconnects

    name = "ray"

    @property
    def cluster(self) -> str | None:
        """The address of the cluster to join; None: start a local instance."""
        return self.address or os.environ.get("RAY_ADDRESS") or None

    @property
    def description(self) -> str:
        """What the manifest records: the cluster joined and what each job asked for."""
        asked = ", ".join(f"{v:g} {k.removeprefix('num_')}" for k, v in self.resources.items())
        via = f"; pixels {self.pixels_via}" if self.pixels_via else ""
        return f"{self.name} ({self.cluster or 'a local instance'}; {asked or 'no job run'} per job{via})"

    def for_work(self, n_jobs: int, estimated_seconds: float, device: str) -> "RayExecutor":
        return self  # Ray decides where and how many at a time

    def trains_on_gpu(self, device: str) -> bool:
        """``--job-gpus`` where given, else whether the cluster has a GPU for each job: asked before the run is
        configured, so a run started on a laptop gets the batch size of the cluster's GPUs, not of its CPU."""
        if device.startswith("cpu") or self.job_gpus == 0:
            return False
        if self.job_gpus is not None:
            return True
        return self._job_resources(self._connected_ray(), 1)["num_gpus"] > 0

    def run_once(self, fn, n_jobs):
        """On one of the cluster's workers, with a job's resources: a run started on a laptop is timed on the
        cluster's GPUs, not on the laptop."""
        ray = self._connected_ray()
        task = ray.remote(_call).options(max_retries=self.max_retries, retry_exceptions=False,
                                         **self._job_resources(ray, n_jobs))
        return _result(ray, task.remote(fn), None)

    def _connected_ray(self):
        """Ray, connected: by this executor if no one had (then :meth:`map` or :meth:`close` disconnects)."""
        ray = import_ray()
        if not ray.is_initialized():
            self._connect(ray)
            self._connected = True
        return ray

    def close(self) -> None:
        """Disconnect from Ray if :meth:`trains_on_gpu` connected and no :meth:`map` did since (a run that failed
        between the two, or resumed every network from disk)."""
        if self._connected:
            import_ray().shutdown()
            self._connected = False

    def map(self, fn, jobs, progress=None):
        ray = import_ray()
        jobs = list(jobs)
        started_here = self._connected or not ray.is_initialized()
        if not ray.is_initialized():
            self._connect(ray)
        try:
            self.resources = self._job_resources(ray, len(jobs))
            task = ray.remote(_run_job).options(max_retries=self.max_retries, retry_exceptions=False,
                                                **self.resources)
            fn_ref = ray.put(self._by_reference_where_possible(ray, fn))  # shipped once, shared by every job
            pending = {task.remote(fn_ref, job): job for job in jobs}
            try:
                while pending:
                    [ref], _ = ray.wait(list(pending), num_returns=1)
                    job = pending.pop(ref)
                    yield job, _result(ray, ref, job)
            finally:
                for ref in pending:  # the caller stopped (an error, Ctrl+C): do not leave work running
                    ray.cancel(ref, force=True)
        finally:
            if started_here:
                ray.shutdown()
                self._connected = False

    def _by_reference_where_possible(self, ray, fn):
        """``fn`` as the workers receive it: without its pixels when every node reads its ``pixel_file``
        (memory-mapped, one copy per machine), else carrying them through Ray's object store."""
        pixel_file = getattr(fn, "pixel_file", None)
        if pixel_file is None:
            self.pixels_via = "through the object store"
            return fn
        blind = nodes_not_reading(ray, pixel_file)
        if not blind:
            self.pixels_via = f"read from {pixel_file.path} on every node"
            return fn
        warnings.warn(
            f"{len(blind)} Ray node(s) ({', '.join(blind[:3])}) cannot read the decoded pixels at {pixel_file.path}, so "
            f"they go through Ray's object store ({pixel_file.nbytes / 2**30:.1f} GiB). For datasets larger than the "
            "object store, put the run directory (--run-dir) on a filesystem every node mounts at the same path.",
            stacklevel=2)
        self.pixels_via = "through the object store"
        return fn.carrying_pixels()

    def _connect(self, ray) -> None:
        import logging

        import curate

        address = self.cluster
        kwargs = dict(address=address, include_dashboard=False, log_to_driver=False,
                      logging_level=logging.WARNING)
        if address is None:
            kwargs["num_cpus"] = self.num_cpus
        else:
            # The cluster's workers run this curate, not whatever version their nodes have installed.
            kwargs["runtime_env"] = {"py_modules": [os.path.dirname(curate.__file__)]}
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise ValueError(f"Cannot join the Ray cluster at {address!r}: {exc}. Check the address "
                             "(ray://HOST:10001 for Ray Client) or leave RAY_ADDRESS unset to start a local one.") from None

    def _job_resources(self, ray, n_jobs: int) -> dict[str, float]:
        cluster = ray.cluster_resources()
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        node_cpus = max([node.get("CPU", 0) for node in nodes] or [1])
        node_gpus = max([node.get("GPU", 0) for node in nodes] or [0])
        gpus = self.job_gpus
        if gpus is None:
            gpus = 1 if cluster.get("GPU", 0) >= 1 and not self.device.startswith("cpu") else 0
        cpus = self.job_cpus
        if cpus is None:
            cpus = 1 if gpus else max(1, min(node_cpus, int(cluster.get("CPU", 1) // max(1, n_jobs))))
        for what, asked, have in (("CPUs", cpus, node_cpus), ("GPUs", gpus, node_gpus)):
            if asked > have:
                raise ValueError(f"Each job asks for {asked:g} {what}, but no node of the Ray cluster has more than "
                                 f"{have:g}; lower --job-{what[:3].lower()}.")
        return {"num_cpus": cpus, "num_gpus": gpus}


def nodes_not_reading(ray, pixel_file) -> list[str]:
    """The alive nodes of the cluster on which ``pixel_file`` cannot be read (by address)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(_can_read)
    asked = {node["NodeManagerAddress"]: check.options(
        num_cpus=0, max_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(pixel_file)
        for node in ray.nodes() if node.get("Alive")}
    return [address for address, ref in asked.items() if not ray.get(ref)]


def _can_read(pixel_file) -> bool:
    return pixel_file.readable()


def _run_job(fn, job):
    return _call(functools.partial(fn, job, None))


def _call(fn):
    # Ray sets OMP_NUM_THREADS to the task's CPUs, so torch uses exactly what the job asked for.
    try:
        return fn()
    finally:
        _release_memory()  # Ray reuses its worker processes too


def _result(ray, ref, job: MemberJob | None):
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        raise exc.as_instanceof_cause() from None
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError) as exc:
        what = f"Job {job.name}" if job is not None else "The cost estimate's warm-up"
        raise RuntimeError(f"{what} failed on every try: {type(exc).__name__}. The jobs that finished are "
                           "stored; running the same command again resumes from them.") from exc


def import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


def make_executor(spec: str = "local", *, job_cpus: float | None = None, job_gpus: float | None = None,
                  device: str = "auto", together: int | None = None) -> InProcessExecutor | RayExecutor:
    """``local`` -> :class:`InProcessExecutor` (worker processes where they pay), ``serial`` -> one that
    never starts them; ``ray`` or ``ray://HOST:PORT`` (``ray:auto``) -> :class:`RayExecutor`. ``together``:
    networks trained as one batched computation (None: :func:`curate.population.pipeline.networks_together`)."""
    if together is not None and (isinstance(together, bool) or not isinstance(together, int) or together < 1):
        raise ValueError(f"--train-together must be a whole number of networks, at least 1; got {together!r}.")
    if spec in ("local", "serial", ""):
        if job_cpus is not None or job_gpus is not None:
            raise ValueError("--job-cpus and --job-gpus ask Ray for resources; add --executor ray.")
        return InProcessExecutor(parallel=spec != "serial", together=together)
    if spec == "ray" or spec.startswith("ray:"):
        address = None if spec == "ray" else (spec if spec.startswith("ray://") else spec.partition(":")[2])
        import_ray()
        return RayExecutor(address, job_cpus=job_cpus, job_gpus=job_gpus, device=device, together=together)
    raise ValueError(f"--executor must be one of {', '.join(EXECUTORS)} (or ray:auto), got {spec!r}.")
