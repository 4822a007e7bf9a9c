"""Integrated gradients (Sundararajan et al., 2017) on the input embeddings of a PyTorch encoder.

The path runs from a baseline input — the same sequence with every piece that is not a special token
replaced by ``[PAD]`` — to the input, in embedding space; the attribution of a piece is
``(x - x') · ∫ ∂f/∂x dα`` summed over the embedding dimensions. The integral is Gauss–Legendre
quadrature (as captum's default), all steps batched into as few forward passes as fit, and the
attributions add up to ``f(x) - f(x')`` up to the quadrature error (``convergence_delta``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Target = Callable[[torch.Tensor], torch.Tensor]  # logits (n, ...) -> the explained value (n,)
MAX_TOKENS_PER_PASS = 8192  # path points x sequence length per forward pass: bounds memory on long texts


@dataclass(frozen=True)
class Gradients:
    """Per-piece attributions and the completeness check."""

    pieces: np.ndarray  # (seq_len,) attribution of each input piece
    value: float  # f(x): the explained logit (or sum of logits) at the input
    baseline_value: float  # f(x') at the baseline
    convergence_delta: float  # sum(pieces) - (f(x) - f(x'))


def baseline_ids(input_ids: list[int], special: list[int], pad_id: int) -> list[int]:
    """The input with every non-special piece replaced by ``pad_id`` (special tokens kept, so the
    baseline is a well-formed empty sequence of the same length)."""
    return [tok if is_special else pad_id for tok, is_special in zip(input_ids, special)]


def quadrature(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Legendre points on [0, 1] and their weights (``steps`` of each)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return torch.tensor((nodes + 1) / 2, dtype=torch.float32), torch.tensor(weights / 2, dtype=torch.float32)


def integrated_gradients(
    model: torch.nn.Module, input_ids: list[int], base_ids: list[int], target: Target, steps: int = 50
) -> Gradients:
    """Integrated gradients of ``target(model(...).logits)`` with respect to the input embeddings.

    Args:
        model: A transformers model (or peft model) that takes ``inputs_embeds``; used in eval mode.
        input_ids: One sequence's token ids, special tokens included.
        base_ids: The baseline sequence, as long as ``input_ids`` (see :func:`baseline_ids`).
        target: Maps a batch of logits to the value explained, one per row.
        steps: Quadrature points on the path.

    Returns:
        The per-piece attributions and the completeness numbers.
    """
    model.eval()
    device = next(model.parameters()).device
    embed = model.get_input_embeddings()
    ids = torch.tensor([input_ids, base_ids], device=device)
    with torch.no_grad():
        x, base = embed(ids).float().split(1)  # (1, seq_len, dim) each
        ends = target(_logits(model, torch.cat([x, base])))
    alphas, weights = quadrature(steps)
    total = torch.zeros_like(x[0])
    per_pass = max(1, MAX_TOKENS_PER_PASS // len(input_ids))
    for a, w in zip(alphas.split(per_pass), weights.split(per_pass)):
        a, w = a.to(device), w.to(device)
        path = (base + a[:, None, None] * (x - base)).requires_grad_(True)
        (grad,) = torch.autograd.grad(target(_logits(model, path)).sum(), path)
        total += (grad * w[:, None, None]).sum(0)
    pieces = ((x[0] - base[0]) * total).sum(-1).detach().cpu().numpy().astype(np.float64)
    value, baseline_value = float(ends[0]), float(ends[1])
    delta = float(pieces.sum() - (value - baseline_value))
    return Gradients(pieces, value, baseline_value, delta)


def _logits(model: torch.nn.Module, embeds: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    return model(inputs_embeds=embeds, attention_mask=mask).logits.float()
