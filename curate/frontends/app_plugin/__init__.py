"""curate's FiftyOne App plugin: find PIEs and review flags without leaving the App.

Installed into FiftyOne's plugins directory by ``curate plugin install``. Four operators (press
the backtick key in the App, or use the operator browser):

- ``compute_pies``: ``curate run`` on the current dataset (labels from a classification field),
  best delegated (``fiftyone delegated launch`` runs it in the background); its result is the
  summary the command prints.
- ``review_samples``: confirm, reject, remove or relabel the selected samples (or the one open in
  the modal, or, when asked, every sample of a filtered view such as ``pies-multi_object``). It
  writes the review tags ``curate export`` reads (:mod:`curate.science.review`), one state per sample,
  replacing contradictory tags a hand-tagging session may have left.
- ``review_status``: counts of flags by review state, what the reviewed flags and label audit say so
  far, and what an export would do now: what ``curate status`` prints.
- ``export_dataset``: ``curate export`` of the reviewed dataset to a new directory.

The logic lives in :mod:`curate.api` (which the CLI calls too) and :mod:`curate.science.review`; this module
only reads the App's form and selection, calls the API, and writes tags. It never imports the CLI.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

DECISION_LABELS = {
    "confirm": "Confirm the flag (the label is wrong / the image is bad)",
    "reject": "Reject the flag (the sample is fine as it is)",
    "remove": "Remove the sample from exports",
    "relabel_suggested": "Relabel to curate's suggestion",
    "relabel": "Relabel to a class I choose",
    "label_wrong": "Label audit: the label is wrong",
    "label_right": "Label audit: the label is right",
    "clear": "Clear my review of these samples",
}


def done_message(decision: str, n: int, label: str | None = None) -> str:
    samples = f"{n} sample{'s' if n != 1 else ''}"
    return {
        "confirm": f"Confirmed the flag on {samples}",
        "reject": f"Rejected the flag on {samples}",
        "remove": f"Marked {samples} for removal from exports",
        "relabel_suggested": f"Marked {samples} for relabelling to curate's suggestion",
        "relabel": f"Marked {samples} for relabelling to {label!r}",
        "label_wrong": f"Audit: marked the label of {samples} wrong",
        "label_right": f"Audit: marked the label of {samples} right",
        "clear": f"Cleared the review of {samples}",
    }[decision]


def is_filtered_view(ctx) -> bool:
    """The App shows a subset of the dataset (a saved view such as pies-multi_object, or a filter)."""
    return ctx.view is not None and len(ctx.view) < len(ctx.dataset)


def target_ids(ctx) -> list[str]:
    """The selected samples, else the sample open in the modal, else, when the reviewer ticked
    ``whole_view``, every sample of a filtered view; otherwise none (never the whole dataset)."""
    if ctx.selected:
        return list(ctx.selected)
    if ctx.current_sample:
        return [ctx.current_sample]
    if ctx.params.get("whole_view") and is_filtered_view(ctx):
        return ctx.view.values("id")
    return []


def curate_run_keys(dataset) -> list[str]:
    from curate.fiftyone.write import METHOD

    return sorted(dataset.list_runs(method=METHOD))


def selection_summary(view, run_key: str) -> str:
    """What curate said about the selection: one sample's reason, or several samples' flags counted."""
    from collections import Counter

    from curate.fiftyone.write import names_for

    names = names_for(run_key, [])
    if len(view) == 1:
        reason = view.values(names.reason)[0] if view.has_field(names.reason) else None
        return f"curate: {reason}" if reason else "curate did not flag this sample."
    flags = Counter(c or "no flag" for c in view.values(names.category)) if view.has_field(
        names.category) else Counter()
    return f"{len(view)} samples: " + ", ".join(f"{n} {flag}" for flag, n in flags.most_common())


def missing_suggestions(view, run_key: str) -> int:
    """How many samples of ``view`` have no suggested label from run ``run_key``."""
    from curate.fiftyone.write import names_for

    field = names_for(run_key, []).suggested
    if not view.has_field(field):
        return len(view)
    return sum(s is None for s in view.values(f"{field}.label"))


def _run_key_input(inputs, ctx) -> str | None:
    keys = curate_run_keys(ctx.dataset)
    if not keys:
        inputs.view("no_run", types.Warning(label="No curate run on this dataset",
                                            description="Run `curate run SOURCE --dataset NAME` first."))
        return None
    if len(keys) > 1:
        inputs.enum("run_key", keys, default=keys[0], label="curate run", view=types.Dropdown())
    return ctx.params.get("run_key") or keys[0]


class ReviewSamples(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="review_samples",
            label="curate: review selected samples",
            description="Confirm, reject, remove or relabel the selected samples' flags",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        ids = target_ids(ctx)
        run_key = _run_key_input(inputs, ctx)
        if run_key is None:
            return types.Property(inputs)
        if not ctx.selected and not ctx.current_sample and is_filtered_view(ctx):
            inputs.bool("whole_view", default=False, label=f"Review all {len(ctx.view)} samples of the current view",
                        description="Nothing is selected: tick this to apply the decision to the whole view.")
        if not ids:
            inputs.view("nothing", types.Warning(
                label="No samples selected",
                description="Select samples in the grid (their checkboxes) or open one, then run this again."))
            return types.Property(inputs)
        inputs.view("context", types.Notice(label=selection_summary(ctx.dataset.select(ids), run_key)))
        choices = types.RadioGroup()
        for value, label in DECISION_LABELS.items():
            choices.add_choice(value, label=label)
        inputs.enum("decision", choices.values(), default="confirm", required=True, view=choices,
                    label=f"Review {len(ids)} sample{'s' if len(ids) != 1 else ''}")
        if ctx.params.get("decision") == "relabel":
            from curate.fiftyone.export import run_classes

            classes = types.AutocompleteView()
            for name in run_classes(ctx.dataset, run_key):
                classes.add_choice(name, label=name)
            inputs.enum("label", classes.values(), required=True, label="Right label", view=classes)
        return types.Property(inputs, view=types.View(label="curate: review"))

    def execute(self, ctx):
        from curate.fiftyone.export import run_classes
        from curate.science.review import apply_decision

        ids = target_ids(ctx)
        if not ids:
            raise ValueError("No samples selected: select samples in the grid, open one, or (in a filtered view) "
                             "tick 'Review all samples of the current view'.")
        run_key = ctx.params.get("run_key") or curate_run_keys(ctx.dataset)[0]
        decision = ctx.params.get("decision", "confirm")
        label = ctx.params.get("label")
        classes = run_classes(ctx.dataset, run_key) if decision == "relabel" else None
        view = ctx.dataset.select(ids, ordered=True)
        if decision == "relabel_suggested":
            lacking = missing_suggestions(view, run_key)
            if lacking:
                raise ValueError(f"{lacking} of the {len(ids)} selected samples have no suggested label (only "
                                 f"label-noise flags carry one); relabel those to a class you choose.")
        tags = [apply_decision(t, decision, label, classes) for t in view.values("tags")]
        view.set_values("tags", tags)
        ctx.ops.reload_samples()
        done = done_message(decision, len(ids), label)
        ctx.ops.notify(done, variant="success")
        return {"reviewed": len(ids), "decision": decision, "message": done}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("message", label="Done")
        return types.Property(outputs)


class ReviewStatus(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="review_status",
            label="curate: review status",
            description="Flags by review state, and what an export would do now",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        _run_key_input(inputs, ctx)
        return types.Property(inputs, view=types.View(label="curate: review status"))

    def execute(self, ctx):
        from curate import api
        from curate.frontends.summary import export_now_sentence, label_review_sentences

        run_key = ctx.params.get("run_key") or curate_run_keys(ctx.dataset)[0]
        review = api.status(ctx.dataset, run_key=run_key)
        plan, counts = review.plan, review.counts
        header = "| flag | " + " | ".join(counts.columns) + " |"
        lines = [header, "|" + "---|" * (len(counts.columns) + 1)]
        lines += [f"| {flag} | " + " | ".join(str(v) for v in row) + " |"
                  for flag, row in zip(counts.index, counts.to_numpy().tolist())]
        dropped = int((plan["action"] == "drop").sum())
        relabelled = int((plan["action"] == "relabel").sum())
        summary = "\n\n".join([*label_review_sentences(plan, review.calibration, CALIBRATE_IN_APP),
                                export_now_sentence(plan) + "."])
        warnings = "".join(f"\n\n**Warning:** {w}" for w in review.warnings)
        return {"status": "\n".join(lines) + "\n\n" + summary + warnings, "dropped": dropped,
                "relabelled": relabelled}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("status", label="Review status", view=types.MarkdownView())
        return types.Property(outputs)


CALIBRATE_IN_APP = "the operator 'curate: calibrate P(label wrong) by the label audit'"


class CalibrateByAudit(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="calibrate_by_audit",
            label="curate: calibrate P(label wrong) by the label audit",
            description="Rescale every P(label wrong) by the label-audit images reviewed so far (curate calibrate)",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if _run_key_input(inputs, ctx) is None:
            return types.Property(inputs)
        inputs.view("about", types.Notice(label=(
            "Reads the label:wrong / label:right tags (and relabels) of the label-audit view's images and writes "
            "every sample's audited P(label wrong) beside the networks' own; the label-noise view then sorts by "
            "it. Run it again after more reviews. Labels, tags and images are not modified.")))
        return types.Property(inputs, view=types.View(label="curate: calibrate by the label audit"))

    def execute(self, ctx):
        from curate import api
        from curate.frontends.summary import calibration_lines

        run_key = ctx.params.get("run_key") or curate_run_keys(ctx.dataset)[0]
        try:
            outcome = api.calibrate(ctx.dataset, run_key=run_key)
        except api.USER_ERRORS as exc:
            raise user_error("calibrate", exc) from None
        ctx.ops.reload_dataset()
        return {"summary": markdown_block(calibration_lines(outcome, ctx.dataset.name)),
                "command": f"curate calibrate {ctx.dataset.name} --run-key {run_key}"}

    def resolve_output(self, ctx):
        return command_output("Calibrated")


FORM_OPTIONS = ("members", "folds", "epochs", "finetune_epochs", "sparsities", "quantize", "distill",
                "robustness_images", "label_probes", "model", "executor")
# Options the form offers empty: left empty, the run derives them (image size, filter pruning levels) or goes
# without (weights).
OPTIONAL_FORM_OPTIONS = ("image_size", "filter_prune", "weights")


def run_defaults() -> dict:
    """The defaults of the run options the form offers (:class:`curate.options.RunOptions`)."""
    from curate.options import run_option_defaults

    return {name: value for name, value in run_option_defaults().items() if name in FORM_OPTIONS}


def run_options(params: dict):
    """The form's values as :class:`curate.options.RunOptions`, each checked as the CLI checks it."""
    from curate.options import RunOptions, parse_filter_prune, parse_fractions, parse_names

    values = {k: v for k, v in params.items() if k in (*FORM_OPTIONS, *OPTIONAL_FORM_OPTIONS) and v not in (None, "")}
    if isinstance(values.get("sparsities"), str):
        values["sparsities"] = parse_fractions(values["sparsities"], "Pruning levels", "0.3,0.5,0.7,0.9")
    if isinstance(values.get("quantize"), str):
        values["quantize"] = parse_names(values["quantize"])
    if isinstance(values.get("distill"), str):
        values["distill"] = parse_names(values["distill"])
    if isinstance(values.get("filter_prune"), str):
        values["filter_prune"] = parse_filter_prune(values["filter_prune"])
    return RunOptions(**values)


