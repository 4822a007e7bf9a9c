"""The training reference of a model version: what its traffic should look like.

Drift is measured against the model's own held-out data (:mod:`.reference_data` says which): the
labels and confidences the model predicts on it (through its task's ``summarize``, exactly as the
server logs them), sentence embeddings of a sample of it, the vocabulary of the *training* texts
and the held-out data's own rate of words unseen in training. It is computed once per version and
cached as npz + json under ``<cache>/<version>/`` — never beside the artifact, whose files are
checksummed.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import make_url

from ..artifacts import find_model_dir
from ..errors import UserError
from ..predict import load_predictor
from ..tasks import get_task
from ..utils.atomic import atomic_write_bytes
from ..utils.hashing import file_sha256
from .reference_data import REFERENCE_HINT, reference_texts
from .text_features import EMBEDDER, embed, seeded_sample, words

FORMAT = 2  # bump when the cached content changes meaning (2: Chinese words segmented by jieba)
MAX_TEXTS = 2000  # predicted over: enough for stable label shares, a minute at most on a CPU
MAX_EMBEDDINGS = 500  # the MMD test's kernel is quadratic in the sample
SMALL = 30  # fewer reference texts than this: said in the report


@dataclass
class Reference:
    """What the model's traffic looked like on held-out data."""

    version: str
    task: str
    labels: list[str]  # the label space of the distribution check
    source: str  # where the texts came from
    texts: int
    label_counts: dict[str, int]  # predicted labels (multilabel: each label of each prediction)
    confidences: np.ndarray
    embeddings: np.ndarray  # L2-normalised, one row per sampled text
    vocab: frozenset[str]
    oov_rate: float  # share of the reference's words unseen in training
    vocab_source: str
    notes: list[str] = field(default_factory=list)
    created: str = ""

    def summary(self) -> dict[str, Any]:
        """The reference without its arrays, for reports and the webhook JSON."""
        conf = self.confidences
        return {
            "source": self.source,
            "texts": self.texts,
            "embedded": int(len(self.embeddings)),
            "mean_confidence": float(conf.mean()) if len(conf) else None,
            "oov_rate": self.oov_rate,
            "vocab_source": self.vocab_source,
            "vocab_size": len(self.vocab),
            "embedder": EMBEDDER,
            "notes": self.notes,
            "created": self.created,
        }


def default_cache_dir(store_url: str | None) -> Path:
    """``.drift/`` beside a SQLite store's file, else ``runs/.drift``."""
    try:
        url = make_url(store_url) if store_url else None
    except Exception:  # noqa: BLE001 - a bad URL fails later, when the store opens
        url = None
    if url is not None and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / ".drift"
    return Path("runs") / ".drift"


def load_reference(
    model_dir: Path,
    meta: dict[str, Any],
    version: str,
    cache_dir: Path,
    *,
    reference_file: Path | None = None,
    refresh: bool = False,
    backend: str = "auto",
) -> Reference:
    """The cached reference of ``version``, computed (and cached) when missing or stale.

    Args:
        model_dir: The artifact folder (its Predictor labels the reference texts).
        meta: Its ``fieldtune.json``.
        version: The model version (the cache folder's name).
        cache_dir: Cache root; files go to ``cache_dir/<version>/``.
        reference_file: Texts to use instead of the model's held-out data.
        refresh: Recompute even when a cached reference exists.
        backend: The Predictor backend that labels the reference texts.
    """
    key = "reference"
    if reference_file is not None:
        reference_file = Path(reference_file)
        if not reference_file.is_file():
            raise UserError("reference file not found", path=reference_file, hint=REFERENCE_HINT)
        key += "-" + file_sha256(reference_file)[:12]
    folder = Path(cache_dir) / version
    if not refresh:
        cached = _read_cache(folder, key, version)
        if cached is not None:
            return cached
    ref = compute_reference(model_dir, meta, version, reference_file=reference_file, backend=backend)
    _write_cache(folder, key, ref)
    return ref


