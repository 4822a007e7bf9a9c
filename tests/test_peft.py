"""Parameter-efficient methods (peft) on the bundled encoder: LoRA trains only adapter + head (counted
from the model's shapes), learns the tiny sets, saves a small artifact that reloads (in a fresh
process too) to exactly the predictions it had before saving, and merges into a standalone model
with the same logits. IA3 and prompt tuning train and reload; prefix tuning and prompt tuning for
NER are refused with the reason; bad peft settings are config errors (exit code 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import transformers
import yaml
from conftest import overfit_config
from typer.testing import CliRunner

import fieldtune
from fieldtune.artifacts import Artifact
from fieldtune.cli import app
from fieldtune.export import export_cli, export_onnx, merge_adapter
from fieldtune.export.parity import sample_features
from fieldtune.inference import forward_logits
from fieldtune.predict import Predictor
from fieldtune.tasks import get_task
from fieldtune.zoo import resolve

run_module = sys.modules["fieldtune.recipes.encoder"]

BASE = transformers.AutoConfig.from_pretrained(resolve("minilm"))
LAYERS, HIDDEN, FFN = BASE.num_hidden_layers, BASE.hidden_size, BASE.intermediate_size  # 6, 384, 1536
BASE_PARAMS = 22_713_216  # all-MiniLM-L6-v2 with its pooler (test_training: 22,714,371 with a 3-label head)

CASES = {  # task: (data fixture, metric, settings that overfit it with LoRA r=8)
    "classification": ("cls_file", "accuracy", {"epochs": 6, "lr": 3e-3}),
    "ner": ("ner_file", "f1", {"epochs": 12, "lr": 1e-2}),
}
TEXTS = {
    "classification": ["where is my new card?", "my pin is blocked", "what exchange rate do you use"],
    "ner": ["Watching the game with Justin Bieber in Toronto tonight", "nothing here"],
}
RELOAD = """
import json, sys, fieldtune
print(json.dumps(fieldtune.load(sys.argv[1]).predict(json.loads(sys.argv[2]))))
"""


def head(labels: int) -> int:
    return HIDDEN * labels + labels  # classifier Linear(hidden, labels)


def lora(r: int, modules: int = 2) -> int:
    return LAYERS * modules * r * (HIDDEN + HIDDEN)  # A (r x in) + B (out x r) per adapted square Linear


def sample_logits(model, tokenizer, meta) -> list[np.ndarray]:
    """Logits on the export parity sentences, as the Predictor computes them."""
    features = sample_features(get_task(meta["task"]), tokenizer, meta["labels"], meta["max_length"])
    return forward_logits(model, features, 8, tokenizer.pad_token_id)


def train_capturing(config: dict) -> tuple[fieldtune.RunResult, dict]:
    """Train, and record what the model object handed to save_artifact predicts (before saving):
    logits on the parity sentences and the Predictor's outputs on TEXTS."""
    before = {}
    real_save = run_module.save_artifact

    def spy(model, tokenizer, meta, target):
        before["logits"] = sample_logits(model, tokenizer, meta)
        predictor = Predictor(Artifact(target, model, tokenizer, meta))
        before["predictions"] = json.loads(json.dumps(predictor.predict(TEXTS[meta["task"]])))
        return real_save(model, tokenizer, meta, target)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_module, "save_artifact", spy)
        result = fieldtune.train(config, progress=False)
    return result, before


def assert_same_predictions(before: dict, predictor: Predictor) -> None:
    """The reloaded model predicts what the trained one did. Logits may differ in the last float
    bits only: training ran eager attention, a loaded model runs PyTorch's sdpa kernel."""
    after = sample_logits(predictor.artifact.model, predictor.artifact.tokenizer, predictor.meta)
    assert max(float(np.abs(a - b).max()) for a, b in zip(before["logits"], after, strict=True)) < 1e-5
    # the same labels and spans; scores (rounded to 6 decimals) within the logits' last-bit differences
    assert_close(json.loads(json.dumps(predictor.predict(TEXTS[predictor.meta["task"]]))), before["predictions"])


def assert_close(got, expected, tol: float = 2e-6) -> None:
    """Equal structures and strings, floats within ``tol``."""
    if isinstance(expected, float):
        assert abs(got - expected) <= tol, (got, expected)
    elif isinstance(expected, dict):
        assert set(got) == set(expected), (got, expected)
        for key in expected:
            assert_close(got[key], expected[key], tol)
    elif isinstance(expected, list):
        assert len(got) == len(expected), (got, expected)
        for a, b in zip(got, expected):
            assert_close(a, b, tol)
    else:
        assert got == expected, (got, expected)


