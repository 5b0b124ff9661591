"""What curate says about a run, a review and an export, as lines of text: one wording for the CLI and
the App operators alike.

Each builder returns ``(text, style)`` pairs; ``style`` is ``None``, ``"bold"``, ``"warning"`` or
``"command"``, which the CLI colours and the App ignores (:func:`plain`).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from curate.options import DEFAULT_RUN_KEY

Line = tuple[str, "str | None"]


def table(rows, headers) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", floatfmt=".3f")


def plain(lines: Iterable[Line]) -> str:
    return "\n".join(text for text, _ in lines)


CONTROL_SENTENCE = ("The control copies are fine-tuned exactly like the pruned ones but keep every weight: "
                    "their PIEs are what fine-tuning alone changes, so only PIEs beyond the control are "
                    "compression's doing.")


def level_table_text(levels) -> str:
    """The per-level table: accuracy, PIEs and, when the run has a control level, PIEs beyond it with
    a 95% interval."""
    with_control = "excess_pie_fraction" in levels
    with_costs = "mmacs" in levels
    dense = levels.iloc[0]
    rows = []
    for r in levels.itertuples():
        row = [r.level, r.kind, r.measured_sparsity, int(r.bits), f"{r.compression:.1f}x"]
        if with_costs:
            known = r.mmacs == r.mmacs
            row += [f"{100 * r.mmacs / dense.mmacs:.0f}%" if known else "",
                    f"{r.speedup:.1f}x" if known else ""]
        row += [f"{r.accuracy:.3f} ± {r.accuracy_std:.3f}", int(r.pies), f"{100 * r.pie_fraction:.2f}%",
                int(r.classes_impacted)]
        if with_control:
            beyond = r.excess_pie_fraction
            row.append("" if r.kind in ("dense", "control") or beyond != beyond else
                       f"{100 * beyond:+.2f}% [{100 * r.excess_low:+.2f}, {100 * r.excess_high:+.2f}]")
        rows.append(row)
    headers = ["level", "kind", "sparsity", "bits", "smaller", *(["MACs", "CPU speed"] if with_costs else []),
               "accuracy (OOS)", "PIEs", "PIE %", "classes impacted"]
    return table(rows, headers + (["PIE % beyond control (95% CI)"] if with_control else []))


OVERLAP_SENTENCE = ("Overlap is the Jaccard index of two levels' PIE sets; chance is its value for sets of the same "
                    "sizes drawn at random.")


def overlap_lines(matched) -> list[Line]:
    """Whether compressions of about the same size forget the same images
    (:func:`curate.science.analysis.matched_overlaps`)."""
    if matched is None or len(matched) == 0:
        return []
    rows = [[r.level, r.matched, f"{r.memory_kb:.0f} / {r.matched_memory_kb:.0f} KB", int(r.shared),
             f"{r.jaccard:.2f}", f"{r.chance:.3f}", f"{r.ratio:.1f}x" if r.ratio == r.ratio else ""]
            for r in matched.itertuples()]
    return [("\nDo other compressions forget what pruning forgets? Each level against the pruning level "
             "nearest in weight memory:", None),
            (table(rows, ["level", "pruning level", "memory", "shared PIEs", "overlap", "chance", "over chance"]), None),
            (OVERLAP_SENTENCE, None)]


def flag_lines(result) -> list[Line]:
    samples = result.samples
    n_pies = max(1, int(result.scores.is_pie_any.sum()))
    rows = []
    for name in result.categories.names:
        chosen = samples[samples["category"] == name]
        top = chosen.sort_values(f"{name}_score", ascending=False)["reason"].head(1).tolist()
        rows.append([name, len(chosen), f"{100 * len(chosen) / n_pies:.0f}%", top[0] if top else ""])
    lines: list[Line] = [("\nPIEs by category (one each; highest-scoring example):", None),
                         (table(rows, ["category", "PIEs", "share", "example reason"]), None)]
    noisy = int(samples["label_noise"].sum())
    lines.append((f"Suspected label errors, PIE or not: {noisy} ({100 * noisy / len(samples):.2f}%), "
                  "each with a suggested label and P(label wrong)", None))
    if result.categories.label_wrong_probability is not None:
        expected = float(np.nansum(result.categories.label_wrong_probability))
        lines.append((trust_sentence(result.categories.expected_wrong_among(samples["label_noise"].to_numpy(bool)),
                                     noisy, expected, len(samples)), None))
        confident = result.manifest.get("label_noise_count", {}).get("confident_learning")
        if confident is not None and counts_disagree(expected, confident):
            lines.append((count_disagreement_sentence(expected, confident), None))
    view = result.manifest.get("in_sample_view")
    if view:
        lines.append((in_sample_view_sentence(view), None))
    thresholds = result.categories.thresholds
    if "multi_object_probe_recall" in thresholds:
        lines.append((multi_object_sentence(thresholds["multi_object_region_confidence"],
                                            thresholds["multi_object_probe_recall"],
                                            thresholds["multi_object_dataset_rate"]), None))
    if "ambiguous_probe_recall" in thresholds:
        lines.append((ambiguous_sentence(thresholds["ambiguous_evenness"], thresholds["ambiguous_probe_recall"],
                                         thresholds["ambiguous_dataset_rate"]), None))
    if result.manifest.get("label_audit"):
        lines.append((audit_invitation(result.manifest["label_audit"]), None))
    if result.manifest.get("duplicates"):
        lines.append((duplicates_sentence(result.manifest["duplicates"]), None))
    if "corruption" in samples:
        corrupt = int(samples["corruption"].sum())
        line = f"Degraded images (a pixel check fires), PIE or not: {corrupt} ({100 * corrupt / len(samples):.2f}%)"
        if corrupt and "corruption_check" in samples:
            # By each image's most severe check, so a reviewer knows what the corruption view holds.
            counts = samples.loc[samples["corruption"].astype(bool), "corruption_check"].value_counts()
            line += ": " + ", ".join(f"{check.replace('_', ' ')} {n}" for check, n in counts.items())
        lines.append((line, None))
    return lines


def multi_object_sentence(threshold: float | None, probe_recall: float, dataset_rate: float) -> str:
    """How far to trust ``multi_object``, from the two-object probes (:mod:`curate.science.regions`)."""
    if threshold is None:
        return ("multi_object is off for this run: at no threshold do the image windows pass made two-object images "
                "10x as often as this dataset's own, so the networks cannot tell two objects from one here.")
    return (f"multi_object: the image windows pass {100 * probe_recall:.0f}% of made two-object images and "
            f"{100 * dataset_rate:.1f}% of this dataset's images; a category of PIEs, it is given to PIEs only, so "
            f"expect it to find about {100 * probe_recall:.0f}% of the two-object images the compressed copies "
            "forget, and none of the others.")


def duplicates_sentence(record: dict) -> str:
    """What the duplicate search found, and what the network's features added (manifest ``duplicates``)."""
    text = (f"Duplicates: {record['images']} images in {record['clusters']} groups ({record['exact']} exact copies, "
            f"{record['leaks']} across train and val/test)")
    if record.get("hash_pairs_dropped"):
        text += (f"; {record['hash_pairs_dropped']} of the {record['hash_pairs_checked']} pairs the hashes found left "
                 "out: they share a layout, but their pixels agree no better than two images of one class usually do")
    if "feature_copy_recall" not in record:
        return text + "."
    if record["feature_similarity"] is None:
        return text + ("; the network's features added none: they do not tell copies made of these images from "
                       "look-alikes 100 to 1.")
    return text + (f"; the network's features added {record['feature_pairs']} pairs (similarity >= "
                   f"{record['feature_similarity']:.2f}, reached by {100 * record['feature_copy_recall']:.0f}% of "
                   f"copies made of these images and {100 * record['feature_neighbour_rate']:.2f}% of images "
                   "without a copy).")


