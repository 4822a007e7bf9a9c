"""Every bad input is a UserError naming the file (and line), and on the command line exits
with code 2, prints no traceback and leaves no run folder behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fieldtune.batch import predict_file
from fieldtune.cli import app
from fieldtune.config import DataConfig, load_config
from fieldtune.data import read_examples
from fieldtune.data.prepare import prepare_splits
from fieldtune.errors import UserError
from fieldtune.evaluate import evaluate_file
from fieldtune.zoo import ALIASES

runner = CliRunner()

GOOD_CSV = "text,label\nhello there,greet\nhi,greet\nbye now,farewell\nsee you,farewell\n"
GOOD_CONLL = "Paris B-LOC\nis O\n\nBob B-PER\nsings O\n"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def make_config(tmp_path: Path, task: str, data: dict, **extra) -> Path:
    """A run.yaml with absolute data paths and ``output: <tmp_path>/run``."""
    raw = {
        "task": task,
        "data": {k: str(v) for k, v in data.items()},
        "output": str(tmp_path / "run"),
        **extra,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def run_cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_exit(result, *needles: str) -> str:
    """Exit code 2 from a UserError: an 'error:' line, no usage text, no traceback."""
    out = result.output
    assert result.exit_code == 2, out
    assert isinstance(result.exception, SystemExit), result.exception
    assert "error:" in out, out
    assert "Usage:" not in out, out  # not a click argument error (which also exits 2)
    assert "Traceback" not in out, out
    for needle in needles:
        assert needle in out, (needle, out)
    return out


# --------------------------------------------------------------------------- data files
# (file name, content, task, DataConfig fields, line or None, message fragments)

DATA_CASES = {
    "empty": ("train.csv", b"", "classification", {}, None, ["file is empty"]),
    "whitespace-only": ("train.txt", b" \n\t\n", "ner", {}, None, ["file is empty"]),
    "conll token without tag": (
        "train.txt",
        "Paris B-LOC\nis O\n\nBob\nsings O\n",
        "ner",
        {},
        4,
        ["'Bob' has no tag", "last column"],
    ),
    "underscore tag": (
        "train.txt",
        "Paris B-LOC\n\nBob B_PER\n",
        "ner",
        {},
        3,
        ["invalid tag 'B_PER'", "did you mean B-PER?"],
    ),
    "unknown prefix": (
        "train.txt",
        "Paris X-LOC\n",
        "ner",
        {},
        1,
        ["invalid tag 'X-LOC'", "O, B-TYPE or I-TYPE"],
    ),
    "bioes tag with underscore": (
        "train.txt",
        "a O\nParis S_LOC\n",
        "ner",
        {},
        2,
        ["invalid tag 'S_LOC'", "did you mean S-LOC?"],
    ),
    "jsonl tag": (
        "train.jsonl",
        '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["b"], "tags": ["I_PER"]}\n',
        "ner",
        {},
        2,
        ["invalid tag 'I_PER'", "did you mean I-PER?"],
    ),
    "jsonl tokens/tags mismatch": (
        "train.jsonl",
        '{"tokens": ["a", "b"], "tags": ["O"]}\n',
        "ner",
        {},
        1,
        ["2 tokens but 1 tags"],
    ),
    "not utf-8": (
        "train.csv",
        b"text,label\nhello,greet\ncaf\xe9,drink\n",
        "classification",
        {},
        3,
        ["byte 0xe9 is not valid utf-8", "data.encoding"],
    ),
    "not utf-8 conll": (
        "train.txt",
        b"a O\n\n\nM\xfcnchen B-LOC\n",
        "ner",
        {},
        4,
        ["not valid utf-8", "data.encoding"],
    ),
    "configured text column missing": (
        "train.csv",
        GOOD_CSV,
        "classification",
        {"text_column": "body"},
        1,
        ["no text column 'body'", "columns are ['text', 'label']", "data.text_column"],
    ),
    "configured label column missing": (
        "train.tsv",
        "text\tintent\nhi\tgreet\n",
        "classification",
        {"label_column": "topic"},
        1,
        ["no label column 'topic'", "columns are ['text', 'intent']", "data.label_column"],
    ),
    "no label column": (
        "train.csv",
        "text,foo,bar\nhi,1,2\n",
        "classification",
        {},
        1,
        ["no label column among ['text', 'foo', 'bar']", "data.label_column"],
    ),
    "single column": (
        "train.csv",
        "sentence\nhi\n",
        "classification",
        {},
        1,
        ["need a text and a label column"],
    ),
    "empty text": (
        "train.csv",
        "text,label\nhi,greet\n  ,greet\nyo,greet\n",
        "classification",
        {},
        3,
        ["empty text"],
    ),
    "empty text jsonl": (
        "train.jsonl",
        '{"text": "hi", "label": "a"}\n\n{"text": "", "label": "a"}\n',
        "classification",
        {},
        3,
        ["empty text"],
    ),
    "missing label": (
        "train.csv",
        "text,label\nhi,greet\nyo,\n",
        "classification",
        {},
        3,
        ["expected one label"],
    ),
    "list label for single-label task": (
        "train.jsonl",
        '{"text": "hi", "label": ["a", "b"]}\n',
        "classification",
        {},
        1,
        ["expected one label", "multilabel"],
    ),
    "short row": (
        "train.csv",
        "text,label\nhi,greet\nno label here\n",
        "classification",
        {},
        3,
        ["row has 1 fields, the header has 2"],
    ),
    "unquoted comma in text": (  # used to be read silently as text 'hello', label 'world'
        "train.csv",
        "text,label\nhello, world,greet\nbye,farewell\n",
        "classification",
        {},
        2,
        ["row has 3 fields, the header has 2", "quote fields"],
    ),
    "extra tab in tsv": (
        "train.tsv",
        "text\tlabel\nok\tgreet\nhello\tworld\tgreet\n",
        "classification",
        {},
        3,
        ["row has 3 fields, the header has 2"],
    ),
    "invalid json": (
        "train.jsonl",
        '{"text": "hi", "label": "a"}\n{"text": "yo",\n',
        "classification",
        {},
        2,
        ["invalid JSON"],
    ),
    "unknown extension": (
        "train.txt",
        GOOD_CSV,
        "classification",
        {},
        None,
        ["can't tell the format", "data.format"],
    ),
}


@pytest.mark.parametrize("case", DATA_CASES, ids=list(DATA_CASES))
def test_reader_errors(tmp_path, case):
    name, content, task, fields, line, fragments = DATA_CASES[case]
    path = write(tmp_path / name, content)
    with pytest.raises(UserError) as info:
        read_examples(path, task, DataConfig(train=path, **fields))
    err = info.value
    assert Path(err.path) == path
    assert err.line == line
    text = str(err)
    assert text.startswith(f"{path}:{line}: " if line else f"{path}: "), text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.mark.parametrize("case", DATA_CASES, ids=list(DATA_CASES))
def test_cli_train_data_errors(tmp_path, case):
    name, content, task, fields, line, fragments = DATA_CASES[case]
    path = write(tmp_path / name, content)
    config = make_config(tmp_path, task, {"train": path, **fields})
    result = run_cli("train", config)
    where = f"{path}:{line}:" if line else f"{path}:"
    assert_clean_exit(result, where, *fragments)
    assert not (tmp_path / "run").exists()


def test_missing_data_file(tmp_path):
    missing = tmp_path / "nope" / "train.csv"
    with pytest.raises(UserError) as info:
        read_examples(missing, "classification", DataConfig(train=missing))
    assert str(info.value).startswith(f"{missing}: file not found")
    result = run_cli("train", make_config(tmp_path, "classification", {"train": missing}))
    assert_clean_exit(result, str(missing), "file not found")
    assert not (tmp_path / "run").exists()


def test_missing_dev_file_after_valid_train(tmp_path):
    train = write(tmp_path / "train.csv", GOOD_CSV)
    dev = tmp_path / "dev.csv"
    result = run_cli("train", make_config(tmp_path, "classification", {"train": train, "dev": dev}))
    assert_clean_exit(result, f"{dev}: file not found")
    assert not (tmp_path / "run").exists()


def test_rich_markup_in_data_is_printed_verbatim(tmp_path):
    # A token like "[/b]" used to crash rich's markup parser: traceback and exit code 1.
    path = write(tmp_path / "train.txt", "a O\n[/b]\n")
    result = run_cli("train", make_config(tmp_path, "ner", {"train": path}))
    assert_clean_exit(result, f"{path}:2:", "token '[/b]' has no tag")
    path = write(tmp_path / "train.txt", "a O\n[red]:fire:\n")
    assert_clean_exit(run_cli("train", make_config(tmp_path, "ner", {"train": path})), "'[red]:fire:'")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- unseen labels


@pytest.mark.parametrize("split", ["dev", "test"])
def test_unseen_labels_listed(tmp_path, split):
    train = write(tmp_path / "train.csv", GOOD_CSV)
    other = write(tmp_path / f"{split}.csv", "text,label\nhi,greet\nzap,zzz\nyo,yyy\nzip,zzz\n")
    config = make_config(tmp_path, "classification", {"train": train, split: other})
    with pytest.raises(UserError) as info:
        prepare_splits(load_config(config))
    text = str(info.value)
    assert Path(info.value.path) == other
    assert text.startswith(f"{other}: {split} labels never seen in train: 'yyy' (line 4), 'zzz' (line 3)"), text
    assert "'greet'" not in text
    result = run_cli("train", config)
    assert_clean_exit(result, str(other), "'yyy' (line 4)", "'zzz' (line 3)")
    assert not (tmp_path / "run").exists()


def test_unseen_entity_types_in_ner_dev(tmp_path):
    train = write(tmp_path / "train.txt", GOOD_CONLL)
    dev = write(tmp_path / "dev.txt", "Bob B-PER\n\nAcme B-ORG\nWidget B-PRODUCT\n")
    config = make_config(tmp_path, "ner", {"train": train, "dev": dev})
    result = run_cli("train", config)
    assert_clean_exit(result, str(dev), "'ORG' (line 3)", "'PRODUCT' (line 3)")
    assert "'PER'" not in result.output
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- config


def test_unknown_override_key(tmp_path):
    config = make_config(tmp_path, "classification", {"train": write(tmp_path / "train.csv", GOOD_CSV)})
    with pytest.raises(UserError) as info:
        load_config(config, ["train.epochz=3"])
    assert f"invalid config in {config}" in str(info.value)
    assert "train.epochz: unknown key (got 3)" in str(info.value)
    assert "--help-config" in str(info.value)
    result = run_cli("train", config, "train.epochz=3")
    assert_clean_exit(result, str(config), "train.epochz: unknown key")
    assert not (tmp_path / "run").exists()


def test_unknown_key_in_yaml(tmp_path):
    train = write(tmp_path / "train.csv", GOOD_CSV)
    config = make_config(tmp_path, "classification", {"train": train, "text_col": "text"}, epochs=3)
    with pytest.raises(UserError) as info:
        load_config(config)
    text = str(info.value)
    assert f"invalid config in {config}" in text
    assert "data.text_col: unknown key" in text and "  epochs: unknown key" in text
    assert_clean_exit(run_cli("train", config), str(config), "data.text_col: unknown key", "epochs: unknown key")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("train.epochs=abc", ["train.epochs:", "valid integer", "'abc'"]),
        ("train.optimizer=adam", ["train.optimizer:", "'adamw' or 'sgd'"]),
        ("train.lr=-1", ["train.lr:", "greater than 0"]),
        ("task=regression", ["task:", "'classification', 'multilabel', 'ner' or 'causal_lm'"]),
    ],
)
def test_wrong_config_values(tmp_path, override, fragments):
    config = make_config(tmp_path, "classification", {"train": write(tmp_path / "train.csv", GOOD_CSV)})
    with pytest.raises(UserError) as info:
        load_config(config, [override])
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert_clean_exit(run_cli("train", config, override), str(config), *fragments)
    assert not (tmp_path / "run").exists()


def test_malformed_override_and_bad_yaml(tmp_path):
    config = make_config(tmp_path, "classification", {"train": write(tmp_path / "train.csv", GOOD_CSV)})
    assert_clean_exit(run_cli("train", config, "train.epochs"), "'train.epochs' is not key=value")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: ner\ndata:\n  train: [unclosed\noutput: x\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_config(bad)
    assert str(info.value).startswith(f"{bad}:") and "invalid YAML" in str(info.value)
    assert info.value.line is not None
    assert_clean_exit(run_cli("train", bad), str(bad), "invalid YAML")
    missing = tmp_path / "no.yaml"
    assert_clean_exit(run_cli("train", missing), f"{missing}: config file not found")
    assert not (tmp_path / "run").exists()


def test_model_path_does_not_exist(tmp_path):
    # Valid data: the model is resolved after the data is read, before the output folder exists.
    train = write(tmp_path / "train.csv", GOOD_CSV)
    config = make_config(tmp_path, "classification", {"train": train})
    result = run_cli("train", config, "model=./no/such/dir", "train.threads=1")
    aliases = f"aliases {sorted(ALIASES)}"
    assert_clean_exit(result, "model path does not exist: ./no/such/dir", aliases)
    assert not (tmp_path / "run").exists()


def test_model_folder_without_config_json(tmp_path):
    train = write(tmp_path / "train.txt", GOOD_CONLL)
    not_a_model = tmp_path / "weights"
    not_a_model.mkdir()
    config = make_config(tmp_path, "ner", {"train": train}, model=str(not_a_model))
    result = run_cli("train", config, "train.threads=1")
    assert_clean_exit(result, str(not_a_model), "no config.json")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- predict / eval


def test_predict_input_with_empty_line(tmp_path):
    texts = write(tmp_path / "texts.txt", "first text\n\nthird text\n")
    out = tmp_path / "preds.jsonl"
    with pytest.raises(UserError) as info:
        predict_file(tmp_path / "model", texts, out)  # the input is checked before the model is loaded
    assert Path(info.value.path) == texts and info.value.line == 2
    result = run_cli("predict", tmp_path / "model", "--input", texts, "--output", out)
    assert_clean_exit(result, f"{texts}:2: empty line")
    assert not out.exists()


def test_predict_jsonl_input_without_text_field(tmp_path):
    texts = write(tmp_path / "texts.jsonl", '{"text": "ok"}\n{"body": "no text key"}\n')
    result = run_cli("predict", tmp_path / "model", "--input", texts)
    assert_clean_exit(result, f"{texts}:2: no non-empty string field 'text'", "--text-key")


def test_eval_on_folder_that_is_not_a_model(tmp_path):
    folder = tmp_path / "just_a_folder"
    (folder / "model").mkdir(parents=True)
    data = write(tmp_path / "test.csv", GOOD_CSV)
    with pytest.raises(UserError) as info:
        evaluate_file(folder, data)
    assert Path(info.value.path) == folder
    assert "not a fieldtune model: no fieldtune.json" in str(info.value)
    result = run_cli("eval", folder, "--data", data)
    assert_clean_exit(result, str(folder), "not a fieldtune model", "fieldtune train")
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "just_a_folder",
        "model",
        "test.csv",
    ]  # nothing written
    missing = tmp_path / "gone"
    assert_clean_exit(run_cli("eval", missing, "--data", data), f"{missing}: no such run or model folder")


# --------------------------------------------------------------------------- a real process


def test_console_script_exit_code_and_no_traceback(tmp_path):
    train = write(tmp_path / "train.txt", "Paris B-LOC\nis O\n\nBob B_PER\n")
    config = make_config(tmp_path, "ner", {"train": train})
    script = Path(sys.executable).parent / "fieldtune"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "fieldtune.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    proc = subprocess.run(
        [*cmd, "train", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{train}:4: invalid tag 'B_PER'" in proc.stderr
    assert "did you mean B-PER?" in proc.stderr
    assert not (tmp_path / "run").exists()
