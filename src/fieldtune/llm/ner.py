"""NER by prompting a decoder (task ner, method zero_shot or in_context): no weights change.

The model is asked for the entities of a sentence as a JSON list of ``{"type", "text"}`` objects,
decodes greedily, and its answer is parsed strictly: anything that is not such a list is a parse
failure (no entities for that sentence, counted). Each entity's text is mapped back to the first
not yet used occurrence in the sentence that starts and ends on word boundaries; an entity that
isn't in the sentence (hallucinated) is dropped and counted. The words covered become IOB2 tags,
scored with the same seqeval entity-level P/R/F1 as the encoder NER task.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from ..artifacts import _base_model_path, find_model_dir, read_meta, save_artifact
from ..config import RunConfig
from ..data.examples import TaggedSentence
from ..data.prepare import prepare_splits
from ..errors import UserError
from ..evaluation import metrics as M
from ..tasks import get_task
from ..tasks.token_classification import _WORD
from .instruct import NO_TRAINING, generate
from .model import Message, load_causal_lm, prepare_tokenizer, prompt_ids

# what the model is told each common type means; other types are named as they are
TYPE_WORDS = {
    "PER": "person",
    "PERSON": "person",
    "LOC": "location",
    "ORG": "organization",
    "MISC": "miscellaneous (nationality, event, product, other names)",
    "GPE": "country, city or state",
    "DATE": "date",
    "product": "product",
    "location": "location",
    "person": "person",
    "corporation": "company",
    "group": "group",
    "creative-work": "creative work (title)",
}
INSTRUCTION = (
    "Find the named entities in the text. Entity types: {types}. Answer only with a JSON list of "
    'objects like {{"type": "TYPE", "text": "exact words from the text"}}; answer [] if there are none.'
)
METHODS = ("zero_shot", "in_context")


# ---------------------------------------------------------------- parsing and mapping (pure)


def parse_entities(answer: str, types: list[str]) -> list[tuple[str, str]] | None:
    """``[(type, text)]`` from the model's answer, or None when it isn't a JSON list of objects with
    string ``type`` and ``text``. A Markdown code fence around the JSON is allowed; entities of an
    unknown type or with empty text are dropped (the answer still parsed)."""
    text = answer.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    by_name = {t.lower(): t for t in types}
    by_name.update({TYPE_WORDS[t].lower(): t for t in types if t in TYPE_WORDS})
    entities = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not isinstance(item.get("text"), str):
            return None
        etype = by_name.get(item["type"].strip().lower())
        if etype is not None and item["text"].strip():
            entities.append((etype, item["text"].strip()))
    return entities


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of raw text (the encoder NER task's word split)."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


def joined(tokens: list[str] | tuple[str, ...]) -> tuple[str, list[tuple[int, int]]]:
    """Pre-split words as one space-separated text, with each word's character span."""
    spans, pos = [], 0
    for token in tokens:
        spans.append((pos, pos + len(token)))
        pos += len(token) + 1
    return " ".join(tokens), spans


def locate(
    text: str, spans: list[tuple[int, int]], entities: list[tuple[str, str]]
) -> tuple[list[tuple[str, int, int]], int]:
    """Map entity texts to word ranges: the first occurrence in ``text`` (whitespace between
    characters optional, so ``Germany's`` finds ``Germany 's``) that starts at a word start, ends
    at a word end and overlaps no word already taken.

    Returns:
        ``[(type, first word, last word)]`` and how many entities were not found (hallucinated).
    """
    starts = {s: i for i, (s, _) in enumerate(spans)}
    ends = {e: i for i, (_, e) in enumerate(spans)}
    used: set[int] = set()
    found, missing = [], 0
    for etype, entity in entities:
        chars = [re.escape(c) for c in entity if not c.isspace()]
        if not chars:
            missing += 1
            continue
        pattern = re.compile(r"\s*".join(chars))
        hit = None
        for pos in range(len(text)):
            if pos not in starts:
                continue
            m = pattern.match(text, pos)
            if m and m.end() in ends:
                first, last = starts[pos], ends[m.end()]
                if not used.intersection(range(first, last + 1)):
                    hit = (first, last)
                    break
        if hit is None:
            missing += 1
            continue
        used.update(range(hit[0], hit[1] + 1))
        found.append((etype, *hit))
    return found, missing


