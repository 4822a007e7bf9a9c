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
from typing import Any

from ..data.chat import Message, prompt_ids
from ..data.examples import TaggedSentence
from ..evaluation import metrics as M
from ..tasks.token_classification import WORD
from .generation import generate

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
    return [(m.start(), m.end()) for m in WORD.finditer(text)]


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


# ---------------------------------------------------------------- tagging sentences


def tag_sentences(tagger: LLMTagger, examples: list[TaggedSentence]) -> tuple[list[Any], dict[str, int]]:
    """Predictions in the NER task's shape, ``(tags, confidences)`` per sentence (confidence 1.0: the
    model's answer is parsed, not scored), and the counts of what went wrong."""
    texts, spans = zip(*(joined(ex.tokens) for ex in examples))
    tags, counts = tagger.tag(list(texts), list(spans))
    return [(t, [1.0] * len(t)) for t in tags], {**counts, "sentences": len(examples)}


def evaluate_tagger(tagger: LLMTagger, examples: list[TaggedSentence]) -> tuple[dict[str, Any], list[list[str]]]:
    """seqeval metrics plus the prompting failure counts, and the predicted tags."""
    preds, counts = tag_sentences(tagger, examples)
    tags = [t for t, _ in preds]
    return {**M.ner_metrics([list(ex.tags) for ex in examples], tags), **counts}, tags
