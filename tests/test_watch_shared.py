"""The watch's shared int8 graph: a sentiment model trained with 4 frozen layers and an NER model with
2 share those layers with the bundled ``minilm`` title encoder; each headline runs the graph once and
the three outputs match each model run on its own.

Real tiny models: a sentiment classifier on the shipped synthetic headlines (30 steps) and an NER
model on 8 real WNUT-17 sentences (20 steps), both exported to int8 as ``fieldtune export`` does.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import overfit_config

import fieldtune
from fieldtune.apps.watch.config import load_watch_config
from fieldtune.apps.watch.scoring import Scorer
from fieldtune.apps.watch.shared import SharedEncoder, shared_depth
from fieldtune.export import export_onnx
from fieldtune.fewshot.head import embed
from fieldtune.models.embedder import load_sentence_encoder
from fieldtune.zoo import resolve

DATA = Path(__file__).resolve().parent / "data"
TOPICS = json.loads((DATA / "watch_topics.json").read_text(encoding="utf-8"))
TITLES = [h["title"] for h in TOPICS["headlines"]]


@dataclass(frozen=True)
class News:
    id: str
    title: str
    text: str = ""


@pytest.fixture(scope="module")
def frozen_models(tmp_path_factory, ner_file) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("frozen")
    with open(DATA / "watch_sentiment.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(tmp / "train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *((r["text"], r["label"]) for r in rows)])
    train = {"max_steps": 30, "lr": 3e-4, "batch_size": 16, "patience": None, "checkpoint": False, "seed": 7}
    sentiment = {
        "task": "classification",
        "model": "minilm",
        "data": {"train": str(tmp / "train.csv"), "dev": str(tmp / "train.csv")},
        "output": str(tmp / "sentiment"),
        "method": "freeze",
        "freeze_layers": 4,
        "train": train,
    }
    ner = overfit_config("ner", ner_file, tmp / "ner", epochs=None, max_steps=20)
    dirs = []
    for config in (sentiment, {**ner, "method": "freeze", "freeze_layers": 2}):
        model_dir = fieldtune.train(config, progress=False).model_dir
        export_onnx(model_dir, int8=True)
        dirs.append(model_dir)
    return dirs[0], dirs[1]


@pytest.fixture(scope="module")
def shared_scorer(frozen_models, tmp_path_factory) -> Scorer:
    sentiment, ner = frozen_models
    raw = {"sentiment": str(sentiment), "ner": str(ner), "topics": TOPICS["examples"], "backend": "onnx-int8"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.mktemp("cache")))
        return Scorer.from_config(load_watch_config(raw, base_dir=tmp_path_factory.mktemp("cfg")))


def test_frozen_layers_are_found_shared_and_trained_ones_are_not(frozen_models):
    encoder = transformers.AutoModel.from_pretrained(resolve("minilm"), local_files_only=True)
    sentiment = transformers.AutoModelForSequenceClassification.from_pretrained(frozen_models[0])
    ner = transformers.AutoModelForTokenClassification.from_pretrained(frozen_models[1])
    assert shared_depth(encoder, sentiment.bert) == 4
    assert shared_depth(encoder, ner.bert) == 2
    with torch.no_grad():
        sentiment.bert.embeddings.word_embeddings.weight[5, 0] += 1e-3  # one changed number: nothing shared
    assert shared_depth(encoder, sentiment.bert) is None


def test_the_scorer_runs_one_graph_once_per_headline(shared_scorer):
    shared = shared_scorer.shared
    assert shared is not None and shared.depths == {"sentiment": 4, "ner": 2}
    assert shared_scorer.sentiment.backend == shared_scorer.ner.backend == "onnx-int8-shared"
    assert isinstance(shared_scorer.encoder, SharedEncoder)
    runs = []

    class Counting:  # the real session, counting the sequences it is given
        def __init__(self, session):
            self.session = session

        def run(self, names, feed):
            runs.append(len(feed["input_ids"]))
            return self.session.run(names, feed)

    shared.session = Counting(shared.session)
    rows = shared_scorer.score([News(str(i), t) for i, t in enumerate(TITLES)])
    assert len(rows) == len(TITLES) and sum(runs) == len(set(TITLES))  # each headline once, for all three models


def test_shared_outputs_match_each_model_on_its_own(shared_scorer, frozen_models):
    sentiment, ner = (fieldtune.load(d, backend="torch") for d in frozen_models)
    rows = shared_scorer.score([News(str(i), t) for i, t in enumerate(TITLES)])
    # sentiment: the label PyTorch gives (int8 may flip a near tie)
    alone = sentiment.predict(TITLES)
    stored = {"positive", "negative", "neutral"}
    assert all(r["sentiment"] in stored for r in rows)
    same = sum(r["sentiment"] == a["label"].lower() for r, a in zip(rows, alone))
    assert same >= 0.9 * len(TITLES)
    probs = np.array([[r["p_positive"], r["p_negative"], r["p_neutral"]] for r in rows])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # title embeddings: minilm's own (as the separate int8 encoder: cosine >= 0.96 on the parity texts)
    exact = embed(load_sentence_encoder("minilm"), TITLES, 16)
    shared_emb = np.stack([r["embedding"] for r in rows])
    assert (shared_emb * exact).sum(axis=1).min() > 0.95
    # NER: the shared graph's token labels vs the NER model's own PyTorch logits
    tok = ner.artifact.tokenizer
    features = ner.task.encode([ner.task.from_text(t) for t in TITLES], tok, ner.label2id, ner.max_length)
    own = ner._forward(features, 16, tok.pad_token_id)
    via_graph = shared_scorer.shared.forward("ner")(features, 16, tok.pad_token_id)
    agree = np.concatenate([a.argmax(-1) == b.argmax(-1) for a, b in zip(own, via_graph)])
    assert agree.mean() >= 0.95


def test_models_trained_in_full_keep_separate_passes(tmp_path, monkeypatch):
    from fieldtune.apps.watch.shared import SharedPass

    full = Path(resolve("minilm"))  # not a classifier's folder: its own weights, nothing frozen from minilm
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path))
    fresh = tmp_path / "copy"
    fresh.mkdir()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(full, num_labels=3)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.mul_(1.01)  # as after full fine-tuning
    model.save_pretrained(fresh)
    assert SharedPass.load(fresh, None) is None
    (reason,) = (json.loads(p.read_text())["reason"] for p in tmp_path.glob("watch-shared/*/shared.json"))
    assert "method: freeze" in reason
