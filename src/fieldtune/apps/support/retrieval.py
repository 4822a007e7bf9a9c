"""Answer retrieval over the knowledge base: BM25, dense embeddings, and the two fused.

- **BM25** (the ``bm25s`` library, Lucene's variant): words are lower-cased ``\\w+`` runs and Chinese
  runs are segmented by jieba (:func:`fieldtune.monitoring.text_features.words`), plus the character
  bigrams of longer Chinese words (:func:`tokenize`), so 工商银行 finds 中国工商银行; Lucene's 33
  English stopwords are dropped. Items that share no word with the query are not BM25 hits (score 0).
- **Dense**: unit-length sentence embeddings (``encoder.encode(..., normalize_embeddings=True)``),
  cosine similarity by one matrix product.
- **Hybrid**: reciprocal rank fusion (RRF, k = 60) of the top 50 of each: ``sum w / (60 + rank)``, w = 1
  for BM25 and ``dense_weight`` (default 1) for dense. Rank, not score, is fused, so BM25's unbounded
  scores and cosines need no common scale, and an item only one side finds still gets its share.
  Fusion helps when the two sides are comparable: on BANKING77 (bench/support_retrieval.py) minilm +
  BM25 over templates expanded with train questions reaches recall@5 0.978 against 0.937 / 0.969 alone;
  with a fine-tuned minilm (recall@5 0.991) plain RRF is level with it (0.989), not better.

A plain numpy matrix product rather than faiss, by measurement (``bench/support_retrieval.py --scale
100000``: 100,000 unit vectors of 384 dimensions, one thread, the 2-core machine shared with other jobs):
one query takes 16.5 ms (p50) with numpy (product + ``argpartition``) against 18.1 ms with faiss 1.15.1
``IndexFlatIP``, the same exact search; in batches of 256 queries, 1.5 ms against 17.7 ms per query.
Through this class at 100,000 items, query encoding included: bm25 1.3 ms, dense 37 ms, hybrid 41 ms
(p50). A flat index is what faiss would use at this size (approximate indexes pay off in the millions),
so faiss would add a dependency and no speed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UserError
from ...monitoring.text_features import HAN, words

CANDIDATES = 50  # each side's depth for fusion: RRF's usual 50-100; deeper adds only 1/(60+rank) crumbs
RRF_K = 60  # the constant of Cormack et al. 2009: damps the weight of the very top ranks
MODES = ("bm25", "dense", "hybrid")
QUERY_CHUNK = 256  # queries per matrix product: 256 x 100k scores is 100 MB, not 1.2 GB for 3k queries


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


STOPWORDS = _stopwords()


@dataclass
class Hit:
    """One search result: the item's ``id``, the mode's ``score`` and ``kind`` (``template``/``passage``).

    ``score`` is the BM25 score, the cosine, or the RRF sum (hybrid). ``bm25`` and ``dense`` carry
    each side's own score when that side ranked the item (in its top ``max(k, candidates)``; else
    None), so a caller can threshold on the cosine whatever the mode.
    """

    id: str
    score: float
    kind: str
    bm25: float | None = None
    dense: float | None = None


def tokenize(text: str) -> list[str]:
    """BM25's tokens: lower-cased words, Chinese segmented by jieba, English stopwords dropped.

    A Chinese word of more than two characters also gives its character bigrams, so a query for
    工商银行 matches a passage where jieba kept 中国工商银行 as one word (the sub-words jieba's
    ``cut_for_search`` adds, without its dictionary look-up; bigrams are Lucene's CJK indexing).
    """
    tokens = []
    for word in words(text):
        if word in STOPWORDS:
            continue
        tokens.append(word)
        if len(word) > 2 and HAN.fullmatch(word):
            tokens.extend(word[i : i + 2] for i in range(len(word) - 1))
    return tokens


class Retriever:
    """BM25 + dense search over one knowledge base (see the module docstring).

    Args:
        ids: Item ids, unique.
        kinds: ``template`` or ``passage`` per item.
        texts: The text to index per item (:func:`~fieldtune.apps.support.kb.kb_texts`).
        encoder: A SentenceTransformer (``load_sentence_encoder("minilm")``) to embed queries, and
            ``texts`` when ``embeddings`` is None; None for BM25 only.
        embeddings: Stored unit-length embeddings of ``texts`` (rows in order), to skip encoding.
        expansions: Extra texts per item id that BM25 indexes with the item (not embedded): e.g. the
            historical questions a template answered. On BANKING77 they lift BM25's recall@1 from
            0.47 to 0.83 (bench/support_retrieval.py): a template's own words are few.
        candidates: Each side's depth for fusion.
        rrf_k: The RRF constant.
        dense_weight: The dense side's RRF weight (BM25's is 1): ``dense_weight / (k + rank)``. 1 is
            plain RRF; above 1 trusts a fine-tuned encoder more than BM25 (pick it on held-out
            questions, as bench/support_retrieval.py does).

    Raises:
        UserError: No items (an empty knowledge base).
        ValueError: The lists differ in length, ids repeat, or ``embeddings`` has the wrong shape.
    """

    def __init__(
        self,
        ids: Sequence[str],
        kinds: Sequence[str],
        texts: Sequence[str],
        encoder: Any,
        embeddings: np.ndarray | None = None,
        expansions: Mapping[str, Sequence[str]] | None = None,
        candidates: int = CANDIDATES,
        rrf_k: int = RRF_K,
        dense_weight: float = 1.0,
    ) -> None:
        import bm25s  # imported here: only retrieval users pay for it

        if not ids:
            raise UserError("the knowledge base is empty", hint="give at least one template or document")
        if not len(ids) == len(kinds) == len(texts):
            raise ValueError(f"ids, kinds and texts differ in length ({len(ids)}, {len(kinds)}, {len(texts)})")
        if len(set(ids)) != len(ids):
            raise ValueError("ids are not unique")
        self.ids, self.kinds = list(ids), list(kinds)
        self.encoder, self.candidates, self.rrf_k, self.dense_weight = encoder, candidates, rrf_k, dense_weight
        self._bm25 = bm25s.BM25()
        extra = expansions or {}
        lexical = [" ".join([text, *extra.get(i, ())]) for i, text in zip(self.ids, texts)]
        self._bm25.index([tokenize(t) for t in lexical], show_progress=False)
        self._embeddings: np.ndarray | None = None
        if embeddings is not None:
            matrix = np.asarray(embeddings, dtype=np.float32)
            if matrix.ndim != 2 or matrix.shape[0] != len(self.ids):
                raise ValueError(f"embeddings have shape {matrix.shape}, expected ({len(self.ids)}, dim)")
            self._embeddings = np.ascontiguousarray(matrix)
        elif encoder is not None:
            self._embeddings = self._encode(list(texts))

    @property
    def embeddings(self) -> np.ndarray | None:
        """The items' unit-length embeddings (float32, one row per id), to store; None without an encoder."""
        return self._embeddings

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """The ``k`` best items for one query (see :meth:`search_many`)."""
        return self.search_many([query], k, mode)[0]

    def search_many(self, queries: Sequence[str], k: int = 5, mode: str = "hybrid") -> list[list[Hit]]:
        """The ``k`` best items for each query, best first, queries embedded in one batch.

        Args:
            queries: The questions.
            k: Hits per query (fewer when fewer items match: BM25 returns only items sharing a word).
            mode: ``bm25``, ``dense`` or ``hybrid`` (RRF of both).

        Returns:
            One list of :class:`Hit` per query.

        Raises:
            ValueError: An unknown mode, or a dense mode without an encoder.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if mode != "bm25" and (self.encoder is None or self._embeddings is None):
            raise ValueError(f"mode {mode!r} needs an encoder")
        depth = min(len(self.ids), max(k, self.candidates))
        queries = list(queries)
        if not queries:
            return []
        lexical = self._bm25_top(queries, depth) if mode != "dense" else None
        semantic = self._dense_top(queries, depth) if mode != "bm25" else None
        results = []
        for i in range(len(queries)):
            bm = lexical[i] if lexical is not None else []
            de = semantic[i] if semantic is not None else []
            results.append(self._hits(bm, de, k, mode))
        return results

    def _hits(self, bm: list[tuple[int, float]], de: list[tuple[int, float]], k: int, mode: str) -> list[Hit]:
        """One query's hits from each side's ranked (index, score) lists."""
        bm_score, de_score = dict(bm), dict(de)
        if mode == "bm25":
            order = [(i, s) for i, s in bm[:k]]
        elif mode == "dense":
            order = [(i, s) for i, s in de[:k]]
        else:
            fused: dict[int, float] = {}
            for ranked, weight in ((de, self.dense_weight), (bm, 1.0)):  # dense first: it wins ties
                for rank, (i, _) in enumerate(ranked[: self.candidates], start=1):
                    fused[i] = fused.get(i, 0.0) + weight / (self.rrf_k + rank)
            order = sorted(fused.items(), key=lambda item: -item[1])[:k]  # sorted is stable: ties keep order
        return [
            Hit(self.ids[i], float(score), self.kinds[i], _opt(bm_score.get(i)), _opt(de_score.get(i)))
            for i, score in order
        ]

    def _bm25_top(self, queries: list[str], depth: int) -> list[list[tuple[int, float]]]:
        """Per query, the (index, BM25 score) of up to ``depth`` items with a score above 0."""
        tokens = [tokenize(q) for q in queries]
        docs, scores = self._bm25.retrieve(tokens, k=depth, show_progress=False)
        return [[(int(d), float(s)) for d, s in zip(row_d, row_s) if s > 0] for row_d, row_s in zip(docs, scores)]

    def _dense_top(self, queries: list[str], depth: int) -> list[list[tuple[int, float]]]:
        """Per query, the (index, cosine) of the ``depth`` nearest items."""
        assert self._embeddings is not None
        vectors = self._encode(queries)
        top: list[list[tuple[int, float]]] = []
        for start in range(0, len(queries), QUERY_CHUNK):
            sims = vectors[start : start + QUERY_CHUNK] @ self._embeddings.T
            top.extend(top_k(row, depth) for row in sims)
        return top

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim()), dtype=np.float32)
        return encode(self.encoder, texts)

    def _dim(self) -> int:
        if self._embeddings is not None:
            return int(self._embeddings.shape[1])
        # sentence-transformers 6 renamed it; older versions only have the long name
        dim = getattr(self.encoder, "get_embedding_dimension", None) or self.encoder.get_sentence_embedding_dimension
        return int(dim())


def encode(encoder: Any, texts: Sequence[str]) -> np.ndarray:
    """Unit-length float32 embeddings of ``texts`` (one row each, ``texts`` not empty), as the index
    embeds its items: so one item embedded alone (an agent's new answer) matches a full build."""
    vectors = encoder.encode(
        list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(index, score) of the ``k`` highest of a 1-D array, best first (``argpartition``: O(n), not a sort)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return []
    part = np.argpartition(-scores, k - 1)[:k]
    best = part[np.argsort(-scores[part], kind="stable")]
    return [(int(i), float(scores[i])) for i in best]


def _opt(value: float | None) -> float | None:
    return None if value is None else float(value)
