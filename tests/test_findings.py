"""The paper's analyses on hand-made arrays and tables, answers worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from curate.science.findings import (comparable_pairs, compression_comparison, most_forgotten_classes,
                             pie_accuracy_table)
from curate.science.pies import score_pies


def test_pie_accuracy_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    dense_modal = np.array([0, 1, 1, 1, 2, 0])  # right on samples 0, 2, 3, 4
    compressed = np.array([[0, 0, 1, 2, 2, 2],   # level a: PIEs where it differs from dense: 1, 3, 5
                           [0, 1, 1, 1, 2, 0]])  # level b: no PIE
    is_pie = compressed != dense_modal
    table = pie_accuracy_table(dense_modal, compressed, labels, is_pie, ["a", "b"]).set_index("level")
    a = table.loc["a"]
    assert a["pies"] == 3 and a["pie_fraction"] == pytest.approx(0.5)
    assert a["dense_accuracy"] == pytest.approx(4 / 6)
    assert a["dense_accuracy_pies"] == pytest.approx(1 / 3)  # only sample 3
    assert a["dense_accuracy_without_pies"] == pytest.approx(1.0)  # samples 0, 2, 4
    assert a["lift_without_pies"] == pytest.approx(1 - 4 / 6)
    assert a["compressed_accuracy"] == pytest.approx(5 / 6)
    assert a["compressed_accuracy_pies"] == pytest.approx(2 / 3)  # samples 1 and 5 right
    assert np.isnan(table.loc["b", "dense_accuracy_pies"]) and table.loc["b", "lift_without_pies"] == 0
    with pytest.raises(ValueError, match="Shapes disagree"):
        pie_accuracy_table(dense_modal, compressed, labels, is_pie, ["a"])


def test_most_forgotten_puts_significant_first():
    impact = pd.DataFrame({"level": ["p", "p", "p", "q"], "class": ["cat", "dog", "ship", "cat"],
                           "normalized_change": [-0.5, -0.1, 0.2, -0.9],
                           "significant": [False, True, True, False]})
    assert most_forgotten_classes(impact)["class"].tolist() == ["dog", "ship", "cat", "cat"]
    assert most_forgotten_classes(impact, level="p", top=2)["class"].tolist() == ["dog", "ship"]


def test_compression_comparison_orders_by_memory():
    levels = pd.DataFrame({
        "level": ["dense", "prune50", "prune90", "int8", "int4"],
        "kind": ["dense", "prune", "prune", "quantize", "quantize"],
        "sparsity": [0, 0.5, 0.9, 0, 0], "compression": [1, 2, 10, 4, 8],
        "accuracy": [0.9, 0.9, 0.8, 0.89, 0.85], "pies": [0, 5, 50, 2, 20],
        "pie_fraction": [0, .05, .5, .02, .2], "classes_impacted": [0, 0, 3, 0, 1],
    })
    table = compression_comparison(levels)
    assert table["level"].tolist() == ["prune50", "int8", "int4", "prune90"]
    assert table["accuracy_change"].tolist() == pytest.approx([0.0, -0.01, -0.05, -0.1])
    with pytest.raises(ValueError, match="dense"):
        compression_comparison(levels.iloc[1:])
    impact = pd.DataFrame({"level": ["prune50", "prune50", "prune90", "prune90", "int8", "int8", "int4", "int4"],
                           "normalized_change": [0.1, -0.3, -0.5, 0.5, 0.0, 0.02, -0.1, 0.1]})
    disturbance = compression_comparison(levels, impact).set_index("level")["class_disturbance"]
    assert disturbance.to_dict() == pytest.approx({"prune50": 0.2, "int8": 0.01, "int4": 0.1, "prune90": 0.5})
    # int8 (4x) is nearer prune50 (2x) than prune90 (10x) on a log scale; int4 (8x) nearer prune90.
    assert comparable_pairs(table) == [("int8", "prune50"), ("int4", "prune90")]


def test_quantization_levels_stay_off_the_pruning_ladder():
    # One sample, two members, 2 classes. Levels: prune50 (no change), prune90 (flips), int8 (flips).
    dense = np.array([[[0.9, 0.1]], [[0.8, 0.2]]])
    keep, flip = dense, dense[..., ::-1]
    compressed = np.stack([keep, flip, flip])
    laddered = score_pies(dense, compressed, ladder_levels=2)
    assert laddered.is_pie[:, 0].tolist() == [False, True, True]
    assert laddered.lowest_level[0] == 1 and laddered.pie_score[0] == pytest.approx(0.5)  # mean over the 2 rungs
    unladdered = score_pies(dense, compressed)
    assert unladdered.pie_score[0] == pytest.approx(2 / 3)
    only_quant = score_pies(dense, np.stack([keep, keep, flip]), ladder_levels=2)
    assert only_quant.is_pie_any[0] and only_quant.lowest_level[0] == -1 and only_quant.pie_score[0] == 0
