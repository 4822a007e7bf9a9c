"""What serving, feedback, drift and retraining ask of a task, per task: a correction is checked and
becomes a training example (and a training row), an output is summarised for the prediction log and
counted for the label distribution, a prediction is judged right or wrong, and the training loss
equals what the Hugging Face heads compute (the token loss weighs every labelled word the same)."""

from __future__ import annotations

import pytest
import torch
import transformers
from accelerate import Accelerator

from fieldtune.config import TrainConfig
from fieldtune.data.examples import TaggedSentence, TextExample
from fieldtune.errors import UserError
from fieldtune.tasks import get_task, task_names
from fieldtune.training.budget import plan_budget
from fieldtune.training.loop import Loop

LABELS = ["card_arrival", "pin_blocked"]


# ---------------------------------------------------------------- classification


def test_classification_corrections_are_checked_against_the_labels():
    task = get_task("classification")
    assert task.check_correction(LABELS, "t", " pin_blocked ") == "pin_blocked"
    assert task.check_correction(LABELS, "t", ["pin_blocked"]) == "pin_blocked"  # a list of one is its item
    with pytest.raises(UserError, match="unknown label"):
        task.check_correction(LABELS, "t", "refund")
    assert task.check_correction(LABELS, "t", "refund", allow_new_labels=True) == "refund"
    for bad in (["a", "b"], "", 3, None):
        with pytest.raises(UserError, match="one label"):
            task.check_correction(LABELS, "t", bad)


def test_a_classification_correction_becomes_a_training_example_and_row():
    task = get_task("classification")
    stored = task.check_correction(LABELS, "my pin is blocked", "pin_blocked")
    ex = task.correction_example("my pin is blocked", stored)
    assert ex == TextExample("my pin is blocked", ("pin_blocked",))
    assert task.training_row(ex) == {"text": "my pin is blocked", "label": "pin_blocked"}  # a string, not a list
    assert task.correction_from_example(ex) == ("my pin is blocked", "pin_blocked")


def test_classification_outputs_are_summarised_as_their_top_label():
    task = get_task("classification")
    ex = task.from_text("where is my card")
    prediction = {"card_arrival": 0.7, "pin_blocked": 0.3}
    assert task.summarize(task.to_output("where is my card", ex, prediction, None)) == ("card_arrival", 0.7)
    assert task.summarize(task.to_output("where is my card", ex, prediction, 2)) == ("card_arrival", 0.7)  # top-k
    assert task.summarize([]) == (None, None)
    assert task.drift_labels("card_arrival") == ["card_arrival"] and task.drift_labels(None) is None
    assert task.reference_labels(LABELS) == LABELS and task.no_label_distribution is None
    assert task.is_correct(TextExample("t", ("card_arrival",)), prediction) is True
    assert task.is_correct(TextExample("t", ("pin_blocked",)), prediction) is False


# ---------------------------------------------------------------- multi-label


def test_multilabel_corrections_are_sorted_lists_of_known_labels():
    task = get_task("multilabel")
    assert task.check_correction(LABELS, "t", ["pin_blocked", "card_arrival", "pin_blocked"]) == LABELS
    assert task.check_correction(LABELS, "t", "pin_blocked") == ["pin_blocked"]  # a string is a list of one
    assert task.check_correction(LABELS, "t", []) == []
    with pytest.raises(UserError, match="unknown label"):
        task.check_correction(LABELS, "t", ["pin_blocked", "x"])
    with pytest.raises(UserError, match="list of labels"):
        task.check_correction(LABELS, "t", [""])
    ex = task.correction_example("both", LABELS)
    assert ex == TextExample("both", tuple(LABELS))
    assert task.training_row(ex) == {"text": "both", "label": LABELS}
    assert task.correction_from_example(ex) == ("both", LABELS)


def test_multilabel_outputs_are_summarised_as_joined_labels():
    task = get_task("multilabel")
    prediction = {"scores": {"card_arrival": 0.9, "pin_blocked": 0.6}, "threshold": 0.5}
    output = task.to_output("t", task.from_text("t"), prediction, None)
    assert task.summarize(output) == ("card_arrival|pin_blocked", 0.9)
    none = task.to_output("t", task.from_text("t"), {"scores": {"card_arrival": 0.1}, "threshold": 0.5}, None)
    assert task.summarize(none) == ("", 0.1)
    assert task.drift_labels("card_arrival|pin_blocked") == LABELS
    assert task.drift_labels("") == ["(none)"]  # a prediction without labels still counts
    assert task.reference_labels(LABELS) == [*LABELS, "(none)"]
    assert task.is_correct(TextExample("t", tuple(LABELS)), prediction) is True
    assert task.is_correct(TextExample("t", ("card_arrival",)), prediction) is False


# ---------------------------------------------------------------- NER


TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_ner_corrections_are_checked_and_become_tagged_sentences():
    task = get_task("ner")
    text = "Ada Lovelace visited  New York"
    ents = [{"start": 22, "end": 30, "label": "LOC"}, {"start": 0, "end": 12, "label": "PER"}]
    stored = task.check_correction(TAGS, text, ents)
    assert [e["label"] for e in stored] == ["PER", "LOC"]  # sorted by offset
    ex = task.correction_example(text, stored)
    assert ex.tokens == ("Ada", "Lovelace", "visited", "New", "York")
    assert ex.tags == ("B-PER", "I-PER", "O", "B-LOC", "I-LOC")
    assert task.training_row(ex) == {"tokens": list(ex.tokens), "tags": list(ex.tags)}
    back_text, back = task.correction_from_example(ex)
    assert back_text == "Ada Lovelace visited New York"
    assert [(back_text[e["start"] : e["end"]], e["label"]) for e in back] == [
        ("Ada Lovelace", "PER"),
        ("New York", "LOC"),
    ]
    for bad, message in [
        ([{"start": 0, "end": 99, "label": "PER"}], "not inside the text"),
        ([{"start": 0, "end": 5, "label": "ORG"}], "unknown type"),
        ([{"start": 0, "end": 12, "label": "PER"}, {"start": 4, "end": 8, "label": "PER"}], "overlaps"),
        ([{"start": 12, "end": 13, "label": "PER"}], "only whitespace"),
        ([{"start": 0}], "needs start, end and label"),
        ({"start": 0}, "list of entities"),
    ]:
        with pytest.raises(UserError, match=message):
            task.check_correction(TAGS, text, bad)
    with pytest.raises(UserError, match="needs the text"):
        task.check_correction(TAGS, None, [])
    assert task.check_correction(TAGS, text, [{"start": 0, "end": 3, "label": "ORG"}], allow_new_labels=True)


def test_ner_outputs_have_no_label_and_the_least_confident_entity_as_confidence():
    task = get_task("ner")
    text = "Ada met Bob"
    ex = task.from_text(text)
    prediction = (["B-PER", "O", "B-PER"], [0.9, 1.0, 0.6])
    output = task.to_output(text, ex, prediction, None)
    label, confidence = task.summarize(output)
    assert label is None and confidence == pytest.approx(0.6)
    assert task.summarize([]) == (None, None)  # no entities: no confidence
    assert task.drift_labels(None) is None and task.reference_labels(TAGS) == []
    assert "NER" in task.no_label_distribution  # drift says why its label check is unavailable
    assert task.is_correct(TaggedSentence(("Ada",), ("B-PER",)), prediction) is None  # judged per entity


# ---------------------------------------------------------------- causal LM and all tasks


def test_causal_lm_chats_and_takes_no_corrections():
    task = get_task("causal_lm")
    assert task.chat and not any(get_task(n).chat for n in task_names() if n != "causal_lm")
    assert task.summarize({"generated_text": "hi"}) == (None, None)
    with pytest.raises(UserError, match="takes no corrections"):
        task.check_correction([], "hi", "hello")


# ---------------------------------------------------------------- losses


def _tiny_bert(**kwargs):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **kwargs
    )
    return transformers.AutoModelForSequenceClassification.from_config(config).eval()


def test_text_losses_equal_the_hugging_face_heads():
    ids = torch.tensor([[1, 5, 7, 2], [1, 9, 2, 0]])
    mask = (ids != 0).long()
    single = _tiny_bert(num_labels=3, problem_type="single_label_classification")
    labels = torch.tensor([2, 0])
    out = single(input_ids=ids, attention_mask=mask, labels=labels)
    assert torch.allclose(get_task("classification").loss(out.logits, labels, 7.0), out.loss)
    multi = _tiny_bert(num_labels=3, problem_type="multi_label_classification")
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    out = multi(input_ids=ids, attention_mask=mask, labels=labels)
    assert torch.allclose(get_task("multilabel").loss(out.logits, labels, 7.0), out.loss)


def test_token_loss_sums_labelled_words_over_the_average_per_batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4)
    labels = torch.tensor([[-100, 1, 2, -100, -100], [-100, 3, -100, -100, -100]])
    picked = [logits[0, 1, 1], logits[0, 2, 2], logits[1, 1, 3]]
    rows = [logits[0, 1], logits[0, 2], logits[1, 1]]
    total = sum(torch.logsumexp(r, 0) - p for r, p in zip(rows, picked))
    for name in ("ner", "causal_lm"):
        task = get_task(name)
        assert torch.allclose(task.loss(logits, labels, 6.0), total / 6.0)  # 3 words here, 6 in an average batch
        assert torch.allclose(task.loss(logits, labels), total / 3)  # standalone: the mean over this batch
    virtual = torch.cat([torch.randn(2, 2, 4), logits], dim=1)  # prompt tuning: 2 virtual tokens first
    assert torch.allclose(get_task("ner").loss(virtual, labels, 6.0), total / 6.0)


class _Tagger(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 3)

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"logits": self.emb(input_ids)})()


def test_the_loop_gives_the_loss_the_labelled_words_of_an_average_batch():
    seen = []

    def loss(logits, labels, targets_per_batch):
        seen.append(targets_per_batch)
        return get_task("ner").loss(logits, labels, targets_per_batch)

    # 6 sentences with 1, 2, 3, 1, 2, 3 labelled words in batches of 2: 12 words / 3 batches
    features = [
        {"input_ids": [1, 2, 3, 4], "labels": [-100] + [1] * (1 + i % 3) + [-100] * (2 - i % 3)} for i in range(6)
    ]
    cfg = TrainConfig(epochs=1, batch_size=2, checkpoint=False, lr=1e-2, group_by_length=False, packing=False)
    Loop(
        _Tagger(),
        features,
        lambda m: {"f1": 0.5},
        cfg,
        "f1",
        Accelerator(cpu=True),
        0,
        progress=False,
        loss=loss,
        budget=plan_budget(cfg, len(features), "encoder"),
    ).run()
    assert seen and set(seen) == {4.0}
