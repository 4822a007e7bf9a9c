"""Grounded replies (``--generate``): a small LLM writes the answer from the retrieved sources only,
or refuses, and the conversation goes to a human. It never shows a sentence its sources do not support.

**The writer** is the bundled decoder (``smollm2``) with a LoRA adapter tuned at build time on the
company's own data (:func:`writer_examples`): each labelled question with its intent's template among
the sources → that template's answer; a question with only other intents' templates as sources, and
every out-of-scope question → :data:`REFUSAL`. Untuned, a 135M model cannot do this: asked from a
card-delivery template why a card has not come, it answers "I'm sorry for your loss ... I'm unable to
assist"; asked the weather in Paris from a PIN template, it describes the weather.

**Answering** (:meth:`Writer.stream`): the prompt numbers the sources (the chosen template, then the
best passages retrieval found); the answer is checked one sentence at a time as it is generated. A
sentence is *supported* when at least :data:`MIN_SUPPORT` of its content words (retrieval's tokens:
lower-cased, stopwords out, Chinese segmented) occur in the sources. The first unsupported sentence
stops generation and is never shown: with nothing shown before it, or when the writer refuses, the
reply is a handoff. ``used`` names the sources the kept sentences draw on.

**Speed**: the answer mostly copies its sources, so generation uses prompt lookup decoding
(:func:`~fieldtune.llm.generation.generate`): the same tokens as plain greedy decoding, several per
forward pass (bench/support_generate.py measures it against plain ``generate``).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...data.examples import TextExample
from .kb import SENTENCE_END, Template
from .retrieval import tokenize

WRITER_DIR = "writer"
REFUSAL = "Sorry, our help articles don't answer that."
SYSTEM = (
    "You are a customer-service assistant. Answer the customer with facts from the sources only. "
    f"If the sources do not answer the question, reply exactly: {REFUSAL}"
)
MIN_SUPPORT = 0.8  # share of a sentence's content words found in the sources
PROMPT_LOOKUP = 10  # draft tokens proposed from the prompt per forward pass
MAX_EXAMPLES = 320  # tuning examples: enough for the format and the refusals; a CPU trains them in minutes


@dataclass(frozen=True)
class Source:
    """A text the writer may answer from: a template or a passage."""

    id: str
    text: str


@dataclass
class Written:
    """What the writer produced: the ``text`` shown (supported sentences only), whether it ``refused``,
    ``dropped`` (an unsupported sentence ended the answer) and the sources ``used``."""

    text: str = ""
    refused: bool = False
    dropped: bool = False
    used: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.text) and not self.refused


def prompt(question: str, sources: list[Source]) -> str:
    """The user turn: the numbered sources, then the customer's question."""
    listed = "\n".join(f"[{s.id}] {s.text}" for s in sources)
    return f"Sources:\n{listed}\n\nCustomer: {question}"


def messages(question: str, sources: list[Source]) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt(question, sources)}]


