"""``fieldtune support build``: from answer templates and labelled questions to an assistant folder.

1. Read the templates (and documents, split into passages) and the labelled questions (``text,intent``;
   intent ``oos`` = out of scope); every error names the file and line.
2. Dev: the ``--dev`` file, else 10% of the in-scope questions (stratified, seeded) and half of the
   ``oos`` ones. In-scope training questions train the intent model (``fieldtune.train``, any method;
   calibrated on dev) unless ``intent_model`` names a trained one.
3. Fit the out-of-scope detector on the in-scope training questions; choose the answer rule on dev
   and every ``oos`` question of either file (none trains the model or the detector; the writer of
   step 6 is not part of the rule) (:func:`~.intent.choose_rule`: answered precision >= 0.97 at 90%
   confidence, out-of-scope handoff >= 0.80).
4. Retrieval encoder: ``minilm``, or fine-tuned on (question → its intent's template) pairs. Both the
   intent model and the retrieval encoder are exported to ONNX (:mod:`.onnx_passes`; checked against
   torch on dev) and served from there: the rule of step 3 is chosen on the ONNX intent model.
5. Store the knowledge base with its embeddings in the assistant's database; each template's training
   questions go to ``expansions.json`` (BM25 indexes them with the template); write ``support.json``.
6. With ``generate``: tune the reply writer (:mod:`.writer`) on the training questions.

The folder is built aside and renamed into place when complete: a failed build leaves no half folder.
"""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...config import DataConfig
from ...data.examples import TextExample
from ...data.readers import read_examples
from ...data.splits import stratified_split
from ...errors import UserError
from ...models.embedder import load_sentence_encoder
from ...recipes import train
from ...store.support_store import SupportStore
from ...utils.atomic import staged_dir
from .assistant import FORMAT, SUPPORT_FILE
from .biencoder import fine_tune
from .intent import OOS, IntentModel, Rule, choose_rule
from .kb import Template, kb_texts, load_docs, load_templates
from .onnx_passes import MAX_DIFF, export_encoder, export_intent
from .retrieval import encode
from .writer import train_writer, writer_examples

Log = Callable[[str], None]
DETECTOR_FILE = "detector.npz"
EXPANSIONS_FILE = "expansions.json"
PARITY_TEXTS = 256  # dev questions each ONNX graph is compared with torch on


def read_questions(path: Path) -> list[TextExample]:
    """Labelled questions (CSV/TSV/JSONL with a text and an ``intent``/``label`` column)."""
    return list(read_examples(path, "classification", DataConfig(train=path)).examples)


