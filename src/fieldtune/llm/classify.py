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

Zero-shot and in-context scores can be calibrated: each label's log-score loses a log prior, the
mean label distribution either over real training texts (``batch``, Zhou et al. 2024) or over
content-free inputs ("N/A", "", "[MASK]"; ``content_free``, Zhao et al. 2021). Which one (or ``none``)
is chosen on dev by :mod:`fieldtune.llm.calibration` and saved with the prior in the prompt state.
Predictions are the softmax of the (calibrated) scores over the labels.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..artifacts import is_peft_model
from ..config import RunConfig
from ..data.chat import Message, encode_turn, prompt_ids
from ..errors import UserError
from ..methods import get_method
from ..models.embedder import load_sentence_encoder
from ..training import setup

DEFAULT_INSTRUCTION = "Classify the text into one of these categories: {labels}."
# Many labels: no list. smollm2 zero-shot on BANKING77 (77 intents, a ~450-token list): 0.221 test accuracy
# with the list, 0.399 without it (bench/adaptation.py, rows zero_shot_llm / zero_shot_llm_nolist); on
# PhraseBank's 3 labels the list is the default that scores 0.607. The cut between is a judgement.
MANY_LABELS = 20
MANY_LABELS_INSTRUCTION = "Classify the text."
CONTENT_FREE = ("N/A", "", "[MASK]")
POOL_FILE = "examples.jsonl"  # in_context: the training examples the shots are chosen from
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
    default = DEFAULT_INSTRUCTION if len(labels) <= MANY_LABELS else MANY_LABELS_INSTRUCTION
    instruction = (cfg.prompt.instruction or default).replace("{labels}", ", ".join(words))
    calibrate = "none" if get_method(cfg.method).trains else cfg.prompt.calibrate  # trained: learnt the balance
    if calibrate == "batch" and cfg.method == "in_context":
        raise UserError(
            "prompt.calibrate=batch is not available for in_context (the prior depends on each input's shots)",
            hint="use auto, content_free or none",
        )
    return {
        "label_words": words,
        "instruction": instruction,
        "template": cfg.prompt.template,
        "calibrate": calibrate,
        "normalise": NORMALISE,
        "shots_per_label": cfg.prompt.shots_per_label,
        "max_shots": cfg.prompt.max_shots if cfg.method == "in_context" else 0,
        "attention": setup.attention(cfg),  # the Predictor loads the model with the same kernel: same numbers
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
        self.pool, self.per_label, self.max_shots = pool, shots_per_label, max_shots
        self.encoder = load_sentence_encoder("minilm")
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
        # the training labels' log-frequencies, added back after calibration when dev chose so (label shift)
        self.target = np.array(state["label_prior"]) if state.get("label_prior") is not None else None

    def log_scores(self, texts: list[str], shots: list[list[tuple[str, str]]] | None = None) -> np.ndarray:
        """``(texts, labels)`` log-scores, calibrated as the state says."""
        shots = shots if shots is not None else self.select_shots(texts)
        return self.calibrated(self.log_scores_raw(texts, shots), shots)

    def calibrated(
        self,
        scores: np.ndarray,
        shots: list[list[tuple[str, str]]],
        mode: str | None = None,
        prior: Any = None,
        target: Any = None,
    ) -> np.ndarray:
        """Raw ``scores`` less the log prior of ``mode`` (default: the state's) plus the ``target`` label
        log-prior (default: the state's), a shift: nothing is rescored except in-context content-free
        priors, which depend on each input's shots."""
        target = self.target if mode is None else target
        shifted = self._less_prior(scores, shots, mode or calibration_mode(self.state), prior)
        return shifted if target is None else shifted + np.asarray(target)[None]

    def _less_prior(self, scores: np.ndarray, shots: list[list[tuple[str, str]]], mode: str, prior: Any) -> np.ndarray:
        if mode == "none":
            return scores
        if mode == "content_free" and self.selector is not None:
            return np.stack([row - self.log_prior(s) for row, s in zip(scores, shots)])
        prior = self.prior if prior is None else prior
        if prior is None and mode == "content_free":
            prior = self.log_prior()
        if prior is None:
            raise ValueError(f"calibration {mode} needs a prior in the prompt state")
        return scores - np.asarray(prior)[None]

    def log_prior(self, shots: Sequence[tuple[str, str]] = ()) -> np.ndarray:
        """log of the mean label distribution on the content-free inputs (computed once without shots)."""
        if not shots and self.prior is not None and calibration_mode(self.state) == "content_free":
            return self.prior
        free = self.log_scores_raw(list(CONTENT_FREE), [list(shots)] * len(CONTENT_FREE))
        prior = log_mean_probability(free)
        if not shots and calibration_mode(self.state) == "content_free":
            self.prior = prior
        return prior

    def log_scores_raw(self, texts: list[str], shots: list[list[tuple[str, str]]] | None = None) -> np.ndarray:
        """``(texts, labels)`` uncalibrated log-scores (shots chosen here when not given)."""
        shots = shots if shots is not None else self.select_shots(texts)
        prompts = [prompt_ids(self.tokenizer, conversation(self.state, t, s)) for t, s in zip(texts, shots)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            return self.scorer.score(prompts, self.state["normalise"])

    def select_shots(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        if self.selector is None:
            return [[] for _ in texts]
        words = dict(zip(self.labels, self.words))
        return [[(t, words[label]) for t, label in s] for s in self.selector.select(texts)]

    def probabilities(self, texts: list[str]) -> list[dict[str, float]]:
        """Per text ``{label: probability}``, like the encoder classification task's ``decode``."""
        return self.as_dicts(self.log_scores(texts))

    def as_dicts(self, scores: np.ndarray, temperature: float | None = None) -> list[dict[str, float]]:
        """``{label: probability}`` per row of (calibrated) log-scores, softened or sharpened by the
        dev-fitted temperature (the state's ``temperature_scaling``; never changes the top label)."""
        t = self.state.get("temperature_scaling", 1.0) if temperature is None else temperature
        return [dict(zip(self.labels, row.tolist())) for row in _softmax(np.asarray(scores) / t)]


def calibration_mode(state: dict[str, Any]) -> str:
    """The state's calibration: none / batch / content_free (artifacts before the choice saved true / false)."""
    mode = state.get("calibrate", False)
    if isinstance(mode, bool):
        return "content_free" if mode else "none"
    return mode


def log_mean_probability(scores: np.ndarray) -> np.ndarray:
    """log of the mean over rows of softmax(``scores``): a label prior from a batch of inputs."""
    return np.log(_softmax(scores).mean(axis=0))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
