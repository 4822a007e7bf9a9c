"""The support pages and the ``/v1/support/*`` API, in process (FastAPI TestClient), over a SQLite
SupportStore, with :class:`FakeAssistant`: the assistant's interface on keyword overlap, no model."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from fieldtune.apps.support.web import create_app
from fieldtune.store.support_store import SupportStore

UNKNOWN = "What's the weather like on Mars tomorrow?"
KNOWN = "My new card still hasn't arrived"
SCRIPT = "<script>alert('x')</script> help"


@dataclass(frozen=True)
class FakeTemplate:
    """The shape of ``fieldtune.apps.support.kb.Template`` the app reads."""

    id: str
    answer: str
    intent: str | None = None
    title: str | None = None


TEMPLATES = [
    FakeTemplate(
        "t-card-arrival",
        "New cards arrive within 5 working days. You can follow yours in the app under Cards › Delivery.",
        "card_arrival",
        "When will my card arrive?",
    ),
    FakeTemplate(
        "t-exchange-rate",
        "We use the interbank rate at the moment you pay, with no markup on weekdays.",
        "exchange_rate",
        "Exchange rates",
    ),
    FakeTemplate(
        "t-pin-blocked",
        "Three wrong PINs block the card for 24 hours; you can unblock it sooner in the app under Security.",
        "pin_blocked",
        "Blocked PIN",
    ),
]
KEYWORDS = {
    "card_arrival": {"card", "arrive", "arrived", "delivery", "post"},
    "exchange_rate": {"exchange", "rate", "currency", "dollars", "euros"},
    "pin_blocked": {"pin", "blocked", "locked", "wrong"},
}


class FakeAssistant:
    """``ask`` / ``templates`` / ``suggest`` as the real assistant has them: two keywords of an
    intent answer with its template, fewer hand off; "human" always hands off."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, list[dict]]] = []
        self.reloads = 0
        self.extra: list[FakeTemplate] = []

    def templates(self) -> list[FakeTemplate]:
        return TEMPLATES + self.extra

    def reload_kb(self) -> None:
        self.reloads += 1

    def _ranked(self, text: str) -> list[tuple[float, str]]:
        words = set(re.findall(r"[a-z]+", text.lower()))
        return sorted(((min(len(words & kw) / 2, 1.0), intent) for intent, kw in KEYWORDS.items()), reverse=True)

    def ask(self, message: str, history: list[dict]) -> dict:
        self.asked.append((message, history))
        ranked = self._ranked(message)
        score, intent = ranked[0]
        reason = "asked for a human" if "human" in message.lower() else None
        reason = reason or ("not sure of the intent" if score < 1.0 else None)
        template = next(t for t in TEMPLATES if t.intent == intent)
        return {
            "handoff": reason is not None,
            "answer_id": None if reason else template.id,
            "answer": None if reason else template.answer,
            "intent": intent,
            "score": score,
            "reason": reason or "answered with the intent's template",
            "sources": [{"id": template.id, "kind": "template", "score": score}],
            "guesses": [{"intent": i, "score": s} for s, i in ranked],
        }

    def suggest(self, text: str, k: int = 3) -> list[dict]:
        by_intent = {t.intent: t for t in TEMPLATES}
        return [
            {"id": by_intent[i].id, "intent": i, "answer": by_intent[i].answer, "score": s}
            for s, i in self._ranked(text)[:k]
        ]


@pytest.fixture()
def app_parts(tmp_path):
    store = SupportStore(f"sqlite:///{tmp_path / 'support.db'}")
    assistant = FakeAssistant()
    with TestClient(create_app(assistant, store)) as client:
        yield client, store, assistant
    store.close()


def _handoff(client, message: str = UNKNOWN, session_id: str | None = None) -> dict:
    body = {"message": message} | ({"session_id": session_id} if session_id else {})
    r = client.post("/v1/support/chat", json=body)
    assert r.status_code == 200 and r.json()["handoff"], r.text
    return r.json()


def test_chat_answers_and_keeps_the_conversation(app_parts):
    client, store, assistant = app_parts
    r = client.post("/v1/support/chat", json={"message": KNOWN})
    assert r.status_code == 200
    out = r.json()
    assert out["handoff"] is False and out["answer_id"] == "t-card-arrival" and out["text"] == out["answer"]
    assert {"answer", "intent", "score", "reason", "sources", "guesses", "session_id", "turn_id"} <= set(out)
    assert "handoff_id" not in out and assistant.asked[0] == (KNOWN, [])
    second = client.post("/v1/support/chat", json={"session_id": out["session_id"], "message": "and my PIN is blocked"})
    assert second.json()["intent"] == "pin_blocked" and second.json()["session_id"] == out["session_id"]
    history = assistant.asked[1][1]
    assert [(t["role"], t["text"]) for t in history] == [("user", KNOWN), ("assistant", out["answer"])]
    assert history[1]["reply"]["intent"] == "card_arrival"  # the assistant sees its earlier decision
    assert [t["role"] for t in store.turns(out["session_id"])] == ["user", "assistant"] * 2
    session = client.get(f"/v1/support/sessions/{out['session_id']}").json()
    assert len(session["turns"]) == 4 and session["handoff"] is None
    after = client.get(f"/v1/support/sessions/{out['session_id']}", params={"after": out["turn_id"]}).json()
    assert [t["role"] for t in after["turns"]] == ["user", "assistant"]


