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
answer (the top 3 of the one search per message that also ranks an intent's templates), and the
agent console's suggestions.

With ``generate`` (an assistant built with ``--generate``), an answer is then written by the tuned
reply writer (:mod:`.writer`) from the chosen template and the passages among the sources; when the
writer refuses, or its first sentence is not supported by them, the conversation is handed off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from ...evaluation.ood import MahalanobisDetector
from ...models.embedder import load_sentence_encoder
from ...store.support_store import SupportStore
from .intent import IntentModel, Rule
from .kb import Template
from .onnx_passes import OnnxSentenceEncoder
from .retrieval import Hit, Retriever, encode
from .writer import Source, Writer

SUPPORT_FILE = "support.json"
FORMAT = 1
SOURCES = 3  # retrieval hits shown with a reply
RANKED = 50  # the search depth that ranks an intent's templates (one below it ranks last)
# explicit requests for a person, in English and Chinese; whole words so "agents' fees" doesn't match
HUMAN = re.compile(
    r"\b(human|real person|(?:an?|the) agent|live agent|representative|operator|someone real|talk to (?:a |some)one)\b"
    r"|人工|真人|客服人员|转人工",
    re.IGNORECASE,
)


def context_query(message: str, history: list[dict[str, Any]]) -> str:
    """What retrieval searches for a message: a short one ("and for that?") after the customer's
    previous question, which gives it its context."""
    previous = [t["text"] for t in history if t.get("role") == "user"][-1:]
    return " ".join([*previous, message]) if len(message.split()) < 4 else message


def first_ranked(options: list[Template], hits: list[Hit]) -> Template:
    """The template retrieval ranks highest; one not among the hits ranks last (ties keep the options' order)."""
    ranked = [h.id for h in hits]
    return min(options, key=lambda t: ranked.index(t.id) if t.id in ranked else len(ranked))


def reply_fields(
    understood: dict[str, Any], reason: str | None, template: Template | None, hits: list[Hit]
) -> dict[str, Any]:
    """The reply fields (see :meth:`Assistant.ask`) of a decision and the hits shown as its sources."""
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
        generate: Write answers with the reply writer (the folder must have been built with ``--generate``).
        onnx: Run the intent model and the retrieval encoder on ONNX Runtime where the build exported
            them (:mod:`.onnx_passes`); False runs both in torch.
    """

    def __init__(self, folder: str | Path, db: str | None = None, generate: bool = False, onnx: bool = True) -> None:
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
        graphs = {k: self._path(v) for k, v in (self.meta.get("onnx") or {}).items() if v and onnx}
        self.intent = IntentModel(self._path(self.meta["intent_model"]), detector, onnx=graphs.get("intent"))
        self.store = SupportStore(db or self.meta["db"].replace("{folder}", str(self.folder.resolve())))
        encoder = self.meta["encoder"]
        if "encoder" in graphs:
            self.encoder: Any = OnnxSentenceEncoder(graphs["encoder"])
        else:
            self.encoder = load_sentence_encoder(str(self._path(encoder)) if encoder != "minilm" else encoder)
        self.writer = self._writer() if generate else None
        self.reload_kb()

    def _writer(self) -> Writer:
        spec = self.meta.get("writer")
        if not spec:
            raise UserError(
                f"{self.folder} was built without a reply writer",
                hint="rebuild it with fieldtune support build ... --generate, or ask without --generate",
            )
        return Writer.load(self._path(spec["model"]), spec["max_new_tokens"])

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
        self._passages = {i["id"]: i["text"] for i in items if i["kind"] == "passage"}
        texts = [" ".join(x for x in (i.get("title"), i["text"]) if x) for i in items]
        ids, kinds = [i["id"] for i in items], [i["kind"] for i in items]
        embeddings = self._embeddings(items, texts)
        self.retriever = Retriever(ids, kinds, texts, self.encoder, embeddings, expansions=self._expansions())

    def _expansions(self) -> dict[str, list[str]]:
        """Each template's training questions, indexed by BM25 with it (none for folders built before them)."""
        name = self.meta.get("expansions")
        path = self.folder / name if name else None
        return json.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else {}

    def _embeddings(self, items: list[dict[str, Any]], texts: list[str]) -> np.ndarray | None:
        """The items' stored embeddings (None when none is stored: the retriever embeds them all).

        An agent's answer is stored with its embedding (:meth:`embed_answer`), so a reload only reads;
        an item stored without one (by an older version, or a script writing to the store) is embedded
        here on its own, never the whole knowledge base again.
        """
        missing = [n for n, item in enumerate(items) if item.get("embedding") is None]
        if len(missing) == len(items):
            return None
        fresh = dict(zip(missing, encode(self.encoder, [texts[n] for n in missing]))) if missing else {}
        return np.asarray([fresh[n] if n in fresh else item["embedding"] for n, item in enumerate(items)], np.float32)

    def embed_answer(self, text: str) -> list[float]:
        """The embedding of a new knowledge-base answer (no title), as :meth:`reload_kb` would compute it:
        what the store keeps with an agent's answer so that reloading embeds nothing."""
        return encode(self.encoder, [text])[0].tolist()

    def templates(self) -> list[Template]:
        """Every answer template of the knowledge base."""
        return list(self._templates)

    def templates_by_intent(self) -> dict[str, list[Template]]:
        """The templates of each intent."""
        return {k: list(v) for k, v in self._by_intent.items()}

    def template_intent(self, item_id: str) -> str | None:
        """The intent of a knowledge-base item (None for a passage or a template without one)."""
        return self._intent_of.get(item_id)

    def ask(self, message: str, history: list[dict[str, Any]] | None = None, write: bool = True) -> dict[str, Any]:
        """Answer ``message`` or hand off (see :func:`decide`).

        Args:
            message: The customer's message.
            history: Earlier turns of the conversation, oldest first (``role``, ``text``, ``reply``).
            write: With a reply writer, write the answer (:meth:`write`); False leaves the template's
                answer, for a caller that streams :meth:`write_stream` itself.

        Returns:
            ``handoff``, ``answer_id``, ``answer``, ``intent``, ``score``, ``reason``, ``sources``
            (``id``, ``kind``, ``score``), ``guesses`` (``intent``, ``score``); answer fields None on handoff.
        """
        return self.ask_many([(message, history or [])], write)[0]

    def ask_many(self, requests: list[tuple[str, list[dict[str, Any]]]], write: bool = True) -> list[dict[str, Any]]:
        """:meth:`ask` for several conversations at once: one forward pass of the intent model and one
        batched retrieval for all (what the server's micro-batching calls).

        Each message is searched once, :data:`RANKED` deep: the top :data:`SOURCES` hits are its
        ``sources`` (the same as a search that deep) and the whole list ranks its intent's templates.
        The templates are ranked by the message itself, so a short follow-up, whose query adds the
        previous question, has its message searched too (in the same batch) when that ranking is needed.
        """
        for message, _ in requests:
            check_message(message)
        understood = self.intent.understand([m for m, _ in requests])
        decided = [decide(u, self.rule, m, h, self._by_intent) for u, (m, h) in zip(understood, requests)]
        queries = [context_query(m, h) for m, h in requests]
        rank_by = [  # the text whose hits pick among several templates, None when there is nothing to pick
            m if template is not None and len(self._by_intent.get(u["intent"], [])) > 1 else None
            for u, (m, _), (_, template) in zip(understood, requests, decided)
        ]
        texts = [*queries, *(m for m, q in zip(rank_by, queries) if m is not None and m != q)]
        found = dict(zip(texts, self.retriever.search_many(texts, k=RANKED, mode="hybrid")))
        replies = []
        for u, (reason, template), query, text in zip(understood, decided, queries, rank_by):
            if text is not None:
                template = first_ranked(self._by_intent[u["intent"]], found[text])
            replies.append(reply_fields(u, reason, template, found[query][:SOURCES]))
        if write and self.writer is not None:
            replies = [self.write(r, m) for r, (m, _) in zip(replies, requests)]
        return replies

    def write_stream(self, reply: dict[str, Any], message: str) -> Iterator[dict[str, Any]]:
        """The writer's answer to a reply that answers (a handoff passes unchanged): ``{"delta": text}``
        per checked sentence, then ``{"reply": the final reply}`` — the written answer (``generated``
        true, ``sources`` the ones it used), or a handoff when the writer refused or wrote nothing the
        sources support."""
        if self.writer is None or reply["handoff"]:
            yield {"reply": reply}
            return
        sources = [Source(reply["answer_id"], reply["answer"])]
        passages = [s["id"] for s in reply["sources"] if s["kind"] == "passage" and s["id"] in self._passages]
        sources += [Source(pid, self._passages[pid]) for pid in passages]
        written = None
        for event in self.writer.stream(message, sources):
            if "written" in event:
                written = event["written"]
            else:
                yield event
        assert written is not None
        out = dict(reply)
        if written.answered:
            out.update(answer=written.text, generated=True, reason="written from " + ", ".join(written.used))
            out["used"] = written.used
            out["answer_id"] = next((u for u in written.used if u in self._intent_of), reply["answer_id"])
        else:
            why = "the sources do not answer it" if written.refused else "the written answer was not supported"
            out.update(handoff=True, answer_id=None, answer=None, generated=True, reason=why)
        yield {"reply": out}

    def write(self, reply: dict[str, Any], message: str) -> dict[str, Any]:
        """:meth:`write_stream`, whole."""
        return next(e["reply"] for e in self.write_stream(reply, message) if "reply" in e)

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
