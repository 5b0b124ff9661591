"""Shared by the tests: the tiny population settings and a CLI runner."""

from click.testing import CliRunner

from curate.frontends.cli import main

# Small and fast: enough to exercise every stage, not to be accurate.
TINY = ["--members", "2", "--folds", "2", "--epochs", "2", "--finetune-epochs", "1",
        "--sparsities", "0.5,0.9", "--image-size", "8", "-q"]
# For tests of something else: pruning only, no quantization levels or robustness.
PRUNE_ONLY = [*TINY, "--quantize", "none", "--robustness-images", "0"]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)