def split_dev(questions: list[TextExample], seed: int) -> tuple[list[TextExample], list[TextExample]]:
    """10% of the in-scope questions per intent and half of the out-of-scope ones as dev."""
    in_scope = _in_scope(questions)
    oos = [q for q in questions if q.labels[0] == OOS]
    train_in, dev_in = stratified_split(in_scope, 0.1, seed)
    random.Random(seed).shuffle(oos)
    return train_in + oos[: len(oos) // 2], dev_in + oos[len(oos) // 2 :]


def build_assistant(
    kb: Path,
    questions: Path,
    output: Path,
    dev: Path | None = None,
    docs: Path | None = None,
    intent_model: Path | None = None,
    train_config: dict[str, Any] | None = None,
    fine_tune_retriever: bool = False,
    db: str | None = None,
    target_precision: float = 0.97,
    target_oos_handoff: float = 0.8,
    seed: int = 13,
    log: Log = print,
    generate: bool = False,
    writer_model: str = "smollm2",
) -> Path:
    """Build an assistant folder (see the module docstring); returns its path.

    Args:
        kb: Answer templates (CSV/JSONL: ``id``, ``answer``, ``intent``, ``title``?).
        questions: Labelled questions (``text``, ``intent``; ``oos`` for out of scope).
        output: The folder to write (replaced when the build succeeds).
        dev: Labelled dev questions (default: split from ``questions``).
        docs: A folder of Markdown/text documents, split into passages for retrieval.
        intent_model: A trained fieldtune intent model to use instead of training one.
        train_config: Extra run config for the intent model (``method``, ``train``, ``model`` ...).
        fine_tune_retriever: Fine-tune the retrieval encoder on question → template pairs.
        db: Database URL for the knowledge base and conversations (default: SQLite in the folder).
        target_precision: Answered precision the rule keeps on dev.
        target_oos_handoff: Out-of-scope handoff rate the rule reaches on dev (when dev has ``oos``).
        seed: Seed of the dev split and of training.
        log: Where progress lines go.
        generate: Also tune the grounded reply writer (``fieldtune support ask --generate``).
        writer_model: The decoder the writer tunes (``smollm2``; ``gemma3`` for Chinese, or a local folder).
    """
    start = time.perf_counter()
    templates, passages = load_templates(kb), (load_docs(docs) if docs else [])
    train_rows, dev_rows = _questions(questions, dev, seed)
    train_in, dev_in = _in_scope(train_rows), _in_scope(dev_rows)
    _check_coverage(templates, train_in, kb, log)
    output = Path(output)
    with staged_dir(output) as tmp:
        model_dir = intent_model or _train_intents(tmp, train_in, dev_in, train_config, seed, log)
        intents = IntentModel(Path(model_dir))
        onnx = {"intent": _onnx_intent(intents, tmp, [q.text for q in dev_rows], log)}
        # out-of-scope questions train nothing the rule depends on: all of them (both files') test the rule
        rule_rows = dev_rows + [q for q in train_rows if q.labels[0] == OOS]
        rule = _answer_rule(intents, tmp, train_in, rule_rows, target_precision, target_oos_handoff, log)
        encoder_name = _retrieval_encoder(tmp, templates, train_in, fine_tune_retriever, seed, log)
        encoder = load_sentence_encoder(str(tmp / encoder_name) if encoder_name != "minilm" else encoder_name)
        onnx["encoder"] = _onnx_encoder(tmp, encoder, [q.text for q in dev_rows], log)
        # SQLite: the file is made in the staged folder and moves with it
        _store_kb(db or f"sqlite:///{(tmp / 'support.db').resolve()}", templates, passages, encoder)
        _write_expansions(tmp / EXPANSIONS_FILE, templates, train_in)
        writer = _reply_writer(tmp, train_rows, templates, seed, log, writer_model) if generate else None
        meta = {
            "format": FORMAT,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "intent_model": str(Path(model_dir).resolve()) if intent_model else str(Path(model_dir).relative_to(tmp)),
            "detector": DETECTOR_FILE,
            "rule": _rule_json(rule),
            "encoder": encoder_name,
            "onnx": onnx,
            "expansions": EXPANSIONS_FILE,
            "writer": writer,
            "db": db or "sqlite:///{folder}/support.db",
            "kb": {"templates": len(templates), "passages": len(passages), "file": str(kb), "docs": str(docs or "")},
            "questions": {"train": len(train_rows), "dev": len(dev_rows), "file": str(questions)},
            "build_s": round(time.perf_counter() - start, 1),
        }
        (tmp / SUPPORT_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    log(f"assistant written to {output} in {meta['build_s']:.0f} s")
    return output


def _questions(questions: Path, dev: Path | None, seed: int) -> tuple[list[TextExample], list[TextExample]]:
    """(train, dev) questions: the ``dev`` file when given, else split from ``questions`` (:func:`split_dev`)."""
    labelled = read_questions(questions)
    return (labelled, read_questions(dev)) if dev is not None else split_dev(labelled, seed)


def _in_scope(rows: list[TextExample]) -> list[TextExample]:
    """The questions with an intent (``oos`` ones only tune the rule: never a class of the model)."""
    return [q for q in rows if q.labels[0] != OOS]


def _answer_rule(
    intents: IntentModel,
    folder: Path,
    train_in: list[TextExample],
    dev_rows: list[TextExample],
    target_precision: float,
    target_oos_handoff: float,
    log: Log,
) -> Rule:
    """Fit the out-of-scope detector on the training questions (saved in ``folder``), then choose the
    answer rule on dev, where the targets are measured on questions the model has not seen."""
    log(f"fitting the out-of-scope detector on {len(train_in)} training questions")
    intents.fit_detector([q.text for q in train_in], [q.labels[0] for q in train_in]).save(folder / DETECTOR_FILE)
    understood = intents.understand([q.text for q in dev_rows])
    rule = choose_rule(understood, [q.labels[0] for q in dev_rows], target_precision, target_oos_handoff)
    log(
        f"answer rule ({len(dev_rows)} questions: dev and every out-of-scope one): "
        f"distance <= {rule.max_distance:.2f}, confidence >= "
        f"{rule.min_confidence}: precision {rule.dev_precision:.3f} (90% lower bound {rule.dev_precision_low:.3f}), "
        f"answers {rule.dev_answered:.3f} of in-scope"
        + (f", hands off {rule.dev_oos_handoff:.3f} of out-of-scope" if rule.dev_oos_handoff is not None else "")
        + ("" if rule.met else " (targets not reachable on dev: the most precise rule is kept)")
    )
    return rule


def _onnx_intent(intents: IntentModel, folder: Path, texts: list[str], log: Log) -> str | None:
    """Export the intent model to ONNX (:mod:`.onnx_passes`) and serve it from there — the answer rule
    is then chosen on the very outputs the assistant computes — unless it differs from torch on up to
    256 dev questions (None: torch serves)."""
    path, session, diff = export_intent(intents, folder, texts[:PARITY_TEXTS])
    if diff > MAX_DIFF:
        log(f"note: the intent model's ONNX graph differs from torch by {diff:.1e}: it is served with torch")
        path.unlink()
        return None
    intents.session = session
    return str(path.relative_to(folder))


def _onnx_encoder(folder: Path, encoder: Any, texts: list[str], log: Log) -> str | None:
    """Export the retrieval encoder to ONNX; None (torch serves) for another pooling or a graph that
    differs from torch on up to 256 dev questions."""
    exported = export_encoder(encoder, folder, texts[:PARITY_TEXTS])
    if exported is None:
        return None
    path, diff = exported
    if diff > MAX_DIFF:
        log(f"note: the retrieval encoder's ONNX graph differs from torch by {diff:.1e}: it is served with torch")
        shutil.rmtree(path)
        return None
    return str(path.relative_to(folder))


def _rule_json(rule: Rule) -> dict[str, Any]:
    """The rule as support.json stores it: no distance limit is null (JSON has no infinity)."""
    out = rule.as_dict()
    out["max_distance"] = None if math.isinf(rule.max_distance) else rule.max_distance
    return out


def _retrieval_encoder(
    folder: Path, templates: list[Template], train_in: list[TextExample], tune: bool, seed: int, log: Log
) -> str:
    """``minilm``, or with ``tune`` ``encoder``: minilm fine-tuned on (question → its intent's template)
    pairs and saved in ``folder``, for a knowledge base whose wording minilm matches poorly."""
    if not tune:
        return "minilm"
    by_intent = {t.intent: t for t in templates if t.intent}
    pairs = [(q.text, by_intent[q.labels[0]].answer) for q in train_in if q.labels[0] in by_intent]
    log(f"fine-tuning the retrieval encoder on {len(pairs)} question → template pairs")
    fine_tune(pairs, folder / "encoder", seed=seed)
    return "encoder"


def _check_coverage(templates: list, questions: list[TextExample], kb: Path, log: Log) -> None:
    """Every intent should have a template; intents without one are handed off (said, not an error)."""
    answered = {t.intent for t in templates if t.intent}
    if not answered:
        raise UserError(
            "no template names an intent",
            path=kb,
            hint="add an `intent` column: each template answers the questions of one intent",
        )
    missing = sorted({q.labels[0] for q in questions} - answered)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        log(f"note: {len(missing)} intents have no template and will be handed off: {shown}")


def _train_intents(
    folder: Path, train_rows: list[TextExample], dev_rows: list[TextExample], extra: dict | None, seed: int, log: Log
) -> Path:
    """Train the intent model with ``fieldtune.train`` on the in-scope questions (written as CSV in
    ``folder``; ``extra`` overrides the run config) and return its model folder."""
    files = {}
    for name, rows in (("train", train_rows), ("dev", dev_rows)):
        files[name] = folder / "data" / f"{name}.csv"
        files[name].parent.mkdir(parents=True, exist_ok=True)
        with files[name].open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("text", "intent"), *((q.text, q.labels[0]) for q in rows)])
    config = {"task": "classification", "model": "minilm", **(extra or {})}
    config["data"] = {k: str(v) for k, v in files.items()}
    config["output"] = str(folder / "intent")
    config["train"] = {"seed": seed, **config.get("train", {})}
    log(f"training the intent model on {len(train_rows)} questions ({len({q.labels[0] for q in train_rows})} intents)")
    return train(config).model_dir


