"""The assistant's two forward passes on ONNX Runtime: the intent model and the retrieval encoder.

Every customer message runs two small encoders: the intent model (calibrated probabilities and the
out-of-scope detector's features: the mean of each of the last 4 hidden layers) and the retrieval
encoder (the query's embedding). ``support build`` exports both (fp32, the same graph, no
quantisation: the answer rule's thresholds hold unchanged) into the assistant's ``onnx/`` folder,
checks them against torch on the dev questions, and the assistant serves with them.

Measured (MiniLM-L6, CLINC150 questions, 2 threads): a batch of 4 questions through the intent model
takes 6.0 ms on ONNX Runtime against 11.2 ms in torch (1 question: 1.9 vs 6.6 ms), outputs equal to
3e-6. int8 ran at 3.0 ms but moves the probabilities and distances the rule was chosen on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...predict.onnx_embedder import MeanPooled, OnnxEmbedder, export_graph
from ...predict.onnx_runtime import open_session

ONNX_DIR = "onnx"
MAX_DIFF = 1e-4  # largest allowed |torch - onnx| of a probability or (relative) of a feature/embedding


def _sample(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """A padded batch of the shortest and the longest text: the trace sees padding and two lengths."""
    by_length = sorted(texts, key=len)
    pair = [by_length[0], by_length[-1]] if len(by_length) > 1 else by_length * 2
    return tokenizer(pair, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


def export_intent(intents: Any, folder: Path, texts: list[str]) -> tuple[Path, Any, float]:
    """Export an :class:`~.intent.IntentModel`'s graph to ``folder/onnx/intent.onnx``; returns the path,
    its session (as the assistant serves it) and the largest difference from torch on ``texts``
    (probabilities, and features relative to their scale)."""
    path = folder / ONNX_DIR / "intent.onnx"
    enc = _sample(intents.tokenizer, texts, intents.predictor.max_length)
    export_graph(intents.graph, (enc["input_ids"], enc["attention_mask"]), ["logits", "features"], path)
    session = open_session(path, spin=False)
    reference = intents.encode(texts, session=None)
    served = intents.encode(texts, session=session)
    return path, session, max(_max_diff(reference[0], served[0]), _relative_diff(reference[1], served[1]))


def export_encoder(encoder: Any, folder: Path, texts: list[str]) -> tuple[Path, float] | None:
    """Export a SentenceTransformer (transformer + mean pooling [+ normalisation]) to
    ``folder/onnx/encoder/`` (graph, tokenizer, ``encoder.json``); None for another pooling, which
    stays in torch. Returns the path and the largest relative difference from torch on ``texts``."""
    modules = [type(m).__name__ for m in encoder]
    pooling = encoder[1].get_config_dict().get("pooling_mode") if len(modules) > 1 else None
    if modules[:2] != ["Transformer", "Pooling"] or pooling != "mean" or modules[2:] not in ([], ["Normalize"]):
        return None
    target = folder / ONNX_DIR / "encoder"
    enc = _sample(encoder.tokenizer, texts, encoder.max_seq_length)
    graph = MeanPooled(encoder[0].auto_model)
    export_graph(graph, (enc["input_ids"], enc["attention_mask"]), ["embedding"], target / "encoder.onnx")
    encoder.tokenizer.save_pretrained(target)
    (target / "encoder.json").write_text(json.dumps({"max_seq_length": encoder.max_seq_length}), encoding="utf-8")
    served = OnnxSentenceEncoder(target)
    options = {"batch_size": 64, "normalize_embeddings": True, "convert_to_numpy": True, "show_progress_bar": False}
    return target, _relative_diff(encoder.encode(texts, **options), served.encode(texts, **options))


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) if np.size(a) else 0.0


def _relative_diff(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.abs(a).max()) if np.size(a) else 1.0
    return _max_diff(a, b) / max(scale, 1e-12)


class OnnxSentenceEncoder(OnnxEmbedder):
    """The retrieval encoder as ONNX Runtime runs it (the ``encode`` of a SentenceTransformer, as
    :func:`~.retrieval.encode` calls it), from what :func:`export_encoder` wrote in ``folder``."""

    def __init__(self, folder: Path) -> None:
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        max_length = int(json.loads((folder / "encoder.json").read_text(encoding="utf-8"))["max_seq_length"])
        super().__init__(open_session(folder / "encoder.onnx", spin=False), tokenizer, max_length)
