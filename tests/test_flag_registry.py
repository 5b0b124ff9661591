"""Flag categories are a registry: data, not an if-chain. A category added from Python gets its tag,
saved view, score and reason like the built-in ones."""

import numpy as np
import pytest

import curate
from curate.science.flags import REGISTRY, FlagCategory, category_names, register_category, unregister_category
from helpers import TINY


class LowMargin(FlagCategory):
    """PIEs whose two most probable classes are closer than the PIEs' median margin."""

    name = "low_margin"
    description = "the top two classes are close"

    def find(self, evidence):
        margin = evidence.p_first - evidence.p_second
        return margin <= np.median(margin[evidence.is_pie]) if evidence.is_pie.any() else np.zeros_like(margin, bool)

    def score(self, evidence):
        return 1.0 - (evidence.p_first - evidence.p_second)

    def reason(self, evidence, i):
        return f"margin {evidence.p_first[i] - evidence.p_second[i]:.2f} between the top two classes"


def test_the_built_in_order_is_data():
    assert category_names() == ("label_noise", "corruption", "multi_object", "ambiguous", "atypical")
    assert [c.beyond_pies for c in REGISTRY] == [True, True, False, False, False]


def test_registry_refuses_what_it_cannot_keep():
    with pytest.raises(ValueError, match="already registered"):
        register_category(REGISTRY["atypical"].__class__())
    with pytest.raises(ValueError, match="No flag category 'nope'"):
        register_category(LowMargin(), before="nope")
    with pytest.raises(ValueError, match="cannot be removed"):
        unregister_category("label_noise")
    with pytest.raises(TypeError, match="FlagCategory"):
        register_category(object())


def test_a_custom_category_reaches_fiftyone(fo, digits_run):
    _, run_dir, _ = digits_run
    register_category(LowMargin(), before="label_noise")
    try:
        assert category_names()[0] == "low_margin"
        outcome = curate.run("digits", dataset="test-custom-category", run_dir=run_dir, progress=False,
                             members=2, folds=2, epochs=2, finetune_epochs=1, sparsities=(0.5, 0.9), image_size=8)
    finally:
        unregister_category("low_margin")
    assert TINY[-1] == "-q"  # the same options as the session's digits run: nothing retrained
    samples = outcome.result.samples
    chosen = samples[samples["category"] == "low_margin"]
    assert 0 < len(chosen) < int(samples["pie"].sum())
    assert "low_margin_score" in samples and chosen["reason"].str.startswith("margin ").all()
    dataset = fo.load_dataset("test-custom-category")
    assert dataset.count_sample_tags()["pie:low_margin"] == len(chosen)
    assert len(dataset.load_saved_view("pies-low_margin")) == len(chosen)
    assert set(dataset.match_tags("pie:low_margin").values("curate_category")) == {"low_margin"}
    # The run's record lists the category's tag and view, so deleting the run removes them.
    curate.delete_run(dataset, "curate")
    assert "pie:low_margin" not in dataset.count_sample_tags() and not dataset.has_saved_view("pies-low_margin")
