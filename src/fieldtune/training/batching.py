"""Dynamic padding and length-grouped batches: pad each batch to its own longest row only."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

IGNORE = -100


def collate(features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad ``input_ids`` to the batch's longest row; build the attention mask and label tensor."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)  # (batch, seq_len)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        ids[row, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[row, : len(f["input_ids"])] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if "labels" in features[0]:
        batch["labels"] = _labels(features, width)
    return batch


def _labels(features: list[dict[str, Any]], width: int) -> torch.Tensor:
    first = features[0]["labels"]
    if isinstance(first, int):  # single label per example
        return torch.tensor([f["labels"] for f in features], dtype=torch.long)
    if first and isinstance(first[0], float):  # multi-hot, (batch, num_labels)
        return torch.tensor([f["labels"] for f in features], dtype=torch.float)
    out = torch.full((len(features), width), IGNORE, dtype=torch.long)  # (batch, seq_len)
    for row, f in enumerate(features):
        out[row, : len(f["labels"])] = torch.tensor(f["labels"])
    return out


class LengthGroupedBatches(Sampler[list[int]]):
    """Batches of indices, reproducible from ``seed`` and the epoch.

    Shuffles, then sorts within pools of ``pool`` batches by length so rows in a batch are
    alike in length (little padding), then shuffles the batch order so training still sees a
    random mix. Without ``group`` it is a plain shuffled (or ordered) batching.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        group: bool = True,
        seed: int = 0,
        pool: int = 64,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.group, self.seed, self.pool = batch_size, shuffle, group, seed, pool
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        """Deterministic order per epoch. (Not named set_epoch: accelerate calls that with its own
        iteration counter, which restarts at 0 after a resume.)"""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        if self.group:
            size = self.batch_size * self.pool
            pools = [order[i : i + size] for i in range(0, len(order), size)]
            order = np.concatenate([p[np.argsort(-self.lengths[p], kind="stable")] for p in pools])
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        if self.shuffle and self.group:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        yield from batches


def eval_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation order: longest first (fastest, and a memory problem shows up at once)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
