"""Recipe ``llm_ner``: NER by prompting a decoder (zero_shot, or in_context with a few training
sentences as examples); no weights change. The artifact is the prompt, the tokenizer and a reference
to the base model (sha256 checked)."""

from __future__ import annotations

import time

from ..artifacts import save_artifact
from ..config import RunConfig
from ..llm.ner import LLMTagger, build_prompt, pick_examples, tag_sentences
from ..methods import count_parameters
from ..models.causal_lm import load_causal_lm
from ..runs import RunRecord, RunResult, TrainStats, artifact_meta, evaluate_splits, start_output, write_run
from ..training import setup
from .common import read_data
from .registry import Recipe, register_recipe

MAX_SHOTS = 3  # in_context: example sentences in the prompt (each answer is a JSON list: long prompts)
GENERATION_BATCH = 16  # generation: small batches pad less


def run(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """Tag dev and test by prompting, score with seqeval, write the run folder."""
    started = time.perf_counter()
    task, splits, labels = read_data(cfg)
    types = sorted(task.gold_names(labels))
    shots = min(cfg.prompt.max_shots, MAX_SHOTS) if cfg.method == "in_context" else 0
    prompt = build_prompt(types, pick_examples(splits.train, types, shots) if shots else [], cfg.prompt.label_words)
    if cfg.prompt.instruction:
        prompt["instruction"] = cfg.prompt.instruction.replace("{labels}", ", ".join(types))
    setup.set_threads(cfg)
    lm = load_causal_lm(cfg.model)
    start_output(cfg)
    batch = min(cfg.train.eval_batch_size, GENERATION_BATCH)
    tagger = LLMTagger(lm.model, lm.tokenizer, prompt, cfg.prompt.max_new_tokens, batch)
    counts: dict[str, dict[str, int]] = {}  # per split: what went wrong, reported with its metrics

    def predict(split: str, examples: list) -> list:
        preds, counts[split] = tag_sentences(tagger, examples)
        return preds

    evaluation = evaluate_splits(predict, task, splits, labels, extra=lambda split, *_: counts[split])
    stats = TrainStats(total_params=count_parameters(lm.model)["total"])
    record = RunRecord(cfg, splits, labels, evaluation, stats, [], started)
    state = {"prompt": prompt, "max_new_tokens": cfg.prompt.max_new_tokens}
    max_length = lm.model.config.max_position_embeddings
    meta = artifact_meta(record, state, max_length, kind="llm", base_fingerprint=True)
    return write_run(
        record, task, lambda target: save_artifact(None, lm.tokenizer, meta, target, licences_from=lm.path)
    )


register_recipe(Recipe("llm_ner", run))