def writer_examples(
    questions: list[TextExample], templates: list[Template], seed: int, limit: int = MAX_EXAMPLES
) -> list[dict[str, str]]:
    """Tuning conversations (``system``, ``prompt``, ``response``) from the labelled questions.

    Per intent with a template, in turn until ``limit``: a question with its template among the
    sources (half the time with another intent's template beside it, in random order) → the template;
    every fourth question with only another intent's template → :data:`REFUSAL`. Out-of-scope questions
    (intent ``oos``, up to an eighth of ``limit``) with a random template → :data:`REFUSAL`. (With half
    the examples refusals, 24 steps taught the writer to refuse everything.)
    """
    rng = random.Random(seed)
    by_intent = {}
    for t in templates:
        if t.intent and t.intent not in by_intent:
            by_intent[t.intent] = t
    asked: dict[str, list[str]] = {}
    oos = []
    for q in questions:
        label = q.labels[0]
        if label in by_intent:
            asked.setdefault(label, []).append(q.text)
        elif label == "oos":
            oos.append(q.text)
    if not asked:
        return []
    pool = list(by_intent.values())
    rows: list[dict[str, str]] = []

    def other(intent: str | None) -> Template:
        choices = [t for t in pool if t.intent != intent] or pool
        return rng.choice(choices)

    def add(question: str, sources: list[Template], response: str) -> None:
        rows.append(
            {
                "system": SYSTEM,
                "prompt": prompt(question, [Source(t.id, t.answer) for t in sources]),
                "response": response,
            }
        )

    rng.shuffle(oos)
    for question in oos[: limit // 8]:
        add(question, [other(None)], REFUSAL)
    order = {k: rng.sample(v, len(v)) for k, v in sorted(asked.items())}
    turn = 0
    while len(rows) < limit and any(len(v) > turn for v in order.values()):
        for intent, texts in order.items():
            if len(texts) <= turn or len(rows) >= limit:
                continue
            own = by_intent[intent]
            if turn % 4 == 3:  # a quarter: the question's template is missing
                add(texts[turn], [other(intent)], REFUSAL)
            else:
                sources = [own, other(intent)] if rng.random() < 0.5 else [own]
                rng.shuffle(sources)
                add(texts[turn], sources, own.answer)
        turn += 1
    rng.shuffle(rows)
    return rows


def train_writer(
    folder: Path, examples: list[dict[str, str]], seed: int, model: str = "smollm2", log: Any = print, epochs: int = 2
) -> Path:
    """Tune the writer (LoRA on ``model``) with ``fieldtune.train``'s instruction recipe; returns its
    model folder. A tenth of the examples (at most 24) is dev, where the best epoch is chosen."""
    from ...recipes import train

    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    n_dev = max(2, min(24, len(examples) // 10))
    files = {"train": data / "writer_train.jsonl", "dev": data / "writer_dev.jsonl"}
    for name, rows in (("train", examples[n_dev:]), ("dev", examples[:n_dev])):
        files[name].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    log(f"tuning the reply writer ({model}, LoRA) on {len(examples) - n_dev} examples")
    config = {
        "task": "causal_lm",
        "model": model,
        "method": "lora",
        "data": {k: str(v) for k, v in files.items()},
        "output": str(folder / WRITER_DIR),
        "peft": {"r": 16, "alpha": 32},
        "prompt": {"max_new_tokens": 8},  # dev answers are checked by perplexity; a short greedy sample
        "train": {"epochs": epochs, "lr": 1.0e-3, "batch_size": 8, "seed": seed, "checkpoint": False},
    }
    return train(config).model_dir


def supported_share(sentence: str, vocabulary: set[str]) -> float:
    """The share of ``sentence``'s content words found in ``vocabulary`` (1.0 when it has none)."""
    words = tokenize(sentence)
    return sum(w in vocabulary for w in words) / len(words) if words else 1.0


def is_refusal(text: str) -> bool:
    """The writer's refusal (allowing for a dropped full stop or changed case)."""
    return text.strip().rstrip(".").lower() == REFUSAL.rstrip(".").lower()


class Writer:
    """The tuned writer of an assistant folder (see the module docstring).

    Args:
        predictor: Generates: ``stream(messages, max_tokens, cancel=event)`` yields ``{"delta": text}``
            events (a :class:`~fieldtune.predict.chat.ChatPredictor`; :meth:`load` makes the tuned one).
        max_new_tokens: Longest answer in tokens.
    """

    def __init__(self, predictor: Any, max_new_tokens: int = 160) -> None:
        self.predictor, self.max_new_tokens = predictor, max_new_tokens

    @classmethod
    def load(cls, model_dir: Path, max_new_tokens: int = 160) -> Writer:
        """The writer saved in ``model_dir``, its LoRA update merged into the weights (no adapter
        matmuls per token) and prompt lookup decoding on."""
        from ...predict import load

        predictor = load(model_dir)
        if hasattr(predictor.model, "merge_and_unload"):
            predictor.model = predictor.model.merge_and_unload()
        predictor.prompt_lookup = PROMPT_LOOKUP
        return cls(predictor, max_new_tokens)

    def stream(self, question: str, sources: list[Source]) -> Iterator[dict[str, Any]]:
        """The answer as it is written and checked: ``{"delta": text}`` per supported sentence, then
        ``{"written": Written}``. Generation stops at the first unsupported sentence."""
        vocabulary = {w for s in sources for w in tokenize(s.text)}
        out, pending = Written(), ""
        cancel = threading.Event()
        kept: list[str] = []

        def accept(sentence: str) -> bool:
            if supported_share(sentence, vocabulary) < MIN_SUPPORT:
                out.dropped = True
                return False
            kept.append(sentence)
            return True

        for event in self.predictor.stream(messages(question, sources), self.max_new_tokens, cancel=cancel):
            if "delta" not in event or cancel.is_set():
                continue
            pending += event["delta"]
            *done, pending = SENTENCE_END.split(pending)
            for sentence in filter(str.strip, done):
                if kept or not is_refusal(sentence):
                    if not accept(sentence.strip()):
                        cancel.set()
                        break
                    yield {"delta": sentence.strip() + " "}
                else:
                    out.refused = True
                    cancel.set()
                    break
        if not cancel.is_set() and pending.strip():
            if not kept and is_refusal(pending):
                out.refused = True
            elif accept(pending.strip()):
                yield {"delta": pending.strip()}
        if not kept and not out.dropped:
            out.refused = True
        out.text = " ".join(kept)
        out.used = used_sources(out.text, sources)
        yield {"written": out}

    def write(self, question: str, sources: list[Source]) -> Written:
        """:meth:`stream`, whole."""
        return next(e["written"] for e in self.stream(question, sources) if "written" in e)


def used_sources(text: str, sources: list[Source]) -> list[str]:
    """The sources holding at least half of ``text``'s content words (the best one when none does)."""
    words = tokenize(text)
    if not words or not sources:
        return []
    shares = [(supported_share(text, set(tokenize(s.text))), s.id) for s in sources]
    used = [sid for share, sid in shares if share >= 0.5]
    return used or [max(shares)[1]]
