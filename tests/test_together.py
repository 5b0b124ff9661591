"""Networks trained together (stacked as one network of grouped convolutions) are the networks trained one by one.

In single precision two ways of summing the same gradients drift apart within a few dozen steps (a max-pool
or a pruning threshold turns a last-bit difference into a different choice), as two runs with different
thread counts do. In double precision the drift stays below float32's resolution, so there the stacked
networks must give the one-by-one networks' predictions to 1e-6: the same seeds, batches, augmentations,
losses, pruning masks and fixed zeros.
"""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from curate.population.executor import MemberJob, group_jobs
from curate.population.models import SmallResNet, stack_networks, stackable, unstack_networks
from curate.population.structured import FilterPruner
from curate.population.train import (FitPart, Normalizer, TrainSettings, control_copies, forgotten_copies,
                                     global_magnitude_masks, network_sparsities, predict_probs, prune_levels_of,
                                     train_networks)
from helpers import SMALL, invoke


def _digits(n=480):
    digits = load_digits()
    grey = np.repeat(np.repeat((digits.images[:n] / 16 * 255).astype(np.uint8), 2, axis=1), 2, axis=2)
    return np.repeat(grey[:, None], 3, axis=1), digits.target[:n]


def _networks(k, dtype=torch.float32):
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(SmallResNet(10, 4).to(dtype).to(memory_format=torch.channels_last))
    return models


def test_a_stack_computes_each_network_exactly_and_unstacks_to_them():
    torch.set_num_threads(1)
    networks = _networks(3)
    stacked = stack_networks(networks)
    assert stacked.networks == 3 and stackable(networks) and not stackable([stacked])
    images = [torch.randn(5, 3, 16, 16) for _ in networks]
    with torch.no_grad():
        together = stacked.train()(torch.cat(images, dim=1))
        for g, network in enumerate(networks):
            assert torch.equal(together[:, g], network.train()(images[g])), g
    for p in stacked.parameters():
        p.data.add_(1.0)
    unstack_networks(stacked, networks)
    assert torch.equal(networks[1].head.weight, stacked.head.weight[10:20])
    # A filter-pruned network has other shapes: it trains alone.
    pruned = _networks(2)
    with FilterPruner(pruned[1], "l1") as pruner:
        pruner.prune_to(0.5)
    assert not stackable([pruned[0], pruner.finish()])


def test_each_network_of_a_stack_is_pruned_among_its_own_weights():
    networks = _networks(3)
    stacked = stack_networks(networks)
    masks = global_magnitude_masks(stacked, [0.0, 0.5, 0.9])
    for g, (network, sparsity) in enumerate(zip(networks, [0.0, 0.5, 0.9])):
        own = global_magnitude_masks(network, sparsity)
        for name, mask in own.items():
            assert torch.equal(masks[name].chunk(3)[g], mask), (g, name)
    for name, param in stacked.named_parameters():
        if name in masks:
            param.data.mul_(masks[name])
    assert np.allclose(network_sparsities(stacked), [0.0, 0.5, 0.9], atol=1e-3)


def test_networks_trained_together_give_the_predictions_of_networks_trained_one_by_one():
    torch.set_num_threads(1)
    pixels, labels = _digits()
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"), dtype=torch.float64)
    settings = TrainSettings(epochs=2, finetune_epochs=1, forget_epochs=1, batch_size=32, hflip=False)
    # Three networks on different folds and seeds (the first and last on the same images, as two members).
    rows = [np.arange(0, 480, 2), np.arange(1, 480, 2), np.arange(0, 480, 2)]

    def population(together):
        models = _networks(3, torch.float64)
        parts = [FitPart(pixels[r], labels[r], 10 + i, margins=np.zeros((len(r), 2))) for i, r in enumerate(rows)]
        steps = []
        train_networks(models, parts, normalize, settings, together=together, progress=steps.append)
        pruned = prune_levels_of(models, parts, normalize, settings, (0.5, 0.8), together=together)
        controls = control_copies(models, parts, normalize, settings, together=together)
        # Forgetting keeps each pruned copy's zeros and leaves the dense network's weights free.
        held = [FitPart(pixels[np.setdiff1d(np.arange(480), r)], labels[np.setdiff1d(np.arange(480), r)], 7)
                for r in rows]
        forgotten = forgotten_copies([pruned[0][1], models[1], pruned[2][0]], held, normalize, settings,
                                     together=together)
        networks = models + [c for copies in pruned for c in copies] + controls + forgotten
        return [predict_probs(net, pixels, normalize) for net in networks], [p.margins for p in parts], steps, forgotten

    alone, alone_margins, alone_steps, alone_forgotten = population(1)
    stacked, stacked_margins, stacked_steps, stacked_forgotten = population(3)
    assert sum(stacked_steps) == sum(alone_steps) and set(stacked_steps) == {3}  # a stacked step is 3 networks' steps
    for k, (a, b) in enumerate(zip(alone, stacked)):
        assert np.abs(a - b).max() < 1e-6, k
    for a, b in zip(alone_margins, stacked_margins):
        assert np.abs(a - b).max() < 1e-6
    assert network_sparsities(stacked_forgotten[0]) == network_sparsities(alone_forgotten[0])
    assert network_sparsities(stacked_forgotten[0])[0] == pytest.approx(0.8, abs=1e-3)
    assert network_sparsities(stacked_forgotten[1]) == [0.0]


def test_a_stacked_step_moves_every_networks_data_in_a_few_operations_not_a_few_each():
    # What a GPU waits on is the number of operations a step launches: more networks stacked must add only
    # their CPU-side draws (about 12 a network), not their own transfer, augmentation, loss and margins (50-70 each
    # before they were batched).
    from bench_together import operations_a_step

    def each(networks):
        return operations_a_step(networks, margins=True, batch=16, steps=4)

    assert (each(8) - each(2)) / 6 <= 20


def test_groups_keep_the_jobs_in_order():
    jobs = [MemberJob(k, f, 100 * k + f) for k in range(3) for f in range(2)]
    groups = group_jobs(jobs, 4)
    assert [len(g.jobs) for g in groups] == [4, 2] and [j for g in groups for j in g.jobs] == jobs
    assert groups[1].name == "member02-fold00 and 1 more"
    assert [g.name for g in group_jobs(jobs[:2], 1)] == ["member00-fold00", "member00-fold01"]


def test_a_run_trains_its_networks_together_when_asked(small_source, small_run, tmp_path):
    loud = [a for a in SMALL if a != "-q"]
    result = invoke("run", small_source, "--run-dir", str(tmp_path), "--no-fiftyone", "--executor", "serial",
                    "--train-together", "4", *loud)
    assert result.exit_code == 0, result.output
    assert "4 networks train at a time as one batched computation" in result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["networks_trained_together"] == 4
    assert len(manifest["job_seconds"]) == 4
    # Single precision: not the same bits as the one-by-one small_run, but the same networks' quality.
    import pandas as pd

    ours, theirs = (pd.read_csv(d / "levels.csv").set_index("level") for d in (tmp_path, small_run))
    assert abs(ours.loc["dense", "accuracy"] - theirs.loc["dense", "accuracy"]) < 0.1
    bad = invoke("run", small_source, "--run-dir", str(tmp_path / "bad"), "--no-fiftyone", "--train-together", "0",
                 *SMALL)
    assert bad.exit_code != 0 and "--train-together" in bad.output
