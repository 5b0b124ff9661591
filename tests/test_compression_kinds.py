"""Filter pruning, distilled students and the comparison across compression kinds (issue 27)."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from curate.population.footprint import footprint, macs_per_image, nonzero_weights
from curate.population.models import SmallResNet
from curate.population.structured import (FilterPruner, channel_counts, channel_groups, kept_channels,
                                          remove_channels, taylor_scores)
from curate.population.train import Normalizer, TrainSettings, distill_student, filter_prune_and_finetune
from curate.science.analysis import matched_overlaps, overlap_table
from curate.science.pies import pie_overlap, score_pies


def _network(width=8, stages=3, seed=0) -> SmallResNet:
    torch.manual_seed(seed)
    model = SmallResNet(5, width, stages)
    with torch.no_grad():  # batch norm statistics that are not the identity, so slicing them matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _masked_output(model, alive, x):
    pruner = FilterPruner(model)
    for group in pruner.groups:
        group.alive = alive[group.name].clone()
    with pruner, torch.no_grad():
        return model(x)


def test_removing_channels_gives_a_smaller_network_with_the_masked_networks_outputs():
    model = _network()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    groups = channel_groups(model)
    assert [g.name for g in groups] == ["stem", "stage1", "stage1.inner", "stage2", "stage2.inner", "stage3",
                                        "stage3.inner"]
    assert [g.channels for g in groups] == [8, 8, 8, 16, 16, 32, 32]
    rng = np.random.default_rng(0)
    alive = {g.name: torch.as_tensor(rng.permutation(g.channels) < kept_channels(g.channels, 0.5)) for g in groups}

    smaller = remove_channels(model, alive)
    assert channel_counts(smaller) == {"stem": 4, "stage1": 4, "stage1.inner": 4, "stage2": 8, "stage2.inner": 8,
                                       "stage3": 16, "stage3.inner": 16}
    assert smaller.head.in_features == 16 and smaller.features[0][0].in_channels == 3
    with torch.no_grad():
        np.testing.assert_allclose(smaller(x).numpy(), _masked_output(model, alive, x).numpy(), rtol=1e-4, atol=1e-5)
        # Nothing removed: the same network, the same outputs.
        everything = {name: torch.ones_like(mask) for name, mask in alive.items()}
        unchanged = remove_channels(model, everything)
        assert channel_counts(unchanged) == channel_counts(model)
        np.testing.assert_allclose(unchanged(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert nonzero_weights(smaller) < 0.3 * nonzero_weights(model)
    assert macs_per_image(smaller, 16) < 0.3 * macs_per_image(model, 16)


def test_kept_channels_never_empties_a_group():
    assert kept_channels(8, 0.5) == 4 and kept_channels(8, 0.3) == 6 and kept_channels(2, 0.9) == 1


def test_taylor_scores_by_hand():
    # Two images, two channels, 1x2 feature maps; the gradient is of a loss averaged over the two images.
    activation = torch.tensor([[[[1.0, 2.0]], [[0.5, -1.0]]],
                               [[[3.0, 0.0]], [[2.0, 2.0]]]])
    gradient = torch.tensor([[[[0.5, -0.25]], [[1.0, 1.0]]],
                             [[[-0.5, 1.0]], [[0.25, -0.25]]]])
    # Per image and channel |mean(a * g)| of the per-image loss (twice the batch-mean gradient):
    # image 1: ch0 |(0.5 - 0.5) / 2| * 2 = 0, ch1 |(0.5 - 1) / 2| * 2 = 0.5
    # image 2: ch0 |(-1.5 + 0) / 2| * 2 = 1.5, ch1 |(0.5 - 0.5) / 2| * 2 = 0
    np.testing.assert_allclose(taylor_scores(activation, gradient).numpy(), [[0.0, 0.5], [1.5, 0.0]])


def test_taylor_ranking_of_the_pruner_matches_autograd():
    model = _network(width=4, stages=2).train()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(6) % 5
    pruner = FilterPruner(model, "taylor")
    with pruner:
        F.cross_entropy(model(x), y).backward()
    # The same quantity computed directly: activations of the stem, their gradient, |mean(a * g)| per image.
    model.zero_grad()
    stem = model.features[0](x)
    rest = torch.nn.Sequential(*list(model.features)[1:])
    loss = F.cross_entropy(model.head(torch.amax(rest(stem), dim=(2, 3))), y)
    (gradient,) = torch.autograd.grad(loss, stem)
    expected = taylor_scores(stem.detach(), gradient).mean(dim=0)
    np.testing.assert_allclose(pruner.importance()[0].numpy(), expected.numpy(), rtol=1e-4, atol=1e-7)
    assert pruner.images == 6
    pruner.prune_to(0.5)  # the two lowest-scoring stem channels go
    assert set(torch.nonzero(~pruner.groups[0].alive).flatten().tolist()) == set(
        torch.argsort(expected)[:2].tolist())


def test_taylor_ranking_frees_the_network_and_its_activations_afterwards():
    # A backward hook that held the activation it was registered on kept every fine-tuned network alive in a
    # worker process (a reference cycle through autograd that gc cannot see): 366 MB a job on 1,500 CIFAR images.
    import gc
    import weakref

    def fine_tune_once():
        model = _network(width=4, stages=2).train()
        x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
        with FilterPruner(model, "taylor") as pruner:
            for _ in range(2):
                F.cross_entropy(model(x), torch.arange(6) % 5).backward()
        assert pruner.images == 12
        return weakref.ref(model)

    network = fine_tune_once()
    gc.collect()
    assert network() is None, "the fine-tuned network outlived the pruning"


def test_l1_ranking_removes_the_smallest_filters():
    model = _network(width=4, stages=1)
    with torch.no_grad():
        model.features[0][0].weight[1].mul_(0.01)
        model.features[0][0].weight[3].mul_(0.02)
    pruner = FilterPruner(model, "l1")
    pruner.prune_to(0.5)
    assert pruner.groups[0].alive.tolist() == [True, False, True, False]


def _images(n=64, size=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 5
    pixels = rng.integers(0, 60, size=(n, 3, size, size), dtype=np.uint8)
    for c in range(5):  # a class-coloured square, so there is something to learn
        pixels[labels == c, c % 3, 2:6, 2:6] = 200 + 10 * c
    return pixels, labels


def test_filter_pruning_fine_tunes_to_the_documented_size():
    pixels, labels = _images()
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    settings = TrainSettings(epochs=1, finetune_epochs=2, batch_size=16, hflip=False, mask_updates=2)
    model = _network(width=4, stages=2)
    smaller = filter_prune_and_finetune(model, pixels, labels, normalize, settings, 0.5, seed=0)
    assert channel_counts(smaller) == {"stem": 2, "stage1": 2, "stage1.inner": 2, "stage2": 4, "stage2.inner": 4}
    assert channel_counts(model) == {"stem": 4, "stage1": 4, "stage1.inner": 4, "stage2": 8, "stage2.inner": 8}
    # Chained: a further level continues from the smaller copy, its shares still of the dense counts.
    smallest = filter_prune_and_finetune(smaller, pixels, labels, normalize, settings, 0.75, seed=1,
                                         dense_channels=channel_counts(model), initial_fraction=0.5, criterion="l1")
    assert channel_counts(smallest) == {"stem": 1, "stage1": 1, "stage1.inner": 1, "stage2": 2, "stage2.inner": 2}
    assert np.isfinite(smallest(normalize(pixels[:4])).detach().numpy()).all()


def test_a_student_moves_toward_its_teachers_soft_targets():
    pixels, labels = _images(n=96)
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    teacher = _network(width=8, stages=2, seed=3)
    x = normalize(pixels)

    def disagreement(student):
        with torch.no_grad():
            return float(F.kl_div(F.log_softmax(student(x) / 4, 1), F.log_softmax(teacher(x) / 4, 1),
                                  reduction="batchmean", log_target=True))

    torch.manual_seed(0)
    student = SmallResNet(5, 4, 2)
    before = disagreement(student.eval())
    settings = TrainSettings(epochs=6, finetune_epochs=1, batch_size=16, hflip=False, crop_padding=0, lr=0.05)
    # Labels that contradict the teacher: with the soft targets weighted 0.9 the student follows the teacher.
    distill_student(teacher, student, pixels, (labels + 1) % 5, normalize, settings, seed=0)
    assert disagreement(student) < 0.5 * before


def test_footprint_counts_weights_and_macs_by_hand():
    conv = torch.nn.Conv2d(1, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[1].zero_()  # half the weights are zero
    model = torch.nn.Sequential(conv, torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3, bias=False))
    # conv: 2 outputs x 16 positions x 9 MACs x density 0.5; linear: 32 x 3.
    assert macs_per_image(model, 4, channels=1) == pytest.approx(2 * 16 * 9 * 0.5 + 32 * 3)
    assert nonzero_weights(model) == 9 + 96
    weights, macs, latency = footprint(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten()), 4)
    assert weights == 2 * 3 * 9 and macs == 2 * 2 * 2 * 27 and latency > 0


def test_pie_overlap_and_its_chance_value_by_hand():
    is_pie = np.array([[1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                       [1, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                       [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=bool)
    shared, jaccard, chance = pie_overlap(is_pie)
    assert jaccard[0, 1] == pytest.approx(1 / 3) and jaccard[0, 0] == 1.0 and jaccard[0, 2] == 0.0
    # Rates 0.2 and 0.2: 0.04 / (0.4 - 0.04).
    assert chance[0, 1] == pytest.approx(0.04 / 0.36) and chance[2, 2] == 0.0


def test_every_kind_is_compared_with_the_pruning_level_nearest_in_memory():
    rng = np.random.default_rng(0)
    dense = rng.dirichlet(np.ones(3), size=(2, 40))
    compressed = np.stack([rng.dirichlet(np.ones(3), size=(2, 40)) for _ in range(4)])
    scores = score_pies(dense, compressed, ladder_levels=2)
    names, kinds = ["prune50", "prune90", "filter50", "distill50"], ["prune", "prune", "filter", "distill"]
    overlap = overlap_table(scores, names, kinds)
    assert len(overlap) == 6
    levels = pd.DataFrame({"level": ["dense", *names], "kind": ["dense", *kinds],
                           "compression": [1.0, 2.0, 10.0, 4.0, 9.0], "memory_kb": [100, 50, 10, 25, 11]})
    matched = matched_overlaps(levels, overlap).set_index("level")
    assert matched["matched"].to_dict() == {"filter50": "prune50", "distill50": "prune90"}
    shared = int((scores.is_pie[2] & scores.is_pie[0]).sum())
    assert matched.loc["filter50", "shared"] == shared
