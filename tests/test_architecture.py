"""The layers the folder names promise, checked on the import graph (every import, also inside functions).

science  <-  data  <-  population  <-  fiftyone, report  <-  api  <-  frontends
Each layer imports only layers to its left (and options, the light module of defaults); the science
imports no torch, FiftyOne or I/O; nothing imports the CLI but the console entry point.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "curate"
ORDER = ["science", "data", "population", "fiftyone", "report", "api", "frontends"]
# What each layer may import from curate, beyond itself and curate.options (defaults, no heavy imports).
ALLOWED = {
    "science": set(),
    "data": {"science"},
    "population": {"science", "data"},
    "fiftyone": {"science", "data", "population"},
    "report": {"science", "data"},
    "api": {"science", "data", "population", "fiftyone", "report"},
    "frontends": {"science", "data", "population", "fiftyone", "report", "api"},
}
IO_AND_HEAVY = {"torch", "torchvision", "fiftyone", "PIL", "os", "pathlib", "io", "shutil", "tempfile", "glob",
                "subprocess", "pickle", "json", "matplotlib", "tqdm", "sklearn.datasets"}


def _layer(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            # `from curate import api` imports curate.api
            found += [f"{node.module}.{alias.name}" for alias in node.names if node.module == "curate"]
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_sits_in_a_layer():
    loose = [p.name for p in MODULES if _layer(p) not in (*ORDER, "__init__", "__main__", "options")]
    assert not loose, f"modules outside the layers: {loose}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path):
    layer = _layer(path)
    if layer in ("__init__", "__main__", "options"):
        return
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] != "curate" or len(parts) < 2 or parts[1] in ("options", "__version__"):
            continue
        target = parts[1]
        assert target == layer or target in ALLOWED[layer], f"{path.relative_to(ROOT)} ({layer}) imports {name}"


@pytest.mark.parametrize("path", [p for p in MODULES if _layer(p) == "science"], ids=lambda p: p.name)
def test_the_science_imports_no_torch_fiftyone_or_io(path):
    for name in _imports(path):
        assert name not in IO_AND_HEAVY and name.split(".")[0] not in IO_AND_HEAVY - {"sklearn.datasets"}, \
            f"{path.name} imports {name}"
    calls = [n.func.id for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "open" not in calls, f"{path.name} opens a file"


def test_nothing_imports_the_cli_but_the_entry_points():
    importers = [str(p.relative_to(ROOT)) for p in MODULES
                 if any(n.startswith("curate.frontends.cli") for n in _imports(p))]
    assert importers == ["__main__.py"], importers
    pyproject = (ROOT.parent / "pyproject.toml").read_text()
    assert 'curate = "curate.frontends.cli:main"' in pyproject


def test_the_checks_catch_a_violation(tmp_path):
    """The scan sees imports inside functions, which is where a shortcut would hide."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import torch\n    from curate.frontends.cli import main\n")
    assert {"torch", "curate.frontends.cli"} <= set(_imports(module))