def peft_config(task, data, out, method, peft=None, **train) -> dict:
    cfg = overfit_config(task, data, out, **train)
    return {**cfg, "method": method, "peft": peft or {}}


@pytest.fixture(scope="module", params=sorted(CASES))
def lora_run(request, tmp_path_factory):
    task = request.param
    fixture, _, settings = CASES[task]
    out = tmp_path_factory.mktemp(f"lora-{task}") / "run"
    result, before = train_capturing(peft_config(task, request.getfixturevalue(fixture), out, "lora", **settings))
    return task, result, before


def test_lora_trains_only_adapter_and_head(lora_run):
    task, result, _ = lora_run
    meta = json.loads((result.model_dir / "fieldtune.json").read_text())
    labels = len(meta["labels"])
    expected = lora(8) + head(labels)  # query + value in every layer, rank 8; the head in full
    train = result.metrics["train"]
    assert train["trainable_params"] == expected
    # everything else is the frozen base (+ peft's frozen copy of the original head)
    pooler = 0 if task == "classification" else HIDDEN * HIDDEN + HIDDEN  # token models have no pooler
    assert train["total_params"] == BASE_PARAMS - pooler + expected + head(labels)
    assert meta["method"] == "lora" and meta["base_model"]["name"] == "minilm"
    assert len(meta["base_model"]["sha256"]) == 64


def test_lora_learns_the_training_examples(lora_run):
    task, result, _ = lora_run
    metric = CASES[task][1]
    assert result.metrics["test"][metric] == 1.0
    assert result.metrics["baseline"][metric] < 1.0


