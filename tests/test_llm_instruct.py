"""Task causal_lm with the real SmolLM2-135M: chat data, response-only training features,
instruction tuning that overfits four examples, the saved artifact, and /v1/chat/completions.

One LoRA run (module fixture) serves the training, reload and serving tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run, serving

import fieldtune
from fieldtune.data.chat import IGNORE, encode_turn, render
from fieldtune.data.examples import ChatExample
from fieldtune.data.readers import read_examples
from fieldtune.data.splits import stratified_split
from fieldtune.errors import UserError
from fieldtune.models.causal_lm import load_causal_lm
from fieldtune.predict import CHAT, GENERATE, PredictorProtocol, load_predictor
from fieldtune.predict.chat import ChatPredictor
from fieldtune.serving import create_app

SYSTEM = "Answer briefly."
PAIRS = [
    ("What is the capital of France?", "Paris is the capital."),
    ("Give the opposite of hot.", "The opposite is cold."),
    ("Spell cat backwards.", "tac"),
    ("How many legs does a spider have?", "A spider has eight legs."),
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lm():
    return load_causal_lm("smollm2")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    """LoRA with a high learning rate on 4 conversations until it says them back."""
    d = tmp_path_factory.mktemp("instruct")
    data = write_jsonl(d / "chat.jsonl", [{"system": SYSTEM, "prompt": p, "response": r} for p, r in PAIRS])
    config = {
        "task": "causal_lm",
        "model": "smollm2",
        "method": "lora",
        "data": {"train": str(data), "dev": str(data), "test": str(data)},
        "output": str(d / "run"),
        "peft": {"r": 16, "alpha": 32, "dropout": 0.0},
        "prompt": {"max_new_tokens": 16},
        "train": {
            "epochs": 8,
            "lr": 4e-3,
            "batch_size": 4,
            "warmup_ratio": 0.0,
            "patience": None,
            "checkpoint": False,
            "precision": "fp32",
            "seed": 3,
            "threads": 1,  # a 135M model on a shared CPU: one thread, no spinning against other processes
        },
    }
    threads = torch.get_num_threads()
    try:
        return fieldtune.train(config, progress=False).output_dir
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- data and features


def test_template_round_trip_labels_cover_the_response_only(lm):
    tok = lm.tokenizer
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Say hi."}]
    feature = encode_turn(tok, messages, "Hi there!")
    ids, labels, n = feature["input_ids"], feature["labels"], feature["prompt_len"]
    assert tok.decode(ids[:n]) == render(tok, messages, add_generation_prompt=True)
    learned = [i for i, label in enumerate(labels) if label != IGNORE]
    assert learned == list(range(n - 1, len(ids) - 1))  # position i predicts token i + 1, from the prompt's end
    assert all(labels[i] == ids[i + 1] for i in learned)
    assert tok.decode([labels[i] for i in learned]) == "Hi there!" + tok.eos_token  # answer + end of turn, no prompt


def test_reader_accepts_both_shapes(tmp_path):
    path = write_jsonl(
        tmp_path / "ok.jsonl",
        [
            {"prompt": "a?", "response": "b", "system": "s"},
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
        ],
    )
    examples = read_examples(path, "causal_lm", fieldtune.config.DataConfig(train=path)).examples
    assert examples == [
        ChatExample((("system", "s"), ("user", "a?")), "b", 1),
        ChatExample((("user", "x"),), "y", 2),
    ]
    train, dev = stratified_split(examples * 10, 0.2, seed=1)  # no labels: a plain random split
    assert len(dev) == 4 and len(train) == 16


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "a"}, "expected keys prompt and response"),
        ({"prompt": " ", "response": "b"}, "prompt is empty"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}, "role 'bot'"),
        ({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}, "last message"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}, "empty"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "system", "content": "s"},
                    {"role": "assistant", "content": "b"},
                ]
            },
            "system",
        ),  # noqa: E501
        ({"messages": "hi"}, "at least a user and an assistant"),
        ('{"prompt": "a", ', "invalid JSON"),
    ],
)
def test_reader_errors_name_the_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine", "response": "ok"}, row])
    with pytest.raises(UserError) as err:
        read_examples(path, "causal_lm", fieldtune.config.DataConfig(train=path))
    assert err.value.line == 2 and message in str(err.value), str(err.value)


def test_causal_lm_needs_jsonl(tmp_path):
    path = tmp_path / "chat.csv"
    path.write_text("prompt,response\na,b\n")
    with pytest.raises(UserError, match="JSONL"):
        read_examples(path, "causal_lm", fieldtune.config.DataConfig(train=path))


# ---------------------------------------------------------------- training, artifact, predictor


def test_instruction_tuning_overfits_and_reloads(tuned):
    metrics = json.loads((tuned / "metrics.json").read_text())
    log = [json.loads(line) for line in (tuned / "log.jsonl").read_text().splitlines()]
    assert log[-1]["train_loss"] < log[0]["train_loss"] / 5, log
    assert metrics["test"]["exact_match"] == 1.0 and metrics["test"]["rouge_l"] == 1.0, metrics["test"]
    assert metrics["test"]["perplexity"] < 1.5 and metrics["baseline"]["exact_match"] == 0.0
    assert {"wall_s", "train_s", "trainable_params", "total_params", "ms_per_example"} <= set(metrics["train"])
    assert metrics["train"]["trainable_params"] < metrics["train"]["total_params"] / 20  # an adapter
    meta = json.loads((tuned / "model" / "fieldtune.json").read_text())
    assert meta["kind"] == "llm" and meta["labels"] == [] and meta["base_model"]["sha256"]
    assert (tuned / "model" / "adapter_config.json").is_file()

    predictor = fieldtune.load(tuned)  # Predictor -> kind llm -> task causal_lm -> ChatPredictor
    assert isinstance(predictor, ChatPredictor) and predictor.labels == [] and predictor.task.name == "causal_lm"
    assert isinstance(predictor, PredictorProtocol) and {CHAT, GENERATE} <= predictor.capabilities
    chats = [ChatExample((("system", SYSTEM), ("user", p)), r) for p, r in PAIRS]
    assert predictor.predict_examples(chats) == [r for _, r in PAIRS]  # the reloaded adapter answers the same
    text, reason, usage = predictor.chat(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PAIRS[2][0]}]
    )
    assert (text, reason) == ("tac", "stop") and usage["completion_tokens"] >= 2
    assert predictor.predict(PAIRS[0][0]).keys() == {"generated_text"}
    pieces = list(predictor.stream([{"role": "system", "content": SYSTEM}, {"role": "user", "content": PAIRS[0][0]}]))
    assert "".join(p.get("delta", "") for p in pieces).strip() == PAIRS[0][1] and pieces[-1]["finish_reason"] == "stop"


def test_chat_completions_over_asgi(tuned):
    predictor = load_predictor(tuned, batch_size=8)
    app = create_app(tuned, predictor=predictor)
    conversation = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PAIRS[1][0]}]

    async def body():
        async with serving(app) as client:
            whole = await client.post("/v1/chat/completions", json={"messages": conversation})
            streamed = await client.post("/v1/chat/completions", json={"messages": conversation, "stream": True})
            capped = await client.post("/v1/chat/completions", json={"messages": conversation, "max_tokens": 2})
            bad = await client.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "x"}]})
            predicted = await client.post("/v1/predict", json={"inputs": "Hello"})
            meta = (await client.get("/metadata")).json()
            return whole, streamed, capped, bad, predicted, meta

    whole, streamed, capped, bad, predicted, meta = run(body(), timeout=300)
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": PAIRS[1][1]}
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"]["total_tokens"] > 0

    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    events = [e.removeprefix("data: ") for e in streamed.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip() == PAIRS[1][1] and chunks[-1]["choices"][0]["finish_reason"] == "stop"

    assert capped.json()["choices"][0]["finish_reason"] == "length" and capped.json()["usage"]["completion_tokens"] == 2
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "invalid_request"
    assert predicted.status_code == 200 and "generated_text" in predicted.json()["predictions"][0]
    assert meta["causal_lm"] is True and meta["labels"] == []


def test_the_official_openai_sdk_lists_models_chats_and_streams(tuned):
    """OpenAI clients call GET /v1/models first; then chat and streaming must work unchanged."""
    import httpx
    import openai

    app = create_app(tuned, predictor=load_predictor(tuned, batch_size=8))
    conversation = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PAIRS[1][0]}]

    async def body():
        async with serving(app):  # the lifespan (model service) around the SDK's own client
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            client = openai.AsyncOpenAI(base_url="http://test/v1", api_key="unused", http_client=http)
            listed = await client.models.list()
            model = listed.data[0].id
            card = await client.models.retrieve(model)
            answer = await client.chat.completions.create(model=model, messages=conversation)
            stream = await client.chat.completions.create(model=model, messages=conversation, stream=True)
            pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
            try:
                await client.models.retrieve("no-such-model")
                missing = None
            except openai.NotFoundError as e:
                missing = e
            return listed, card, answer, "".join(pieces), missing

    listed, card, answer, streamed, missing = run(body(), timeout=300)
    assert len(listed.data) == 1 and listed.data[0].owned_by == "fieldtune" and card.id == listed.data[0].id
    assert answer.model == card.id and answer.choices[0].message.content == PAIRS[1][1]
    assert streamed.strip() == PAIRS[1][1]
    assert missing is not None and missing.status_code == 404


def test_training_computes_logits_only_where_answers_are(lm):
    """The loop's causal-LM loss from the answer positions' logits equals the loss over every position."""
    from fieldtune.tasks.losses import token_loss
    from fieldtune.training.loop import answer_logits

    tok, model = lm.tokenizer, lm.model
    features = [encode_turn(tok, [{"role": "user", "content": q}], a) for q, a in PAIRS[:2]]
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.tensor([f["input_ids"] + [tok.pad_token_id] * (width - len(f["input_ids"])) for f in features])
    labels = torch.tensor([f["labels"] + [IGNORE] * (width - len(f["labels"])) for f in features])
    mask = torch.tensor([[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features])
    inputs = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        kept, kept_labels = answer_logits(model, inputs, labels)
        full = model(**inputs).logits
    answers = int((labels != IGNORE).any(0).sum())
    assert kept.shape[1] == answers < width  # far fewer rows of the 49k-token vocabulary
    assert token_loss(kept, kept_labels, 4.0).item() == pytest.approx(token_loss(full, labels, 4.0).item(), rel=1e-4)
