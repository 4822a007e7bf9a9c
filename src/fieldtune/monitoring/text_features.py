"""Text features shared by the reference and the window: words, unseen-word rates, sentence
embeddings from the bundled encoder, and a seeded sample.

Words are ``\\w+`` runs, except that Chinese (Han) characters are segmented into words by
``jieba``: Chinese has no spaces, so ``\\w+`` would make a whole clause one "word" and every new
sentence an unseen one.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..models.embedder import load_sentence_encoder
from ..utils.hf import offline_env
from ..zoo import cache_dir

EMBEDDER = "minilm"  # whatever the served model is: NER and classification alike get an embedding check
SEED = 0
WORD = re.compile(r"\w+")
# CJK Unified Ideographs, Extension A and Compatibility Ideographs: the scripts jieba segments.
HAN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")  # a group: HAN.split keeps the runs


def words(text: str) -> list[str]:
    """Lower-cased word tokens: the unit of the unseen-vocabulary rate.

    ``\\w+`` runs; a run with Chinese characters is split at script changes and its Chinese parts
    segmented by jieba ("iPhone销量下降" gives iphone / 销量 / 下降). jieba is only loaded when
    a text has Chinese characters.
    """
    found = WORD.findall(text.lower())
    if not HAN.search(text):
        return found
    tokens: list[str] = []
    for word in found:
        if not HAN.search(word):
            tokens.append(word)
            continue
        # HAN.split keeps the Chinese runs (odd places) between the other-script parts (even places).
        for i, part in enumerate(HAN.split(word)):
            if i % 2:
                tokens.extend(t for t in _segmenter().cut(part) if t.strip())
            elif part:
                tokens.append(part)
    return tokens


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
def _segmenter() -> Any:
    """jieba's default tokenizer, quiet, its dictionary cache under ``$FIELDTUNE_CACHE/jieba``."""
    import jieba  # lazy: ~0.1 s import + ~0.5-1.7 s dictionary load that text without Chinese never pays

    jieba.setLogLevel(logging.WARNING)  # it logs "Building prefix dict ..." to stderr at DEBUG
    tokenizer = jieba.Tokenizer()
    folder = cache_dir() / "jieba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    # Otherwise jieba's default, the system temp folder; a failed dump only costs the rebuild next time.
    tokenizer.tmp_dir = str(folder) if writable else None
    tokenizer.initialize()
    return tokenizer


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