def to_tags(n_words: int, found: list[tuple[str, int, int]]) -> list[str]:
    """IOB2 tags of ``n_words`` words with entities at the given word ranges."""
    tags = ["O"] * n_words
    for etype, first, last in found:
        tags[first] = f"B-{etype}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{etype}"
    return tags


# ---------------------------------------------------------------- prompting


def build_prompt(
    types: list[str], examples: list[tuple[str, list[tuple[str, str]]]], label_words: dict[str, str] | None = None
) -> dict[str, Any]:
    """The prompt's fixed part, stored in the artifact: the instruction and in-context examples
    (each a text and its entities)."""
    names = ", ".join(f"{t} ({(label_words or {}).get(t) or TYPE_WORDS.get(t, t)})" for t in types)
    return {"instruction": INSTRUCTION.format(types=names), "types": types, "examples": examples}


def conversation(prompt: dict[str, Any], text: str) -> list[Message]:
    """The instruction as the system message (said once: short prompts generate faster), the
    examples as earlier user/assistant turns, then the text to tag."""
    messages: list[Message] = [{"role": "system", "content": prompt["instruction"]}]
    for ex_text, entities in prompt["examples"]:
        messages.append({"role": "user", "content": f"Text: {ex_text}"})
        answer = json.dumps([{"type": t, "text": e} for t, e in entities], ensure_ascii=False)
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": f"Text: {text}"})
    return messages


def entities_of(ex: TaggedSentence) -> list[tuple[str, str]]:
    """Gold ``[(type, text)]`` of a tagged sentence (for in-context examples)."""
    return [(etype, " ".join(ex.tokens[a : b + 1])) for etype, a, b in M.spans(list(ex.tags))]


