"""The assistant: answer a customer with the right template, or hand the conversation to a human.

A built assistant folder (``fieldtune support build``, :mod:`.build`) holds ``support.json`` (what is
where, the answer rule chosen on dev), the intent model, its out-of-scope detector and, when it was
fine-tuned, the retrieval encoder; the knowledge base lives in the assistant's database
(:class:`~fieldtune.store.support_store.SupportStore`) with its embeddings.

The decision (:func:`decide`), in order:
1. the customer asks for a person ("talk to a human", "agent", 人工客服 ...) → hand off;
2. out of scope (Mahalanobis distance above the rule's limit) → hand off;
3. intent confidence below the rule's minimum → hand off;
4. the customer asks the same intent again right after it was answered (the answer did not help) →
   hand off;
5. otherwise answer with the intent's template (the best-ranked by retrieval when it has several);
   an intent without a template → hand off.
Retrieval over templates and documents (hybrid BM25 + dense) gives the ``sources`` shown with an
answer, and the agent console's suggestions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from ...evaluation.ood import MahalanobisDetector
from ...models.embedder import load_sentence_encoder
from ...store.support_store import SupportStore
from .intent import IntentModel, Rule
from .kb import Template
from .retrieval import Retriever

SUPPORT_FILE = "support.json"
FORMAT = 1
# explicit requests for a person, in English and Chinese; whole words so "agents' fees" doesn't match
HUMAN = re.compile(
    r"\b(human|real person|(?:an?|the) agent|live agent|representative|operator|someone real|talk to (?:a |some)one)\b"
    r"|人工|真人|客服人员|转人工",
    re.IGNORECASE,
)


def check_message(message: Any) -> None:
    """Refuse an empty or non-text message with a clear error."""
    if not isinstance(message, str) or not message.strip():
        raise UserError("the message is empty", hint="send the customer's question as text")


def decide(
    understood: dict[str, Any], rule: Rule, message: str, history: list[dict[str, Any]], templates: dict[str, list]
) -> tuple[str | None, Template | None]:
    """``(handoff reason or None, template to answer with or None)`` — see the module docstring.

    Args:
        understood: :meth:`IntentModel.understand` of the message.
        rule: The dev-chosen answer rule.
        message: The customer's message.
        history: Earlier turns of the session (``role``, ``text``, ``reply``), oldest first.
        templates: Templates per intent.
    """
    if HUMAN.search(message):
        return "asked for a human", None
    if understood["distance"] > rule.max_distance:
        return "out of scope", None
    if understood["confidence"] < rule.min_confidence:
        return "not sure of the intent", None
    last = next((t for t in reversed(history) if t.get("role") == "assistant"), None)
    reply = (last or {}).get("reply") or {}
    if reply and not reply.get("handoff") and reply.get("intent") == understood["intent"]:
        return "asked again after an answer", None
    options = templates.get(understood["intent"]) or []
    if not options:
        return f"no answer template for intent {understood['intent']!r}", None
    return None, options[0]


class Assistant:
    """A loaded assistant folder (see the module docstring).

    Args:
        folder: The folder ``fieldtune support build`` wrote.
        db: Database URL of the knowledge base and conversations (default: the one in support.json).
    """

    def __init__(self, folder: str | Path, db: str | None = None) -> None:
        self.folder = Path(folder)
        info = self.folder / SUPPORT_FILE
        if not info.is_file():
            raise UserError(
                f"{info} not found: not an assistant folder",
                hint="build one: fieldtune support build --kb templates.csv --questions labelled.csv --output DIR",
            )
        self.meta = json.loads(info.read_text(encoding="utf-8"))
        rule = dict(self.meta["rule"])
        rule["max_distance"] = float("inf") if rule["max_distance"] is None else rule["max_distance"]
        self.rule = Rule(**rule)
        detector = MahalanobisDetector.load(self.folder / self.meta["detector"])
        self.intent = IntentModel(self._path(self.meta["intent_model"]), detector)
        self.store = SupportStore(db or self.meta["db"].replace("{folder}", str(self.folder.resolve())))
        encoder = self.meta["encoder"]
        self.encoder = load_sentence_encoder(str(self._path(encoder)) if encoder != "minilm" else encoder)
        self.reload_kb()

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.folder / path

    def reload_kb(self) -> None:
        """Read the knowledge base from the store (after an agent added an answer, say)."""
        items = self.store.kb_items()
        self._templates = [
            Template(id=i["id"], answer=i["text"], intent=i.get("intent"), title=i.get("title"))
            for i in items
            if i["kind"] == "template"
        ]
        self._intent_of = {t.id: t.intent for t in self._templates}
        self._by_intent: dict[str, list[Template]] = {}
        for t in self._templates:
            if t.intent:
                self._by_intent.setdefault(t.intent, []).append(t)
        embeddings = None
        if items and all(i.get("embedding") is not None for i in items):
            embeddings = np.asarray([i["embedding"] for i in items], dtype=np.float32)
        texts = [" ".join(x for x in (i.get("title"), i["text"]) if x) for i in items]
        self.retriever = Retriever(
            [i["id"] for i in items], [i["kind"] for i in items], texts, self.encoder, embeddings
        )

    def templates(self) -> list[Template]:
        """Every answer template of the knowledge base."""
        return list(self._templates)

    def templates_by_intent(self) -> dict[str, list[Template]]:
        """The templates of each intent."""
        return {k: list(v) for k, v in self._by_intent.items()}

    def template_intent(self, item_id: str) -> str | None:
        """The intent of a knowledge-base item (None for a passage or a template without one)."""
        return self._intent_of.get(item_id)

    def ask(self, message: str, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Answer ``message`` or hand off (see :func:`decide`).

        Args:
            message: The customer's message.
            history: Earlier turns of the conversation, oldest first (``role``, ``text``, ``reply``).

        Returns:
            ``handoff``, ``answer_id``, ``answer``, ``intent``, ``score``, ``reason``, ``sources``
            (``id``, ``kind``, ``score``), ``guesses`` (``intent``, ``score``); answer fields None on handoff.
        """
        return self.ask_many([(message, history or [])])[0]

    def ask_many(self, requests: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
        """:meth:`ask` for several conversations at once: one forward pass of the intent model and one
        batched retrieval for all (what the server's micro-batching calls)."""
        for message, _ in requests:
            check_message(message)
        understood = self.intent.understand([m for m, _ in requests])
        queries = []
        for message, history in requests:
            previous = [t["text"] for t in history if t.get("role") == "user"][-1:]
            short = len(message.split()) < 4  # "and for that?": the previous question gives the context
            queries.append(" ".join([*previous, message]) if short else message)
        hits = self.retriever.search_many(queries, k=3, mode="hybrid")
        return [self._reply(u, m, h, found) for u, (m, h), found in zip(understood, requests, hits)]

    def _reply(
        self, understood: dict[str, Any], message: str, history: list[dict[str, Any]], hits: list
    ) -> dict[str, Any]:
        reason, template = decide(understood, self.rule, message, history, self._by_intent)
        options = self._by_intent.get(understood["intent"], [])
        if template is not None and len(options) > 1:  # several templates: the one retrieval ranks first
            ranked = [h.id for h in self.retriever.search(message, k=50, mode="hybrid")]
            template = min(options, key=lambda t: ranked.index(t.id) if t.id in ranked else len(ranked))
        return {
            "handoff": reason is not None,
            "answer_id": template.id if template else None,
            "answer": template.answer if template else None,
            "intent": understood["intent"],
            "score": round(understood["confidence"], 4),
            "reason": reason or "answered with the intent's template",
            "sources": [{"id": h.id, "kind": h.kind, "score": round(float(h.score), 4)} for h in hits],
            "guesses": understood["guesses"],
        }

    def suggest(self, text: str, k: int = 3) -> list[dict[str, Any]]:
        """Templates for an agent answering ``text``: those of the model's top intents first, then retrieval."""
        understood = self.intent.understand([text])[0]
        picked: list[tuple[Template, float]] = []
        for guess in understood["guesses"]:
            picked += [(t, guess["score"]) for t in self._by_intent.get(guess["intent"], [])]
        by_id = {t.id: t for t in self._templates}
        for hit in self.retriever.search(text, k=k * 2, mode="hybrid"):
            if hit.id in by_id:
                picked.append((by_id[hit.id], float(hit.score)))
        seen: set[str] = set()
        out = []
        for t, score in picked:
            if t.id not in seen:
                seen.add(t.id)
                out.append({"id": t.id, "intent": t.intent, "answer": t.answer, "score": round(score, 4)})
        return out[:k]