def test_an_unknown_question_is_handed_off_once_per_session(app_parts):
    client, store, _ = app_parts
    out = _handoff(client)
    assert out["answer"] is None and "an agent will reply" in out["text"].lower() and out["handoff_id"] >= 1
    again = _handoff(client, "is anyone there?", out["session_id"])
    assert again["handoff_id"] == out["handoff_id"]
    [listed] = client.get("/v1/support/handoffs", params={"status": "open"}).json()
    assert listed["id"] == out["handoff_id"] and listed["question"] == UNKNOWN
    assert listed["reason"] == "not sure of the intent" and listed["guesses"][0]["intent"]
    assert [t["role"] for t in listed["turns"]] == ["user", "assistant"] * 2
    one = client.get(f"/v1/support/handoffs/{out['handoff_id']}").json()
    assert len(one["suggestions"]) == 3 and {"id", "intent", "answer", "score"} <= set(one["suggestions"][0])
    assert client.get("/v1/support/sessions/nope").json()["error"]["type"] == "unknown_session"
    assert client.get("/v1/support/handoffs", params={"status": "lost"}).status_code == 422
    assert client.get("/v1/support/handoffs/999").json()["error"]["type"] == "unknown_handoff"
    assert _handoff(client, "I want to talk to a human")["reason"] == "asked for a human"


def test_claim_and_resolve_with_a_template(app_parts):
    client, store, _ = app_parts
    out = _handoff(client)
    hid = out["handoff_id"]
    claimed = client.post(f"/v1/support/handoffs/{hid}/claim", json={"agent": "maria"})
    assert claimed.status_code == 200 and claimed.json()["status"] == "claimed"
    taken = client.post(f"/v1/support/handoffs/{hid}/claim", json={"agent": "li"})
    assert taken.status_code == 409 and taken.json()["error"]["type"] == "handoff_taken"
    assert "maria" in taken.json()["error"]["message"]
    r = client.post(f"/v1/support/handoffs/{hid}/resolve", json={"agent": "li", "template_id": "t-pin-blocked"})
    assert r.status_code == 409
    r = client.post(f"/v1/support/handoffs/{hid}/resolve", json={"agent": "maria", "template_id": "t-pin-blocked"})
    assert r.status_code == 200
    done = r.json()
    assert (done["status"], done["intent"], done["template_id"]) == ("resolved", "pin_blocked", "t-pin-blocked")
    assert done["answer"] == TEMPLATES[2].answer and done["feedback_id"] is not None
    [row] = store.store.feedback()
    assert (row.text, row.label, row.source) == (UNKNOWN, "pin_blocked", "support")
    turns = client.get(f"/v1/support/sessions/{out['session_id']}", params={"after": out["turn_id"]}).json()
    assert [(t["role"], t["text"]) for t in turns["turns"]] == [("agent", TEMPLATES[2].answer)]
    assert turns["handoff"]["status"] == "resolved"
    again = client.post(f"/v1/support/handoffs/{hid}/resolve", json={"agent": "maria", "template_id": "t-pin-blocked"})
    assert again.status_code == 409 and "already resolved" in again.json()["error"]["message"]
    assert client.post("/v1/support/handoffs/999/claim", json={"agent": "maria"}).status_code == 404


def test_resolve_with_a_new_answer_teaches_the_assistant(app_parts):
    client, store, assistant = app_parts
    hid = _handoff(client, "Can I pay my rent with the card abroad?")["handoff_id"]
    body = {"agent": "li", "answer": "Yes: rent is a normal card payment.", "intent": "card_payment"}
    done = client.post(f"/v1/support/handoffs/{hid}/resolve", json=body).json()
    assert done["status"] == "resolved" and done["template_id"] is None and done["intent"] == "card_payment"
    [item] = store.kb_items()
    assert (item["id"], item["intent"], item["text"]) == (f"agent-{hid}", "card_payment", body["answer"])
    assert assistant.reloads == 1  # the running assistant re-reads its knowledge base
    assert [(f.label, f.source) for f in store.store.feedback()] == [("card_payment", "support")]


@pytest.mark.parametrize(
    "body, status, kind",
    [
        ({"agent": "li"}, 422, "invalid_request"),
        ({"agent": "li", "answer": "   "}, 422, "invalid_request"),
        ({"agent": "li", "template_id": "nope"}, 422, "unknown_template"),
        ({"agent": "", "template_id": "t-pin-blocked"}, 422, "invalid_request"),
        ({"agent": "li", "template_id": "t-pin-blocked", "colour": "red"}, 422, "invalid_request"),
    ],
)
def test_resolve_validation(app_parts, body, status, kind):
    client, store, _ = app_parts
    hid = _handoff(client)["handoff_id"]
    r = client.post(f"/v1/support/handoffs/{hid}/resolve", json=body)
    assert (r.status_code, r.json()["error"]["type"]) == (status, kind), r.text
    assert r.json()["error"]["hint"]
    assert store.handoff(hid)["status"] == "open"


