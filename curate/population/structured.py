"""Structured (filter) pruning: whole channels ranked, masked while fine-tuning, then removed.

Unstructured pruning zeroes single weights and leaves the network's shape, and its cost, as it was.
Structured pruning removes whole convolution filters, so the copy is a smaller dense network that really
runs faster. Following Molchanov et al. (ICLR 2017), channels are removed a few at a time while the
network fine-tunes on its own training folds, ranked by either

- ``taylor``: the first-order Taylor estimate of the loss change when a feature map is zeroed,
  ``|mean over positions of (activation * d loss / d activation)|`` per image, averaged over the images
  seen since the last removal (Molchanov et al., eq. 8); or
- ``l1``: the L1 norm of the channel's filter weights (Li et al., ICLR 2017), summed over the filters
  that write the channel.

Channels are ranked within each channel group, and every group keeps the same share of its channels,
so a level's architecture follows from its name (``filter50``: half the channels of every group).
Molchanov et al. rank across layers after normalising each layer's scores; ranking within a group
gives up that freedom for a copy whose size does not depend on the data.

A *channel group* is a set of channels that must go together: in a residual stage, the stage's
transition convolution and the residual block's second convolution both write the stream that the
skip connection adds, so channel ``c`` of the stage is removed from both at once, and from every
convolution (or the classifier) that reads it. Groups are known for curate's ``resnet-small`` models
(:func:`channel_groups`); other architectures are rejected with a message.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from curate.options import FILTER_CRITERIA


@dataclass
class ChannelGroup:
    """Channels removed together.

    Attributes:
        name: e.g. ``stem``, ``stage1``, ``stage1.inner``.
        producers: ``conv -> batch norm -> activation`` blocks that write these channels; their outputs are
            masked while fine-tuning.
        measure: the module whose output is the group's feature map (the Taylor criterion's activation).
        consumers: the modules that read the channels: a convolution (its input channels) or the
            classifier (its input features).
        dense_channels: the channel count of the dense network, which a level's share refers to.
    """

    name: str
    producers: list[nn.Sequential]
    measure: nn.Module
    consumers: list[nn.Module]
    dense_channels: int
    alive: torch.Tensor = field(default=None)  # bool (channels,), set by FilterPruner

    @property
    def channels(self) -> int:
        return self.producers[0][0].out_channels


def channel_groups(model: nn.Module, dense_channels: dict[str, int] | None = None) -> list[ChannelGroup]:
    """The channel groups of a ``resnet-small`` network (see the module docstring).

    ``dense_channels`` (group name -> count) for a copy that is already smaller than its dense network.
    """
    from curate.population.models import SmallResNet

    if not isinstance(model, SmallResNet):
        raise ValueError(f"Filter pruning knows the channel groups of curate's resnet-small models only, not of "
                         f"{type(model).__name__}; use --filter-prune none with this --model.")
    f = model.features
    stages = [(f[1 + 3 * s], f[3 + 3 * s]) for s in range((len(f) - 1) // 3)]
    groups = [ChannelGroup("stem", [f[0]], f[0], [stages[0][0][0]], 0)]
    for s, (transition, residual) in enumerate(stages):
        reader = stages[s + 1][0][0] if s + 1 < len(stages) else model.head
        groups.append(ChannelGroup(f"stage{s + 1}", [transition, residual.body[1]], residual,
                                   [residual.body[0][0], reader], 0))
        groups.append(ChannelGroup(f"stage{s + 1}.inner", [residual.body[0]], residual.body[0],
                                   [residual.body[1][0]], 0))
    for g in groups:
        g.dense_channels = (dense_channels or {}).get(g.name, g.channels)
        g.alive = torch.ones(g.channels, dtype=torch.bool)
    return groups


def kept_channels(dense_channels: int, fraction_removed: float) -> int:
    """Channels a group keeps at ``fraction_removed`` of its dense count: never fewer than one."""
    return max(1, int(round(dense_channels * (1.0 - fraction_removed))))


def taylor_scores(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Molchanov et al.'s criterion per image and channel, ``(batch, channels)``:
    ``|mean over positions of (activation * d loss_i / d activation)|``.

    ``gradient`` is of the batch's mean loss, as training computes it; times the batch size it is each
    image's own loss's gradient.
    """
    return (activation.float() * gradient.float() * len(gradient)).mean(dim=(2, 3)).abs()


def l1_importance(group: ChannelGroup) -> torch.Tensor:
    """Sum over the group's producers of each output filter's L1 norm (Li et al. 2017)."""
    return sum(p[0].weight.detach().abs().flatten(1).sum(dim=1) for p in group.producers).float().cpu()


