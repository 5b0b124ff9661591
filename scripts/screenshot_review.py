#!/usr/bin/env python
"""Photograph a reviewed sample in the FiftyOne App: the review conventions as a reviewer sees them.

    python scripts/screenshot_review.py curate-digits --out docs/img/app-review.png

Clones DATASET to DATASET-review-example (replacing an earlier clone; the original is never touched),
reviews its three most likely label errors the way a person would in the App (the first `confirmed`
plus `relabel:suggested`, the second `rejected`, the third `remove`), prints what `curate status` would
report, and photographs the first one open in the App's sample modal with its tag list expanded.

Expanding the list takes a click, so this drives the system Chromium with Playwright
(`pip install -e .[docs]`; no browser download: it uses /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import urllib.parse
from pathlib import Path


from screenshot_app import app_page, wait_for  # noqa: E402


def photograph_with_tags(url: str, out: str, width: int, height: int, wait_ms: int, chromium: str | None) -> None:
    """Open ``url`` (a sample modal), expand the modal sidebar's sample tags, and screenshot it."""
    with app_page(url, width, height, wait_ms, chromium) as page:
        row = page.get_by_text("tags", exact=True).first.bounding_box()
        if row is None:
            raise SystemExit("The App's sample modal did not show its tags; is the sample id right?")
        page.mouse.click(width - 53, row["y"] + row["height"] / 2)  # the row's expand arrow
        page.get_by_text("confirmed", exact=True).first.wait_for(timeout=10000)
        page.wait_for_timeout(2500)  # let the sidebar's expand animation settle
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--out", default="docs/img/app-review.png")
    parser.add_argument("--port", type=int, default=5253)
    parser.add_argument("--size", default="1500x900")
    parser.add_argument("--wait-ms", type=int, default=15000)
    args = parser.parse_args()

    from click.testing import CliRunner

    from curate.report.browser import find_chromium
    from curate.frontends.cli import main as curate_main
    from curate.fiftyone.db import import_fiftyone

    fo = import_fiftyone()
    name = f"{args.dataset}-review-example"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    review = fo.load_dataset(args.dataset).clone(name, persistent=True)
    flagged = review.load_saved_view("label-noise").limit(3)
    if len(flagged) < 3:
        raise SystemExit(f"{args.dataset} has fewer than 3 suspected label errors to review.")
    ids = flagged.values("id")
    review.select(ids[0]).tag_samples(["confirmed", "relabel:suggested"])
    review.select(ids[1]).tag_samples("rejected")
    review.select(ids[2]).tag_samples("remove")
    print(CliRunner().invoke(curate_main, ["status", name]).output)

    session = fo.launch_app(review, port=args.port, remote=True, auto=False)
    try:
        url = f"http://localhost:{args.port}/"
        wait_for(url)
        width, height = (int(v) for v in args.size.split("x"))
        query = urllib.parse.urlencode({"view": "label-noise", "id": ids[0]})
        page = f"{url}datasets/{urllib.parse.quote(name)}?{query}"
        photograph_with_tags(page, args.out, width, height, args.wait_ms, find_chromium())
        print(f"wrote {args.out}")
    finally:
        session.close()


if __name__ == "__main__":
    main()
