"""The predictor of an instruction-tuned (or zero-shot) causal LM (``kind: llm``, task ``causal_lm``):
chat, whole or streamed (``/v1/chat/completions``), and the common predictor interface, where a text
is a user message and a prediction is ``{"generated_text": answer}``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import transformers

from ..data.chat import Message, prompt_ids
from ..data.examples import ChatExample
from ..llm.generation import answer_perplexity, generate, generate_answers
from ..tasks import get_task
from .base import CHAT, GENERATE, check_backend, predict_texts, register_predictor
from .loaders import load_llm_artifact

BACKENDS = ("auto", "torch")


@register_predictor("llm", task="causal_lm")
class ChatPredictor:
    """Generation from a causal_lm artifact. One generation runs at a time (a lock): on a CPU two at
    once only share the cores."""

    capabilities: frozenset[str] = frozenset({CHAT, GENERATE})

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any], batch_size: int = 8) -> None:
        self.model, self.tokenizer, self.meta, self.batch_size = model, tokenizer, meta, batch_size
        self.task = get_task("causal_lm")
        self.labels: list[str] = []
        self.backend = "torch"
        self.max_new_tokens: int = (meta.get("state") or {}).get("max_new_tokens", 128)
        self.prompt_lookup = 0  # draft tokens from the prompt per step (greedy; see llm.generation.generate)
        self._lock = threading.Lock()

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, meta: dict[str, Any], batch_size: int, backend: str, threads: int | None
    ) -> ChatPredictor:
        """Full weights, a peft adapter on its base, or (zero_shot) the base; ``threads`` is not used."""
        check_backend(backend, BACKENDS, f"backend {backend!r} is not available for causal LMs", "use --backend torch")
        model, tokenizer = load_llm_artifact(model_dir, meta)
        return cls(model, tokenizer, meta, batch_size)

    def chat(
        self, messages: list[Message], max_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0
    ) -> tuple[str, str, dict[str, int]]:
        """(answer, finish reason ``stop`` | ``length``, token usage) for a conversation."""
        ids = prompt_ids(self.tokenizer, messages)
        with self._lock:
            [(new, reason)] = generate(
                self.model, self.tokenizer, [ids], max_tokens or self.max_new_tokens, 1, temperature, top_p,
                prompt_lookup=self.prompt_lookup,
            )  # fmt: skip
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        return text, reason, _usage(len(ids), len(new) + (reason == "stop"))

    def stream(
        self,
        messages: list[Message],
        max_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        cancel: threading.Event | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The answer as it is generated: ``{"delta": text}`` events, then one
        ``{"finish_reason", "usage"}``. Setting ``cancel`` stops the generation early."""
        ids = prompt_ids(self.tokenizer, messages)
        streamer = transformers.TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}
        settings = (max_tokens or self.max_new_tokens, 1, temperature, top_p)

        def work() -> None:
            try:
                with self._lock:
                    result["out"] = generate(
                        self.model, self.tokenizer, [ids], *settings, streamer=streamer, cancel=cancel,
                        prompt_lookup=self.prompt_lookup,
                    )  # fmt: skip
            except BaseException as err:  # noqa: BLE001 - re-raised in the consuming thread
                result["error"] = err
                streamer.end()

        thread = threading.Thread(target=work, name="fieldtune-generate", daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield {"delta": piece}
        thread.join()
        if "error" in result:
            raise result["error"]
        [(new, reason)] = result["out"]
        yield {"finish_reason": reason, "usage": _usage(len(ids), len(new) + (reason == "stop"))}

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """Greedy answers to user messages, ``{"generated_text": ...}`` each (one text -> one output)."""
        return predict_texts(self, texts, top_k)

    def predict_examples(self, examples: list[ChatExample]) -> list[str]:
        """The greedy answer to each conversation, as text."""
        with self._lock:
            return generate_answers(
                self.model, self.tokenizer, [ex.chat for ex in examples], self.max_new_tokens, self.batch_size
            )

    def evaluate(self, examples: list[ChatExample]) -> dict[str, Any]:
        """Answer perplexity, exact match and ROUGE-L on conversations with reference answers."""
        max_length = self.meta.get("max_length") or 1024
        features = self.task.encode(examples, self.tokenizer, {}, max_length)
        with self._lock:
            scores = answer_perplexity(self.model, features, min(self.batch_size, 8), self.tokenizer.pad_token_id)
        return {**scores, **self.task.metrics(examples, self.predict_examples(examples), [])}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
