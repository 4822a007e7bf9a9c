"""The typed run config: YAML file + dotted ``key=value`` overrides, validated by pydantic.

Every field has a default and a description (``fieldtune train --help-config`` prints them);
unknown keys and wrong types are errors that name the field and the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the data is and how to read it."""

    train: Path = Field(description="Training file: .csv/.tsv/.jsonl (classification), CoNLL .txt or .jsonl (ner).")
    dev: Path | None = Field(None, description="Dev file for model selection; if absent, split from train.")
    test: Path | None = Field(None, description="Test file, evaluated once with the best model.")
    format: Literal["auto", "csv", "tsv", "jsonl", "conll"] = Field(
        "auto", description="File format; 'auto' decides by extension (.csv .tsv .jsonl .json; else CoNLL)."
    )
    text_column: str | None = Field(
        None,
        description="Text column (classification). Default: the first of text, sentence, content, query, utterance.",
    )
    label_column: str | None = Field(
        None,
        description="Label column (classification). Default: first of label, labels, category, intent, class, tags.",
    )
    label_separator: str = Field("|", description="Multi-label: separator when labels are one delimited string.")
    encoding: str = Field(
        "utf-8",
        description="Text encoding of the data files (all formats), e.g. gb18030 for Chinese files saved as GBK / "
        "GB2312 / GB18030, big5, latin-1. A byte-order mark (UTF-8, UTF-16) overrides it.",
    )
    dev_fraction: float = Field(
        0.1,
        gt=0,
        lt=0.5,
        description="Fraction of train held out as dev when no dev file is given (stratified, seeded).",
    )
    limit: int | None = Field(None, gt=0, description="Use only the first N training examples (quick experiments).")
    shots: int | None = Field(
        None,
        ge=1,
        description="Few-shot: train on k examples per label, sampled reproducibly (train.seed) from the training "
        "examples left after any dev split (null: all of them).",
    )


