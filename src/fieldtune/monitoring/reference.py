"""The training reference of a model version: what its traffic should look like.

Drift is measured against the model's own held-out data (the dev file, else the test file, else
the split of train held out at training): the labels and confidences the model predicts on it
(through ``summarize``, exactly as the server logs them), sentence embeddings of a sample of it,
the vocabulary of the *training* texts and the held-out data's own rate of words unseen in
training. It is computed once per version and cached as npz + json under
``<cache>/<version>/`` — never beside the artifact, whose files are checksummed.

Embeddings always come from the bundled ``minilm`` sentence encoder, whatever the served model
is, so NER and classification models alike get an embedding check.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

FORMAT = 1  # bump when the cached content changes meaning
EMBEDDER = "minilm"
MAX_TEXTS = 2000  # predicted over: enough for stable label shares, a minute at most on a CPU
MAX_EMBEDDINGS = 500  # the MMD test's kernel is quadratic in the sample
SEED = 0
SMALL = 30  # fewer reference texts than this: said in the report
NO_LABEL = "(none)"  # a multi-label prediction with no label
WORD = re.compile(r"\w+")
REFERENCE_HINT = (
    "pass --reference FILE: texts like the training data (.txt with one text per line, or a labelled file "
    "in the training format)"
)


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


# --- text features, shared with the window side -------------------------------------------------


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


def label_items(task: str, label: str | None) -> list[str] | None:
    """The labels one logged prediction counts for: its label (classification), each of its labels
    (multilabel, ``(none)`` for none); None when it has none to count (NER)."""
    if task == "ner" or label is None:
        return None
    if task == "multilabel":
        return [x for x in label.split("|") if x] or [NO_LABEL]
    return [label]


def label_space(task: str, labels: list[str]) -> list[str]:
    return [*labels, NO_LABEL] if task == "multilabel" else list(labels)


@functools.lru_cache(maxsize=1)
def _embedder() -> Any:
    from .. import zoo

    zoo.offline_env()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(zoo.resolve(EMBEDDER), device="cpu")


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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary sibling and ``os.replace``: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the reference ------------------------------------------------------------------------------


def default_cache_dir(store_url: str | None) -> Path:
    """``.drift/`` beside a SQLite store's file, else ``runs/.drift``."""
    from sqlalchemy.engine import make_url

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
        cache_dir: Cache root; files go to ``cache_dir/<version>/``.
        reference_file: Texts to use instead of the model's held-out data.
        refresh: Recompute even when a cached reference exists.
    """
    key = "reference"
    if reference_file is not None:
        reference_file = Path(reference_file)
        if not reference_file.is_file():
            raise UserError("reference file not found", path=reference_file, hint=REFERENCE_HINT)
        key += "-" + hashlib.sha256(reference_file.read_bytes()).hexdigest()[:12]
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
    task = meta["task"]
    texts, source, train_texts, notes = _reference_texts(model_dir, meta, reference_file)
    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        raise UserError(f"the reference ({source}) has {len(texts)} non-empty texts", hint=REFERENCE_HINT)
    if len(texts) < SMALL:
        notes.append(f"only {len(texts)} reference texts: the checks have little power (--reference FILE adds more)")
    if len(texts) > MAX_TEXTS:
        notes.append(f"a seeded sample of {MAX_TEXTS} of the {len(texts)} reference texts")
        texts = [texts[i] for i in seeded_sample(len(texts), MAX_TEXTS)]

    from ..serving.model import load_predictor
    from ..serving.service import summarize

    predictor = load_predictor(find_artifact(model_dir), backend)
    counts: Counter = Counter()
    confidences = []
    for output in predictor.predict(texts):
        label, confidence = summarize(output)
        counts.update(label_items(task, label) or [])
        if confidence is not None:
            confidences.append(confidence)
    sample = [texts[i] for i in seeded_sample(len(texts), MAX_EMBEDDINGS)]

    if train_texts is None:
        vocab_texts, vocab_source = texts, f"{source} (no training texts: leave-one-out rate)"
    else:
        vocab_texts, vocab_source = train_texts, "training texts"
    vocab, rate = _vocab_and_rate(vocab_texts, texts)
    return Reference(
        version=version,
        task=task,
        labels=label_space(task, list(meta["labels"])) if task != "ner" else [],
        source=source,
        texts=len(texts),
        label_counts=dict(counts),
        confidences=np.asarray(confidences, dtype=np.float64),
        embeddings=embed(sample),
        vocab=frozenset(vocab),
        oov_rate=rate,
        vocab_source=vocab_source,
        notes=notes,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def find_artifact(model_dir: Path) -> Path:
    from ..artifacts import find_model_dir

    return find_model_dir(model_dir)


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


# --- where the texts come from ------------------------------------------------------------------


def _reference_texts(
    model_dir: Path, meta: dict[str, Any], reference_file: Path | None
) -> tuple[list[str], str, list[str] | None, list[str]]:
    """(reference texts, their source, training texts or None, notes)."""
    from ..data.readers import read_examples
    from ..data.splits import stratified_split

    config = meta.get("config") or {}
    raw = dict(config.get("data") or {})
    task = meta["task"]
    notes: list[str] = []
    if reference_file is not None:
        texts = read_texts(reference_file, task, _data_config(raw))
        train_path = _existing(raw.get("train"), model_dir, config)
        train = None
        if train_path is not None:
            train = _texts(read_examples(train_path, task, _data_config(raw)).examples)
            train = train[: raw["limit"]] if raw.get("limit") else train
        else:
            notes.append("training data not found: vocabulary taken from the reference file")
        return texts, str(reference_file), train, notes

    if not raw.get("train"):
        raise UserError("the model's fieldtune.json names no training data", path=model_dir, hint=REFERENCE_HINT)
    data = _data_config(raw)
    paths = {name: _locate(name, raw.get(name), model_dir, config, meta) for name in ("train", "dev", "test")}
    for name, path in paths.items():
        if path is not None and _changed(path, meta, name):
            notes.append(f"{name} file {path} changed since training")
    examples = read_examples(paths["train"], task, data).examples
    examples = examples[: data.limit] if data.limit else examples
    if paths["dev"] is None:  # the model was selected on a split of train: recover it
        seed = int((config.get("train") or {}).get("seed", 42))
        examples, heldout = stratified_split(examples, data.dev_fraction, seed)
    if paths["dev"] is not None:
        texts, source = _texts(read_examples(paths["dev"], task, data).examples), f"dev {paths['dev']}"
    elif paths["test"] is not None:
        texts, source = _texts(read_examples(paths["test"], task, data).examples), f"test {paths['test']}"
    else:
        texts, source = _texts(heldout), f"held-out split of train {paths['train']}"
    return texts, source, _texts(examples), notes


def read_texts(path: Path, task: str, data: Any) -> list[str]:
    """Texts of a reference file: ``.txt`` one per line (CoNLL for NER when it looks like it),
    else a file in the training formats."""
    from ..data.readers import read_examples, read_text

    if path.suffix.lower() == ".txt":
        content = read_text(path, data.encoding)
        if task != "ner" or not _looks_like_conll(content):
            return [line.strip() for line in content.splitlines() if line.strip()]
    fmt = data.format if path.suffix.lower() not in (".csv", ".tsv", ".jsonl", ".json", ".ndjson") else "auto"
    return _texts(read_examples(path, task, data.model_copy(update={"format": fmt})).examples)


def _looks_like_conll(content: str) -> bool:
    tag = re.compile(r"^(O|[BIES]-\S+)$")
    lines = [line.split() for line in content.splitlines() if line.strip()]
    return bool(lines) and all(len(f) >= 2 and (tag.match(f[-1]) or f[0] == "-DOCSTART-") for f in lines)


def _texts(examples: list[Any]) -> list[str]:
    return [ex.text if hasattr(ex, "text") else " ".join(ex.tokens) for ex in examples]


def _data_config(raw: dict[str, Any]) -> Any:
    from ..config import DataConfig

    return DataConfig(**{k: v for k, v in raw.items() if k in DataConfig.model_fields})


def _locate(name: str, value: Any, model_dir: Path, config: dict, meta: dict) -> Path | None:
    """The data file of the run, or a UserError naming it when it is gone."""
    if not value:
        return None
    found = _existing(value, model_dir, config)
    if found is None:
        raise UserError(
            f"the model's {name} data is not here (needed for the drift reference)",
            path=value,
            hint=REFERENCE_HINT,
        )
    return found


def _existing(value: Any, model_dir: Path, config: dict) -> Path | None:
    """``value`` as given (absolute, or relative to the current folder), else relative to the folder
    training ran in (recovered from the relative ``output`` the artifact sits in)."""
    if not value:
        return None
    path = Path(value)
    candidates = [path]
    output = Path(str(config.get("output") or ""))
    if not path.is_absolute() and output.parts and not output.is_absolute() and ".." not in output.parts:
        run_dir = find_artifact(model_dir).resolve().parent  # the artifact is <output>/model
        if run_dir.parts[-len(output.parts) :] == output.parts:
            candidates.append(Path(*run_dir.parts[: -len(output.parts)]) / path)
    return next((c for c in candidates if c.is_file()), None)


def _changed(path: Path, meta: dict, name: str) -> bool:
    want = ((meta.get("data") or {}).get(name) or {}).get("sha256")
    return bool(want) and hashlib.sha256(path.read_bytes()).hexdigest() != want


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
    write_atomic(folder / f"{key}.npz", buf.getvalue())
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
    write_atomic(folder / f"{key}.json", json.dumps(info, ensure_ascii=False).encode("utf-8"))
