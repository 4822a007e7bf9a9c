"""Text features shared by the reference and the window: words, unseen-word rates, sentence
embeddings from the bundled encoder, and a seeded sample."""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..models.embedder import load_sentence_encoder
from ..utils.hf import offline_env

EMBEDDER = "minilm"  # whatever the served model is: NER and classification alike get an embedding check
SEED = 0
WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (``\\w+``): the unit of the unseen-vocabulary rate."""
    return WORD.findall(text.lower())


def oov_rate(texts: Iterable[str], vocab: frozenset[str] | set[str]) -> tuple[float, Counter]:
    """(share of word tokens not in ``vocab``, counts of those words)."""
    unseen: Counter = Counter()
    total = 0
    for text in texts:
        tokens = words(text)
        total += len(tokens)
        unseen.update(w for w in tokens if w not in vocab)
    return (sum(unseen.values()) / total if total else 0.0), unseen


@functools.lru_cache(maxsize=1)
def _embedder() -> Any:
    offline_env()
    return load_sentence_encoder(EMBEDDER)


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised sentence embeddings (float32, one row per text) from the bundled encoder."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vectors = _embedder().encode(
        texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def seeded_sample(n: int, k: int, seed: int = SEED) -> list[int]:
    """``k`` of ``range(n)`` in their original order, the same every time."""
    if n <= k:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))