class TrainConfig(_Strict):
    """How the optimisation runs. Comments say what each knob does and what to try."""

    epochs: int | None = Field(
        None,
        ge=1,
        description="Passes over the training data; also the learning-rate schedule's length. Null: the automatic "
        "budget — a plan of enough epochs for train.min_steps optimizer steps (at least 3), continued while dev "
        "improves up to 3x the plan (at most train.max_epochs), ended by early stopping, within "
        "train.max_minutes; the learning rate decays to 0 at the plan's end and restarts at its peak for "
        "the extension. Set: exactly this many, one decay (no early stopping unless train.patience is set).",
    )
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (the schedule's length when set)."
    )
    min_steps: int = Field(
        200,
        ge=1,
        description="Automatic budget: at least this many optimizer steps (10 per label when that is more; 7 at "
        "the many-class rate, see train.lr), and no early stop before them. A few hundred examples give a few "
        "optimizer steps per epoch: 3 epochs of them underfit (bench/defaults.py).",
    )
    max_epochs: int = Field(40, ge=1, description="Automatic budget: at most this many epochs, however small the data.")
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="Stop training after this many minutes (the best weights so far are kept). Null: 60 for the "
        "automatic budget, none when train.epochs or train.max_steps is set.",
    )
    lr: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate. Null: the method's default for the model kind (the methods table below: "
        "full / freeze 1e-4 on an encoder, 2e-5 on a decoder; head 1e-3; lora 2e-3 / 5e-4; ia3 3e-3; prefix / "
        "prompt_tuning 1e-2), measured on small and large data in bench/defaults.py; 3e-4 at least for "
        "classification over more than 20 classes with few examples each, where 7 steps a label are more than 3 "
        "epochs (BANKING77's 77 intents, 10 per intent: 81.1 in 109 s vs 80.7 in 172 s at 1e-4).",
    )
    head_lr: float | None = Field(
        None,
        gt=0,
        description="Learning rate of the new head (the weights the pretrained checkpoint lacks: the classifier). "
        "Null: for ner 1e-3, a linear probe's rate, or the method's rate when that is higher; the body's rate for "
        "the other tasks; a set train.lr applies to the head too. At the body's 1e-4 a fresh tag classifier "
        "learned Weibo NER's rare tags late: test F1 0.446 -> 0.518; on 75 PhraseBank headlines a classifier at "
        "1e-3 fell 86.5 -> 72.2 (bench/RESULTS.md). A re-fine-tune of a saved model has no new weights.",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        description="Examples per optimizer step (per process), before accumulation. Null: 16 for an encoder "
        "(32 from 5,000 training examples on: fewer, cheaper steps once there are plenty), 8 for a decoder.",
    )
    grad_accum: int = Field(
        1, ge=1, description="Accumulate gradients over N batches: effective batch = batch_size * N * processes."
    )
    optimizer: Literal["adamw", "sgd"] = Field(
        "adamw", description="AdamW (no decay on bias/LayerNorm) or SGD with momentum 0.9."
    )
    weight_decay: float = Field(0.01, ge=0, description="Decoupled weight decay for AdamW (L2 for SGD).")
    schedule: Literal["linear", "cosine", "constant"] = Field(
        "linear",
        description="Learning-rate decay after warm-up (the automatic budget: two decays, to the plan's end and, "
        "restarted at the peak, to the horizon).",
    )
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="Fraction of steps (of the plan's, for the automatic budget) spent warming up."
    )
    grad_clip: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm to this value (null: no clipping)."
    )
    dropout: float | None = Field(
        None, ge=0, lt=1, description="Override the model's hidden dropout (null: keep the pretrained value)."
    )
    attention_dropout: float = Field(
        0.0, ge=0, lt=1, description="Attention-probability dropout; 0 is faster and rarely hurts fine-tuning."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16 autocast; 'auto' uses it where the CPU/GPU has native bf16 matmul (AMX, Ampere+)."
    )
    attention: Literal["auto", "eager", "sdpa"] = Field(
        "auto",
        description="Attention kernel; 'auto' = eager on CPU (with bf16 autocast ~1.7x faster than sdpa on "
        "short sentences), sdpa on GPU.",
    )
    max_length: int | None = Field(
        None,
        ge=8,
        description="Max word-pieces per window (null: the model's limit). NER splits longer sentences into windows.",
    )
    group_by_length: bool = Field(
        True, description="Batch examples of similar length together: far less padding (not used when packing)."
    )
    packing: bool = Field(
        True,
        description="Token tasks (ner) on a BERT-style encoder: random batches, each batch's sentences packed side "
        "by side in few rows with a block-diagonal attention mask (exact, almost no padding).",
    )
    sparse_embeddings: bool = Field(
        False,
        description="Train the word-embedding table on the rows each batch uses (sparse gradients, a lazy AdamW "
        "step; one process). multilingual-e5-small's table is 96M of its 118M weights: a step 1.6-1.8x faster; "
        "full Weibo NER F1 0.361 vs 0.367 dense at 1.35x the tokens/s, 800 Resume sentences dev F1 0.690 vs "
        "0.716: off by default.",
    )
    eval_every: int | None = Field(
        None,
        ge=1,
        description="Evaluate on dev every N optimizer steps. Null: once per epoch, but at most ~25 times in a run "
        "(tiny data: every few epochs).",
    )
    patience: int | None = Field(
        None,
        ge=0,
        description="Stop after N evaluations without dev improvement (the best weights are restored). Null: 3 for "
        "the automatic budget (never before train.min_steps; 2 past the plan when the plan's last evaluation "
        "gained < 2%: converged), none when train.epochs or train.max_steps is set (they mean exactly that); "
        "0: never stop early. A set value holds past the plan too.",
    )
    metric: str | None = Field(
        None, description="Dev metric to select on (default: f1 for ner, accuracy / micro_f1 for classification)."
    )
    seed: int = Field(42, description="Seeds data order, splits, head init and dropout: same seed => same metrics.")
    eval_batch_size: int = Field(64, ge=1, description="Examples per forward pass at evaluation.")
    threads: int | None = Field(
        None, ge=1, description="CPU threads for torch (null: all cores of this process's share)."
    )
    checkpoint: bool = Field(True, description="Save a resumable checkpoint at each evaluation (output/checkpoints).")


