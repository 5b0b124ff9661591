#!/usr/bin/env python
"""Carry a trained population from a GPU machine to another one in half the bytes.

A run directory's trained networks live in ``jobs/*.npz`` (float32 probabilities). ``pack`` writes them
into one tar with every float32 array stored as float16; ``unpack`` writes them back as float32 jobs
that ``run_curate`` (and so ``bench_flags.py``) resumes from, as if trained here. Rounding to float16
moves a probability by at most 0.05% of itself, or by 3e-8 where it is below 6e-5 (float16's subnormal
range); docs/benchmarks.md says which figures went this way.

    # on the GPU machine
    python scripts/bench_flags.py --n 50000 --batch-size 256 --device cuda --population-only --run-root runs
    python scripts/population_transfer.py pack runs/flags-aggre-<fingerprint> aggre.tar
    # here (the run directory keeps its name: it is the fingerprint the scoring run looks for)
    python scripts/population_transfer.py unpack aggre.tar runs/flags-aggre-<fingerprint>
    python scripts/bench_flags.py --n 50000 --batch-size 256 --run-root runs
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np


from curate.data.store import RunStore  # noqa: E402


def cast(data, source: type, target: type) -> dict[str, np.ndarray]:
    """Every array of an npz, with those of dtype ``source`` converted to ``target``."""
    return {k: data[k].astype(target) if data[k].dtype == source else data[k] for k in data.files}


def pack(run_dir: Path, out: Path) -> None:
    jobs = sorted((run_dir / "jobs").glob("*.npz"))
    if not jobs:
        raise SystemExit(f"No trained networks in {run_dir / 'jobs'}; train with --population-only first.")
    with tarfile.open(out, "w") as tar:
        for path in jobs:
            with np.load(path) as data:
                arrays = cast(data, np.float32, np.float16)
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            info = tarfile.TarInfo(path.name)
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
    print(f"packed {len(jobs)} networks into {out} ({out.stat().st_size / 1e6:.1f} MB)")


def unpack(archive: Path, run_dir: Path) -> None:
    store = RunStore(run_dir)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".npz") and "/" not in m.name]
        for member in members:
            with np.load(io.BytesIO(tar.extractfile(member).read())) as data:
                arrays = cast(data, np.float16, np.float32)
            # The store writes it (atomically, in its own format) under the fingerprint it was trained with.
            store.save_job(Path(member.name).stem, str(arrays.pop("fingerprint")), **arrays)
    print(f"unpacked {len(members)} networks into {run_dir / 'jobs'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="run directory -> tar of float16 jobs")
    p.add_argument("run_dir", type=Path)
    p.add_argument("archive", type=Path)
    u = sub.add_parser("unpack", help="tar of float16 jobs -> run directory's float32 jobs")
    u.add_argument("archive", type=Path)
    u.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.run_dir, args.archive)
    else:
        unpack(args.archive, args.run_dir)


if __name__ == "__main__":
    main()