class FilterPruner:
    """Masks channels of a network while it fine-tunes and accumulates the Taylor criterion.

    Use as a context manager around the fine-tuning loop: inside, the producers' outputs are multiplied
    by the groups' masks (forward hooks) and, with ``criterion="taylor"``, every backward pass adds each
    channel's ``|mean(activation * gradient)|`` per image. :meth:`prune_to` removes the lowest-ranked alive
    channels of every group; :meth:`finish` returns the physically smaller network.
    """

    def __init__(self, model: nn.Module, criterion: str = "taylor", dense_channels: dict[str, int] | None = None):
        if criterion not in FILTER_CRITERIA:
            raise ValueError(f"Unknown filter criterion {criterion!r}; choose {' or '.join(FILTER_CRITERIA)}.")
        self.model, self.criterion = model, criterion
        self.groups = channel_groups(model, dense_channels)
        self.taylor = [torch.zeros(g.channels) for g in self.groups]
        self.images = 0
        self._handles: list = []

    def __enter__(self) -> "FilterPruner":
        for i, group in enumerate(self.groups):
            for producer in group.producers:
                self._handles.append(producer.register_forward_hook(self._mask_hook(group)))
            if self.criterion == "taylor":
                self._handles.append(group.measure.register_forward_hook(self._taylor_hook(i)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @staticmethod
    def _mask_hook(group: ChannelGroup):
        def hook(_module, _inputs, output):
            if bool(group.alive.all()):
                return output
            return output * group.alive.to(device=output.device, dtype=output.dtype).view(1, -1, 1, 1)
        return hook

    def _taylor_hook(self, index: int):
        def hook(_module, _inputs, output):
            if not output.requires_grad:
                return

            # The hook must not hold ``output`` itself: a tensor whose hook refers back to it is a cycle through
            # autograd's C++ side that Python's collector never frees (a network and its activations leaked
            # per fine-tuning, 366 MB a job on 1,500 CIFAR images, until a 10,000-image run swapped).
            activation = output.detach()

            def on_grad(grad):
                self.taylor[index] += taylor_scores(activation, grad).sum(dim=0).cpu()
                if index == 0:
                    self.images += len(grad)
            output.register_hook(on_grad)
        return hook

    def importance(self) -> list[torch.Tensor]:
        """Each group's channel scores under the criterion (higher: more important)."""
        if self.criterion == "l1":
            return [l1_importance(g) for g in self.groups]
        return [t / max(1, self.images) for t in self.taylor]

    def prune_to(self, fraction_removed: float) -> None:
        """Mask the lowest-ranked alive channels of every group until it keeps
        :func:`kept_channels` of its dense count; restart the Taylor averages."""
        for group, score in zip(self.groups, self.importance()):
            keep = kept_channels(group.dense_channels, fraction_removed)
            alive = int(group.alive.sum())
            if alive <= keep:
                continue
            ranked = torch.where(group.alive, score, torch.full_like(score, float("inf")))
            drop = torch.argsort(ranked, stable=True)[:alive - keep]
            group.alive[drop] = False
        self.taylor = [torch.zeros_like(t) for t in self.taylor]
        self.images = 0

    def finish(self) -> nn.Module:
        """The network with every masked channel removed (a new module; the masked one is untouched)."""
        return remove_channels(self.model, {g.name: g.alive for g in self.groups})


def remove_channels(model: nn.Module, alive: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of a ``resnet-small`` ``model`` without the channels whose ``alive`` entry is False.

    Its outputs equal those of ``model`` with those channels' outputs zeroed (as :class:`FilterPruner`
    masks them): a removed channel contributed nothing to any reader.
    """
    smaller = copy.deepcopy(model)
    for name in [g.name for g in channel_groups(smaller)]:
        # Found afresh each time: slicing one group replaces modules that the next group's lists name.
        group = next(g for g in channel_groups(smaller) if g.name == name)
        keep = torch.as_tensor(alive[group.name], dtype=torch.bool).cpu()
        if len(keep) != group.channels:
            raise ValueError(f"Mask of {group.name} has {len(keep)} channels; the network has {group.channels}.")
        index = torch.nonzero(keep).flatten()
        for producer in group.producers:
            producer[0] = _slice_conv(producer[0], out_index=index)
            producer[1] = _slice_batchnorm(producer[1], index)
        for consumer in group.consumers:
            _replace(smaller, consumer, _slice_reader(consumer, index))
    return smaller.train(model.training)  # new modules start in training mode; batch norm must not


def _replace(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for module in root.modules():
        for name, child in module.named_children():
            if child is old:
                setattr(module, name, new)
                return
    raise RuntimeError("module to replace not found")  # the groups were built from this very network


def _slice_conv(conv: nn.Conv2d, out_index=None, in_index=None) -> nn.Conv2d:
    weight = conv.weight.detach()
    if out_index is not None:
        weight = weight[out_index.to(weight.device)]
    if in_index is not None:
        weight = weight[:, in_index.to(weight.device)]
    new = nn.Conv2d(weight.shape[1], weight.shape[0], conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    bias=conv.bias is not None).to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if conv.bias is not None:
            bias = conv.bias.detach()
            new.bias.copy_(bias[out_index.to(bias.device)] if out_index is not None else bias)
    return new.to(memory_format=torch.channels_last) if conv.weight.is_contiguous(
        memory_format=torch.channels_last) and weight.ndim == 4 else new


def _slice_batchnorm(bn: nn.BatchNorm2d, index) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(index), eps=bn.eps, momentum=bn.momentum).to(bn.weight.device)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, name).copy_(getattr(bn, name).detach()[index.to(bn.weight.device)])
        new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


def _slice_reader(module: nn.Module, index) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        return _slice_conv(module, in_index=index)
    if isinstance(module, nn.Linear):
        new = nn.Linear(len(index), module.out_features, bias=module.bias is not None).to(module.weight.device)
        with torch.no_grad():
            new.weight.copy_(module.weight.detach()[:, index.to(module.weight.device)])
            if module.bias is not None:
                new.bias.copy_(module.bias.detach())
        return new
    raise TypeError(f"cannot slice the inputs of {type(module).__name__}")


def channel_counts(model: nn.Module) -> dict[str, int]:
    """Channels of every group of a ``resnet-small`` network."""
    return {g.name: g.channels for g in channel_groups(model)}
