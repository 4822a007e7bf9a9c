"""Text classification with a causal LM: the label words are the assistant's answer.

zero_shot      no training: each label's words are scored as the answer to the instruction + text
in_context     the same, after the most similar training examples as earlier chat turns (chosen per input)
lora / ia3 / prompt_tuning / prefix / full / freeze
               the model learns to answer with the label words (features from ``encode_turn``: the
               causal-LM loss on the answer), model selection on dev accuracy from the label scorer

A label's score is the sum of the log-probabilities of its answer tokens: the label words and the
end-of-turn token, exactly the ids ``encode_turn`` trains on, so training and inference agree. The
prompt runs once per input and every label continues it: the label answers form a token trie (shared
first tokens are computed once) packed behind the prompt in one forward pass, with an attention mask
letting each trie token see the prompt and its own ancestors only. The part of the prompt every input
shares (system message, instruction, label list) is computed once and its KV cache reused.

Zero-shot and in-context scores are calibrated (Zhao et al. 2021, contextual calibration): the label
distribution the model gives content-free inputs ("N/A", "", "[MASK]") is its prior, and each label's
log-score loses its log prior. Predictions are the softmax of the (calibrated) scores over the labels.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import _base_model_path, is_adapter_dir, is_peft_model, quiet_transformers, read_meta, save_artifact
from ..config import PROMPT_METHODS, RunConfig
from ..data.examples import TextExample
from ..data.prepare import Splits, prepare_splits
from ..errors import UserError
from ..tasks import get_task
from .model import Message, encode_turn, load_causal_lm, prompt_ids

DEFAULT_INSTRUCTION = "Classify the text into one of these categories: {labels}."
CONTENT_FREE = ("N/A", "", "[MASK]")
POOL_FILE = "examples.jsonl"  # in_context: the training examples the shots are chosen from
TRAINED_METHODS = ("lora", "ia3", "prompt_tuning", "prefix", "full", "freeze")
# Sum of the answer's log-probs, not the mean per token: on 40 queries of the shipped BANKING77 sample
# (12 intents, zero-shot smollm2) sum scored 0.40 accuracy calibrated (0.325 raw), the mean 0.325 (0.15 raw).
# Calibration already removes most of the length bias the mean would correct, and the mean over-rewards
# long labels whose later tokens are near-certain once the first is chosen ("card" -> " payment" -> " fee").
NORMALISE = "sum"
DEFAULT_MAX_LENGTH = 2048  # prompt + answer tokens; SmolLM2 takes 8192, the 77-label prompt needs ~450


# ---------------------------------------------------------------- prompts


def label_words(cfg: RunConfig, labels: list[str]) -> list[str]:
    """What the model answers for each label: ``prompt.label_words`` or the name with _ and - as spaces."""
    given = cfg.prompt.label_words or {}
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise UserError(f"prompt.label_words names labels not in the data: {unknown}", hint=f"labels: {labels}")
    words = [given.get(label, label.replace("_", " ").replace("-", " ")).strip() for label in labels]
    dupes = sorted({w for w in words if words.count(w) > 1})
    if dupes or not all(words):
        raise UserError(
            f"label words must be distinct and non-empty, got duplicates {dupes}" if dupes else "empty label words",
            hint="set prompt.label_words to one distinct phrase per label",
        )
    return words


def prompt_state(cfg: RunConfig, labels: list[str]) -> dict[str, Any]:
    """Everything the prompts depend on, saved in fieldtune.json's ``state`` so the Predictor rebuilds them."""
    words = label_words(cfg, labels)
    instruction = (cfg.prompt.instruction or DEFAULT_INSTRUCTION).replace("{labels}", ", ".join(words))
    calibrate = cfg.prompt.calibrate and cfg.method in PROMPT_METHODS  # trained models learn the label balance
    return {
        "label_words": words,
        "instruction": instruction,
        "template": cfg.prompt.template,
        "calibrate": calibrate,
        "normalise": NORMALISE,
        "shots_per_label": cfg.prompt.shots_per_label,
        "max_shots": cfg.prompt.max_shots if cfg.method == "in_context" else 0,
        "attention": llm_attention(cfg),  # the Predictor loads the model with the same kernel: same numbers
    }


def user_message(state: dict[str, Any], text: str, instruction: bool = True) -> str:
    return state["template"].format(instruction=state["instruction"] if instruction else "", text=text).strip()


