"""A sentence encoder (transformer + mean pooling + L2 normalisation) as one ONNX graph, and the part of
``SentenceTransformer``'s surface that fieldtune's callers use (``encode``, the embedding dimension).

Used by the news monitor (int8, :class:`~fieldtune.apps.watch.scoring.Int8Encoder`) and the support
assistant's retrieval encoder (fp32, :mod:`fieldtune.apps.support.onnx_passes`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

OPSET = 17
BATCH_AXES = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}


def masked_means(states: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """Each hidden state's mean over the real tokens (not padding), concatenated on the last axis."""
    mask = attention_mask.unsqueeze(-1).to(states[0].dtype)
    count = mask.sum(dim=1).clamp(min=1e-9)
    return torch.cat([(h * mask).sum(dim=1) / count for h in states], dim=-1)


class MeanPooled(torch.nn.Module):
    """``(input_ids, attention_mask) -> embedding``: mean-pooled, L2-normalised (as sentence-transformers)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return torch.nn.functional.normalize(masked_means([hidden], attention_mask), dim=-1)


def export_graph(
    graph: torch.nn.Module, sample: tuple[torch.Tensor, torch.Tensor], outputs: list[str], path: Path
) -> None:
    """Trace ``graph`` (inputs ``input_ids``, ``attention_mask``; dynamic batch and length, each output
    dynamic in its batch axis) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():  # tracer notes; callers check parity with torch
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.eval(),
            sample,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=["input_ids", "attention_mask"],
            output_names=outputs,
            dynamic_axes={**BATCH_AXES, **{name: {0: "batch"} for name in outputs}},
        )


class OnnxEmbedder:
    """Unit-length embeddings from a :class:`MeanPooled` graph: ``encode`` as a SentenceTransformer's.

    Args:
        session: The ONNX Runtime session (inputs ``input_ids``, ``attention_mask``; output ``embedding``).
        tokenizer: The encoder's tokenizer.
        max_length: Longest input in tokens (the encoder's ``max_seq_length``).
    """

    def __init__(self, session: Any, tokenizer: Any, max_length: int) -> None:
        self.session, self.tokenizer, self.max_length = session, tokenizer, max_length

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    get_embedding_dimension = get_sentence_embedding_dimension  # sentence-transformers 6's name

    def encode(self, texts: list[str], batch_size: int = 32, **_: Any) -> np.ndarray:
        """``(texts, dim)`` unit-norm float32 embeddings, batched by length (less padding)."""
        texts = list(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.get_sentence_embedding_dimension()), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length)
            feed = {k: np.asarray(enc[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}
            out[idx] = self.session.run(["embedding"], feed)[0]
        return out
