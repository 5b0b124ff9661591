"""The population's recipe: local checkpoints (--weights), the chained pruning schedule, mirror-image
prediction, and the cost estimate printed before training."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from curate.population.config import CurateConfig
from curate.population.cost import (GPU_TIMED_PASSES, TIMING_BYTES, WARMUP_STEPS, CostEstimate, embedded_images,
                                    estimate_cost, format_seconds, timing_sample, work_per_network)
from curate.population.jobs import NetworkJobs
from curate.population.executor import MemberJob
from curate.population.models import SmallResNet, build_model, load_weights
from curate.population.train import (GPU_PREDICT_BATCH, NesterovSGD, Normalizer, TrainSettings, cubic_sparsity, measured_sparsity,
                                     predict_probs, prune_and_finetune, prune_levels, train_dense)
from curate.science.crossfit import stratified_folds
from helpers import PRUNE_ONLY, invoke


def _separable(n=128, size=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    pixels = rng.integers(0, 60, (n, 3, size, size)).astype(np.uint8)
    pixels[labels == 1] += 150
    return pixels, labels


def test_a_saved_checkpoint_loads_and_a_head_for_other_classes_stays_initialised(tmp_path):
    torch.manual_seed(0)
    trained = SmallResNet(10, 8)
    path = tmp_path / "model.pt"
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, path)  # as training scripts often save it

    same = SmallResNet(10, 8)
    assert load_weights(same, path) == []
    for (name, a), b in zip(trained.state_dict().items(), same.state_dict().values()):
        assert torch.equal(a, b), name

    other_classes = SmallResNet(3, 8)
    left = load_weights(other_classes, path)
    assert left == ["head.weight", "head.bias"]
    assert torch.equal(other_classes.features[0][0].weight, trained.features[0][0].weight)


def test_a_checkpoint_that_does_not_fit_is_an_error_naming_the_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt is not a PyTorch checkpoint"):
        load_weights(SmallResNet(2, 8), junk)
    other = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(ValueError, match="other.pt matches none of the weights"):
        load_weights(SmallResNet(2, 8), other)
    with pytest.raises(ValueError, match="no such file"):
        CurateConfig(weights=str(tmp_path / "missing.pt"))


def test_the_checkpoint_contents_enter_the_fingerprint(tmp_path, digits_images):
    path = tmp_path / "w.pt"
    torch.save(SmallResNet(10, 8).state_dict(), path)
    first = CurateConfig(weights=str(path)).fingerprint(digits_images)
    torch.save(SmallResNet(10, 8).state_dict(), path)  # another initialisation, same path
    assert CurateConfig(weights=str(path)).fingerprint(digits_images) != first
    assert CurateConfig().fingerprint(digits_images) != first


def test_a_run_starts_every_network_from_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "digits.pt"
    torch.save(SmallResNet(10, 16).state_dict(), path)
    result = invoke("run", "digits", "--no-fiftyone", "--run-dir", str(tmp_path / "run"), "--model",
                    "resnet-small:16", "--weights", str(path), *PRUNE_ONLY)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert saved["config"]["weights"] == str(path.resolve())
    bad = invoke("run", "digits", "--no-fiftyone", "--run-dir", str(tmp_path / "run2"), "--weights",
                 str(tmp_path / "nothing.pt"), *PRUNE_ONLY)
    assert bad.exit_code != 0 and "nothing.pt" in bad.output


def test_timm_models_are_built_or_the_missing_package_is_named():
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        with pytest.raises(ValueError, match="pip install timm"):
            build_model("timm:resnet18", 3)
    else:
        assert build_model("timm:resnet18", 3)(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_chained_pruning_ramps_on_from_the_previous_level_and_keeps_its_zeros():
    assert cubic_sparsity(0, 100, 0.9, initial_sparsity=0.5) == pytest.approx(0.5)
    assert cubic_sparsity(100, 100, 0.9, initial_sparsity=0.5) == pytest.approx(0.9)
    pixels, labels = _separable()
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    settings = TrainSettings(epochs=4, finetune_epochs=2, batch_size=32, hflip=False, prune_schedule="chained")
    torch.manual_seed(0)
    dense = train_dense(SmallResNet(2, 8), pixels, labels, normalize, settings, seed=0)
    half = prune_and_finetune(dense, pixels, labels, normalize, settings, 0.5, seed=1)
    most = prune_and_finetune(half, pixels, labels, normalize, settings, 0.8, seed=2)
    assert measured_sparsity(half) == pytest.approx(0.5, abs=0.01)
    assert measured_sparsity(most) == pytest.approx(0.8, abs=0.01)
    for a, b in zip(half.parameters(), most.parameters()):
        if a.ndim > 1:
            assert not (b[a == 0] != 0).any(), "a weight pruned at 50% grew back at 80%"
    levels = prune_levels(dense, pixels, labels, normalize, settings, (0.5, 0.8), seed=1)
    assert [round(measured_sparsity(m), 2) for m in levels] == [0.5, 0.8]
    for a, b in zip(levels[0].parameters(), levels[1].parameters()):
        if a.ndim > 1:
            assert not (b[a == 0] != 0).any(), "prune_levels did not chain the levels"
    with pytest.raises(ValueError, match="prune_schedule must be one of independent, chained"):
        TrainSettings(prune_schedule="one-shot")


def test_mirror_averaged_predictions_are_the_mean_of_both_logits():
    torch.manual_seed(0)
    model = SmallResNet(3, 8).eval()
    pixels = np.random.default_rng(0).integers(0, 255, (5, 3, 8, 8)).astype(np.uint8)
    normalize = Normalizer(*Normalizer.channel_stats(pixels), torch.device("cpu"))
    x = normalize(pixels)
    with torch.no_grad():
        expected = torch.softmax((model(x) + model(x.flip(3))) / 2, dim=1).numpy()
    np.testing.assert_allclose(predict_probs(model, pixels, normalize, flip=True), expected, atol=1e-5)
    mirrored = pixels[..., ::-1].copy()
    np.testing.assert_allclose(predict_probs(model, mirrored, normalize, flip=True),
                               predict_probs(model, pixels, normalize, flip=True), atol=1e-5)


def test_the_cost_estimate_counts_the_steps_and_predictions_a_network_takes(monkeypatch):
    pixels, labels = _separable(n=96)
    config = CurateConfig(members=2, folds=2, sparsities=(0.5, 0.9), quantizations=("fp16",), image_size=8,
                          robustness_images=4, corruptions=("gaussian_noise",), severities=(1, 3),
                          probes_per_kind=4, filter_prunings=(0.5,), distillations=("0.5",),
                          train=TrainSettings(epochs=2, finetune_epochs=1, batch_size=16))
    folds = {k: stratified_folds(labels, 2, config.member_seed(k)) for k in range(2)}
    mean, std = Normalizer.channel_stats(pixels)
    steps, predicted = [], []
    import curate.population.train as train

    def counted(predict, per_image):
        def wrapper(model, images, *args, **kwargs):
            predicted.append(len(images) * per_image(kwargs))
            return predict(model, images, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(train, "predict_probs", counted(train.predict_probs, lambda kw: 2 if kw.get("flip") else 1))
    monkeypatch.setattr(train, "predict_regions", counted(train.predict_regions, lambda kw: len(train.REGIONS)))
    import curate.population.features as features

    embedded = []
    monkeypatch.setattr(features, "embed", lambda model, images, *a, **kw: embedded.append(len(images)) or np.zeros((len(images), 4)))
    run = NetworkJobs(config, pixels, labels, 2, folds, mean, std, pixels[:6], region_probe_rows=np.array([0, 2]))
    run(MemberJob(0, 0, config.job_seed(0, 0)), steps.append)
    n_train = int((folds[0] != 0).sum())
    work = work_per_network(config, len(pixels), n_train, 6, 2)  # windows of two of the six probes
    assert sum(steps) == work["dense_steps"] + work["finetune_steps"] + work["forget_steps"] + work["distill_steps"]
    assert sum(predicted) == work["predicted_images"]
    assert sum(embedded) == embedded_images(len(pixels)) == 2 * 96  # job (0, 0) embeds for the duplicate search
    estimate = estimate_cost(config, pixels, 2, mean, std, networks=4, n_train=n_train, n_probes=6, n_region_probes=2,
                             embedded_images=sum(embedded))
    assert estimate.steps == sum(steps) and estimate.seconds > 0
    assert estimate.parts["predictions"] == pytest.approx((4 * work["predicted_images"] + 192) * estimate.seconds_per_image)
    assert estimate.seconds == pytest.approx(sum(estimate.parts.values()))
    # Timed on a sample of the images (what travels to a cluster's worker), counted for all of them.
    sampled = estimate_cost(config, pixels[:40], 2, mean, std, networks=4, n_train=n_train, n_probes=6,
                            n_region_probes=2, embedded_images=sum(embedded), n_images=len(pixels))
    assert (sampled.steps, sampled.predicted_images) == (estimate.steps, estimate.predicted_images)


def test_the_timing_sample_holds_the_warm_up_and_a_bounded_share_of_large_images():
    config = CurateConfig(train=TrainSettings(epochs=1, batch_size=64))
    small = np.zeros((100_000, 32, 32, 3), dtype=np.uint8)
    assert len(timing_sample(config, small)) == GPU_TIMED_PASSES * GPU_PREDICT_BATCH  # every pass the estimate times
    photos = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.uint8), (100_000, 224, 224, 3), (0, 0, 0, 0))
    sample = timing_sample(config, photos)
    assert len(sample) * 224 * 224 * 3 <= TIMING_BYTES and len(sample) >= 64 * WARMUP_STEPS
    assert len(timing_sample(config, small[:100])) == 100


def test_the_estimate_does_not_time_the_first_prediction_a_shape_gets(monkeypatch):
    # On a GPU the first batch of a shape also picks its kernels: timed, it made a 4-minute population 50 minutes.
    import time

    import curate.population.train as train

    pixels, _ = _separable(n=96)
    mean, std = Normalizer.channel_stats(pixels)
    config = CurateConfig(members=2, folds=2, image_size=8, train=TrainSettings(epochs=1, batch_size=16))
    calls = []

    def slow_at_first(model, images, *args, **kwargs):
        calls.append(len(images))
        if len(calls) == 1:
            time.sleep(2.0)
        return np.zeros((len(images), 2))

    monkeypatch.setattr(train, "predict_probs", slow_at_first)
    estimate = estimate_cost(config, pixels, 2, mean, std, networks=2, n_train=48, n_probes=0)
    assert len(calls) == 2 and estimate.seconds_per_image < 2.0 / 96 / 10
    # Nor a last, partial pass (a shape of its own, set up while timed): 50,000 images in passes of 8,192 on a
    # GPU timed six whole passes and one of 848, a likely part of the 2 min 09 s estimated for a 69 s population.
    calls.clear()
    monkeypatch.setattr(train, "prediction_batch", lambda *args, **kwargs: 40)
    estimate_cost(config, pixels, 2, mean, std, networks=2, n_train=48, n_probes=0)
    assert calls == [40, 80], "the timed images are whole passes of the shape the untimed pass set up"


def test_the_estimate_reads_as_plain_words_with_ways_to_make_it_cheaper():
    estimate = CostEstimate(networks=8, dense_steps=1000, finetune_steps=500, forget_steps=100, distill_steps=0,
                            predicted_images=50_000, seconds_per_step=0.05, seconds_per_image=1e-4, device="cpu")
    text = "\n".join(estimate.lines(CurateConfig()))
    assert "8 networks to train, 1,600 optimiser steps and 50,000 image predictions each" in text
    assert f"Estimated {format_seconds(estimate.seconds)} on cpu" in text
    assert "--epochs 8" in text and "--device cuda" in text
    assert format_seconds(59) == "59 s" and format_seconds(61) == "1 min 01 s" and format_seconds(7322) == "2 h 02 min"
    # Two networks at a time in worker processes: the same work, half the wall time.
    parallel = dataclasses.replace(estimate, at_a_time=2)
    assert parallel.seconds == pytest.approx(estimate.seconds / 2)
    assert f"Estimated {format_seconds(parallel.seconds)} on cpu, 2 networks at a time (" in "\n".join(
        parallel.lines(CurateConfig()))


def test_the_cli_prints_the_estimate_before_training(tmp_path):
    result = invoke("run", "digits", "--no-fiftyone", "--run-dir", str(tmp_path / "run"),
                    *[a for a in PRUNE_ONLY if a != "-q"])
    assert result.exit_code == 0, result.output
    assert "Estimated" in result.output and "networks to train" in result.output
    assert result.output.index("Estimated") < result.output.index("level")  # before the results table


def test_image_size_and_batch_size_follow_the_images_and_the_model(tmp_path):
    from PIL import Image

    from curate.data.images import native_size
    from curate.options import default_batch_size, default_image_size

    assert default_image_size("resnet-small", 8) == 8
    assert default_image_size("resnet-small", 500) == 32
    assert default_image_size("resnet-small", None) == 32
    assert default_image_size("tv:resnet18:pretrained", 32) == 224
    assert default_batch_size(898) == 56 and default_batch_size(100) == 32 and default_batch_size(25_000) == 64
    paths = []
    for i, (w, h) in enumerate([(100, 60), (120, 80), (90, 70)]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (w, h)).save(paths[-1])
    assert native_size(paths + [str(tmp_path / "missing.png")]) == 70


def test_a_gpu_trains_fewer_larger_batches():
    from curate.options import RunOptions, default_batch_size

    assert default_batch_size(25_000, gpu=True) == 512 and default_batch_size(898, gpu=True) == 56
    cpu, gpu = (RunOptions(device=d).config_for("photos.csv", 50_000, 32).train for d in ("cpu", "cuda"))
    assert (cpu.batch_size, cpu.lr, cpu.finetune_lr) == (64, 0.1, 0.04), "a CPU's recipe is what it was"
    assert (gpu.batch_size, gpu.lr, gpu.finetune_lr) == (512, 0.1, 0.04)
    asked = RunOptions(device="cuda", batch_size=128, lr=0.05).config_for("photos.csv", 50_000, 32).train
    assert (asked.batch_size, asked.lr, asked.finetune_lr) == (128, 0.05, 0.02), "what the user asks wins"


def test_photos_trained_from_scratch_come_with_a_note_on_what_pretraining_would_give(tmp_path):
    from PIL import Image

    from curate import api

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "photos" / c / f"{i}.png")
    said = []
    outcome = api.run(str(tmp_path / "photos"), to_fiftyone=False, run_dir=tmp_path / "run", progress=False,
                      say=lambda message, kind: said.append((kind, message)), members=2, epochs=1,
                      finetune_epochs=1, sparsities=(0.5,), quantize=(), robustness_images=0, filter_prune=(),
                      distill=())
    assert outcome.result.config.image_size == 32
    notes = [m for kind, m in said if kind == "note"]
    assert any("about 96 px" in m and "tv:resnet18:pretrained" in m and "--weights PATH" in m for m in notes), said


def test_a_torchvision_checkpoint_for_1000_classes_loads_into_a_model_for_3(tmp_path):
    import torchvision

    path = tmp_path / "r18.pt"
    imagenet_shaped = torchvision.models.resnet18(num_classes=1000)
    torch.save(imagenet_shaped.state_dict(), path)
    model = build_model("tv:resnet18", 3)
    assert load_weights(model, path) == ["fc.weight", "fc.bias"]
    assert torch.equal(model.conv1.weight, imagenet_shaped.conv1.weight)
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_the_digits_preset_picks_a_narrower_network_unless_the_user_names_one():
    from curate.options import RunOptions

    assert RunOptions().config_for("digits", 1797).model == "resnet-small:16"
    assert RunOptions(model="resnet-small:32").config_for("digits", 1797).model == "resnet-small:32"
    assert RunOptions().config_for("photos/", 1797, 32).model == "resnet-small"


def _decay_groups(model):
    return ([p for p in model.parameters() if p.ndim > 1], [p for p in model.parameters() if p.ndim <= 1])


def test_curates_optimizer_takes_torchs_nesterov_sgd_steps_bit_for_bit():
    torch.manual_seed(0)
    ours, theirs = SmallResNet(10, 8), SmallResNet(10, 8)
    theirs.load_state_dict(ours.state_dict())
    decay, no_decay = _decay_groups(theirs)
    reference = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=0.0, momentum=0.9, nesterov=True)
    optimizer = NesterovSGD(list(zip(_decay_groups(ours), (5e-4, 0.0))), momentum=0.9)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    head = [ours.head.weight, theirs.head.weight]
    for step in range(6):
        for group in reference.param_groups:
            group["lr"] = 0.05 * (step + 1)
        optimizer.lr = 0.05 * (step + 1)
        for model, opt in ((ours, optimizer), (theirs, reference)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
        if step == 3:  # a parameter without a gradient is left alone, its momentum kept for later steps
            for weight in head:
                weight.grad = None
        optimizer.step()
        reference.step()
        for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
            assert torch.equal(a, b), (step, name)
    assert any(not torch.equal(a, b) for a, b in zip(ours.parameters(), SmallResNet(10, 8).parameters()))


def test_training_does_not_import_torchs_compiler():
    # torch.optim imports torch._dynamo on first use, 1.6-2.5 s in every worker; this process may already have it.
    import subprocess
    import sys

    script = ("import sys, numpy as np, torch\n"
              "from curate.population.train import Normalizer, TrainSettings, train_dense\n"
              "from curate.population.models import SmallResNet\n"
              "pixels = np.random.default_rng(0).integers(0, 255, (32, 3, 8, 8)).astype(np.uint8)\n"
              "labels = np.arange(32) % 2\n"
              "train_dense(SmallResNet(2, 8), pixels, labels, Normalizer(*Normalizer.channel_stats(pixels), torch.device('cpu')),\n"
              "            TrainSettings(epochs=1, batch_size=16), seed=0)\n"
              "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stdout + done.stderr