def conversation(state: dict[str, Any], text: str, shots: Sequence[tuple[str, str]] = ()) -> list[Message]:
    """The chat for one input: the shots as earlier user / assistant turns, then the question.

    With shots, only the first user turn carries the instruction (with 77 labels it is ~400 tokens;
    repeated per shot it would dwarf the examples); every turn has the same ``Text: ...`` form.
    """
    messages: list[Message] = []
    for i, (shot, word) in enumerate(shots):
        messages += [
            {"role": "user", "content": user_message(state, shot, instruction=i == 0)},
            {"role": "assistant", "content": word},
        ]
    messages.append({"role": "user", "content": user_message(state, text, instruction=not shots)})
    return messages


def answer_ids(tokenizer: Any, words: list[str]) -> list[list[int]]:
    """Each label's answer tokens (words + end-of-turn), exactly as ``encode_turn`` trains them."""
    probe = [{"role": "user", "content": "x"}]
    out = []
    for word in words:
        feature = encode_turn(tokenizer, probe, word)
        out.append(feature["input_ids"][feature["prompt_len"] :])
    return out


# ---------------------------------------------------------------- scoring


class _Trie:
    """The label answers as a token trie, in depth-first order: shared prefixes appear once.

    ``tokens[n]``, ``parent[n]`` (-1: the prompt's last token) and ``depth[n]`` per node; ``paths[l]``
    are label ``l``'s nodes. Only nodes with children are fed to the model (a leaf's log-prob comes
    from its parent's logits), ``inner`` lists them."""

    def __init__(self, answers: list[list[int]]) -> None:
        self.tokens: list[int] = []
        self.parent: list[int] = []
        self.depth: list[int] = []
        children: dict[tuple[int, int], int] = {}
        self.paths: list[list[int]] = []
        for answer in answers:
            node, path = -1, []
            for token in answer:
                if (node, token) not in children:
                    children[(node, token)] = len(self.tokens)
                    self.tokens.append(token)
                    self.parent.append(node)
                    self.depth.append(0 if node < 0 else self.depth[node] + 1)
                node = children[(node, token)]
                path.append(node)
            self.paths.append(path)
        has_child = {p for p in self.parent if p >= 0}
        self.inner = [n for n in range(len(self.tokens)) if n in has_child]


