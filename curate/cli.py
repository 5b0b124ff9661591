"""The ``curate`` command line: a thin shell over :mod:`curate.pipeline` and :mod:`curate.fo_push`."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import NoReturn

import click

from curate import __version__

DEMO_DATASET = "curate-digits"
# Digits are 8x8 and chiral: decode them at 16 px and never flip them.
DIGITS_PRESET = {"image_size": 16, "hflip": False}


def _table(rows, headers) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", floatfmt=".3f")


def _default_run_dir(dataset: str, run_key: str) -> Path:
    from curate.sources import default_cache_dir

    return default_cache_dir() / "runs" / dataset / run_key


def _parse_sparsities(_ctx, _param, value: str):
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give comma-separated fractions, e.g. 0.3,0.5,0.7,0.9.")


def _check_device(_ctx, _param, value: str):
    from curate.train import check_device

    try:
        return check_device(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc))


def _parse_list(_ctx, _param, value: str):
    return tuple(v.strip() for v in value.split(",") if v.strip() and v.strip() != "none")


class CurateUsageError(click.ClickException):
    """A plain error for the user: printed as ``Error: ...`` in red, exit status 2.

    Raised rather than exiting so that callers other than the shell (the App operator) can show
    the message.
    """

    exit_code = 2

    def show(self, file=None) -> None:
        click.secho(f"Error: {self.format_message()}", fg="red", err=True, file=file)


def _fail(message: str) -> NoReturn:
    raise CurateUsageError(message)


def population_options(f):
    options = [
        click.option("--model", default="resnet-small", show_default=True,
                     help="resnet-small[:WIDTH], tv:<torchvision model>, or package.module:factory."),
        click.option("--members", "-k", default=4, show_default=True, type=click.IntRange(min=2),
                     help="Population size K: every image gets exactly K out-of-sample predictions per level."),
        click.option("--folds", "-f", default=2, show_default=True, type=click.IntRange(min=2),
                     help="Cross-fitting folds F; each member trains F networks on (F-1)/F of the images."),
        click.option("--sparsities", default="0.3,0.5,0.7,0.9", show_default=True, callback=_parse_sparsities,
                     help="Global magnitude pruning levels, ascending."),
        click.option("--quantize", default="fp16,bf16,int8,int4,dyn-int8", show_default=True, callback=_parse_list,
                     help="Post-training quantization levels (weight-only; dyn-int8 is torch's dynamic "
                          "quantization of linear layers), or `none`."),
        click.option("--robustness-images", default=64, show_default=True, type=click.IntRange(min=0),
                     help="Held-out images per network corrupted ImageNet-C style (6 corruptions x 5 "
                          "severities) to compare dense and compressed robustness; 0 turns it off."),
        click.option("--label-probes", default=0.0, show_default=True, type=click.FloatRange(0.0, 0.2),
                     help="Share of each network's training images given a random wrong label; how the networks "
                          "fit these probes sets the label-noise count (fewer false alarms from weak "
                          "populations; docs/benchmarks.md). 0: off, confident learning counts."),
        click.option("--epochs", default=16, show_default=True, type=click.IntRange(min=1), help="Dense training epochs."),
        click.option("--finetune-epochs", default=6, show_default=True, type=click.IntRange(min=1),
                     help="Fine-tuning epochs per pruning level (sparsity ramps up over the first 60%)."),
        click.option("--batch-size", default=None, type=click.IntRange(min=2),
                     help="Batch size [default: images per network / 16, clipped to 32..256]."),
        click.option("--image-size", default=None, type=click.IntRange(min=8), help="Decode images to this square size [default: 32; digits 16]."),
        click.option("--hflip/--no-hflip", default=None, help="Random horizontal flips [default: on; off for digits]."),
        click.option("--seed", default=0, show_default=True, help="Base seed of partitions and initialisations."),
        click.option("--device", default="auto", show_default=True, callback=_check_device, help="auto, cpu or cuda[:i]."),
        click.option("--run-key", default="curate", show_default=True,
                     help="Name of the run on the dataset; fields are prefixed with it."),
        click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where heavy results go [default: ~/.cache/curate/runs/DATASET/RUN_KEY]."),
        click.option("--no-fiftyone", is_flag=True, help="Compute and store the run without writing to FiftyOne."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _build_config(source: str, n_images: int, opts: dict):
    from curate.pipeline import CurateConfig
    from curate.train import TrainSettings

    preset = DIGITS_PRESET if source == "digits" else {}
    image_size = opts["image_size"] if opts["image_size"] is not None else preset.get("image_size", 32)
    hflip = opts["hflip"] if opts["hflip"] is not None else preset.get("hflip", True)
    n_train = n_images * (opts["folds"] - 1) // max(1, opts["folds"])
    batch_size = opts["batch_size"] if opts["batch_size"] is not None else int(min(256, max(32, n_train // 16)))
    return CurateConfig(
        model=opts["model"], members=opts["members"], folds=opts["folds"], sparsities=opts["sparsities"],
        quantizations=opts["quantize"], robustness_images=opts["robustness_images"],
        image_size=image_size, seed=opts["seed"], device=opts["device"], label_probes=opts["label_probes"],
        train=TrainSettings(epochs=opts["epochs"], finetune_epochs=opts["finetune_epochs"], batch_size=batch_size,
                            hflip=hflip),
    )


def _print_flags(result) -> None:
    from curate.flags import CATEGORIES

    samples = result.samples
    n_pies = max(1, int(result.scores.is_pie_any.sum()))
    rows = []
    for name in CATEGORIES:
        chosen = samples[samples["category"] == name]
        top = chosen.sort_values(f"{name}_score", ascending=False)["reason"].head(1).tolist()
        rows.append([name, len(chosen), f"{100 * len(chosen) / n_pies:.0f}%", top[0] if top else ""])
    click.echo("\nPIEs by category (one each; highest-scoring example):")
    click.echo(_table(rows, ["category", "PIEs", "share", "example reason"]))
    noisy = int(samples["label_noise"].sum())
    click.echo(f"Suspected label errors, PIE or not: {noisy} ({100 * noisy / len(samples):.2f}%), "
               "each with a suggested label")
    view = result.manifest.get("in_sample_view")
    if view:
        # Which in-sample view the label-noise score read, and why, so a user can tell a memorising population.
        click.echo(f"  the networks fit {100 * view['fitted']:.1f}% of their training labels; confident learning "
                   f"believes {100 * view['labels_right']:.1f}% are right: in-sample view read {view['view']}")
    if "corruption" in samples:
        corrupt = int(samples["corruption"].sum())
        line = f"Degraded images (a pixel check fires), PIE or not: {corrupt} ({100 * corrupt / len(samples):.2f}%)"
        if corrupt and "corruption_check" in samples:
            # By each image's most severe check, so a reviewer knows what the corruption view holds.
            counts = samples.loc[samples["corruption"].astype(bool), "corruption_check"].value_counts()
            line += ": " + ", ".join(f"{check.replace('_', ' ')} {n}" for check, n in counts.items())
        click.echo(line)


def impact_summary(impact, alpha: float) -> str:
    """The per-class impact as the summary prints it: the significant classes as a table, or a line
    saying none was, and how many class tests could not be run (members that tie leave no variance)."""
    test = "Welch t-test, Holm-corrected, alpha " + f"{alpha}"
    impacted = impact[impact["significant"]]
    if len(impacted):
        # The recalls beside the relative change: +3,000% from a recall of 0.01 reads differently from -20% of 0.9.
        rows = [[r.level, r["class"], f"{r.dense_recall:.3f} -> {r.compressed_recall:.3f}",
                 f"{100 * r.normalized_change:+.1f}%", f"{r.p_adjusted:.2g}"]
                for _, r in impacted.sort_values("normalized_change").iterrows()]
        text = f"Classes significantly impacted ({test}):\n" + _table(
            rows, ["level", "class", "recall dense -> compressed", "normalised recall change", "p (adj.)"])
    else:
        text = f"No class significantly impacted by compression at any level ({test})."
    not_run = int(impact["p_value"].isna().sum())
    if not_run:
        text += (f"\n{not_run} of {len(impact)} class tests not run: the dense members scored those classes identically, and "
                 "so did the compressed ones, which leaves no spread to weigh a change against; more members "
                 "(--members) give it.")
    return text


def _print_summary(result, dataset_name: str | None, run_key: str, seconds: float) -> None:
    levels = result.levels
    click.echo("")
    click.secho(f"curate: {len(result.images)} images, {len(result.images.classes)} classes, "
                f"{result.config.members} members x {result.config.folds} folds, {seconds:.0f} s", bold=True)
    rows = [[r.level, r.kind, r.measured_sparsity, int(r.bits), f"{r.compression:.1f}x",
             f"{r.accuracy:.3f} ± {r.accuracy_std:.3f}", int(r.pies), f"{100 * r.pie_fraction:.2f}%",
             int(r.classes_impacted)] for r in levels.itertuples()]
    click.echo(_table(rows, ["level", "kind", "sparsity", "bits", "smaller", "accuracy (OOS)", "PIEs", "PIE %",
                             "classes impacted"]))
    n_pies = int(result.scores.is_pie_any.sum())
    click.echo(f"\nPIEs at any level: {n_pies} of {len(result.images)} ({100 * n_pies / len(result.images):.2f}%)")
    _print_flags(result)
    click.echo("\n" + impact_summary(result.impact, result.config.alpha))
    if result.bad_images:
        click.secho(f"\n{len(result.bad_images)} image(s) could not be read and were left out:", fg="yellow")
        for bad in result.bad_images[:20]:
            click.echo(f"  {bad.path}: {bad.reason}")
        if len(result.bad_images) > 20:
            click.echo(f"  ... and {len(result.bad_images) - 20} more (see manifest.json)")
    for warning in result.manifest.get("warnings", []):
        click.secho(f"\nWarning: {warning}", fg="yellow")
    click.echo(f"\nRun directory: {result.store.root}")
    if dataset_name:
        from curate.fo_push import names_for

        view = names_for(run_key, [])["views"]["all"]
        click.echo(f"FiftyOne dataset: {dataset_name} (run key {run_key!r}, tag, saved view {view!r})")
        launcher = _launcher()
        click.secho(f"Review in the App:  {launcher} app {dataset_name} --view {view}", fg="green")
        click.echo(f"HTML report:        {launcher} report {dataset_name}" +
                   ("" if run_key == "curate" else f" --run-key {run_key}"))


def _launcher() -> str:
    """How the user runs curate (``scripts/dev curate`` sets this), for commands we print."""
    return os.environ.get("CURATE_LAUNCHER", "curate")


def _load_dataset(name: str):
    """FiftyOne and the existing dataset ``name``, or a clear exit."""
    from curate.fo_db import DatabaseUnavailable, import_fiftyone

    try:
        fo = import_fiftyone()
    except DatabaseUnavailable as exc:
        _fail(str(exc))
    if not fo.dataset_exists(name):
        _fail(f"FiftyOne dataset {name!r} does not exist; run `curate run SOURCE --dataset {name}` first.")
    return fo, fo.load_dataset(name)


def _run(source: str, dataset: str | None, label_field: str, opts: dict) -> None:
    from curate.fo_db import DatabaseUnavailable
    from curate.pipeline import run_curate
    from curate.safety import LockHeld, check_run_dir, dataset_lock, media_folders, run_dir_lock
    from curate.sources import SourceError, load_source

    started = time.time()
    try:
        images = load_source(source, label_field)
        config = _build_config(source, len(images), opts)
        if images.sample_ids is not None and dataset and dataset != source:
            raise SourceError(f"Source {source!r} is a FiftyOne dataset: its fields are written to it, so "
                              f"--dataset must be {source!r} or left out, not {dataset!r}.")
        dataset = dataset or (source if images.sample_ids is not None else None)
        if dataset is None and not opts["no_fiftyone"]:
            raise SourceError("Name the FiftyOne dataset to write to with --dataset NAME (or pass --no-fiftyone).")
        if images.fields and dataset and not opts["no_fiftyone"]:
            # Before training, not after: a CSV column that clashes with a field would fail the push.
            from curate.fo_db import import_fiftyone
            from curate.fo_push import check_text_fields, run_field_clashes

            clashes = run_field_clashes(opts["run_key"], images.fields)
            if clashes:
                raise SourceError(f"CSV column(s) {clashes} would be overwritten by the fields run key "
                                  f"{opts['run_key']!r} writes; rename the column(s) or pick another --run-key.")
            fo = import_fiftyone()
            if fo.dataset_exists(dataset):
                check_text_fields(fo.load_dataset(dataset), images.fields)
        run_dir = opts["run_dir"] or _default_run_dir(dataset or "no-dataset", opts["run_key"])
        click.echo(f"Source: {images.description} ({len(images)} images, {len(images.classes)} classes)")
        for note in images.notes:
            click.secho(f"Note: {note}", fg="yellow")
        # Both locks before training, not only before writing: a second run would otherwise train for
        # an hour and then be refused. The kernel releases them if this process dies.
        run_dir = check_run_dir(run_dir, media_folders(images.filepaths))
        with contextlib.ExitStack() as locks:
            locks.enter_context(run_dir_lock(run_dir))
            if not opts["no_fiftyone"]:
                locks.enter_context(dataset_lock(dataset, opts["run_key"]))
            result = run_curate(images, config, run_dir, progress=not opts["quiet"])
            if not opts["no_fiftyone"]:
                from curate.fo_push import push_run

                click.echo(f"Writing fields, tags and views to FiftyOne dataset {dataset!r} ...")
                push_run(result, dataset, opts["run_key"])
    except (SourceError, ValueError, DatabaseUnavailable, LockHeld) as exc:
        _fail(str(exc))
    _print_summary(result, None if opts["no_fiftyone"] else dataset, opts["run_key"], time.time() - started)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="curate")
def main() -> None:
    """Find the images compressed models forget (Pruning Identified Exemplars) and review them in FiftyOne.

    \b
    Typical session:
      curate run path/to/images --dataset my-data   # train, prune, mark PIEs, write to FiftyOne
      curate plugin install                         # once: curate's operators in the App
      curate app my-data --view pies                # review in the App (tag confirmed/rejected/...)
      curate status my-data                         # review progress, what an export would do
      curate export my-data out/cleaned             # cleaned splits, every change explained
      curate weights my-data out/weights.csv        # PIE-upweighted sample weights for retraining
      curate report my-data                         # HTML report: the paper's analyses on your data
      curate runs my-data                           # list or delete recorded runs
    """


@main.command()
@click.argument("source")
@click.option("--dataset", "-d", default=None,
              help="FiftyOne dataset to write to (created if missing; defaults to SOURCE for a FiftyOne source).")
@click.option("--label-field", default="ground_truth", show_default=True,
              help="Classification field holding the labels, for a FiftyOne dataset source.")
@population_options
def run(source: str, dataset: str | None, label_field: str, **opts) -> None:
    """Train, compress and score a population on SOURCE, and mark its PIEs.

    SOURCE is a folder of class sub-folders (root/<class>/<image>), a CSV manifest with columns
    filepath,label[,split] (paths relative to the CSV allowed; other columns become text fields on
    the samples curate creates, e.g. annotator), the name of an existing FiftyOne
    dataset (labels from --label-field), or `digits` (scikit-learn's handwritten digits).

    Unreadable images are listed and left out. Results are stored in a run directory; running
    again with the same settings resumes from finished networks and replaces this run's fields,
    tag and views in FiftyOne without touching anything else.
    """
    _run(source, dataset, label_field, opts)


@main.command()
@click.option("--dataset", "-d", default=DEMO_DATASET, show_default=True, help="FiftyOne dataset to write to.")
@population_options
def demo(dataset: str, **opts) -> None:
    """Run curate on scikit-learn's handwritten digits (1,797 images, no download needed)."""
    _run("digits", dataset, "ground_truth", opts)


@main.command()
@click.argument("name")
@click.option("--view", default=None, help="Saved view to open, e.g. pies or pies-prune90.")
@click.option("--port", default=5151, show_default=True)
@click.option("--address", default="localhost", show_default=True, help="Address to bind; 0.0.0.0 to share.")
@click.option("--remote", is_flag=True, help="Serve without opening a browser (for SSH or headless use).")
def app(name: str, view: str | None, port: int, address: str, remote: bool) -> None:
    """Launch the FiftyOne App on dataset NAME and wait until interrupted."""
    fo, dataset = _load_dataset(name)
    target = dataset
    if view:
        if not dataset.has_saved_view(view):
            _fail(f"Dataset {name!r} has no saved view {view!r}; it has: {', '.join(dataset.list_saved_views()) or 'none'}.")
        target = dataset.load_saved_view(view)
    from curate.plugin import is_installed

    session = fo.launch_app(target, port=port, address=address, remote=remote, auto=not remote)
    click.echo(f"App at http://{address}:{port}/datasets/{name}  (Ctrl+C to stop)")
    if not is_installed():
        click.echo(f"To review from the App with curate's operators, run `{_launcher()} plugin install` once.")
    session.wait(-1)


@main.command()
@click.argument("name")
@click.option("--delete", "delete_key", default=None, metavar="RUN_KEY",
              help="Remove this run's fields, tag, views and record from the dataset (images and labels stay).")
def runs(name: str, delete_key: str | None) -> None:
    """List the curate runs recorded on FiftyOne dataset NAME (or delete one)."""
    from curate.fo_push import list_curate_runs, remove_run

    from curate.safety import LockHeld, dataset_lock

    _, dataset = _load_dataset(name)
    if delete_key:
        try:
            with dataset_lock(name, delete_key):
                removed = remove_run(dataset, delete_key)
        except LockHeld as exc:
            _fail(str(exc))
        if not removed:
            _fail(f"Dataset {name!r} has no run {delete_key!r}.")
        click.echo(f"Removed run {delete_key!r} from {name!r}.")
        return
    rows = list_curate_runs(dataset)
    if not rows:
        click.echo(f"No curate runs on {name!r}.")
        return
    click.echo(_table([list(r.values()) for r in rows], list(rows[0].keys())))


@main.command()
@click.argument("name", required=False)
@click.option("--run-key", default="curate", show_default=True, help="Which curate run of dataset NAME.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report on a run directory directly (e.g. one made with --no-fiftyone); no dataset needed.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML [default: report.html in the run directory].")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also photograph the report in headless Chromium and write this PNG.")
@click.option("--title", default=None, help="Page title [default: curate report: NAME].")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def report(name: str | None, run_key: str, run_dir: Path | None, out: Path | None, screenshot: Path | None,
           title: str | None, force: bool) -> None:
    """Write a self-contained HTML report of the run on dataset NAME: the paper's analyses on your data.

    Per-level accuracy and PIE fraction for pruning and quantization, dense accuracy on PIEs and
    without them, per-class impact with significance (the paper's Figure 2), robustness to
    corruptions, and galleries of the top images per category with their reasons. The report's
    path is recorded in the dataset's info (dataset.info["curate"][RUN_KEY]["report"]).
    """
    from curate.report import ReportError, write_report

    if (name is None) == (run_dir is None):
        _fail("Give a dataset NAME or --run-dir DIR (one of them).")
    dataset = None
    if name is not None:
        from curate.export import ExportError, run_record

        _, dataset = _load_dataset(name)
        try:
            run_dir = Path(run_record(dataset, run_key).run_dir)
        except ExportError as exc:
            _fail(str(exc))
    try:
        path = write_report(run_dir, out, title=title or f"curate report: {name or run_dir.name}", force=force)
    except ReportError as exc:
        _fail(str(exc))
    if dataset is not None:
        from curate.fo_push import update_run_info

        update_run_info(dataset, run_key, {"report": str(path.resolve())})
    click.echo(f"Report: {path.resolve()}  (open file://{path.resolve()} in a browser)")
    if screenshot is not None:
        from curate.browser import BrowserUnavailable, screenshot as photograph
        from curate.safety import OutputError, check_not_media

        try:
            from curate.report import run_media_folders

            check_not_media(screenshot, run_media_folders(run_dir), "Screenshot")
            click.echo(f"Screenshot: {photograph(path.resolve().as_uri(), screenshot, 1300, 2400)}")
        except (BrowserUnavailable, OutputError) as exc:
            _fail(str(exc))



_CATEGORY_CHOICE = click.Choice(["label_noise", "corruption", "multi_object", "atypical"])


def _policy(keep_confirmed: bool, no_relabel: bool, keep_removed: bool, drop_unreviewed: tuple[str, ...],
            include_eval: bool):
    from curate.review import ExportPolicy

    return ExportPolicy(
        drop_confirmed=() if keep_confirmed else ("label_noise", "corruption"),
        drop_removed=not keep_removed,
        apply_relabels=not no_relabel,
        drop_unreviewed=tuple(drop_unreviewed),
        drop_unreviewed_in_eval=include_eval,
    )


def policy_options(f):
    options = [
        click.option("--run-key", default="curate", show_default=True, help="Which curate run's flags to use."),
        click.option("--drop-unreviewed", multiple=True, type=_CATEGORY_CHOICE,
                     help="Also leave out UNREVIEWED flags of this category (repeatable). Never applied to "
                          "val/test samples unless --include-eval-splits."),
        click.option("--include-eval-splits", is_flag=True,
                     help="Let --drop-unreviewed drop val/test samples too (makes benchmarks optimistic)."),
        click.option("--keep-confirmed", is_flag=True,
                     help="Keep samples whose label_noise/corruption flag a reviewer confirmed."),
        click.option("--keep-removed", is_flag=True, help="Keep samples tagged `remove`."),
        click.option("--no-relabel", is_flag=True, help="Ignore relabel:<class> tags and in-App label edits."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.argument("name")
@policy_options
def status(name: str, run_key: str, drop_unreviewed, include_eval_splits, keep_confirmed, keep_removed,
           no_relabel) -> None:
    """Review progress on dataset NAME: flags by review state, and what an export would do.

    \b
    Review in the App by tagging samples:
      confirmed          the flag is right
      rejected           the flag is wrong; keep the sample as it is
      remove             leave the sample out of exports
      relabel:<class>    the right label (relabel:suggested takes curate's suggestion)
    Editing the label in the App also counts as a relabel.
    """
    from curate.export import ExportError, review_plan, run_warnings
    from curate.review import ReviewError, status_table

    _, dataset = _load_dataset(name)
    policy = _policy(keep_confirmed, no_relabel, keep_removed, drop_unreviewed, include_eval_splits)
    try:
        plan = review_plan(dataset, run_key, policy)
    except (ExportError, ReviewError) as exc:
        _fail(str(exc))
    counts = status_table(plan)
    click.secho(f"{name}: {len(plan)} samples scored by run {run_key!r}", bold=True)
    for warning in run_warnings(dataset, run_key):
        click.secho(f"Warning: {warning}", fg="yellow")
    click.echo(_table([[flag, *row] for flag, row in zip(counts.index, counts.to_numpy().tolist())],
                      ["flag", *counts.columns]))
    actions = plan["action"].value_counts()
    reasons = plan[plan["action"] != "keep"]["reason"].str.replace(r" [^ ]+ -> [^ ]+ ", " ", regex=True)
    notes = plan[(plan["action"] == "keep") & (plan["reason"] != "")]["reason"].value_counts()
    click.echo(f"\nAn export now would keep {len(plan) - int(actions.get('drop', 0))} samples "
               f"({int(actions.get('relabel', 0))} relabelled) and leave out {int(actions.get('drop', 0))}"
               + (":" if len(reasons) or len(notes) else "."))
    for reason, count in reasons.value_counts().items():
        click.echo(f"  {count:6d}  {reason}")
    for reason, count in notes.items():
        click.echo(f"  {count:6d}  {reason}")


@main.command()
@click.argument("name")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["folder", "fiftyone", "csv"]), default="folder",
              show_default=True, help="folder: <split>/<class>/<image> tree; fiftyone: FiftyOne dataset export; "
                                      "csv: manifest of filepath,label,split pointing at the original images.")
@click.option("--splits", default=None, metavar="TRAIN,VAL,TEST",
              help="Make seeded stratified splits of every scored sample, e.g. 0.8,0.1,0.1, drawn before "
                   "anything is left out (default: keep the dataset's split tags).")
@click.option("--seed", default=0, show_default=True, help="Seed for --splits.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@policy_options
def export(name: str, out: str, fmt: str, splits: str | None, seed: int, force: bool, run_key: str,
           drop_unreviewed, include_eval_splits, keep_confirmed, keep_removed, no_relabel) -> None:
    """Export the reviewed dataset NAME, cleaned, to the new directory OUT.

    Leaves out confirmed label noise and corruption and samples tagged `remove`, applies relabels,
    and writes curate_export.json and changes.csv (every sample changed or left out, with the
    reason). Source images and the FiftyOne dataset are never modified.
    """
    from curate.export import ExportError, export_dataset
    from curate.review import ReviewError

    fractions = None
    if splits:
        try:
            fractions = tuple(float(x) for x in splits.split(","))
        except ValueError:
            _fail(f"--splits must be comma-separated fractions such as 0.8,0.1,0.1, got {splits!r}.")
    _, dataset = _load_dataset(name)
    policy = _policy(keep_confirmed, no_relabel, keep_removed, drop_unreviewed, include_eval_splits)
    try:
        manifest = export_dataset(dataset, out, fmt, policy, fractions, seed, run_key, force)
    except (ExportError, ReviewError, ValueError) as exc:
        _fail(str(exc))
    counts = manifest["counts"]
    click.echo(f"Exported {counts['exported']} of {counts['scored']} samples to {Path(out).resolve()} ({fmt}): "
               f"{counts['dropped']} left out, {counts['relabelled']} relabelled.")
    click.echo(_table([[k, v] for k, v in counts["per_split"].items()], ["split", "samples"]))
    click.echo("Every change and its reason: changes.csv, curate_export.json")


@main.command()
@click.argument("name")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--scheme", type=click.Choice(["factor", "score"]), default="factor", show_default=True,
              help="factor: every PIE weighs --factor; score: 1 + (factor - 1) x PIE score.")
@click.option("--factor", default=2.0, show_default=True, help="Weight of a PIE (at most, for --scheme score).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@policy_options
def weights(name: str, out: str, scheme: str, factor: float, force: bool, run_key: str, drop_unreviewed,
            include_eval_splits, keep_confirmed, keep_removed, no_relabel) -> None:
    """Write per-sample training weights for dataset NAME to OUT (.csv or .parquet).

    PIEs are upweighted, samples an export would leave out weigh 0; columns filepath, label,
    weight, reason. In Python, curate.weighted_sampler(OUT) gives a WeightedRandomSampler.
    """
    from curate.export import ExportError, write_weights
    from curate.review import ReviewError

    _, dataset = _load_dataset(name)
    policy = _policy(keep_confirmed, no_relabel, keep_removed, drop_unreviewed, include_eval_splits)
    try:
        table = write_weights(dataset, out, scheme, factor, policy, run_key, force)
    except (ExportError, ReviewError, ValueError) as exc:
        _fail(str(exc))
    up, zero = int((table["weight"] > 1).sum()), int((table["weight"] == 0).sum())
    click.echo(f"Wrote {len(table)} weights to {Path(out).resolve()}: {up} upweighted PIEs, {zero} at zero, "
               f"sum {table['weight'].sum():.1f}.")


@main.group()
def plugin() -> None:
    """curate's FiftyOne App plugin: find PIEs and review flags from inside the App."""


@plugin.command("install")
@click.option("--plugins-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Install here instead of FiftyOne's plugins directory (FIFTYONE_PLUGINS_DIR).")
def plugin_install(plugins_dir: Path | None) -> None:
    """Install curate's App operators into FiftyOne's plugins directory.

    \b
    In the App, press ` (backtick) or open the operator browser, then:
      curate: find PIEs and flags           curate run on this dataset (delegate it)
      curate: review selected samples       confirm / reject / remove / relabel the selection
      curate: review status                 flags by review state, what an export would do
      curate: export the reviewed dataset   curate export, from the App
    The installed copy imports the operators from this curate, so upgrades need no reinstall.
    """
    from curate.plugin import PluginError, install_plugin

    try:
        path = install_plugin(plugins_dir)
    except (PluginError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"Installed the curate App plugin in {path}.")
    if plugins_dir is not None:
        click.echo(f"FiftyOne finds it when FIFTYONE_PLUGINS_DIR={Path(plugins_dir).resolve()}.")
    click.echo("In the App: press ` (backtick) and choose 'curate: review selected samples'.")


@plugin.command("uninstall")
@click.option("--plugins-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where it was installed [default: FiftyOne's plugins directory].")
def plugin_uninstall(plugins_dir: Path | None) -> None:
    """Remove curate's App operators (only what `curate plugin install` wrote)."""
    from curate.plugin import PluginError, uninstall_plugin

    try:
        path = uninstall_plugin(plugins_dir)
    except (PluginError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"Removed {path}." if path else "The curate App plugin is not installed.")


if __name__ == "__main__":  # pragma: no cover
    main()
