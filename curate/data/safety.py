"""Nothing lost: where curate may write, what it may replace, and one writer at a time.

Every path curate writes to or replaces passes through here first:

* an output (export directory, weights file, report, screenshot, run directory) is refused when it
  is, contains or lies inside a folder that holds the dataset's images, so no output can land among
  or on top of the source media;
* ``--force`` replaces only what curate itself wrote: an export directory whose marker lists every
  file in it, a run directory whose manifest curate wrote, a report with curate's generator tag;
* two curate processes that would write the same run directory or the same dataset run hold an
  exclusive ``flock`` on a lock file; the kernel releases it when its holder exits or is killed, so
  a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path
from typing import Iterable, Iterator

EXPORT_MARKER = "curate_export.json"
REPORT_GENERATOR = "<meta name='generator' content='curate'>"
RUN_LOCK = ".curate.lock"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class OutputError(ValueError):
    """An output location that would put a user's files at risk; the message names them and the fix."""


class LockHeld(RuntimeError):
    """Another curate process is writing the same run; the message names it."""


def media_folders(filepaths: Iterable[str]) -> set[Path]:
    """The folders that directly hold the given images (resolved, so symlinked paths compare equal)."""
    # realpath once per folder, not per image: a million images sit in a few thousand folders.
    return {Path(os.path.realpath(folder)) for folder in {os.path.dirname(p) for p in filepaths}}


def run_media_folders(run_dir: str | os.PathLike) -> set[Path]:
    """The folders holding the images a run scored, and the source folder it read them from."""
    import pandas as pd

    root = Path(run_dir)
    folders = set()
    if (root / "samples.parquet").exists():
        folders = media_folders(pd.read_parquet(root / "samples.parquet", columns=["filepath"])["filepath"])
    try:
        source_root = json.loads((root / "manifest.json").read_text()).get("source_root")
    except (OSError, ValueError):
        source_root = None
    if source_root:
        folders.add(Path(os.path.realpath(source_root)))
    return folders


def _relation(out: Path, folder: Path) -> str | None:
    if out == folder:
        return "is"
    if folder.is_relative_to(out):
        return "contains"
    if out.is_relative_to(folder):
        return "lies inside"
    return None


def check_not_media(out: str | os.PathLike, folders: Iterable[Path], what: str) -> None:
    """Refuse ``out`` when it is, contains or lies inside one of ``folders`` (the source's media folders)."""
    resolved = Path(os.path.realpath(out))
    for folder in sorted(folders):
        relation = _relation(resolved, folder)
        if relation:
            raise OutputError(
                f"{what} {resolved} {relation} {'the' if relation == 'is' else 'a'} folder holding the dataset's "
                f"images ({folder}); curate never writes among or over source images. Choose a directory "
                "outside the image folders.")