def ambiguous_sentence(threshold: float | None, probe_recall: float, dataset_rate: float) -> str:
    """How far to trust ``ambiguous``, from the two-class composite probes (:mod:`curate.science.flags`)."""
    if threshold is None:
        return ("ambiguous is off for this run: the networks split their belief between two classes on so many of "
                "this dataset's images that a near tie says nothing (no threshold passes made two-class images "
                "10x as often).")
    return (f"ambiguous: a near tie between two classes (second probability at least {100 * threshold:.0f}% of the "
            f"first) on {100 * probe_recall:.0f}% of made two-class images and {100 * dataset_rate:.1f}% of this "
            "dataset's images.")


def planted_lines(result, planted) -> list[Line]:
    """The demo's closing table: the planted problems curate found, and how precisely."""
    from curate.data.planted import recovery

    samples = result.samples
    rows = recovery(planted, label_noise=samples["label_noise"].to_numpy(bool),
                    corruption=samples["corruption"].to_numpy(bool), category=samples["category"].to_numpy(),
                    duplicate=(samples["duplicate_cluster"] >= 0).to_numpy() if "duplicate_cluster" in samples else None,
                    copy_of=result.images.fields.get("copy_of"), filepaths=result.images.filepaths)
    shown = [[r["problem"], r["planted"], r["found"], f"{100 * r['recall']:.0f}%", r["flagged"],
              "-" if r["precision"] != r["precision"] else f"{100 * r['precision']:.0f}%",
              "-" if r["lift"] != r["lift"] else f"{r['lift']:.0f}x"] for r in rows]
    return [("\nPlanted problems found (field `planted` marks them; `curate demo --clean` runs the untouched digits):",
             "bold"),
            (table(shown, ["problem", "planted", "found", "recall", "flagged", "precision", "x base rate"]), None)]


