"""Zero-shot classification with an encoder: a text gets the label whose description it is most similar to.

Nothing trains; the dev set picks the label template (when labels have no descriptions) and whether the
cosines are batch-calibrated (each label's mean cosine over up to ``BATCH_SAMPLE`` training texts
subtracted: some descriptions sit closer to every text than others), and fits one temperature, so
that the softmax of (cosine - mean) / T gives calibrated probabilities (raw cosines of a sentence
encoder sit in a narrow band, e.g. 0.1..0.6: a softmax over them would be almost flat). The mean
is the head's bias (-mean / T), so the predictor needs nothing new. Measured (minilm, test accuracy,
uncalibrated -> batch): Financial PhraseBank 0.506 -> 0.634 (bench/RESULTS.md).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import RunConfig
from ..data.examples import Example
from ..errors import UserError
from ..evaluation import metrics as M
from .head import LinearHead, embed

# "{label}" alone vs a sentence around it; which is better depends on the labels (measured on dev)
TEMPLATES = ("{label}", "This text is about {label}.")
TEMPERATURES = np.geomspace(0.005, 1.0, 80)
MULTILABEL_T = 0.05  # multi-label: a fixed scale; the threshold on the cosine is what is tuned
CALIBRATIONS = ("none", "batch")  # single-label; a dev tie goes to none
BATCH_SAMPLE = 1000  # training texts whose mean cosine per label is the batch prior (~10 s on one thread)


def label_word(cfg: RunConfig, label: str) -> str:
    """prompt.label_words, else the label name with _ and - as spaces."""
    words = cfg.prompt.label_words or {}
    return words.get(label) or label.replace("_", " ").replace("-", " ").strip()


def label_texts(cfg: RunConfig, labels: list[str], template: str) -> list[str]:
    """What is embedded per label: its description as given, else its word in ``template``."""
    descriptions = cfg.prompt.label_descriptions or {}
    return [descriptions.get(label) or template.format(label=label_word(cfg, label)) for label in labels]


def check_label_keys(cfg: RunConfig, labels: list[str]) -> None:
    """A description or word for a label the data doesn't have is a typo: say so before any work."""
    for name, given in (("label_descriptions", cfg.prompt.label_descriptions), ("label_words", cfg.prompt.label_words)):
        unknown = sorted(set(given or {}) - set(labels))
        if unknown:
            raise UserError(
                f"prompt.{name} names labels that are not in the training data: {', '.join(map(repr, unknown))}",
                hint=f"the labels are: {', '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}",
            )


def fit_zero_shot(
    cfg: RunConfig,
    body: Any,
    labels: list[str],
    dev: list[Example],
    batch_size: int,
    train_texts: Sequence[str] = (),
) -> tuple[LinearHead, dict[str, Any]]:
    """The head (label embeddings / T, bias -mean cosine / T) and the state for fieldtune.json, chosen on ``dev``.

    Returns:
        The head and ``state``: the template, the calibration (single-label: none / batch, with each
        label's mean cosine), the temperature (single-label) or the threshold on the cosine (multi-label,
        stored as the sigmoid's 0.5 point) and each candidate's dev score.
    """
    dev_emb = embed(body, [ex.text for ex in dev], batch_size)
    multilabel = cfg.task == "multilabel"
    described = set(cfg.prompt.label_descriptions or {}) >= set(labels)
    candidates = TEMPLATES[:1] if described else TEMPLATES  # every label described: no template to pick
    sample = [] if multilabel else _sample(list(train_texts), cfg.train.seed)
    train_emb = embed(body, sample, batch_size) if sample else None
    scored = []
    for template in candidates:
        label_emb = embed(body, label_texts(cfg, labels, template), batch_size)
        cos = dev_emb @ label_emb.T
        if multilabel:
            scored.append((_multilabel_fit(cos, dev, labels)[1], template, "none", label_emb, cos, None))
            continue
        means = {"none": np.zeros(len(labels), dtype=np.float32)}
        if train_emb is not None:
            means["batch"] = (train_emb @ label_emb.T).mean(axis=0)
        for mode, mean in means.items():
            scored.append((_accuracy(cos - mean, dev, labels), template, mode, label_emb, cos - mean, mean))
    _, template, mode, label_emb, cos, mean = max(scored, key=lambda s: s[0])  # ties: the first, simplest
    state: dict[str, Any] = {
        "template": None if described else template,
        "dev_by_template": {t: round(float(s), 6) for s, t, m, *_ in scored if m == "none"},
    }
    if multilabel:
        threshold, _ = _multilabel_fit(cos, dev, labels)
        bias = np.full(len(labels), -threshold / MULTILABEL_T, dtype=np.float32)
        state |= {"temperature": MULTILABEL_T, "cosine_threshold": round(threshold, 4), "threshold": 0.5}
        return LinearHead(label_emb / MULTILABEL_T, bias), state
    temperature = fit_temperature(cos, dev, labels)
    state |= {
        "calibrate": mode,
        "label_mean_cosine": [round(float(v), 6) for v in mean] if mode == "batch" else None,
        "dev_by_calibration": {f"{t} | {m}": round(float(s), 6) for s, t, m, *_ in scored},
        "batch_texts": len(sample),
        "temperature": temperature,
    }
    bias = (-mean / temperature).astype(np.float32)
    return LinearHead(label_emb / temperature, bias), state


def _sample(texts: list[str], seed: int) -> list[str]:
    """At most ``BATCH_SAMPLE`` of ``texts`` (seeded), in their original order."""
    if len(texts) <= BATCH_SAMPLE:
        return texts
    keep = set(random.Random(seed).sample(range(len(texts)), BATCH_SAMPLE))
    return [t for i, t in enumerate(texts) if i in keep]


def _gold_ids(dev: list[Example], labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[ex.labels[0]] for ex in dev])


def _accuracy(cos: np.ndarray, dev: list[Example], labels: list[str]) -> float:
    return float((cos.argmax(axis=1) == _gold_ids(dev, labels)).mean()) if len(dev) else 0.0


def fit_temperature(cos: np.ndarray, dev: list[Example], labels: list[str]) -> float:
    """The T minimising dev negative log-likelihood of softmax(cos / T) (a grid: one parameter, no
    optimiser needed). It only changes the scores, never the argmax."""
    if not len(dev):
        return 0.05
    gold = _gold_ids(dev, labels)

    def nll(t: float) -> float:
        z = cos / t
        z = z - z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(gold)), gold].mean())

    return round(float(min(TEMPERATURES, key=nll)), 6)


def _multilabel_fit(cos: np.ndarray, dev: list[Example], labels: list[str]) -> tuple[float, float]:
    """The cosine threshold maximising dev micro-F1, and that F1."""
    gold = M.multi_hot([ex.labels for ex in dev], labels)
    grid = np.unique(np.round(np.quantile(cos, np.linspace(0.5, 0.999, 60)), 4)) if cos.size else np.array([0.3])
    best = max(grid, key=lambda t: M.micro_f1(gold, cos >= t))
    return float(best), float(M.micro_f1(gold, cos >= best))
