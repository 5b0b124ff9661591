"""The label audit written back to the App: every sample's P(label wrong) rescaled by the audit images a
reviewer has decided so far (:func:`curate.science.audit.audited_p_wrong`).

The networks' own probability stays in ``<run>_p_label_wrong``; the audit's goes to
``<run>_p_label_wrong_audited``, the label-noise view sorts by it, and each label-noise reason quotes both.
Everything written is recomputed from the tags and the networks' probabilities, so calling this again
after more reviews (or after a kill half-way) replaces the previous calibration rather than stacking on it.
Only curate's own fields, views and record change; the samples' labels and tags are read, never written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.data.faults import checkpoint
from curate.fiftyone.export import review_plan, run_record
from curate.fiftyone.runs import recorded_names, save_views_and_app
from curate.fiftyone.write import names_for, update_run_info
from curate.science.flags import audited_reason
from curate.science.review import audit_verdicts, audited_label_probabilities, label_audit_review


class CalibrationError(ValueError):
    """A run that cannot be calibrated yet (no label audit, nothing reviewed, no probabilities)."""


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate_run` wrote: the audit it read and the expected wrong labels before and after."""

    run_key: str
    field: str          # the sample field holding the audited P(label wrong)
    reviewed: int       # audit images a reviewer decided
    wrong: int          # of those, with a wrong label
    flags: int          # samples flagged label_noise
    flags_expected: float           # wrong labels the flags hold, by the audit
    flags_expected_networks: float  # ... by the networks alone
    dataset_expected: float
    dataset_expected_networks: float


def calibrate_run(dataset, run_key: str) -> Calibration:
    """Write the label audit's P(label wrong) for run ``run_key`` into ``dataset``; see the module docstring."""
    config = run_record(dataset, run_key)
    names = recorded_names(config, run_key)
    plan = review_plan(dataset, run_key)
    audit = label_audit_review(plan)
    if audit is None:
        raise CalibrationError(f"Run {run_key!r} of dataset {dataset.name!r} has no label audit (it was run by a "
                               "curate that drew none); run it again to draw one.")
    if not sum(audit.reviewed):
        raise CalibrationError(f"No image of the {names.label_audit_view!r} view is reviewed yet: tag some label:wrong "
                               "(or relabel them) or label:right, then calibrate.")
    audited = audited_label_probabilities(plan)
    if audited is None:
        raise CalibrationError(f"Run {run_key!r} has no P(label wrong) to calibrate (runs before the noise model).")
    networks = plan["p_label_wrong"].astype(float).to_numpy()
    ids = plan["sample_id"].tolist()
    known = np.isfinite(audited)
    import fiftyone.core.fields as fof
    import fiftyone.core.runs as fors

    if not dataset.has_sample_field(names.p_label_wrong_audited):
        dataset.add_sample_field(names.p_label_wrong_audited, fof.FloatField)
    # A run recorded before this field existed does not list it: list it, so deleting or renaming the run
    # takes it along.
    if names.p_label_wrong_audited not in (config.fields or []):
        config.fields = [*config.fields, names.p_label_wrong_audited]
        fors.Run.update_run_config(dataset, run_key, config)
    dataset.set_values(names.p_label_wrong_audited,
                       dict(zip(ids, [float(p) if ok else None for p, ok in zip(audited, known)])), key_field="id")
    checkpoint("calibrate")
    decided, wrong = audit_verdicts(plan)
    verdicts = [bool(w) if d else None for d, w in zip(decided, wrong)]
    by_id = dict(zip(ids, zip(audited, networks, verdicts)))
    changed = {}
    for sid, reason in zip(*dataset.select(ids).values(["id", names.reason])):
        p_audit, p_networks, verdict = by_id[sid]
        rewritten = audited_reason(reason, p_audit, p_networks, verdict=verdict) if reason else reason
        if rewritten != reason:
            changed[sid] = rewritten
    if changed:
        dataset.set_values(names.reason, changed, key_field="id")
    save_views_and_app(dataset, run_key, names, config)
    flagged = (plan["flag"] == "label_noise").to_numpy()
    outcome = Calibration(
        run_key=run_key, field=names.p_label_wrong_audited, reviewed=int(sum(audit.reviewed)),
        wrong=int(sum(audit.wrong)), flags=int(flagged.sum()),
        flags_expected=float(np.nansum(audited[flagged])), flags_expected_networks=float(np.nansum(networks[flagged])),
        dataset_expected=float(np.nansum(audited)), dataset_expected_networks=float(np.nansum(networks)))
    update_run_info(dataset, run_key, {"calibration": {"reviewed": outcome.reviewed, "wrong": outcome.wrong}})
    return outcome


def calibration_of(dataset, run_key: str) -> dict | None:
    """How many audit reviews the App's audited P(label wrong) was last calibrated with; None if never
    (or if the field is gone: the record is written last, so a calibration killed half-way has none)."""
    if not dataset.has_sample_field(names_for(run_key, []).p_label_wrong_audited):
        return None
    return ((dataset.info.get("curate") or {}).get(run_key) or {}).get("calibration")

