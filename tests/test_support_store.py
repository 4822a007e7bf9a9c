"""The support tables: sessions and turns, the handoff lifecycle (race-safe claims), feedback for
``fieldtune retrain --source support``, and the knowledge base.

Every test runs on SQLite and on a real PostgreSQL server (see ``db_url`` in conftest).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import inspect

from fieldtune.errors import UserError
from fieldtune.monitoring.retrain import Policy
from fieldtune.store.db import current_revision, head_revision
from fieldtune.store.support_store import HandoffConflict, SupportStore, UnknownHandoff, UnknownSession

GUESSES = [{"intent": "card_arrival", "score": np.float32(0.41)}, {"intent": "card_delivery_estimate", "score": 0.3}]
TEMPLATES = [
    {"id": "t-card", "kind": "template", "intent": "card_arrival", "title": "Card", "text": "Cards take 5 days."},
    {"id": "t-pin", "kind": "template", "intent": "pin_blocked", "title": None, "text": "Unblock it in the app."},
]


@pytest.fixture()
def store(db_url):
    s = SupportStore(db_url)
    yield s
    s.close()


def _handed_off(store: SupportStore, question: str = "where is my new card?") -> tuple[str, int]:
    sid = store.new_session()
    store.add_turn(sid, "user", question)
    store.add_turn(sid, "assistant", "An agent will reply here.", {"handoff": True, "reason": "low_confidence"})
    return sid, store.open_handoff(sid, "low_confidence", GUESSES)


def test_the_migration_creates_the_support_tables(store):
    assert current_revision(store.engine) == head_revision() == "0003"
    tables = set(inspect(store.engine).get_table_names())
    assert {"support_sessions", "support_turns", "support_handoffs", "support_kb", "watch_items"} <= tables
    SupportStore(store.url).close()  # opening again is a no-op migration


def test_sessions_keep_their_turns_in_order(store):
    sid, other = store.new_session(), store.new_session()
    assert len(sid) == 32 and sid != other
    ids = [
        store.add_turn(sid, role, f"m{i}", {"n": i} if role == "assistant" else None)
        for i, role in enumerate(["user", "assistant", "user", "agent"])
    ]
    store.add_turn(other, "user", "someone else")
    assert ids == sorted(ids)
    turns = store.turns(sid)
    assert [t["text"] for t in turns] == ["m0", "m1", "m2", "m3"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "agent"]
    assert turns[1]["reply"] == {"n": 1} and turns[0]["reply"] is None and turns[0]["time"].tzinfo is not None
    assert [t["text"] for t in store.turns(sid, last=2)] == ["m2", "m3"]  # the newest, oldest first
    assert [t["text"] for t in store.turns(sid, after=ids[1])] == ["m2", "m3"]
    session = store.session(sid)
    assert session["id"] == sid and len(session["turns"]) == 4 and session["handoff"] is None
    assert store.session("0" * 32) is None and store.turns("0" * 32) == []
    with pytest.raises(UnknownSession):
        store.add_turn("0" * 32, "user", "hello?")
    with pytest.raises(ValueError, match="role"):
        store.add_turn(sid, "robot", "beep")


def test_a_handoff_carries_the_question_the_conversation_and_the_guesses(store):
    sid, hid = _handed_off(store)
    store.add_turn(sid, "user", "hello? anyone?")
    assert store.open_handoff(sid, "rephrased", []) == hid  # one pending handoff per session
    got = store.handoff(hid)
    assert got["status"] == "open" and got["reason"] == "low_confidence" and got["question"] == "where is my new card?"
    assert got["guesses"][0] == {"intent": "card_arrival", "score": pytest.approx(0.41)}  # numpy made plain JSON
    assert [t["role"] for t in got["turns"]] == ["user", "assistant", "user"]
    assert [h["id"] for h in store.handoffs("open")] == [hid] and store.handoffs("resolved") == []
    assert store.session(sid)["handoff"] == {"id": hid, "status": "open", "agent": None}
    with pytest.raises(UnknownHandoff):
        store.handoff(hid + 100)
    with pytest.raises(UnknownSession):
        store.open_handoff("f" * 32, "low_confidence", [])
    with pytest.raises(UserError, match="status"):
        store.handoffs("lost")


def test_claims_are_exclusive(store):
    _, hid = _handed_off(store)
    claimed = store.claim(hid, "maria")
    assert (claimed["status"], claimed["agent"]) == ("claimed", "maria") and claimed["claimed_at"] is not None
    assert store.claim(hid, "maria")["claimed_at"] == claimed["claimed_at"]  # again: a no-op
    with pytest.raises(HandoffConflict, match="claimed by maria"):
        store.claim(hid, "li")
    with pytest.raises(HandoffConflict, match="claimed by maria"):
        store.resolve(hid, "li", "card_arrival", answer="not mine to answer")
    assert [h["id"] for h in store.handoffs("pending")] == [hid]
    with pytest.raises(UnknownHandoff):
        store.claim(hid + 100, "maria")
    with pytest.raises(UserError, match="agent"):
        store.claim(hid, "  ")


def _race(stores: list[SupportStore], handoff_id: int, action: str) -> tuple[list[int], list[int]]:
    """Two threads, one per store, claim (or resolve) the same handoff at the same moment."""
    barrier, won, refused = threading.Barrier(2), [], []

    def go(i: int) -> None:
        barrier.wait()
        try:
            if action == "claim":
                stores[i].claim(handoff_id, f"agent{i}")
            else:
                stores[i].resolve(handoff_id, f"agent{i}", template_id="t-card")
            won.append(i)
        except HandoffConflict:
            refused.append(i)

    _in_threads(go, 2)
    return won, refused


def _in_threads(target, n: int) -> None:
    """``target(i)`` in ``n`` threads at once; returns when all have finished."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


