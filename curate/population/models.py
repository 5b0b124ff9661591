"""Model factories: a compact ResNet for small images, any torchvision classifier, or the user's own.

A model spec is a string:

- ``resnet-small`` (default): a compact residual network in the spirit of airbench for 8-64 pixel
  images; ``resnet-small:W`` sets the base width (default 32).
- ``tv:NAME``: a torchvision classification model by name (``tv:resnet18``, ``tv:mobilenet_v3_small``),
  trained from scratch (pass ``tv:NAME:pretrained`` to start from torchvision's default weights,
  which needs internet access on first use).
- ``timm:NAME``: a `timm <https://github.com/huggingface/pytorch-image-models>`_ model (``timm`` must be
  installed); ``timm:NAME:pretrained`` starts from its default pretrained weights (internet on first use).
- ``package.module:factory``: a callable ``factory(num_classes: int) -> torch.nn.Module``.

Any of them can start from a local checkpoint instead (:func:`load_weights`, ``--weights PATH``): an
offline machine, or a private model. Every weight of the network is then fine-tuned and pruned, as the
paper prunes the whole trained network.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import nn


class GELU(nn.GELU):
    """``nn.GELU`` computed in the tensor's memory order. On a channels-last tensor torch's CPU kernel takes a
    slower path than on the same numbers seen as a contiguous NHWC array (torch 2.14; a prediction of
    resnet-small 1.06-1.14x faster for it, ``scripts/bench_step.py``), and rounds some values differently in
    the last bit: the same function, other bits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return F.gelu(x.permute(0, 2, 3, 1), approximate=self.approximate).permute(0, 3, 1, 2)
        return super().forward(x)


def _conv_bn(c_in: int, c_out: int, networks: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(networks * c_in, networks * c_out, 3, padding=1, bias=False, groups=networks),
        nn.BatchNorm2d(networks * c_out),
        GELU(),
    )


class _Residual(nn.Module):
    def __init__(self, width: int, networks: int = 1):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(width, width, networks), _conv_bn(width, width, networks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _GroupedLinear(nn.Linear):
    """``networks`` linear heads side by side: features ``(n, networks * in)`` -> logits ``(n, networks, out)``.

    Its weight is the heads' weights stacked, ``(networks * out, in)``, so pruning and the state dict
    see it as one linear layer.
    """

    def __init__(self, in_features: int, out_features: int, networks: int):
        super().__init__(in_features, networks * out_features)
        self.networks, self.per_network = networks, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        weight = self.weight.view(self.networks, self.per_network, self.in_features)
        out = torch.einsum("ngi,goi->ngo", x.reshape(n, self.networks, self.in_features), weight)
        return out + self.bias.view(self.networks, self.per_network)


class SmallResNet(nn.Module):
    """Three stages (width w, 2w, 4w), each a conv, a 2x2 max-pool and a residual block; ``stages`` sets
    how many (a shallower student, :func:`curate.population.train.distilled_students`).

    With ``networks`` > 1 it is that many such networks side by side, trained as one
    (:func:`curate.population.train.fit_together`): every convolution is grouped, one group per network, so no
    network sees another's channels, and batch norm normalises each network's channels over its own
    images. It reads ``(n, networks * 3, h, w)`` (network ``g``'s images in channels ``3g..3g+2``) and
    returns ``(n, networks, classes)``. Network ``g``'s weights are rows ``g`` of every tensor of the
    state dict split into ``networks`` equal parts along its first dimension.
    """

    def __init__(self, num_classes: int, width: int = 32, stages: int = 3, networks: int = 1):
        super().__init__()
        if stages < 1 or width < 1 or networks < 1:
            raise ValueError(f"SmallResNet needs a width, stages and networks of at least 1, got width {width}, "
                             f"stages {stages}, networks {networks}.")
        self.shape = (num_classes, width, stages)
        self.networks = networks
        widths = tuple(width * 2 ** s for s in range(stages))
        layers: list[nn.Module] = [_conv_bn(3, widths[0], networks)]
        c_in = widths[0]
        for w in widths:
            layers += [_conv_bn(c_in, w, networks), nn.MaxPool2d(2, ceil_mode=True), _Residual(w, networks)]
            c_in = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes) if networks == 1 else _GroupedLinear(c_in, num_classes, networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.amax(self.features(x), dim=(2, 3)))


