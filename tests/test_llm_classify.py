"""Classification with a causal LM (the bundled smollm2): zero-shot label scoring separates obvious
sentiment, the packed trie + KV-cache scorer gives the log-probs of the plain [prompt + answer] rows and
scores exactly the tokens training learns, in_context picks the most similar examples within its caps,
and runs (zero_shot, in_context, lora) write the encoder's metrics and an artifact that reloads to the
same predictions; a LoRA adapter trains only its own weights and merges with parity."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import fieldtune
from fieldtune.data.chat import encode_turn, prompt_ids
from fieldtune.export import merge_adapter
from fieldtune.llm import classify
from fieldtune.llm.classify import LabelScorer, LLMClassifier, ShotSelector, answer_ids, conversation
from fieldtune.models.causal_lm import load_causal_lm
from fieldtune.predict import Predictor, PredictorProtocol, load_predictor
from fieldtune.predict.llm_classifier import ClassifierPredictor
from fieldtune.recipes import llm_classify as llm_classify_recipe

POS = ["I love this, it's wonderful", "What a great day, I'm so happy", "Excellent service, highly recommended"]
NEG = ["Terrible, I hate it", "This is awful and disappointing", "The worst experience of my life"]
TEXTS = ["absolutely fantastic, I love it", "horrible, never again", "my card is blocked"]
LORA_PARAMS = 30 * 8 * ((576 + 576) + (576 + 192))  # 30 layers, r=8 on q_proj (576->576) and v_proj (576->192)


def state(words: list[str], **extra) -> dict:
    return {
        "label_words": words,
        "instruction": f"Classify the text into one of these categories: {', '.join(words)}.",
        "template": "{instruction}\n\nText: {text}",
        "calibrate": True,
        "normalise": "sum",
        "shots_per_label": 1,
        "max_shots": 0,
        **extra,
    }


@pytest.fixture(scope="module")
def lm():
    loaded = load_causal_lm("smollm2")
    loaded.model.eval()
    return loaded


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    """Tiny train / dev / test CSVs of obvious sentiment."""
    folder = tmp_path_factory.mktemp("sentiment")
    rows = {
        "train": [(t, "positive") for t in POS] + [(t, "negative") for t in NEG],
        "dev": [("I really like it, great", "positive"), ("bad, I dislike it", "negative")],
        "test": [("lovely and delightful", "positive"), ("dreadful and sad", "negative")],
    }
    for name, items in rows.items():
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(items)
    return folder


def config(data, tmp_path, method: str, **train) -> dict:
    return {
        "task": "classification",
        "model": "smollm2",
        "method": method,
        "data": {"train": str(data / "train.csv"), "dev": str(data / "dev.csv"), "test": str(data / "test.csv")},
        "output": str(tmp_path / method),
        "train": {"epochs": 1, "batch_size": 3, "threads": 2, "checkpoint": False, **train},
        "prompt": {"shots_per_label": 1, "max_shots": 2},
    }


def test_zero_shot_separates_obvious_sentiment(lm):
    clf = LLMClassifier(lm.model, lm.tokenizer, ["pos", "neg"], state(["positive", "negative"]))
    probs = clf.probabilities(POS + NEG)
    predicted = [max(p, key=p.get) for p in probs]
    correct = [p == g for p, g in zip(predicted, ["pos"] * 3 + ["neg"] * 3)]
    assert correct[0] and correct[3] and sum(correct) >= 5  # far above chance (3 of 6); a 135M model
    assert all(abs(sum(p.values()) - 1) < 1e-6 for p in probs)


def test_packed_scoring_equals_full_sequences_and_training_tokens(lm):
    """Multi-token labels sharing first tokens: the trie + prefix cache gives each [prompt + answer] row's
    log-probs; the answers are the tokens encode_turn trains on (words + end-of-turn)."""
    words = ["card arrival", "card linking", "exchange rate", "pin"]
    st = state(words)
    clf = LLMClassifier(lm.model, lm.tokenizer, words, st)
    assert clf.scorer._prefix is not None and len(clf.scorer.trie.tokens) < sum(map(len, clf.scorer.answers))
    messages = conversation(st, "my new card still hasn't come")
    ids = prompt_ids(lm.tokenizer, messages)
    packed = clf.scorer.score([ids])[0]
    rows = clf.scorer._score_rows(ids).numpy()
    np.testing.assert_allclose(packed, rows, atol=1e-4)
    uncached = LabelScorer(lm.model, lm.tokenizer, answer_ids(lm.tokenizer, words)).score([ids])[0]
    np.testing.assert_allclose(packed, uncached, atol=1e-4)
    for word, answer in zip(words, clf.scorer.answers):
        feature = encode_turn(lm.tokenizer, messages, word)
        assert feature["input_ids"] == ids + answer
        assert [t for t in feature["labels"] if t != -100] == answer
    assert lm.tokenizer.decode(answer[-1:]) == "<|im_end|>"


def test_in_context_picks_most_similar_within_caps():
    pool = [
        ("my card has not arrived yet", "card_arrival"),
        ("when will my card be delivered", "card_arrival"),
        ("what is the exchange rate for euros", "exchange_rate"),
        ("my pin is blocked", "pin_blocked"),
        ("I typed the wrong PIN three times", "pin_blocked"),
    ]
    selector = ShotSelector(pool, shots_per_label=1, max_shots=2)
    shots = selector.select(["my card still hasn't arrived", "how do I unblock my PIN"])
    assert shots[0][0] == pool[0] and len(shots[0]) == 2  # most similar first
    assert len({label for _, label in shots[0]}) == 2  # one per label
    assert shots[1][0][1] == "pin_blocked"


def test_zero_shot_and_in_context_runs(sentiment, tmp_path):
    for method in ("zero_shot", "in_context"):
        result = fieldtune.train(config(sentiment, tmp_path, method), progress=False)
        metrics = json.loads((result.output_dir / "metrics.json").read_text())
        assert {"accuracy", "macro_f1"} <= set(metrics["test"]) and metrics["test"]["accuracy"] == 1.0
        assert metrics["train"]["trainable_params"] == 0 and metrics["train"]["ms_per_example"] > 0
        meta = json.loads((result.model_dir / "fieldtune.json").read_text())
        assert meta["kind"] == "llm" and meta["base_model"]["sha256"]
        assert not list(result.model_dir.glob("*.safetensors"))  # no weights: the base model is referenced
        assert (result.model_dir / classify.POOL_FILE).is_file() == (method == "in_context")
        predictor = Predictor.load(result.output_dir)
        assert isinstance(predictor, ClassifierPredictor) and isinstance(predictor, PredictorProtocol)
        assert predictor.evaluate(predictor_examples(sentiment))["accuracy"] == metrics["test"]["accuracy"]
        if method == "in_context":  # the registry's loader, as the server calls it: bf16 is offered for LLMs
            bf16 = load_predictor(result.output_dir, backend="torch-bf16")
            assert bf16.backend == "torch-bf16" and bf16.capabilities == frozenset()
            with pytest.raises(fieldtune.UserError, match="not available for a causal LM"):
                load_predictor(result.output_dir, backend="onnx")
        if method == "zero_shot":  # in_context: the same Predictor path, 4 scorings per input (calibration)
            top = predictor.predict(TEXTS[:2], top_k=2)
            assert [t[0]["label"] for t in top] == ["positive", "negative"] and len(top[0]) == 2


def predictor_examples(folder):
    from fieldtune.data.examples import TextExample

    with open(folder / "test.csv", newline="", encoding="utf-8") as f:
        return [TextExample(r["text"], (r["label"],)) for r in csv.DictReader(f)]


def test_lora_trains_adapter_only_reloads_and_merges(sentiment, tmp_path):
    before = {}
    real_save = llm_classify_recipe.save_artifact

    def spy(model, tokenizer, meta, target, extra=None, **kwargs):
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        before["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        before["only_lora"] = all("lora_" in n for n in trainable)
        before["peft"] = model.get_nb_trainable_parameters()[0]
        clf = LLMClassifier(model, tokenizer, meta["labels"], meta["state"])
        before["probs"] = clf.probabilities(TEXTS)
        return real_save(model, tokenizer, meta, target, extra, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(llm_classify_recipe, "save_artifact", spy)
        result = fieldtune.train(config(sentiment, tmp_path, "lora", lr=1e-3), progress=False)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert before["only_lora"] and before["trainable"] == before["peft"] == LORA_PARAMS
    assert metrics["train"]["trainable_params"] == LORA_PARAMS and metrics["train"]["steps"] == 2
    assert {"wall_s", "train_s", "total_params", "ms_per_example"} <= set(metrics["train"])
    assert (result.model_dir / "adapter_model.safetensors").stat().st_size < 4_000_000  # adapter only
    predictor = Predictor.load(result.output_dir)
    after = predictor.predict_examples([predictor.task.from_text(t) for t in TEXTS])
    for b, a in zip(before["probs"], after):
        assert b.keys() == a.keys() and all(abs(b[k] - a[k]) < 1e-5 for k in b)

    merged_dir = merge_adapter(result.output_dir)
    assert not (merged_dir / "adapter_config.json").exists()
    merged = Predictor.load(merged_dir).predict_examples([predictor.task.from_text(t) for t in TEXTS])
    for a, m in zip(after, merged):
        assert max(a, key=a.get) == max(m, key=m.get) and all(abs(a[k] - m[k]) < 1e-3 for k in a)


@pytest.mark.parametrize("method", ["ia3", "prompt_tuning"])
def test_other_adapters_train_only_their_weights_and_reload(sentiment, tmp_path, method):
    before = {}
    real_save = llm_classify_recipe.save_artifact

    def spy(model, tokenizer, meta, target, extra=None, **kwargs):
        before["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        before["peft"] = model.get_nb_trainable_parameters()[0]
        before["probs"] = LLMClassifier(model, tokenizer, meta["labels"], meta["state"]).probabilities(TEXTS)
        return real_save(model, tokenizer, meta, target, extra, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(llm_classify_recipe, "save_artifact", spy)
        result = fieldtune.train(config(sentiment, tmp_path, method, lr=1e-3), progress=False)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert 0 < before["trainable"] == before["peft"] == metrics["train"]["trainable_params"] < 1_000_000
    assert metrics["train"]["total_params"] > 100_000_000 and metrics["train"]["steps"] == 2
    assert (result.model_dir / "adapter_model.safetensors").stat().st_size < 4_000_000  # adapter only
    predictor = Predictor.load(result.output_dir)
    after = predictor.predict_examples([predictor.task.from_text(t) for t in TEXTS])
    for b, a in zip(before["probs"], after, strict=True):
        assert b.keys() == a.keys() and all(abs(b[k] - a[k]) < 1e-5 for k in b)


def test_prefix_on_a_decoder_is_a_user_error_before_any_output(sentiment, tmp_path):
    with pytest.raises(fieldtune.UserError, match="prefix") as err:
        fieldtune.train(config(sentiment, tmp_path, "prefix"), progress=False)
    assert "prompt_tuning" in err.value.hint and not (tmp_path / "prefix").exists()


def test_default_instruction_lists_few_labels_but_not_many(tmp_path):
    from fieldtune.config import load_config

    def instruction(labels: list[str], given: str | None = None) -> str:
        cfg = {"task": "classification", "model": "smollm2", "method": "zero_shot", "output": str(tmp_path)}
        cfg |= {"data": {"train": str(tmp_path / "x.csv")}, "prompt": {"instruction": given}}
        return classify.prompt_state(load_config(cfg), labels)["instruction"]

    few = ["negative", "neutral", "positive"]
    assert instruction(few) == "Classify the text into one of these categories: negative, neutral, positive."
    many = [f"intent_{i}" for i in range(classify.MANY_LABELS + 1)]
    assert instruction(many) == classify.MANY_LABELS_INSTRUCTION  # a 135M model drowns in a 77-label list
    assert instruction(many[: classify.MANY_LABELS]).startswith("Classify the text into one of these categories:")
    assert instruction(many, "Which intent? {labels}") == "Which intent? " + ", ".join(
        w.replace("_", " ") for w in many
    )