def trust_sentence(expected_among_flags: float, n_flags: int, expected_total: float, n: int) -> str:
    """How far to trust the label-noise flags, in plain words, from the noise model's probabilities."""
    if n_flags:
        head = (f"  of these, about {expected_among_flags:.0f} are expected to be real errors (estimated precision "
                f"{100 * expected_among_flags / n_flags:.0f}%); ")
    else:
        head = "  none is more likely wrong than right; "
    missed = max(0.0, expected_total - expected_among_flags)
    return (head + f"the whole dataset is expected to hold about {expected_total:.0f} wrong labels "
            f"({100 * expected_total / max(n, 1):.1f}%), {missed:.0f} of them among images not flagged "
            "(sort the label-noise view by P(label wrong) to work down from the likeliest).")


COUNT_FACTOR = 2.0
"""How far apart the noise model's and confident learning's counts of wrong labels may be before the summary
says the population cannot settle the count: a factor of two is a disagreement about the size of the problem,
not about its last decimal."""


def counts_disagree(model: float, confident: float) -> bool:
    """The two counts of wrong labels differ by more than :data:`COUNT_FACTOR` (a count under one is one)."""
    low, high = sorted((max(model, 1.0), max(float(confident), 1.0)))
    return high > COUNT_FACTOR * low


def count_disagreement_sentence(model: float, confident: float) -> str:
    """Why two counts of wrong labels from the same predictions can differ, and what settles it."""
    return (f"  confident learning counts {confident:,.0f} wrong labels against the noise model's {model:,.0f}: "
            "networks trained on many wrong labels learn part of the noise, which the noise model then misses, and "
            "weak networks confuse classes, which confident learning then counts; these predictions cannot tell "
            "which happened here. The label audit below can.")


def audit_invitation(record: dict) -> str:
    """Where the label audit is and what reviewing it gives (:mod:`curate.science.audit`)."""
    strata = record["strata"]
    drawn = sum(s["audit"] for s in strata.values())
    parts = ", ".join(f"{s['audit']} {name}" for name, s in strata.items() if s["audit"])
    return (f"Label audit: {drawn} images drawn at random ({parts}) in the label-audit view. Tag each label:wrong "
            "(or relabel it) or label:right, and `curate status` counts the dataset's wrong labels from them "
            "with an interval. The count above comes from the networks, which miss the noise they learned when "
            "trained on many wrong labels; the audit's does not.")