def _listing(paths: list[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def files_under(root: Path) -> list[str]:
    """Every file and symlink under ``root``, as sorted paths relative to it."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def check_replaceable_export(out: Path) -> None:
    """Refuse to replace ``out`` unless it is an export curate wrote and holds nothing else.

    An export's marker (``curate_export.json``) lists every file the export wrote; a file that is not
    listed is someone else's, and ``--force`` does not delete it.
    """
    if not out.is_dir() or out.is_symlink():
        raise OutputError(f"{out} exists and is not a directory curate exported; choose another path.")
    marker = out / EXPORT_MARKER
    try:
        written = set(json.loads(marker.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        present = files_under(out)
        raise OutputError(
            f"{out} was not written by `curate export` (no {EXPORT_MARKER} listing its files"
            + (f"; it holds {_listing(present)}" if present else "")
            + "), so --force will not replace it. Choose a new directory, or move its contents away yourself.")
    foreign = [p for p in files_under(out) if p not in written and p != EXPORT_MARKER]
    if foreign:
        raise OutputError(f"{out} holds {len(foreign)} file(s) that curate did not write: {_listing(foreign)}. "
                          "--force replaces only what curate exported; move them away or choose a new directory.")


def check_replaceable_file(out: Path, kind: str) -> None:
    """Refuse to overwrite ``out`` unless it looks like a file curate writes of ``kind``.

    ``kind``: ``weights`` (a table with curate's columns), ``report`` (HTML with curate's generator
    tag) or ``screenshot`` (a PNG).
    """
    if out.is_dir():
        raise OutputError(f"{out} is a directory; give a file path.")
    if not out.exists():
        return
    try:
        with open(out, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise OutputError(f"Cannot read {out} to check what it is: {exc}.") from exc
    if kind == "weights":
        ours = (out.suffix.lower() == ".csv" and head.startswith(b"filepath,label,weight")) or (
            out.suffix.lower() == ".parquet" and head.startswith(b"PAR1"))
    elif kind == "report":
        ours = REPORT_GENERATOR.encode() in head
    elif kind == "screenshot":
        ours = head.startswith(PNG_SIGNATURE)
    else:
        raise ValueError(f"Unknown kind {kind!r}.")
    if not ours:
        raise OutputError(f"{out} exists and is not a {kind} file curate wrote; --force will not overwrite it. "
                          "Choose another path.")


def check_run_dir(run_dir: str | os.PathLike, folders: Iterable[Path]) -> Path:
    """Refuse a run directory among the source images, or one that holds files curate did not write.

    Returns the resolved path. An empty or missing directory is fine; so is one with a curate
    manifest (an earlier run, resumed or replaced).
    """
    path = Path(os.path.realpath(run_dir))
    check_not_media(path, folders, "Run directory")
    if path.exists() and not path.is_dir():
        raise OutputError(f"Run directory {path} exists and is not a directory; choose another --run-dir.")
    if path.is_dir() and not _is_run_dir(path):
        present = [p for p in files_under(path) if p != RUN_LOCK]
        if present:
            raise OutputError(f"--run-dir {path} already holds files curate did not write ({_listing(present)}); "
                              "curate keeps a run directory to itself. Choose a new or empty directory.")
    return path


def _is_run_dir(path: Path) -> bool:
    try:
        return "curate_version" in json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


# Locks this process holds, so that nested callers (the CLI, then push_run) take each only once.
_held: dict[str, int] = {}
_held_guard = threading.Lock()


def lock_path_for_dataset(dataset: str, run_key: str) -> Path:
    """The lock file of run ``run_key`` on FiftyOne dataset ``dataset`` (one per database directory)."""
    from curate.data.sources import default_cache_dir

    database = os.environ.get("FIFTYONE_DATABASE_URI") or os.environ.get("FIFTYONE_DATABASE_DIR") or "default"
    digest = sha256(f"{database}\0{dataset}\0{run_key}".encode()).hexdigest()[:16]
    return default_cache_dir() / "locks" / f"dataset-{digest}.lock"


@contextmanager
def exclusive(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, or raise :class:`LockHeld` at once.

    The lock is the kernel's ``flock``: it is released when the holder exits, however it exits, so a
    killed run leaves no stale lock. Re-entrant within one process.
    """
    key = os.path.realpath(path)
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise LockHeld(f"{what} is being written by another curate process ({holder}). Wait for it to finish "
                       "and run again; the lock goes away by itself when that process ends, even if it crashed.")
    os.ftruncate(fd, 0)
    os.pwrite(fd, (f"pid {os.getpid()} on {socket.gethostname()} since "
                   f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}").encode(), 0)
    with _held_guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def run_dir_lock(run_dir: str | os.PathLike):
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return exclusive(path / RUN_LOCK, f"Run directory {Path(os.path.realpath(path))}")


def dataset_lock(dataset: str, run_key: str):
    return exclusive(lock_path_for_dataset(dataset, run_key), f"Run {run_key!r} of FiftyOne dataset {dataset!r}")
