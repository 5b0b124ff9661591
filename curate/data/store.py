"""The run directory: everything a run computed, on disk, so FiftyOne only gets summaries.

Layout::

    <run_dir>/
      manifest.json          config, versions, status, timings, per-level accuracy, bad images
      images-<size>.u8       decoded pixels (memmap) + images-<size>.json index
      jobs/<job>.npz         one file per finished population job (resume point)
      probs.npz              out-of-sample dense (K, N, C) and compressed (L, K, N, C) probabilities,
                             and in-sample dense_in / compressed_in from the networks that trained on each image,
                             forgotten_in (and forgotten_compressed_in, the pruned copies) from those networks
                             after second-split forgetting
      samples.parquet        the per-sample table (one row per image)
      classes.csv            the per-class impact table (one row per level and class)
      levels.csv             the per-level summary

Writes go to a temporary file first and are renamed into place, so an interrupted run never
leaves a file that looks complete but is not.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# The layout of a run directory. A run directory of another version is refused, not converted:
# its jobs were computed by another curate and cannot be trusted to mean the same.
RUN_STORE_VERSION = 2


class RunStoreVersionError(ValueError):
    """A run directory written by a curate whose run-store layout differs from this one's."""


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def image_cache(self, size: int) -> Path:
        return self.root / f"images-{size}.u8"

    def job_path(self, name: str) -> Path:
        return self.root / "jobs" / f"{name}.npz"

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=False, default=_json_default)
        _atomic_write(self.root / name, lambda tmp: Path(tmp).write_text(text))

    def read_json(self, name: str) -> dict[str, Any] | None:
        path = self.root / name
        return json.loads(path.read_text()) if path.exists() else None

    def check_version(self) -> None:
        """Raise :class:`RunStoreVersionError` when the directory holds a run of another layout."""
        manifest = self.read_json("manifest.json")
        if manifest is None:
            return
        found = manifest.get("run_store_version", 1)
        if found != RUN_STORE_VERSION:
            raise RunStoreVersionError(
                f"Run directory {self.root} holds a run of curate {manifest.get('curate_version', '0.1.0')} "
                f"(run-store version {found}); this curate reads and writes version {RUN_STORE_VERSION}. Run "
                f"`curate run` again with a new --run-dir, or delete {self.root} and run again.")

    def save_job(self, name: str, fingerprint: str, **arrays: np.ndarray) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, fingerprint=np.array(fingerprint), **arrays)

        _atomic_write(self.job_path(name), write)

    def load_job(self, name: str, fingerprint: str) -> dict[str, np.ndarray] | None:
        """A finished job's arrays, or None when absent or computed under another configuration."""
        path = self.job_path(name)
        if not path.exists():
            return None
        try:
            with np.load(path) as data:
                if str(data["fingerprint"]) != fingerprint:
                    return None
                return {k: data[k] for k in data.files if k != "fingerprint"}
        except (OSError, ValueError, KeyError):
            return None  # a corrupt file is recomputed

    def save_probs(self, level_names: list[str], **arrays: np.ndarray) -> None:
        """Population probabilities (``dense``, ``compressed``, ``dense_in``, ``compressed_in``)."""
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, levels=np.array(level_names), **arrays)

        _atomic_write(self.root / "probs.npz", write)

    def load_probs(self) -> dict[str, np.ndarray]:
        with np.load(self.root / "probs.npz") as data:
            return {k: data[k] for k in data.files}

    def save_table(self, name: str, table: pd.DataFrame) -> None:
        if name.endswith(".parquet"):
            _atomic_write(self.root / name, lambda tmp: table.to_parquet(tmp, index=False))
        else:
            _atomic_write(self.root / name, lambda tmp: table.to_csv(tmp, index=False))

    def load_table(self, name: str) -> pd.DataFrame:
        path = self.root / name
        return pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")