def label_audit_sentence(estimate, expected_by_model: float | None, drawn: int) -> str:
    """``curate status``: what the label-audit images reviewed so far say (:func:`curate.science.review.label_audit_review`)."""
    view = "label-audit view"
    reviewed = sum(estimate.reviewed)
    head = f"Label audit: {reviewed} reviewed, {sum(estimate.wrong)} of them wrongly labelled"
    if not reviewed:
        return (f"Label audit: none reviewed yet. Tag the {drawn} images of the {view} label:wrong (or relabel them) "
                "or label:right to count the dataset's wrong labels with an interval.")
    level = f"{100 * estimate.level:.0f}%"
    if estimate.wrong_labels is None:
        from curate.science.audit import STRATA

        missing = [name for name, size, n in zip(STRATA, estimate.sizes, estimate.reviewed) if size and not n]
        text = f"{head}; review at least one {' and one '.join(missing)} image of the {view} for a count."
    else:
        total = estimate.wrong_labels
        text = (f"{head}. The dataset holds about {total.estimate:,.0f} wrong labels ({level} interval "
                f"{total.low:,.0f}-{total.high:,.0f}")
        if expected_by_model is not None:
            text += f"; the networks' count was {expected_by_model:,.0f}"
        text += ")."
    if estimate.flag_precision is not None:
        p = estimate.flag_precision
        text += (f" The label-noise flags are {100 * p.estimate:.0f}% right ({100 * p.low:.0f}-{100 * p.high:.0f}%)")
        if estimate.flag_recall is not None:
            r = estimate.flag_recall
            text += f" and catch {100 * r.estimate:.0f}% of the wrong labels ({100 * r.low:.0f}-{100 * r.high:.0f}%)"
        text += "."
    left = drawn - reviewed
    return text + (f" {left} audit images left to review: each narrows the intervals." if left > 0 else "")


def in_sample_view_sentence(view: dict) -> str:
    """Which in-sample view the label-noise score read, and why, so a user can tell a memorising population."""
    return (f"  the networks fit {100 * view['fitted']:.1f}% of their training labels; confident learning "
            f"believes {100 * view['labels_right']:.1f}% are right: in-sample view read {view['view']}")


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
        text = f"Classes significantly impacted ({test}):\n" + table(
            rows, ["level", "class", "recall dense -> compressed", "normalised recall change", "p (adj.)"])
    else:
        text = f"No class significantly impacted by compression at any level ({test})."
    not_run = int(impact["p_value"].isna().sum())
    if not_run:
        text += (f"\n{not_run} of {len(impact)} class tests not run: the dense members scored those classes identically, and "
                 "so did the compressed ones, which leaves no spread to weigh a change against; more members "
                 "(--members) give it.")
    return text


