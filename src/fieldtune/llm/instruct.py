"""Task causal_lm: instruction tuning of a decoder on conversations, generation, and ChatPredictor.

Training minimises the cross-entropy of the assistant's answer tokens only (features from
:func:`encode_turn`); model selection uses dev perplexity over those tokens (lower is better).
The final evaluation also generates greedily and scores the answers by exact match and ROUGE-L.
method zero_shot trains nothing: the base model is evaluated and the artifact holds no weights.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from ..artifacts import _base_model_path, find_model_dir, is_adapter_dir, load_artifact, read_meta, save_artifact
from ..config import RunConfig
from ..data.examples import ChatExample
from ..data.prepare import prepare_splits
from ..errors import UserError
from ..tasks import get_task
from ..training.batching import collate, eval_batches
from .model import IGNORE, Message, load_causal_lm, prepare_tokenizer, prompt_ids

GENERATION_METRICS = ("rouge_l", "exact_match")
SELECTION_METRICS = ("perplexity", "loss", *GENERATION_METRICS)
TRAINED_METHODS = ("full", "freeze", "lora", "ia3")  # prompt_tuning would shift the pre-shifted labels
# metrics["train"] of a run that trains nothing (zero-shot), in the shape the report reads
NO_TRAINING = {"train_s": 0.0, "step_s": 0.0, "best_epoch": 0, "best_step": 0, "steps": 0, "tokens_per_s": 0.0}


def train_instruct(cfg: RunConfig, resume: bool = False, progress: bool = True) -> Any:
    """Instruction-tune ``cfg.model`` on ``cfg.data`` (or, method zero_shot, just evaluate it), then
    evaluate on dev and test and write the run folder."""
    from ..run import _accelerator, _attention, _set_threads, write_run

    started = time.perf_counter()
    _check_config(cfg)
    task = get_task("causal_lm")
    splits = prepare_splits(cfg)
    accelerator = _accelerator(cfg)
    _set_threads(cfg)
    set_seed(cfg.train.seed)
    lm = load_causal_lm(cfg.model, attention=_attention(cfg))
    tokenizer, max_length = lm.tokenizer, _max_length(cfg, lm.model)
    encoded = {
        name: task.encode(examples, tokenizer, {}, max_length)
        for name, examples in (("train", splits.train), ("dev", splits.dev), ("test", splits.test))
        if examples
    }
    if cfg.method == "zero_shot":
        from ..run import start_output

        start_output(cfg)
        model, params, history, train_stats = lm.model, _frozen_params(lm.model), [], dict(NO_TRAINING)
    else:
        model, params, history, train_stats = _fit(cfg, lm, encoded, accelerator, resume, progress, started)
    model.eval()
    metrics, test_preds, ms = _final_metrics(cfg, task, splits, encoded, model, tokenizer)
    scored = splits.test or splits.dev
    metrics["baseline"] = {"split": "test" if splits.test else "dev", **task.baseline(splits.train, scored, [])}
    metrics["train"] = {
        **train_stats,
        "wall_s": round(time.perf_counter() - started, 2),
        "train_s": train_stats.get("train_s", 0.0),
        "trainable_params": params["trainable"],
        "total_params": params["total"],
        "ms_per_example": ms,
    }
    return _write(cfg, task, splits, metrics, test_preds, history, params, max_length, model, tokenizer, write_run)


def _check_config(cfg: RunConfig) -> None:
    if cfg.method not in (*TRAINED_METHODS, "zero_shot"):
        raise UserError(
            f"method {cfg.method} does not apply to task causal_lm",
            hint=f"use one of {', '.join((*TRAINED_METHODS, 'zero_shot'))}",
        )
    if cfg.selection_metric() not in SELECTION_METRICS:
        raise UserError(
            f"train.metric {cfg.selection_metric()!r} is not a causal_lm metric",
            hint=f"use one of {', '.join(SELECTION_METRICS)} (perplexity: the default, no generation needed)",
        )


def _max_length(cfg: RunConfig, model: Any) -> int:
    """Tokens per conversation: train.max_length, else 1024 (CPU memory), within the model's limit."""
    limit = getattr(model.config, "max_position_embeddings", 2048)
    return min(cfg.train.max_length or 1024, limit)


def _frozen_params(model: torch.nn.Module) -> dict[str, int]:
    return {"trainable": 0, "total": sum(p.numel() for p in model.parameters())}


def _fit(cfg, lm, encoded, accelerator, resume, progress, started) -> tuple[Any, dict, list, dict]:
    """The Loop over the answer-token loss, selecting on dev perplexity (or a generation metric)."""
    from ..methods import apply_method
    from ..run import _append_log, _train_stats, start_output
    from ..training.loop import Loop

    model, params = apply_method(lm.model, cfg.method, cfg.freeze_layers, cfg.peft)
    if accelerator.is_main_process:
        start_output(cfg)
    pad_id, out, metric = lm.tokenizer.pad_token_id, cfg.output, cfg.selection_metric()

    def dev_metrics(m: torch.nn.Module) -> dict[str, Any]:
        scores = answer_perplexity(m, encoded["dev"], min(cfg.train.eval_batch_size, 8), pad_id)
        if metric in GENERATION_METRICS:
            scores.update(_generation_scores(cfg, m, lm.tokenizer, encoded["dev"]))
        return scores

    loop = Loop(
        model,
        encoded["train"],
        dev_metrics,
        cfg.train,
        metric,
        accelerator,
        pad_id,
        ckpt_dir=out / "checkpoints",
        on_eval=lambda r: _append_log(out / "log.jsonl", r),
        progress=progress,
    )
    state = loop.run(resume=resume)
    model = accelerator.unwrap_model(loop.model, keep_fp32_wrapper=False)
    return model, params, state.history, _train_stats(cfg, state, accelerator, params, started)


