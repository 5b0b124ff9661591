"""``curate report``: one self-contained HTML page with the paper's findings on the user's own data.

Reads only the run directory (tables and the manifest written by :func:`curate.population.pipeline.run_curate`),
draws the figures with matplotlib (PNG, inlined as data URIs, as are the gallery thumbnails), and
writes a single file that opens anywhere, offline. Nothing in the run directory is modified except
``report.html`` itself when written there.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from curate import __version__
from curate.science.analysis import matched_overlaps
from curate.science.findings import comparable_pairs, compression_comparison, most_forgotten_classes, pie_accuracy_table
from curate.science.flags import REGISTRY, category_names
from curate.data.faults import checkpoint
from curate.science.findings import robustness_summary
from curate.data.safety import REPORT_GENERATOR, OutputError, check_not_media, check_replaceable_file, run_media_folders
from curate.data.store import RunStore

GALLERY_SIZE = 8
MAX_CLASSES_PER_PANEL = 30
PRUNE_COLOR, QUANT_COLOR, DENSE_COLOR = "#c0392b", "#2471a3", "#222222"
FILTER_COLOR, DISTILL_COLOR = "#7d3c98", "#1e8449"
KIND_STYLES = (("prune", PRUNE_COLOR, "o", "-", "pruning"), ("quantize", QUANT_COLOR, "s", "none", "quantization"),
               ("filter", FILTER_COLOR, "^", "-", "filter pruning"), ("distill", DISTILL_COLOR, "D", "none", "distillation"))


class ReportError(ValueError):
    pass


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_levels(levels: pd.DataFrame) -> str:
    """Accuracy and PIE fraction against weight-memory compression, every compression kind."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    dense = levels[levels["level"] == "dense"].iloc[0]
    for kind, color, marker, style, label in KIND_STYLES:
        rows = levels[levels["kind"] == kind]
        if rows.empty:
            continue
        x = rows["compression"]
        axes[0].errorbar(x, rows["accuracy"], yerr=rows["accuracy_std"], color=color, marker=marker, ls=style,
                         capsize=3, label=label)
        axes[1].plot(x, 100 * rows["pie_fraction"], color=color, marker=marker, ls=style)
        for xi, (_, row) in zip(x, rows.iterrows()):
            for ax, y in ((axes[0], row["accuracy"]), (axes[1], 100 * row["pie_fraction"])):
                ax.annotate(row["level"], (xi, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
    axes[0].axhline(dense["accuracy"], color=DENSE_COLOR, lw=1, ls="--", label="dense")
    control = levels[levels["kind"] == "control"]
    if len(control):
        # The noise floor: PIEs a fine-tuned copy with every weight kept makes on its own.
        axes[1].axhline(100 * control.iloc[0]["pie_fraction"], color=DENSE_COLOR, lw=1, ls=":",
                        label="control (fine-tuned, no compression)")
        axes[1].legend(fontsize=8)
    axes[0].set(xscale="log", xlabel="weight memory, x smaller than dense float32", ylabel="held-out accuracy",
                title="Accuracy per compression level")
    axes[1].set(xscale="log", xlabel="weight memory, x smaller than dense float32", ylabel="PIEs (% of images)",
                title="PIE fraction per compression level")
    axes[0].legend(fontsize=8)
    ticks = []
    # One tick per compression, those within 15% of a tick already placed merged (filter50's 3.97x and
    # int8's 4x would print on top of each other).
    for value in sorted(levels.loc[levels["level"] != "dense", "compression"].dropna()):
        if not ticks or value > 1.15 * ticks[-1]:
            ticks.append(float(np.round(value, 1)))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ticks:
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{t:.3g}x" for t in ticks], fontsize=8)
            ax.minorticks_off()
    return _figure_uri(fig)


def figure_class_impact(impact: pd.DataFrame, level_names: list[str]) -> str:
    """The paper's Figure 2: per-class normalised recall change per level, significant classes coloured."""
    plt = _pyplot()
    n = len(level_names)
    cols = min(3, n)
    rows_n = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), squeeze=False)
    for ax, level in zip(axes.flat, level_names):
        rows = impact[impact["level"] == level].sort_values("normalized_change")
        # A class the dense networks never got right has no relative change (0/0 or x/0): it has no bar.
        measured = np.isfinite(rows["normalized_change"].to_numpy(dtype=float))
        unmeasured = int((~measured).sum())
        rows = rows[measured]
        shown = rows if len(rows) <= MAX_CLASSES_PER_PANEL else pd.concat(
            [rows.head(MAX_CLASSES_PER_PANEL // 2), rows.tail(MAX_CLASSES_PER_PANEL // 2)])
        change = 100 * shown["normalized_change"].to_numpy()
        significant = shown["significant"].to_numpy(dtype=bool)
        colors = np.where(significant, np.where(change < 0, PRUNE_COLOR, QUANT_COLOR), "#b3b6b7")
        ax.bar(range(len(shown)), change, color=colors)
        ax.axhline(0, color=DENSE_COLOR, lw=0.8)
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels(shown["class"].astype(str), rotation=90, fontsize=7)
        note = f", {len(shown)} of {len(rows)} classes" if len(shown) < len(rows) else ""
        note += f", {unmeasured} never right when dense" if unmeasured else ""
        ax.set_title(f"{level}: {int(rows['significant'].sum())} significant{note}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("normalised recall change (%)")
    fig.suptitle("Per-class impact of compression (coloured: significant after Holm correction)", fontsize=10)
    fig.tight_layout()
    return _figure_uri(fig)


def figure_robustness(robust: pd.DataFrame, level_kinds: dict[str, str]) -> str:
    """Accuracy against corruption severity, one panel per corruption, one line per level."""
    plt = _pyplot()
    corruptions = list(dict.fromkeys(robust["corruption"]))
    cols = min(3, len(corruptions))
    rows_n = int(np.ceil(len(corruptions) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.0 * rows_n), squeeze=False, sharey=True)
    levels = list(dict.fromkeys(robust["level"]))
    prune_levels = [lv for lv in levels if level_kinds.get(lv) == "prune"]
    quant_levels = [lv for lv in levels if level_kinds.get(lv) == "quantize"]
    reds, blues = plt.get_cmap("Reds"), plt.get_cmap("Blues")
    style = {"dense": dict(color=DENSE_COLOR, lw=2.2)}
    style.update({lv: dict(color=reds(0.4 + 0.6 * i / max(1, len(prune_levels) - 1)), lw=1.2)
                  for i, lv in enumerate(prune_levels)})
    style.update({lv: dict(color=blues(0.4 + 0.6 * i / max(1, len(quant_levels) - 1)), lw=1.2, ls="--")
                  for i, lv in enumerate(quant_levels)})
    for ax, corruption in zip(axes.flat, corruptions):
        for level in levels:
            rows = robust[(robust["corruption"] == corruption) & (robust["level"] == level)].sort_values("severity")
            ax.plot(rows["severity"], rows["accuracy"], marker=".", label=level, **style.get(level, {}))
        ax.set_title(corruption, fontsize=9)
        ax.set_xlabel("severity (0 = clean)")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(corruptions):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("held-out accuracy")
    axes.flat[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _figure_uri(fig)


def _thumbnail_uri(path: str, size: int = 112) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = size / max(image.size)
            resample = Image.NEAREST if scale >= 2 else Image.BILINEAR
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _table_html(frame: pd.DataFrame, percent: tuple[str, ...] = (), digits: int = 3) -> str:
    def cell(column, value):
        if isinstance(value, (float, np.floating)):
            if np.isnan(value):
                return "–"
            text = f"{100 * value:.1f}%" if column in percent else f"{value:.{digits}f}"
            return text[1:] if text.startswith("-") and not text.strip("-0.%") else text  # no "-0.0%"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(c, v)}</td>" for c, v in zip(frame.columns, row)) + "</tr>"
                   for row in frame.itertuples(index=False))
    # Wide tables scroll inside their own box, so the page keeps its width and the figures stay in view.
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _gallery(samples: pd.DataFrame, title: str, score_column: str, note: str) -> str:
    if samples.empty:
        return f"<h3>{html.escape(title)}</h3><p class='note'>None in this run.</p>"
    cards = []
    for row in samples.sort_values(score_column, ascending=False).head(GALLERY_SIZE).itertuples(index=False):
        uri = _thumbnail_uri(row.filepath)
        image = f"<img src='{uri}' alt=''>" if uri else "<div class='missing'>image unreadable</div>"
        suggested = (f" &rarr; <b>{html.escape(str(row.suggested_label))}</b>?"
                     if getattr(row, "label_noise", False) else "")
        cards.append(
            f"<figure>{image}<figcaption><b>{html.escape(str(row.label))}</b>{suggested} "
            f"<span class='score'>{getattr(row, score_column):.2f}</span><br>"
            f"<span class='reason'>{html.escape(str(row.reason or ''))}</span><br>"
            f"<span class='path'>{html.escape(Path(row.filepath).name)}</span></figcaption></figure>")
    return (f"<h3>{html.escape(title)} <span class='count'>({len(samples)})</span></h3>"
            f"<p class='note'>{html.escape(note)}</p><div class='gallery'>{''.join(cards)}</div>")


CATEGORY_NOTES = {
    "label_noise": "The population, out of sample, puts its mass on another class: probably mislabelled.",
    "corruption": "The image itself is degraded (a pixel check fires); those the models are unsure of first.",
    "multi_object": "The models split between two or more classes: two objects, or an ambiguous image.",
    "atypical": "None of the above: rightly labelled but rare, the long tail compression forgets first.",
}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;
padding:0 1em;line-height:1.45}
h1{margin-bottom:0}h2{border-bottom:2px solid #eee;padding-bottom:.2em;margin-top:1.8em}
.meta,.note{color:#666;font-size:.9em}.count{color:#888;font-weight:normal}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f4f6f7}td:first-child,th:first-child{text-align:left}
img.figure{max-width:100%;margin:.5em 0}.wide{overflow-x:auto;max-width:100%}
ul.findings li{margin:.3em 0}
p.warning{background:#fff4e0;border-left:4px solid #e69500;padding:.6em .9em}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:170px;font-size:.75em;border:1px solid #e5e7e9;border-radius:6px;padding:6px;background:#fafafa}
figure img{width:112px;height:112px;object-fit:contain;image-rendering:pixelated;display:block;margin:0 auto 4px;
background:#fff}.score{float:right;color:#c0392b}.reason{color:#444}.path{color:#999}
"""


def findings_text(levels: pd.DataFrame, pie_acc: pd.DataFrame, robust: pd.DataFrame | None,
                  impact: pd.DataFrame | None = None, matched: pd.DataFrame | None = None) -> list[str]:
    """The headline sentences, worked out from the tables (nothing here is fixed text about the data).

    ``matched``: :func:`curate.science.analysis.matched_overlaps` of the run, for the PIEs each compared pair
    shares."""
    out = []
    prune, quant = levels[levels["kind"] == "prune"], levels[levels["kind"] == "quantize"]
    if len(prune):
        strongest = prune.iloc[-1]
        row = pie_acc[pie_acc["level"] == strongest["level"]].iloc[0]
        out.append(
            f"At {strongest['level']} ({100 * strongest['measured_sparsity']:.0f}% of weights removed) "
            f"{100 * row['pie_fraction']:.1f}% of images are PIEs; held-out accuracy moves from "
            f"{levels.iloc[0]['accuracy']:.3f} (dense) to {strongest['accuracy']:.3f}.")
        if row["pies"]:
            on_pies, on_rest = 100 * row["dense_accuracy_pies"], 100 * row["dense_accuracy_without_pies"]
            compared = (f"the dense population is right on {on_pies:.1f}% of {strongest['level']}'s PIEs "
                        f"against {on_rest:.1f}% of the rest")
            if round(on_pies, 1) < round(on_rest, 1):
                out.append(f"PIEs are harder: {compared}; without them dense accuracy would be {on_rest:.1f}% "
                           f"instead of {100 * row['dense_accuracy']:.1f}%.")
            else:
                out.append(f"PIEs are not harder here, unlike in the paper: {compared}.")
        control = levels[levels["kind"] == "control"]
        if len(control) and "excess_pie_fraction" in strongest:
            out.append(
                f"The control level (each dense network fine-tuned as the pruned copies are, no weight removed) "
                f"has {100 * control.iloc[0]['pie_fraction']:.1f}% PIEs: the noise floor. {strongest['level']}'s "
                f"PIEs beyond it: {100 * strongest['excess_pie_fraction']:+.1f} points (95% CI "
                f"{100 * strongest['excess_low']:+.1f} to {100 * strongest['excess_high']:+.1f}).")
        out.append("Classes significantly impacted by pruning (Welch t-test, Holm-corrected), per level: "
                   + ", ".join(f"{r.level} {int(r.classes_impacted)}" for r in prune.itertuples()) + ".")
    if len(quant):
        out.append("Quantization, per level: " + ", ".join(
            f"{r.level} {int(r.classes_impacted)} classes impacted, {100 * r.pie_fraction:.2f}% PIEs"
            for r in quant.itertuples()) + ".")
    for kind, name in (("filter", "Filter pruning"), ("distill", "Distilled students")):
        rows = levels[levels["kind"] == kind]
        if len(rows):
            out.append(f"{name}, per level: " + ", ".join(
                f"{r.level} {r.compression:.1f}x smaller"
                + (f", {r.speedup:.1f}x the dense speed on CPU" if "speedup" in levels else "")
                + f", accuracy {r.accuracy:.3f}, {100 * r.pie_fraction:.2f}% PIEs" for r in rows.itertuples()) + ".")
    others = levels[~levels["kind"].isin(["dense", "control", "prune"])]
    if impact is not None and len(others) and len(prune):
        comparison = compression_comparison(levels, impact).set_index("level")
        matched = matched.set_index("level") if matched is not None else pd.DataFrame()
        sentences = []
        for q, p in comparable_pairs(comparison.reset_index()):
            a, b = comparison.loc[q], comparison.loc[p]
            text = (f"{q} ({a['compression']:.1f}x smaller) vs {p} ({b['compression']:.1f}x): "
                    f"{100 * a['pie_fraction']:.2f}% vs {100 * b['pie_fraction']:.2f}% PIEs, mean absolute "
                    f"class change {100 * a['class_disturbance']:.1f}% vs {100 * b['class_disturbance']:.1f}%")
            if q in matched.index:
                m = matched.loc[q]
                text += (f", {int(m['shared'])} PIEs in common (overlap {m['jaccard']:.2f}, "
                         f"{m['ratio']:.1f}x chance)" if m["ratio"] == m["ratio"] else "")
            sentences.append(text)
        out.append("At comparable compression, " + "; ".join(sentences) + ".")
    if robust is not None and not robust.empty:
        summary = robustness_summary(robust)
        dense_mean = summary.loc["dense", "mean"]
        worst = summary.drop(index="dense")["mean"].idxmin()
        out.append(f"Under corruption (mean over 6 corruptions x severities) the dense population keeps "
                   f"{dense_mean:.3f} accuracy; the least robust compressed level is {worst} "
                   f"({summary.loc[worst, 'mean']:.3f}).")
    return out


def overlap_matrix(overlap: pd.DataFrame) -> pd.DataFrame:
    """The pairwise table of ``overlap.csv`` as a symmetric matrix of Jaccard overlaps, one row per level."""
    names = list(dict.fromkeys([*overlap["level_a"], *overlap["level_b"]]))
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for row in overlap.itertuples():
        matrix.loc[row.level_a, row.level_b] = matrix.loc[row.level_b, row.level_a] = row.jaccard
    return matrix.rename_axis("level").reset_index()


def _with_level_kinds(levels: pd.DataFrame) -> pd.DataFrame:
    """``levels.csv`` of a run made before quantization levels: every level was pruning, float32."""
    if "kind" in levels:
        return levels
    return levels.assign(kind=np.where(levels["level"] == "dense", "dense", "prune"), bits=32,
                         compression=1.0 / (1.0 - levels["sparsity"]))


def build_report(run_dir: str | Path, title: str | None = None) -> str:
    """The report's HTML for the run stored in ``run_dir``."""
    store = RunStore(run_dir)
    store.check_version()
    manifest = store.read_json("manifest.json")
    if not manifest or manifest.get("status") != "complete":
        raise ReportError(f"{store.root} holds no finished curate run (manifest.json missing or not complete); "
                          "run `curate run` first, or let an interrupted run finish.")
    levels = _with_level_kinds(store.load_table("levels.csv"))
    impact = store.load_table("classes.csv")
    overlap = store.load_table("overlap.csv") if (store.root / "overlap.csv").exists() else None
    matched = matched_overlaps(levels, overlap) if overlap is not None else None
    samples = store.load_table("samples.parquet")
    robust = store.load_table("robustness.csv") if (store.root / "robustness.csv").exists() else None
    level_names = [lv for lv, kind in zip(levels["level"], levels["kind"]) if kind not in ("dense", "control")]
    classes = list(manifest["classes"])
    index = {c: i for i, c in enumerate(classes)}
    labels = samples["label"].map(index).to_numpy()
    dense_modal = samples["dense_label"].map(index).to_numpy()
    compressed_modal = np.stack([samples[f"{lv}_label"].map(index).to_numpy() for lv in level_names])
    is_pie = np.stack([samples[f"{lv}_pie"].to_numpy(dtype=bool) for lv in level_names])
    pie_acc = pie_accuracy_table(dense_modal, compressed_modal, labels, is_pie, level_names)
    kinds = dict(zip(levels["level"], levels["kind"]))
    config = manifest.get("config", {})

    parts = [f"<!doctype html><html><head><meta charset='utf-8'>{REPORT_GENERATOR}<title>{html.escape(title or 'curate report')}"
             f"</title><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>{html.escape(title or 'curate report')}</h1><p class='meta'>"
                 f"{html.escape(str(manifest.get('source', '')))} &middot; {manifest['n_images']:,} images, "
                 f"{len(classes)} classes &middot; model {html.escape(str(config.get('model')))}, "
                 f"{config.get('members')} members x {config.get('folds')} folds &middot; run finished "
                 f"{html.escape(str(manifest.get('finished', '')))} &middot; report by curate {__version__}, "
                 f"{datetime.now(timezone.utc).isoformat(timespec='minutes')}</p>")
    for warning in manifest.get("warnings", []):
        parts.append(f"<p class='warning'>&#9888; {html.escape(warning)}</p>")
    parts.append("<h2>Findings</h2><ul class='findings'>"
                 + "".join(f"<li>{html.escape(s)}</li>" for s in findings_text(levels, pie_acc, robust, impact, matched))
                 + "</ul>")

    parts.append("<h2>Compression levels</h2><p class='note'>Accuracy: each network on the images it never "
                 "trained on, mean &plusmn; sd over members. A PIE at a level: the compressed population's modal "
                 "label differs from the dense population's (Hooker et al. 2019).</p>")
    parts.append(f"<img class='figure' src='{figure_levels(levels)}' alt='accuracy and PIE fraction per level'>")
    parts.append(_table_html(compression_comparison(levels, impact),
                             percent=("pie_fraction", "accuracy_change", "class_disturbance")))
    if overlap is not None and len(overlap):
        parts.append("<h2>Do compressions forget the same images?</h2><p class='note'>Overlap: the Jaccard index of "
                     "two levels' PIE sets; chance: its value for random sets of the same sizes. First each level "
                     "against the pruning level nearest in weight memory, then every pair.</p>")
        if len(matched):
            parts.append(_table_html(matched))
        parts.append(_table_html(overlap_matrix(overlap)))

    parts.append("<h2>PIEs are harder</h2><p class='note'>Accuracy of the dense population's modal label on "
                 "each level's PIEs, on the rest, and the change in dense accuracy if that level's PIEs were "
                 "removed from the dataset.</p>")
    parts.append(_table_html(pie_acc, percent=tuple(c for c in pie_acc.columns if c not in ("level", "pies"))))

    parts.append("<h2>Which classes compression forgets</h2><p class='note'>Per class: relative change of "
                 "recall normalised by the model's overall accuracy, compressed vs dense; Welch's t-test over "
                 "members, Holm-corrected over classes.</p>")
    parts.append(f"<img class='figure' src='{figure_class_impact(impact, level_names)}' alt='per-class impact'>")
    forgotten = most_forgotten_classes(impact, top=15)
    parts.append(_table_html(forgotten[["level", "class", "support", "dense_recall", "compressed_recall",
                                        "normalized_change", "p_adjusted", "significant"]],
                             percent=("normalized_change",)))

    if robust is not None and not robust.empty:
        parts.append("<h2>Robustness to corruption</h2><p class='note'>ImageNet-C-style corruptions (CIFAR-10-C "
                     "severities) of held-out images, predicted by each network and its compressed copies.</p>")
        parts.append(f"<img class='figure' src='{figure_robustness(robust, kinds)}' alt='robustness curves'>")
        parts.append(_table_html(robustness_summary(robust).reset_index()))

    parts.append("<h2>The images behind the numbers</h2><p class='note'>Highest-scoring PIEs per category, "
                 "with the reason curate gives in the App.</p>")
    view = manifest.get("in_sample_view")
    if view:
        parts.append(f"<p class='note'>Label-noise scores average the held-out and in-sample probability of the "
                     f"label. The networks fit {100 * view['fitted']:.1f}% of their training labels; confident "
                     f"learning believes {100 * view['labels_right']:.1f}% are right, so the in-sample view was "
                     f"read {html.escape(view['view'])}"
                     + (" (second-split forgetting: the networks had fitted wrong labels)."
                        if view["view"] == "after forgetting" else ".") + "</p>")
    if "category" in samples:
        for name in manifest.get("flags") or category_names():
            chosen = samples[samples["category"] == name]
            note = CATEGORY_NOTES.get(name) or (REGISTRY[name].description if name in REGISTRY.names() else "")
            parts.append(_gallery(chosen, f"pie:{name}", f"{name}_score", note))
        extra = samples[samples["label_noise"].astype(bool) & (samples["category"] != "label_noise")]
        parts.append(_gallery(extra, "label_noise, not a PIE", "label_noise_score",
                              "Confident mislabels that compression does not change."))
        if "corruption" in samples:
            extra = samples[samples["corruption"].astype(bool) & (samples["category"].fillna("") == "")]
            parts.append(_gallery(extra, "corruption, not a PIE", "corruption_score",
                                  "Images a pixel check flags that compression does not change; "
                                  "those the models are also unsure of first."))
    parts.append("</body></html>")
    return "".join(parts)


def write_report(run_dir: str | Path, out: str | Path | None = None, title: str | None = None,
                 force: bool = False) -> Path:
    """Write the report for ``run_dir`` to ``out`` (default ``<run_dir>/report.html``); returns the path.

    An ``out`` outside the run directory that already exists is refused unless ``force``, and even
    then unless it is a report curate wrote; an ``out`` among the run's source images is refused.
    """
    default = Path(run_dir) / "report.html"
    out = Path(out) if out else default
    if out.exists() and out.resolve() != default.resolve() and not force:
        raise ReportError(f"{out} exists; choose another path or pass --force to overwrite it.")
    try:
        check_not_media(out, run_media_folders(run_dir), "Report")
        check_replaceable_file(out, "report")
    except OutputError as exc:
        raise ReportError(str(exc)) from None
    text = build_report(run_dir, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    with open(tmp, "w", encoding="utf-8") as f:
        half = len(text) // 2
        f.write(text[:half])
        f.flush()
        checkpoint("report")
        f.write(text[half:])
    tmp.replace(out)
    return out