def pick_examples(train: list[TaggedSentence], types: list[str], k: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """k short training sentences that together show as many entity types as possible."""
    candidates = [ex for ex in train if 6 <= len(ex.tokens) <= 30 and entities_of(ex)]
    chosen, seen = [], set()
    for ex in candidates:  # first pass: each new sentence shows a type not shown yet
        kinds = {t for t, _ in entities_of(ex)}
        if kinds - seen and len(chosen) < k:
            chosen.append(ex)
            seen |= kinds
    chosen += [ex for ex in candidates if ex not in chosen][: k - len(chosen)]
    return [(" ".join(ex.tokens), entities_of(ex)) for ex in chosen]


class LLMTagger:
    """Prompt -> generate -> parse -> locate -> tags, for a batch of texts."""

    def __init__(self, model: Any, tokenizer: Any, prompt: dict[str, Any], max_new_tokens: int, batch_size: int = 8):
        self.model, self.tokenizer, self.prompt = model, tokenizer, prompt
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def tag(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> tuple[list[list[str]], dict[str, int]]:
        """IOB2 tags per text (one per word span) and the counts of what went wrong."""
        prompts = [prompt_ids(self.tokenizer, conversation(self.prompt, t)) for t in texts]
        outs = generate(self.model, self.tokenizer, prompts, self.max_new_tokens, self.batch_size)
        tags, counts = [], {"parse_failures": 0, "hallucinated": 0, "truncated": 0}
        for text, word_spans_, (ids, reason) in zip(texts, spans, outs):
            entities = parse_entities(self.tokenizer.decode(ids, skip_special_tokens=True), self.prompt["types"])
            counts["truncated"] += reason == "length"
            if entities is None:
                counts["parse_failures"] += 1
                entities = []
            found, missing = locate(text, word_spans_, entities)
            counts["hallucinated"] += missing
            tags.append(to_tags(len(word_spans_), found))
        return tags, counts


# ---------------------------------------------------------------- the runner


def run_ner(cfg: RunConfig, progress: bool = True) -> Any:
    """Evaluate prompted NER on dev and test and write the run folder (the artifact: the prompt,
    the tokenizer and a reference to the base model; no weights)."""
    from ..run import run_meta, start_output, write_run

    started = time.perf_counter()
    if cfg.method not in METHODS:
        raise UserError(
            f"method {cfg.method} with a causal LM is not supported for ner",
            hint="use method: zero_shot or in_context, or an encoder (model: minilm) to train a tagger",
        )
    task = get_task("ner")
    splits = prepare_splits(cfg)
    labels = task.label_list(splits.train)
    types = sorted(task.gold_names(labels))
    shots = min(cfg.prompt.max_shots, 3) if cfg.method == "in_context" else 0
    prompt = build_prompt(types, pick_examples(splits.train, types, shots) if shots else [], cfg.prompt.label_words)
    if cfg.prompt.instruction:
        prompt["instruction"] = cfg.prompt.instruction.replace("{labels}", ", ".join(types))
    lm = load_causal_lm(cfg.model)
    start_output(cfg)
    batch = min(cfg.train.eval_batch_size, 16)  # generation: small batches pad less
    tagger = LLMTagger(lm.model, lm.tokenizer, prompt, cfg.prompt.max_new_tokens, batch)
    metrics: dict[str, Any] = {}
    test_preds, seconds, tagged = None, 0.0, 0
    for name, examples in (("dev", splits.dev), ("test", splits.test)):
        if not examples:
            continue
        tick = time.perf_counter()
        metrics[name], preds = evaluate_tagger(tagger, examples)
        seconds, tagged = seconds + time.perf_counter() - tick, tagged + len(examples)
        if name == "test":
            test_preds = [(tags, [1.0] * len(tags)) for tags in preds]
    scored = splits.test or splits.dev
    metrics["baseline"] = {"split": "test" if splits.test else "dev", **task.baseline(splits.train, scored, labels)}
    params = {"trainable": 0, "total": sum(p.numel() for p in lm.model.parameters())}
    metrics["train"] = {
        **NO_TRAINING,
        "wall_s": round(time.perf_counter() - started, 2),
        "trainable_params": 0,
        "total_params": params["total"],
        "ms_per_example": round(1000 * seconds / max(tagged, 1), 1),
    }
    state = {"prompt": prompt, "max_new_tokens": cfg.prompt.max_new_tokens}
    max_length = lm.model.config.max_position_embeddings
    meta = run_meta(cfg, labels, state, max_length, metrics, params, splits, kind="llm", base_fingerprint=True)
    save = lambda target: save_artifact(None, lm.tokenizer, meta, target)  # noqa: E731
    return write_run(cfg, task, splits, labels, metrics, test_preds, [], params, meta, save)


def evaluate_tagger(tagger: LLMTagger, examples: list[TaggedSentence]) -> tuple[dict[str, Any], list[list[str]]]:
    """seqeval metrics plus the prompting failure counts, and the predicted tags."""
    texts, spans = zip(*(joined(ex.tokens) for ex in examples))
    preds, counts = tagger.tag(list(texts), list(spans))
    scores = M.ner_metrics([list(ex.tags) for ex in examples], preds)
    return {**scores, **counts, "sentences": len(examples)}, preds


# ---------------------------------------------------------------- the Predictor


class NerPredictor:
    """A prompted-NER artifact, with the encoder NER Predictor's interface and output shape
    (``[{"entity_group", "word", "start", "end", "score"}]``, character offsets; score 1.0)."""

    def __init__(self, tagger: LLMTagger, meta: dict[str, Any], batch_size: int) -> None:
        self.tagger, self.meta, self.batch_size = tagger, meta, batch_size
        self.task = get_task("ner")
        self.labels: list[str] = meta["labels"]
        self.backend = "torch"

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 8, backend: str = "auto") -> NerPredictor:
        if backend not in ("auto", "torch"):
            raise UserError(f"backend {backend!r} is not available for causal LMs", hint="use --backend torch")
        import transformers

        model_dir = find_model_dir(path)
        meta = read_meta(model_dir)
        model = load_causal_lm(_base_model_path(model_dir, meta)).model
        tokenizer = prepare_tokenizer(transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True))
        state = meta["state"]
        return cls(LLMTagger(model, tokenizer, state["prompt"], state["max_new_tokens"], batch_size), meta, batch_size)

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        for i, text in enumerate(batch):
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"input {i + 1} is empty or not a string", hint="pass non-empty text")
        tags, _ = self.tagger.tag(batch, [word_spans(t) for t in batch])
        outputs = [
            self.task.to_output(t, self.task.from_text(t), (tg, [1.0] * len(tg)), top_k) for t, tg in zip(batch, tags)
        ]
        return outputs[0] if single else outputs

    def predict_examples(self, examples: list[TaggedSentence]) -> list[Any]:
        """(tags, confidences) per sentence, the encoder NER task's prediction shape."""
        texts, spans = zip(*(joined(ex.tokens) for ex in examples))
        tags, _ = self.tagger.tag(list(texts), list(spans))
        return [(t, [1.0] * len(t)) for t in tags]

    def evaluate(self, examples: list[TaggedSentence]) -> dict[str, Any]:
        return evaluate_tagger(self.tagger, examples)[0]
