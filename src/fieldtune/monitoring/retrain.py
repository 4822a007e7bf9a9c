"""Retraining with champion/challenger: build a challenger from the champion's own config and data
plus accepted feedback, evaluate both on the same frozen holdouts, promote only a clear winner.

The steps, each safe to kill and rerun:
1. Feedback rows get a frozen ``train`` / ``holdout`` split the first time a retrain sees them
   (a hash of the row id: the same row always lands on the same side).
2. The challenger's data is written under ``runs/retrain/<champion>-<fingerprint>/data``: a rehearsal
   of the champion's training data (stratified, so every old class stays represented) plus the
   training feedback; dev is the champion's dev plus a stratified tenth of the training feedback;
   the test set is the champion's frozen holdout.
3. It trains there (a rerun of the same data resumes from the last checkpoint) and is registered
   as a challenger only once its artifact is complete.
4. Champion and challenger are scored on the frozen holdout and on the feedback holdout. The
   challenger is promoted only if its mean score beats the champion's by ``margin`` and no class
   loses more than ``tolerance`` F1 on the frozen holdout (beyond chance: a paired exact McNemar test
   on that class's examples, p < ``significance``); otherwise it is rejected. Either way the
   decision and all its numbers go to the registry's decision log and to ``decision.json``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import find_model_dir, read_meta
from ..config import DataConfig
from ..data.examples import Example, TaggedSentence, TextExample, labels_of
from ..data.readers import read_examples
from ..data.splits import stratified_split
from ..errors import UserError
from ..predict import load_predictor
from ..recipes import train as train_run
from ..store import Store
from ..store.registry import promote, register_model, verify
from ..tasks import Task, get_task
from ..utils.atomic import atomic_open
from ..utils.hashing import file_sha256


@dataclass
class Policy:
    """When a challenger wins, and what it trains on (all documented in the README)."""

    margin: float = 0.005  # the mean holdout score must rise by at least this much
    tolerance: float = 0.05  # no class (with >= min_support holdout examples) may lose more F1 than this...
    significance: float = 0.05  # ...where a paired exact test says the loss is not chance (p below this)
    min_support: int = 5
    rehearsal: float = 1.0  # share of the champion's training data replayed, per class
    min_per_class: int = 8  # ...but at least this many examples of each old class (or all it has)
    feedback_weight: int = 2  # each training correction is seen this many times per epoch
    holdout: float = 0.2  # share of corrections frozen as the recent-feedback holdout
    min_feedback: int = 10  # fewer new corrections than this: nothing to retrain on
    seed: int = 42
    sources: tuple[str, ...] = ()  # only corrections from these sources (e.g. "watch"); empty: all


@dataclass
class Outcome:
    """What a retrain decided, with the numbers behind it."""

    action: str  # promote | reject | skip
    reason: str
    champion: str
    challenger: str | None = None
    output: Path | None = None
    scores: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output"] = str(self.output) if self.output else None
        return d


def retrain(
    store: Store,
    policy: Policy | None = None,
    *,
    root: Path = Path("runs/retrain"),
    overrides: list[str] = (),
    progress: bool = True,
) -> Outcome:
    """One champion/challenger round (see the module docstring). Holds a lock: one retrain at a time."""
    policy = policy or Policy()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".retrain.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError("another retrain is running", path=root, hint="wait for it to finish") from None
        return _retrain(store, policy, root, list(overrides), progress)


def _retrain(store: Store, policy: Policy, root: Path, overrides: list[str], progress: bool) -> Outcome:
    champion = store.champion()
    if champion is None:
        raise UserError("the registry has no champion", hint="fieldtune registry add RUN_DIR --promote")
    verify(champion, load=False)
    meta = read_meta(find_model_dir(champion.path))
    task, cfg = meta["task"], meta["config"]
    t = get_task(task)
    data_cfg = DataConfig(**cfg["data"])

    feedback = _split_feedback(store, task, policy)
    seen = _feedback_seen_by(store, champion.version)
    new = [f for f in feedback["all"] if f.id > seen]
    if len(new) < policy.min_feedback:
        reason = f"{len(new)} new corrections since {champion.version} (< min_feedback {policy.min_feedback})"
        return Outcome("skip", reason, champion.version)

    original = _read(data_cfg, "train", task)
    if data_cfg.limit:
        original = original[: data_cfg.limit]
    frozen_path = data_cfg.test or data_cfg.dev
    if frozen_path is None:
        raise UserError(
            f"champion {champion.version} was trained without a dev or test file: there is no frozen holdout",
            hint="retrain needs data.test (or data.dev) in the champion's run.yaml",
        )
    frozen_split = "test" if data_cfg.test else "dev"
    _check_frozen(frozen_path, (meta.get("data") or {}).get(frozen_split))
    frozen = _read(data_cfg, frozen_split, task)
    dev = _read(data_cfg, "dev", task) if data_cfg.dev else None
    train_fb = [t.correction_example(f.text, f.label) for f in feedback["train"]]
    holdout_fb = [t.correction_example(f.text, f.label) for f in feedback["holdout"]]
    if dev is not None:  # model selection must see the new data too (e.g. a new intent): a tenth of it
        train_fb, dev_fb = stratified_split(train_fb, 0.1, policy.seed)
        dev = dev + dev_fb
    train = _rehearse(original, policy) + train_fb * policy.feedback_weight
    random.Random(policy.seed).shuffle(train)

    fingerprint = _fingerprint(train, dev, frozen, cfg, overrides)
    out = root / f"{champion.version}-{fingerprint[:10]}"
    challenger_cfg = _challenger_config(cfg, out, t, train, dev, frozen)
    challenger_dir = _train(challenger_cfg, out, overrides, progress)
    row, _ = register_model(store, challenger_dir, parent=champion.version, reason="retrained challenger")
    if row.stage in ("champion", "rejected", "archived"):  # a rerun after the decision was made
        return Outcome("skip", f"challenger {row.version} was already decided ({row.stage})", champion.version)

    scores = _score(champion.path, challenger_dir, t, frozen, holdout_fb)
    scores.update(
        feedback_max_id=max(f.id for f in feedback["all"]),
        feedback_train=len(train_fb),
        feedback_holdout=len(holdout_fb),
        rehearsal=len(train) - len(train_fb) * policy.feedback_weight,
        policy=asdict(policy),
    )
    outcome = _decide(store, t, champion.version, row.version, scores, policy)
    outcome.output = out
    (out / "decision.json").write_text(json.dumps(outcome.as_dict(), indent=2, default=str), encoding="utf-8")
    return outcome


def _read(data_cfg: DataConfig, split: str, task: str) -> list[Example]:
    path = getattr(data_cfg, split)
    if not Path(path).is_file():
        raise UserError(
            f"the champion's {split} file is gone",
            path=path,
            hint="retraining re-reads the champion's data; run from the folder it was trained in, or restore the file",
        )
    return read_examples(path, task, data_cfg).examples


def _check_frozen(path: Path, recorded: dict[str, Any] | None) -> None:
    """The holdout both models are judged on must be the very file the champion was tested on."""
    if not recorded or not Path(path).is_file():
        return
    if file_sha256(path) != recorded.get("sha256"):
        raise UserError(
            "the frozen holdout changed since the champion was trained (sha256 differs)",
            path=path,
            hint="restore the original file: champion and challenger must be compared on the same data",
        )


def _split_feedback(store: Store, task: str, policy: Policy) -> dict[str, list]:
    """Freeze a split for new rows, then return the usable rows by split (rows without text, i.e.
    logged as hashes only, can't be trained on; rows from other sources than ``policy.sources``, e.g.
    a news dashboard's topic corrections next to its sentiment ones, belong to another model)."""

    def usable() -> list:
        return [f for f in store.feedback() if f.text and (not policy.sources or f.source in policy.sources)]

    rows = usable()
    fresh = {f.id: _side(f.id, policy) for f in rows if f.split is None}
    if fresh:
        store.assign_splits(fresh)
        rows = usable()
    return {
        "all": rows,
        "train": [f for f in rows if f.split == "train"],
        "holdout": [f for f in rows if f.split == "holdout"],
    }


def _side(feedback_id: int, policy: Policy) -> str:
    h = int(hashlib.sha256(f"{policy.seed}:{feedback_id}".encode()).hexdigest()[:8], 16)
    return "holdout" if h % 1000 < policy.holdout * 1000 else "train"


def _feedback_seen_by(store: Store, version: str) -> int:
    """The newest feedback id the champion's lineage was already retrained on (0 if none)."""
    seen = 0
    for d in store.decisions():
        if d.action in ("promote", "reject") and isinstance(d.details, dict):
            seen = max(seen, int(d.details.get("feedback_max_id", 0) or 0))
    return seen


def _rehearse(examples: list[Example], policy: Policy) -> list[Example]:
    """A stratified share of the old data: ``rehearsal`` of each class, at least ``min_per_class``."""
    if policy.rehearsal >= 1:
        return list(examples)
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        labels = labels_of(ex)
        groups[min(labels) if labels else "<none>"].append(ex)
    rng, kept = random.Random(policy.seed), []
    for key in sorted(groups):
        items = groups[key][:]
        rng.shuffle(items)
        kept += items[: max(round(len(items) * policy.rehearsal), min(policy.min_per_class, len(items)))]
    return kept


def _fingerprint(train, dev, frozen, cfg, overrides) -> str:
    h = hashlib.sha256()
    for part in (train, dev or [], frozen):
        for ex in part:
            h.update(repr(_fields(ex)).encode())
        h.update(b"|")
    h.update(json.dumps({"config": cfg, "overrides": overrides}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _fields(ex: Example) -> tuple:
    return (ex.text, ex.labels) if isinstance(ex, TextExample) else (ex.tokens, ex.tags)


def _write_jsonl(path: Path, examples: list[Example], task: Task) -> Path:
    with atomic_open(path) as f:
        for ex in examples:
            f.write(json.dumps(task.training_row(ex), ensure_ascii=False) + "\n")
    return path.resolve()


def _challenger_config(cfg, out: Path, task: Task, train, dev, frozen) -> dict[str, Any]:
    """The champion's config with the challenger's data (all re-written as UTF-8 JSONL)."""
    data = out / "data"
    new = json.loads(json.dumps(cfg))
    new["output"] = str(out.resolve())
    d = new["data"]
    d.update(format="jsonl", encoding="utf-8", limit=None, text_column="text", label_column="label")
    d["train"] = str(_write_jsonl(data / "train.jsonl", train, task))
    d["dev"] = str(_write_jsonl(data / "dev.jsonl", dev, task)) if dev is not None else None
    d["test"] = str(_write_jsonl(data / "holdout.jsonl", frozen, task))
    return new


def _train(cfg: dict[str, Any], out: Path, overrides: list[str], progress: bool) -> Path:
    """Train the challenger, resuming an interrupted run of the same data; skip if already complete."""
    model = out / "model"
    if (model / "fieldtune.json").is_file() and (out / "metrics.json").is_file():
        return model
    resume = (out / "checkpoints" / "last").is_dir() or (out / "checkpoints" / ".last.old").is_dir()
    return train_run(cfg, overrides, resume=resume, progress=progress).model_dir


def _score(champion_dir, challenger_dir, task: Task, frozen, holdout_fb) -> dict[str, Any]:
    """Both models' metrics on the frozen holdout and on the feedback holdout."""
    out: dict[str, Any] = {}
    right: dict[str, list[bool] | None] = {}
    for name, path in (("champion", champion_dir), ("challenger", challenger_dir)):
        p = load_predictor(path, backend="torch")
        # every label seen scores (a new intent among them); NER metrics read tags and ignore this list
        labels = sorted(set(p.labels) | {x for ex in frozen + holdout_fb for x in labels_of(ex)})
        predictions = p.predict_examples(_unlabelled(frozen))
        row = {"frozen": task.metrics(frozen, predictions, labels)}
        right[name] = _correct(task, frozen, predictions)
        if holdout_fb:
            row["feedback"] = task.metrics(holdout_fb, p.predict_examples(_unlabelled(holdout_fb)), labels)
        out[name] = row
    out["paired"] = _paired_tests(frozen, right["champion"], right["challenger"])
    return out


def _correct(task: Task, examples: list[Example], predictions: list[Any]) -> list[bool] | None:
    """Per example: did the model get it exactly right? (None for NER: errors are per entity.)"""
    verdicts = [task.is_correct(ex, p) for ex, p in zip(examples, predictions)]
    return None if None in verdicts else verdicts


def _paired_tests(examples: list[Example], old: list[bool] | None, new: list[bool] | None) -> dict:
    """Per class, on the frozen holdout's examples of that class: how many the champion got right and
    the challenger wrong (``lost``) and the reverse (``won``), and the one-sided exact McNemar p-value
    that the challenger is worse. A per-class F1 drop counts as a regression only when this test
    says it is not chance: with 40 examples a class, one or two flips move F1 by 0.05."""
    from scipy.stats import binomtest

    if old is None or new is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for label in sorted({x for ex in examples for x in labels_of(ex)}):
        idx = [i for i, ex in enumerate(examples) if label in labels_of(ex)]
        lost = sum(old[i] and not new[i] for i in idx)
        won = sum(new[i] and not old[i] for i in idx)
        p = binomtest(lost, lost + won, 0.5, alternative="greater").pvalue if lost + won else 1.0
        out[label] = {"lost": lost, "won": won, "p_value": round(float(p), 6)}
    return out


def _unlabelled(examples: list[Example]) -> list[Example]:
    """The examples without gold labels: a model can't encode a label it doesn't know (a new intent)."""
    return [
        TextExample(ex.text, ()) if isinstance(ex, TextExample) else TaggedSentence(ex.tokens, ("O",) * len(ex.tokens))
        for ex in examples
    ]


def _headline(metrics: dict[str, Any], task: Task) -> float:
    return float(metrics[task.default_metric])


def _per_class(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    return metrics.get("per_class") or metrics.get("per_type") or {}


def _decide(
    store: Store, task: Task, champion: str, challenger: str, scores: dict[str, Any], policy: Policy
) -> Outcome:
    summary: dict[str, Any] = {}
    for name in ("champion", "challenger"):
        parts = {k: _headline(v, task) for k, v in scores[name].items()}
        summary[name] = {**parts, "score": sum(parts.values()) / len(parts)}
    delta = summary["challenger"]["score"] - summary["champion"]["score"]
    old, new = _per_class(scores["champion"]["frozen"]), _per_class(scores["challenger"]["frozen"])
    paired = scores.get("paired") or {}
    drops = {
        label: {"champion": row["f1"], "challenger": new.get(label, {}).get("f1", 0.0), **paired.get(label, {})}
        for label, row in old.items()
        if row.get("support", 0) >= policy.min_support
        and row["f1"] - new.get(label, {}).get("f1", 0.0) > policy.tolerance
    }
    regressions = {  # NER has no paired test: there every drop beyond the tolerance counts
        label: d for label, d in drops.items() if d.get("p_value", 0.0) < policy.significance
    }
    details = {**scores, "summary": summary, "delta": round(delta, 6), "drops": drops, "regressions": regressions}
    if delta >= policy.margin and delta > 0 and not regressions:
        reason = (
            f"challenger wins: mean holdout score {summary['challenger']['score']:.4f} vs "
            f"{summary['champion']['score']:.4f} (+{delta:.4f} >= margin {policy.margin}), no class regressed"
        )
        promote(store, challenger, reason, details)
        return Outcome("promote", reason, champion, challenger, scores=details)
    if regressions:
        reason = (
            f"rejected: {len(regressions)} class(es) lost more than {policy.tolerance} F1 "
            f"(paired test p < {policy.significance}): {sorted(regressions)}"
        )
    else:
        reason = f"rejected: score change {delta:+.4f} is below the margin {policy.margin}"
    store.set_stage(challenger, "rejected", "reject", reason, details)
    return Outcome("reject", reason, champion, challenger, scores=details)