@pytest.mark.parametrize("action", ["claim", "resolve"])
def test_two_agents_racing_exactly_one_wins(db_url, action):
    """Two store objects (two connection pools), two threads, started together: one wins, one is refused."""
    setup = SupportStore(db_url)
    setup.replace_kb(TEMPLATES)
    stores = [SupportStore(db_url), SupportStore(db_url)]
    for round_ in range(4):
        _, hid = _handed_off(setup)
        won, refused = _race(stores, hid, action)
        assert len(won) == 1 and len(refused) == 1, (round_, won, refused)
        final = setup.handoff(hid)
        assert final["agent"] == f"agent{won[0]}"
        assert [t["role"] for t in final["turns"]].count("agent") == (action == "resolve")
    assert len(setup.store.feedback()) == (4 if action == "resolve" else 0)  # the loser wrote no feedback
    for s in (*stores, setup):
        s.close()


def test_resolving_with_a_template_labels_the_question_for_retrain(store):
    store.replace_kb(TEMPLATES)
    sid, hid = _handed_off(store)
    done = store.resolve(hid, "maria", template_id="t-card")  # open -> resolved: resolving claims it too
    assert (done["status"], done["agent"], done["intent"], done["answer"]) == (
        "resolved",
        "maria",
        "card_arrival",
        "Cards take 5 days.",
    )
    assert done["resolved_at"] is not None and done["claimed_at"] is not None
    assert (done["turns"][-1]["role"], done["turns"][-1]["text"]) == ("agent", "Cards take 5 days.")
    [row] = store.store.feedback()
    assert (row.text, row.label, row.source) == ("where is my new card?", "card_arrival", "support")
    assert row.id == done["feedback_id"]
    policy = Policy(sources=("support",))  # what `fieldtune retrain --source support` keeps
    assert [f.id for f in store.store.feedback() if f.text and f.source in policy.sources] == [row.id]
    assert [k["id"] for k in store.kb_items()] == ["t-card", "t-pin"]  # a template answer adds no KB item
    with pytest.raises(HandoffConflict, match="already resolved"):
        store.resolve(hid, "maria", template_id="t-pin")
    assert store.session(sid)["handoff"]["status"] == "resolved"


