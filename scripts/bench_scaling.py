#!/usr/bin/env python
"""Benchmark: how each stage of a run grows with the number of images, in time and memory.

Synthetic images made here (10 classes of coloured shapes on textured backgrounds, JPEG, at 32 and 224 px)
go through the real pipeline at 2,000 / 20,000 / 100,000 images, one fresh process per point so that its
peak memory is its own. The networks are not trained there: a synthetic executor returns plausible
probabilities for every job at once, so that every stage *around* the population (decode, pixel checks,
duplicates, the population's bookkeeping, scores and flags, the run store, the FiftyOne write, the Brain
fields, the export) is timed at full size. Training and prediction are timed separately with the run's
own model on the run's own decoded images: seconds per image on a sample, times the images a network
trains on (per network-epoch) or predicts.

    python scripts/bench_scaling.py                                   # 32 px and 224 px, 2k / 20k / 100k
    python scripts/bench_scaling.py --sizes 32 --counts 2000,20000    # a quick look
    python scripts/bench_scaling.py --pixels-only                     # pixel checks against 07cb563 only
    python scripts/bench_scaling.py --sizes 224 --counts 100000 --merge   # one more point into --out

Peak memory is the resident memory of the whole process tree (the run, its worker processes and the
mongod it starts), sampled every 50 ms. The fitted growth is ``time = a * n ** b`` over the counts run
(``b`` near 1: linear) and the time and memory per image from the largest two counts.

``--pixels-only`` (also part of a full run): the pixel checks of the reference commit (07cb563, as a git
worktree) and of this checkout on the same files, one after the other: the demo's 1,797 digits and 2,000
synthetic images at each size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

STAGES = ("decode", "pixel checks", "duplicates", "population, no training", "scores and flags", "run store",
          "FiftyOne write", "Brain fields", "export", "training per network-epoch", "prediction per network")
MODEL_FOR_SIZE = {32: "resnet-small", 224: "tv:resnet18"}  # 224: the pretrained default's architecture


# ---------------------------------------------------------------- synthetic images

def _make_chunk(args) -> None:
    root, size, start, stop, seed = args
    from PIL import Image, ImageDraw, ImageFilter

    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        label = i % 10
        hue = np.array([np.cos(label * 0.63), np.cos(label * 0.63 + 2.1), np.cos(label * 0.63 + 4.2)])
        background = (120 + 60 * hue + rng.normal(0, 25, 3)).clip(0, 255)
        base = rng.normal(0, 18, (size, size, 3)) + background
        image = Image.fromarray(base.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(size / 64))
        draw = ImageDraw.Draw(image)
        r = size * rng.uniform(0.15, 0.3)
        cx, cy = rng.uniform(r, size - r, 2)
        box = (cx - r, cy - r, cx + r, cy + r)
        colour = tuple(int(v) for v in (255 - background + rng.normal(0, 20, 3)).clip(0, 255))
        [draw.ellipse, draw.rectangle, draw.polygon][label % 3](
            box if label % 3 < 2 else [(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
        folder = root / f"class{label}"
        image.save(folder / f"{i:06d}.jpg", quality=int(rng.integers(70, 95)))


def make_images(root: Path, size: int, n: int, seed: int = 0) -> Path:
    """``n`` JPEGs of ``size`` px in ``root/class<k>/``, and ``root/first-<n>.csv`` manifests of prefixes."""
    from concurrent.futures import ProcessPoolExecutor

    root.mkdir(parents=True, exist_ok=True)
    have = len(list(root.glob("class*/*.jpg")))
    if have < n:
        for k in range(10):
            (root / f"class{k}").mkdir(exist_ok=True)
        step = 2000
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_make_chunk, [(root, size, s, min(n, s + step), seed) for s in range(have, n, step)]))
    return root


def manifest(root: Path, n: int) -> Path:
    path = root / f"first-{n}.csv"
    with open(path, "w") as f:
        f.write("filepath,label\n")
        for i in range(n):
            f.write(f"{root / f'class{i % 10}' / f'{i:06d}.jpg'},class{i % 10}\n")
    return path


# ---------------------------------------------------------------- one point, in its own process

class MemorySampler(threading.Thread):
    """Peak resident memory of this process and its descendants since the last :meth:`reset`."""

    def __init__(self):
        super().__init__(daemon=True)
        import psutil

        self.process, self.peak = psutil.Process(), 0

    def current(self) -> int:
        total = 0
        for p in [self.process, *self.process.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # a worker that just exited
                pass
        return total

    def reset(self) -> None:
        self.peak = self.current()

    def run(self) -> None:
        while True:  # a daemon thread: it ends with the process
            time.sleep(0.05)
            self.peak = max(self.peak, self.current())


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class SyntheticExecutor:
    """Every job's result at once, without training: probabilities near the labels, copies near the dense."""

    name = description = "synthetic (no training)"

    def for_work(self, n_groups: int, estimated_seconds: float, device: str) -> "SyntheticExecutor":
        return self

    def map(self, fn, jobs, progress=None):
        for group in jobs:  # a JobGroup: its jobs' results, in order
            yield group, [self._result(job, fn) for job in group.jobs]

    @staticmethod
    def _result(job, fn):
        from curate.population.jobs import NetworkResult
        from curate.population.train import REGIONS

        config, labels, c = fn.config, fn.labels, fn.n_classes
        n, levels, n_probes = len(labels), config.n_levels, len(fn.probes)
        rng = np.random.default_rng(job.seed)
        held = fn.folds[job.member] == job.fold
        logits = rng.normal(0, 1.5, (n, c)).astype(np.float32)
        logits[np.arange(n), labels] += 3.0
        regions = np.full((len(REGIONS), n, c), np.nan, dtype=np.float32)
        regions[:, held] = softmax(logits[held] + rng.normal(0, 1, (len(REGIONS), int(held.sum()), c)))
        aum = np.where(held, np.nan, rng.normal(1, 1, n)).astype(np.float32)
        probe_logits = rng.normal(0, 2, (n_probes, c))
        return NetworkResult(
            dense=softmax(logits), control=softmax(logits + rng.normal(0, 0.3, (n, c))), regions=regions,
            probe_regions=softmax(probe_logits + rng.normal(0, 1, (len(REGIONS), n_probes, c))),
            compressed=softmax(logits + rng.normal(0, 0.5, (levels, n, c))),
            forgotten=softmax(logits + rng.normal(0, 1, (n, c))),
            forgotten_compressed=softmax(logits + rng.normal(0, 1, (len(config.sparsities), n, c))),
            aum=aum, probes=softmax(probe_logits + rng.normal(0, 0.5, (levels + 1, n_probes, c))),
            sparsity=np.linspace(0.3, 0.9, levels), footprint=np.ones((levels + 1, 3)),
            label_probe_index=np.zeros(0, dtype=np.int64), label_probe_label=np.zeros(0, dtype=np.int64))


