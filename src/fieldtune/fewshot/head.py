"""The embedding artifact's parts: a sentence-transformers body and a linear head, stored without pickle.

The head is ``logits = embedding @ weight.T + bias`` over L2-normalised sentence embeddings, in
``head.safetensors``. Zero-shot: rows are label-description embeddings scaled by 1/temperature (so
the logits are cosine similarities / T); SetFit: the logistic regression's ``coef_`` / ``intercept_``
(softmax of its logits is exactly ``predict_proba``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

HEAD_FILE = "head.safetensors"


@dataclass
class LinearHead:
    """Logits of every label for normalised embeddings."""

    weight: np.ndarray  # (labels, dim), float32
    bias: np.ndarray  # (labels,), float32

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.weight.T + self.bias

    @property
    def size(self) -> int:
        return int(self.weight.size + self.bias.size)

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"weight": _f32(self.weight), "bias": _f32(self.bias)}, str(path))

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        from safetensors.numpy import load_file

        if not path.is_file():
            raise UserError(f"the artifact has no {HEAD_FILE}", path=path.parent, hint="re-run `fieldtune train`")
        tensors = load_file(str(path))
        return cls(tensors["weight"], tensors["bias"])


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


@dataclass
class EmbeddingArtifact:
    """What :func:`fieldtune.artifacts.save_artifact` writes for an embedding model (it calls
    ``save_pretrained``): the head, and the body when training changed it (SetFit). A zero-shot
    artifact stores no weights of the body: fieldtune.json references the base model and its sha256."""

    head: LinearHead
    body: Any = None  # a SentenceTransformer to store, or None: the base model is referenced

    def save_pretrained(self, directory: str | Path, safe_serialization: bool = True) -> None:
        if self.body is not None:
            self.body.save(str(directory), create_model_card=False, safe_serialization=safe_serialization)
        self.head.save(Path(directory) / HEAD_FILE)


def embed(body: Any, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """L2-normalised sentence embeddings, (texts, dim) float32: dot products are cosine similarities."""
    if not texts:
        dim = getattr(body, "get_embedding_dimension", None) or body.get_sentence_embedding_dimension
        return np.zeros((0, dim()), dtype=np.float32)
    out = body.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(out, dtype=np.float32)


def count_params(body: Any) -> int:
    return sum(p.numel() for p in body.parameters())
