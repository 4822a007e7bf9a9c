"""Turning conversations into token ids, the same way for training and inference (loading the
model: :mod:`fieldtune.models.causal_lm`).

A conversation is a list of ``{"role", "content"}`` messages. With a tokenizer that has a chat
template (SmolLM2-Instruct does) the template renders it; without one a plain
``User: ...\\nAssistant: ...`` format stands in. Training features carry labels already shifted by one
(``labels[i]`` is the token *after* position ``i``, -100 where nothing is learned), so the training
loop's token-level cross-entropy is the causal-LM loss on response tokens only.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100
Message = dict[str, str]
# A chat template carrying this comment ends a *generated* answer with the tokenizer's EOS instead of
# its end-of-turn token (fieldtune's Gemma template for the base gemma3: that model never learned to
# predict <end_of_turn>; see models/causal_lm.py). Label scoring keeps the template's own end token.
EOS_ENDS_ANSWERS = "{# fieldtune: generated answers end with eos #}"


def render(tokenizer: Any, messages: list[Message], add_generation_prompt: bool) -> str:
    """The conversation as the model sees it (its chat template, or a plain fallback)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
    return text + ("Assistant:" if add_generation_prompt else "")


def prompt_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    """Token ids of ``messages`` followed by the assistant-turn opener: what generation continues."""
    return _ids(tokenizer, render(tokenizer, messages, add_generation_prompt=True))


def encode_turn(
    tokenizer: Any, messages: list[Message], response: str, max_length: int | None = None, generation: bool = False
) -> dict[str, Any]:
    """A training feature: ``messages`` + the assistant ``response`` (and the template's end-of-turn
    tokens), loss on the response part only.

    The full conversation is rendered by the template and must start with the rendered prompt (true
    of every chat template we know); the response's ids are what follows. Too long: the prompt is
    cut from the left (the response and the end of the prompt matter most).

    ``generation``: an answer to be generated (a causal-LM task), which must end where generation
    stops: with a template marked :data:`EOS_ENDS_ANSWERS`, the tokenizer's EOS ends it.

    Returns:
        ``{"input_ids", "labels", "prompt_len"}`` with ``labels`` shifted: ``labels[i]`` is the
        target at position ``i``, i.e. ``input_ids[i + 1]`` inside the response, else -100.
    """
    prompt = prompt_ids(tokenizer, messages)
    full_text = render(tokenizer, [*messages, {"role": "assistant", "content": response}], add_generation_prompt=False)
    full = _ids(tokenizer, full_text)
    if full[: len(prompt)] != prompt:  # a template that renders history differently: tokenise the answer alone
        full = prompt + _ids(tokenizer, response, special=False) + [tokenizer.eos_token_id]
    answer = full[len(prompt) :]
    answer = _trim_trailing_whitespace(tokenizer, answer)
    if generation and EOS_ENDS_ANSWERS in (getattr(tokenizer, "chat_template", None) or ""):
        answer = answer[:-1] + [tokenizer.eos_token_id]  # the end-of-turn token, replaced
    if max_length is not None and len(prompt) + len(answer) > max_length:
        keep = max(1, max_length - len(answer))
        prompt = prompt[-keep:]
        answer = answer[: max_length - len(prompt)]
    ids = prompt + answer
    labels = [IGNORE] * len(ids)
    for i in range(len(prompt) - 1, len(ids) - 1):  # position i predicts token i + 1
        labels[i] = ids[i + 1]
    return {"input_ids": ids, "labels": labels, "prompt_len": len(prompt)}


def _trim_trailing_whitespace(tokenizer: Any, ids: list[int]) -> list[int]:
    """Drop a trailing newline token after the end-of-turn marker (ChatML templates add one): the
    model should learn to stop at the marker, not to print a newline after it."""
    while len(ids) > 1 and tokenizer.decode(ids[-1:]).strip() == "":
        ids = ids[:-1]
    return ids


def _ids(tokenizer: Any, text: str, special: bool = False) -> list[int]:
    # the chat template already wrote any BOS / special tokens into the text
    return tokenizer(text, add_special_tokens=special)["input_ids"]
