"""Model specs, global magnitude pruning and the cubic schedule."""

import numpy as np
import pytest
import torch

from curate.population.models import SmallResNet, build_model, prunable_parameters
from curate.population.train import (Normalizer, TrainSettings, augment, cubic_sparsity, forget_on_second_split,
                                     global_magnitude_masks, measured_sparsity, predict_probs, prune_and_finetune,
                                     train_dense)


def tiny_factory(num_classes):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, num_classes))


def test_model_specs():
    x = torch.zeros(2, 3, 16, 16)
    assert build_model("resnet-small", 7)(x).shape == (2, 7)
    assert build_model("resnet-small:8", 3)(x).shape == (2, 3)
    assert build_model("tv:resnet18", 5)(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    assert build_model("test_models_and_pruning:tiny_factory", 4)(torch.zeros(1, 3, 8, 8)).shape == (1, 4)
    with pytest.raises(ValueError, match="Unknown torchvision model 'nonet'"):
        build_model("tv:nonet", 2)
    with pytest.raises(ValueError, match="not understood"):
        build_model("what", 2)
    with pytest.raises(ValueError, match="Could not load model factory"):
        build_model("no.such.module:f", 2)


def test_augmentation_crops_each_image_at_its_own_drawn_shift_and_flips_the_drawn_ones():
    x = torch.arange(16 * 3 * 6 * 7, dtype=torch.float32).view(16, 3, 6, 7)
    out = augment(x, torch.Generator().manual_seed(3), padding=2, hflip=True)
    # The same draws, applied image by image as the definition says.
    gen = torch.Generator().manual_seed(3)
    flip = torch.rand(16, generator=gen) < 0.5
    dx, dy = torch.randint(0, 5, (2, 16), generator=gen)
    for i in range(16):
        image = x[i].flip(2) if flip[i] else x[i]
        padded = torch.nn.functional.pad(image[None], (2,) * 4, mode="reflect")[0]
        assert torch.equal(out[i], padded[:, dy[i]:dy[i] + 6, dx[i]:dx[i] + 7])
    assert flip.any() and not flip.all() and (dx != 2).any()
    assert torch.equal(augment(x, torch.Generator(), padding=0, hflip=False), x)


def test_aum_margins_are_summed_over_every_step_that_drew_an_image():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 3, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 2, 48)
    margins = np.zeros((48, 2))
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    train_dense(SmallResNet(2, 4), pixels, labels, normalize, TrainSettings(epochs=3, batch_size=16), seed=0,
                margins=margins)
    assert np.array_equal(margins[:, 1], np.full(48, 3.0))  # every image once an epoch: three whole batches
    assert np.isfinite(margins[:, 0]).all() and np.unique(margins[:, 0]).size == 48


def test_cubic_schedule():
    assert cubic_sparsity(0, 100, 0.9) == 0.0
    assert cubic_sparsity(100, 100, 0.9) == pytest.approx(0.9)
    assert cubic_sparsity(500, 100, 0.9) == pytest.approx(0.9)
    # Halfway: 0.9 * (1 - 0.5^3) = 0.7875; fast at first, slow at the end.
    assert cubic_sparsity(50, 100, 0.9) == pytest.approx(0.7875)


def test_global_masks_rank_all_layers_together():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, -5.0], [0.2, 3.0]]))
        model[1].weight.copy_(torch.tensor([[-0.3, 4.0]]))
    masks = global_magnitude_masks(model, 0.5)  # 6 weights, remove the 3 smallest: 0.1, 0.2, -0.3
    assert masks["0.weight"].tolist() == [[False, True], [False, True]]
    assert masks["1.weight"].tolist() == [[False, True]]


def test_prune_and_finetune_reaches_the_target_sparsity():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 64)
    pixels = rng.integers(0, 60, (128, 3, 8, 8)).astype(np.uint8)
    pixels[labels == 1] += 150  # a learnable difference
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    settings = TrainSettings(epochs=10, finetune_epochs=3, batch_size=32, hflip=False)
    torch.manual_seed(0)
    dense = train_dense(SmallResNet(2, 8), pixels, labels, normalize, settings, seed=0)
    assert (predict_probs(dense, pixels, normalize).argmax(1) == labels).mean() > 0.9
    pruned = prune_and_finetune(dense, pixels, labels, normalize, settings, 0.7, seed=1)
    assert measured_sparsity(pruned) == pytest.approx(0.7, abs=0.01)
    assert measured_sparsity(dense) < 0.01  # the dense network is copied, not modified
    probs = predict_probs(pruned, pixels, normalize)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert len(prunable_parameters(pruned)) == len(prunable_parameters(dense))


