#!/usr/bin/env python
"""Benchmark: the population against the reference commit, side by side on this machine, in one invocation.

Machines differ by 3x, so a figure from another day says little about speed. This script checks out the
reference commit (07cb563 unless ``--ref``) as a git worktree, runs the same ``curate`` command with it and
with this checkout, one after the other, each in a fresh ``CURATE_HOME`` and FiftyOne database, and prints
wall time, held-out accuracy of the dense networks and of every pruning level, and the PIE fraction per level.

    python scripts/bench_population.py demo --out out/bench_population_demo.json
    python scripts/bench_population.py demo --clean --out out/bench_population_demo_clean.json
    python scripts/bench_population.py cifar10n --n 10000 --out out/bench_population_cifar10n.json
    python scripts/bench_population.py cifar10n --n 10000 --only current --keep-runs out/runs --out out/bench_population_cifar10n_current.json
    python scripts/bench_population.py cifar10n --networks-of out/runs/current --out out/bench_population_cifar10n_networks.json
    python scripts/bench_population.py demo --with-serial --out out/bench_population_demo_executor.json
    python scripts/bench_population.py demo --clean --with-together 8 --out out/bench_population_demo_together.json
    python scripts/bench_population.py cifar10n --n 50000 --only current --args '--device cuda --quantize none
        --filter-prune none --distill none --robustness-images 0 --batch-size 512' --out out/bench_population_gpu.json

``--with-serial`` adds a third side: this checkout with ``--executor serial`` (one network after another in
one process, as the reference trains), which tells what the local worker processes save. ``--with-together N``
adds a side with ``--train-together N`` (N networks stacked as one batched computation, in one process), which
tells what stacking the networks gives on this machine's device.

``demo`` is ``curate demo`` (digits, into FiftyOne), as a new user runs it. ``cifar10n`` is ``curate run`` on a
CSV manifest of a seeded, stratified CIFAR-10N subset with its clean labels, with every default, without
FiftyOne; it also says, per level, whether the PIEs over-index on the images CIFAR-10N's human labellers got
wrong (the paper's finding), and, where the run has a control level, for the PIEs beyond it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worktree(ref: str) -> Path:
    path = Path(tempfile.gettempdir()) / f"curate-ref-{ref}"
    if not (path / "curate").exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-f", "--detach", str(path), ref], check=True,
                       capture_output=True)
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], capture_output=True)


def run_curate(code: Path, module: str, args: list[str], home: Path) -> tuple[float, str]:
    """Run ``python -m module args`` with ``code`` first on the import path; (wall seconds, output)."""
    env = dict(os.environ, PYTHONPATH=str(code), CURATE_HOME=str(home / "curate"),
               FIFTYONE_DATABASE_DIR=str(home / "db"), FIFTYONE_DO_NOT_TRACK="true", CURATE_LAUNCHER="curate")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=home, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{module} {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def summary(run_dir: Path) -> dict:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    levels = {row["level"]: row for row in manifest["levels"]}
    return {
        "accuracy": {name: row["accuracy"] for name, row in levels.items()},
        "pie_fraction": {name: row.get("pie_fraction", 0.0) for name, row in levels.items() if name != "dense"},
        # The wall time of the population's training loop where the run measured it (an older curate did not):
        # else the networks' own seconds summed.
        "population_seconds": ((manifest.get("population_seconds") or {}).get("measured")
                               or sum(manifest.get("job_seconds", {}).values())),
        "config": manifest["config"],
    }


def population_accuracy(networks: dict) -> float:
    """Accuracy of the members' mean held-out prediction (each image is held out from one network a member):
    what the label-noise score reads, against one network's accuracy in the levels table. ``networks`` comes from
    :func:`stored_networks` with ``keep_predictions``; their predictions are taken out of it."""
    held_out = [network.pop("held_out_probs") for network in networks.values()]
    labels = [network.pop("labels") for network in networks.values()][0]
    return float((sum(held_out).argmax(1) == labels).mean())


def keep_run(run_dir: Path, csv: Path, kept: Path) -> Path:
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(run_dir, kept)
    shutil.copy(csv, kept / "labels.csv")
    return kept


def cifar_manifest(n: int, seed: int, where: Path) -> Path:
    from bench_pies import cifar10n_subset

    images, _ = cifar10n_subset(n, seed)
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"cifar10n-{n}-{seed}.csv"
    with open(path, "w") as f:
        f.write("filepath,label\n")
        for p, y in zip(images.filepaths, images.labels):
            f.write(f"{p},{images.classes[y]}\n")
    return path


def stored_networks(run_dir: Path, labels_csv: Path, keep_predictions: bool = False) -> dict:
    """Held-out accuracy of every network a run directory has stored so far, per level, and its seconds.

    Reads the jobs of a run that was stopped (a CIFAR-10N population takes longer than a session on 2 cores);
    ``labels_csv`` is the run's ``filepath,label`` manifest. Also how often each copy of a network changes
    the network's own held-out prediction, the control copy (fine-tuned, no weight removed) included.
    """
    import numpy as np
    import pandas as pd

    from curate.population.config import CurateConfig
    from curate.science.crossfit import stratified_folds

    config = CurateConfig.from_dict(json.loads((run_dir / "manifest.json").read_text())["config"])
    paths = json.loads((run_dir / f"images-{config.image_size}.json").read_text())["filepaths"]
    table = pd.read_csv(labels_csv)
    classes = sorted(table["label"].astype(str).unique())
    label_of = dict(zip(table["filepath"], table["label"].astype(str)))
    labels = np.array([classes.index(label_of[p]) for p in paths])
    networks = {}
    for job in config.jobs():
        stored = run_dir / "jobs" / f"{job.name}.npz"
        if not stored.exists():
            continue
        arrays = np.load(stored)
        held = stratified_folds(labels, config.folds, config.member_seed(job.member)) == job.fold
        dense = arrays["dense"][held].argmax(1)
        versions = {"dense": arrays["dense"], "control": arrays["control"],
                    **dict(zip(config.level_names, arrays["compressed"]))}
        networks[job.name] = {
            "seconds": float(arrays["seconds"]),
            "accuracy": {name: float((p[held].argmax(1) == labels[held]).mean()) for name, p in versions.items()},
            "changed": {name: float((p[held].argmax(1) != dense).mean()) for name, p in versions.items()
                        if name != "dense"},
        }
        if keep_predictions:  # the dense network's probabilities on its held-out images, zero elsewhere
            networks[job.name].update(held_out_probs=np.where(held[:, None], arrays["dense"], 0.0), labels=labels)
    return networks


def human_errors(samples, human_labels) -> dict:
    """Whether a CIFAR-10N run's PIEs over-index on the images people mislabel (the paper's finding): for each
    level, any level and (where the run has a control level) the PIEs beyond it, the share of PIEs whose
    CIFAR-10N human label (``aggre``, ``random1``, ``worse``) is wrong against the base rate.

    ``samples`` is the run's ``samples.parquet``; ``human_labels`` CIFAR-10N's ``labels.csv`` indexed by
    each image's file path as the run has it. The run trained on the clean labels; the human labels only say
    which images people get wrong. A level's PIEs are the images whose modal label at that level differs
    from the dense networks' (the paper's definition; every curate version's table has both labels).
    """
    from bench_pies import enrichment

    table = human_labels.loc[samples["filepath"]]
    levels = [c[:-len("_label")] for c in samples.columns if c.startswith("prune") and c.endswith("_label")]
    pie_sets = {level: (samples[f"{level}_label"] != samples["dense_label"]).to_numpy() for level in levels}
    if "control_pie" in samples:  # the control level (fine-tuned, no weight removed) of a curate that has one
        pie_sets["control"] = samples["control_pie"].to_numpy(bool)
    pie_sets["any level"] = samples["pie"].to_numpy(bool)
    if "pie_beyond_control" in samples:
        pie_sets["beyond the control"] = samples["pie_beyond_control"].to_numpy(bool)
    return {name: {"pie_fraction": float(pies.mean()),
                   **{column: enrichment(pies, (table[column] != table["clean"]).to_numpy())
                      for column in ("aggre", "random1", "worse")}}
            for name, pies in pie_sets.items()}


def run_human_errors(run_dir: Path) -> dict:
    import pandas as pd

    from bench_pies import CIFAR10N

    table = pd.read_csv(CIFAR10N / "labels.csv")
    table.index = [str(CIFAR10N / p) for p in table["filepath"]]
    return human_errors(pd.read_parquet(run_dir / "samples.parquet"), table)


def print_human_errors(results: dict) -> None:
    print("\nPIEs and the images people mislabel (share of PIEs with a wrong human label / base rate):")
    print(f"{'':<20}" + "".join(f"{side + ' ' + what:>24}" for side in results for what in ("PIE %", "aggre / worse")))
    names = list(dict.fromkeys(name for r in results.values() for name in r))
    for name in names:
        cells = []
        for r in results.values():
            row = r.get(name)
            cells += ([f"{100 * row['pie_fraction']:.2f}",
                       f"{row['aggre']['ratio']:.2f}x / {row['worse']['ratio']:.2f}x"] if row else ["", ""])
        print(f"{name:<20}" + "".join(f"{c:>24}" for c in cells))


def print_stored(networks: dict) -> None:
    names = list(networks)
    print(f"{len(names)} stored networks: {', '.join(names)}")
    print(f"{'':<22}" + "".join(f"{n:>18}" for n in names))
    print(f"{'seconds':<22}" + "".join(f"{networks[n]['seconds']:>18.0f}" for n in names))
    for level in networks[names[0]]["accuracy"]:
        print(f"{'accuracy ' + level:<22}" + "".join(f"{networks[n]['accuracy'][level]:>18.3f}" for n in names))
    for level in networks[names[0]]["changed"]:
        print(f"{'% changed ' + level:<22}" + "".join(f"{100 * networks[n]['changed'][level]:>18.2f}" for n in names))


def print_run(run: dict) -> None:
    print(f"finished run: {run['population_seconds']:.1f} s training the population; held-out accuracy "
          f"{run['accuracy']['dense']:.4f} a dense network, {run['population_accuracy']:.4f} the members' mean "
          "prediction")
    for level, accuracy in run["accuracy"].items():
        pies = run["pie_fraction"].get(level)
        print(f"  {level:<10} accuracy {accuracy:.4f}" + (f"   PIEs {100 * pies:.2f}%" if pies is not None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["demo", "cifar10n"])
    parser.add_argument("--ref", default="07cb563")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["reference", "current"], help="run one side only (no ratio)")
    parser.add_argument("--clean", action="store_true",
                        help="demo: run today's demo on the untouched digits (`curate demo --clean`), the data the "
                             "reference's demo used; without it today's demo plants wrong labels and damage")
    parser.add_argument("--with-serial", action="store_true",
                        help="also run this checkout with --executor serial (one network after another)")
    parser.add_argument("--with-together", type=int, metavar="N",
                        help="also run this checkout with --train-together N (networks stacked as one)")
    parser.add_argument("--args", default="", metavar="'ARGS'",
                        help="more curate options for this checkout's sides, e.g. the GPU criterion's population: "
                             "'--device cuda --quantize none --filter-prune none --distill none --robustness-images 0'")
    parser.add_argument("--keep-runs", metavar="DIR",
                        help="cifar10n: keep each side's run directory under DIR/<side> (e.g. for bench_trust.py)")
    parser.add_argument("--networks-of", metavar="RUN_DIR",
                        help="cifar10n: read the networks a (stopped) run directory stored, instead of running; with "
                             "the run's own manifest CSV under RUN_DIR/labels.csv (--keep-runs writes it)")
    parser.add_argument("--write-manifest", metavar="DIR",
                        help="cifar10n: only write the subset's filepath,label CSV into DIR and print its path (to run "
                             "curate on it by hand, e.g. scripts/bench_gpu.sh)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.write_manifest:
        path = cifar_manifest(args.n, args.seed, Path(args.write_manifest))
        print(path)
        return
    if args.networks_of:
        run_dir = Path(args.networks_of)
        networks = stored_networks(run_dir, run_dir / "labels.csv", keep_predictions=True)
        if not networks:
            sys.exit(f"{run_dir} holds no finished network yet.")
        mean_accuracy = population_accuracy(networks)  # meaningful once every network is stored
        print_stored(networks)
        report = {"what": "stored networks", "run_dir": str(run_dir), "networks": networks}
        if json.loads((run_dir / "manifest.json").read_text()).get("status") == "complete":
            report["run"] = dict(summary(run_dir), population_accuracy=mean_accuracy,
                                 human_errors=run_human_errors(run_dir))
            print_run(report["run"])
            print_human_errors({"run": report["run"]["human_errors"]})
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2))
            print(f"wrote {args.out}")
        return

    scratch = Path(tempfile.mkdtemp(prefix="curate-bench-population-"))
    # A machine without the repository's history (a GPU machine sent a copy of the tree) runs --only current.
    ref = worktree(args.ref) if args.only != "current" else None
    # 07cb563 ran as curate.cli; later commits (a --ref of this session's start, say) as curate.
    ref_module = "curate.cli" if ref and (ref / "curate" / "cli.py").exists() else "curate"
    sides = {"reference": (ref, ref_module, []), "current": (REPO, "curate", [])}
    if args.only:
        sides = {args.only: sides[args.only]}
    if args.with_serial:
        sides["serial"] = (REPO, "curate", ["--executor", "serial"])
    if args.with_together:
        sides["together"] = (REPO, "curate", ["--train-together", str(args.with_together)])
    more = args.args.split()
    sides = {name: (code, module, extra + (more if code == REPO else [])) for name, (code, module, extra) in sides.items()}
    results = {}
    try:
        if args.what == "cifar10n":
            csv = cifar_manifest(args.n, args.seed, scratch)
            if args.keep_runs:
                print(f"A stopped run keeps what it stored: --keep-runs copies each side's run directory when the "
                      f"side ends or the script is interrupted (Ctrl+C); read it with --networks-of "
                      f"{args.keep_runs}/<side>", flush=True)
        for name, (code, module, extra) in sides.items():
            home = scratch / name
            home.mkdir()
            if args.what == "demo":
                # The reference's demo had no planted problems: --clean is what it ran (07cb563 lacks the flag).
                clean = ["--clean"] if args.clean and module == "curate" else []
                seconds, output = run_curate(code, module, ["demo", *clean, *extra], home)
                run_dir = home / "curate" / "runs" / "curate-digits" / "curate"
            else:
                run_dir = home / "run"
                seconds, output = run_curate(code, module, ["run", str(csv), "--no-fiftyone", "--run-dir",
                                                           str(run_dir), "-q", *extra], home)
            # Kept before anything reads it: a side costs an hour, and a reader that fails must not lose it.
            kept = keep_run(run_dir, csv, Path(args.keep_runs) / name) if args.keep_runs and args.what == "cifar10n" else None
            results[name] = {"wall_seconds": seconds, **summary(run_dir), "stdout": output}
            if kept:
                results[name]["kept_run_dir"] = str(kept)
            if args.what == "cifar10n":
                if code == REPO:  # the jobs' layout and configuration of this checkout's curate
                    results[name]["population_accuracy"] = population_accuracy(
                        stored_networks(run_dir, csv, keep_predictions=True))
                results[name]["human_errors"] = run_human_errors(run_dir)
            print(f"{name}: {seconds:.0f} s wall ({results[name]['population_seconds']:.0f} s training the population), "
                  f"dense held-out accuracy {results[name]['accuracy']['dense']:.3f} a network"
                  + (f", {results[name]['population_accuracy']:.3f} the members' mean prediction"
                     if "population_accuracy" in results[name] else ""), flush=True)
    except KeyboardInterrupt:
        if args.keep_runs and args.what == "cifar10n":
            for name in sides:
                if (scratch / name / "run").exists() and name not in results:
                    print(f"interrupted: kept {keep_run(scratch / name / 'run', csv, Path(args.keep_runs) / name)}")
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if ref:
            remove_worktree(ref)

    levels = list(next(iter(results.values()))["accuracy"])
    print(f"\n{args.what}: {' vs '.join(results)} ({args.ref} is the reference)")
    print(f"{'':<22}" + "".join(f"{name:>12}" for name in results))
    print(f"{'wall seconds':<22}" + "".join(f"{r['wall_seconds']:>12.0f}" for r in results.values()))
    for level in levels:
        print(f"{'accuracy ' + level:<22}" + "".join(f"{r['accuracy'].get(level, float('nan')):>12.3f}"
                                                    for r in results.values()))
    for level in levels[1:]:
        print(f"{'PIE % ' + level:<22}" + "".join(f"{100 * r['pie_fraction'].get(level, float('nan')):>12.2f}"
                                                 for r in results.values()))
    if args.what == "cifar10n":
        print_human_errors({name: r["human_errors"] for name, r in results.items()})
    report = {"what": args.what, "ref": args.ref, "n": args.n if args.what == "cifar10n" else 1797,
              "results": results}
    if "reference" in results and "current" in results:
        ratio = results["current"]["wall_seconds"] / results["reference"]["wall_seconds"]
        delta = results["current"]["accuracy"]["dense"] - results["reference"]["accuracy"]["dense"]
        print(f"wall time ratio (current / reference): {ratio:.2f}; dense accuracy change: {100 * delta:+.1f} points")
        report.update(wall_time_ratio=ratio, dense_accuracy_change=delta)
    if "serial" in results and "current" in results:
        speedup = results["serial"]["wall_seconds"] / results["current"]["wall_seconds"]
        print(f"worker processes: {speedup:.2f}x faster than one network after another")
        report.update(worker_process_speedup=speedup)
    if "together" in results and "current" in results:
        speedup = results["current"]["wall_seconds"] / results["together"]["wall_seconds"]
        print(f"--train-together {args.with_together}: {speedup:.2f}x the speed of the default")
        report.update(together=args.with_together, together_speedup=speedup)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
