"""Defaults are written once (curate.options.RunOptions): the CLI, the App form, the configuration
classes and the README's table all read the same values."""

import re
from pathlib import Path

from curate.frontends.app_plugin import FORM_OPTIONS, run_defaults
from curate.frontends.cli import run as run_command
from curate.options import DEFAULT_EPOCHS, RunOptions, run_option_defaults
from curate.population.config import CurateConfig
from curate.population.train import TrainSettings

README = Path(__file__).resolve().parent.parent / "README.md"


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def test_cli_options_default_to_run_options():
    cli = {p.name: p.default for p in run_command.params}
    for name, default in run_option_defaults().items():
        if default is None:
            assert cli[name] is None, name  # derived from the data at run time
        else:
            assert str(cli[name]) == _shown(default), name


def test_the_app_form_and_the_configuration_read_the_same_defaults():
    assert run_defaults() == {k: v for k, v in run_option_defaults().items() if k in FORM_OPTIONS}
    config = CurateConfig()
    assert (config.members, config.folds, config.sparsities, config.quantizations, config.model) == (
        RunOptions.members, RunOptions.folds, RunOptions.sparsities, RunOptions.quantize, RunOptions.model)
    assert (TrainSettings().epochs, TrainSettings().finetune_epochs) == (DEFAULT_EPOCHS, RunOptions.finetune_epochs)


def test_the_readme_table_shows_the_defaults():
    rows = dict(re.findall(r"^\| `--([a-z-]+)(?:/-[a-z])?` \| ([^|]+) \|", README.read_text(), re.M))
    checked = 0
    for name, default in run_option_defaults().items():
        option = name.replace("_", "-")
        if default is None or option not in rows:
            continue
        assert rows[option].strip() == _shown(default), option
        checked += 1
    assert checked >= 9, f"only {checked} README rows matched an option"


def test_the_digits_preset_yields_to_what_the_user_asks():
    """Digits train 12 epochs unless the user asks otherwise, 16 included (the default elsewhere)."""
    assert RunOptions().config_for("digits", 1797).train.epochs == 12
    assert RunOptions(epochs=16).config_for("digits-planted", 1797).train.epochs == 16
    assert RunOptions().config_for("photos.csv", 1797).train.epochs == DEFAULT_EPOCHS == 16
