"""`curate report`: a self-contained HTML page from a finished run, linked from the FiftyOne dataset."""

import re

import pytest

from curate.report.browser import find_chromium
from helpers import invoke


def test_report_for_a_dataset_is_self_contained_and_linked(fo, digits_run, tmp_path):
    dataset, run_dir, _ = digits_run
    result = invoke("report", "test-digits")
    assert result.exit_code == 0, result.output
    path = run_dir / "report.html"
    assert str(path.resolve()) in result.output
    text = path.read_text()
    for heading in ("Findings", "Compression levels", "PIEs are harder", "Which classes compression forgets",
                    "Robustness to corruption", "The images behind the numbers"):
        assert f"<h2>{heading}</h2>" in text, heading
    # Four figures (levels, per-class impact, robustness) and thumbnails, all inlined: nothing to fetch.
    assert len(re.findall(r"src='data:image/png;base64,", text)) >= 3 + 8
    assert not re.search(r"""(src|href)=['"]?(https?:|file:|/)""", text)
    # The numbers come from this run's tables.
    assert "int4" in text and "prune90" in text and "gaussian_noise" in text
    # Wide tables scroll in their own box, so the page never scrolls sideways.
    assert text.count("<table>") == text.count('<div class="wide"><table>') > 0
    assert ".wide{overflow-x:auto" in text
    # ... and say which in-sample view the label-noise scores read, as the run recorded it.
    view = dataset.info["curate"]["curate"]["in_sample_view"]
    assert f"so the in-sample view was read {view['view']}" in text
    dataset.reload()
    assert dataset.info["curate"]["curate"]["report"] == str(path.resolve())


def test_report_refuses_to_overwrite_and_names_what_is_missing(digits_run, tmp_path):
    _, run_dir, _ = digits_run
    out = tmp_path / "report.html"
    assert invoke("report", "--run-dir", str(run_dir), "--out", str(out)).exit_code == 0
    again = invoke("report", "--run-dir", str(run_dir), "--out", str(out))
    assert again.exit_code == 2 and "--force" in again.output
    assert invoke("report", "--run-dir", str(run_dir), "--out", str(out), "--force").exit_code == 0
    empty = invoke("report", "--run-dir", str(tmp_path / "nothing"))
    assert empty.exit_code == 2 and "holds no finished curate run" in empty.output
    neither = invoke("report")
    assert neither.exit_code == 2 and "NAME or --run-dir" in neither.output


@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium) to render the page")
def test_report_renders_in_headless_chromium(digits_run, tmp_path):
    from PIL import Image

    _, run_dir, _ = digits_run
    png = tmp_path / "report.png"
    result = invoke("report", "--run-dir", str(run_dir), "--out", str(tmp_path / "r.html"), "--screenshot", str(png))
    assert result.exit_code == 0, result.output
    image = Image.open(png).convert("L")
    assert image.size == (1300, 2400)
    # A rendered page has text and figures: many distinct grey levels, not a blank canvas.
    assert len(set(image.get_flattened_data())) > 50


def test_findings_sentences_come_from_the_tables():
    import pandas as pd

    from curate.report.html import findings_text

    levels = pd.DataFrame({
        "level": ["dense", "prune90", "int4"], "kind": ["dense", "prune", "quantize"],
        "sparsity": [0, 0.9, 0], "measured_sparsity": [0, 0.9, 0.2], "compression": [1, 10, 8],
        "accuracy": [0.8, 0.7, 0.79], "pies": [0, 100, 10], "pie_fraction": [0, 0.1, 0.01],
        "classes_impacted": [0, 2, 0]})
    pie_acc = pd.DataFrame({"level": ["prune90", "int4"], "pies": [100, 10], "pie_fraction": [0.1, 0.01],
                            "dense_accuracy": [0.8, 0.8], "dense_accuracy_pies": [0.3, 0.5],
                            "dense_accuracy_without_pies": [0.856, 0.803]})
    impact = pd.DataFrame({"level": ["prune90", "prune90", "int4", "int4"], "normalized_change": [-0.2, 0.1, 0, 0.02]})
    text = findings_text(levels, pie_acc, None, impact)
    assert text[0] == ("At prune90 (90% of weights removed) 10.0% of images are PIEs; held-out accuracy moves "
                       "from 0.800 (dense) to 0.700.")
    assert text[1].startswith("PIEs are harder: the dense population is right on 30.0% of prune90's PIEs "
                              "against 85.6% of the rest; without them dense accuracy would be 85.6%")
    # A population where PIEs are no harder (e.g. one that learnt nothing) is not told otherwise.
    easier = pie_acc.assign(dense_accuracy_pies=[0.9, 0.5], dense_accuracy_without_pies=[0.789, 0.803])
    assert findings_text(levels, easier, None, impact)[1] == (
        "PIEs are not harder here, unlike in the paper: the dense population is right on 90.0% of prune90's "
        "PIEs against 78.9% of the rest.")
    assert text[2].endswith("per level: prune90 2.")
    assert "int4 0 classes impacted, 1.00% PIEs" in text[3]
    assert text[4] == ("At comparable compression, int4 (8.0x smaller) vs prune90 (10.0x): 1.00% vs 10.00% PIEs, "
                       "mean absolute class change 1.0% vs 15.0%.")


def test_class_impact_figure_leaves_out_classes_the_dense_networks_never_got_right():
    # Such a class's relative change is 0/0 or x/0; a bar of NaN made matplotlib warn on the user's screen.
    import warnings

    import numpy as np
    import pandas as pd

    from curate.report.html import figure_class_impact

    impact = pd.DataFrame({"level": "prune50", "class": ["a", "b", "c", "d"],
                           "normalized_change": [-0.2, np.nan, np.inf, 0.1],
                           "significant": [True, False, False, False]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uri = figure_class_impact(impact, ["prune50"])
    assert uri.startswith("data:image/png;base64,")