def _generation_scores(cfg: RunConfig, model: Any, tokenizer: Any, features: list[dict]) -> dict[str, Any]:
    """Greedy answers to the dev prompts (the features' prompt part), scored against their answers."""
    prompts = [f["input_ids"][: f["prompt_len"]] for f in features]
    refs = [tokenizer.decode(f["input_ids"][f["prompt_len"] :], skip_special_tokens=True).strip() for f in features]
    outs = generate(model, tokenizer, prompts, cfg.prompt.max_new_tokens)
    from ..tasks.causal_lm import generation_metrics

    return generation_metrics(refs, [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids, _ in outs])


def _final_metrics(cfg, task, splits, encoded, model, tokenizer) -> tuple[dict, list[str] | None, float]:
    """Per split: answer perplexity and generation scores. Returns also the test answers and the
    generation time per example (ms)."""
    metrics: dict[str, Any] = {}
    preds: dict[str, list[str]] = {}
    seconds, generated = 0.0, 0
    pad_id = tokenizer.pad_token_id
    for name, examples in (("dev", splits.dev), ("test", splits.test)):
        if not examples:
            continue
        tick = time.perf_counter()
        preds[name] = generate_answers(model, tokenizer, [ex.chat for ex in examples], cfg.prompt.max_new_tokens)
        seconds, generated = seconds + time.perf_counter() - tick, generated + len(examples)
        metrics[name] = {
            **answer_perplexity(model, encoded[name], min(cfg.train.eval_batch_size, 8), pad_id),
            **task.metrics(examples, preds[name], []),
        }
    return metrics, preds.get("test"), round(1000 * seconds / max(generated, 1), 1)


def _write(cfg, task, splits, metrics, test_preds, history, params, max_length, model, tokenizer, write_run):
    from ..artifacts import is_peft_model
    from ..run import run_meta

    zero_shot = cfg.method == "zero_shot"
    state = {"max_new_tokens": cfg.prompt.max_new_tokens}
    meta = run_meta(
        cfg,
        [],
        state,
        max_length,
        metrics,
        params,
        splits,
        kind="llm",
        base_fingerprint=zero_shot or is_peft_model(model),
    )
    weights = None if zero_shot else model
    save = lambda target: save_artifact(weights, tokenizer, meta, target)  # noqa: E731
    return write_run(cfg, task, splits, [], metrics, test_preds, history, params, meta, save)


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
) -> list[tuple[list[int], str]]:
    """Continue each prompt (token ids); greedy unless ``temperature > 0``.

    Prompts are left-padded in batches of similar length. Returns per prompt the new token ids up to
    (not including) the stop token and the finish reason: ``stop`` or ``length``.
    """
    import transformers

    stops, pad_id = stop_ids(model, tokenizer), tokenizer.pad_token_id
    device = next(model.parameters()).device
    extra: dict[str, Any] = {"do_sample": temperature > 0, "eos_token_id": stops, "pad_token_id": pad_id}
    if temperature > 0:
        extra.update(temperature=temperature, top_p=top_p)
    if streamer is not None:
        extra["streamer"] = streamer
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


# ---------------------------------------------------------------- the Predictor


class ChatPredictor:
    """A causal_lm artifact: chat (whole or streamed) and the Predictor interface, where a text is a
    user message and a prediction is ``{"generated_text": answer}``.

    One generation runs at a time (a lock): on a CPU two at once only share the cores.
    """

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any], batch_size: int = 8) -> None:
        self.model, self.tokenizer, self.meta, self.batch_size = model, tokenizer, meta, batch_size
        self.task = get_task("causal_lm")
        self.labels: list[str] = []
        self.backend = "torch"
        self.max_new_tokens: int = (meta.get("state") or {}).get("max_new_tokens", 128)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 8, backend: str = "auto") -> ChatPredictor:
        """A run or model folder: full weights, a peft adapter on its base, or (zero_shot) the base."""
        if backend not in ("auto", "torch"):
            raise UserError(f"backend {backend!r} is not available for causal LMs", hint="use --backend torch")
        model_dir = find_model_dir(path)
        meta = read_meta(model_dir)
        if (
            is_adapter_dir(model_dir)
            or (model_dir / "model.safetensors").is_file()
            or any(model_dir.glob("model-*.safetensors"))
        ):
            artifact = load_artifact(model_dir)
            model, tokenizer = artifact.model, artifact.tokenizer
        else:  # nothing trained: the base model the artifact names (checked against its sha256)
            model = load_causal_lm(_base_model_path(model_dir, meta)).model
            import transformers

            tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        prepare_tokenizer(tokenizer)
        model.eval()
        return cls(model, tokenizer, meta, batch_size)

    def chat(
        self, messages: list[Message], max_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0
    ) -> tuple[str, str, dict[str, int]]:
        """(answer, finish reason ``stop`` | ``length``, token usage) for a conversation."""
        ids = prompt_ids(self.tokenizer, messages)
        with self._lock:
            [(new, reason)] = generate(
                self.model, self.tokenizer, [ids], max_tokens or self.max_new_tokens, 1, temperature, top_p
            )
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
        import transformers

        ids = prompt_ids(self.tokenizer, messages)
        streamer = transformers.TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with self._lock:
                    result["out"] = generate(
                        self.model,
                        self.tokenizer,
                        [ids],
                        max_tokens or self.max_new_tokens,
                        1,
                        temperature,
                        top_p,
                        streamer=streamer,
                        cancel=cancel,
                    )
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
        from ..predict import predict_texts

        return predict_texts(self, texts, top_k)

    def predict_examples(self, examples: list[ChatExample]) -> list[str]:
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
