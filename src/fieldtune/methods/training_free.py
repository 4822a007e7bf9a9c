"""Methods that adapt without gradient fine-tuning of the model (SetFit trains a small encoder and a head).

zero_shot   a causal LM scores the label words (or answers / extracts entities by prompting); an
            encoder compares text and label-description embeddings
in_context  a causal LM prompted with the most similar training examples
setfit      contrastive few-shot fine-tuning of a sentence encoder, then a logistic-regression head
"""

from __future__ import annotations

from .registry import MethodSpec, register_method

register_method(
    MethodSpec(
        "zero_shot",
        "a causal LM scores the label words (or answers, or lists entities); an encoder compares text and "
        "label embeddings",
        {
            "encoder": {"classification": "embedding", "multilabel": "embedding"},
            "causal_lm": {"classification": "llm_classify", "causal_lm": "instruct", "ner": "llm_ner"},
        },
        trains=False,
        section="prompt",
        hints={
            "encoder:ner": "for ner use method: full, lora or head; or a causal LM (model: smollm2) for zero-shot ner"
        },
    )
)
register_method(
    MethodSpec(
        "in_context",
        "a causal LM prompted with similar training examples",
        {"causal_lm": {"classification": "llm_classify", "ner": "llm_ner"}},
        trains=False,
        section="prompt",
        hints={"encoder": "use model: smollm2, or method: setfit for few-shot learning with an encoder"},
    )
)
register_method(
    MethodSpec(
        "setfit",
        "contrastive few-shot fine-tuning of a sentence encoder + a logistic-regression head",
        {"encoder": {"classification": "embedding"}},
        section="setfit",
        hints={"encoder:multilabel": "for multi-label use method: zero_shot, head or lora with an encoder"},
    )
)
