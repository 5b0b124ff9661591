"""Training, gradual global magnitude pruning with fine-tuning, and prediction.

This is the imperative shell around torch; the science lives in :mod:`curate.science.pies` and
:mod:`curate.science.stats`. Images arrive as uint8 arrays ``(n, 3, h, w)`` decoded once per run.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from curate.options import DEFAULT_EPOCHS, RunOptions
from curate.science.regions import GRID, REGIONS
from curate.population.models import prunable_parameters


PRUNE_SCHEDULES = ("independent", "chained")


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings shared by dense training and pruning fine-tuning.

    Attributes:
        epochs: dense training epochs.
        finetune_epochs: epochs of fine-tuning per pruning level; the sparsity ramps up over the first
            ``ramp_fraction`` of them (Zhu & Gupta 2017 cubic schedule) and holds for the rest.
        batch_size, lr, finetune_lr, weight_decay, momentum: SGD (Nesterov) settings; the learning
            rate warms up linearly for the first 15% of steps, then decays linearly to zero.
        hflip: random horizontal flips (turn off for digits, text, or anything chirality matters for).
        crop_padding: random translation by up to this many pixels (reflect padding).
        ramp_fraction: share of fine-tuning steps over which sparsity ramps up.
        mask_updates: how many times the pruning mask is recomputed during the ramp.
        whiten: start a resnet-small's first convolution as a whitening of its training images' patches
            (:func:`curate.population.models.whiten_first_conv`), unless it starts from a checkpoint.
        prune_schedule: ``independent``: every pruning level is its own copy of the dense network, ramped
            from 0; ``chained``: each level continues from the previous level's copy (30% -> 50% -> ...),
            ramping from its sparsity, one gradual schedule with fine-tuning between (Zhu & Gupta 2017).
        label_smoothing: share of each training target spread evenly over the classes (Szegedy et al.
            2016), as airbench trains. Off by default: it adds accuracy but lowers the recall of the
            label-noise flags (docs/benchmarks.md, "Training recipe").
        flip_test: predictions average each image with its mirror image (test-time augmentation; only
            with ``hflip``, for images whose mirror is the same class).
        forget_epochs: epochs a copy of each dense network and pruned copy trains on its held-out images, whose
            predictions on its training images are the in-sample view of the label-noise score where
            the networks memorised their labels (:func:`forget_on_second_split`,
            :func:`curate.science.flags.memorisation`).
    """

    epochs: int = DEFAULT_EPOCHS
    finetune_epochs: int = RunOptions.finetune_epochs
    batch_size: int = 128
    lr: float = 0.1
    finetune_lr: float = 0.04
    weight_decay: float = 5e-4
    momentum: float = 0.9
    hflip: bool = True
    crop_padding: int = 2
    ramp_fraction: float = 0.6
    mask_updates: int = 8
    forget_epochs: int = 1
    label_smoothing: float = 0.0
    flip_test: bool = True
    prune_schedule: str = RunOptions.prune_schedule
    whiten: bool = False

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("finetune_epochs", 1), ("batch_size", 2), ("mask_updates", 1),
                          ("crop_padding", 0), ("forget_epochs", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer of at least {low}"
                                 f"{' (batch norm needs two images a batch)' if name == 'batch_size' else ''}, "
                                 f"got {value!r}.")
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}.")
        if self.prune_schedule not in PRUNE_SCHEDULES:
            raise ValueError(f"prune_schedule must be one of {', '.join(PRUNE_SCHEDULES)}, got {self.prune_schedule!r}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing!r}.")
        if not 0.0 < self.ramp_fraction <= 1.0:
            raise ValueError(f"ramp_fraction must lie in (0, 1], got {self.ramp_fraction!r}.")


DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N"


def check_device(device: str) -> str:
    """``device`` if curate can run on it; otherwise a ValueError naming the choices."""
    import re

    if device in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", device or ""):
        return device
    raise ValueError(f"Unknown device {device!r}; choose {DEVICE_HELP}.")


