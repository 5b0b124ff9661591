"""The configuration of a run: everything that decides its results, and their fingerprint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.population.executor import MemberJob
from curate.options import RunOptions
from curate.population.quantize import QUANT_FORMATS, check_formats
from curate.population.robustness import CORRUPTION_NAMES, SEVERITIES, check_corruptions
from curate.data.sources import LabeledImages
from curate.data.store import RUN_STORE_VERSION
from curate.options import FILTER_CRITERIA, small_resnet_width
from curate.population.train import TrainSettings, check_device


@dataclass(frozen=True)
class CurateConfig:
    """What a run computes. Two runs with equal configs on the same images give the same results.

    Attributes:
        model: model spec, see :mod:`curate.population.models`.
        weights: a local checkpoint every network starts from (:func:`curate.population.models.load_weights`);
            its contents, not its path, enter the fingerprint.
        members: population size K; every image gets exactly K out-of-sample predictions per level.
        folds: cross-fitting folds F; each member trains F networks on (F-1)/F of the images.
        sparsities: global magnitude pruning levels, ascending, each in (0, 1).
        quantizations: post-training quantization formats (:mod:`curate.population.quantize`), each a further
            compression level after the pruning levels.
        image_size: images are decoded to ``image_size`` x ``image_size`` RGB.
        seed: base seed; member k uses seed ``1000 * seed + k`` for its partition and initialisation.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``; not part of the fingerprint.
        alpha: family-wise significance level of the per-class tests.
        probes_per_kind: probe images of each kind (:mod:`curate.science.probes`), at most as many as the
            dataset has images, that every network predicts; they calibrate the multi-object and corruption flags.
        robustness_images: held-out images per network that are corrupted (:mod:`curate.population.robustness`)
            and predicted by the network and every compressed copy of it; 0 turns robustness off.
        corruptions, severities: which ImageNet-C-style corruptions, at which severities (1..5).
        filter_prunings: structured pruning levels (:mod:`curate.population.structured`): the share of the
            channels of every channel group removed, ascending, each in (0, 1).
        filter_criterion: how filters are ranked for removal, ``taylor`` or ``l1``.
        distillations: distilled students (:func:`curate.population.train.distill_student`), each
            ``"F"`` (a resnet-small at ``F`` times the teacher's width) or ``"F:S"`` (with ``S`` stages, a
            shallower one), e.g. ``("0.5",)``.
        label_probes: share of each network's training images given a random wrong label
            (Metadata Archaeology's random-label probes); how the networks fit them sets the
            label-noise count (:func:`curate.science.flags.probe_label_noise`). 0: off, confident learning counts.
        train: optimisation settings.
    """

    model: str = RunOptions.model
    weights: str | None = RunOptions.weights
    members: int = RunOptions.members
    folds: int = RunOptions.folds
    sparsities: tuple[float, ...] = RunOptions.sparsities
    quantizations: tuple[str, ...] = RunOptions.quantize
    image_size: int = 32
    seed: int = RunOptions.seed
    device: str = RunOptions.device
    alpha: float = 0.05
    probes_per_kind: int = 256
    robustness_images: int = RunOptions.robustness_images
    corruptions: tuple[str, ...] = CORRUPTION_NAMES
    severities: tuple[int, ...] = SEVERITIES
    label_probes: float = RunOptions.label_probes
    filter_prunings: tuple[float, ...] = ()
    filter_criterion: str = RunOptions.filter_criterion
    distillations: tuple[str, ...] = ()
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsities", tuple(float(s) for s in self.sparsities))
        object.__setattr__(self, "quantizations", check_formats(self.quantizations))
        corruptions, severities = check_corruptions(self.corruptions, self.severities)
        object.__setattr__(self, "corruptions", corruptions)
        object.__setattr__(self, "severities", severities)
        if self.robustness_images < 0:
            raise ValueError(f"robustness_images must be 0 (off) or positive, got {self.robustness_images}.")
        if self.members < 2:
            raise ValueError(f"members must be at least 2 (a modal label and a t-test need a population), got {self.members}.")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2 so every image is scored out of sample, got {self.folds}.")
        if not self.sparsities:
            raise ValueError("Give at least one sparsity, e.g. --sparsities 0.3,0.5,0.7,0.9.")
        bad = [s for s in self.sparsities if not 0.0 < s < 1.0]
        if bad:
            raise ValueError(f"Sparsities must lie strictly between 0 and 1, got {bad}.")
        if list(self.sparsities) != sorted(set(self.sparsities)):
            raise ValueError(f"Sparsities must be distinct and ascending, got {list(self.sparsities)}.")
        object.__setattr__(self, "filter_prunings", tuple(float(f) for f in self.filter_prunings))
        bad = [f for f in self.filter_prunings if not 0.0 < f < 1.0]
        if bad or list(self.filter_prunings) != sorted(set(self.filter_prunings)):
            raise ValueError(f"Filter pruning shares must be distinct, ascending and strictly between 0 and 1, e.g. "
                             f"--filter-prune 0.3,0.5; got {list(self.filter_prunings)}.")
        if self.filter_prunings and small_resnet_width(self.model) is None:
            raise ValueError(f"Filter pruning (--filter-prune) knows the channel groups of the resnet-small models "
                             f"only, not of {self.model}; use --filter-prune none with this --model.")
        if self.filter_criterion not in FILTER_CRITERIA:
            raise ValueError(f"Unknown filter criterion {self.filter_criterion!r}; choose "
                             f"{' or '.join(FILTER_CRITERIA)}.")
        students = tuple(canonical_student(spec) for spec in self.distillations)
        if len(set(students)) != len(students):
            raise ValueError(f"Distilled students repeat: {list(self.distillations)}.")
        object.__setattr__(self, "distillations", students)
        if not 0.0 <= self.label_probes <= 0.2:
            raise ValueError(f"label_probes is the share of each network's training images given a random wrong "
                             f"label: 0 (off) to 0.2, e.g. 0.05; got {self.label_probes}.")
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {self.image_size}.")
        check_device(self.device)
        if self.weights is not None:
            from pathlib import Path

            if not Path(self.weights).is_file():
                raise ValueError(f"--weights {self.weights}: no such file.")
            object.__setattr__(self, "weights", str(Path(self.weights).resolve()))

    @property
    def level_names(self) -> list[str]:
        """Pruning levels (``prune30``...) in ascending sparsity, quantization formats, filter pruning
        levels (``filter50``...), then distilled students (``distill50``, ``distill50-d2``)."""
        return ([f"prune{round(s * 100):02d}" for s in self.sparsities] + list(self.quantizations)
                + [f"filter{round(f * 100):02d}" for f in self.filter_prunings]
                + [student_level_name(spec) for spec in self.distillations])

    @property
    def level_kinds(self) -> list[str]:
        return (["prune"] * len(self.sparsities) + ["quantize"] * len(self.quantizations)
                + ["filter"] * len(self.filter_prunings) + ["distill"] * len(self.distillations))

    @property
    def level_sparsities(self) -> list[float]:
        """Target sparsity (share of zero weights) of every level: 0 for all but unstructured pruning."""
        return list(self.sparsities) + [0.0] * (self.n_levels - len(self.sparsities))

    @property
    def level_bits(self) -> list[int]:
        """Bits per weight of every level (32 for all but quantization)."""
        return ([32] * len(self.sparsities) + [QUANT_FORMATS[f] for f in self.quantizations]
                + [32] * (len(self.filter_prunings) + len(self.distillations)))

    @property
    def n_levels(self) -> int:
        return len(self.sparsities) + len(self.quantizations) + len(self.filter_prunings) + len(self.distillations)

    def student(self, spec: str) -> tuple[int, int]:
        """``(width, stages)`` of the resnet-small student ``spec`` of this run's networks: a share of the
        teacher's base width (32 for teachers that are not resnet-small)."""
        share, stages = parse_student(spec)
        return max(1, int(round((small_resnet_width(self.model) or 32) * share))), stages

    @property
    def robustness(self) -> bool:
        return self.robustness_images > 0 and bool(self.corruptions) and bool(self.severities)

    def member_seed(self, member: int) -> int:
        return 1000 * self.seed + member

    def job_seed(self, member: int, fold: int) -> int:
        return 100 * self.member_seed(member) + fold

    def jobs(self) -> list[MemberJob]:
        return [MemberJob(k, f, self.job_seed(k, f)) for k in range(self.members) for f in range(self.folds)]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("sparsities", "quantizations", "corruptions", "severities", "filter_prunings", "distillations"):
            data[key] = list(getattr(self, key))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CurateConfig":
        data = dict(data)
        data["train"] = TrainSettings(**data.get("train", {}))
        for key in ("sparsities", "quantizations", "corruptions", "severities", "filter_prunings", "distillations"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def fingerprint(self, images: LabeledImages) -> str:
        """Hash of everything that determines the results: config (less device), images, labels."""
        config = self.to_dict()
        config.pop("device")
        if self.weights:
            config["weights"] = _file_digest(self.weights)
        config["run_store_version"] = RUN_STORE_VERSION
        config["job_outputs"] = JOB_OUTPUTS
        h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        h.update("\n".join(images.filepaths).encode())
        h.update(np.asarray(images.labels, dtype=np.int64).tobytes())
        h.update("\n".join(images.classes).encode())
        return h.hexdigest()[:16]


def parse_student(spec: str) -> tuple[float, int]:
    """``"0.5"`` -> ``(0.5, 3)``; ``"0.5:2"`` -> ``(0.5, 2)``: a student's share of the teacher's width and
    its stages; a ValueError with an example otherwise."""
    share, _, stages = str(spec).partition(":")
    try:
        share_f, stages_i = float(share), int(stages) if stages else 3
    except ValueError:
        share_f = stages_i = None
    if share_f is None or not 0.0 < share_f <= 1.0 or not 1 <= stages_i <= 3:
        raise ValueError(f"A distilled student is a share of the teacher's width in (0, 1], optionally with its "
                         f"stages (1-3) after ':', e.g. --distill 0.5 or --distill 0.5:2; got {spec!r}.")
    return share_f, stages_i


def canonical_student(spec: str) -> str:
    share, stages = parse_student(spec)
    return f"{share:g}" + (f":{stages}" if stages != 3 else "")


def student_level_name(spec: str) -> str:
    share, stages = parse_student(spec)
    return f"distill{round(share * 100):02d}" + (f"-d{stages}" if stages != 3 else "")


JOB_OUTPUTS = 4
"""Version of what a population job computes (its predictions' meaning: control copy, image windows,
probe construction, compression footprints, filter pruning and students; 4: two-object probes placed as
objects fall, and the first job's feature embedding). Part of the fingerprint, so a stored job from an
older version is retrained rather than read with another meaning. Bump it with every change to a job's outputs."""


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
