"""The options of a run a user chooses and their defaults, written once; no heavy imports, so the CLI
can read them to build its options without loading torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

DEFAULT_RUN_KEY = "curate"
DEFAULT_LABEL_FIELD = "ground_truth"
DEMO_DATASET = "curate-digits"
DIGITS_SOURCES = ("digits", "digits-planted")
"""scikit-learn's digits, and the demo's copy of them with problems planted (:mod:`curate.data.planted`)."""
# Digits are 8x8, grey and chiral: decode them at 16 px, never flip them, and give the default network a
# quarter of its channels (as accurate held out as full width, in about half the time) trained for 12 epochs
# (held-out accuracy 0.985 against 0.987 at 16, 0.983 at 10, 0.972 at 8; docs/benchmarks.md, "Demo wall time").
DIGITS_PRESET = {"image_size": 16, "hflip": False, "model": "resnet-small:16", "epochs": 12}
DEFAULT_EPOCHS = 16


@dataclass(frozen=True)
class RunOptions:
    """The options of a run a user chooses, with their defaults: the one place they are written.

    :class:`curate.population.pipeline.CurateConfig` and :class:`curate.population.train.TrainSettings` take their defaults
    from here, and so do the CLI's options, the App's form and the README's table (a test checks it). ``None`` means
    "derived from the data": ``epochs`` (:data:`DEFAULT_EPOCHS`; 12 for digits), ``filter_prune`` (:func:`default_filter_prune`), ``batch_size`` (:func:`default_batch_size`, larger on a GPU), ``image_size``
    (:func:`default_image_size`; 16 for digits); ``hflip`` is on (off for digits). ``executor``, ``job_cpus``,
    ``job_gpus`` and ``train_together`` say where and how the networks train
    (:func:`curate.population.executor.make_executor`), not what they compute: a run resumes across executors
    (``train_together``'s default is derived from the device, :func:`curate.population.pipeline.networks_together`).
    """

    model: str = "resnet-small"
    weights: str | None = None
    members: int = 4
    folds: int = 2
    sparsities: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    quantize: tuple[str, ...] = ("fp16", "bf16", "int8", "int4", "dyn-int8")
    filter_prune: tuple[float, ...] | None = None
    filter_criterion: str = "taylor"
    distill: tuple[str, ...] = ("0.5",)
    robustness_images: int = 64
    label_probes: float = 0.0
    epochs: int | None = None
    finetune_epochs: int = 3
    lr: float = 0.1
    prune_schedule: str = "chained"
    batch_size: int | None = None
    image_size: int | None = None
    hflip: bool | None = None
    seed: int = 0
    device: str = "auto"
    executor: str = "local"
    job_cpus: float | None = None
    job_gpus: float | None = None
    train_together: int | None = None

    def config_for(self, source: str, n_images: int, native_size: int | None = None, *, gpu: bool | None = None):
        """The run's full :class:`curate.population.pipeline.CurateConfig` for ``n_images`` images of
        ``source`` whose shorter side is typically ``native_size`` pixels. ``gpu``: whether the networks train
        on a GPU (None: whether ``device`` is one on this machine; a run asks its executor, which for a Ray
        cluster is not this machine)."""
        from curate.population.config import CurateConfig
        from curate.population.train import TrainSettings

        preset = DIGITS_PRESET if source in DIGITS_SOURCES else {}
        image_size = (self.image_size if self.image_size is not None
                      else preset.get("image_size") or default_image_size(self.model, native_size))
        hflip = self.hflip if self.hflip is not None else preset.get("hflip", True)
        model = preset.get("model", self.model) if self.model == RunOptions.model else self.model
        epochs = self.epochs if self.epochs is not None else preset.get("epochs", DEFAULT_EPOCHS)
        n_train = n_images * (self.folds - 1) // max(1, self.folds)
        batch_size = (self.batch_size if self.batch_size is not None
                      else default_batch_size(n_train, gpu=runs_on_gpu(self.device) if gpu is None else gpu))
        filter_prune = self.filter_prune if self.filter_prune is not None else default_filter_prune(model)
        return CurateConfig(
            model=model, weights=self.weights, members=self.members, folds=self.folds, sparsities=self.sparsities,
            quantizations=self.quantize, robustness_images=self.robustness_images, image_size=image_size,
            seed=self.seed, device=self.device, label_probes=self.label_probes, filter_prunings=filter_prune,
            filter_criterion=self.filter_criterion, distillations=self.distill,
            train=TrainSettings(epochs=epochs, finetune_epochs=self.finetune_epochs, batch_size=batch_size,
                                lr=self.lr, finetune_lr=round(self.lr * FINETUNE_LR_SHARE, 10), hflip=hflip,
                                prune_schedule=self.prune_schedule),
        )

    def make_executor(self):
        """Where this run's networks train (:func:`curate.population.executor.make_executor`)."""
        from curate.population.executor import make_executor

        return make_executor(self.executor, job_cpus=self.job_cpus, job_gpus=self.job_gpus, device=self.device,
                             together=self.train_together)


DEFAULT_FILTER_PRUNE = (0.5,)
FILTER_CRITERIA = ("taylor", "l1")
"""How filter pruning ranks channels (:mod:`curate.population.structured`)."""


def small_resnet_width(spec: str) -> int | None:
    """The base width of a ``resnet-small[:W]`` model spec, None for other models."""
    if spec == "resnet-small":
        return 32
    if spec.startswith("resnet-small:") and spec.partition(":")[2].isdigit():
        return int(spec.partition(":")[2])
    return None


def default_filter_prune(model: str) -> tuple[float, ...]:
    """Filter pruning levels when the user does not say: :data:`DEFAULT_FILTER_PRUNE` for the resnet-small
    models, whose channel groups curate knows (:mod:`curate.population.structured`), none for others."""
    return DEFAULT_FILTER_PRUNE if small_resnet_width(model) is not None else ()


def parse_filter_prune(text: str) -> tuple[float, ...]:
    """``"0.3,0.5"`` -> ``(0.3, 0.5)``; ``none`` -> ``()`` (no filter pruning)."""
    if text.strip() == "none":
        return ()
    return parse_fractions(text, "--filter-prune", "0.3,0.5")


def is_pretrained(model: str) -> bool:
    return model.endswith(":pretrained")


def default_image_size(model: str, native_size: int | None) -> int:
    """The square size images are decoded to when the user does not say.

    A pretrained backbone sees images at the size its weights were trained at (224, ImageNet). A network
    trained from scratch sees them at their own size up to 32 pixels: beyond that, on the few thousand
    images a dataset owner has, the cost grows with the square of the size and the accuracy barely does.
    """
    if is_pretrained(model):
        return 224
    return int(min(32, max(8, native_size or 32)))


def default_batch_size(n_train: int, *, gpu: bool = False) -> int:
    """Images a batch when the user does not say: images per network / 16 (at least 16 steps an epoch),
    clipped to 32..64 on a CPU and to 32..:data:`GPU_MAX_BATCH` on a GPU.

    On a CPU a step costs its arithmetic, and on the few thousand images a network of a population trains on,
    more, smaller steps buy more accuracy per second than larger ones (docs/benchmarks.md, "Training recipe").
    On a GPU a step of small networks costs its number of operations, nearly whatever the batch (8 x 512 images
    a step in 1.8x the time of 8 x 64 on an H200), so fewer, larger steps are what make it fast.
    """
    return int(min(GPU_MAX_BATCH if gpu else 64, max(32, n_train // 16)))


GPU_MAX_BATCH = 512
FINETUNE_LR_SHARE = 0.4
"""Fine-tuning (pruning levels, control, forgetting) peaks at this share of the dense learning rate
(``--lr``). The learning rate does not grow with the batch: on an H200, one network at batch 512 was as accurate
held out at 0.05, 0.1, 0.2, 0.28 and 0.8 (0.841-0.852), 0.1 among the best (docs/benchmarks.md, "The population
on a GPU")."""


def runs_on_gpu(device: str) -> bool:
    """Whether ``device`` (``auto``, ``cpu``, ``cuda[:i]``, ``mps``) is a GPU on this machine."""
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return device.startswith("cuda") or device == "mps"


def parse_fractions(text: str, what: str, example: str) -> tuple[float, ...]:
    """``"0.3,0.5"`` -> ``(0.3, 0.5)``; a ValueError naming ``what`` and an ``example`` otherwise."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{what} must be comma-separated fractions such as {example}, got {text!r}.") from None


def parse_names(text: str) -> tuple[str, ...]:
    """``"fp16, int8"`` -> ``("fp16", "int8")``; ``none`` (or nothing) is the empty tuple."""
    return tuple(v.strip() for v in text.split(",") if v.strip() and v.strip() != "none")


def run_option_defaults() -> dict[str, Any]:
    """Every :class:`RunOptions` field and its default."""
    return {f.name: f.default for f in dataclasses.fields(RunOptions)}
