"""The grounded reply writer: tuning data, the sentence-by-sentence support check, refusals."""

from __future__ import annotations

import threading

from fieldtune.apps.support.kb import Template
from fieldtune.apps.support.writer import REFUSAL, Source, Writer, supported_share, used_sources, writer_examples
from fieldtune.data.examples import TextExample

CARD = Template(
    "card_arrival", "New cards arrive within 5-7 working days. Track them under Cards in the app.", "card_arrival"
)
PIN = Template("change_pin", "Change your PIN at any of our ATMs under PIN services.", "change_pin")
SOURCES = [Source(CARD.id, CARD.answer), Source(PIN.id, PIN.answer)]


class FakePredictor:
    """Streams a fixed answer in small pieces; records whether the writer cancelled it."""

    def __init__(self, answer: str) -> None:
        self.answer, self.cancelled, self.pieces = answer, False, 0

    def stream(self, messages, max_tokens, cancel: threading.Event):
        assert "Customer:" in messages[-1]["content"] and "[card_arrival]" in messages[-1]["content"]
        for start in range(0, len(self.answer), 4):
            if cancel.is_set():
                self.cancelled = True
                return
            self.pieces += 1
            yield {"delta": self.answer[start : start + 4]}
        yield {"finish_reason": "stop", "usage": {}}


def events(answer: str) -> tuple[list[str], object, FakePredictor]:
    predictor = FakePredictor(answer)
    out = list(Writer(predictor).stream("where is my card?", SOURCES))
    return [e["delta"] for e in out if "delta" in e], out[-1]["written"], predictor


def test_supported_answer_streams_sentence_by_sentence_with_its_sources():
    deltas, written, _ = events("New cards arrive within 5-7 working days. Track them in the app.")
    assert deltas == ["New cards arrive within 5-7 working days. ", "Track them in the app."]
    assert written.answered and not written.dropped
    assert written.text == "New cards arrive within 5-7 working days. Track them in the app."
    assert written.used == ["card_arrival"]


def test_unsupported_sentence_is_never_shown_and_stops_generation():
    deltas, written, predictor = events(
        "New cards arrive within 5-7 working days. Your balance earns 12% interest monthly. Track them."
    )
    assert deltas == ["New cards arrive within 5-7 working days. "]
    assert written.dropped and written.answered and "interest" not in written.text
    assert predictor.cancelled  # nothing after the unsupported sentence was generated


def test_invented_first_sentence_or_refusal_answers_nothing():
    deltas, written, _ = events("The weather in Paris is sunny tomorrow. New cards arrive within 5-7 working days.")
    assert deltas == [] and not written.answered and written.dropped
    deltas, written, _ = events(REFUSAL)
    assert deltas == [] and written.refused and not written.answered
    deltas, written, _ = events("sorry, our help articles don't answer that")  # case and full stop
    assert written.refused


def test_supported_share_and_used_sources():
    vocabulary = {"cards", "arrive", "working", "days"}
    assert supported_share("Cards arrive in 3 working days", vocabulary) == 4 / 5  # '3' is not in it
    assert supported_share("the and of", vocabulary) == 1.0  # no content words
    assert used_sources("Change your PIN at an ATM", SOURCES) == ["change_pin"]


def test_writer_examples_pair_questions_with_their_template_or_a_refusal():
    questions = [TextExample(f"where is card {i}", ["card_arrival"]) for i in range(6)]
    questions += [TextExample(f"new pin {i}", ["change_pin"]) for i in range(6)]
    questions += [TextExample(f"book a flight {i}", ["oos"]) for i in range(4)]  # limit 16 keeps two
    rows = writer_examples(questions, [CARD, PIN], seed=3, limit=16)
    assert rows == writer_examples(questions, [CARD, PIN], seed=3, limit=16)  # deterministic per seed
    answers = [r for r in rows if r["response"] != REFUSAL]
    refusals = [r for r in rows if r["response"] == REFUSAL]
    assert len(rows) == 2 + 12 and len(refusals) == 2 + 2  # two oos questions (limit / 8), a quarter of the others
    for row in answers:  # the answer is a template shown in the prompt, for a question of its intent
        template = CARD if row["response"] == CARD.answer else PIN
        assert f"[{template.id}] {template.answer}" in row["prompt"]
        assert ("card" if template is CARD else "pin") in row["prompt"].split("Customer: ")[1]
    for row in refusals:
        asked = row["prompt"].split("Customer: ")[1]
        if asked.startswith("where is card"):
            assert "[card_arrival]" not in row["prompt"]
        if asked.startswith("new pin"):
            assert "[change_pin]" not in row["prompt"]
    assert len(writer_examples(questions, [CARD, PIN], seed=3, limit=5)) <= 5