def _events(text: str) -> list[tuple[str, str]]:
    blocks = [b for b in text.split("\n\n") if b.strip()]
    return [tuple(line.split(": ", 1)[1] for line in b.split("\n")) for b in blocks]


@pytest.mark.parametrize("how", ["body", "header"])
def test_chat_streams_server_sent_events(app_parts, how):
    client, _, _ = app_parts
    body = {"message": KNOWN} | ({"stream": True} if how == "body" else {})
    headers = {"Accept": "text/event-stream"} if how == "header" else {}
    r = client.post("/v1/support/chat", json=body, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    (first, data), (last, _) = _events(r.text)
    assert (first, last) == ("reply", "done")
    reply = json.loads(data)
    assert reply["answer_id"] == "t-card-arrival" and reply["session_id"]


@pytest.mark.parametrize(
    "body, status, kind",
    [
        ({"message": ""}, 422, "invalid_request"),
        ({"message": " \x00\t "}, 422, "invalid_request"),
        ({"message": "x" * 2001}, 422, "invalid_request"),
        ({"message": "hi", "session_id": "0" * 32}, 404, "unknown_session"),
        ({"message": "hi", "temperature": 0}, 422, "invalid_request"),
        ({"text": "hi"}, 422, "invalid_request"),
    ],
)
def test_chat_validation(app_parts, body, status, kind):
    client, store, _ = app_parts
    r = client.post("/v1/support/chat", json=body)
    assert (r.status_code, r.json()["error"]["type"]) == (status, kind), r.text
    assert "message" in r.json()["error"]["hint"] or "session_id" in r.json()["error"]["hint"]


def test_chat_needs_a_json_body(app_parts):
    client, *_ = app_parts
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = client.post("/v1/support/chat", content=b"message=hi", headers=form)
    assert r.status_code == 415
    r = client.post("/v1/support/chat", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "message" in r.json()["error"]["hint"]


def test_pages_render_escaped_and_labelled(app_parts):
    client, store, _ = app_parts
    chat = client.get("/")
    assert chat.status_code == 200 and chat.headers["content-type"].startswith("text/html")
    assert '<label for="message">' in chat.text and 'aria-live="polite"' in chat.text and 'id="chat-log"' in chat.text
    assert "favicon.svg" in chat.text and "chat.js" in chat.text and "http" not in chat.text.split("<body")[0]
    hid = _handoff(client, SCRIPT)["handoff_id"]
    queue = client.get("/agent")
    assert f'href="/agent/handoffs/{hid}"' in queue.text and SCRIPT not in queue.text
    assert "&lt;script&gt;alert(" in queue.text
    page = client.get(f"/agent/handoffs/{hid}")
    assert page.status_code == 200 and SCRIPT not in page.text
    for needle in (
        '<label for="agent-name">',
        '<label for="answer-text">',
        '<label for="answer-intent">',
        '<label for="template-select">',
        'class="use-template"',
        "not sure of the intent",
        'id="claim"',
    ):
        assert needle in page.text, needle
    assert page.text.count('class="suggestion"') == 3 and '<option value="card_arrival">' in page.text
    client.post(f"/v1/support/handoffs/{hid}/resolve", json={"agent": "li", "template_id": "t-card-arrival"})
    resolved = client.get(f"/agent/handoffs/{hid}").text
    assert "Answered" in resolved and "t-card-arrival" in resolved and 'id="answer-form"' not in resolved
    assert f'data-handoff-id="{hid}"' not in client.get("/agent").text  # off the queue
    missing = client.get("/agent/handoffs/999")
    assert missing.status_code == 404 and "no handoff 999" in missing.text
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_templates_route(app_parts):
    client, *_ = app_parts
    rows = client.get("/v1/support/templates").json()
    assert [r["id"] for r in rows] == [t.id for t in TEMPLATES] and rows[0]["intent"] == "card_arrival"


def test_token_guards_pages_and_api(tmp_path):
    store = SupportStore(f"sqlite:///{tmp_path / 'support.db'}")
    with TestClient(create_app(FakeAssistant(), store, token="s3cret")) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/static/support.css").status_code == 200
        assert client.post("/v1/support/chat", json={"message": KNOWN}).status_code == 401
        assert client.get("/v1/support/handoffs").status_code == 401
        ok = client.post("/v1/support/chat", json={"message": KNOWN}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get("/agent").status_code == 401
        login = client.get("/agent?token=s3cret", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/agent"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/agent").status_code == 200 and client.get("/").status_code == 200
        assert client.post("/v1/support/chat", json={"message": UNKNOWN}).json()["handoff"]  # the cookie works
    store.close()


def test_openapi_lists_the_support_routes_not_the_pages(app_parts):
    client, *_ = app_parts
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/v1/support/chat", "/v1/support/handoffs", "/v1/support/handoffs/{handoff_id}", "/health"} <= paths
    assert {"/v1/support/handoffs/{handoff_id}/claim", "/v1/support/handoffs/{handoff_id}/resolve"} <= paths
    assert "/" not in paths and "/agent" not in paths