def test_second_split_forgetting_unlearns_memorised_labels_first():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 96)
    pixels = rng.integers(0, 120, (192, 3, 8, 8)).astype(np.uint8)
    pixels[labels == 1] += 100  # a learnable difference, plus noise a network can memorise
    first, second = np.arange(0, 192, 2), np.arange(1, 192, 2)
    given = labels.copy()
    flipped = first[::8]  # 12 wrong labels among the first split's 96
    given[flipped] = 1 - given[flipped]
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    # A low peak rate and no weight decay make the network memorise every flipped label on any seed and
    # thread count; three epochs of 6 steps stand in for the ~40 steps one epoch takes on a real fold.
    # (With lr 0.1, weight decay and one epoch, whether it memorised and whether it forgot changed with
    # the seed and the CPU's kernels: p of the flipped labels after forgetting ranged 0.02-0.97.)
    settings = TrainSettings(epochs=40, batch_size=16, lr=0.02, weight_decay=0.0, hflip=False, crop_padding=0,
                             forget_epochs=3)
    torch.manual_seed(0)
    dense = train_dense(SmallResNet(2, 16), pixels[first], given[first], normalize, settings, seed=0)
    right = np.setdiff1d(first, flipped)

    def p_given(model, rows):
        return predict_probs(model, pixels[rows], normalize)[np.arange(len(rows)), given[rows]]

    assert (p_given(dense, flipped) > 0.5).all()  # memorised: the plain in-sample view agrees with them
    forgetting = forget_on_second_split(dense, pixels[second], given[second], normalize, settings, seed=1)
    # A few steps on other images unlearn the memorised labels; the learned ones stay.
    assert p_given(forgetting, flipped).mean() < 0.4  # at most 0.28 over 8 seeds x 2 thread counts
    assert p_given(forgetting, right).mean() > 0.9
    assert (p_given(dense, flipped) > 0.5).all()  # the network is copied, not modified

    # A pruned copy unlearns too, and keeps its zeros while doing so.
    pruned = prune_and_finetune(dense, pixels[first], given[first], normalize, settings, 0.7, seed=2)
    sparsity = measured_sparsity(pruned)
    assert sparsity == pytest.approx(0.7, abs=0.01)
    pruned_forgetting = forget_on_second_split(pruned, pixels[second], given[second], normalize, settings, seed=1)
    assert measured_sparsity(pruned_forgetting) >= sparsity
    assert p_given(pruned_forgetting, flipped).mean() < p_given(pruned, flipped).mean()


def test_the_fingerprint_names_everything_that_decides_the_results():
    from curate.data.sources import LabeledImages
    from curate.population.config import CurateConfig

    images = LabeledImages(filepaths=[f"/data/{i}.png" for i in range(4)], labels=[0, 1, 0, 1], classes=["a", "b"])
    config = CurateConfig(members=2, folds=2, sparsities=(0.5, 0.9), image_size=8, train=TrainSettings(epochs=1))
    same = CurateConfig(members=2, folds=2, sparsities=(0.5, 0.9), image_size=8, train=TrainSettings(epochs=1),
                        device="cpu")
    assert config.fingerprint(images) == same.fingerprint(images), "the device does not change the results"
    for changed in (CurateConfig(members=2, folds=2, sparsities=(0.5, 0.9), image_size=8,
                                 train=TrainSettings(epochs=2)),
                    CurateConfig(members=2, folds=2, sparsities=(0.5, 0.9), image_size=8,
                                 train=TrainSettings(epochs=1), quantizations=())):
        assert changed.fingerprint(images) != config.fingerprint(images)
    relabelled = LabeledImages(filepaths=images.filepaths, labels=[1, 1, 0, 1], classes=["a", "b"])
    assert config.fingerprint(relabelled) != config.fingerprint(images)


def test_a_run_directory_of_another_run_store_version_is_refused(tmp_path):
    import json

    from curate.data.store import RUN_STORE_VERSION, RunStore, RunStoreVersionError

    (tmp_path / "manifest.json").write_text(json.dumps({"curate_version": "0.1.0", "status": "complete"}))
    with pytest.raises(RunStoreVersionError, match=rf"curate 0.1.0 \(run-store version 1\); this curate reads and "
                                                    rf"writes version {RUN_STORE_VERSION}"):
        RunStore(tmp_path).check_version()
    (tmp_path / "manifest.json").write_text(json.dumps({"run_store_version": RUN_STORE_VERSION}))
    RunStore(tmp_path).check_version()


