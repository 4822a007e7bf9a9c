"""``crf: true``: a CRF layer over an encoder's tag logits. The loss is the sentence's negative
log-likelihood over its words (first pieces), decoding is the CRF's Viterbi restricted to valid IOB2, the
layer's scores travel in the artifact's state and never in its weights."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import overfit_config
from safetensors import safe_open
from torchcrf import CRF

import fieldtune
from fieldtune.errors import UserError
from fieldtune.tasks.crf import crf_loss
from fieldtune.tasks.token_classification import best_tags

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _valid(seq: tuple[int, ...]) -> bool:
    tags = [LABELS[i] for i in seq]
    prev = ["O", *tags[:-1]]
    return all(not t.startswith("I-") or (p != "O" and p[2:] == t[2:]) for p, t in zip(prev, tags))


def test_crf_decoding_is_the_best_valid_sequence_under_the_learned_scores():
    rng = np.random.default_rng(0)
    n = len(LABELS)
    for _ in range(30):
        rows = rng.normal(0, 2, (4, n))
        start, trans, end = rng.normal(0, 2, n), rng.normal(0, 2, (n, n)), rng.normal(0, 2, n)

        def score(s, start=start, rows=rows, trans=trans, end=end):
            emitted = sum(rows[w, t] for w, t in enumerate(s))
            return start[s[0]] + emitted + sum(trans[a, b] for a, b in zip(s, s[1:])) + end[s[-1]]

        valid = [s for s in itertools.product(range(n), repeat=4) if _valid(s)]
        assert best_tags(rows, LABELS, (start, trans, end)) == list(max(valid, key=score))
    # a strong learned O -> B-PER penalty changes what the logits alone would decode
    rows = np.log(np.array([[0.6, 0.1, 0.1, 0.1, 0.1], [0.2, 0.1, 0.1, 0.5, 0.1]]))
    assert best_tags(rows, LABELS) == [0, 3]
    trans = np.zeros((n, n))
    trans[0, 3] = -5.0
    assert best_tags(rows, LABELS, (np.zeros(n), trans, np.zeros(n))) == [0, 0]
    assert best_tags(np.zeros((0, n)), LABELS, (np.zeros(n), trans, np.zeros(n))) == []


def test_crf_loss_is_the_words_negative_log_likelihood():
    """Pieces that are not a word's first (label -100) are skipped: the loss equals the brute-force
    -log p(tags) over the words alone, per labelled word of the average batch."""
    torch.manual_seed(0)
    n = len(LABELS)
    crf = CRF(n, batch_first=True)
    logits = torch.randn(2, 6, n)
    labels = torch.tensor([[-100, 3, -100, 4, 0, -100], [-100, 1, 2, -100, -100, -100]])
    total = 0.0
    for row, lab in zip(logits, labels):
        keep = lab != -100
        em, gold = row[keep], lab[keep].tolist()

        def score(seq, em=em):
            s = crf.start_transitions[seq[0]] + crf.end_transitions[seq[-1]]
            s = s + sum(em[w, t] for w, t in enumerate(seq))
            return s + sum(crf.transitions[a, b] for a, b in zip(seq, seq[1:]))

        log_z = torch.logsumexp(torch.stack([score(s) for s in itertools.product(range(n), repeat=len(gold))]), 0)
        total += float(log_z - score(gold))
    assert float(crf_loss(crf)(logits, labels, 5.0)) == pytest.approx(total / 5.0, rel=1e-5)
    assert float(crf_loss(crf)(logits, labels)) == pytest.approx(total / 5.0, rel=1e-5)  # 5 labelled words
    empty = torch.full((1, 4), -100)
    assert float(crf_loss(crf)(torch.randn(1, 4, n, requires_grad=True), empty, 3.0)) == 0.0


@pytest.fixture(scope="module")
def crf_run(ner_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("crf") / "run"
    cfg = overfit_config("ner", ner_file, out, epochs=15, head_lr=1e-2)
    return fieldtune.train({**cfg, "crf": True}, progress=False)


def test_crf_run_learns_saves_its_scores_and_predicts_with_them(crf_run):
    assert crf_run.metrics["test"]["f1"] == 1.0
    meta = json.loads((crf_run.model_dir / "fieldtune.json").read_text())
    crf, labels = meta["state"]["crf"], meta["labels"]
    assert np.array(crf["transitions"]).shape == (len(labels), len(labels))
    assert len(crf["start"]) == len(crf["end"]) == len(labels)
    with safe_open(crf_run.model_dir / "model.safetensors", "pt") as f:  # the weights are a plain tagger's
        assert not [k for k in f.keys() if "crf" in k]
    run_yaml = (crf_run.output_dir / "run.yaml").read_text()
    assert "crf: true" in run_yaml and "packing: false" in run_yaml
    predictor = fieldtune.load(crf_run.model_dir)
    text = "Watching the game with Justin Bieber in Toronto tonight"
    ents = predictor.predict(text)
    assert "person" in {e["entity_group"] for e in ents}
    # predict decodes with the artifact's scores: forbid every way into B-person and the person is gone
    scores, begin = predictor.meta["state"]["crf"], labels.index("B-person")
    scores["start"][begin] = -1e4
    for row in scores["transitions"]:
        row[begin] = -1e4
    assert "person" not in {e["entity_group"] for e in predictor.predict(text)}


def test_crf_trains_with_an_adapter_and_saves_beside_it(ner_file, tmp_path):
    """method lora: the layer trains beside the adapter (peft freezes what it does not wrap; the layer is
    added after it) and the artifact is the adapter, its state holding the scores."""
    cfg = overfit_config("ner", ner_file, tmp_path / "run", epochs=15, lr=3e-3)
    result = fieldtune.train({**cfg, "crf": True, "method": "lora"}, progress=False)
    assert result.metrics["test"]["f1"] >= 0.9
    assert (result.model_dir / "adapter_model.safetensors").is_file()
    predictor = fieldtune.load(result.model_dir)
    assert "crf" in predictor.meta["state"]
    text = "Watching the game with Justin Bieber in Toronto tonight"
    assert "person" in {e["entity_group"] for e in predictor.predict(text)}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "classification"}, "crf: a CRF layer tags words"),
        ({"method": "zero_shot", "model": "smollm2"}, "no tag logits"),
    ],
)
def test_crf_is_refused_where_there_are_no_tag_logits(ner_file, cls_file, tmp_path, changes, message):
    data = cls_file if changes.get("task") == "classification" else ner_file
    cfg = {**overfit_config("ner", data, tmp_path / "run"), "crf": True, **changes}
    with pytest.raises(UserError, match=message):
        fieldtune.train(cfg, progress=False)
    assert not (tmp_path / "run").exists()