def _timed_stages(timings: dict, sampler: MemorySampler, targets: list[tuple[object, str, str]]):
    """Wrap ``module.name`` so that its calls add to ``timings[stage]`` (seconds, peak bytes)."""
    for module, name, stage in targets:
        original = getattr(module, name)

        def wrapped(*args, __original=original, __stage=stage, **kwargs):
            sampler.reset()
            started = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                seconds, peak = timings.get(__stage, (0.0, 0))
                timings[__stage] = (seconds + time.perf_counter() - started, max(peak, sampler.peak))

        setattr(module, name, wrapped)


def _time_training(pixels, labels, n_classes, model_spec, image_size, images: int) -> tuple[float, float]:
    """Seconds per training image and per predicted image (with mirror averaging) of one network."""
    import torch

    from curate.population.models import build_model
    from curate.population.train import Normalizer, TrainSettings, predict_probs, train_dense

    pick = np.arange(min(images, len(labels)))
    subset = np.asarray(pixels[pick])
    mean, std = Normalizer.channel_stats(subset)
    normalize = Normalizer(mean, std, torch.device("cpu"))
    model = build_model(model_spec, n_classes).to(memory_format=torch.channels_last)
    settings = TrainSettings(epochs=1, batch_size=64, hflip=True)
    warm = min(len(pick), 128)
    train_dense(model, subset[:warm], labels[pick][:warm], normalize, settings, seed=0)
    started = time.perf_counter()
    train_dense(model, subset, labels[pick], normalize, settings, seed=0)
    train_seconds = (time.perf_counter() - started) / len(pick)
    predict_probs(model, subset[:warm], normalize, flip=True)
    started = time.perf_counter()
    predict_probs(model, subset, normalize, flip=True)
    predict_seconds = (time.perf_counter() - started) / len(pick)
    return train_seconds, predict_seconds