def test_artifact_holds_only_adapter_head_and_reference(lora_run):
    task, result, _ = lora_run
    files = {p.name: p.stat().st_size for p in result.model_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "fieldtune.json"} <= set(files)
    assert "model.safetensors" not in files and "pytorch_model.bin" not in files
    assert files["adapter_model.safetensors"] < 1_000_000  # ~75k float32 parameters, not 90 MB of base weights
    assert sum(files.values()) < 3_000_000
    from safetensors import safe_open

    with safe_open(result.model_dir / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert any(k.endswith("classifier.weight") for k in keys)  # the trained head travels with the adapter
    assert not any("embeddings" in k for k in keys)
    assert not [p for p in result.output_dir.iterdir() if ".tmp" in p.name]


def test_reload_gives_identical_predictions(lora_run):
    task, result, before = lora_run
    assert_same_predictions(before, fieldtune.load(result.output_dir))
    proc = subprocess.run(  # a fresh process: only the artifact and the base model it names
        [sys.executable, "-c", RELOAD, str(result.output_dir), json.dumps(TEXTS[task])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == before["predictions"]


def test_adapter_finds_its_base_by_name_and_refuses_other_base_weights(lora_run, tmp_path):
    _, result, before = lora_run
    moved = shutil.copytree(result.model_dir, tmp_path / "model")
    meta = json.loads((moved / "fieldtune.json").read_text())
    meta["base_model"]["resolved"] = str(tmp_path / "gone")  # e.g. another machine's virtualenv
    (moved / "fieldtune.json").write_text(json.dumps(meta))
    assert_same_predictions(before, fieldtune.load(moved))  # "minilm" resolved again
    meta["base_model"]["sha256"] = "0" * 64
    (moved / "fieldtune.json").write_text(json.dumps(meta))
    with pytest.raises(fieldtune.UserError, match="not the one this adapter was trained on"):
        fieldtune.load(moved)


def test_merge_matches_the_adapter(lora_run, tmp_path):
    task, result, before = lora_run
    if task == "classification":  # through the CLI once, default folder
        proc = CliRunner().invoke(app, ["export", str(result.output_dir), "--merge"])
        assert proc.exit_code == 0, proc.output
        merged_dir = result.model_dir.with_name("model-merged")
        assert "merged vs adapter" in proc.output and "standalone" in proc.output
    else:  # merge + ONNX in one go, to a chosen folder: the merged model is an ordinary artifact
        merged_dir = export_cli(result.output_dir, merge=True, onnx=True, output=tmp_path / "merged").parent
        onnx = fieldtune.load(merged_dir, backend="onnx")
        assert onnx.backend == "onnx"
        got, want = onnx.predict(TEXTS[task])[0], before["predictions"][0]
        strip = lambda ents: [{k: v for k, v in e.items() if k != "score"} for e in ents]  # noqa: E731
        assert strip(got) == strip(want)  # same entities; ONNX Runtime's scores differ in the 6th decimal
        assert max(abs(g["score"] - w["score"]) for g, w in zip(got, want, strict=True)) < 1e-4
    files = {p.name for p in merged_dir.iterdir()}
    assert "model.safetensors" in files and "adapter_config.json" not in files
    merged = fieldtune.load(merged_dir, backend="torch")
    assert type(merged.artifact.model).__module__.startswith("transformers.")  # no peft wrapper left
    after = sample_logits(merged.artifact.model, merged.artifact.tokenizer, merged.meta)
    pairs = list(zip(before["logits"], after, strict=True))
    assert max(float(np.abs(a - b).max()) for a, b in pairs) < 1e-4
    assert all((a.argmax(-1) == b.argmax(-1)).all() for a, b in pairs)
    assert merged.meta["merged"]["method"] == "lora" and merged.meta["merged"]["parity"]["agreement"] == 1.0
    assert json.loads(json.dumps(merged.predict(TEXTS[task]))) == before["predictions"]


def test_onnx_export_of_an_adapter_says_merge_first(lora_run):
    _, result, _ = lora_run
    with pytest.raises(fieldtune.UserError, match="merge it first"):
        export_onnx(result.output_dir)


def test_ia3_trains_scales_and_head_and_reloads(cls_file, tmp_path):
    cfg = peft_config("classification", cls_file, tmp_path / "ia3", "ia3", epochs=4, lr=3e-2)
    result, before = train_capturing(cfg)
    # key and value scale their outputs (hidden each); the two output.dense layers (attention
    # output and feed-forward output) are feed-forward modules and scale their inputs (hidden, ffn)
    assert result.metrics["train"]["trainable_params"] == LAYERS * (3 * HIDDEN + FFN) + head(3)
    assert result.metrics["test"]["accuracy"] >= 0.75
    assert_same_predictions(before, fieldtune.load(result.model_dir))
    assert not (result.model_dir / "model.safetensors").exists()


def test_prompt_tuning_trains_for_classification_but_does_not_merge(cls_file, tmp_path):
    cfg = peft_config(
        "classification", cls_file, tmp_path / "pt", "prompt_tuning", {"virtual_tokens": 10}, epochs=4, lr=3e-2
    )
    result, before = train_capturing(cfg)
    assert result.metrics["train"]["trainable_params"] == 10 * HIDDEN + head(3)  # the virtual tokens + the head
    assert result.metrics["test"]["accuracy"] >= 0.75
    log = [json.loads(line) for line in (result.output_dir / "log.jsonl").read_text().splitlines()]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert_same_predictions(before, fieldtune.load(result.model_dir))
    with pytest.raises(fieldtune.UserError, match="can't be merged"):
        merge_adapter(result.output_dir)


def test_prefix_tuning_is_refused_for_bert_before_anything_is_written(cls_file, tmp_path):
    cfg = peft_config("classification", cls_file, tmp_path / "prefix", "prefix")
    with pytest.raises(fieldtune.UserError, match="past_key_values") as err:
        fieldtune.train(cfg, progress=False)
    assert "lora" in err.value.hint
    assert not (tmp_path / "prefix").exists()


@pytest.mark.parametrize(
    "method,override,message",
    [
        ("lora", "peft.r=0", "peft.r"),
        ("lora", "peft.dropout=1.5", "peft.dropout"),
        ("lora", "peft.rank=8", "unknown key"),
        ("lora", "peft.target_modules=[nonexistent]", "could not adapt"),
        ("prompt_tuning", "task=ner", "prompt_tuning"),
    ],
)
def test_bad_peft_settings_exit_2(cls_file, ner_file, tmp_path, method, override, message):
    data = ner_file if override == "task=ner" else cls_file
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(peft_config("classification", data, tmp_path / "run", method, epochs=1)))
    proc = CliRunner().invoke(app, ["train", str(config), override])
    assert proc.exit_code == 2, proc.output
    assert message in proc.output
    assert not (tmp_path / "run").exists()


def test_help_config_lists_the_peft_settings():
    proc = CliRunner().invoke(app, ["train", "--help-config"])
    assert proc.exit_code == 0
    for key in ("peft.r", "peft.alpha", "peft.dropout", "peft.target_modules", "peft.virtual_tokens"):
        assert key in proc.output
