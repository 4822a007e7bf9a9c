"""``--generate``: a real reply writer (smollm2 + LoRA, tuned on the session assistant's questions)
answers from its sources or refuses; the API streams the checked sentences as server-sent events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLES
from fastapi.testclient import TestClient

from fieldtune.apps.support.assistant import Assistant
from fieldtune.apps.support.build import read_questions
from fieldtune.apps.support.kb import load_templates
from fieldtune.apps.support.retrieval import tokenize
from fieldtune.apps.support.web import create_app
from fieldtune.apps.support.writer import MIN_SUPPORT, supported_share, train_writer, writer_examples
from fieldtune.errors import UserError

CARD = "I ordered a new card two weeks ago and it still hasn't arrived"


@pytest.fixture(scope="module")
def generating(support_built, tmp_path_factory) -> Assistant:
    """A copy of the session's assistant with a writer tuned on 48 examples of its own questions."""
    folder = tmp_path_factory.mktemp("generate") / "assistant"
    shutil.copytree(support_built[0], folder)
    templates = load_templates(SAMPLES / "support" / "templates.csv")
    questions = read_questions(support_built[0].parent / "questions.csv")
    examples = writer_examples(questions, templates, seed=3, limit=48)
    model_dir = Path(train_writer(folder, examples, seed=3, log=lambda _: None, epochs=3))
    meta = json.loads((folder / "support.json").read_text())
    meta["writer"] = {"model": str(model_dir.relative_to(folder)), "max_new_tokens": 96}
    (folder / "support.json").write_text(json.dumps(meta))
    return Assistant(folder, generate=True)


def sources_vocabulary(assistant: Assistant, reply: dict) -> set[str]:
    texts = {t.id: t.answer for t in assistant.templates()}
    return {w for i in reply["used"] for w in tokenize(texts[i])}


def test_in_scope_questions_get_answers_written_from_their_template(generating):
    written = 0
    for question in (CARD, "my card hasn't come in the post yet", "what exchange rate do you use?"):
        reply = generating.ask(question)
        if reply["handoff"]:  # the writer may refuse; it must never invent
            assert reply["reason"] in ("the sources do not answer it", "the written answer was not supported")
            continue
        written += 1
        assert reply["generated"] and reply["used"] and reply["answer_id"] in reply["used"]
        vocabulary = sources_vocabulary(generating, reply)
        for sentence in reply["answer"].split(". "):
            assert supported_share(sentence, vocabulary) >= MIN_SUPPORT
    assert written >= 2


def test_out_of_scope_is_still_handed_off_before_any_writing(generating):
    reply = generating.ask("what is the best recipe for lasagna")
    assert reply["handoff"] and reply["answer"] is None and "generated" not in reply


def test_chat_streams_the_written_sentences_then_the_stored_reply(generating, tmp_path):
    with TestClient(create_app(generating, generating.store)) as client:
        with client.stream("POST", "/v1/support/chat", json={"message": CARD, "stream": True}) as response:
            body = "".join(response.iter_text())
    events = [(block.split("\n")[0][7:], json.loads(block.split("\n")[1][6:])) for block in body.strip().split("\n\n")]
    names = [name for name, _ in events]
    assert names[-2:] == ["reply", "done"] and set(names[:-2]) <= {"delta"}
    reply = events[-2][1]
    shown = "".join(data["text"] for name, data in events if name == "delta").strip()
    if reply["handoff"]:
        assert shown == "" and reply["handoff_id"]
    else:  # what streamed is exactly what was stored and answered
        assert names.count("delta") >= 1 and shown == reply["answer"] == reply["text"]
        turns = generating.store.session(reply["session_id"])["turns"]
        assert turns[-1]["text"] == reply["answer"]


def test_generate_needs_a_folder_built_with_the_writer(support_built):
    with pytest.raises(UserError, match="without a reply writer"):
        Assistant(support_built[0], generate=True)
