"""Batched forward passes shared by evaluation during training, ``fieldtune eval`` and the Predictor."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .training.batching import collate, eval_batches


@torch.no_grad()
def forward_logits(
    model: torch.nn.Module, features: list[dict[str, Any]], batch_size: int, pad_id: int, autocast: bool = False
) -> list[np.ndarray]:
    """Logits per feature, in feature order, without padding rows/positions.

    Returns:
        For sequence tasks an array ``(num_labels,)`` per feature; for token tasks
        ``(seq_len, num_labels)`` with that feature's own length.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[np.ndarray | None] = [None] * len(features)
    for idx in eval_batches([len(f["input_ids"]) for f in features], batch_size):
        batch = collate([{"input_ids": features[i]["input_ids"]} for i in idx], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(**batch).logits.float().cpu().numpy()  # (batch, [seq_len,] num_labels)
        for row, i in enumerate(idx):
            out[i] = logits[row, : len(features[i]["input_ids"])] if logits.ndim == 3 else logits[row]
    model.train(was_training)
    return out  # type: ignore[return-value]