def resolve_device(device: str = "auto") -> torch.device:
    check_device(device)
    if device == "auto":
        return resolve_device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} requested but CUDA is not available; use --device cpu.")
    if device.startswith("cuda"):
        # A run trains a few shapes thousands of times: timing cuDNN's algorithms once for each pays.
        torch.backends.cudnn.benchmark = True
    return torch.device(device)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: without it a GPU timing measures only the launch of the kernels."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def configure_threads() -> None:
    """Use every core, unless OMP_NUM_THREADS says otherwise (to share the machine; Ray sets it to a task's CPUs).

    Set even when torch already runs: CPU convolutions sum in an order that depends on the thread count, so
    the same job gives the same bits only with the same number of threads, wherever it runs.
    """
    from curate.population.executor import cpu_budget

    threads = cpu_budget()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class Normalizer:
    """uint8 pixels -> float tensors standardised with the dataset's channel statistics."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32):
        self.mean = torch.as_tensor(mean, dtype=dtype, device=device).view(1, 3, 1, 1)
        self.std = torch.as_tensor(std, dtype=dtype, device=device).view(1, 3, 1, 1)
        self.device, self.dtype = device, dtype

    @staticmethod
    def channel_stats(pixels: np.ndarray, max_images: int = 5000) -> tuple[np.ndarray, np.ndarray]:
        step = max(1, len(pixels) // max_images)
        sample = np.asarray(pixels[::step], dtype=np.float32) / 255.0
        return sample.mean(axis=(0, 2, 3)), sample.std(axis=(0, 2, 3)) + 1e-3

    def __call__(self, batch_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
        if not isinstance(batch_uint8, torch.Tensor):
            batch_uint8 = np.asarray(batch_uint8)
            if not batch_uint8.flags.writeable:  # pixels shared read-only with worker processes: torch warns
                batch_uint8 = batch_uint8.copy()
        x = to_device(torch.as_tensor(batch_uint8), self.device).to(self.dtype).div_(255.0)
        return (x - self.mean) / self.std


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; a CPU tensor goes to a GPU through pinned memory without waiting.

    A plain copy from pageable memory makes the CPU wait until the GPU has finished all the work queued before it,
    so the next training step cannot be queued while this one runs.
    """
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def augment(x: torch.Tensor, generator: torch.Generator, padding: int, hflip: bool) -> torch.Tensor:
    """Random translation (reflect-padded crop) and optional horizontal flip, per image."""
    return augmented(x, *augmentation_draws(len(x), generator, padding, hflip), padding)


def augmentation_draws(n: int, generator: torch.Generator, padding: int, hflip: bool
                       ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Which of ``n`` images to flip and each one's ``(dx, dy)`` shift, drawn on the CPU from ``generator`` (so an
    image gets the same augmentation on every device); None where that augmentation is off."""
    flip = torch.rand(n, generator=generator) < 0.5 if hflip else None
    shifts = torch.randint(0, 2 * padding + 1, (2, n), generator=generator) if padding > 0 else None
    return flip, shifts


def augmented(x: torch.Tensor, flip: torch.Tensor | None, shifts: torch.Tensor | None, padding: int) -> torch.Tensor:
    """``x`` with the drawn flips and shifts applied (:func:`augmentation_draws`); the crops are one gather, not one
    copy an image (a GPU would wait on thousands of small copies a step)."""
    n, c, h, w = x.shape
    if flip is not None:
        x = torch.where(to_device(flip, x.device).view(n, 1, 1, 1), x.flip(3), x)
    if shifts is not None:
        padded = F.pad(x, (padding,) * 4, mode="reflect")
        shifts = to_device(shifts, x.device)
        rows = (shifts[1][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (shifts[0][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        images = torch.arange(n, device=x.device)[:, None, None, None]
        x = padded[images, torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    return x


def _lr_at(step: int, total: int, peak: float, warmup_fraction: float = 0.15) -> float:
    warmup = max(1, int(total * warmup_fraction))
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def cubic_sparsity(step: int, ramp_steps: int, final_sparsity: float, initial_sparsity: float = 0.0) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) * (1 - t / T)^3, from ``initial_sparsity`` to
    ``final_sparsity`` at ``ramp_steps``."""
    progress = min(1.0, step / max(1, ramp_steps))
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


def global_magnitude_masks(model: nn.Module, sparsity: float | list[float]) -> dict[str, torch.Tensor]:
    """Masks keeping the largest-magnitude ``1 - sparsity`` share of all prunable weights together.

    A model of several stacked networks (:class:`curate.population.models.SmallResNet` with ``networks``)
    takes one sparsity per network, and each network is pruned among its own weights.
    """
    params = prunable_parameters(model)
    networks = getattr(model, "networks", 1)
    targets = [sparsity] * networks if np.isscalar(sparsity) else list(sparsity)
    if len(targets) != networks:
        raise ValueError(f"{len(targets)} sparsities for a model of {networks} networks.")
    magnitudes = torch.cat([p.detach().abs().reshape(networks, -1) for _, p in params], dim=1)
    thresholds = []
    for row, target in zip(magnitudes, targets):
        n_prune = int(round(target * row.numel()))
        # At least single precision: half-precision magnitudes would tie at the threshold.
        row = row.cpu() if row.dtype in (torch.float32, torch.float64) else row.float().cpu()
        thresholds.append(float("-inf") if n_prune == 0 else torch.kthvalue(row, n_prune).values.item())
    if networks == 1 and thresholds[0] == float("-inf"):
        return {name: torch.ones_like(p, dtype=torch.bool) for name, p in params}
    limit = torch.tensor(thresholds, dtype=magnitudes.dtype, device=magnitudes.device).view(networks, 1)
    return {name: (p.detach().abs().reshape(networks, -1) > limit).reshape(p.shape) for name, p in params}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, param in prunable_parameters(model):
            param.mul_(masks[name])


