"""Installing curate's FiftyOne App plugin (:mod:`curate.frontends.app_plugin`) into FiftyOne's plugins directory.

The installed copy is a manifest and a one-line module that imports the operators from the
installed curate package, so upgrading curate upgrades the plugin; reinstall only when the
manifest changes (new operators).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PLUGIN_DIRNAME = "curate"
MARKER = ".installed-by-curate"
SHIM = (
    '"""curate\'s review operators; installed by `curate plugin install`, they live in the curate package."""\n\n'
    "from curate.frontends.app_plugin import register  # noqa: F401\n"
)


class PluginError(RuntimeError):
    """The plugin cannot be installed where asked."""


def default_plugins_dir() -> Path:
    """FiftyOne's plugins directory (``FIFTYONE_PLUGINS_DIR``, else ``~/fiftyone/__plugins__``)."""
    import fiftyone as fo

    return Path(fo.config.plugins_dir).expanduser()


def plugin_path(plugins_dir: Path | None = None) -> Path:
    return Path(plugins_dir or default_plugins_dir()) / PLUGIN_DIRNAME


def install_plugin(plugins_dir: Path | None = None) -> Path:
    """Write the plugin into ``plugins_dir``/curate and return that path.

    Replaces an earlier install by curate; refuses a directory of that name that curate did not
    write (someone else's plugin), naming it.
    """
    target = plugin_path(plugins_dir)
    if target.exists() and not (target / MARKER).exists():
        raise PluginError(f"{target} exists and was not installed by curate; move it away or pass "
                          f"--plugins-dir to install elsewhere.")
    if target.exists():
        _check_only_ours(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".curate-plugin-", dir=target.parent))
    try:
        shutil.copyfile(Path(__file__).parent.parent / "frontends" / "app_plugin" / "fiftyone.yml", staging / "fiftyone.yml")
        (staging / "__init__.py").write_text(SHIM)
        (staging / MARKER).write_text("curate plugin install\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def is_installed(plugins_dir: Path | None = None) -> bool:
    return (plugin_path(plugins_dir) / MARKER).exists()


def uninstall_plugin(plugins_dir: Path | None = None) -> Path | None:
    """Remove the plugin curate installed; returns its path, or ``None`` when none was installed.

    Refuses a directory named like it that curate did not write.
    """
    target = plugin_path(plugins_dir)
    if not target.exists():
        return None
    if not (target / MARKER).exists():
        raise PluginError(f"{target} was not installed by curate; leaving it alone.")
    _check_only_ours(target)
    shutil.rmtree(target)
    return target


def _check_only_ours(target: Path) -> None:
    """Refuse to remove an install that holds files curate did not write (a user's edits, say)."""
    from curate.data.safety import files_under

    ours = {"fiftyone.yml", "__init__.py", MARKER}
    foreign = [p for p in files_under(target) if p not in ours and not p.startswith("__pycache__/")]
    if foreign:
        raise PluginError(f"{target} holds files curate did not write ({', '.join(foreign[:5])}); move them "
                          "away first, curate will not delete them.")
