"""Topics of items: from a fieldtune model folder, or from a few example phrases per topic.

A model folder (``topics: models/topics``) is used through its predictor: a classification model
gives its top label; a multi-label model every label at or above its tuned threshold.

Example phrases (``topics: {earnings: [...], mergers: [...]}``) need no training: each topic is the
mean of its phrases' L2-normalised embeddings (the bundled ``minilm`` sentence encoder, the same
embeddings of the titles that de-duplication uses), and a title gets every topic whose cosine
similarity to that centroid is at least :data:`DEFAULT_THRESHOLD` and within :data:`DEFAULT_MARGIN`
of its best topic.

How the defaults were chosen: 40 hand-written headlines, 10 per topic (earnings, mergers,
regulation, markets), 6 that belong to two topics ("antitrust regulator blocks takeover") and 10
off-topic ones (sport, weather, culture), against 4 example phrases per topic
(``tests/data/watch_topics.json``). Cosine to the own topic's centroid: median 0.44, 10th percentile
0.29, minimum 0.15; to the other topics: median 0.19, 90th percentile 0.30, maximum 0.40; off-topic
headlines to any topic: at most 0.15. A threshold alone can't separate these (at 0.30: recall 0.88,
precision 0.74 on the single-topic headlines). Over thresholds 0.20-0.30 and margins 0-0.15, threshold
0.25 with margin 0.02 scored best there (topic-label F1 0.91: precision 0.98, recall 0.85; 7 of the 12
labels of the two-topic headlines; no off-topic headline tagged); margin 0.05 tied on F1 (precision
0.94, recall 0.88), margin 0 (best topic only) gave 0.90. On the demo's synthetic stream
(``synthetic.labelled(400)`` against ``demo.TOPICS``, 3 phrases per topic, one gold topic per headline)
threshold 0.25 gives the right first topic for 75%, leaves 14% untagged, and assigns 0.11 (margin 0),
0.14 (0.02) or 0.22 (0.05) wrong topics per headline: the narrow margin keeps topic series clean.
Lower the threshold for broad topics with few phrases; raise it when unrelated news gets tagged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...artifacts import model_version
from ...fewshot.head import embed
from ...predict import load
from ...utils.hashing import json_sha256

DEFAULT_THRESHOLD = 0.25  # cosine to a topic's centroid (measured: see the module docstring)
DEFAULT_MARGIN = 0.02  # a second topic must be this close to the best one (measured: module docstring)


class Topics(Protocol):
    """What the scorer asks of a topic source."""

    version: str

    def assign(self, titles: list[str], embeddings: np.ndarray) -> list[list[str]]:
        """Topics per title (``embeddings``: the titles' normalised sentence embeddings)."""


class NoTopics:
    """A watch config without topics: every item gets none."""

    version = "none"

    def assign(self, titles: list[str], embeddings: np.ndarray) -> list[list[str]]:
        return [[] for _ in titles]


class ExampleTopics:
    """Topics by cosine similarity of title embeddings to each topic's example centroid.

    Args:
        names: Topic names, in the config's order.
        centroids: ``(topics, dim)`` L2-normalised mean example embeddings.
        threshold: Minimum cosine similarity for a topic.
        margin: How far below the best topic's similarity another topic may be and still count.
        version: A fingerprint of the phrases, the settings and the encoder.
    """

    def __init__(self, names: list[str], centroids: np.ndarray, threshold: float, margin: float, version: str) -> None:
        self.names, self.centroids = names, centroids
        self.threshold, self.margin, self.version = threshold, margin, version

    @classmethod
    def from_examples(
        cls,
        examples: dict[str, list[str]],
        encoder: Any,
        encoder_version: str = "",
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
    ) -> ExampleTopics:
        """Embed every topic's phrases (one batched call) and average them into centroids.

        Args:
            examples: ``{topic: [example phrases]}``, each topic with at least one phrase.
            encoder: A ``SentenceTransformer`` (``load_sentence_encoder("minilm")``).
            encoder_version: The encoder's weights fingerprint, part of :attr:`version`.
            threshold: Minimum cosine similarity (default measured, see the module docstring).
            margin: Similarity below the best topic within which more topics count.

        Returns:
            The topic source.
        """
        names = list(examples)
        phrases = [p for name in names for p in examples[name]]
        owners = np.repeat(np.arange(len(names)), [len(examples[name]) for name in names])
        vectors = embed(encoder, phrases)  # (phrases, dim), unit rows
        sums = np.zeros((len(names), vectors.shape[1]), dtype=np.float64)
        np.add.at(sums, owners, vectors)
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        basis = {"examples": examples, "threshold": threshold, "margin": margin, "encoder": encoder_version}
        return cls(names, centroids.astype(np.float32), threshold, margin, "examples:" + json_sha256(basis)[:12])

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """``(titles, topics)`` cosine similarities (the embeddings are unit rows)."""
        return embeddings @ self.centroids.T

    def assign(self, titles: list[str], embeddings: np.ndarray) -> list[list[str]]:
        """Topics per title, most similar first.

        Args:
            titles: The titles (unused: their embeddings say it all).
            embeddings: ``(titles, dim)`` their L2-normalised embeddings.

        Returns:
            A list of topic names per title (possibly empty).
        """
        if not self.names or len(embeddings) == 0:
            return [[] for _ in range(len(embeddings))]
        sims = self.similarities(embeddings)
        keep = (sims >= self.threshold) & (sims >= sims.max(axis=1, keepdims=True) - self.margin)
        order = np.argsort(-sims, axis=1)
        return [[self.names[j] for j in row_order if row_keep[j]] for row_order, row_keep in zip(order, keep)]


class ModelTopics:
    """Topics from a fieldtune classification or multi-label model (any kind: encoder, SetFit, ...).

    Args:
        predictor: The loaded predictor (:func:`fieldtune.predict.load`).
    """

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.version = model_version(predictor.meta)

    def assign(self, titles: list[str], embeddings: np.ndarray) -> list[list[str]]:
        """The top label (classification) or the labels at or above the threshold (multi-label)."""
        if not titles:
            return []
        task = self.predictor.task
        predictions = self.predictor.predict_examples([task.from_text(t) for t in titles])
        return [_labels(p) for p in predictions]


def _labels(prediction: dict[str, Any]) -> list[str]:
    if "scores" in prediction:  # multi-label: {"scores": {label: p}, "threshold": t}
        scores, threshold = prediction["scores"], prediction["threshold"]
        return [k for k, v in sorted(scores.items(), key=lambda kv: -kv[1]) if v >= threshold]
    return [max(prediction, key=prediction.get)]  # classification: {label: p}


def load_topics(
    spec: Path | dict[str, list[str]] | None,
    encoder: Any,
    encoder_version: str = "",
    backend: str = "auto",
    batch_size: int = 64,
    threshold: float | None = None,
) -> Topics:
    """The topic source a watch config's ``topics:`` names.

    Args:
        spec: A model folder, ``{topic: [example phrases]}``, or empty/None for no topics.
        encoder: The sentence encoder (used for example phrases only).
        encoder_version: Its weights fingerprint.
        backend: Predictor backend for a model folder.
        batch_size: Texts per forward pass for a model folder.
        threshold: Cosine threshold for example phrases (default :data:`DEFAULT_THRESHOLD`).

    Returns:
        A :class:`Topics`.
    """
    if not spec:
        return NoTopics()
    if isinstance(spec, dict):
        chosen = DEFAULT_THRESHOLD if threshold is None else threshold
        return ExampleTopics.from_examples(spec, encoder, encoder_version, threshold=chosen)
    return ModelTopics(load(spec, batch_size=batch_size, backend=backend))
