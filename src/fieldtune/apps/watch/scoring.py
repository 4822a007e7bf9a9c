"""Per-item scores of a batch of news items: sentiment, topics, entities, organisations, embedding.

Everything is batched per model: one call of the sentiment predictor on every segment of the batch
(titles, and the first sentences of bodies: :mod:`.sentences`), one call of the sentence encoder on
the titles (its embeddings serve topics-from-examples and de-duplication alike), one call of the topic
model (when topics come from a model folder) and one of the NER model (when configured). Each model
tokenises each text once; per-item Python work is limited to assembling the result dicts.

With an int8 sentiment model (the predictor resolved to ``onnx-int8``) the title encoder runs int8 too
(:class:`Int8Encoder`): in PyTorch it was the slowest model of the batch; int8 doubles its speed. When
the sentiment and NER models were trained with ``method: freeze`` from ``minilm``, all three run as
one int8 graph that computes their shared bottom layers once (:mod:`.shared`); the predictors keep
their own tokenisation and decoding.

Sentiment probabilities are the predictor's calibrated ones (the artifact's temperature scaling is
applied by the predictor); an item's ``sentiment`` is the argmax of its aggregated probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from ...artifacts import model_version, weights_fingerprint
from ...errors import UserError
from ...fewshot.head import embed
from ...models.embedder import load_sentence_encoder
from ...predict import load
from ...predict.onnx_embedder import MeanPooled, OnnxEmbedder, export_graph
from ...predict.onnx_runtime import open_session
from ...utils.atomic import staged_dir
from ...zoo import cache_dir, resolve
from .config import WatchConfig
from .entities import AliasLinker, link_orgs, org_words
from .sentences import aggregate, segments
from .shared import SharedEncoder, SharedPass
from .topics import Topics, load_topics

ENCODER = "minilm"  # the bundled sentence encoder: title embeddings for topics and de-duplication
ENCODER_MAX_LENGTH = 256  # minilm's max_seq_length (titles are far shorter)
INT8_FORMAT = 2  # bump when the int8 export changes: cached exports of another format are not reused
POLARITIES = ("positive", "negative", "neutral")
FORWARD_BATCH = 64  # texts per model call; a claim of items (config batch_size) is scored in such slices


def sentiment_columns(labels: Sequence[str], model_dir: Path | str | None = None) -> dict[str, int]:
    """The column of each polarity among a sentiment model's labels, matched case-insensitively.

    Args:
        labels: The model's label names (``"Positive"``, ``"NEGATIVE"``, ``" neutral "`` all match).
        model_dir: The model folder, named in the error.

    Returns:
        ``{"positive": i, "negative": j, "neutral": k}``.

    Raises:
        UserError: A polarity has no label.
    """
    index = {str(label).strip().lower(): i for i, label in enumerate(labels)}
    missing = [p for p in POLARITIES if p not in index]
    if missing:
        raise UserError(
            f"the sentiment model has no {' / '.join(repr(m) for m in missing)} label (its labels: {list(labels)})",
            path=model_dir,
            hint="a watch sentiment model needs the labels positive, negative and neutral: "
            "train it on data labelled with those three (case does not matter)",
        )
    return {p: index[p] for p in POLARITIES}


class Scorer:
    """Scores batches of items with the watch config's models; build it once per process.

    Args:
        sentiment: The sentiment predictor (labels include positive / negative / neutral).
        encoder: The title encoder (``SentenceTransformer``, or :class:`Int8Encoder`): ``encode(texts, ...)``.
        topics: The topic source (:func:`~.topics.load_topics`).
        linker: The watch list's aliases.
        ner: An optional NER predictor (ORG spans).
        versions: Model versions stored with every row (``{"sentiment", "topics", "embedder", "ner"?}``).
        batch_size: Titles per forward pass of the encoder.
        shared: The int8 graph the models share (:class:`~.shared.SharedPass`: its memo is cleared per
            batch), when ``sentiment``, ``ner`` and ``encoder`` run in it; None when each runs alone.
    """

    def __init__(
        self,
        sentiment: Any,
        encoder: Any,
        topics: Topics,
        linker: AliasLinker,
        ner: Any = None,
        versions: dict[str, str] | None = None,
        batch_size: int = 64,
        shared: SharedPass | None = None,
    ) -> None:
        self.sentiment, self.encoder, self.topics, self.linker, self.ner = sentiment, encoder, topics, linker, ner
        self.batch_size, self.shared = batch_size, shared
        model_dir = getattr(getattr(sentiment, "artifact", None), "path", None)
        self.columns = sentiment_columns(sentiment.labels, model_dir)
        # the stored label: the polarity's canonical lower-case name; any other label as the model spells it
        canonical = {i: p for p, i in self.columns.items()}
        self.label_names = [canonical.get(i, label) for i, label in enumerate(sentiment.labels)]
        self.versions = versions or {"sentiment": model_version(sentiment.meta), "topics": topics.version}

    @classmethod
    def from_config(cls, cfg: WatchConfig) -> Scorer:
        """Load every model the config names (sentiment, encoder, topics, optional NER).

        Args:
            cfg: A loaded watch config (model folders already resolved and checked).

        Returns:
            The scorer.

        Raises:
            UserError: A model folder can't be loaded, or the sentiment model lacks a polarity label.
        """
        sentiment = load(cfg.sentiment, backend=cfg.backend, batch_size=FORWARD_BATCH)
        sentiment_columns(sentiment.labels, cfg.sentiment)  # fail before loading anything else
        ner = load(cfg.ner, backend=cfg.backend, batch_size=FORWARD_BATCH) if cfg.ner else None
        encoder_version = (weights_fingerprint(Path(resolve(ENCODER))) or ENCODER)[:12]
        shared = None
        if all(getattr(m, "backend", "") == "onnx-int8" for m in (sentiment, ner) if m is not None):
            # the user chose int8 speed: the encoder follows, in one graph with the others when they share layers
            ner_dir = ner.artifact.path if ner is not None else None
            shared = SharedPass.load(sentiment.artifact.path, ner_dir)
            encoder_version = f"{encoder_version}-int8"
        if shared is not None:
            for name, predictor in (("sentiment", sentiment), ("ner", ner)):
                if name in shared.depths:  # the models in the shared graph; others keep their session
                    predictor.use_forward(shared.forward(name), "onnx-int8-shared")
            tokenizer = transformers.AutoTokenizer.from_pretrained(resolve(ENCODER), local_files_only=True)
            encoder: Any = SharedEncoder(shared, tokenizer, ENCODER_MAX_LENGTH)
        elif encoder_version.endswith("-int8"):
            encoder = Int8Encoder.load(encoder_version.removesuffix("-int8"))
        else:
            encoder = load_sentence_encoder(ENCODER)
        topics = load_topics(cfg.topics, encoder, encoder_version, cfg.backend, FORWARD_BATCH, cfg.topic_threshold)
        versions = {"sentiment": model_version(sentiment.meta), "topics": topics.version, "embedder": encoder_version}
        if ner is not None:
            versions["ner"] = model_version(ner.meta)
        return cls(sentiment, encoder, topics, AliasLinker(cfg.entities), ner, versions, FORWARD_BATCH, shared)

    def score(self, items: Sequence[Any]) -> list[dict[str, Any]]:
        """Score a batch (see the module docstring for what runs how).

        Args:
            items: :class:`~.items.Item` objects (``id``, ``title``, ``text``), in any number.

        Returns:
            One dict per item, in order: ``id``, ``sentiment``, ``p_positive``, ``p_negative``,
            ``p_neutral``, ``topics``, ``entities``, ``orgs``, ``embedding`` (float32, unit norm),
            ``model_versions`` — the columns ``WatchStore`` ``save_scores`` takes.
        """
        if not items:
            return []
        if self.shared is not None:
            self.shared.clear()  # the memo holds one batch: each headline runs the shared graph once
        titles = [item.title for item in items]
        texts, owners, is_title = self._segments(items)
        probs = self._sentiment(texts, owners, is_title, len(items))  # (items, labels)
        embeddings = embed(self.encoder, titles, self.batch_size)  # (items, dim), unit rows
        topics = self.topics.assign(titles, embeddings)
        entities, orgs = self._entities(items, texts, owners)
        best = probs.argmax(axis=1)
        pos, neg, neu = (probs[:, self.columns[p]].tolist() for p in POLARITIES)
        return [
            {
                "id": item.id,
                "sentiment": self.label_names[best[i]],
                "p_positive": pos[i],
                "p_negative": neg[i],
                "p_neutral": neu[i],
                "topics": topics[i],
                "entities": entities[i],
                "orgs": orgs[i],
                "embedding": embeddings[i],
                "model_versions": dict(self.versions),
            }
            for i, item in enumerate(items)
        ]

    def _segments(self, items: Sequence[Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Every item's title and body sentences, flattened: (texts, owner item index, is-title flags)."""
        per_item = [segments(item.title, getattr(item, "text", "") or "") for item in items]
        counts = [len(s) for s in per_item]
        owners = np.repeat(np.arange(len(items)), counts)
        is_title = np.zeros(len(owners), dtype=bool)
        is_title[np.cumsum([0, *counts[:-1]])] = True
        return [t for s in per_item for t in s], owners, is_title

    def _sentiment(self, texts: list[str], owners: np.ndarray, is_title: np.ndarray, n_items: int) -> np.ndarray:
        """Calibrated probabilities per item: one predictor call on all segments, then aggregated."""
        task, labels = self.sentiment.task, self.sentiment.labels
        predictions = self.sentiment.predict_examples([task.from_text(t) for t in texts])
        probs = np.array([[p[label] for label in labels] for p in predictions], dtype=np.float64)
        if len(texts) == n_items:  # headlines only: nothing to aggregate
            return probs
        return aggregate(probs, owners, is_title, self.columns["neutral"], n_items)

    def _entities(
        self, items: Sequence[Any], texts: list[str], owners: np.ndarray
    ) -> tuple[list[list[str]], list[list[str]]]:
        """Watch-list entities per item (aliases in title + body, NER ORG spans linked) and unlinked ORGs."""
        entities = [self.linker.find(f"{item.title}\n{getattr(item, 'text', '') or ''}") for item in items]
        if self.ner is None:
            return entities, [[] for _ in items]
        spans: list[list[str]] = [[] for _ in items]
        for owner, output in zip(owners.tolist(), self.ner.predict(texts)):  # one batched call, all segments
            spans[owner].extend(org_words(output))
        linked = [link_orgs(self.linker, found, words) for found, words in zip(entities, spans)]
        return [e for e, _ in linked], [o for _, o in linked]