def _reply_writer(
    folder: Path, questions: list[TextExample], templates: list[Template], seed: int, log: Log, model: str
) -> dict[str, Any]:
    """Tune the writer (:func:`~.writer.train_writer`) and return what support.json records of it: its
    folder and the longest answer it may write (the longest template's tokens, plus a quarter)."""
    import transformers

    examples = writer_examples(questions, templates, seed)
    if not examples:
        raise UserError("--generate: no labelled question has an intent with a template to learn replies from")
    model_dir = Path(train_writer(folder, examples, seed, model=model, log=log))
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    longest = max(len(tokenizer(t.answer)["input_ids"]) for t in templates)
    return {"model": str(model_dir.relative_to(folder)), "max_new_tokens": min(512, longest + longest // 4 + 8)}


def _write_expansions(path: Path, templates: list[Template], train_in: list[TextExample]) -> None:
    """Each template's training questions (those of its intent), which BM25 indexes with it (document
    expansion): customers ask in words a template never uses. On BANKING77 (bench/support_retrieval.py),
    BM25 recall@5 0.753 -> 0.969, and hybrid with minilm 0.882 -> 0.978."""
    by_intent: dict[str, list[str]] = {}
    for q in train_in:
        by_intent.setdefault(q.labels[0], []).append(q.text)
    expansions = {t.id: by_intent[t.intent] for t in templates if t.intent in by_intent}
    path.write_text(json.dumps(expansions, ensure_ascii=False), encoding="utf-8")


def _store_kb(url: str, templates: list, passages: list, encoder: Any) -> None:
    """The knowledge base with its embeddings (by ``encoder``) into the assistant's database."""
    ids, kinds, texts = kb_texts(templates, passages)
    vectors = encode(encoder, texts)  # as the assistant embeds an agent's answer later
    intents = {t.id: t.intent for t in templates}
    titles = {x.id: x.title for x in [*templates, *passages]}
    bodies = {t.id: t.answer for t in templates} | {p.id: p.text for p in passages}
    rows = [
        {
            "id": i,
            "kind": k,
            "intent": intents.get(i),
            "title": titles.get(i),
            "text": bodies[i],
            "embedding": v.tolist(),
        }
        for i, k, v in zip(ids, kinds, vectors)
    ]
    SupportStore(url).replace_kb(rows)