def run_command(dataset_name: str, label_field: str, run_key: str, options) -> str:
    """The ``curate run`` command line that does what the form asked, so a user can repeat it."""
    args = ["curate", "run", dataset_name, "--label-field", label_field, "--run-key", run_key]
    for name in (*FORM_OPTIONS, *OPTIONAL_FORM_OPTIONS):
        value = getattr(options, name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(map(str, value)) or "none"
        args += [f"--{name.replace('_', '-')}", str(value)]
    return " ".join(args)


def markdown_block(lines) -> str:
    """What the CLI would print, as a Markdown code block."""
    from curate.frontends.summary import plain

    return "```\n" + plain(lines).strip() + "\n```"


def user_error(action: str, exc: Exception) -> ValueError:
    """A curate error the App shows as the operator's error."""
    return ValueError(f"curate {action} failed: {exc}")


def command_output(label: str):
    """The output of an operator that ran a curate command: the command line, then what it printed."""
    outputs = types.Object()
    outputs.str("command", label="Ran")
    outputs.str("summary", label=label, view=types.MarkdownView())
    return types.Property(outputs)


def classification_fields(dataset) -> list[str]:
    """Classification fields that could hold labels: not the predictions curate runs wrote."""
    import fiftyone as fo

    ours = tuple(f"{key}_" for key in {"curate", *curate_run_keys(dataset)})
    schema = dataset.get_field_schema(embedded_doc_type=fo.Classification)
    return sorted(name for name in schema if not name.startswith(ours))


class ComputePies(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_pies",
            label="curate: find PIEs and flags",
            description="Train, compress and score a population on this dataset (curate run)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        fields = classification_fields(ctx.dataset)
        if not fields:
            inputs.view("no_labels", types.Warning(
                label="No classification field to learn from",
                description="curate needs labels in an fo.Classification field, e.g. ground_truth."))
            return types.Property(inputs)
        inputs.view("about", types.Notice(label=(
            f"Trains members x folds networks on all {len(ctx.dataset)} samples and compresses each: minutes on "
            f"a GPU, longer on a CPU. Delegate it and run `fiftyone delegated launch` to keep working.")))
        label_choices = types.Dropdown()
        for name in fields:
            label_choices.add_choice(name, label=name)
        inputs.enum("label_field", label_choices.values(), required=True, label="Labels", view=label_choices,
                    default="ground_truth" if "ground_truth" in fields else fields[0])
        inputs.str("run_key", default="curate", required=True, label="Run key",
                   description="Fields, tags and views are named after it; running again replaces that run.")
        from curate.options import DEFAULT_EPOCHS

        defaults = {k: ",".join(map(str, v)) if isinstance(v, tuple) else v for k, v in run_defaults().items()}
        inputs.int("members", default=defaults["members"], label="Members (K)", min=1)
        inputs.int("folds", default=defaults["folds"], label="Cross-fitting folds (F)", min=2)
        inputs.int("epochs", default=DEFAULT_EPOCHS, label="Training epochs", min=1)
        inputs.int("finetune_epochs", default=defaults["finetune_epochs"], label="Fine-tuning epochs per level",
                   min=1)
        inputs.str("sparsities", default=defaults["sparsities"], label="Pruning levels")
        inputs.str("quantize", default=defaults["quantize"], label="Quantization levels (or none)")
        inputs.str("filter_prune", label="Filter pruning levels (share of filters removed, or none; default 0.5 "
                                         "for resnet-small models)")
        inputs.str("distill", default=defaults["distill"], label="Distilled students (share of the teacher's width, "
                                                                  "or none)")
        inputs.int("robustness_images", default=defaults["robustness_images"],
                   label="Images per network for the robustness study (0: off)", min=0)
        inputs.float("label_probes", default=defaults["label_probes"], min=0.0, max=0.2,
                     label="Random-label probes (share of training images; 0: off)",
                     description="They set the label-noise count and each flag's P(label wrong).")
        inputs.str("model", default=defaults["model"], label="Model")
        inputs.int("image_size", label="Image size (pixels; default from the images and the model)", min=8)
        inputs.str("weights", label="Checkpoint every network starts from (optional)",
                   description="A state_dict saved with torch.save, on the machine the App runs on.")
        inputs.str("executor", default=defaults["executor"], label="Where the networks train",
                   description="local, ray (a local Ray instance or RAY_ADDRESS's cluster) or ray://HOST:PORT.")
        return types.Property(inputs, view=types.View(label="curate: find PIEs and flags"))

    def execute(self, ctx):
        from curate import api
        from curate.frontends.summary import run_lines

        params = ctx.params
        label_field = params.get("label_field") or "ground_truth"
        run_key = params.get("run_key") or "curate"
        try:
            options = run_options(params)
            outcome = api.run(ctx.dataset.name, label_field=label_field, run_key=run_key, progress=False,
                              options=options)
        except api.USER_ERRORS as exc:
            raise user_error("run", exc) from None
        ctx.ops.reload_dataset()
        return {"summary": markdown_block(run_lines(outcome)),
                "command": run_command(ctx.dataset.name, label_field, run_key, options)}

    def resolve_output(self, ctx):
        return command_output("Summary")


class ExportDataset(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="export_dataset",
            label="curate: export the reviewed dataset",
            description="Cleaned splits to a new directory (curate export)",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        run_key = _run_key_input(inputs, ctx)
        if run_key is None:
            return types.Property(inputs)
        inputs.view("about", types.Notice(label=(
            "Leaves out confirmed label noise and corruption and samples tagged remove, applies relabels, and "
            "writes changes.csv with every change and its reason. The dataset and its images are not modified.")))
        inputs.str("out", required=True, label="New directory to write (on the machine running FiftyOne)")
        formats = types.RadioGroup()
        for value, label in (("folder", "Image folders per split and class"), ("fiftyone", "FiftyOne dataset"),
                             ("csv", "CSV manifest pointing at the original images")):
            formats.add_choice(value, label=label)
        inputs.enum("format", formats.values(), default="folder", view=formats, label="Format")
        inputs.str("splits", label="Make stratified splits, e.g. 0.8,0.1,0.1 (empty: keep the split tags)")
        inputs.bool("force", default=False, label="Replace the directory if it exists")
        return types.Property(inputs, view=types.View(label="curate: export"))

    def execute(self, ctx):
        from curate import api
        from curate.frontends.summary import export_lines

        run_key = ctx.params.get("run_key") or curate_run_keys(ctx.dataset)[0]
        fmt = ctx.params.get("format") or "folder"
        from curate.options import parse_fractions

        splits = parse_fractions(ctx.params["splits"], "Splits", "0.8,0.1,0.1") if ctx.params.get("splits") else None
        out = ctx.params["out"]
        try:
            manifest = api.export(ctx.dataset, out, fmt=fmt, splits=splits, run_key=run_key,
                                  force=bool(ctx.params.get("force")))
        except api.USER_ERRORS as exc:
            raise user_error("export", exc) from None
        command = ["curate", "export", ctx.dataset.name, out, "--format", fmt, "--run-key", run_key]
        if splits:
            command += ["--splits", ctx.params["splits"]]
        if ctx.params.get("force"):
            command.append("--force")
        return {"summary": markdown_block(export_lines(manifest, out)), "command": " ".join(command)}

    def resolve_output(self, ctx):
        return command_output("Exported")


def register(p):
    p.register(ComputePies)
    p.register(ExportDataset)
    p.register(ReviewSamples)
    p.register(ReviewStatus)
    p.register(CalibrateByAudit)
