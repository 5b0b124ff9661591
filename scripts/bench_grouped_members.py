#!/usr/bin/env python
"""Benchmark: do G networks trained as one grouped-convolution network step faster than one by one?

K members x F folds are independent networks of one architecture. Stacking them as one network whose
convolutions have ``groups=G`` (each group one member, batch norm per channel, so the networks stay
independent) turns G small operations into one large one. This times one SGD step of all G networks
both ways, at the shapes curate trains (digits at 16 px, CIFAR at 32 px).

    python scripts/bench_grouped_members.py --out out/bench_grouped_members.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from curate.population.models import SmallResNet


def _conv_bn(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in * groups, c_out * groups, 3, padding=1, bias=False, groups=groups),
                         nn.BatchNorm2d(c_out * groups), nn.GELU())


class _Residual(nn.Module):
    def __init__(self, width: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(width, width, groups), _conv_bn(width, width, groups))

    def forward(self, x):
        return x + self.body(x)


class GroupedSmallResNet(nn.Module):
    """G copies of :class:`SmallResNet` as one network: input ``(B, 3G, H, W)``, output ``(B, G, classes)``."""

    def __init__(self, num_classes: int, width: int, groups: int):
        super().__init__()
        self.groups = groups
        widths = (width, 2 * width, 4 * width)
        layers = [_conv_bn(3, widths[0], groups)]
        c_in = widths[0]
        for w in widths:
            layers += [_conv_bn(c_in, w, groups), nn.MaxPool2d(2, ceil_mode=True), _Residual(w, groups)]
            c_in = w
        self.features = nn.Sequential(*layers)
        self.channels = c_in
        self.head = nn.Parameter(torch.randn(groups, c_in, num_classes) * 0.01)

    def forward(self, x):
        pooled = torch.amax(self.features(x), dim=(2, 3)).view(x.shape[0], self.groups, self.channels)
        return torch.einsum("bgc,gcn->bgn", pooled, self.head)


def time_steps(size: int, batch: int, groups: int, steps: int) -> dict:
    fmt = torch.channels_last
    nets = [SmallResNet(10).to(memory_format=fmt) for _ in range(groups)]
    optimizers = [torch.optim.SGD(n.parameters(), lr=0.01, momentum=0.9) for n in nets]
    x = torch.randn(batch, 3, size, size).to(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))

    def one_by_one():
        for net, opt in zip(nets, optimizers):
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    grouped = GroupedSmallResNet(10, 32, groups).to(memory_format=fmt)
    grouped_opt = torch.optim.SGD(grouped.parameters(), lr=0.01, momentum=0.9)
    xg = torch.randn(batch, 3 * groups, size, size).to(memory_format=fmt)

    def together():
        loss = F.cross_entropy(grouped(xg).reshape(-1, 10), y.repeat_interleave(groups))
        grouped_opt.zero_grad()
        loss.backward()
        grouped_opt.step()

    out = {"size": size, "batch": batch, "groups": groups}
    for name, fn in (("one_by_one", one_by_one), ("grouped", together)):
        fn()
        started = time.perf_counter()
        for _ in range(steps):
            fn()
        out[f"{name}_ms"] = 1000 * (time.perf_counter() - started) / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_default_device(args.device)
    rows = [time_steps(size, batch, args.groups, steps) for size, batch, steps in ((16, 56, 10), (32, 64, 5),
                                                                                  (32, 256, 3))]
    print(f"{'image':>6} {'batch':>6} {'networks':>9} {'one by one ms':>14} {'grouped ms':>11} {'speed-up':>9}")
    for r in rows:
        print(f"{r['size']:>6} {r['batch']:>6} {r['groups']:>9} {r['one_by_one_ms']:>14.0f} {r['grouped_ms']:>11.0f} "
              f"{r['one_by_one_ms'] / r['grouped_ms']:>8.2f}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"device": args.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