def measured_sparsity(model: nn.Module) -> float:
    params = prunable_parameters(model)
    zeros = sum(int((p == 0).sum()) for _, p in params)
    return zeros / sum(p.numel() for _, p in params)


def network_sparsities(model: nn.Module) -> list[float]:
    """The share of zero weights of each network of a model (one, or several stacked)."""
    networks = getattr(model, "networks", 1)
    rows = torch.cat([p.detach().reshape(networks, -1) for _, p in prunable_parameters(model)], dim=1)
    return [int(zeros) / rows.shape[1] for zeros in (rows == 0).sum(dim=1)]


@dataclass
class FitPart:
    """One network's share of a fit: its images and labels, seed, target sparsity (0: not pruned), and
    the optional margin accumulator and sampling weights of :func:`train_dense`."""

    pixels: np.ndarray
    labels: np.ndarray
    seed: int
    final_sparsity: float = 0.0
    margins: np.ndarray | None = None
    sample_weights: np.ndarray | None = None


def _fit(model: nn.Module, pixels, labels, normalize: Normalizer, settings: TrainSettings, epochs: int, peak_lr: float,
         seed: int, final_sparsity: float = 0.0, progress=None, margins: np.ndarray | None = None,
         sample_weights: np.ndarray | None = None, **options) -> None:
    """:func:`fit` of one network."""
    fit(model, [FitPart(pixels, labels, seed, final_sparsity, margins, sample_weights)], normalize, settings, epochs,
        peak_lr, progress=progress, **options)


