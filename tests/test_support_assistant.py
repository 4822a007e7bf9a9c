"""``fieldtune support``: the answer-or-hand-off decision, the dev-chosen rule, and an assistant built
end to end from the shipped banking sample (4 real BANKING77 intents, our own templates, real CLINC150
out-of-scope queries) with the real minilm — built once per session (conftest ``support_built``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import SUPPORT_INTENTS
from typer.testing import CliRunner

from fieldtune.apps.support.assistant import Assistant, decide
from fieldtune.apps.support.evaluate import evaluate_assistant
from fieldtune.apps.support.intent import Rule, choose_rule, wilson_lower
from fieldtune.apps.support.kb import Template
from fieldtune.cli import app
from fieldtune.errors import UserError

RULE = Rule(max_distance=10.0, min_confidence=0.5, dev_precision=1.0, dev_answered=1.0, dev_oos_handoff=1.0, met=True)
CARD = Template(id="t-card", answer="Cards arrive in 3-5 working days.", intent="card_arrival")


def understood(intent="card_arrival", confidence=0.9, distance=5.0) -> dict:
    return {"intent": intent, "confidence": confidence, "distance": distance, "guesses": []}


# ---------------------------------------------------------------- the decision, on its own


@pytest.mark.parametrize(
    ("u", "message", "history", "reason"),
    [
        (understood(), "where is my card?", [], None),
        (understood(), "I want to talk to a human please", [], "asked for a human"),
        (understood(), "转人工", [], "asked for a human"),
        (understood(distance=11.0), "how tall is the eiffel tower", [], "out of scope"),
        (understood(confidence=0.3), "card?", [], "not sure of the intent"),
        (
            understood(),
            "it still has not come",
            [{"role": "assistant", "text": "...", "reply": {"handoff": False, "intent": "card_arrival"}}],
            "asked again after an answer",
        ),
        (understood(intent="top_up"), "top up failed", [], "no answer template for intent 'top_up'"),
    ],
)
def test_decide_answers_or_says_why_not(u, message, history, reason):
    got, template = decide(u, RULE, message, history, {"card_arrival": [CARD]})
    assert got == reason
    assert (template is CARD) == (reason is None)


def test_a_different_intent_after_an_answer_is_answered():
    history = [{"role": "assistant", "text": "...", "reply": {"handoff": False, "intent": "exchange_rate"}}]
    assert decide(understood(), RULE, "and my card?", history, {"card_arrival": [CARD]}) == (None, CARD)


def test_the_rule_keeps_precision_and_hands_off_out_of_scope():
    rng = np.random.default_rng(0)
    items, gold = [], []
    for _ in range(400):  # in scope: mostly right when confident, far from nothing
        confident = rng.random() < 0.8
        items.append(
            understood("a" if confident or rng.random() < 0.5 else "b", 0.9 if confident else 0.4, rng.random())
        )
        gold.append("a")
    for _ in range(100):  # out of scope: far away, half of them confident
        items.append(understood("a", 0.9 if rng.random() < 0.5 else 0.4, 2 + rng.random()))
        gold.append("oos")
    rule = choose_rule(items, gold, target_precision=0.97, target_oos_handoff=0.8)
    assert rule.met and rule.dev_precision >= 0.97 and rule.dev_oos_handoff >= 0.8
    assert rule.max_distance < 2 and rule.min_confidence > 0.4  # both thresholds did work
    assert rule.dev_answered == pytest.approx(0.8, abs=0.06)  # every confident in-scope question answered
    unreachable = choose_rule(items, gold, target_precision=1.01)
    assert not unreachable.met and math.isfinite(unreachable.dev_precision)


def test_the_precision_target_holds_at_90_percent_confidence():
    assert wilson_lower(0.8, 0, 1.28) == 0.8 and wilson_lower(0.8, 100, 0.0) == 0.8
    # by hand: (2np + z² - z sqrt(z² + 4np(1-p))) / 2(n + z²) = (181.6425 - 7.8631) / 203.285
    assert wilson_lower(0.9, 100, 1.2816) == pytest.approx(0.8549, abs=1e-4)
    assert wilson_lower(1.0, 70, 1.2816) == pytest.approx(1 / (1 + 1.2816**2 / 70), abs=1e-9)

    # 98% right among the confident: 50 dev answers can't show 0.97 at 90% confidence, 2,000 can
    def dev(confident: int, right: int, unsure: int = 0, unsure_right: int = 0) -> tuple[list[dict], list[str]]:
        """Questions at probability 0.9 (``right`` of them right), 0.6 and 0.3 (all 1,000 wrong)."""
        items = [understood("a", 0.9, 0.1)] * confident + [understood("a", 0.6, 0.1)] * unsure
        items += [understood("a", 0.3, 0.1)] * 1000
        gold = ["a"] * right + ["b"] * (confident - right) + ["a"] * unsure_right + ["b"] * (unsure - unsure_right)
        return items, gold + ["b"] * 1000

    # answering the 0.6 ones too: precision 2,135 / 2,200 = 0.9705 — above 0.97, its bound (0.966) not;
    # the confident ones alone: 0.98 over 2,000 answers, bound 0.976
    items, gold = dev(2000, 1960, 200, 175)
    held = choose_rule(items, gold, target_precision=0.97)
    assert held.met and held.dev_precision == pytest.approx(0.98) and held.dev_precision_low >= 0.97
    assert held.min_confidence > 0.6
    point = choose_rule(items, gold, target_precision=0.97, confidence=0)  # the point estimate alone
    assert point.met and point.dev_precision == pytest.approx(2135 / 2200) and point.min_confidence <= 0.6
    assert point.dev_answered > held.dev_answered and point.dev_precision_low == point.dev_precision
    # 49 of 50 right can't show 0.97 at 90% confidence: the point estimate decides, the bound is recorded
    small = choose_rule(*dev(50, 49), target_precision=0.97)
    assert small.met and small.dev_precision == pytest.approx(0.98) and small.dev_precision_low < 0.97


# ---------------------------------------------------------------- an assistant built for real


@pytest.fixture(scope="module")
def built(support_built) -> tuple[Path, Path]:
    return support_built


@pytest.fixture(scope="module")
def assistant(built) -> Assistant:
    return Assistant(built[0])


def test_the_folder_describes_itself(built):
    meta = json.loads((built[0] / "support.json").read_text())
    assert meta["rule"]["min_confidence"] >= 0 and meta["kb"]["templates"] == 77
    assert (built[0] / meta["detector"]).is_file() and (built[0] / meta["intent_model"] / "fieldtune.json").is_file()


def test_both_forward_passes_serve_from_onnx_with_torchs_answers(built, assistant):
    from fieldtune.apps.support.onnx_passes import OnnxSentenceEncoder

    meta = json.loads((built[0] / "support.json").read_text())
    graphs = meta["onnx"]
    assert (built[0] / graphs["intent"]).is_file() and (built[0] / graphs["encoder"] / "encoder.onnx").is_file()
    assert assistant.intent.session is not None and isinstance(assistant.encoder, OnnxSentenceEncoder)
    in_torch = Assistant(built[0], onnx=False)
    assert in_torch.intent.session is None and not isinstance(in_torch.encoder, OnnxSentenceEncoder)
    with (built[1]).open(encoding="utf-8", newline="") as f:
        questions = [r["text"] for r in csv.DictReader(f)]
    fast, slow = assistant.ask_many([(q, []) for q in questions]), in_torch.ask_many([(q, []) for q in questions])
    decision = ("handoff", "answer_id", "intent", "reason")
    for a, b in zip(fast, slow):
        assert [a[k] for k in decision] == [b[k] for k in decision]
        assert a["score"] == pytest.approx(b["score"], abs=1e-3)
        assert [s["id"] for s in a["sources"]] == [s["id"] for s in b["sources"]]
    # the query embeddings match torch's, and the stored ones (embedded in torch at build)
    probe = questions[:5]
    assert np.allclose(assistant.retriever._encode(probe), in_torch.retriever._encode(probe), atol=1e-5)


def test_bm25_indexes_each_template_with_its_training_questions(built, assistant):
    folder = built[0]
    expansions = json.loads((folder / json.loads((folder / "support.json").read_text())["expansions"]).read_text())
    intents = {t.id: t.intent for t in assistant.templates()}
    assert len(expansions) == len(SUPPORT_INTENTS)  # the four intents with questions, one template each
    with (folder.parent / "questions.csv").open(encoding="utf-8", newline="") as f:
        asked = {r["text"]: r["intent"] for r in csv.DictReader(f)}
    for template_id, questions in expansions.items():
        assert questions and all(asked[q] == intents[template_id] for q in questions)
    # a training question's words now find its template by BM25 alone, although the template never uses them
    question = expansions[next(iter(expansions))][0]
    assert assistant.retriever.search(question, k=1, mode="bm25")[0].id == next(iter(expansions))
    # a folder built before expansions (no "expansions" in support.json) indexes the templates alone
    assistant.meta.pop("expansions")
    assert assistant._expansions() == {}
    assistant.meta["expansions"] = "expansions.json"


def test_an_in_scope_question_gets_its_intents_template(assistant):
    reply = assistant.ask("I ordered a new card two weeks ago and it still hasn't arrived")
    assert not reply["handoff"] and reply["intent"] == "card_arrival"
    template = next(t for t in assistant.templates() if t.id == reply["answer_id"])
    assert template.intent == "card_arrival" and reply["answer"] == template.answer
    assert set(reply) >= {"handoff", "answer_id", "answer", "intent", "score", "reason", "sources", "guesses"}
    assert reply["sources"] and reply["guesses"][0]["intent"] == "card_arrival"


def test_out_of_scope_and_human_requests_are_handed_off(assistant):
    for message, reason in (
        ("what is the best recipe for lasagna", "out of scope"),
        ("can I speak to a real person", "asked for a human"),
    ):
        reply = assistant.ask(message)
        assert reply["handoff"] and reply["reason"] == reason and reply["answer"] is None and reply["answer_id"] is None


def test_an_empty_message_is_a_clear_error(assistant):
    with pytest.raises(UserError, match="empty"):
        assistant.ask("  ")


def test_eval_reports_decisions_and_retrieval(assistant, built, tmp_path):
    m = evaluate_assistant(assistant, built[1], tmp_path, latency_questions=5)
    assert m["in_scope"] == 48 and m["out_of_scope"] == 30
    assert m["answered_precision"] >= 0.85 and m["in_scope_answered"] >= 0.5 and m["oos_handoff"] >= 0.6
    assert m["retrieval"]["hybrid"]["recall@5"] >= 0.8
    assert (tmp_path / "report.md").read_text().count("|") > 20 and (
        tmp_path / "answer_coverage.png"
    ).stat().st_size > 5000


def test_cli_ask_json(built):
    result = CliRunner().invoke(app, ["support", "ask", str(built[0]), "what exchange rate do you use?", "--json"])
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)
    assert reply["intent"] == "exchange_rate" and not reply["handoff"]
    missing = CliRunner().invoke(app, ["support", "ask", str(built[0].parent / "nowhere"), "hi"])
    assert missing.exit_code == 2 and "support build" in missing.output


def test_micro_batched_asks_answer_as_one_by_one(assistant):
    from concurrent.futures import ThreadPoolExecutor

    from fieldtune.apps.support.batching import BatchedAssistant

    questions = [
        "my card still hasn't arrived",
        "what exchange rate do you use?",
        "my PIN is blocked",
        "how tall is the eiffel tower",
        "I lost my card yesterday",
        "can I speak to a real person",
    ] * 2
    alone = [assistant.ask(q) for q in questions]
    batched = BatchedAssistant(assistant, max_batch=8, max_wait_ms=50)
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(batched.ask, questions))
    assert [r["answer_id"] for r in together] == [r["answer_id"] for r in alone]
    assert [r["handoff"] for r in together] == [r["handoff"] for r in alone]
    assert max(batched.batches) > 1 and sum(batched.batches) == len(questions)
    assert batched.templates() == assistant.templates()  # everything else passes through
    with pytest.raises(UserError, match="empty"):
        batched.ask("")


def test_cli_build_passes_the_intent_base_and_the_writer_model(monkeypatch, tmp_path):
    import fieldtune.apps.support.build as build_module

    seen = {}
    monkeypatch.setattr(build_module, "build_assistant", lambda *a, **k: seen.update(args=a, kwargs=k))
    files = ["--kb", str(tmp_path / "kb.csv"), "--questions", str(tmp_path / "q.csv"), "--output", str(tmp_path / "a")]
    result = CliRunner().invoke(
        app, ["support", "build", *files, "--model", "multilingual", "--generate", "--writer-model", "gemma3"]
    )
    assert result.exit_code == 0, result.output
    assert seen["args"][6] == {"model": "multilingual"} and seen["kwargs"]["writer_model"] == "gemma3"
    CliRunner().invoke(app, ["support", "build", *files])
    assert seen["args"][6] is None and seen["kwargs"]["writer_model"] == "smollm2"  # the defaults
