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


from helpers import TINY, invoke  # noqa: E402


@pytest.fixture(scope="session")
def digits_run(fo, tmp_path_factory):
    """The TINY demo on digits into dataset ``test-digits``; other tests reuse its run directory."""
    run_dir = tmp_path_factory.mktemp("digits-run")
    result = invoke("demo", "--clean", "--dataset", "test-digits", "--run-dir", str(run_dir), *TINY)
    assert result.exit_code == 0, result.output
    return fo.load_dataset("test-digits"), run_dir, result.output
