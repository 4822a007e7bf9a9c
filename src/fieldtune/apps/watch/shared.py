"""One int8 pass per headline for all three watch models, when they share their bottom layers.

The watch scores every headline with three encoders: the sentiment model, the NER model and the
title encoder (``minilm``, for topics and de-duplication). Trained with ``method: freeze`` from
``minilm``, the first two keep the encoder's embeddings and bottom ``freeze_layers`` layers bit for
bit; those layers then need computing once, not three times. :class:`SharedPass` finds how many
bottom layers all three have identical (:func:`shared_depth`), traces one graph — the shared trunk,
then each model's own top layers and head — to ONNX, quantises it to int8 like the separate exports
and caches it under ``$FIELDTUNE_CACHE/watch-shared/``. With 4 of MiniLM's 6 layers shared, a headline
costs 10 layer passes instead of 18.

Each predictor keeps its own tokenisation and decoding: their logits come from
:meth:`SharedPass.forward`, which runs the graph once for every token sequence not seen since the
last :meth:`SharedPass.clear` and memoises all three outputs, so the sentiment call computes what
the NER call and the title encoder then only look up (a headline tokenises the same for all three).
Models that share nothing (full fine-tuning), adapters, or architectures other than BERT keep the
separate passes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers.masking_utils import create_bidirectional_mask

from ...artifacts import is_adapter_dir, weights_fingerprint
from ...export.parity import INT8_MIN_AGREEMENT, SAMPLE_TEXTS
from ...predict.onnx_runtime import open_session
from ...training.batching import collate, eval_batches
from ...utils.atomic import staged_dir
from ...zoo import cache_dir, resolve

log = logging.getLogger(__name__)

SHARED_FORMAT = 1  # bump when the graph changes: cached exports of another format are not reused
# int8 vs PyTorch title embeddings on the parity texts; the separate int8 minilm encoder: 0.962 at worst
MIN_EMBEDDING_COSINE = 0.95
Forward = Callable[[list[dict[str, Any]], int, int], list[np.ndarray]]


def shared_depth(encoder: torch.nn.Module, body: torch.nn.Module) -> int | None:
    """How many bottom layers the BERT ``body`` has bit for bit as ``encoder`` has them; None when
    even the embeddings differ (nothing to share)."""

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        x, y = a.state_dict(), b.state_dict()
        return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)

    if not same(encoder.embeddings, body.embeddings):
        return None
    depth, layers = 0, min(len(encoder.encoder.layer), len(body.encoder.layer))
    while depth < layers and same(encoder.encoder.layer[depth], body.encoder.layer[depth]):
        depth += 1
    return depth


class _SharedGraph(torch.nn.Module):
    """``(input_ids, attention_mask) -> ([sentiment logits,] [NER logits,] title embedding)``: the
    encoder's layers run once; each model takes the encoder's hidden states at its shared depth and
    runs its own remaining layers and head."""

    def __init__(self, encoder: Any, models: dict[str, tuple[Any, int]]) -> None:
        super().__init__()
        self.config = encoder.config
        self.embeddings, self.layers = encoder.embeddings, encoder.encoder.layer
        self.names, self.depths = list(models), [depth for _, depth in models.values()]
        self.tops = torch.nn.ModuleList(torch.nn.ModuleList(m.bert.encoder.layer[d:]) for m, d in models.values())
        # sequence classifiers read the pooled [CLS] state; token classifiers every position
        self.poolers = torch.nn.ModuleList(
            m.bert.pooler if n == "sentiment" else torch.nn.Identity() for n, (m, _) in models.items()
        )
        self.heads = torch.nn.ModuleList(m.classifier for m, _ in models.values())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.embeddings(input_ids=input_ids)  # (b, s, d)
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=attention_mask)
        taps = [hidden]  # the encoder's hidden states after 0, 1, ... layers
        for layer in self.layers:
            taps.append(layer(taps[-1], mask))
        outputs = []
        for depth, top, pooler, head in zip(self.depths, self.tops, self.poolers, self.heads):
            own = taps[depth]
            for layer in top:
                own = layer(own, mask)
            outputs.append(head(pooler(own)))
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (taps[-1] * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # mean pooling, as minilm
        outputs.append(torch.nn.functional.normalize(pooled, dim=-1))
        return tuple(outputs)


class SharedPass:
    """The shared int8 graph's session, with a memo of its outputs per token sequence.

    Args:
        session: ONNX Runtime session (inputs ``input_ids``, ``attention_mask``; outputs ``sentiment``
            and ``ner`` for the models in the graph, then ``embedding``).
        depths: Bottom layers each model in the graph shares with the encoder (``{"sentiment": 4}``).
        batch_size: Sequences per run of the graph.
        workers: Runs at once (each on one core).
    """

    def __init__(self, session: Any, depths: dict[str, int], batch_size: int = 64, workers: int = 1) -> None:
        self.session, self.depths, self.batch_size = session, depths, batch_size
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="watch-shared")
        self.outputs = [o.name for o in session.get_outputs()]
        self._memo: dict[tuple[int, ...], dict[str, np.ndarray]] = {}

    @classmethod
    def load(
        cls, sentiment_dir: Path, ner_dir: Path | None, batch_size: int = 64, threads: int | None = None
    ) -> SharedPass | None:
        """The cached shared graph of these models (exported on first use, ~15 s), or None when neither
        shares a layer with ``minilm``. A model that shares nothing, an adapter or a non-BERT model
        stays out of the graph (its predictor keeps its own session).

        ``threads`` (default: all cores) batches run at once, one core each: on 2 cores that gave 2.2x
        the rate of one run using both (small matrices parallelise poorly inside an operator);
        ``Session.run`` is thread-safe.
        """
        models = {"sentiment": Path(sentiment_dir), **({"ner": Path(ner_dir)} if ner_dir else {})}
        models = {n: d for n, d in models.items() if not is_adapter_dir(d) and weights_fingerprint(d)}
        if not models:
            return None
        encoder = Path(resolve("minilm"))
        prints = [weights_fingerprint(d) for d in (encoder, *models.values())]
        key = hashlib.sha256(json.dumps([SHARED_FORMAT, list(models), *prints]).encode()).hexdigest()[:16]
        target = cache_dir() / "watch-shared" / key
        info = target / "shared.json"
        if not info.is_file():
            with staged_dir(target, keep_existing=lambda t: (t / "shared.json").is_file()) as tmp:
                _export(encoder, models, tmp)
        meta = json.loads(info.read_text())
        if not meta["parity_ok"]:
            log.info("watch: separate passes (%s)", meta["reason"])
            return None
        session = open_session(target / "model.int8.onnx", 1)
        return cls(session, meta["depths"], batch_size, threads or os.cpu_count() or 1)

    def clear(self) -> None:
        """Forget the memoised outputs (between batches of items)."""
        self._memo.clear()

    def forward(self, output: str) -> Forward:
        """A predictor forward (``(features, batch_size, pad_id) -> logits per feature``) reading ``output``."""

        def run(features: list[dict[str, Any]], batch_size: int, pad_id: int) -> list[np.ndarray]:
            rows = self.rows([f["input_ids"] for f in features], pad_id)
            return [row[output] for row in rows]

        return run

    def rows(self, sequences: list[list[int]], pad_id: int) -> list[dict[str, np.ndarray]]:
        """All outputs per sequence (token outputs cut to its length), running only unseen ones."""
        keys = [tuple(s) for s in sequences]
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))

        def run(idx: list[int]) -> None:
            batch = collate([{"input_ids": list(todo[i])} for i in idx], pad_id)
            feed = {k: v.numpy().astype(np.int64) for k, v in batch.items()}
            results = dict(zip(self.outputs, self.session.run(self.outputs, feed)))
            for row, i in enumerate(idx):
                n = len(todo[i])
                self._memo[todo[i]] = {
                    name: (value[row, :n] if value.ndim == 3 else value[row]) for name, value in results.items()
                }

        list(self._pool.map(run, eval_batches([len(k) for k in todo], self.batch_size)))
        return [self._memo[k] for k in keys]


class SharedEncoder:
    """The title encoder's surface (``encode``) over a :class:`SharedPass`: minilm's tokenizer, then
    the memoised ``embedding`` output."""

    def __init__(self, shared: SharedPass, tokenizer: Any, max_length: int) -> None:
        self.shared, self.tokenizer, self.max_length = shared, tokenizer, max_length

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.shared.session.get_outputs()[-1].shape[-1])

    def encode(self, texts: list[str], batch_size: int = 32, **_: Any) -> np.ndarray:
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        rows = self.shared.rows(ids, self.tokenizer.pad_token_id)
        return np.stack([r["embedding"] for r in rows]).astype(np.float32)


def _export(encoder_dir: Path, model_dirs: dict[str, Path], folder: Path) -> None:
    """Trace the shared graph, quantise it, check it against PyTorch; ``shared.json`` says how it went."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kwargs = {"local_files_only": True, "attn_implementation": "eager"}
    auto = {
        "sentiment": transformers.AutoModelForSequenceClassification,
        "ner": transformers.AutoModelForTokenClassification,
    }
    encoder = transformers.AutoModel.from_pretrained(encoder_dir, **kwargs).eval()
    models: dict[str, tuple[Any, int]] = {}
    if type(encoder).__name__ == "BertModel":
        for name, path in model_dirs.items():
            model = auto[name].from_pretrained(path, **kwargs).eval()
            depth = shared_depth(encoder, model.bert) if type(model).__name__.startswith("Bert") else None
            if depth is not None:
                models[name] = (model, depth)
    meta: dict[str, Any] = {"format": SHARED_FORMAT, "depths": {n: d for n, (_, d) in models.items()}}
    meta["parity_ok"] = any(meta["depths"].values())
    meta["reason"] = (
        f"bottom layers shared with minilm: {meta['depths']}"
        if meta["parity_ok"]
        else "no model shares a layer with minilm (train them with method: freeze to share the bottom layers)"
    )
    if meta["parity_ok"]:
        graph = _SharedGraph(encoder, models).eval()
        names = [*models, "embedding"]
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
        axes.update({n: ({0: "batch", 1: "sequence"} if n == "ner" else {0: "batch"}) for n in names})
        dummy = torch.ones((2, 8), dtype=torch.int64)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, (dummy, dummy), str(folder / "model.onnx"), dynamo=False, opset_version=17,
                input_names=["input_ids", "attention_mask"], output_names=names, dynamic_axes=axes,
            )  # fmt: skip
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser warns on the root logger ("pre-process first")
        try:
            quantize_dynamic(
                str(folder / "model.onnx"), str(folder / "model.int8.onnx"), op_types_to_quantize=["MatMul", "Gemm"],
                weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            )  # fmt: skip
        finally:
            root.setLevel(level)
        (folder / "model.onnx").unlink()
        meta.update(_parity(graph, folder / "model.int8.onnx", encoder_dir, names))
        meta["parity_ok"] = (
            meta.get("sentiment_agreement", 1.0) >= INT8_MIN_AGREEMENT
            and meta.get("ner_agreement", 1.0) >= INT8_MIN_AGREEMENT
            and meta["embedding_min_cosine"] >= MIN_EMBEDDING_COSINE
        )
        if not meta["parity_ok"]:
            meta["reason"] = "the int8 shared graph fails the parity check (see shared.json)"
    (folder / "shared.json").write_text(json.dumps(meta, indent=2))


def _parity(graph: torch.nn.Module, path: Path, tokenizer_dir: Path, names: list[str]) -> dict[str, float]:
    """The int8 graph vs PyTorch on the exporter's sample texts: label agreement per head, embedding cosine."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    enc = tokenizer(list(SAMPLE_TEXTS), padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        expected = dict(zip(names, (t.numpy() for t in graph(enc["input_ids"], enc["attention_mask"]))))
    feed = {k: enc[k].numpy().astype(np.int64) for k in ("input_ids", "attention_mask")}
    got = dict(zip(names, open_session(path).run(names, feed)))
    result = {"embedding_min_cosine": float((expected["embedding"] * got["embedding"]).sum(-1).min())}
    if "sentiment" in names:
        result["sentiment_agreement"] = float((expected["sentiment"].argmax(-1) == got["sentiment"].argmax(-1)).mean())
    if "ner" in names:
        real = enc["attention_mask"].numpy().astype(bool)
        result["ner_agreement"] = float((expected["ner"].argmax(-1) == got["ner"].argmax(-1))[real].mean())
    return result