def test_a_new_answer_joins_the_knowledge_base(store):
    _, hid = _handed_off(store, "can I pay my rent with the card?")
    store.claim(hid, "li")
    done = store.resolve(hid, "li", "card_payment", answer="  Yes, anywhere cards are accepted.  ")
    assert done["answer"] == "Yes, anywhere cards are accepted." and done["template_id"] is None
    [item] = store.kb_items()
    assert (item["id"], item["kind"], item["origin"]) == (f"agent-{hid}", "template", "agent")
    assert item["intent"] == "card_payment"
    assert item["text"] == "Yes, anywhere cards are accepted." and item["embedding"] is None
    assert [(f.label, f.source) for f in store.store.feedback()] == [("card_payment", "support")]

    _, other = _handed_off(store, "hmm")
    done = store.resolve(other, "li", answer="Could you tell me more?")  # no intent: an answer, no label
    assert done["feedback_id"] is None and len(store.store.feedback()) == 1
    _, third = _handed_off(store)
    with pytest.raises(UserError, match="template_id or an answer"):
        store.resolve(third, "li", "card_arrival")
    with pytest.raises(UserError, match="no knowledge-base item"):
        store.resolve(third, "li", template_id="t-nothing")
    assert store.handoff(third)["status"] == "open"  # refused before anything changed


def test_the_knowledge_base_is_replaced_and_keeps_agent_answers(store):
    vectors = np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)
    rows = [{**t, "embedding": v} for t, v in zip(TEMPLATES, vectors)]
    rows.append({"id": "faq.md#1", "kind": "passage", "title": "Fees", "text": "No fees in the EU.", "embedding": None})
    assert store.replace_kb(rows) == 3
    items = {k["id"]: k for k in store.kb_items()}
    assert list(items) == ["faq.md#1", "t-card", "t-pin"]
    assert np.allclose(items["t-card"]["embedding"], vectors[0]) and items["faq.md#1"]["embedding"] is None
    assert [k["id"] for k in store.kb_items("passage")] == ["faq.md#1"]
    store.add_kb_item({"id": "agent-7", "intent": "card_payment", "text": "Yes."})
    with pytest.raises(UserError, match="already has"):
        store.add_kb_item({"id": "agent-7", "text": "again"})
    store.replace_kb(TEMPLATES[:1])  # a rebuild: build rows replaced, the agent's answer kept
    assert [k["id"] for k in store.kb_items()] == ["agent-7", "t-card"]
    store.replace_kb(TEMPLATES[:1], keep_agent=False)
    assert [k["id"] for k in store.kb_items()] == ["t-card"]
    with pytest.raises(UserError, match="duplicate"):
        store.replace_kb(TEMPLATES + TEMPLATES[:1])
    with pytest.raises(UserError, match="kind"):
        store.replace_kb([{"id": "x", "kind": "video", "text": "t"}])
    with pytest.raises(UserError, match="no text"):
        store.add_kb_item({"id": "y", "text": " "})
    assert [k["id"] for k in store.kb_items()] == ["t-card"]  # failed calls changed nothing


def test_sqlite_writers_of_one_process_take_turns(tmp_path):
    """On SQLite, ``transaction`` lets one thread of the process write at a time (no busy-handler
    sleeps); every conversation of 8 threads writing at once is kept, and a failed transaction
    rolls back and frees the lock."""
    from fieldtune.store.db import transaction

    store = SupportStore(f"sqlite:///{tmp_path / 'turns.db'}")
    inside, most, guard = [0], [0], threading.Lock()
    real_begin = store.engine.begin

    def counting_begin():
        class Counted:
            def __enter__(self):
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                self.cm = real_begin()
                return self.cm.__enter__()

            def __exit__(self, *exc):
                try:
                    return self.cm.__exit__(*exc)
                finally:
                    with guard:
                        inside[0] -= 1

        return Counted()

    store.engine.begin = counting_begin
    sessions: list[str] = []

    def talk(i: int) -> None:
        for _ in range(10):
            sid = store.new_session()
            store.add_turn(sid, "user", f"question {i}")
            store.add_turn(sid, "assistant", "answer", {"handoff": False})
            sessions.append(sid)

    _in_threads(talk, 8)
    assert len(sessions) == 80 and all(len(store.turns(s)) == 2 for s in sessions)
    assert most[0] == 1  # never two writers inside at once
    with pytest.raises(RuntimeError), transaction(store.engine):
        raise RuntimeError("boom")
    assert store.new_session()  # the lock was released
