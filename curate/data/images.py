"""Decode every image once per run into a uint8 array ``(n, 3, size, size)``.

The decoded pixels are written to the run directory as a memory-mapped file, so a resumed run does
not decode again, and a dataset larger than memory is read from disk page by page. Images that
cannot be read (missing, truncated, not an image) are reported by path and left out.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from curate.data.faults import checkpoint

# Truncated files must fail loudly rather than decode as partly grey images.
ImageFile.LOAD_TRUNCATED_IMAGES = False


DECODE_WINDOW = 4096  # readable images copied into the final cache at a time


@dataclass(frozen=True)
class BadImage:
    path: str
    reason: str


def decode_one(path: str, size: int) -> np.ndarray:
    """Read one image as RGB, upright, resize its shorter side to ``size`` and centre-crop to a square."""
    with Image.open(path) as image:
        # JPEGs decode at 1/2, 1/4 or 1/8 scale when that still leaves both sides >= size: a large photo
        # bound for a small square need not be decoded in full.
        image.draft("RGB", (size, size))
        image.load()
        # Phone photos store their rotation in EXIF; the App shows them upright, so the models must too.
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except Exception:  # a malformed EXIF block must not make a readable image unreadable
            pass
        image = _to_rgb(image)
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        new = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(new, Image.BILINEAR)
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB with 8 bits a channel, scaling wide integer and float pixels instead of clipping them.

    PIL's own ``convert("RGB")`` clips 16-bit (``I;16``, ``I``) and float (``F``) pixels at 255, so a
    16-bit PNG or TIFF decodes as solid white. 16-bit images are scaled by 255/65535; 32-bit
    integer images by the range their values fit (8 bits, 16 bits, or their own), float images in
    [0, 1] by 255 and other float images by their own range.
    """
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image.convert("RGB")
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode == "I" and pixels.min() >= 0 and pixels.max() <= 255:
        scaled = pixels
    elif image.mode.startswith("I;16") or (image.mode == "I" and pixels.min() >= 0 and pixels.max() <= 65535):
        scaled = pixels * (255.0 / 65535.0)
    elif image.mode == "F" and pixels.min() >= 0 and pixels.max() <= 1.0:
        scaled = pixels * 255.0
    else:
        finite = pixels[np.isfinite(pixels)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scaled = (np.nan_to_num(pixels, nan=low) - low) * (255.0 / max(high - low, 1e-12))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L").convert("RGB")


def _try_decode(path: str, size: int) -> np.ndarray | BadImage:
    if not os.path.exists(path):
        return BadImage(path, "file not found")
    try:
        return decode_one(path, size)
    except Exception as exc:  # PIL raises OSError, UnidentifiedImageError, ValueError, DecompressionBombError
        return BadImage(path, f"{type(exc).__name__}: {exc}")


def decode_images(
    filepaths: list[str],
    size: int,
    cache_path: str | os.PathLike,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[BadImage]]:
    """Decode ``filepaths`` once into a uint8 memmap at ``cache_path``.

    Returns:
        ``(pixels, ok, bad)``: ``pixels`` ``(n_ok, 3, size, size)`` for the readable images in
        input order, ``ok`` a boolean mask over ``filepaths``, ``bad`` the unreadable ones.
    """
    from tqdm.auto import tqdm

    cache_path = Path(cache_path)
    index_path = cache_path.with_suffix(".json")
    if cache_path.exists() and index_path.exists():
        index = json.loads(index_path.read_text())
        if index["filepaths"] == list(filepaths) and index["size"] == size:
            ok = np.array(index["ok"], dtype=bool)
            bad = [BadImage(**b) for b in index["bad"]]
            return _open_cache(cache_path, int(ok.sum()), size), ok, bad

    n = len(filepaths)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = cache_path.with_suffix(".partial")
    full = np.lib.format.open_memmap(tmp_path, mode="w+", dtype=np.uint8, shape=(max(n, 1), 3, size, size))
    ok = np.zeros(n, dtype=bool)
    failed: list[tuple[int, BadImage]] = []
    with tqdm(total=n, desc="decode images", disable=not progress, unit="img") as bar:
        for rows, chunk_failed in _decode_into(full, tmp_path, filepaths, size, workers):
            ok[rows] = True
            ok[[row for row, _ in chunk_failed]] = False
            failed += chunk_failed
            if bar.n <= n // 2 < bar.n + len(rows):
                checkpoint("decode")
            bar.update(len(rows))
    bad = [reason for _, reason in sorted(failed, key=lambda f: f[0])]
    good = np.memmap(cache_path.with_suffix(".tmp"), dtype=np.uint8, mode="w+", shape=(max(int(ok.sum()), 1), 3, size, size))
    kept = np.flatnonzero(ok)
    for start in range(0, len(kept), DECODE_WINDOW):  # a window at a time: never every image in memory at once
        rows = kept[start:start + DECODE_WINDOW]
        good[start:start + len(rows)] = full[rows]
    good.flush()
    del full, good
    tmp_path.unlink()
    os.replace(cache_path.with_suffix(".tmp"), cache_path)
    index_path.write_text(json.dumps({
        "filepaths": list(filepaths), "size": size, "ok": ok.tolist(),
        "bad": [b.__dict__ for b in bad],
    }))
    return _open_cache(cache_path, int(ok.sum()), size), ok, bad


@dataclass(frozen=True)
class PixelFile:
    """The decoded pixels of a run on disk, by reference: a job in another process or on another machine
    opens them memory-mapped (one copy in each machine's page cache, shared by its processes) instead of
    receiving a copy of every image.

    Its size (from ``shape``) and ``digest`` (of its first and last MiB) tell whether a machine sees this very file.
    """

    path: str
    shape: tuple[int, ...]
    digest: str

    @classmethod
    def of(cls, path: str | os.PathLike, shape: tuple[int, ...]) -> "PixelFile":
        return cls(str(path), tuple(int(s) for s in shape), _edge_digest(path))

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def readable(self) -> bool:
        """Whether this machine sees the file (a shared filesystem mounted at the same path)."""
        try:
            return os.path.getsize(self.path) == self.nbytes and _edge_digest(self.path) == self.digest
        except OSError:
            return False

    def open(self) -> np.ndarray:
        return np.memmap(self.path, dtype=np.uint8, mode="r", shape=self.shape)


def _edge_digest(path: str | os.PathLike, span: int = 1 << 20) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        digest.update(file.read(span))
        file.seek(max(0, os.fstat(file.fileno()).st_size - span))
        digest.update(file.read(span))
    return digest.hexdigest()


def decoded_file(cache_path: str | os.PathLike, filepaths: list[str]) -> PixelFile | None:
    """The decoded cache at ``cache_path`` as a :class:`PixelFile` if it holds exactly ``filepaths`` (the readable
    images, in order), else None (pixels that did not come from :func:`decode_images`)."""
    cache_path = Path(cache_path)
    index_path = cache_path.with_suffix(".json")
    if not (cache_path.exists() and index_path.exists()):
        return None
    index = json.loads(index_path.read_text())
    kept = [path for path, ok in zip(index["filepaths"], index["ok"]) if ok]
    if kept != list(filepaths) or not kept:
        return None
    size = index["size"]
    return PixelFile.of(cache_path, (len(kept), 3, size, size))


DECODE_CHUNK = 256  # images a process decodes at a time


def _decode_into(full: np.ndarray, full_path: Path, filepaths: list[str], size: int, workers: int | None):
    """Decode ``filepaths`` into rows of ``full`` (the memmap at ``full_path``), yielding ``(rows, failed)``
    per finished chunk, ``failed`` holding ``(row, BadImage)``.

    Enough work goes to one process per core, each writing its rows into the file itself. Less work stays in
    this process: on threads for photos (PIL releases the GIL while it decodes them), on this thread for
    thumbnails, where the Python around each image holds the GIL and threads only add switching.
    ``scripts/bench_scaling.py`` measures the three ways.
    """
    n = len(filepaths)
    chunks = [range(start, min(n, start + DECODE_CHUNK)) for start in range(0, n, DECODE_CHUNK)]
    pixels = first_image_pixels(filepaths)
    done = 0
    if (os.cpu_count() or 1) > 1 and len(chunks) > 1 and worth_a_process_pool(len(filepaths), pixels):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        full.flush()
        try:  # spawn, not fork: the parent may hold torch's thread pools, which a forked child can deadlock on
            with ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("spawn")) as pool:
                work = ((str(full_path), chunk.start, filepaths[chunk.start:chunk.stop], size) for chunk in chunks)
                for chunk, failed in zip(chunks, pool.map(_decode_chunk, work)):
                    done += 1
                    yield chunk, failed
        except BrokenProcessPool:  # a worker could not start (a __main__ spawn cannot re-import): go on here
            pass
    if done == len(chunks):
        return
    workers = workers or (min(8, (os.cpu_count() or 2) * 2) if pixels >= THREADS_MIN_PIXELS else 1)
    with ThreadPoolExecutor(workers) as pool:
        for chunk in chunks[done:]:
            failed = []
            for row, result in zip(chunk, pool.map(lambda p: _try_decode(p, size), filepaths[chunk.start:chunk.stop])):
                if isinstance(result, BadImage):
                    failed.append((row, result))
                else:
                    full[row] = result
            yield chunk, failed