def run_lines(outcome, launcher: str = "curate") -> list[Line]:
    """The summary of a finished run (:class:`curate.api.RunOutcome`)."""
    result = outcome.result
    levels = result.levels
    lines: list[Line] = [("", None), (
        f"curate: {len(result.images)} images, {len(result.images.classes)} classes, "
        f"{result.config.members} members x {result.config.folds} folds, {outcome.seconds:.0f} s", "bold")]
    lines.append((level_table_text(levels), None))
    n_pies = int(result.scores.is_pie_any.sum())
    lines.append((f"\nPIEs at any level: {n_pies} of {len(result.images)} "
                  f"({100 * n_pies / len(result.images):.2f}%)", None))
    if "pie_beyond_control" in result.samples:
        beyond = int(result.samples["pie_beyond_control"].sum())
        lines.append((f"  {beyond} of them are PIEs the control does not also produce. {CONTROL_SENTENCE}", None))
    lines += overlap_lines(result.matched_overlaps)
    lines += flag_lines(result)
    planted = result.images.fields.get("planted")
    if planted is not None and any(planted):
        lines += planted_lines(result, planted)
    lines.append(("\n" + impact_summary(result.impact, result.config.alpha), None))
    if result.bad_images:
        lines.append((f"\n{len(result.bad_images)} image(s) could not be read and were left out:", "warning"))
        lines += [(f"  {bad.path}: {bad.reason}", None) for bad in result.bad_images[:20]]
        if len(result.bad_images) > 20:
            lines.append((f"  ... and {len(result.bad_images) - 20} more (see manifest.json)", None))
    lines += [(f"\nWarning: {warning}", "warning") for warning in result.manifest.get("warnings", [])]
    lines.append((f"\nRun directory: {result.store.root}", None))
    if outcome.dataset:
        from curate.fiftyone.write import names_for

        view = names_for(outcome.run_key, []).views["all"]
        lines.append((f"FiftyOne dataset: {outcome.dataset} (run key {outcome.run_key!r}, tag, saved view {view!r})",
                      None))
        lines.append((f"Review in the App:  {launcher} app {outcome.dataset} --view {view}", "command"))
        lines.append((f"HTML report:        {launcher} report {outcome.dataset}" +
                      run_key_option(outcome.run_key), None))
    return lines


def run_key_option(run_key: str) -> str:
    """The ``--run-key`` a printed command needs: none for the default run key."""
    return "" if run_key == DEFAULT_RUN_KEY else f" --run-key {run_key}"


def export_now_sentence(plan) -> str:
    """What an export would do with the review so far, in one sentence."""
    actions = plan["action"].value_counts()
    dropped, relabelled = int(actions.get("drop", 0)), int(actions.get("relabel", 0))
    return (f"An export now would keep {len(plan) - dropped} samples ({relabelled} relabelled) and leave out "
            f"{dropped}")


def status_lines(status, launcher: str = "curate") -> list[Line]:
    """``curate status``: flags by review state, and what an export would do (:class:`curate.api.ReviewStatus`)."""
    plan, counts = status.plan, status.counts
    lines: list[Line] = [(f"{status.dataset}: {len(plan)} samples scored by run {status.run_key!r}", "bold")]
    lines += [(f"Warning: {warning}", "warning") for warning in status.warnings]
    lines.append((table([[flag, *row] for flag, row in zip(counts.index, counts.to_numpy().tolist())],
                        ["flag", *counts.columns]), None))
    calibrate = f"{launcher} calibrate {status.dataset}{run_key_option(status.run_key)}"
    lines += [(sentence, None) for sentence in label_review_sentences(plan, status.calibration, calibrate)]
    reasons = plan[plan["action"] != "keep"]["reason"].fillna("").astype(str).str.replace(r" [^ ]+ -> [^ ]+ ", " ", regex=True)
    notes = plan[(plan["action"] == "keep") & (plan["reason"] != "")]["reason"].value_counts()
    lines.append(("\n" + export_now_sentence(plan) + (":" if len(reasons) or len(notes) else "."), None))
    lines += [(f"  {count:6d}  {reason}", None) for reason, count in reasons.value_counts().items()]
    lines += [(f"  {count:6d}  {reason}", None) for reason, count in notes.items()]
    return lines


def label_review_sentences(plan, calibrated: dict | None = None, calibrate: str = "curate calibrate") -> list[str]:
    """What the reviewed label-noise flags and label-audit images say so far (``curate status`` and the App's
    review-status operator): the flags against what they were expected to hold, by the audit where it has
    answers, the audit's count of the dataset's wrong labels, and whether the App's audited P(label wrong)
    (``calibrated``, the record :func:`curate.fiftyone.calibrate.calibration_of` reads) is up to date;
    ``calibrate`` names the command that updates it."""
    from curate.science.review import audited_label_probabilities, label_audit_review, label_noise_review

    sentences = []
    audit = label_audit_review(plan)
    if "p_label_wrong" in plan:
        review = label_noise_review(plan)
        audited = audited_label_probabilities(plan) if audit is not None and sum(audit.reviewed) else None
        if review["flags"] and review["has_probabilities"]:
            sentences.append(label_noise_review_sentence(
                review, label_noise_review(plan, audited) if audited is not None else None))
    if audit is not None:
        modelled = float(np.nansum(plan["p_label_wrong"])) if "p_label_wrong" in plan else None
        sentences.append(label_audit_sentence(audit, modelled, int(plan["label_audit"].astype(bool).sum())))
        if "p_label_wrong" in plan:
            stale = calibration_stale_sentence(calibrated, int(sum(audit.reviewed)), int(sum(audit.wrong)), calibrate)
            sentences += [stale] if stale else []
    return sentences