def fit(
    model: nn.Module,
    parts: list[FitPart],
    normalize: Normalizer,
    settings: TrainSettings,
    epochs: int,
    peak_lr: float,
    *,
    progress=None,
    fixed_masks: dict[str, torch.Tensor] | None = None,
    pruner=None,
    filter_fraction: tuple[float, float] = (0.0, 0.0),
    teacher: nn.Module | None = None,
    distill: tuple[float, float] = (4.0, 0.9),
) -> None:
    """Train ``model`` in place: one network, or several stacked as one (``model.networks``, one part each).

    Every network draws its batches and augmentations from its own generator seeded with its part's
    seed, exactly as it would alone, and its loss is its own: stacked, each network follows the steps it
    would take alone, up to the order of floating-point sums. Filter pruning (``pruner``) and
    distillation (``teacher``) take one network.
    """
    networks = getattr(model, "networks", 1)
    if len(parts) != networks:
        raise ValueError(f"{len(parts)} parts of a fit for a model of {networks} networks.")
    if networks > 1 and (pruner is not None or teacher is not None):
        raise ValueError("Filter pruning and distillation train one network at a time.")
    device = normalize.device
    generators = [torch.Generator().manual_seed(part.seed) for part in parts]
    sizes = [len(part.labels) for part in parts]
    batch = min(settings.batch_size, sizes[0])
    per_epoch = steps_per_epoch(sizes[0], settings.batch_size)
    if any(min(settings.batch_size, n) != batch or steps_per_epoch(n, settings.batch_size) != per_epoch for n in sizes):
        raise ValueError(f"Networks trained together need the same batches per epoch; their images: {sizes}.")
    total = per_epoch * epochs
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    optimizer = NesterovSGD([(decay, settings.weight_decay), (no_decay, 0.0)], momentum=settings.momentum)
    labels_t = [torch.as_tensor(part.labels, dtype=torch.long) for part in parts]
    ramp_steps = int(total * settings.ramp_fraction)
    update_every = max(1, ramp_steps // max(1, settings.mask_updates))
    masks = fixed_masks
    pruning = any(part.final_sparsity > 0 for part in parts)
    # A copy that is already pruned (the previous level of a chained schedule) ramps on from its sparsity.
    initial = network_sparsities(model) if pruning else [0.0] * networks
    initial = [start if part.final_sparsity > 0 else 0.0 for start, part in zip(initial, parts)]
    use_amp = device.type == "cuda"
    model.train()
    step = 0
    draws = [None if part.sample_weights is None else torch.as_tensor(np.asarray(part.sample_weights, dtype=np.float64))
             for part in parts]
    # Every network's margins in one table, network g's images from offsets[g]: one update a step for all of them.
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    margin_sums = (torch.zeros(offsets[-1], 2, dtype=torch.float64, device=device)
                   if any(part.margins is not None for part in parts) else None)
    for _ in range(epochs):
        # Weighted training draws each epoch's n images with replacement, as WeightedRandomSampler does.
        orders = [torch.randperm(n, generator=gen) if draw is None else torch.multinomial(
            draw, n, replacement=True, generator=gen) for n, draw, gen in zip(sizes, draws, generators)]
        for b in range(per_epoch):
            rows, images, flips, shifts = [], [], [], []
            for part, order, gen in zip(parts, orders, generators):
                idx = order[b * batch:(b + 1) * batch].numpy()
                idx.sort()  # sorted reads are much faster on a memmap
                rows.append(idx)
                images.append(part.pixels[idx])
                flip, shift = augmentation_draws(len(idx), gen, settings.crop_padding, settings.hflip)
                flips.append(flip)
                shifts.append(shift)
            # The networks' batches travel, are normalised and augmented as one: a few operations a step, not a few
            # a network (the launches a GPU waits on).
            x = augmented(normalize(np.concatenate(images) if networks > 1 else images[0]),
                          None if flips[0] is None else torch.cat(flips),
                          None if shifts[0] is None else torch.cat(shifts, dim=1), settings.crop_padding)
            if networks > 1:  # network g's images in channels 3g..3g+2
                x = x.view(networks, batch, *x.shape[1:]).transpose(0, 1).reshape(batch, -1, *x.shape[2:])
            y = to_device(torch.cat([labels[idx] for labels, idx in zip(labels_t, rows)]), device)
            optimizer.lr = _lr_at(step, total, peak_lr)
            if pruner is not None and 0 < step <= ramp_steps and step % update_every == 0:
                # Channels go on the unstructured levels' cubic ramp (here a share of channels, not weights).
                pruner.prune_to(cubic_sparsity(step, ramp_steps, filter_fraction[1], filter_fraction[0]))
            if pruning and (masks is None or (step <= ramp_steps and step % update_every == 0)):
                masks = global_magnitude_masks(model, [
                    cubic_sparsity(step + update_every, ramp_steps, part.final_sparsity, start)
                    for part, start in zip(parts, initial)])
                apply_masks(model, masks)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = model(x)
                logits = out if networks == 1 else out.transpose(0, 1).reshape(networks * batch, -1)
                # The sum of each network's own mean loss (every batch is the same size): every network gets exactly
                # its own gradient.
                loss = F.cross_entropy(logits, y, label_smoothing=settings.label_smoothing) * networks
                if teacher is not None:
                    loss = distillation_loss(out, teacher(x), loss, *distill)
            if margin_sums is not None:
                # Summed where the networks train: a copy back every step would make the CPU wait on the GPU.
                margin = assigned_margins(logits.detach().float(), y).to(margin_sums.dtype)
                rows_all = torch.as_tensor(np.concatenate([idx + start for idx, start in zip(rows, offsets)]))
                margin_sums.index_add_(0, to_device(rows_all, device), torch.stack([margin, torch.ones_like(margin)], 1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if masks is not None:
                apply_masks(model, masks)
            step += 1
            if progress is not None:
                progress(networks)
    if margin_sums is not None:
        margin_sums = margin_sums.cpu().numpy()
        for part, start, end in zip(parts, offsets[:-1], offsets[1:]):
            if part.margins is not None:
                part.margins += margin_sums[start:end]
    if pruner is not None:
        pruner.prune_to(filter_fraction[1])  # the ramp's last update may stop short of the target
    if pruning:
        # The last mask update may land a step short of the target: finish exactly at it.
        apply_masks(model, global_magnitude_masks(model, [part.final_sparsity for part in parts]))


class NesterovSGD:
    """Stochastic gradient descent with Nesterov momentum and a weight decay per group of parameters: the
    arithmetic of ``torch.optim.SGD(groups, momentum=m, nesterov=True)``, bit for bit (tested), for the
    parameters that have a gradient. curate's own because torch's optimizers import ``torch._dynamo`` when
    first used, in every process that trains (the cost estimate's and each worker's): 1.3 s in a fresh process,
    more beside other work (``scripts/bench_step.py``)."""

    def __init__(self, groups: list[tuple[list[torch.Tensor], float]], *, momentum: float, lr: float = 0.0):
        self.groups = [(list(params), float(weight_decay)) for params, weight_decay in groups]
        self.momentum, self.lr = float(momentum), float(lr)
        self.buffers: dict[torch.Tensor, torch.Tensor] = {}  # a parameter's momentum, from its first step

    def zero_grad(self) -> None:
        for params, _ in self.groups:
            for p in params:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for params, weight_decay in self.groups:
            params = [p for p in params if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if weight_decay:
                grads = torch._foreach_add(grads, params, alpha=weight_decay)
            if all(p in self.buffers for p in params):
                buffers = [self.buffers[p] for p in params]
                torch._foreach_mul_(buffers, self.momentum)
                torch._foreach_add_(buffers, grads)
            else:  # the first step: the momentum starts as the gradient
                buffers = [self.buffers[p].mul_(self.momentum).add_(g) if p in self.buffers
                           else self.buffers.setdefault(p, g.detach().clone()) for p, g in zip(params, grads)]
            torch._foreach_add_(params, torch._foreach_add(grads, buffers, alpha=self.momentum), alpha=-self.lr)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, label_loss: torch.Tensor,
                      temperature: float, soft_weight: float) -> torch.Tensor:
    """Hinton et al. (2015): ``soft_weight * T^2 * KL(teacher_T || student_T) + (1 - soft_weight) * label_loss``,
    with both networks' logits softened by temperature ``T``; the ``T^2`` keeps the soft targets' gradients
    on the scale of the labels' as ``T`` changes."""
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), F.log_softmax(teacher_logits.detach().float() / t,
                                                                                     dim=1),
                    reduction="batchmean", log_target=True)
    return soft_weight * t * t * soft + (1.0 - soft_weight) * label_loss


def assigned_margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logit of the assigned label minus the largest other logit, per row (Pleiss et al. 2020)."""
    assigned = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return assigned - others


def fit_together(models: list[nn.Module], parts: list[FitPart], normalize: Normalizer, settings: TrainSettings,
                 epochs: int, peak_lr: float, *, together: int = 1, progress=None,
                 fixed_masks: list[dict[str, torch.Tensor] | None] | None = None) -> None:
    """:func:`fit` each of ``models`` on its part, in place: ``together`` at a time stacked as one network
    (:func:`curate.population.models.stack_networks`) where they stack and take the same steps, else one
    after another. ``fixed_masks``: each network's zeros to keep, or None."""
    from curate.population.models import stack_networks, stackable, unstack_networks

    fixed_masks = fixed_masks or [None] * len(models)
    for start in range(0, len(models), max(1, together)):
        chunk = slice(start, start + max(1, together))
        group, group_parts, group_masks = models[chunk], parts[chunk], fixed_masks[chunk]
        sizes = {(min(settings.batch_size, len(p.labels)), steps_per_epoch(len(p.labels), settings.batch_size))
                 for p in group_parts}
        if len(group) > 1 and len(sizes) == 1 and stackable(group):
            stacked = stack_networks(group)
            weights = [dict(prunable_parameters(net)) for net in group]
            masks = None if all(m is None for m in group_masks) else {  # a network without zeros to keep: all ones
                name: torch.cat([m[name] if m is not None else torch.ones_like(w[name], dtype=torch.bool)
                                 for m, w in zip(group_masks, weights)]) for name in weights[0]}
            fit(stacked, group_parts, normalize, settings, epochs, peak_lr, progress=progress, fixed_masks=masks)
            unstack_networks(stacked, group)
        else:
            for model, part, masks in zip(group, group_parts, group_masks):
                fit(model, [part], normalize, settings, epochs, peak_lr, progress=progress, fixed_masks=masks)


def train_dense(model, pixels, labels, normalize, settings: TrainSettings, seed: int, progress=None,
                margins: np.ndarray | None = None, sample_weights: np.ndarray | None = None) -> nn.Module:
    """Train ``model`` from its initialisation on ``pixels, labels``; returns it in eval mode.

    With ``margins`` (float64, ``(n, 2)``), adds each training image's assigned-label margin, as
    seen in every training step that drew it, to column 0 and the count of such steps to column 1:
    their ratio is the image's area under the margin (AUM), recorded at no extra cost.
    With ``sample_weights`` (one per image, non-negative), every epoch draws its images with
    replacement in proportion to them.
    """
    train_networks([model], [FitPart(pixels, labels, seed, margins=margins, sample_weights=sample_weights)],
                   normalize, settings, progress=progress)
    return model


def initialise(model: nn.Module, pixels, normalize: Normalizer, settings: TrainSettings) -> nn.Module:
    """What a network trained from scratch starts from beyond its random weights: the whitening of its
    first layer when ``settings.whiten`` (on evenly spaced images of its own training set)."""
    if settings.whiten:
        from curate.population.models import whiten_first_conv

        rows = np.linspace(0, len(pixels) - 1, min(len(pixels), WHITENING_IMAGES)).astype(int)
        whiten_first_conv(model, normalize(np.asarray(pixels[rows])))
    return model


WHITENING_IMAGES = 512


def train_networks(models: list[nn.Module], parts: list[FitPart], normalize: Normalizer, settings: TrainSettings, *,
                   together: int = 1, progress=None) -> None:
    """:func:`train_dense` of each of ``models`` on its part, ``together`` at a time (:func:`fit_together`);
    leaves them in eval mode."""
    fit_together(models, parts, normalize, settings, settings.epochs, settings.lr, together=together,
                 progress=progress)
    for model in models:
        model.eval()


def pruned_copies(starts: list[nn.Module], parts: list[FitPart], normalize: Normalizer, settings: TrainSettings,
                  sparsity: float, *, together: int = 1, progress=None) -> list[nn.Module]:
    """A copy of each of ``starts`` pruned to ``sparsity``, ramped up gradually while fine-tuning on its part's
    images with its seed (sparsity 0: fine-tuned only)."""
    copies = [copy.deepcopy(start) for start in starts]
    fit_together(copies, [FitPart(p.pixels, p.labels, p.seed, final_sparsity=sparsity) for p in parts], normalize,
                 settings, settings.finetune_epochs, settings.finetune_lr, together=together, progress=progress)
    return [c.eval() for c in copies]


def prune_and_finetune(dense: nn.Module, pixels, labels, normalize, settings: TrainSettings,
                       sparsity: float, seed: int, progress=None) -> nn.Module:
    """A pruned copy of ``dense`` at ``sparsity``, ramped up gradually while fine-tuning.

    ``dense`` may itself be a pruned copy at a lower sparsity (the chained schedule,
    ``settings.prune_schedule``): the ramp starts from its sparsity and its zeros stay zero.
    """
    return pruned_copies([dense], [FitPart(pixels, labels, seed)], normalize, settings, sparsity, progress=progress)[0]


def level_seed(seed: int, level: int) -> int:
    """The fine-tuning seed of compression level ``level`` (0 first) of the network trained with ``seed``."""
    return seed + 7919 * (level + 1)


def prune_levels_of(dense: list[nn.Module], parts: list[FitPart], normalize: Normalizer, settings: TrainSettings,
                    sparsities, *, together: int = 1, progress=None) -> list[list[nn.Module]]:
    """:func:`prune_levels` of every network of ``dense`` on its part; per network, its copy at each level."""
    levels: list[list[nn.Module]] = []
    for level, sparsity in enumerate(sparsities):
        starts = levels[-1] if levels and settings.prune_schedule == "chained" else dense
        levels.append(pruned_copies(starts, [FitPart(p.pixels, p.labels, level_seed(p.seed, level)) for p in parts],
                                    normalize, settings, sparsity, together=together, progress=progress))
    return [list(copies) for copies in zip(*levels)] if levels else [[] for _ in dense]


def prune_levels(dense: nn.Module, pixels, labels, normalize, settings: TrainSettings, sparsities, seed: int,
                 progress=None) -> list[nn.Module]:
    """A pruned copy of ``dense`` at each of ``sparsities`` (ascending), level ``i`` fine-tuned with seed
    :func:`level_seed`: each from ``dense`` itself, or from the previous level's copy when
    ``settings.prune_schedule`` is ``chained``."""
    return prune_levels_of([dense], [FitPart(pixels, labels, seed)], normalize, settings, sparsities,
                           progress=progress)[0]


def filter_prune_and_finetune(start: nn.Module, pixels, labels, normalize, settings: TrainSettings,
                              fraction: float, seed: int, *, criterion: str = "taylor",
                              dense_channels: dict[str, int] | None = None, initial_fraction: float = 0.0,
                              progress=None) -> nn.Module:
    """A copy of ``start`` with ``fraction`` of the channels of every channel group removed
    (:mod:`curate.population.structured`), a few at a time while fine-tuning on ``pixels, labels`` with
    the pruning levels' schedule; returns the physically smaller network.

    ``start`` may be a smaller copy already (a chained schedule): pass the dense network's channel
    counts as ``dense_channels`` and the share it already lost as ``initial_fraction``.
    """
    from curate.population.structured import FilterPruner

    model = copy.deepcopy(start)
    with FilterPruner(model, criterion, dense_channels) as pruner:
        _fit(model, pixels, labels, normalize, settings, settings.finetune_epochs, settings.finetune_lr, seed,
             progress=progress, pruner=pruner, filter_fraction=(initial_fraction, fraction))
    return pruner.finish().eval()


def filter_levels(dense: nn.Module, pixels, labels, normalize, settings: TrainSettings, fractions, seed: int, *,
                  criterion: str = "taylor", progress=None) -> list[nn.Module]:
    """A filter-pruned copy of ``dense`` at each of ``fractions`` (ascending), level ``i`` fine-tuned with the seed
    of :func:`prune_levels`' level ``i``, so that the two kinds differ by how they compress; each from ``dense``,
    or from the previous level's copy when ``settings.prune_schedule`` is ``chained``."""
    from curate.population.structured import channel_counts

    copies: list[nn.Module] = []
    dense_channels = channel_counts(dense) if len(fractions) else None
    for level, fraction in enumerate(fractions):
        chained = bool(copies) and settings.prune_schedule == "chained"
        copies.append(filter_prune_and_finetune(
            copies[-1] if chained else dense, pixels, labels, normalize, settings, fraction, level_seed(seed, level),
            criterion=criterion, dense_channels=dense_channels, initial_fraction=fractions[level - 1] if chained else 0.0,
            progress=progress))
    return copies


def distilled_students(teacher: nn.Module, pixels, labels, normalize, settings: TrainSettings, shapes, n_classes: int,
                       seed: int, *, progress=None) -> list[nn.Module]:
    """One resnet-small student of ``teacher`` per ``(width, stages)`` in ``shapes``, each initialised and trained
    with its own seed (:func:`distill_student`)."""
    from curate.population.models import SmallResNet

    students = []
    for level, (width, stages) in enumerate(shapes):
        student_seed = seed + 7919 * (50 + level)
        torch.manual_seed(student_seed)
        student = SmallResNet(n_classes, width, stages).to(normalize.device).to(memory_format=torch.channels_last)
        students.append(distill_student(teacher, student, pixels, labels, normalize, settings, student_seed,
                                        progress=progress))
    return students


def distill_student(teacher: nn.Module, student: nn.Module, pixels, labels, normalize, settings: TrainSettings,
                    seed: int, *, temperature: float = 4.0, soft_weight: float = 0.9, progress=None) -> nn.Module:
    """``student`` trained from its initialisation on ``pixels, labels`` and on ``teacher``'s outputs for the
    same augmented images (:func:`distillation_loss`), for as many epochs as the dense network trained."""
    teacher.eval()
    _fit(student, pixels, labels, normalize, settings, settings.epochs, settings.lr, seed, progress=progress,
         teacher=_Frozen(for_inference(teacher)), distill=(temperature, soft_weight))
    return student.eval()


class _Frozen:
    """Calls a network in eval mode without autograd (a teacher's targets)."""

    def __init__(self, model: nn.Module):
        self.model = model

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def control_copy(dense: nn.Module, pixels, labels, normalize, settings: TrainSettings, seed: int,
                 progress=None) -> nn.Module:
    """The control level's copy of ``dense``: fine-tuned exactly as the first pruning level of
    :func:`prune_levels` (same epochs, learning rate and seed), but at sparsity 0.

    Whatever its predictions change is what fine-tuning and a small population change on their own,
    the noise floor against which a pruning level's PIEs mean something.
    """
    return control_copies([dense], [FitPart(pixels, labels, seed)], normalize, settings, progress=progress)[0]


def control_copies(dense: list[nn.Module], parts: list[FitPart], normalize: Normalizer, settings: TrainSettings, *,
                   together: int = 1, progress=None) -> list[nn.Module]:
    """:func:`control_copy` of every network of ``dense`` on its part."""
    return pruned_copies(dense, [FitPart(p.pixels, p.labels, level_seed(p.seed, 0)) for p in parts], normalize,
                         settings, 0.0, together=together, progress=progress)


def forget_on_second_split(dense: nn.Module, pixels, labels, normalize, settings: TrainSettings, seed: int,
                           progress=None) -> nn.Module:
    """A copy of ``dense`` trained ``settings.forget_epochs`` more on images it never saw, with their labels.

    ``dense`` may be a pruned copy: its zero weights stay zero.

    Second-split forgetting (Maini et al. 2022): a label the network memorised, rather than learned
    from features its images share with others, is the first thing it unlearns here, so the copy's
    probability of each original training image's label reads as in-sample fit without the memory.
    """
    return forgotten_copies([dense], [FitPart(pixels, labels, seed)], normalize, settings, progress=progress)[0]


def forgotten_copies(networks: list[nn.Module], parts: list[FitPart], normalize: Normalizer, settings: TrainSettings,
                     *, together: int = 1, progress=None) -> list[nn.Module]:
    """:func:`forget_on_second_split` of each of ``networks`` on its part (the images it never saw)."""
    copies = [copy.deepcopy(net) for net in networks]
    # A pruned copy keeps its zeros: it is the compressed network that unlearns, not a regrown one.
    masks = [{name: p.detach() != 0 for name, p in prunable_parameters(c)} if measured_sparsity(c) > 0 else None
             for c in copies]
    fit_together(copies, parts, normalize, settings, settings.forget_epochs, settings.finetune_lr, together=together,
                 progress=progress, fixed_masks=masks)
    return [c.eval() for c in copies]


# On a CPU, predictions run fastest when a batch's first-layer activations stay in the cache: about
# 8 MiB of them (measured on resnet-small: at 32 px, width 32, 64 images a batch predict 16% faster per
# image than 512; at 16 px, width 16, batch size barely matters). A GPU wants large batches.
CPU_ACTIVATION_BYTES = 8 * 2 ** 20
PREDICT_BATCH = 512
GPU_ACTIVATION_BYTES, GPU_PREDICT_BATCH = 2 ** 30, 8192


def image_shape(pixels) -> tuple[int, ...]:
    """``(c, h, w)`` of the images of ``pixels`` (an array or a row view of one)."""
    return np.asarray(pixels[:1]).shape[1:]


def prediction_batch(model: nn.Module, shape: tuple[int, ...], device: torch.device, views: int = 1) -> int:
    """Images per forward pass when ``model`` predicts images of ``shape`` ``(c, h, w)`` on ``device``, each
    as ``views`` inputs in the same pass (image windows); on a CPU the pass's activations stay in the cache."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    channels = first.out_channels if first is not None else shape[0]
    per_image = 4 * channels * shape[-2] * shape[-1] * views
    # Each pass on a GPU is a few dozen launches whatever its size: large passes, as large as a first activation
    # of GPU_ACTIVATION_BYTES allows (small GPUs, large images).
    budget, most = ((CPU_ACTIVATION_BYTES, PREDICT_BATCH) if device.type == "cpu"
                    else (GPU_ACTIVATION_BYTES, GPU_PREDICT_BATCH // views))
    return int(np.clip(budget // max(1, per_image), max(1, 8 // views), most))


def for_inference(model: nn.Module) -> nn.Module:
    """``model`` in eval mode, with every batch norm that directly follows a convolution in a
    ``nn.Sequential`` folded into that convolution's weights (a copy; ``model`` is only put in eval mode).

    The same function up to float rounding (about 1e-6), for a tenth less work on a CPU: batch norm in
    eval mode is a per-channel affine map, which the convolution can apply for free. Pruned weights stay
    zero (a zero times the channel's scale).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    pairs = [(seq, i) for seq in model.modules() if isinstance(seq, nn.Sequential)
             for i in range(len(seq) - 1)
             if type(seq[i]) is nn.Conv2d and type(seq[i + 1]) is nn.BatchNorm2d and seq[i + 1].track_running_stats]
    if not pairs:
        return model
    folded = copy.deepcopy(model)
    by_name = {id(m): name for name, m in model.named_modules()}
    for seq, i in pairs:
        target = folded.get_submodule(by_name[id(seq)]) if by_name[id(seq)] else folded
        conv = fuse_conv_bn_eval(target[i], target[i + 1])
        if target[i].weight.is_contiguous(memory_format=torch.channels_last):
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
        target[i], target[i + 1] = conv, nn.Identity()
    return folded


@torch.no_grad()
def predict_probs(model: nn.Module, pixels: np.ndarray, normalize: Normalizer, batch_size: int | None = None,
                  flip: bool = False) -> np.ndarray:
    """Softmax probabilities ``(n, n_classes)`` as float32; with ``flip``, of the logits averaged over
    each image and its mirror image. ``batch_size`` None: :func:`prediction_batch`."""
    network = for_inference(model)
    use_amp = normalize.device.type == "cuda"
    batch_size = batch_size or prediction_batch(network, image_shape(pixels), normalize.device)
    out = []
    for start in range(0, len(pixels), batch_size):
        x = normalize(pixels[start:start + batch_size])
        with torch.autocast(normalize.device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = network(x)
            if flip:
                logits = (logits + network(x.flip(3))) / 2
        # Left where they were computed until the end: a copy back every pass would make the CPU wait for the GPU.
        out.append(torch.softmax(logits.float(), dim=1))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).cpu().numpy().astype(np.float32, copy=False)


def region_views(x: torch.Tensor) -> list[torch.Tensor]:
    """Each window of a batch ``(n, c, h, w)`` in :data:`REGIONS` order: half the side, at quarter
    steps, enlarged twice back to ``h x w``."""
    _, _, h, w = x.shape
    wh, ww = max(1, h // 2), max(1, w // 2)
    views = []
    for r in range(GRID):
        for c in range(GRID):
            top, left = r * (h - wh) // (GRID - 1), c * (w - ww) // (GRID - 1)
            views.append(F.interpolate(x[..., top:top + wh, left:left + ww], size=(h, w), mode="bilinear",
                                       align_corners=False))
    return views


@torch.no_grad()
def predict_regions(model: nn.Module, pixels: np.ndarray, normalize: Normalizer,
                    batch_size: int | None = None) -> np.ndarray:
    """Softmax probabilities of each image window (:data:`REGIONS`), ``(len(REGIONS), n, n_classes)`` float32.

    Two objects in one frame each fill a window at about the scale of a single-object image; one
    object fills none of them alone, so confident windows that disagree say more than one is there.
    """
    network = for_inference(model)
    use_amp = normalize.device.type == "cuda"
    batch_size = batch_size or prediction_batch(network, image_shape(pixels), normalize.device, views=len(REGIONS))
    out = []
    for start in range(0, len(pixels), batch_size):
        views = region_views(normalize(pixels[start:start + batch_size]))
        with torch.autocast(normalize.device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = network(torch.cat(views))
        out.append(torch.softmax(logits.float(), dim=1).reshape(len(REGIONS), len(views[0]), -1))
    if not out:
        return np.zeros((len(REGIONS), 0, 0), dtype=np.float32)
    return torch.cat(out, dim=1).cpu().numpy().astype(np.float32, copy=False)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Optimiser steps of one epoch over ``n_images`` (the last partial batch is dropped)."""
    return max(1, n_images // max(1, min(batch_size, n_images)))


def is_finite_model(model: nn.Module) -> bool:
    return all(math.isfinite(float(p.detach().abs().sum())) for p in model.parameters())