class PeftConfig(_Strict):
    """Parameter-efficient methods (method: lora | ia3 | prefix | prompt_tuning), through the peft library."""

    r: int = Field(8, ge=1, description="LoRA rank: size of the low-rank update per adapted weight; try 4..64.")
    alpha: float = Field(
        16, gt=0, description="LoRA scaling numerator: the update is scaled by alpha / r (2*r is a common choice)."
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the LoRA branch's input (LoRA only).")
    target_modules: list[str] | None = Field(
        None,
        min_length=1,
        description="LoRA / IA3: module names to adapt, matched on their name's end (null: peft's default for "
        "the architecture, e.g. BERT: query, value for LoRA; key, value, output.dense for IA3).",
    )
    virtual_tokens: int = Field(
        20, ge=1, description="prefix / prompt_tuning: number of learned virtual tokens added to every input."
    )


class PromptConfig(_Strict):
    """How a causal LM is prompted (zero_shot, in_context, and classification as generation), and the label
    descriptions an encoder embeds for zero_shot."""

    instruction: str | None = Field(
        None,
        description="The task instruction; {labels} is replaced by the label words. Null: 'Classify the text into "
        "one of these categories: {labels}.' for up to 20 labels, 'Classify the text.' above (a 135M model "
        "reading a list of 77 intents: BANKING77 zero-shot 0.221; without the list 0.399).",
    )
    template: str = Field(
        "{instruction}\n\nText: {text}",
        description="The user message for one input: {instruction} and {text}. The model's chat template wraps it "
        "(when it has one) and the label words are the assistant's answer.",
    )
    label_words: dict[str, str] | None = Field(
        None,
        description="What the model says for each label (verbaliser), e.g. {pos: positive}. Null: the label name "
        "with _ and - as spaces.",
    )
    label_descriptions: dict[str, str] | None = Field(
        None, description="Encoder zero_shot: a sentence per label to embed (null: the label words)."
    )
    calibrate: Literal["auto", "batch", "content_free", "none"] = Field(
        "auto",
        description="LLM zero-shot / in-context scoring: divide out each label's prior. batch: the prior is the "
        "mean label distribution over (up to 200 of) the training texts (batch calibration); content_free: over "
        "'N/A', '' and '[MASK]' (contextual calibration, Zhao et al. 2021; unreliable for small models: it took "
        "smollm2 from 0.61 to 0.36 on financial headlines); none: raw scores. auto: dev is scored once and the "
        "best of none / batch / content_free, each also with the training labels' frequencies added back "
        "(+label_prior, for skewed label sets), on the dev metric is kept (ties: the simplest, in that order), so "
        "never below uncalibrated on dev; with no dev, batch. The choice and the priors are saved in the artifact. "
        "Old configs: "
        "true means content_free, false none. Trained methods are never calibrated. in_context: none or "
        "content_free only (its prior depends on each input's shots).",
    )

    @model_validator(mode="before")
    @classmethod
    def _calibrate_bool(cls, raw: Any) -> Any:
        """``calibrate: true / false`` (configs before the choice existed) mean content_free / none."""
        if isinstance(raw, dict) and isinstance(raw.get("calibrate"), bool):
            raw = {**raw, "calibrate": "content_free" if raw["calibrate"] else "none"}
        return raw

    shots_per_label: int = Field(
        1, ge=1, description="in_context: at most k training examples per label in the prompt."
    )
    max_shots: int = Field(
        8, ge=1, description="in_context: at most this many examples in a prompt, the most similar to the input first."
    )
    max_new_tokens: int = Field(128, ge=1, description="Generation (causal_lm, NER by prompting): new tokens at most.")


class SetFitConfig(_Strict):
    """method: setfit — contrastive fine-tuning of a sentence encoder on pairs, then a logistic-regression head."""

    iterations: int = Field(
        20, ge=1, description="Contrastive pairs generated per training example (SetFit's num_iterations)."
    )
    body_epochs: int = Field(
        1,
        ge=0,
        description="Epochs of contrastive fine-tuning of the encoder; 0: none, the logistic regression learns "
        "on the model's own sentence embeddings (the artifact then references the base model).",
    )
    body_lr: float = Field(2e-5, gt=0, description="Learning rate of the encoder during contrastive fine-tuning.")
    batch_size: int = Field(16, ge=1, description="Sentence pairs per step of contrastive fine-tuning.")


class AbstainConfig(_Strict):
    """Abstention and conformal prediction sets (single-label classification with the encoder recipe),
    fitted on dev after temperature scaling and saved with the model. Off by default."""

    target_precision: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Abstain below the confidence threshold that keeps the largest share of dev with at "
        "least this precision, e.g. 0.95; abstained predictions are {label: null, abstained: true, score}.",
    )
    target_coverage: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Instead of target_precision: answer this share of dev (the most confident), abstain on the rest.",
    )
    conformal_alpha: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Split-conformal prediction sets: each prediction gets a prediction_set holding the true "
        "label with probability >= 1 - alpha (e.g. 0.1 for 90%), calibrated on dev.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> AbstainConfig:
        if self.target_precision is not None and self.target_coverage is not None:
            raise ValueError("abstain: give target_precision or target_coverage, not both")
        return self

    @property
    def threshold(self) -> bool:
        """Is an abstention threshold asked for?"""
        return self.target_precision is not None or self.target_coverage is not None

    @property
    def enabled(self) -> bool:
        """Is anything asked for (a threshold or conformal sets)?"""
        return self.threshold or self.conformal_alpha is not None


