"""Instruction tuning of a decoder (task causal_lm): conversations in, the assistant's answer out.

Predictions are generated texts, not logits: the runner (:mod:`fieldtune.llm.generation`) generates
them and this task scores them (exact match and ROUGE-L against the reference answer). Perplexity
over the answer tokens, the selection metric, needs the model and is measured there too.
"""

from __future__ import annotations

import re
from typing import Any

from ..data.chat import encode_turn
from ..data.examples import ChatExample
from .base import Task
from .losses import token_loss
from .registry import register


def normalize(text: str) -> str:
    """Case and whitespace don't make an answer wrong."""
    return re.sub(r"\s+", " ", text).strip().lower()


def rouge_l(reference: str, prediction: str) -> float:
    """ROUGE-L F1 (rouge_score, with stemming) of one answer."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, prediction)["rougeL"].fmeasure


def generation_metrics(references: list[str], predictions: list[str]) -> dict[str, Any]:
    """Exact match (normalised) and mean ROUGE-L F1, both in 0..1."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    n = max(len(references), 1)
    exact = sum(normalize(r) == normalize(p) for r, p in zip(references, predictions))
    rouge = sum(scorer.score(r, p)["rougeL"].fmeasure for r, p in zip(references, predictions))
    return {"exact_match": round(exact / n, 6), "rouge_l": round(rouge / n, 6), "examples": len(references)}


@register
class CausalLM(Task):
    name = "causal_lm"
    auto_model = "AutoModelForCausalLM"
    default_metric = "perplexity"
    chat = True

    def label_list(self, train: list[ChatExample]) -> list[str]:
        return []  # generation has no label set

    def encode(self, examples, tokenizer, label2id, max_length):
        return [
            {**encode_turn(tokenizer, ex.chat, ex.response, max_length, generation=True), "example": i}
            for i, ex in enumerate(examples)
        ]

    def decode(self, examples, features, logits, id2label, state):
        raise NotImplementedError(
            "causal_lm predictions are generated (fieldtune.llm.generation), not decoded from logits"
        )

    def loss(self, logits, labels, targets_per_batch=None):
        """Cross-entropy of the answer tokens (labels are already shifted: see ``encode_turn``)."""
        return token_loss(logits, labels, targets_per_batch)

    def metrics(self, examples, predictions, labels):
        return generation_metrics([ex.response for ex in examples], list(predictions))

    def baseline(self, train, examples, labels):
        """Answer with the last user message: what a model that learned nothing but echoing scores."""
        copies = [next((c for r, c in reversed(ex.messages) if r == "user"), "") for ex in examples]
        return {"name": "copy the prompt", **self.metrics(examples, copies, labels)}

    def from_text(self, text: str) -> ChatExample:
        return ChatExample((("user", text),), "")

    def to_output(self, text, example, prediction, top_k):
        return {"generated_text": prediction}  # the Hugging Face text-generation shape
