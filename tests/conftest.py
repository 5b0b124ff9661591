"""Test setup: a throwaway FiftyOne database (its own mongod) and curate cache per session."""

import atexit
import os
import shutil
import tempfile

_root = tempfile.mkdtemp(prefix="curate-tests-")
# A session's database and caches are a few hundred MB; leaving them behind fills small CI disks.
atexit.register(shutil.rmtree, _root, ignore_errors=True)
os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(_root, "mongo")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["CURATE_HOME"] = os.path.join(_root, "curate-home")
os.environ["FIFTYONE_PLUGINS_DIR"] = os.path.join(_root, "plugins")
os.environ.pop("FIFTYONE_DATABASE_URI", None)


def _start_mongod(db_dir: str) -> str:
    """A mongod of this process's own on a free local port, stopped at exit; returns its URI."""
    import socket
    import subprocess
    import time

    from curate.fiftyone.db import _mongod_path

    os.makedirs(db_dir, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mongod = subprocess.Popen([str(_mongod_path()), "--dbpath", db_dir, "--port", str(port), "--bind_ip", "127.0.0.1",
                               "--nounixsocket"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(lambda: (mongod.terminate(), mongod.wait(timeout=30)))  # runs before the rmtree above
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"mongodb://127.0.0.1:{port}"
        except OSError:
            if mongod.poll() is not None:
                raise RuntimeError(f"mongod for the tests exited with code {mongod.returncode}")
            time.sleep(0.1)
    raise RuntimeError(f"mongod for the tests did not listen on port {port} within 30 s")


# Under pytest-xdist (scripts/dev test runs a worker per core) each worker has its own share of the cores, so
# that the networks its tests train do not fight over threads (curate.population.executor.cpu_budget), and a
# mongod of its own: FiftyOne shares one database service a machine, whatever FIFTYONE_DATABASE_DIR says.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))
    os.environ["FIFTYONE_DATABASE_URI"] = _start_mongod(os.environ["FIFTYONE_DATABASE_DIR"])

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fo():
    """FiftyOne, connected to the test session's own mongod."""
    from curate.fiftyone.db import import_fiftyone

    return import_fiftyone()


@pytest.fixture(scope="session")
def digits_images():
    from curate.data.sources import digits

    return digits()


from helpers import SMALL, TINY, curate_process, invoke  # noqa: E402


@pytest.fixture(scope="session")
def digits_run(fo, tmp_path_factory):
    """The TINY demo on digits into dataset ``test-digits``; other tests reuse its run directory."""
    run_dir = tmp_path_factory.mktemp("digits-run")
    result = invoke("demo", "--clean", "--dataset", "test-digits", "--run-dir", str(run_dir), *TINY)
    assert result.exit_code == 0, result.output
    return fo.load_dataset("test-digits"), run_dir, result.output


@pytest.fixture(scope="session")
def small_source(digits_images, tmp_path_factory):
    """120 digits, 12 a class, as a CSV manifest: curate creates the dataset's samples itself."""
    import pandas as pd

    root = tmp_path_factory.mktemp("small-source")
    picked = [i for c in range(10) for i in (digits_images.labels == c).nonzero()[0][:12]]
    pd.DataFrame({"filepath": [digits_images.filepaths[i] for i in picked],
                  "label": [digits_images.classes[digits_images.labels[i]] for i in picked]}).to_csv(
        root / "digits.csv", index=False)
    return str(root / "digits.csv")


@pytest.fixture(scope="session")
def small_run(fo, small_source, tmp_path_factory):
    """An uninterrupted in-process run of ``SMALL`` on ``small_source`` into dataset ``fault-baseline``: what
    the fault-injection and Ray tests' runs must reproduce. Returns its run directory."""
    run_dir = tmp_path_factory.mktemp("small-run")
    done = curate_process("run", small_source, "--dataset", "fault-baseline", "--run-dir", str(run_dir), *SMALL)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir
