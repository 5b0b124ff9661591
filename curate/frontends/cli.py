"""The ``curate`` command line: a thin shell over :mod:`curate.api`, which makes every decision.

Options and their defaults come from :class:`curate.options.RunOptions`; what a command prints comes
from :mod:`curate.frontends.summary`, which the App operators use too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import click

from curate import __version__
from curate.options import (DEFAULT_EPOCHS, DEFAULT_FILTER_PRUNE, DEFAULT_LABEL_FIELD,
                            DEFAULT_RUN_KEY, DEMO_DATASET, DIGITS_PRESET, FILTER_CRITERIA, FINETUNE_LR_SHARE,
                            GPU_MAX_BATCH, RunOptions, parse_filter_prune, parse_fractions, parse_names)
from curate.frontends.summary import table as _table

_STYLES = {"bold": {"bold": True}, "warning": {"fg": "yellow"}, "command": {"fg": "green"}, None: {}}


def _echo(lines) -> None:
    for text, style in lines:
        click.secho(text, **_STYLES[style])


def _user_errors():
    from curate.api import USER_ERRORS

    return USER_ERRORS


def _parse_sparsities(_ctx, _param, value: str):
    try:
        return parse_fractions(value, "--sparsities", "0.3,0.5,0.7,0.9")
    except ValueError as exc:
        raise click.BadParameter(str(exc))


def _parse_filter_prune(_ctx, _param, value: str | None):
    if value is None:
        return None
    try:
        return parse_filter_prune(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc))


def _check_device(_ctx, _param, value: str):
    from curate.population.train import check_device

    try:
        return check_device(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc))


def _parse_list(_ctx, _param, value: str):
    return parse_names(value)


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
        click.option("--model", default=RunOptions.model, show_default=True,
                     help="resnet-small[:WIDTH], tv:<torchvision model>[:pretrained], timm:<timm model>[:pretrained], "
                          "or package.module:factory."),
        click.option("--weights", default=RunOptions.weights, type=click.Path(dir_okay=False, exists=True),
                     help="A local checkpoint (a state_dict saved with torch.save) every network starts from; "
                          "weights of another shape, such as a head for other classes, stay as initialised."),
        click.option("--members", "-k", default=RunOptions.members, show_default=True, type=click.IntRange(min=2),
                     help="Population size K: every image gets exactly K out-of-sample predictions per level."),
        click.option("--folds", "-f", default=RunOptions.folds, show_default=True, type=click.IntRange(min=2),
                     help="Cross-fitting folds F; each member trains F networks on (F-1)/F of the images."),
        click.option("--sparsities", default=",".join(map(str, RunOptions.sparsities)), show_default=True, callback=_parse_sparsities,
                     help="Global magnitude pruning levels, ascending."),
        click.option("--quantize", default=",".join(RunOptions.quantize), show_default=True, callback=_parse_list,
                     help="Post-training quantization levels (weight-only; dyn-int8 is torch's dynamic "
                          "quantization of linear layers), or `none`."),
        click.option("--filter-prune", default=None, callback=_parse_filter_prune,
                     help="Structured pruning levels: the share of every layer's filters removed, ascending, or "
                          f"`none` [default: {','.join(map(str, DEFAULT_FILTER_PRUNE))} for resnet-small models, "
                          "none for others]."),
        click.option("--filter-criterion", default=RunOptions.filter_criterion, show_default=True,
                     type=click.Choice(FILTER_CRITERIA),
                     help="How filters are ranked for removal: first-order Taylor (Molchanov et al. 2017) or L1 norm."),
        click.option("--distill", default=",".join(RunOptions.distill), show_default=True, callback=_parse_list,
                     help="Distilled students: a share of the teacher's width, optionally ':STAGES' for a shallower "
                          "one (0.5, 0.5:2), comma-separated, or `none`."),
        click.option("--robustness-images", default=RunOptions.robustness_images, show_default=True, type=click.IntRange(min=0),
                     help="Held-out images per network corrupted ImageNet-C style (6 corruptions x 5 "
                          "severities) to compare dense and compressed robustness; 0 turns it off."),
        click.option("--label-probes", default=RunOptions.label_probes, show_default=True, type=click.FloatRange(0.0, 0.2),
                     help="Share of each network's training images given a random wrong label; how the networks "
                          "fit these probes sets the label-noise count (fewer false alarms from weak "
                          "populations; docs/benchmarks.md). 0: off, confident learning counts."),
        click.option("--epochs", default=None, type=click.IntRange(min=1),
                     help=f"Dense training epochs [default: {DEFAULT_EPOCHS}; digits {DIGITS_PRESET['epochs']}]."),
        click.option("--finetune-epochs", default=RunOptions.finetune_epochs, show_default=True, type=click.IntRange(min=1),
                     help="Fine-tuning epochs per pruning level (sparsity ramps up over the first 60%)."),
        click.option("--prune-schedule", default=RunOptions.prune_schedule, show_default=True,
                     type=click.Choice(["independent", "chained"]),
                     help="independent: every level is its own copy of the dense network; chained: each level "
                          "continues from the previous one (30% -> 50% -> ...), one gradual schedule."),
        click.option("--batch-size", default=None, type=click.IntRange(min=2),
                     help="Batch size [default: images per network / 16, clipped to 32..64 on a CPU, to "
                          f"32..{GPU_MAX_BATCH} on a GPU, a Ray cluster's included]."),
        click.option("--lr", default=RunOptions.lr, show_default=True, type=click.FloatRange(min=0.0, min_open=True),
                     help=f"Peak learning rate of dense training (SGD, Nesterov); fine-tuning peaks at "
                          f"{FINETUNE_LR_SHARE} of it."),
        click.option("--image-size", default=None, type=click.IntRange(min=8), help="Decode images to this square size [default: the images' own size up to 32 px; 224 for "
                          "pretrained models; digits 16]."),
        click.option("--hflip/--no-hflip", default=None, help="Random horizontal flips [default: on; off for digits]."),
        click.option("--seed", default=RunOptions.seed, show_default=True, help="Base seed of partitions and initialisations."),
        click.option("--device", default=RunOptions.device, show_default=True, callback=_check_device, help="auto, cpu or cuda[:i]."),
        click.option("--executor", default=RunOptions.executor, show_default=True,
                     help="Where the networks train: local (this machine: on a CPU with more than 30 s of work, "
                          "several at a time in worker processes, else one after another in this process), serial "
                          "(always one after another in this process), ray (a local Ray instance, or the cluster "
                          "RAY_ADDRESS names), ray://HOST:PORT (a Ray cluster; ray needs curate[ray])."),
        click.option("--job-cpus", default=None, type=click.FloatRange(min=0.01),
                     help="CPUs each network asks Ray for [default: an even share of the cluster's]."),
        click.option("--job-gpus", default=None, type=click.FloatRange(min=0.0),
                     help="GPUs each network asks Ray for; fractions pack several on one GPU [default: 1 when the "
                          "cluster has GPUs]."),
        click.option("--train-together", default=None, type=click.IntRange(min=1),
                     help="Networks trained as one batched computation (resnet-small models: grouped convolutions), "
                          "to fill a GPU that one small network leaves idle [default: every network of the run on a "
                          "GPU of this machine, 1 on a CPU or with Ray]."),
        click.option("--run-key", default=DEFAULT_RUN_KEY, show_default=True,
                     help="Name of the run on the dataset; fields are prefixed with it."),
        click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where heavy results go [default: ~/.cache/curate/runs/DATASET/RUN_KEY]."),
        click.option("--no-fiftyone", is_flag=True, help="Compute and store the run without writing to FiftyOne."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _launcher() -> str:
    """How the user runs curate (``scripts/dev curate`` sets this), for commands we print."""
    return os.environ.get("CURATE_LAUNCHER", "curate")


def _run(source: str, dataset: str | None, label_field: str, opts: dict) -> None:
    from curate import api

    settings = {name: opts[name] for name in api.run_option_defaults()}
    try:
        outcome = api.run(source, dataset=dataset, label_field=label_field, run_key=opts["run_key"],
                          run_dir=opts["run_dir"], to_fiftyone=not opts["no_fiftyone"], progress=not opts["quiet"],
                          say=_say, **settings)
    except _user_errors() as exc:
        _fail(str(exc))
    from curate.frontends.summary import run_lines

    _echo(run_lines(outcome, _launcher()))


def _say(message: str, kind: str) -> None:
    if kind == "note":
        click.secho(f"Note: {message}", fg="yellow")
    else:
        click.echo(message)


def _dataset(name: str):
    from curate import api

    try:
        return api.load_dataset(name)
    except _user_errors() as exc:
        _fail(str(exc))


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
@click.option("--label-field", default=DEFAULT_LABEL_FIELD, show_default=True,
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
@click.option("--clean", is_flag=True, help="Run on the untouched digits instead of a copy with problems planted.")
@population_options
def demo(dataset: str, clean: bool, **opts) -> None:
    """Run curate on scikit-learn's handwritten digits (1,797 images, no download needed).

    By default on a copy with known problems planted (5% wrong labels; 3% damaged images: JPEG blocks,
    noise, washed out; 2% two digits in one image; 1% near copies), marked in a `planted` field, so the run ends by
    saying how many curate found and how precisely. --clean runs the untouched digits.
    """
    _run("digits" if clean else "digits-planted", dataset, DEFAULT_LABEL_FIELD, opts)


@main.command()
@click.argument("name")
@click.option("--view", default=None, help="Saved view to open, e.g. pies or pies-prune90.")
@click.option("--port", default=5151, show_default=True)
@click.option("--address", default="localhost", show_default=True, help="Address to bind; 0.0.0.0 to share.")
@click.option("--remote", is_flag=True, help="Serve without opening a browser (for SSH or headless use).")
def app(name: str, view: str | None, port: int, address: str, remote: bool) -> None:
    """Launch the FiftyOne App on dataset NAME and wait until interrupted."""
    import fiftyone as fo

    dataset = _dataset(name)
    target = dataset
    if view:
        if not dataset.has_saved_view(view):
            _fail(f"Dataset {name!r} has no saved view {view!r}; it has: {', '.join(dataset.list_saved_views()) or 'none'}.")
        target = dataset.load_saved_view(view)
    from curate.fiftyone.plugin import is_installed

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
    from curate import api
    from curate.fiftyone.write import COMPLETE, WRITING

    try:
        if delete_key:
            api.delete_run(name, delete_key)
            click.echo(f"Removed run {delete_key!r} from {name!r}.")
            return
        rows = api.runs(name)
    except _user_errors() as exc:
        _fail(str(exc))
    if not rows:
        click.echo(f"No curate runs on {name!r}.")
        return
    click.echo(_table([list(r.values()) for r in rows], list(rows[0].keys())))
    if any(r["status"] != COMPLETE for r in rows):
        click.secho(f"A run with status {WRITING!r} was interrupted while it was written to FiftyOne: run the same "
                    "`curate run` again to finish it, or delete it with --delete RUN_KEY.", fg="yellow")


@main.command()
@click.argument("name", required=False)
@click.option("--run-key", default=DEFAULT_RUN_KEY, show_default=True, help="Which curate run of dataset NAME.")
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

    Per-level accuracy, PIE fraction, size and CPU speed for every compression kind (pruning,
    quantization, filter pruning, distillation) and whether they forget the same images; dense
    accuracy on PIEs and without them, per-class impact with significance (the paper's Figure 2), robustness to
    corruptions, and galleries of the top images per category with their reasons. The report's
    path is recorded in the dataset's info (dataset.info["curate"][RUN_KEY]["report"]).
    """
    from curate import api

    try:
        written = api.report(name, run_key=run_key, run_dir=run_dir, out=out, title=title, force=force,
                             screenshot=screenshot)
    except _user_errors() as exc:
        _fail(str(exc))
    click.echo(f"Report: {written.path}  (open file://{written.path} in a browser)")
    if written.screenshot is not None:
        click.echo(f"Screenshot: {written.screenshot}")


_CATEGORY_CHOICE = click.Choice(["label_noise", "corruption", "multi_object", "ambiguous", "atypical"])


def _policy(keep_confirmed: bool, no_relabel: bool, keep_removed: bool, drop_unreviewed: tuple[str, ...],
            include_eval: bool, drop_duplicates: bool = False):
    from curate.science.review import ExportPolicy

    return ExportPolicy(
        drop_confirmed=() if keep_confirmed else ("label_noise", "corruption"),
        drop_removed=not keep_removed,
        apply_relabels=not no_relabel,
        drop_unreviewed=tuple(drop_unreviewed),
        drop_unreviewed_in_eval=include_eval,
        keep_one_duplicate=drop_duplicates,
    )


def policy_options(f):
    options = [
        click.option("--run-key", default=DEFAULT_RUN_KEY, show_default=True, help="Which curate run's flags to use."),
        click.option("--drop-unreviewed", multiple=True, type=_CATEGORY_CHOICE,
                     help="Also leave out UNREVIEWED flags of this category (repeatable). Never applied to "
                          "val/test samples unless --include-eval-splits."),
        click.option("--include-eval-splits", is_flag=True,
                     help="Let --drop-unreviewed drop val/test samples too (makes benchmarks optimistic)."),
        click.option("--keep-confirmed", is_flag=True,
                     help="Keep samples whose label_noise/corruption flag a reviewer confirmed."),
        click.option("--keep-removed", is_flag=True, help="Keep samples tagged `remove`."),
        click.option("--no-relabel", is_flag=True, help="Ignore relabel:<class> tags and in-App label edits."),
        click.option("--drop-duplicates", is_flag=True,
                     help="Keep one image per group of duplicates in train (see the `duplicates` view); "
                          "val/test are never thinned."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.argument("name")
@policy_options
def status(name: str, run_key: str, drop_unreviewed, include_eval_splits, keep_confirmed, keep_removed,
           no_relabel, drop_duplicates) -> None:
    """Review progress on dataset NAME: flags by review state, and what an export would do.

    \b
    Review in the App by tagging samples:
      confirmed          the flag is right
      rejected           the flag is wrong; keep the sample as it is
      remove             leave the sample out of exports
      relabel:<class>    the right label (relabel:suggested takes curate's suggestion)
    Editing the label in the App also counts as a relabel.
    """
    from curate import api
    from curate.frontends.summary import status_lines

    policy = _policy(keep_confirmed, no_relabel, keep_removed, drop_unreviewed, include_eval_splits, drop_duplicates)
    try:
        review = api.status(name, run_key=run_key, policy=policy)
    except _user_errors() as exc:
        _fail(str(exc))
    _echo(status_lines(review, _launcher()))


@main.command()
@click.argument("name")
@click.option("--run-key", default=DEFAULT_RUN_KEY, show_default=True, help="Which curate run of dataset NAME.")
def calibrate(name: str, run_key: str) -> None:
    """Rescale every P(label wrong) of dataset NAME by the label audit reviewed so far, in the App.

    \b
    Review some images of the label-audit view first (tag each label:wrong, or relabel it, or
    label:right). The networks' probabilities miss the noise they learned; the audit's do not.
    Writes <run>_p_label_wrong_audited, sorts the label-noise view by it and quotes it in each
    reason, beside the networks' value. Run it again after more reviews.
    """
    from curate import api
    from curate.frontends.summary import calibration_lines

    try:
        outcome = api.calibrate(name, run_key=run_key)
    except _user_errors() as exc:
        _fail(str(exc))
    _echo(calibration_lines(outcome, name, _launcher()))


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
           drop_unreviewed, include_eval_splits, keep_confirmed, keep_removed, no_relabel, drop_duplicates) -> None:
    """Export the reviewed dataset NAME, cleaned, to the new directory OUT.

    Leaves out confirmed label noise and corruption and samples tagged `remove`, applies relabels,
    and writes curate_export.json and changes.csv (every sample changed or left out, with the
    reason). Source images and the FiftyOne dataset are never modified.
    """
    from curate import api
    from curate.frontends.summary import export_lines

    fractions = None
    if splits:
        try:
            fractions = parse_fractions(splits, "--splits", "0.8,0.1,0.1")
        except ValueError as exc:
            _fail(str(exc))
    policy = _policy(keep_confirmed, no_relabel, keep_removed, drop_unreviewed, include_eval_splits, drop_duplicates)
    try:
        manifest = api.export(name, out, fmt=fmt, policy=policy, splits=fractions, seed=seed, run_key=run_key,
                              force=force)
    except _user_errors() as exc:
        _fail(str(exc))
    _echo(export_lines(manifest, Path(out).resolve()))


@main.command()
@click.argument("name")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--scheme", type=click.Choice(["factor", "score"]), default="factor", show_default=True,
              help="factor: every PIE weighs --factor; score: 1 + (factor - 1) x PIE score.")
@click.option("--factor", default=2.0, show_default=True, help="Weight of a PIE (at most, for --scheme score).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@policy_options
def weights(name: str, out: str, scheme: str, factor: float, force: bool, run_key: str, drop_unreviewed,
            include_eval_splits, keep_confirmed, keep_removed, no_relabel, drop_duplicates) -> None:
    """Write per-sample training weights for dataset NAME to OUT (.csv or .parquet).

    PIEs are upweighted, samples an export would leave out weigh 0; columns filepath, label,
    weight, reason. In Python, curate.weighted_sampler(OUT) gives a WeightedRandomSampler.
    """
    from curate import api

    policy = _policy(keep_confirmed, no_relabel, keep_removed, drop_unreviewed, include_eval_splits, drop_duplicates)
    try:
        table = api.weights(name, out, scheme=scheme, factor=factor, policy=policy, run_key=run_key, force=force)
    except _user_errors() as exc:
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
    from curate.fiftyone.plugin import PluginError, install_plugin

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
    from curate.fiftyone.plugin import PluginError, uninstall_plugin

    try:
        path = uninstall_plugin(plugins_dir)
    except (PluginError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"Removed {path}." if path else "The curate App plugin is not installed.")


if __name__ == "__main__":  # pragma: no cover
    main()
