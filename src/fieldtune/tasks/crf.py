"""A linear-chain CRF over an encoder's tag logits (``crf: true``, task ner).

A softmax tagger scores each word's tag alone; a CRF also learns a score for every pair of neighbouring
tags (and for the first and last tag) and is trained on the whole sentence's log-likelihood
(pytorch-crf's :class:`torchcrf.CRF`). The word's logits are its first piece's, as for the softmax
tagger; a window of a long sentence is a sequence of its own.

The layer is attached to the model being trained (after the method chose its trainable weights: the
layer trains under every method, at the new head's rate) and never saved with the weights: the
artifact keeps its scores in ``fieldtune.json``'s state (:func:`crf_scores`), which decoding reads
(``token_classification.best_tags``). Every backend (torch, ONNX, int8) computes the same logits, so every
backend decodes the same tags.
"""

from __future__ import annotations

from typing import Any

import torch
from torchcrf import CRF

from .losses import IGNORE

ATTRIBUTE = "crf"


def attach_crf(model: torch.nn.Module, num_tags: int) -> CRF:
    """Add a CRF layer to ``model`` (as ``model.crf``), learning at the new head's rate; return it."""
    crf = CRF(num_tags, batch_first=True)
    setattr(model, ATTRIBUTE, crf)
    names = tuple(f"{ATTRIBUTE}.{name}" for name, _ in crf.named_parameters())
    model.new_parameters = (*getattr(model, "new_parameters", ()), *names)  # optim.build_optimizer's head group
    return crf


def detach_crf(model: torch.nn.Module) -> None:
    """Take the layer off before the weights are saved (its scores travel in the artifact's state)."""
    if ATTRIBUTE in model._modules:
        delattr(model, ATTRIBUTE)


def crf_scores(crf: CRF) -> dict[str, Any]:
    """The layer's scores as JSON: ``start`` and ``end`` (per tag) and ``transitions`` (``[from][to]``)."""
    return {
        "start": crf.start_transitions.detach().float().cpu().tolist(),
        "end": crf.end_transitions.detach().float().cpu().tolist(),
        "transitions": crf.transitions.detach().float().cpu().tolist(),
    }


def crf_loss(crf: CRF):
    """The training loss with ``crf``: (logits, labels, labelled words per average batch) -> the negative
    log-likelihood of each row's labelled words' tags (its first pieces, in order), summed and divided by
    the average batch's labelled words (as ``losses.token_loss``: every word weighs the same)."""

    def loss(logits: torch.Tensor, labels: torch.Tensor, targets_per_batch: float | None = None) -> torch.Tensor:
        emissions, tags, mask = words_only(logits[:, -labels.shape[1] :].float(), labels)
        if emissions.shape[0] == 0:
            return logits.sum() * 0.0  # no labelled word in the batch: nothing to learn, a zero with a graph
        nll = -crf(emissions, tags, mask=mask, reduction="sum")
        return nll / (targets_per_batch or max(1, int(mask.sum())))

    return loss


def words_only(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's labelled positions (label != -100) moved to its front, in order; rows without any dropped.

    Returns:
        ``(emissions (rows, words, tags), tags (rows, words), mask (rows, words))``, mask True on real words.
    """
    labelled = labels != IGNORE
    counts = labelled.sum(1)
    keep = counts > 0
    logits, labels, labelled, counts = logits[keep], labels[keep], labelled[keep], counts[keep]
    width = int(counts.max()) if counts.numel() else 0
    order = torch.argsort((~labelled).to(torch.int8), dim=1, stable=True)[:, :width]  # labelled first, in order
    emissions = logits.gather(1, order.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
    mask = torch.arange(width, device=labels.device)[None, :] < counts[:, None]
    tags = labels.gather(1, order).masked_fill(~mask, 0)
    return emissions, tags, mask
