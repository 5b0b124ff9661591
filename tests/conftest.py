"""Test setup: a throwaway FiftyOne database (its own mongod) and curate cache per session."""

import os
import tempfile

_root = tempfile.mkdtemp(prefix="curate-tests-")
os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(_root, "mongo")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["CURATE_HOME"] = os.path.join(_root, "curate-home")
os.environ.pop("FIFTYONE_DATABASE_URI", None)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fo():
    """FiftyOne, connected to the test session's own mongod."""
    from curate.fo_db import import_fiftyone

    return import_fiftyone()


@pytest.fixture(scope="session")
def digits_images():
    from curate.sources import digits

    return digits()