def calibration_lines(calibration, dataset: str, launcher: str = "curate") -> list[Line]:
    """``curate calibrate``: what the label audit changed (:class:`curate.fiftyone.calibrate.Calibration`)."""
    from curate.fiftyone.write import names_for

    c = calibration
    view = names_for(c.run_key, []).label_noise_view
    return [
        (f"P(label wrong) calibrated by {c.reviewed} reviewed label-audit images ({c.wrong} wrongly labelled), "
         f"written to field {c.field!r}.", "bold"),
        (table([["label-noise flags", c.flags, round(c.flags_expected), round(c.flags_expected_networks)],
                ["whole dataset", "", round(c.dataset_expected), round(c.dataset_expected_networks)]],
               ["", "images", "wrong labels expected by the audit", "by the networks alone"]), None),
        (f"The {view!r} view now sorts by it, and each label-noise reason quotes both values. Review more audit "
         "images and calibrate again to narrow it.", None),
        (f"Review in the App:  {launcher} app {dataset} --view {view}", "command"),
    ]


def calibration_stale_sentence(calibrated: dict | None, reviewed: int, wrong: int,
                               calibrate: str = "curate calibrate") -> str | None:
    """Whether the App's audited P(label wrong) reflects the audit reviews so far (``reviewed`` decided, ``wrong``
    of them wrongly labelled); None when it does (or when nothing is reviewed yet)."""
    if not reviewed:
        return None
    if calibrated is None:
        return (f"To write what the audit says into the App (P(label wrong), the label-noise view's order, the "
                f"reasons): {calibrate}.")
    if (calibrated.get("reviewed"), calibrated.get("wrong")) != (reviewed, wrong):
        return (f"The App's audited P(label wrong) was calibrated with {calibrated.get('reviewed')} audit reviews "
                f"({calibrated.get('wrong')} wrong); {reviewed} are decided now ({wrong} wrong): {calibrate} again.")
    return None


def label_noise_review_sentence(review: dict, audited: dict | None = None) -> str:
    """The reviewed label-noise flags against what the run expected them to hold; with ``audited``
    (the same review read with the audit-calibrated probabilities), what the label audit expects instead."""
    def expected(key: str, digits: int) -> str:
        text = f"{(audited or review)[key]:.{digits}f} wrong labels"
        return text if audited is None else f"{text} by the label audit ({review[key]:.{digits}f} by the networks alone)"

    if not review["reviewed"]:
        return (f"Label-noise flags: none reviewed yet; the {review['flags']} flags are expected to hold about "
                f"{expected('unreviewed_expected', 0)}.")
    return (f"Label-noise flags reviewed: {review['reviewed']} of {review['flags']}. The run expected them to hold "
            f"{expected('expected', 1)}; the reviewer confirmed {review['confirmed']} (confirmed or "
            f"relabelled). The {review['unreviewed']} unreviewed flags are expected to hold about "
            f"{expected('unreviewed_expected', 0)}.")


def export_lines(manifest: dict, out) -> list[Line]:
    counts = manifest["counts"]
    return [(f"Exported {counts['exported']} of {counts['scored']} samples to {out} ({manifest['format']}): "
             f"{counts['dropped']} left out, {counts['relabelled']} relabelled.", None),
            (table([[k, v] for k, v in counts["per_split"].items()], ["split", "samples"]), None),
            ("Every change and its reason: changes.csv, curate_export.json", None)]