@torch.no_grad()
def whiten_first_conv(model: nn.Module, images: torch.Tensor, eps: float = 5e-4) -> bool:
    """Start the first convolution of a :class:`SmallResNet` as a whitening of its input patches (airbench's
    initialisation, Jordan 2024): its filters are the leading eigenvectors of the patches' second moments,
    each scaled by one over the square root of its eigenvalue, with and without a sign flip, so that its
    first channels see decorrelated patches from the first step. ``images``: normalised images ``(n, 3, h, w)``
    of the network's own training images. Channels beyond twice the patch size keep their initialisation.
    Returns False (and leaves ``model`` alone) for any other model."""
    if type(model) is not SmallResNet or model.networks != 1:
        return False
    conv = model.features[0][0]
    filters = whitening_filters(images, conv.kernel_size, conv.out_channels // 2, eps)
    conv.weight[:len(filters)] = filters.to(conv.weight.dtype)
    return True


@torch.no_grad()
def whitening_filters(images: torch.Tensor, kernel_size: tuple[int, int], keep: int, eps: float = 5e-4) -> torch.Tensor:
    """``(2 * keep, c, *kernel_size)`` filters that whiten the patches of ``images`` ``(n, c, h, w)``: the ``keep``
    leading eigenvectors of the patches' second moments (at most as many as a patch has values), each over the
    square root of its eigenvalue, then the same with the sign flipped."""
    c = images.shape[1]
    patches = torch.nn.functional.unfold(images.float(), kernel_size).transpose(1, 2).reshape(
        -1, c * kernel_size[0] * kernel_size[1])
    moments = (patches.double().T @ patches.double()) / max(1, len(patches))
    eigenvalues, eigenvectors = torch.linalg.eigh(moments)  # ascending
    keep = min(keep, len(eigenvalues))
    filters = (eigenvectors[:, -keep:].flip(1) / torch.sqrt(eigenvalues[-keep:].flip(0) + eps)).T
    return torch.cat([filters, -filters]).reshape(2 * keep, c, *kernel_size)


def stackable(models: list[nn.Module]) -> bool:
    """Whether ``models`` are resnet-small networks of one shape, as built (not filter-pruned), which
    :func:`stack_networks` can train as one."""
    if not models or any(type(m) is not SmallResNet or m.networks != 1 for m in models):
        return False
    built = {k: v.shape for k, v in SmallResNet(*models[0].shape).state_dict().items()}
    return all({k: v.shape for k, v in m.state_dict().items()} == built for m in models)


def stack_networks(models: list[SmallResNet]) -> SmallResNet:
    """One :class:`SmallResNet` of ``len(models)`` networks holding copies of their weights and statistics,
    on the first one's device (see :func:`stackable`)."""
    first = next(models[0].parameters())
    stacked = SmallResNet(*models[0].shape, networks=len(models)).to(device=first.device, dtype=first.dtype)
    states = [m.state_dict() for m in models]
    # Batch norm's step counters are scalars, alike in networks that trained alike: the first one's.
    stacked.load_state_dict({name: value if value.ndim == 0 else torch.cat([s[name] for s in states])
                             for name, value in states[0].items()})
    return stacked.to(memory_format=torch.channels_last)


def unstack_networks(stacked: SmallResNet, models: list[SmallResNet]) -> None:
    """Copy each network of ``stacked`` back into ``models`` (as many, in order)."""
    for g, model in enumerate(models):
        model.load_state_dict({name: value if value.ndim == 0 else value.chunk(stacked.networks)[g]
                               for name, value in stacked.state_dict().items()})


def build_model(spec: str, num_classes: int) -> nn.Module:
    """Build a fresh model from ``spec`` (see the module docstring)."""
    if spec == "resnet-small" or spec.startswith("resnet-small:"):
        _, _, width = spec.partition(":")
        if width and not width.isdigit():
            raise ValueError(f"Model spec {spec!r}: the width after ':' must be an integer, e.g. resnet-small:32.")
        return SmallResNet(num_classes, int(width) if width else 32)
    if spec.startswith("tv:"):
        import torchvision

        parts = spec.split(":")
        name = parts[1]
        pretrained = len(parts) > 2 and parts[2] == "pretrained"
        available = torchvision.models.list_models(module=torchvision.models)
        if name not in available:
            raise ValueError(f"Unknown torchvision model {name!r}; choose one of: {', '.join(sorted(available))}.")
        if pretrained:
            model = torchvision.models.get_model(name, weights="DEFAULT")
            _replace_head(model, num_classes)
            return model
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if spec.startswith("timm:"):
        parts = spec.split(":")
        try:
            import timm
        except ImportError:
            raise ValueError(f"Model spec {spec!r} needs timm: pip install timm (or use tv:NAME).") from None
        if len(parts) < 2 or not parts[1]:
            raise ValueError(f"Model spec {spec!r}: name the timm model, e.g. timm:resnet18.")
        if parts[1] not in timm.list_models():
            raise ValueError(f"Unknown timm model {parts[1]!r}; see timm.list_models().")
        return timm.create_model(parts[1], pretrained=len(parts) > 2 and parts[2] == "pretrained",
                                 num_classes=num_classes)
    module_name, sep, attr = spec.partition(":")
    if not sep or not attr:
        raise ValueError(
            f"Model spec {spec!r} not understood. Use 'resnet-small', 'tv:<torchvision name>', "
            "'timm:<timm name>' or 'package.module:factory'."
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Could not load model factory {spec!r}: {exc}") from exc
    model = factory(num_classes)
    if not isinstance(model, nn.Module):
        raise ValueError(f"Model factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module.")
    return model


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the final linear layer of a pretrained torchvision classifier for ``num_classes``."""
    for name in ("fc", "classifier", "head", "heads"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear):
            setattr(model, name, nn.Linear(head.in_features, num_classes))
            return
        if isinstance(head, nn.Sequential):
            for i in range(len(head) - 1, -1, -1):
                if isinstance(head[i], nn.Linear):
                    head[i] = nn.Linear(head[i].in_features, num_classes)
                    return
    raise ValueError(f"Could not find the classification head of {type(model).__name__} to replace.")


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The convolution and linear layers: what pruning, quantization and the footprint count act on."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def prunable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Weights that global magnitude pruning acts on: conv and linear weight tensors."""
    return [
        (f"{module_name}.weight", module.weight)
        for module_name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]


def load_weights(model: nn.Module, path) -> list[str]:
    """Load the checkpoint at ``path`` into ``model``; returns the names of the weights it left as initialised.

    The checkpoint is a ``state_dict`` saved with ``torch.save`` (or a dict holding one under
    ``state_dict`` or ``model``, as training scripts often save). Weights whose shape differs from the
    model's are left out: the classification head of a network trained on other classes is the usual
    case. A checkpoint that matches none of the model's weights is an error naming the file.
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--weights {path}: no such file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise ValueError(f"--weights {path} is not a PyTorch checkpoint torch.load can read: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"--weights {path} holds a {type(state).__name__}, not a state_dict.")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel/DDP
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not usable:
        raise ValueError(f"--weights {path} matches none of the weights of the model (its first keys: "
                         f"{', '.join(list(state)[:3])}; the model's: {', '.join(list(own)[:3])}); "
                         "check --model.")
    model.load_state_dict(usable, strict=False)
    return [k for k in own if k not in usable]
