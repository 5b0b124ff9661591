"""`curate report`: a self-contained HTML page from a finished run, linked from the FiftyOne dataset."""

import re

import pytest

from curate.browser import find_chromium
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