def test_folding_batch_norm_for_prediction_keeps_the_function_and_the_zeros():
    from curate.population.train import apply_masks, for_inference, prediction_batch

    torch.manual_seed(0)
    model = SmallResNet(10, 8).to(memory_format=torch.channels_last)
    with torch.no_grad():  # batch norms that do something: statistics and affine parameters far from the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.3, 3.0)
                m.weight.uniform_(0.5, 2.0), m.bias.normal_(0, 0.5)
    apply_masks(model, global_magnitude_masks(model, 0.7))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the network itself is unchanged"
    x = torch.randn(16, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)
        for (_, w), (_, w_folded) in zip(prunable_parameters(model), prunable_parameters(folded)):
            assert torch.equal(w == 0, w_folded == 0), "a pruned weight stays pruned, a kept one stays kept"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 3, 16, 16), dtype=np.uint8)
    normalize = Normalizer(np.full(3, 0.5), np.full(3, 0.25), torch.device("cpu"))
    np.testing.assert_allclose(predict_probs(model, pixels, normalize, batch_size=7),
                               predict_probs(model, pixels, normalize, batch_size=40), atol=1e-5)
    # Batches sized by the first layer's activations on a CPU; large on an accelerator.
    assert prediction_batch(SmallResNet(10, 32), (3, 32, 32), torch.device("cpu")) == 64
    assert prediction_batch(SmallResNet(10, 16), (3, 16, 16), torch.device("cpu")) == 512
    # On a GPU a pass is a few dozen launches whatever its size: 8,192 small images, fewer large ones.
    assert prediction_batch(SmallResNet(10, 32), (3, 32, 32), torch.device("cuda")) == 8192
    assert prediction_batch(SmallResNet(10, 32), (3, 32, 32), torch.device("cuda"), views=9) == 8192 // 9
    assert prediction_batch(SmallResNet(10, 64), (3, 224, 224), torch.device("cuda")) == 2 ** 30 // (4 * 64 * 224 * 224)


def test_the_whitened_first_layer_sees_decorrelated_patches():
    """airbench's initialisation: the first convolution's leading channels respond to the training images'
    patches with unit, uncorrelated second moments; channels beyond them, and other models, are left alone."""
    from curate.population.models import whiten_first_conv
    from curate.population.train import initialise

    torch.manual_seed(0)
    images = torch.randn(64, 3, 12, 12) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    images[:, 1] += images[:, 0]  # correlated channels, as colour channels are
    model = SmallResNet(10, 64)
    beyond = model.features[0][0].weight[54:].clone()
    assert whiten_first_conv(model, images)
    weight = model.features[0][0].weight.detach()
    # 3 x 3 x 3 patches have 27 directions, each kept with both signs: 54 channels; the other 10 as built.
    responses = torch.nn.functional.conv2d(images, weight[:27]).transpose(0, 1).reshape(27, -1)
    moments = responses @ responses.T / responses.shape[1]
    torch.testing.assert_close(moments.diagonal(), torch.ones(27), atol=1e-2, rtol=0)  # eps damps the weakest
    assert (moments - torch.diag(moments.diagonal())).abs().max() < 1e-4
    torch.testing.assert_close(weight[27:54], -weight[:27])
    assert torch.equal(weight[54:], beyond)
    assert not whiten_first_conv(SmallResNet(10, 8, networks=2), torch.randn(4, 6, 8, 8))
    assert not whiten_first_conv(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), images)
    # Off unless asked: the network is exactly what its seed built.
    pixels = np.random.default_rng(0).integers(0, 256, (32, 3, 8, 8), dtype=np.uint8)
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    built = SmallResNet(10, 8)
    before = {k: v.clone() for k, v in built.state_dict().items()}
    initialise(built, pixels, normalize, TrainSettings())
    assert all(torch.equal(before[k], v) for k, v in built.state_dict().items())
    initialise(built, pixels, normalize, TrainSettings(whiten=True))
    assert not torch.equal(before["features.0.0.weight"], built.state_dict()["features.0.0.weight"])


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_the_small_resnets_gelu_is_torchs_gelu_in_either_memory_layout(layout):
    from curate.population.models import GELU

    x = (3 * torch.randn(4, 8, 5, 6, dtype=torch.float64)).contiguous(memory_format=layout).requires_grad_()
    ours, theirs = GELU()(x), torch.nn.functional.gelu(x)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12) and ours.is_contiguous(memory_format=layout)
    (grad,) = torch.autograd.grad(ours.sum(), x)
    (expected,) = torch.autograd.grad(theirs.sum(), x)
    assert torch.allclose(grad, expected, rtol=0, atol=1e-12) and grad.is_contiguous(memory_format=layout)
    assert GELU(approximate="tanh")(x).sub(torch.nn.functional.gelu(x, approximate="tanh")).abs().max() < 1e-12
    assert all(isinstance(m, torch.nn.GELU) for m in SmallResNet(3, 4).modules() if "GELU" in type(m).__name__)