class LabelScorer:
    """Log-scores of every label's answer after a prompt (see the module docstring for how)."""

    def __init__(self, model: Any, tokenizer: Any, answers: list[list[int]], max_length: int = DEFAULT_MAX_LENGTH):
        self.model, self.tokenizer, self.answers, self.max_length = model, tokenizer, answers, max_length
        self.trie = _Trie(answers)
        self._prefix: tuple[list[int], Any] | None = None  # shared prompt prefix ids and its KV cache
        self._lengths = torch.tensor([len(a) for a in answers], dtype=torch.float32)
        # prompt_tuning / prefix prepend virtual tokens inside peft's forward: no custom mask or cache there
        self.packed = not (is_peft_model(model) and model.peft_config[model.active_adapter].is_prompt_learning)
        self.core = model.get_base_model() if is_peft_model(model) and self.packed else model  # LoRA layers inside

    def share_prefix(self, prompts: list[list[int]]) -> None:
        """Cache the KV of the longest token prefix these prompts share (at least one token is left to
        each, so the last prompt position's logits are always computed)."""
        if not self.packed or len(prompts) < 2:
            return
        n = min(len(p) for p in prompts) - 1
        for i in range(n):
            if any(p[i] != prompts[0][i] for p in prompts[1:]):
                n = i
                break
        if n < 8:
            return
        ids = prompts[0][:n]
        with torch.no_grad():
            out = self.core(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
        self._prefix = (ids, out.cache)

    def score(self, prompts: list[list[int]], normalise: str = NORMALISE) -> np.ndarray:
        """``(len(prompts), labels)`` log-scores: summed (or per-token mean) answer log-probs."""
        rows = [self._score_packed(p) if self.packed else self._score_rows(p) for p in prompts]
        scores = torch.stack(rows) if rows else torch.zeros((0, len(self.answers)))
        if normalise == "mean":
            scores = scores / self._lengths
        return scores.numpy().astype(np.float64)

    def _fit(self, ids: list[int]) -> list[int]:
        """Cut a too-long prompt from the left, as ``encode_turn`` does for training."""
        keep = max(1, self.max_length - max(len(a) for a in self.answers))
        return ids[-keep:] if len(ids) > keep else ids

    @torch.no_grad()
    def _score_packed(self, ids: list[int]) -> torch.Tensor:
        """One forward: the prompt (after any cached prefix) + the trie's inner nodes."""
        ids, trie = self._fit(ids), self.trie
        past, cache = 0, None
        shared = self._prefix[0] if self._prefix is not None else None
        if shared is not None and len(ids) > len(shared) and ids[: len(shared)] == shared:
            past, cache = len(shared), copy.deepcopy(self._prefix[1])  # the forward appends to the cache
        rest, inner = ids[past:], trie.inner
        slot = {node: len(rest) + i for i, node in enumerate(inner)}  # node -> its row in this forward
        q = len(rest) + len(inner)
        allowed = torch.zeros((q, past + q), dtype=torch.bool)
        allowed[:, :past] = True
        allowed[: len(rest), past : past + len(rest)] = torch.ones(len(rest), len(rest), dtype=torch.bool).tril()
        allowed[len(rest) :, past : past + len(rest)] = True
        for node in inner:
            a = node
            while a >= 0:  # a node sees itself and its ancestors
                allowed[slot[node], past + slot[a]] = True
                a = trie.parent[a]
        positions = list(range(past, len(ids))) + [len(ids) + trie.depth[n] for n in inner]
        keep = torch.tensor([len(rest) - 1] + [slot[n] for n in inner])  # rows whose logits predict a node
        out = self.core(
            input_ids=torch.tensor([rest + [trie.tokens[n] for n in inner]]),
            attention_mask=self._mask(allowed),
            position_ids=torch.tensor([positions]),
            cache=cache,
            use_cache=cache is not None,
            logits_to_keep=keep,
        )
        logp = torch.log_softmax(out.logits[0].float(), dim=-1)  # (1 + inner, vocab)
        row = {-1: 0, **{n: i + 1 for i, n in enumerate(inner)}}
        node_logp = torch.tensor([logp[row[trie.parent[n]], trie.tokens[n]] for n in range(len(trie.tokens))])
        return torch.stack([node_logp[path].sum() for path in trie.paths])

    def _mask(self, allowed: torch.Tensor) -> torch.Tensor:
        """The 4D mask: boolean for sdpa, additive for the eager kernel (which adds it to the scores)."""
        if getattr(self.core.config, "_attn_implementation", "sdpa") == "sdpa":
            return allowed[None, None]
        dtype = next(self.core.parameters()).dtype
        return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[None, None]

    @torch.no_grad()
    def _score_rows(self, ids: list[int]) -> torch.Tensor:
        """The plain way: one row [prompt + answer] per label, right-padded (virtual-token peft methods,
        and the reference the packed scorer is tested against)."""
        ids = self._fit(ids)
        rows = [ids + a for a in self.answers]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        logits = self.model(input_ids=input_ids, attention_mask=mask).logits[:, -width:].float()
        logp = torch.log_softmax(logits, dim=-1)
        scores = []
        for i, answer in enumerate(self.answers):
            pos = torch.arange(len(ids) - 1, len(ids) - 1 + len(answer))
            scores.append(logp[i, pos, torch.tensor(answer)].sum())
        return torch.stack(scores)


# ---------------------------------------------------------------- in-context shots


class ShotSelector:
    """The training examples most similar to an input (cosine of ``minilm`` sentence embeddings), at
    most ``shots_per_label`` per label and ``max_shots`` in all, most similar first."""

    def __init__(self, pool: list[tuple[str, str]], shots_per_label: int, max_shots: int) -> None:
        from sentence_transformers import SentenceTransformer

        from ..zoo import resolve

        self.pool, self.per_label, self.max_shots = pool, shots_per_label, max_shots
        with quiet_transformers():
            self.encoder = SentenceTransformer(resolve("minilm"), device="cpu")
        self.embeddings = self._embed([text for text, _ in pool])

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)

    def select(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        sims = self._embed(texts) @ self.embeddings.T  # (inputs, pool)
        chosen = []
        for row in sims:
            shots, per_label = [], {}
            for j in np.argsort(-row, kind="stable"):
                label = self.pool[j][1]
                if per_label.get(label, 0) < self.per_label:
                    per_label[label] = per_label.get(label, 0) + 1
                    shots.append(self.pool[j])
                    if len(shots) == self.max_shots:
                        break
            chosen.append(shots)
        return chosen


# ---------------------------------------------------------------- the classifier


class LLMClassifier:
    """Model + prompt state -> label probabilities for texts; shared by training, runs and the Predictor."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        labels: list[str],
        state: dict[str, Any],
        pool: list[tuple[str, str]] | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        autocast: bool = False,
    ) -> None:
        self.model, self.tokenizer, self.labels, self.state, self.autocast = model, tokenizer, labels, state, autocast
        self.words = state["label_words"]
        self.scorer = LabelScorer(model, tokenizer, answer_ids(tokenizer, self.words), max_length)
        self.selector = ShotSelector(pool, state["shots_per_label"], state["max_shots"]) if pool else None
        # the part every prompt shares (system message, instruction, label list) runs once
        self.scorer.share_prefix([prompt_ids(tokenizer, conversation(state, t)) for t in ("a b", "c d")])
        self.prior = np.array(state["prior"]) if state.get("prior") is not None else None

    def log_scores(self, texts: list[str], shots: list[list[tuple[str, str]]] | None = None) -> np.ndarray:
        """``(texts, labels)`` calibrated log-scores."""
        shots = shots if shots is not None else self._shots(texts)
        prompts = [prompt_ids(self.tokenizer, conversation(self.state, t, s)) for t, s in zip(texts, shots)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            scores = self.scorer.score(prompts, self.state["normalise"])
        if not self.state["calibrate"]:
            return scores
        if self.selector is None:
            return scores - self.log_prior()[None]
        # in-context: the prior depends on the shots, so it is measured with each input's own shots
        return np.stack([row - self.log_prior(s) for row, s in zip(scores, shots)])

    def log_prior(self, shots: Sequence[tuple[str, str]] = ()) -> np.ndarray:
        """log of the mean label distribution on the content-free inputs (computed once without shots)."""
        if not shots and self.prior is not None:
            return self.prior
        free = self.log_scores_raw(list(CONTENT_FREE), [list(shots)] * len(CONTENT_FREE))
        prior = np.log(_softmax(free).mean(axis=0))
        if not shots:
            self.prior = prior
        return prior

    def log_scores_raw(self, texts: list[str], shots: list[list[tuple[str, str]]]) -> np.ndarray:
        prompts = [prompt_ids(self.tokenizer, conversation(self.state, t, s)) for t, s in zip(texts, shots)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            return self.scorer.score(prompts, self.state["normalise"])

    def _shots(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        if self.selector is None:
            return [[] for _ in texts]
        words = dict(zip(self.labels, self.words))
        return [[(t, words[label]) for t, label in s] for s in self.selector.select(texts)]

    def probabilities(self, texts: list[str]) -> list[dict[str, float]]:
        """Per text ``{label: probability}``, like the encoder classification task's ``decode``."""
        probs = _softmax(self.log_scores(texts))
        return [dict(zip(self.labels, row.tolist())) for row in probs]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- training / runs


def train_classifier(cfg: RunConfig, resume: bool = False, progress: bool = True) -> Any:
    """Classification with a causal LM: prompting (zero_shot, in_context) or training to answer with the
    label words; evaluates, and writes the run folder through :func:`fieldtune.run.write_run`."""
    from ..run import _set_threads

    started = time.perf_counter()
    if cfg.method not in PROMPT_METHODS + TRAINED_METHODS:
        raise UserError(
            f"method {cfg.method} is not available for a causal LM",
            hint="use zero_shot, in_context, lora, ia3, prompt_tuning, prefix, full or freeze "
            "(head: the LM head is tied to the input embeddings)",
        )
    task = get_task("classification")
    splits = prepare_splits(cfg)
    labels = task.label_list(splits.train)
    state = prompt_state(cfg, labels)
    _set_threads(cfg)
    lm = load_causal_lm(cfg.model, attention=llm_attention(cfg))
    max_length = cfg.train.max_length or DEFAULT_MAX_LENGTH
    if cfg.method in PROMPT_METHODS:
        return _prompting(cfg, task, splits, labels, state, lm, max_length, started)
    return _training(cfg, task, splits, labels, state, lm, max_length, started, resume, progress)


def llm_attention(cfg: RunConfig) -> str:
    """'auto': eager on CPU, sdpa on GPU (as for encoders). A LoRA step of smollm2 (batch 8 x 128, 2 cores
    with AMX) takes 2.9 s eager vs 3.1 s sdpa under bf16 autocast (run.use_bf16 decides), 4.6 vs 4.4 s in
    fp32; see bench/lora_step.py. The label scorer's custom attention mask works with both."""
    if cfg.train.attention != "auto":
        return cfg.train.attention
    return "sdpa" if torch.cuda.is_available() else "eager"


def _pool(cfg: RunConfig, splits: Splits) -> list[tuple[str, str]] | None:
    return [(ex.text, ex.labels[0]) for ex in splits.train] if cfg.method == "in_context" else None


def _prompting(cfg, task, splits, labels, state, lm, max_length, started) -> Any:
    """zero_shot / in_context: no training; the artifact is meta + tokenizer (+ the shot pool)."""
    from ..methods import count_parameters
    from ..run import run_meta, start_output

    start_output(cfg)
    pool = _pool(cfg, splits)
    clf = LLMClassifier(lm.model.eval(), lm.tokenizer, labels, state, pool, max_length)
    if state["calibrate"]:
        state["prior"] = clf.log_prior().tolist()
    params = {"trainable": 0, "total": count_parameters(lm.model)["total"]}
    metrics, test_preds = _evaluate(task, splits, labels, clf)
    metrics["train"] = {
        "wall_s": round(time.perf_counter() - started, 2),
        "train_s": 0.0,
        **{"steps": 0, "best_epoch": 0, "best_step": 0, "tokens_per_s": 0.0},  # nothing trained (report.md reads them)
        "trainable_params": 0,
        "total_params": params["total"],
        "ms_per_example": metrics.pop("_ms_per_example"),
        "precision": "fp32",
        "attention": llm_attention(cfg),
    }
    meta = run_meta(cfg, labels, state, max_length, metrics, params, splits, kind="llm", base_fingerprint=True)
    return _write(cfg, task, splits, labels, metrics, test_preds, [], params, meta, None, lm.tokenizer, pool)


def _training(cfg, task, splits, labels, state, lm, max_length, started, resume, progress) -> Any:
    """Classification as generation, trained by the shared :class:`~fieldtune.training.loop.Loop`."""
    from accelerate.utils import set_seed

    from ..methods import apply_method
    from ..run import _accelerator, _append_log, _train_stats, run_meta, start_output
    from ..training.loop import Loop

    accelerator = _accelerator(cfg)
    set_seed(cfg.train.seed)
    lm.model.config.use_cache = False  # training builds no KV cache; the scorer asks for one explicitly
    model, params = apply_method(lm.model, cfg.method, cfg.freeze_layers, cfg.peft)
    words = dict(zip(labels, state["label_words"]))
    features = [
        encode_turn(lm.tokenizer, conversation(state, ex.text), words[ex.labels[0]], max_length) for ex in splits.train
    ]
    start_output(cfg)
    out = cfg.output

    def dev_metrics(m: torch.nn.Module) -> dict[str, Any]:
        clf = LLMClassifier(m, lm.tokenizer, labels, state, None, max_length)
        return task.metrics(splits.dev, clf.probabilities([ex.text for ex in splits.dev]), labels)

    loop = Loop(
        model,
        features,
        dev_metrics,
        cfg.train,
        cfg.selection_metric(),
        accelerator,
        lm.tokenizer.pad_token_id,
        ckpt_dir=out / "checkpoints",
        on_eval=lambda r: _append_log(out / "log.jsonl", r),
        progress=progress,
    )
    loop_state = loop.run(resume=resume)
    model = accelerator.unwrap_model(loop.model, keep_fp32_wrapper=False).eval()
    clf = LLMClassifier(model, lm.tokenizer, labels, state, None, max_length)  # fp32, as the artifact predicts
    metrics, test_preds = _evaluate(task, splits, labels, clf)
    metrics["train"] = {
        **_train_stats(cfg, loop_state, accelerator, params, started),
        "attention": llm_attention(cfg),
        "ms_per_example": metrics.pop("_ms_per_example"),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    meta = run_meta(cfg, labels, state, max_length, metrics, params, splits, kind="llm")
    return _write(cfg, task, splits, labels, metrics, test_preds, loop_state.history, params, meta, model, lm.tokenizer)


def _evaluate(task, splits: Splits, labels: list[str], clf: LLMClassifier) -> tuple[dict[str, Any], Any]:
    """dev / test / baseline metrics as the encoder classification writes them, + inference ms per example."""
    metrics: dict[str, Any] = {}
    timed = splits.test or splits.dev
    tick = time.perf_counter()
    preds = {"dev": clf.probabilities([ex.text for ex in splits.dev])}
    if splits.test:
        tick = time.perf_counter()  # time the test set alone when there is one
        preds["test"] = clf.probabilities([ex.text for ex in splits.test])
    ms = 1000 * (time.perf_counter() - tick) / max(1, len(timed))
    metrics["dev"] = task.metrics(splits.dev, preds["dev"], labels)
    if splits.test:
        metrics["test"] = task.metrics(splits.test, preds["test"], labels)
    scored = splits.test or splits.dev
    metrics["baseline"] = {"split": "test" if splits.test else "dev", **task.baseline(splits.train, scored, labels)}
    metrics["_ms_per_example"] = round(ms, 1)
    return metrics, preds.get("test")


def _write(cfg, task, splits, labels, metrics, test_preds, history, params, meta, model, tokenizer, pool=None):
    from ..run import write_run

    def save(target: Path) -> Path:
        return save_artifact(model, tokenizer, meta, target, extra=_pool_writer(pool))

    return write_run(cfg, task, splits, labels, metrics, test_preds, history, params, meta, save)


def _pool_writer(pool: list[tuple[str, str]] | None) -> Any:
    if not pool:
        return None

    def write(folder: Path) -> None:
        lines = [json.dumps({"text": text, "label": label}, ensure_ascii=False) for text, label in pool]
        (folder / POOL_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")

    return write


# ---------------------------------------------------------------- predictor


class ClassifierPredictor:
    """Predictions of a causal-LM classification artifact, same interface as the encoder Predictor."""

    def __init__(self, clf: LLMClassifier, meta: dict[str, Any], batch_size: int, backend: str) -> None:
        self.clf, self.meta, self.batch_size, self.backend = clf, meta, batch_size, backend
        self.task = get_task("classification")
        self.labels: list[str] = meta["labels"]
        self.max_length: int = meta["max_length"]

    @classmethod
    def load(cls, model_dir: str | Path, batch_size: int = 32, backend: str = "auto") -> ClassifierPredictor:
        """``backend``: auto / torch (fp32) or torch-bf16 (bf16 autocast); there is no ONNX export of an LLM."""
        if backend not in ("auto", "torch", "torch-bf16"):
            raise UserError(f"backend {backend} is not available for a causal LM", hint="use torch or torch-bf16")
        model_dir = Path(model_dir)
        meta = read_meta(model_dir)
        model, tokenizer = load_llm_artifact(model_dir, meta)
        pool = None
        if (model_dir / POOL_FILE).is_file():
            lines = (model_dir / POOL_FILE).read_text(encoding="utf-8").splitlines()
            pool = [(r["text"], r["label"]) for r in map(json.loads, filter(None, lines))]
        autocast = backend == "torch-bf16"
        clf = LLMClassifier(model, tokenizer, meta["labels"], meta["state"], pool, meta["max_length"], autocast)
        return cls(clf, meta, batch_size, "torch-bf16" if autocast else "torch")

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        from ..predict import predict_texts

        return predict_texts(self, texts, top_k)

    def predict_examples(self, examples: list[TextExample]) -> list[dict[str, float]]:
        return self.clf.probabilities([ex.text for ex in examples])

    def evaluate(self, examples: list[TextExample]) -> dict[str, Any]:
        return self.task.metrics(examples, self.predict_examples(examples), self.labels)


def load_llm_artifact(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """The model of an llm artifact: the base model (prompting, sha256 checked), base + adapter, or the
    saved full weights; and the artifact's tokenizer."""
    import transformers

    from .model import prepare_tokenizer

    weights = (model_dir / "model.safetensors").is_file() or any(model_dir.glob("model-*.safetensors"))
    attention = meta.get("state", {}).get("attention", "sdpa")
    if is_adapter_dir(model_dir) or not weights:
        lm = load_causal_lm(_base_model_path(model_dir, meta), attention=attention)
        model = lm.model
        if is_adapter_dir(model_dir):
            from peft import PeftModel

            with quiet_transformers():
                model = PeftModel.from_pretrained(model, model_dir, is_trainable=False)
    else:
        model = load_causal_lm(str(model_dir), attention=attention).model
    tokenizer = prepare_tokenizer(transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True))
    return model.eval(), tokenizer