class RunConfig(_Strict):
    """One fine-tuning run."""

    task: Literal["classification", "multilabel", "ner", "causal_lm"] = Field(
        description="What to predict; causal_lm: instruction tuning of a decoder on prompt/response pairs."
    )
    model: str = Field("minilm", description="Bundled alias (see `fieldtune models`), local HF directory, or hub id.")
    method: str = Field(
        "full",
        description="How the model adapts: full, freeze, head, lora, ia3, prefix, prompt_tuning, zero_shot, "
        "in_context, setfit (each method's tasks and settings: the methods table below, from the registry in "
        "fieldtune.methods). Support for the task and model is checked before any data is read.",
    )
    freeze_layers: int = Field(
        2, ge=0, description="method=freeze: how many bottom transformer layers to freeze (embeddings always)."
    )
    crf: bool = Field(
        False,
        description="task=ner with an encoder: a CRF layer over the tag logits (learned scores for each pair of "
        "neighbouring tags, trained on each sentence's likelihood; pytorch-crf). Batches hold whole sentences "
        '(train.packing is not used). What it is worth: README, "Data".',
    )
    data: DataConfig
    output: Path = Field(
        Path("runs/run"), description="Run directory: model/, metrics.json, report.md, plots, log.jsonl."
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    peft: PeftConfig = Field(default_factory=PeftConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    setfit: SetFitConfig = Field(default_factory=SetFitConfig)
    abstain: AbstainConfig = Field(default_factory=AbstainConfig)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.data.dev is None and self.data.train == self.data.test:
            raise ValueError("data.test is the same file as data.train; give a held-out test file")
        if self.crf and self.task != "ner":
            raise ValueError("crf: a CRF layer tags words; it is for task ner")
        if self.abstain.enabled and self.task != "classification":
            raise ValueError("abstain: thresholds and conformal sets are for task classification only")
        return self

    def selection_metric(self) -> str:
        """The dev metric early stopping and model selection use."""
        if self.train.metric:
            return self.train.metric
        defaults = {"ner": "f1", "classification": "accuracy", "multilabel": "micro_f1", "causal_lm": "perplexity"}
        return defaults[self.task]


def load_config(source: str | Path | dict[str, Any] | RunConfig, overrides: list[str] = ()) -> RunConfig:
    """Build a validated :class:`RunConfig`.

    Args:
        source: A YAML file path, a plain dict or an existing config.
        overrides: Dotted ``key=value`` strings applied on top, values parsed as YAML
            (``train.epochs=3``, ``data.dev=null``).

    Raises:
        UserError: Missing file, bad YAML, unknown keys or values of the wrong type.
    """
    base_dir = Path(".")
    if isinstance(source, RunConfig):
        raw = source.model_dump(mode="json", exclude_unset=True)
    elif isinstance(source, dict):
        raw = dict(source)
    else:
        path = Path(source)
        raw = read_yaml(path)
        base_dir = path.parent
    for item in overrides:
        _apply_override(raw, item)
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(
            describe_error(err, source), hint="see `fieldtune train --help-config` for every field"
        ) from None
    return _resolve_paths(config, base_dir)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; a missing file, bad YAML or a non-mapping is a :class:`UserError` with the line."""
    if not path.is_file():
        raise UserError("config file not found", path=path, hint="pass the path of a run.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        raise UserError(
            f"invalid YAML: {getattr(err, 'problem', err)}", path=path, line=None if line is None else line + 1
        ) from None
    if not isinstance(raw, dict):
        raise UserError("the config must be a YAML mapping (key: value lines)", path=path)
    return raw


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UserError(f"override {item!r} is not key=value", hint="e.g. train.epochs=3")
    node = raw
    *parents, leaf = key.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"override {item!r}: {part!r} is not a section")
    node[leaf] = yaml.safe_load(value) if value.strip() else None


def describe_error(err: ValidationError, source: object) -> str:
    """One line per invalid field (dotted key, message, the value given), for a :class:`UserError`."""
    where = f" in {source}" if isinstance(source, (str, Path)) else ""
    lines = [f"invalid config{where}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {field}: {msg} (got {e.get('input')!r})"[:300])
    return "\n".join(lines)


def _resolve_paths(config: RunConfig, base_dir: Path) -> RunConfig:
    """Data paths in a YAML file are relative to that file (like spaCy / torchtune configs)."""
    data = config.data
    for name in ("train", "dev", "test"):
        value = getattr(data, name)
        if value is not None and not value.is_absolute() and not value.exists():
            candidate = base_dir / value
            if candidate.exists():
                setattr(data, name, candidate)
    return config


def describe_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, description) for every config field, for `--help-config`."""
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += describe_fields(ann, f"{prefix}{name}.")
            continue
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        rows.append((f"{prefix}{name}", default, field.description or ""))
    return rows
