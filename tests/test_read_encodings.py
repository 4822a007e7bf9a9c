"""data.encoding: Chinese files saved as GB18030 / GBK, byte-order marks, and the error that names the line."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fieldtune.cli import app
from fieldtune.config import DataConfig
from fieldtune.data import read_examples
from fieldtune.errors import UserError

# Hotel and shop reviews of our own writing, some with English words in them.
ROWS = [
    ("text", "label"),
    ("Very clean room and friendly staff", "pos"),
    ("酒店位置很好，离地铁站只有五分钟。", "pos"),
    ("房间太小，WiFi 信号很差。", "neg"),
    ("早餐种类丰富，咖啡也不错，推荐！", "pos"),
    ("前台态度冷淡，check-in 等了半小时", "neg"),
    ("The air conditioner was broken", "neg"),
]
HINT = "set data.encoding: gb18030 (or the file's real encoding)"


def write_csv(path: Path, encoding: str, bom: bytes = b"") -> Path:
    text = "".join(f"{a},{b}\n" for a, b in ROWS)
    path.write_bytes(bom + text.encode(encoding))
    return path


def texts_labels(dataset) -> list[tuple[str, str]]:
    return [(e.text, e.labels[0]) for e in dataset.examples]


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "GB2312"])
def test_gb_encoded_csv_reads_with_data_encoding(tmp_path, encoding):
    path = write_csv(tmp_path / "train.csv", "gb18030")
    dataset = read_examples(path, "classification", DataConfig(train=path, encoding=encoding))
    assert texts_labels(dataset) == ROWS[1:]
    assert [e.line for e in dataset.examples] == [2, 3, 4, 5, 6, 7]


def test_gb18030_file_read_as_utf8_names_file_line_and_encoding(tmp_path):
    path = write_csv(tmp_path / "train.csv", "gb18030")
    with pytest.raises(UserError) as info:
        read_examples(path, "classification", DataConfig(train=path))
    message = str(info.value)
    # Line 3 is the first with Chinese characters: the header and line 2 are English.
    assert message.startswith(f"{path}:3: byte ") and "is not valid utf-8" in message, message
    assert HINT in message


def test_gb18030_error_through_the_cli(tmp_path):
    path = write_csv(tmp_path / "train.csv", "gb18030")
    config = tmp_path / "run.yaml"
    raw = {"task": "classification", "data": {"train": str(path)}, "output": str(tmp_path / "run")}
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2, result.output
    assert f"{path}:3:" in result.output and "gb18030" in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "conll"])
def test_every_format_reads_gb18030(tmp_path, fmt):
    if fmt == "tsv":
        text, task = "text\tlabel\n房间很干净\tpos\nWiFi 很差\tneg\n", "classification"
    elif fmt == "jsonl":
        text, task = '{"text": "房间很干净", "label": "pos"}\n{"text": "WiFi 很差", "label": "neg"}\n', "classification"
    else:
        text, task = "北 B-LOC\n京 I-LOC\n很 O\n大 O\n\nApple B-ORG\n好 O\n", "ner"
    path = tmp_path / f"train.{'txt' if fmt == 'conll' else fmt}"
    path.write_bytes(text.encode("gb18030"))
    dataset = read_examples(path, task, DataConfig(train=path, encoding="gb18030"))
    if task == "ner":
        assert [s.tokens for s in dataset.examples] == [("北", "京", "很", "大"), ("Apple", "好")]
    else:
        assert texts_labels(dataset) == [("房间很干净", "pos"), ("WiFi 很差", "neg")]
    with pytest.raises(UserError, match="gb18030"):
        read_examples(path, task, DataConfig(train=path))


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
@pytest.mark.parametrize(("bom", "codec"), [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le")])
def test_byte_order_mark_wins(tmp_path, encoding, bom, codec):
    # Excel's "CSV UTF-8" and "Unicode text" files read right whatever data.encoding says.
    path = write_csv(tmp_path / "train.csv", codec, bom=bom)
    dataset = read_examples(path, "classification", DataConfig(train=path, encoding=encoding))
    assert texts_labels(dataset) == ROWS[1:]


def test_latin1_file_gets_a_latin1_guess(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes("text,label\nMünchen ist schön,pos\nBücher für Kinder,pos\n".encode("latin-1"))
    with pytest.raises(UserError) as info:
        read_examples(path, "classification", DataConfig(train=path))
    assert f"{path}:2:" in str(info.value) and "set data.encoding: latin-1" in str(info.value)


def test_unknown_encoding(tmp_path):
    path = write_csv(tmp_path / "train.csv", "utf-8")
    with pytest.raises(UserError, match="unknown encoding 'gb-18030'"):
        read_examples(path, "classification", DataConfig(train=path, encoding="gb-18030"))
