"""Answer perplexity and generation with a causal LM: greedy or sampled, batched, streamed, cancellable.

Used by instruction tuning (recipe ``instruct``), NER by prompting and the chat predictor.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import torch

from ..data.chat import IGNORE, Message, prompt_ids
from ..training.batching import collate, eval_batches

# ---------------------------------------------------------------- perplexity and generation


@torch.no_grad()
def answer_perplexity(model: Any, features: list[dict[str, Any]], batch_size: int, pad_id: int) -> dict[str, float]:
    """Mean cross-entropy of the answer tokens (the features' shifted labels) and its exp."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for idx in eval_batches([len(f["input_ids"]) for f in features], batch_size):
        batch = collate([{"input_ids": features[i]["input_ids"], "labels": features[i]["labels"]} for i in idx], pad_id)
        labels = batch.pop("labels").to(device)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
        total += float(
            torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
            )
        )
        count += int((labels != IGNORE).sum())
    model.train(was_training)
    loss = total / max(count, 1)
    return {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 6)}


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end an answer: the tokenizer's EOS and the model's generation EOS (ChatML's
    ``<|im_end|>`` for SmolLM2)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


class _Cancelled:
    """A stopping criterion that ends generation when ``event`` is set (a client went away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    streamer: Any = None,
    cancel: threading.Event | None = None,
    prompt_lookup: int = 0,
) -> list[tuple[list[int], str]]:
    """Continue each prompt (token ids); greedy unless ``temperature > 0``.

    Prompts are left-padded in batches of similar length. Returns per prompt the new token ids up to
    (not including) the stop token and the finish reason: ``stop`` or ``length``.

    ``prompt_lookup > 0`` turns on prompt lookup decoding (transformers' ``prompt_lookup_num_tokens``,
    greedy only, one prompt at a time): the tokens that followed the last few generated tokens where
    they occur in the prompt are proposed as a draft, and one forward pass keeps the longest run the
    model agrees with. The output is the same as plain greedy decoding; an answer that copies from its
    prompt (a grounded reply quoting its sources) comes several tokens per forward pass.
    """
    import transformers

    stops, pad_id = stop_ids(model, tokenizer), tokenizer.pad_token_id
    device = next(model.parameters()).device
    extra: dict[str, Any] = {"do_sample": temperature > 0, "eos_token_id": stops, "pad_token_id": pad_id}
    if temperature > 0:
        extra.update(temperature=temperature, top_p=top_p)
    if streamer is not None:
        extra["streamer"] = streamer
    if prompt_lookup and temperature == 0:
        extra["prompt_lookup_num_tokens"] = prompt_lookup
        batch_size = 1  # assisted decoding runs one sequence at a time
    if cancel is not None:
        extra["stopping_criteria"] = transformers.StoppingCriteriaList([_Cancelled(cancel)])
    was_training = model.training
    model.eval()
    out: list[tuple[list[int], str]] = [([], "length")] * len(prompts)
    for idx in eval_batches([len(p) for p in prompts], 1 if streamer is not None else batch_size):
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]) :] = 1
        result = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            **extra,
        )
        for row, i in enumerate(idx):
            out[i] = _until_stop(result[row, width:].tolist(), stops)
    model.train(was_training)
    return out


def _until_stop(ids: list[int], stops: list[int]) -> tuple[list[int], str]:
    for pos, token in enumerate(ids):
        if token in stops:
            return ids[:pos], "stop"
    return ids, "length"


def generate_answers(
    model: Any, tokenizer: Any, conversations: list[list[Message]], max_new_tokens: int, batch_size: int = 8
) -> list[str]:
    """Greedy assistant answers to conversations, as text."""
    prompts = [prompt_ids(tokenizer, c) for c in conversations]
    outs = generate(model, tokenizer, prompts, max_new_tokens, batch_size)
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids, _ in outs]