def run_point(csv: Path, size: int, n: int, home: Path, train_images: int) -> dict:
    """Every stage of one run on ``csv`` (``n`` images of ``size`` px): {stage: (seconds, peak bytes)}."""
    os.environ.update(FIFTYONE_DATABASE_DIR=str(home / "db"), CURATE_HOME=str(home / "curate"),
                      FIFTYONE_DO_NOT_TRACK="true")
    import curate.fiftyone.write as write
    import curate.population.pipeline as pipeline
    from curate import api
    from curate.fiftyone.source import load_source
    from curate.options import RunOptions

    sampler = MemorySampler()
    sampler.start()
    timings: dict[str, tuple[float, int]] = {}
    _timed_stages(timings, sampler, [
        (pipeline, "prepare_images", "decode"), (pipeline, "image_quality", "pixel checks"),
        (pipeline, "hash_pixels", "duplicates"), (pipeline, "image_hashes", "duplicates"),
        (pipeline, "file_digests", "duplicates"), (pipeline, "confirm_by_pixels", "duplicates"),
        (pipeline, "duplicate_pairs", "duplicates"), (pipeline, "feature_duplicates", "duplicates"),
        (pipeline, "group_duplicates", "duplicates"), (pipeline, "run_population", "population, no training"),
        (pipeline, "analyse", "scores and flags"), (pipeline, "flag_samples", "scores and flags"),
        (pipeline, "sample_table", "scores and flags"), (write, "write_brain_fields", "Brain fields")])
    images = load_source(str(csv), "ground_truth")
    assert len(images) == n, (len(images), n)
    model = MODEL_FOR_SIZE.get(size, "resnet-small")
    config = RunOptions(model=model, image_size=size, robustness_images=0).config_for(str(csv), n, size)
    sampler.reset()
    started = time.perf_counter()
    result = pipeline.run_curate(images, config, home / "run", SyntheticExecutor(), progress=False)
    whole = time.perf_counter() - started
    inner = sum(timings[s][0] for s in ("decode", "pixel checks", "duplicates", "population, no training",
                                        "scores and flags"))
    timings["run store"] = (whole - inner, sampler.peak)

    sampler.reset()
    started = time.perf_counter()
    write.push_run(result, f"scaling-{size}-{n}", "curate")
    timings["FiftyOne write"] = (time.perf_counter() - started - timings["Brain fields"][0], sampler.peak)
    sampler.reset()
    started = time.perf_counter()
    api.export(f"scaling-{size}-{n}", home / "export", fmt="csv")
    timings["export"] = (time.perf_counter() - started, sampler.peak)

    sampler.reset()
    pixels = np.memmap(home / "run" / f"images-{size}.u8", dtype=np.uint8, mode="r", shape=(n, 3, size, size))
    train_per_image, predict_per_image = _time_training(pixels, images.labels, len(images.classes), model, size,
                                                        train_images)
    n_train = n * (config.folds - 1) // config.folds
    timings["training per network-epoch"] = (train_per_image * n_train, sampler.peak)
    timings["prediction per network"] = (predict_per_image * n, sampler.peak)
    return {"size": size, "n": n, "model": model,
            "stages": {s: {"seconds": round(t, 3), "peak_mb": round(m / 2**20, 1)} for s, (t, m) in timings.items()},
            "train_seconds_per_image": train_per_image, "predict_seconds_per_image": predict_per_image,
            "train_sample": min(train_images, n)}


