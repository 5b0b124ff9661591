#!/usr/bin/env python
"""Retrain with curate's sample weights: PIEs drawn more often, confirmed label errors never.

    curate weights my-data weights.csv --factor 2
    python examples/train_weighted.py weights.csv --epochs 10

Reads the weights file (filepath, label, weight, reason), builds a plain torch Dataset over the
images, and trains torchvision's ResNet-18 with ``curate.weighted_sampler`` feeding the DataLoader.
Swap in your own model and transforms; the sampler is the only curate-specific line.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import models, transforms

import curate


class WeightedImages(Dataset):
    def __init__(self, table: pd.DataFrame, classes: list[str], size: int):
        self.paths = table["filepath"].tolist()
        self.targets = [classes.index(str(label)) for label in table["label"]]
        self.transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), self.targets[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", help="CSV or parquet written by `curate weights`.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    table = pd.read_parquet(args.weights) if args.weights.endswith(".parquet") else pd.read_csv(
        args.weights, dtype={"label": str})
    classes = sorted(table["label"].unique())
    data = WeightedImages(table, classes, args.image_size)
    sampler = curate.weighted_sampler(table)  # rows with weight 0 are never drawn
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler)

    model = models.resnet18(num_classes=len(classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for x, y in loader:
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += float(loss) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
        print(f"epoch {epoch + 1}: {total} weighted draws, loss {loss_sum / total:.3f}, "
              f"train accuracy {correct / total:.3f}")


if __name__ == "__main__":
    main()
