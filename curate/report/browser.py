"""Headless Chromium: photograph a page (the report, the App) the way a user's browser renders it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from curate.data.safety import check_replaceable_file


class BrowserUnavailable(RuntimeError):
    pass


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(url: str, out: str | Path, width: int = 1400, height: int = 2000, wait_ms: int = 3000) -> Path:
    """Render ``url`` (``http://`` or ``file://``) in headless Chromium and write a PNG to ``out``."""
    browser = find_chromium()
    if not browser:
        raise BrowserUnavailable("Chromium not found; install it (Debian/Ubuntu: apt-get install chromium).")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable_file(out, "screenshot")
    with tempfile.TemporaryDirectory() as profile:
        shot = Path(profile) / "screenshot.png"
        completed = subprocess.run([
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}", f"--screenshot={shot}", url,
        ], capture_output=True, text=True, timeout=180)
        if not shot.exists() or shot.stat().st_size == 0:
            raise BrowserUnavailable(f"Chromium wrote no screenshot to {out} (exit {completed.returncode}): "
                                     f"{completed.stderr.strip()[-500:]}")
        shutil.move(str(shot), out)
    return out
