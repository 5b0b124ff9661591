"""PIE marking and scores on hand-made probability arrays; every expected value is worked out here."""

import numpy as np
import pytest

from curate.science.pies import (NO_LEVEL, flip_share, lowest_pie_level, mark_pies, modal_labels, probability_drop,
                         score_pies, vote_counts)


def onehot(labels, n_classes=3, p=0.8):
    """Probabilities with ``p`` on the given label and the rest spread evenly."""
    labels = np.asarray(labels)
    out = np.full(labels.shape + (n_classes,), (1 - p) / (n_classes - 1))
    np.put_along_axis(out, labels[..., None], p, axis=-1)
    return out


# 3 dense members x 4 samples, 3 classes. Top-1 per member (rows) and sample (columns):
#   member 0: 0 1 2 0
#   member 1: 0 1 2 1
#   member 2: 0 2 2 2
DENSE = onehot([[0, 1, 2, 0], [0, 1, 2, 1], [0, 2, 2, 2]])
# Two levels of 3 compressed members each.
#   level 0: 0 1 2 0 / 0 1 1 0 / 0 1 1 0   -> modal 0 1 1 0
#   level 1: 1 2 2 2 / 1 2 2 2 / 0 2 2 2   -> modal 1 2 2 2
COMPRESSED = np.stack([
    onehot([[0, 1, 2, 0], [0, 1, 1, 0], [0, 1, 1, 0]]),
    onehot([[1, 2, 2, 2], [1, 2, 2, 2], [0, 2, 2, 2]]),
])


def test_vote_counts_and_modal_labels():
    counts = vote_counts(DENSE)
    assert counts.tolist() == [[3, 0, 0], [0, 2, 1], [0, 0, 3], [1, 1, 1]]
    # Sample 3 is a three-way tie with equal mass: the smallest class index wins.
    assert modal_labels(DENSE).tolist() == [0, 1, 2, 0]


def test_ties_are_broken_by_probability_mass_then_index():
    # Two members, one votes 0 (p 0.6), one votes 1 (p 0.9): tie on votes, class 1 has more mass.
    probs = np.array([[[0.6, 0.4]], [[0.1, 0.9]]])
    assert modal_labels(probs).tolist() == [1]
    # Equal votes and equal mass: smaller index.
    probs = np.array([[[0.7, 0.3]], [[0.3, 0.7]]])
    assert modal_labels(probs).tolist() == [0]


def test_mark_pies_follows_the_paper_definition():
    # dense modal 0 1 2 0; level 0 modal 0 1 1 0; level 1 modal 1 2 2 2
    assert mark_pies(DENSE, COMPRESSED).tolist() == [
        [False, False, True, False],
        [True, True, False, True],
    ]


def test_flip_share_counts_members_leaving_the_dense_modal_label():
    # Level 0 vs dense modal (0 1 2 0): members leave on sample 2 twice -> 2/3; others 0.
    # Level 1: sample 0 two of three leave 0 -> 2/3; sample 1 all leave 1 -> 1;
    #          sample 2 none leave 2 -> 0; sample 3 all leave 0 -> 1.
    np.testing.assert_allclose(flip_share(DENSE, COMPRESSED), [[0, 0, 2 / 3, 0], [2 / 3, 1, 0, 1]])


def test_probability_drop_of_the_dense_modal_label():
    # Sample 0: dense mean p(0) = 0.8; level 1 mean p(0) = (0.1 + 0.1 + 0.8) / 3 = 1/3.
    drop = probability_drop(DENSE, COMPRESSED)
    assert drop[1, 0] == pytest.approx(0.8 - 1 / 3)
    # Sample 3: dense mean p(0) = (0.8 + 0.1 + 0.1) / 3 = 1/3; level 0 p(0) = 0.8 -> negative drop.
    assert drop[0, 3] == pytest.approx(1 / 3 - 0.8)


def test_lowest_level_and_pie_score():
    is_pie = mark_pies(DENSE, COMPRESSED)
    assert lowest_pie_level(is_pie).tolist() == [1, 1, 0, 1]
    assert lowest_pie_level(np.zeros((2, 3), bool)).tolist() == [NO_LEVEL] * 3
    scores = score_pies(DENSE, COMPRESSED)
    np.testing.assert_allclose(scores.pie_score, [1 / 3, 0.5, 1 / 3, 0.5])
    assert scores.is_pie_any.tolist() == [True, True, True, True]
    assert scores.dense_confidence[0] == pytest.approx(0.8)
    assert scores.compressed_modal.tolist() == [[0, 1, 1, 0], [1, 2, 2, 2]]


def test_identical_populations_have_no_pies():
    scores = score_pies(DENSE, np.stack([DENSE, DENSE]))
    assert not scores.is_pie.any()
    assert (scores.lowest_level == NO_LEVEL).all()


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 4)), "3 dimensions"),
    (np.full((2, 4, 3), np.nan), "NaN"),
])
def test_bad_input_names_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        modal_labels(bad)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="sample and class axes must match"):
        mark_pies(DENSE, COMPRESSED[:, :, :2])
