#!/usr/bin/env python
"""Photograph curate's review operator open in the FiftyOne App, as a reviewer uses it.

    python scripts/screenshot_operator.py curate-digits --out docs/img/app-operator.png
    python scripts/screenshot_operator.py curate-digits --operator compute --out docs/img/app-compute.png

Installs the App plugin (`curate plugin install`) into a throwaway plugins directory, clones DATASET
to DATASET-operator-example (the original is never touched), opens its most likely label error in
the sample modal, presses the backtick key to open the operator browser, picks "curate: review
selected samples" and photographs the form (``--operator compute``: the "curate: find PIEs and flags"
form, opened on the grid). With --apply it then submits the form (confirm), and
prints the sample's tags and what `curate status` reports, to show the operator's effect.

Drives the system Chromium with Playwright (`pip install -e .[docs]`; no browser download).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import urllib.parse
from pathlib import Path


# The App's server reads the plugins directory from the environment it inherits.
os.environ["FIFTYONE_PLUGINS_DIR"] = tempfile.mkdtemp(prefix="curate-plugins-")

from screenshot_app import app_page, wait_for  # noqa: E402


OPERATORS = {  # label in the operator browser, text that shows its form has rendered
    "review": ("curate: review selected samples", "Confirm the flag"),
    "compute": ("curate: find PIEs and flags", "Members (K)"),
    "status": ("curate: review status", None),  # no form: executes at once and shows its table
}


def photograph_operator(url: str, out: str, width: int, height: int, wait_ms: int, chromium: str | None,
                        apply: bool, operator: str = "review") -> None:
    label, rendered = OPERATORS[operator]
    with app_page(url, width, height, wait_ms, chromium) as page:
        page.keyboard.press("`")
        page.keyboard.type(label)
        page.get_by_text(label).first.click()
        if rendered is None:
            page.get_by_role("button", name="Execute").first.click()
            rendered = "An export now would keep"
        page.get_by_text(rendered).first.wait_for(timeout=20000)
        page.wait_for_timeout(1500)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=out)
        if apply:
            page.get_by_role("button", name="Execute").first.click()
            page.wait_for_timeout(4000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--out", default="docs/img/app-operator.png")
    parser.add_argument("--port", type=int, default=5254)
    parser.add_argument("--size", default="1500x900")
    parser.add_argument("--wait-ms", type=int, default=15000)
    parser.add_argument("--apply", action="store_true", help="Submit the review form (confirm) and show its effect.")
    parser.add_argument("--operator", choices=sorted(OPERATORS), default="review",
                        help="review: the review form on a flagged sample; compute: the run form on the grid; "
                             "status: the review-status table.")
    args = parser.parse_args()

    from click.testing import CliRunner

    from curate.report.browser import find_chromium
    from curate.frontends.cli import main as curate_main
    from curate.fiftyone.db import import_fiftyone

    print(CliRunner().invoke(curate_main, ["plugin", "install"]).output)
    fo = import_fiftyone()
    name = f"{args.dataset}-operator-example"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    example = fo.load_dataset(args.dataset).clone(name, persistent=True)
    sample_id = example.load_saved_view("label-noise").first().id

    session = fo.launch_app(example, port=args.port, remote=True, auto=False)
    try:
        url = f"http://localhost:{args.port}/"
        wait_for(url)
        width, height = (int(v) for v in args.size.split("x"))
        query = urllib.parse.urlencode({"view": "label-noise", "id": sample_id} if args.operator == "review" else {})
        page = f"{url}datasets/{urllib.parse.quote(name)}" + (f"?{query}" if query else "")
        apply = args.apply and args.operator == "review"
        photograph_operator(page, args.out, width, height, args.wait_ms, find_chromium(), apply, args.operator)
        print(f"wrote {args.out}")
    finally:
        session.close()
    if args.apply and args.operator == "review":
        example.reload()
        print(f"tags of {sample_id} after Execute: {example[sample_id].tags}")
        print(CliRunner().invoke(curate_main, ["status", name]).output)


if __name__ == "__main__":
    main()
