#!/usr/bin/env python
"""Serve the FiftyOne App on a dataset's saved view and photograph it with headless Chromium.

    python scripts/screenshot_app.py curate-digits --view pies --out docs/img/app-pies.png
    python scripts/screenshot_app.py curate-digits --view label-noise --open-tagged confirmed --out docs/img/app-review.png

``--open-tagged TAG`` opens the first sample of the view carrying that sample tag in the App's sample
modal, whose sidebar lists the sample's tags and fields (the review conventions in action).

Needs Debian's `chromium` (apt-get install chromium). Exits non-zero if the App does not answer
or Chromium writes no image.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import time
import urllib.parse
import urllib.request
from pathlib import Path



@contextlib.contextmanager
def app_page(url: str, width: int, height: int, wait_ms: int, chromium: str | None):
    """A Playwright page on ``url`` in the system Chromium, after ``wait_ms`` for the App to render."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("This script needs Playwright: pip install -e .[docs]")
    if not chromium:
        raise SystemExit("chromium not found: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_timeout(wait_ms)
            # The App greets every fresh browser with an "Explore Enterprise" card over the grid.
            dismiss = page.get_by_text("Dismiss", exact=True)
            if dismiss.count():
                # An open sample modal covers the card, so a pointer click would not reach it.
                dismiss.first.dispatch_event("click")
                page.wait_for_timeout(500)
            yield page
        finally:
            browser.close()


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"The App did not answer at {url} within {seconds:.0f} s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--view", default="pies", help="Saved view to show (empty for the whole dataset).")
    parser.add_argument("--port", type=int, default=5252)
    parser.add_argument("--out", default="docs/img/app-pies.png")
    parser.add_argument("--size", default="1500x900")
    parser.add_argument("--wait-ms", type=int, default=15000, help="Time Chromium gives the page to render.")
    parser.add_argument("--open-tagged", default=None, metavar="TAG",
                        help="Open the first sample with this tag in the sample modal.")
    args = parser.parse_args()

    from curate.report.browser import find_chromium, screenshot
    from curate.fiftyone.db import import_fiftyone

    fo = import_fiftyone()
    dataset = fo.load_dataset(args.dataset)
    target = dataset.load_saved_view(args.view) if args.view else dataset
    session = fo.launch_app(target, port=args.port, remote=True, auto=False)
    try:
        url = f"http://localhost:{args.port}/"
        wait_for(url)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        width, height = (int(v) for v in args.size.split("x"))
        page = f"{url}datasets/{urllib.parse.quote(args.dataset)}"
        query = {}
        if args.view:
            query["view"] = args.view
        if args.open_tagged:
            tagged = target.match_tags(args.open_tagged)
            if not len(tagged):
                raise SystemExit(f"No sample in {args.view or args.dataset!r} has the tag {args.open_tagged!r}.")
            query["id"] = tagged.first().id
        if query:
            page += "?" + urllib.parse.urlencode(query)
        if importlib.util.find_spec("playwright") is None:  # the App's Enterprise card stays on the picture
            screenshot(page, out, width, height, args.wait_ms)
        else:
            with app_page(page, width, height, args.wait_ms, find_chromium()) as app:
                app.screenshot(path=str(out))
        print(f"wrote {out}")
    finally:
        session.close()


if __name__ == "__main__":
    main()
