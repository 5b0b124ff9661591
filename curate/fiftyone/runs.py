"""curate's run, recorded through FiftyOne's own run classes (as FiftyOne Brain's methods are), so that
FiftyOne itself can delete and rename it: ``dataset.delete_run(key)`` removes every field, tag, view and
Brain run the run wrote, and ``dataset.rename_run(key, new_key)`` renames them."""

from __future__ import annotations

import fiftyone.core.runs as fors

from curate.fiftyone.write import LABEL_FIELD, METHOD, configure_app, names_for, save_views, unconfigure_app, update_run_info


class CurateRunConfig(fors.RunConfig):
    """The record of one curate run: its settings, its status (``writing`` until every field, tag and
    view is written, then ``complete``) and the names of everything it wrote."""

    def __init__(self, **kwargs):
        kwargs.pop("method", None)
        super().__init__(method=METHOD, **kwargs)


class CurateRun(fors.Run):
    """What FiftyOne calls when it deletes or renames a curate run."""

    def get_fields(self, samples, key):
        return [*(getattr(self.config, "fields", None) or []), *(getattr(self.config, "brain_runs", None) or [])]

    def cleanup(self, samples, key):
        remove_written(samples._root_dataset, self.config, key)

    def rename(self, samples, key, new_key):
        rename_written(samples._root_dataset, self.config, key, new_key)


def remove_written(dataset, config, run_key: str) -> None:
    """Remove the fields, tags, saved views and Brain runs that ``config`` lists; idempotent."""
    for view_name in getattr(config, "views", None) or []:
        if dataset.has_saved_view(view_name):
            dataset.delete_saved_view(view_name)
    tags = [t for t in (getattr(config, "tags", None) or [getattr(config, "tag", None)]) if t]
    if tags:
        dataset.untag_samples(tags)
    for brain_key in getattr(config, "brain_runs", None) or []:
        if dataset.has_brain_run(brain_key):
            dataset.delete_brain_run(brain_key)  # also deletes the field it wrote
        elif dataset.has_sample_field(brain_key):
            dataset.delete_sample_field(brain_key)  # killed after the field, before the Brain run's record
    unconfigure_app(dataset, run_key, list(getattr(config, "fields", None) or []))
    present = [f for f in getattr(config, "fields", None) or [] if dataset.has_sample_field(f)]
    if present:
        dataset.delete_sample_fields(present)
    update_run_info(dataset, run_key, None)


def rename_written(dataset, config, key: str, new_key: str) -> None:
    """Rename the run's fields, tags and saved views from ``key`` to ``new_key`` and update its record.

    Brain runs keep their keys (they are listed in the record, which is what removal reads).
    """
    if not new_key.isidentifier():
        raise ValueError(f"Run key {new_key!r} must be a Python identifier (letters, digits, underscores).")
    old, new = recorded_names(config, key), recorded_names(config, new_key)
    taken = [n for n in new.fields if dataset.has_sample_field(n)]
    if taken:
        raise ValueError(f"Cannot rename run {key!r} to {new_key!r}: the dataset already has field(s) {taken[:5]}.")
    dataset.rename_sample_fields({o: n for o, n in zip(old.fields, new.fields)
                                  if dataset.has_sample_field(o)})
    for old_tag, new_tag in zip(old.tags, new.tags):
        tagged = dataset.match_tags(old_tag)
        if len(tagged):
            tagged.tag_samples(new_tag)
            dataset.untag_samples(old_tag)
    for view_name in old.all_views:
        if dataset.has_saved_view(view_name):
            dataset.delete_saved_view(view_name)
    unconfigure_app(dataset, key, old.fields)
    save_views_and_app(dataset, new_key, new, config)
    config.fields, config.tags, config.tag, config.views = new.fields, new.tags, new.tag, new.all_views
    fors.Run.update_run_config(dataset, key, config)
    info = (dataset.info.get("curate") or {}).get(key)
    update_run_info(dataset, key, None)
    if info is not None:
        update_run_info(dataset, new_key, info)


def recorded_names(config, run_key: str):
    """The field, tag and view names of the run recorded as ``config``, under ``run_key``."""
    return names_for(run_key, list(config.levels), tuple(getattr(config, "categories", None) or ()) or None)


def save_views_and_app(dataset, run_key: str, names, config) -> None:
    """Write the saved views and the App configuration of the run recorded as ``config`` again, from its
    record (after a rename, or after curate calibrate added the audited field)."""
    levels = list(config.levels)
    save_views(dataset, run_key, names, levels)
    configure_app(dataset, run_key, names, getattr(config, "label_field", None) or LABEL_FIELD, levels,
                  recorded_level_kinds(getattr(config, "curate_config", None) or {}, levels))


def recorded_level_kinds(curate_config: dict, levels: list[str]) -> list[str]:
    """The kind of every level of a recorded run, in :attr:`CurateConfig.level_kinds` order."""
    counts = [("prune", "sparsities"), ("quantize", "quantizations"), ("filter", "filter_prunings"),
              ("distill", "distillations")]
    kinds = [kind for kind, key in counts for _ in curate_config.get(key, ())]
    return kinds if len(kinds) == len(levels) else ["prune"] * len(levels)