def _decode_chunk(args) -> list[tuple[int, BadImage]]:
    full_path, start, paths, size = args
    full = np.load(full_path, mmap_mode="r+")
    failed = []
    for row, path in enumerate(paths, start=start):
        result = _try_decode(path, size)
        if isinstance(result, BadImage):
            failed.append((row, result))
        else:
            full[row] = result
    full.flush()
    return failed


POOL_MIN_WORK = 10_000
"""Work goes to a pool of processes (one per core) from this much, counted as images x (1 + pixels per image /
3,000): about 7,500 images of 32 px or 600 of 224 px, where one process would take a few seconds. Below it,
starting the processes costs more than it saves (about a second)."""


THREADS_MIN_PIXELS = 3000  # images smaller than this (about 55 x 55) decode faster on one thread than on several


def first_image_pixels(filepaths: list[str]) -> int:
    """Pixels of the first image whose header reads (of the first 8): it stands for the rest."""
    for path in filepaths[:8]:
        try:
            with Image.open(path) as image:
                return image.size[0] * image.size[1]
        except Exception:
            continue
    return 0


def worth_a_process_pool(n_images: int, pixels_per_image: int) -> bool:
    """Whether reading ``n_images`` such images is enough work to pay for starting a process per core."""
    return n_images * (1 + pixels_per_image / 3000) >= POOL_MIN_WORK


def _open_cache(path: Path, n: int, size: int) -> np.ndarray:
    if n == 0:  # a memmap cannot be empty
        return np.empty((0, 3, size, size), dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(n, 3, size, size))


def load_in_memory(pixels: np.ndarray, budget_bytes: int | None = None) -> np.ndarray:
    """Copy a memmap into RAM when it fits within ``budget_bytes`` (default: a quarter of RAM)."""
    if budget_bytes is None:
        try:
            budget_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
        except (ValueError, OSError):
            budget_bytes = 2 << 30
    return np.array(pixels) if pixels.nbytes <= budget_bytes else pixels


def native_size(filepaths: list[str], sample: int = 256) -> int | None:
    """The median shorter side of (a seeded sample of) the images, read from their headers; None if none can be read."""
    if not filepaths:
        return None
    rng = np.random.default_rng(0)
    picked = filepaths if len(filepaths) <= sample else [filepaths[i] for i in rng.choice(len(filepaths), sample,
                                                                                            replace=False)]
    sides = []
    for path in picked:
        try:
            with Image.open(path) as image:  # the header only: no pixels are decoded
                sides.append(min(image.size))
        except Exception:  # unreadable images are reported when they are decoded
            continue
    return int(np.median(sides)) if sides else None