def compute_reference(
    model_dir: Path,
    meta: dict[str, Any],
    version: str,
    *,
    reference_file: Path | None = None,
    backend: str = "auto",
) -> Reference:
    """Predict, embed and count words on the reference texts (see the module docstring)."""
    task = get_task(meta["task"])
    texts, source, train_texts, notes = reference_texts(model_dir, meta, reference_file)
    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        raise UserError(f"the reference ({source}) has {len(texts)} non-empty texts", hint=REFERENCE_HINT)
    if len(texts) < SMALL:
        notes.append(f"only {len(texts)} reference texts: the checks have little power (--reference FILE adds more)")
    if len(texts) > MAX_TEXTS:
        notes.append(f"a seeded sample of {MAX_TEXTS} of the {len(texts)} reference texts")
        texts = [texts[i] for i in seeded_sample(len(texts), MAX_TEXTS)]
    predictor = load_predictor(find_model_dir(model_dir), backend=backend)
    counts: Counter = Counter()
    confidences = []
    for output in predictor.predict(texts):
        label, confidence = task.summarize(output)
        counts.update(task.drift_labels(label) or [])
        if confidence is not None:
            confidences.append(confidence)
    if train_texts is None:
        vocab_texts, vocab_source = texts, f"{source} (no training texts: leave-one-out rate)"
    else:
        vocab_texts, vocab_source = train_texts, "training texts"
    vocab, rate = _vocab_and_rate(vocab_texts, texts)
    return Reference(
        version=version,
        task=task.name,
        labels=task.reference_labels(list(meta["labels"])),
        source=source,
        texts=len(texts),
        label_counts=dict(counts),
        confidences=np.asarray(confidences, dtype=np.float64),
        embeddings=embed([texts[i] for i in seeded_sample(len(texts), MAX_EMBEDDINGS)]),
        vocab=frozenset(vocab),
        oov_rate=rate,
        vocab_source=vocab_source,
        notes=notes,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def _vocab_and_rate(train_texts: list[str], ref_texts: list[str]) -> tuple[set[str], float]:
    """The training vocabulary and the reference's rate of words unseen in training.

    A reference text that is also a training text is scored against the training texts without
    it (leave-one-out): otherwise a model validated on its training data would have a reference
    rate of 0 and any fresh traffic would look like drift.
    """
    df: Counter = Counter()  # training texts containing each word
    for text in train_texts:
        df.update(set(words(text)))
    copies = Counter(train_texts)
    total = unseen = 0
    for text in ref_texts:
        own = copies.get(text, 0)
        tokens = words(text)
        total += len(tokens)
        unseen += sum(1 for w in tokens if df.get(w, 0) <= own)
    return set(df), (unseen / total if total else 0.0)


# --- cache ----------------------------------------------------------------------------------------


def _read_cache(folder: Path, key: str, version: str) -> Reference | None:
    """The cached reference, or None when absent, from another format/encoder, or half-replaced."""
    try:
        info = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        with np.load(folder / f"{key}.npz") as arrays:
            stamp, confidences, embeddings = str(arrays["stamp"]), arrays["confidences"], arrays["embeddings"]
    except (OSError, ValueError, KeyError):
        return None
    if info.get("format") != FORMAT or info.get("embedder") != EMBEDDER or info.get("stamp") != stamp:
        return None
    if info.get("version") != version:
        return None
    return Reference(
        version=version,
        task=info["task"],
        labels=info["labels"],
        source=info["source"],
        texts=info["texts"],
        label_counts=info["label_counts"],
        confidences=confidences,
        embeddings=embeddings,
        vocab=frozenset(info["vocab"]),
        oov_rate=info["oov_rate"],
        vocab_source=info["vocab_source"],
        notes=info.get("notes", []),
        created=info.get("created", ""),
    )


def _write_cache(folder: Path, key: str, ref: Reference) -> None:
    """npz first, then the json naming the same stamp: a reader never pairs mismatched halves."""
    stamp = uuid.uuid4().hex
    buf = io.BytesIO()
    np.savez_compressed(buf, stamp=np.array(stamp), confidences=ref.confidences, embeddings=ref.embeddings)
    atomic_write_bytes(folder / f"{key}.npz", buf.getvalue())
    info = {
        "format": FORMAT,
        "stamp": stamp,
        "embedder": EMBEDDER,
        "version": ref.version,
        "task": ref.task,
        "labels": ref.labels,
        "source": ref.source,
        "texts": ref.texts,
        "label_counts": ref.label_counts,
        "oov_rate": ref.oov_rate,
        "vocab_source": ref.vocab_source,
        "notes": ref.notes,
        "created": ref.created,
        "vocab": sorted(ref.vocab),
    }
    atomic_write_bytes(folder / f"{key}.json", json.dumps(info, ensure_ascii=False).encode("utf-8"))