class Int8Encoder(OnnxEmbedder):
    """``minilm`` as an int8 ONNX graph with mean pooling and L2 normalisation inside, behind the part of
    ``SentenceTransformer``'s surface that :func:`~fieldtune.fewshot.head.embed` uses.

    Exported once per encoder version into ``$FIELDTUNE_CACHE/watch-encoder/`` (about 10 s) and reused.
    Measured against the PyTorch encoder on 320 titles: 350 vs 172 titles/s on one thread (2.0x), 290 vs
    80 on two busy cores; each embedding's cosine to PyTorch's >= 0.989. Pair similarities move by up to
    0.016: de-duplication at 0.92 grouped 8 of the 10 rewrites of ``dedup.py``'s check instead of 9 (and
    the same 1 of 12 different stories, the polarity flip); topics-from-examples on ``topics.py``'s set:
    precision 0.96, recall 0.87 (PyTorch: 0.98, 0.85).

    Args:
        session: The ONNX Runtime session (inputs ``input_ids``, ``attention_mask``; output ``embedding``).
        tokenizer: minilm's tokenizer.
    """

    def __init__(self, session: Any, tokenizer: Any) -> None:
        super().__init__(session, tokenizer, ENCODER_MAX_LENGTH)

    @classmethod
    def load(cls, version: str, folder: Path | None = None, threads: int | None = None) -> Int8Encoder:
        """The cached int8 export of :data:`ENCODER` for ``version`` (its weights fingerprint), made if absent."""
        target = (folder or cache_dir() / "watch-encoder") / f"{version}-v{INT8_FORMAT}"
        if not (target / "model.int8.onnx").is_file():
            with staged_dir(target, keep_existing=lambda t: (t / "model.int8.onnx").is_file()) as tmp:
                _export_int8(resolve(ENCODER), tmp)
        tokenizer = transformers.AutoTokenizer.from_pretrained(resolve(ENCODER), local_files_only=True)
        return cls(open_session(target / "model.int8.onnx", threads), tokenizer)


def _export_int8(source: str, folder: Path) -> None:
    """Trace the encoder to ONNX (dynamic batch and length) and quantise its MatMuls to int8 per channel."""
    # imported here: the quantiser is needed once per machine, when the export is made
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = transformers.AutoModel.from_pretrained(source, local_files_only=True, attn_implementation="eager").eval()
    dummy = torch.ones((2, 8), dtype=torch.int64)
    export_graph(MeanPooled(model), (dummy, dummy), ["embedding"], folder / "model.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser warns on the root logger ("pre-process first")
    try:
        quantize_dynamic(
            str(folder / "model.onnx"),
            str(folder / "model.int8.onnx"),
            op_types_to_quantize=["MatMul", "Gemm"],
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,  # 7-bit weights, as fieldtune export (see its _quantize)
        )
    finally:
        root.setLevel(level)
    (folder / "model.onnx").unlink()  # only the int8 graph is used
