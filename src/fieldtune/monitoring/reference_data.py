"""Where a drift reference's texts come from: the model's own held-out data (the dev file, else the
test file, else the split of train held out at training) or a file the user passes, plus the
training texts the unseen-word rate is measured against."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..artifacts import find_model_dir
from ..config import DataConfig
from ..data.readers import read_examples, read_text
from ..data.splits import stratified_split
from ..errors import UserError
from ..tasks import get_task
from ..utils.hashing import file_sha256

REFERENCE_HINT = (
    "pass --reference FILE: texts like the training data (.txt with one text per line, or a labelled file "
    "in the training format)"
)
LABELLED_SUFFIXES = (
    ".csv",
    ".tsv",
    ".jsonl",
    ".json",
    ".ndjson",
)  # read in their own format, whatever data.format says


def reference_texts(
    model_dir: Path, meta: dict[str, Any], reference_file: Path | None
) -> tuple[list[str], str, list[str] | None, list[str]]:
    """(reference texts, their source, training texts or None, notes).

    Raises:
        UserError: The run names no training data, or one of its data files is gone.
    """
    if reference_file is not None:
        return _from_file(model_dir, meta, reference_file)
    config = meta.get("config") or {}
    raw = dict(config.get("data") or {})
    task = meta["task"]
    if not raw.get("train"):
        raise UserError("the model's fieldtune.json names no training data", path=model_dir, hint=REFERENCE_HINT)
    data = _data_config(raw)
    paths = {name: _locate(name, raw.get(name), model_dir, config) for name in ("train", "dev", "test")}
    notes = [
        f"{name} file {path} changed since training"
        for name, path in paths.items()
        if path is not None and _changed(path, meta, name)
    ]
    examples = read_examples(paths["train"], task, data).examples
    examples = examples[: data.limit] if data.limit else examples
    if paths["dev"] is not None:
        texts, source = _texts(read_examples(paths["dev"], task, data).examples), f"dev {paths['dev']}"
        return texts, source, _texts(examples), notes
    # the model was selected on a split of train: recover it
    seed = int((config.get("train") or {}).get("seed", 42))
    examples, heldout = stratified_split(examples, data.dev_fraction, seed)
    if paths["test"] is not None:
        texts, source = _texts(read_examples(paths["test"], task, data).examples), f"test {paths['test']}"
    else:
        texts, source = _texts(heldout), f"held-out split of train {paths['train']}"
    return texts, source, _texts(examples), notes


def _from_file(
    model_dir: Path, meta: dict[str, Any], reference_file: Path
) -> tuple[list[str], str, list[str] | None, list[str]]:
    """The user's reference texts; the training texts when they can still be found."""
    config = meta.get("config") or {}
    raw = dict(config.get("data") or {})
    task = meta["task"]
    notes: list[str] = []
    texts = read_texts(reference_file, task, _data_config(raw))
    train_path = existing_data_file(raw.get("train"), model_dir, config)
    train = None
    if train_path is not None:
        train = _texts(read_examples(train_path, task, _data_config(raw)).examples)
        train = train[: raw["limit"]] if raw.get("limit") else train
    else:
        notes.append("training data not found: vocabulary taken from the reference file")
    return texts, str(reference_file), train, notes


def read_texts(path: Path, task: str, data: Any) -> list[str]:
    """Texts of a reference file: ``.txt`` one per line (CoNLL when the task's data may be and it
    looks like it), else a file in the training formats."""
    if path.suffix.lower() == ".txt":
        content = read_text(path, data.encoding)
        if not get_task(task).conll_txt or not _looks_like_conll(content):
            return [line.strip() for line in content.splitlines() if line.strip()]
    fmt = data.format if path.suffix.lower() not in LABELLED_SUFFIXES else "auto"
    return _texts(read_examples(path, task, data.model_copy(update={"format": fmt})).examples)


def _looks_like_conll(content: str) -> bool:
    tag = re.compile(r"^(O|[BIES]-\S+)$")
    lines = [line.split() for line in content.splitlines() if line.strip()]
    return bool(lines) and all(len(f) >= 2 and (tag.match(f[-1]) or f[0] == "-DOCSTART-") for f in lines)


def _texts(examples: list[Any]) -> list[str]:
    return [ex.text if hasattr(ex, "text") else " ".join(ex.tokens) for ex in examples]


def _data_config(raw: dict[str, Any]) -> DataConfig:
    return DataConfig(**{k: v for k, v in raw.items() if k in DataConfig.model_fields})


def _locate(name: str, value: Any, model_dir: Path, config: dict) -> Path | None:
    """The data file of the run, or a UserError naming it when it is gone."""
    if not value:
        return None
    found = existing_data_file(value, model_dir, config)
    if found is None:
        raise UserError(
            f"the model's {name} data is not here (needed for the drift reference)",
            path=value,
            hint=REFERENCE_HINT,
        )
    return found


def existing_data_file(value: Any, model_dir: Path, config: dict) -> Path | None:
    """``value`` as given (absolute, or relative to the current folder), else relative to the folder
    training ran in (recovered from the relative ``output`` the artifact sits in); None if neither is."""
    if not value:
        return None
    path = Path(value)
    candidates = [path]
    output = Path(str(config.get("output") or ""))
    if not path.is_absolute() and output.parts and not output.is_absolute() and ".." not in output.parts:
        run_dir = find_model_dir(model_dir).resolve().parent  # the artifact is <output>/model
        if run_dir.parts[-len(output.parts) :] == output.parts:
            candidates.append(Path(*run_dir.parts[: -len(output.parts)]) / path)
    return next((c for c in candidates if c.is_file()), None)


def _changed(path: Path, meta: dict, name: str) -> bool:
    want = ((meta.get("data") or {}).get(name) or {}).get("sha256")
    return bool(want) and file_sha256(path) != want
