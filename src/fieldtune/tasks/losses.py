"""The training losses of the tasks, computed from the model's logits (see :meth:`Task.loss`).

Each equals what the Hugging Face head computes from the same logits (cross-entropy for one label,
BCE-with-logits for multi-hot labels), except the token loss, which weighs every labelled position
the same whatever batch it lands in. Logits are upcast to float32 first: the loss is taken outside
the model's autocast, where the head's own loss ran in float32 too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # label of a position (or text) that carries no target


def single_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``(batch, labels)`` logits against ``(batch,)`` label ids (-100: none)."""
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=IGNORE)


def multi_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of one sigmoid per label against ``(batch, labels)`` multi-hot targets."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def token_loss(logits: torch.Tensor, labels: torch.Tensor, targets_per_batch: float | None = None) -> torch.Tensor:
    """Cross-entropy summed over the labelled positions, divided by ``targets_per_batch``.

    With ``targets_per_batch`` the *average* labelled positions of a training batch, every word
    (or answer token) weighs the same whatever batch it lands in; a per-batch mean would give the
    words of a batch of short sentences (length grouping makes those) several times the weight of
    the words of a batch of long ones. None: the mean over this batch's labelled positions.

    Args:
        logits: ``(batch, seq_len', vocab)``; prompt tuning prepends virtual tokens, whose outputs
            (the first ``seq_len' - seq_len``) have no label and are dropped.
        labels: ``(batch, seq_len)`` target ids, -100 where nothing is learned.
        targets_per_batch: The divisor (see above).
    """
    logits = logits[:, -labels.shape[1] :]
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    if targets_per_batch is None:
        targets_per_batch = max(1, int((labels != IGNORE).sum()))
    return total / targets_per_batch
