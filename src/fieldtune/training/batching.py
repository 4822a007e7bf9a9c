"""Dynamic padding and length-grouped batches: pad each batch to its own longest row only; for token
tasks on BERT-style encoders, packing: a random batch's sentences side by side in few rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

IGNORE = -100
PACK_WIDTH = 128  # word-pieces per packed row (wider when a batch has a longer sentence)
PACKABLE_MODELS = ("bert", "electra")  # absolute positions from 0 and eager/sdpa masks: packing is exact


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


def collate_packed(features: list[dict[str, Any]], pad_id: int, width: int = PACK_WIDTH) -> dict[str, torch.Tensor]:
    """Token tasks: the batch's sequences packed side by side into as few rows of ``width`` as they
    fit (first fit, longest first). Each sequence attends only to itself (a block-diagonal additive
    mask, ``(rows, 1, W, W)``) and has its own positions from 0, so the model computes exactly what
    it computes for the sequences one by one — without the padding of a batch of mixed lengths.
    Batches can then stay random: length-grouped batches (the other way to avoid padding) put
    look-alike sentences together and cost CoNLL-2003 F1. ``num_real_tokens`` counts the word-pieces
    (the loop pops it before the forward pass)."""
    lengths = [len(f["input_ids"]) for f in features]
    width = max(width, max(lengths))
    rows: list[list[int]] = []
    fill: list[int] = []
    for i in sorted(range(len(features)), key=lambda i: -lengths[i]):
        row = next((r for r, used in enumerate(fill) if used + lengths[i] <= width), None)
        if row is None:
            row = len(rows)
            rows.append([])
            fill.append(0)
        rows[row].append(i)
        fill[row] += lengths[i]
    shape = (len(rows), max(fill))
    ids, labels = torch.full(shape, pad_id, dtype=torch.long), torch.full(shape, IGNORE, dtype=torch.long)
    positions = torch.zeros(shape, dtype=torch.long)
    segment = torch.full(shape, -1, dtype=torch.long)  # which sequence each position holds; -1: padding
    for r, members in enumerate(rows):
        start = 0
        for s, i in enumerate(members):
            end = start + lengths[i]
            ids[r, start:end] = torch.tensor(features[i]["input_ids"])
            labels[r, start:end] = torch.tensor(features[i]["labels"])
            positions[r, start:end] = torch.arange(lengths[i])
            segment[r, start:end] = s
            start = end
    same = segment[:, None, :, None] == segment[:, None, None, :]  # padding attends to padding: no empty rows
    mask = torch.zeros(same.shape, dtype=torch.float32).masked_fill_(~same, torch.finfo(torch.float32).min)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": positions,
        "labels": labels,
        "num_real_tokens": torch.tensor(sum(lengths)),
    }


def can_pack(model: torch.nn.Module, features: list[dict[str, Any]]) -> bool:
    """Packing is exact for per-token labels on a BERT-style encoder, also under a LoRA / IA3 adapter
    (prompt-learning adapters prepend their own tokens to the mask: not packed)."""
    if not features or not isinstance(features[0].get("labels"), list) or not features[0]["labels"]:
        return False
    if not isinstance(features[0]["labels"][0], int):  # multi-hot vectors: a sequence-level task
        return False
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in PACKABLE_MODELS:
        return False
    peft = getattr(model, "peft_config", None)
    return not peft or not any(getattr(c, "is_prompt_learning", False) for c in peft.values())


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