# ---------------------------------------------------------------- pixel checks against the reference

def pixel_rates(files: list[str], ref: Path) -> dict:
    """Images per second of the reference's and this checkout's pixel checks on ``files``, same machine."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "files.json"
        listing.write_text(json.dumps(files))
        for name, code, module in (("reference", ref, "curate.quality"), ("now", REPO, "curate.data.pixels")):
            script = (f"import json, time, sys; from {module} import measure_files; "
                      f"f = json.load(open({str(listing)!r})); t = time.perf_counter(); "
                      f"measure_files(f, progress=False); print(time.perf_counter() - t)")
            done = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(code)),
                                  capture_output=True, text=True, cwd=tmp)
            if done.returncode:
                sys.exit(f"pixel checks of {name} failed:\n{done.stderr[-2000:]}")
            seconds = float(done.stdout.strip().splitlines()[-1])
            out[name] = {"seconds": round(seconds, 3), "images_per_second": round(len(files) / seconds, 1)}
    out["speedup"] = round(out["now"]["images_per_second"] / out["reference"]["images_per_second"], 2)
    return out


DECODE_WAYS = {  # curate.data.images.decode_images forced one way or another
    "one thread": "images.POOL_MIN_WORK = float('inf'); decode(workers=1)",
    "threads": "images.POOL_MIN_WORK = float('inf'); decode(workers=min(8, 2 * os.cpu_count()))",
    "processes": "images.POOL_MIN_WORK = 0; decode()",
    "curate's choice": "decode()",
}


def decode_rates(files: list[str], size: int) -> dict:
    """Images per second decoding ``files`` at ``size`` px on one thread, on threads, and on a process per core
    (:func:`curate.data.images.decode_images` forced each way), each in a fresh process (the pool's start
    counted), after the files were read once (warm page cache) and the previous way's output written out
    and deleted."""
    for path in files:
        Path(path).read_bytes()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "files.json"
        listing.write_text(json.dumps(files))
        for name, code in DECODE_WAYS.items():
            cache = Path(tmp) / "cache"
            script = ("import json, os, time\nimport curate.data.images as images\n"
                      f"f = json.load(open({str(listing)!r}))\n"
                      f"def decode(**kw): images.decode_images(f, {size}, {str(cache / 'c.u8')!r}, progress=False, **kw)\n"
                      f"t = time.perf_counter(); {code}; print(time.perf_counter() - t)\n")
            os.sync()  # the previous way's cache is written out before this one is timed
            done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp,
                                  env=dict(os.environ, PYTHONPATH=str(REPO)))
            if done.returncode:
                sys.exit(f"decoding ({name}) failed:\n{done.stderr[-2000:]}")
            seconds = float(done.stdout.strip().splitlines()[-1])
            out[name] = {"seconds": round(seconds, 3), "images_per_second": round(len(files) / seconds, 1)}
            shutil.rmtree(cache)
    return out


def digits_files(where: Path) -> list[str]:
    from curate.fiftyone.source import load_source

    os.environ.setdefault("CURATE_HOME", str(where / "curate"))
    return list(load_source("digits", "ground_truth").filepaths)


# ---------------------------------------------------------------- fits, table, plot

def fit(points: list[tuple[int, float]]) -> dict:
    ns, ts = np.array([p[0] for p in points], float), np.array([max(p[1], 1e-6) for p in points])
    exponent = float(np.polyfit(np.log(ns), np.log(ts), 1)[0]) if len(ns) > 1 else float("nan")
    per_image = float((ts[-1] - ts[-2]) / (ns[-1] - ns[-2])) if len(ns) > 1 else float(ts[0] / ns[0])
    return {"exponent": round(exponent, 2), "seconds_per_image": per_image}


def summarise(points: list[dict]) -> dict:
    fits = {}
    for size in sorted({p["size"] for p in points}):
        mine = sorted((p for p in points if p["size"] == size), key=lambda p: p["n"])
        for stage in STAGES:
            series = [(p["n"], p["stages"][stage]["seconds"]) for p in mine if stage in p["stages"]]
            memory = [(p["n"], p["stages"][stage]["peak_mb"]) for p in mine if stage in p["stages"]]
            if not series:
                continue
            f = fit(series)
            mem_per_image = ((memory[-1][1] - memory[-2][1]) / (memory[-1][0] - memory[-2][0]) * 1024
                             if len(memory) > 1 else float("nan"))
            fits[f"{size}:{stage}"] = {**f, "kb_per_image": round(mem_per_image, 2)}
    return fits


def print_table(points: list[dict], fits: dict) -> None:
    from tabulate import tabulate

    for size in sorted({p["size"] for p in points}):
        mine = sorted((p for p in points if p["size"] == size), key=lambda p: p["n"])
        headers = ["stage"] + [f"{p['n']:,} images" for p in mine] + ["growth (n^b)", "ms / image", "KB / image"]
        rows = []
        for stage in STAGES:
            if stage not in mine[0]["stages"]:
                continue
            cells = [f"{p['stages'][stage]['seconds']:.1f} s, {p['stages'][stage]['peak_mb']:.0f} MB" for p in mine]
            f = fits[f"{size}:{stage}"]
            rows.append([stage, *cells, f"{f['exponent']:.2f}", f"{1000 * f['seconds_per_image']:.3f}",
                         f"{f['kb_per_image']:.1f}"])
        print(f"\n{size} px images ({mine[0]['model']}), seconds and peak memory of the process tree:")
        print(tabulate(rows, headers, tablefmt="github"))


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({p["size"] for p in points})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 4.8), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        mine = sorted((p for p in points if p["size"] == size), key=lambda p: p["n"])
        ns = [p["n"] for p in mine]
        colours = plt.get_cmap("tab20").colors
        for i, stage in enumerate(STAGES):
            if stage in mine[0]["stages"]:
                ax.plot(ns, [max(p["stages"][stage]["seconds"], 1e-3) for p in mine], marker="os^D"[i % 4],
                        color=colours[(2 * i) % 20 if i < 10 else 2 * (i - 10) + 1], label=stage)
        ax.plot(ns, [mine[0]["stages"]["decode"]["seconds"] * n / ns[0] for n in ns], "k:", lw=1,
                label="linear (from decode)")
        ax.set(xscale="log", yscale="log", xlabel="images", ylabel="seconds (2 CPU cores)",
               title=f"{size} px ({mine[0]['model']})")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32,224")
    parser.add_argument("--counts", default="2000,20000,100000")
    parser.add_argument("--max-count-224", type=int, default=None,
                        help="Largest count run at 224 px (each image is 150 KB decoded).")
    parser.add_argument("--train-images", type=int, default=2048,
                        help="Images the training and prediction rates are timed on (224 px: an eighth).")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "curate-bench-scaling")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_scaling.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "img" / "scaling.png")
    parser.add_argument("--ref", default="07cb563")
    parser.add_argument("--pixels-only", action="store_true", help="Only the pixel checks and decoding.")
    parser.add_argument("--decode-counts", default="2000,20000", help="Images to decode each way, per size.")
    parser.add_argument("--keep", action="store_true", help="Keep the images made in --work.")
    parser.add_argument("--replot", type=Path, help="Print the table and draw the plot of an earlier --out JSON.")
    parser.add_argument("--merge", action="store_true",
                        help="Add the points run now to those already in --out (same size and count: replaced).")
    parser.add_argument("--point", nargs=3, metavar=("CSV", "SIZE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.replot:
        report = json.loads(args.replot.read_text())
        print_table(report["points"], report["fits"])
        plot(report["points"], args.plot)
        return

    if args.point:  # one point, in its own process
        csv, size, n = Path(args.point[0]), int(args.point[1]), int(args.point[2])
        home = Path(tempfile.mkdtemp(prefix=f"scaling-{size}-{n}-", dir=args.work))
        try:
            print(json.dumps(run_point(csv, size, n, home, args.train_images if size < 100 else args.train_images // 8)))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return

    from bench_population import remove_worktree, worktree

    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(c) for c in args.counts.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict = {"command": " ".join(sys.argv), "cpus": os.cpu_count(), "points": [], "pixel_checks": {}}
    ref = worktree(args.ref)
    try:
        started = time.perf_counter()
        if args.merge and args.out.exists():
            earlier = json.loads(args.out.read_text())
            report["points"], report["pixel_checks"] = earlier["points"], earlier["pixel_checks"]
            report["decode"] = earlier.get("decode", {})
            report["command"] = f"{earlier['command']}; then {report['command']}"
        else:
            report["pixel_checks"]["digits (1,797, the demo's)"] = pixel_rates(digits_files(args.work), ref)
            for size in sizes:
                root = make_images(args.work / f"images-{size}", size, 2000)
                files = [line.split(",")[0] for line in manifest(root, 2000).read_text().splitlines()[1:]]
                report["pixel_checks"][f"synthetic {size} px (2,000)"] = pixel_rates(files, ref)
                for n in (int(c) for c in args.decode_counts.split(",")):
                    root = make_images(args.work / f"images-{size}", size, n)
                    files = [line.split(",")[0] for line in manifest(root, n).read_text().splitlines()[1:]]
                    report.setdefault("decode", {})[f"synthetic {size} px ({n:,})"] = decode_rates(files, size)
        for name, rates in report.get("decode", {}).items():
            print(f"decode, {name}: " + ", ".join(f"{way} {r['images_per_second']:,.0f} images/s"
                                                  for way, r in rates.items()))
        for name, rates in report["pixel_checks"].items():
            print(f"pixel checks, {name}: reference {rates['reference']['images_per_second']:,.0f} images/s, "
                  f"now {rates['now']['images_per_second']:,.0f} images/s ({rates['speedup']:.1f}x)")
        if not args.pixels_only:
            for size in sizes:
                for n in counts:
                    if size >= 100 and args.max_count_224 and n > args.max_count_224:
                        continue
                    t = time.perf_counter()
                    root = make_images(args.work / f"images-{size}", size, n)
                    made = time.perf_counter() - t
                    done = subprocess.run([sys.executable, __file__, "--point", str(manifest(root, n)), str(size), str(n),
                                           "--work", str(args.work), "--train-images", str(args.train_images)],
                                          capture_output=True, text=True)
                    if done.returncode:
                        sys.exit(f"{size} px x {n} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
                    point = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{\"size\"")))
                    point["make_images_seconds"] = round(made, 1)
                    report["points"] = [p for p in report["points"] if (p["size"], p["n"]) != (size, n)] + [point]
                    print(f"{size} px x {n:,}: " + ", ".join(f"{s} {v['seconds']:.1f} s"
                                                             for s, v in point["stages"].items()), flush=True)
            report["fits"] = summarise(report["points"])
            print_table(report["points"], report["fits"])
            plot(report["points"], args.plot)
            print(f"\nplot: {args.plot}")
        report["seconds"] = round(time.perf_counter() - started, 1)
    finally:
        remove_worktree(ref)
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
