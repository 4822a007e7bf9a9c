"""fieldtune.utils: atomic writes keep the old version on failure, hashes are stable, and progress
output off a terminal is one plain line per bar (no carriage-return redraws)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator

from fieldtune.config import TrainConfig
from fieldtune.errors import UserError
from fieldtune.models.cache import cached_conversion
from fieldtune.tasks import get_task
from fieldtune.training.budget import plan_budget
from fieldtune.training.loop import Loop
from fieldtune.utils.atomic import atomic_open, atomic_write_bytes, atomic_write_text, drop_older_copies, staged_dir
from fieldtune.utils.hashing import file_sha256, files_sha256, json_sha256, text_sha256
from fieldtune.utils.progress import LineProgress, progress_bar


def test_atomic_write_replaces_a_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["out.json"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()  # the usual permissions, not mkstemp's 0600


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_staged_dir_swaps_in_a_complete_folder_and_keeps_the_old_one_on_error(tmp_path):
    target = tmp_path / "model"
    with staged_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), staged_dir(target) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("killed")
    assert (target / "a").read_text() == "1"
    with staged_dir(target) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(os.listdir(target)) == ["b"] and os.listdir(tmp_path) == ["model"]


def test_staged_dir_keeps_a_finished_copy_another_process_wrote_first(tmp_path):
    target = tmp_path / "converted"
    with staged_dir(target, keep_existing=lambda t: (t / "config.json").is_file()) as tmp:
        (tmp / "config.json").write_text("ours")
        target.mkdir()
        (target / "config.json").write_text("theirs")  # the other process renamed its copy in meanwhile
    assert (target / "config.json").read_text() == "theirs"
    assert os.listdir(tmp_path) == ["converted"]
    with pytest.raises(OSError), staged_dir(target, keep_existing=lambda t: False) as tmp:
        (tmp / "x").write_text("")


def test_a_new_conversion_drops_older_copies_of_the_same_file_only(tmp_path):
    names = ["e5-small-q4-71622400-111", "e5-small-q4-71622400-222", "e5-small-q4-99-111", "e5-small-q4-71622400-x"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    removed = drop_older_copies(tmp_path / "e5-small-q4-71622400-222")
    assert removed == [tmp_path / "e5-small-q4-71622400-111"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])  # other sizes / names kept


def test_cached_conversion_converts_once_keeps_nothing_half_written_and_replaces_the_old_install(tmp_path):
    src = tmp_path / "pkg" / "model.bin"
    src.parent.mkdir()
    src.write_bytes(b"weights")
    calls = []

    def write(folder):
        calls.append(folder)
        (folder / "config.json").write_text("{}")

    first = cached_conversion(src, write, root=tmp_path, kind="e5")
    assert first.parent == tmp_path / "models" and len(calls) == 1
    assert json.loads((first / "fieldtune-source.json").read_text())["e5"] == str(src)
    assert cached_conversion(src, write, root=tmp_path, kind="e5") == first and len(calls) == 1  # cached

    os.utime(src, ns=(1, 1))  # the package reinstalled: same file, new mtime

    def broken(folder):
        (folder / "config.json").write_text("{}")
        raise ValueError("broken")

    with pytest.raises(UserError, match="could not convert the e5 model: broken"):
        cached_conversion(src, broken, root=tmp_path, kind="e5")
    assert os.listdir(tmp_path / "models") == [first.name]  # no half folder, the old copy still there
    second = cached_conversion(src, write, root=tmp_path, kind="e5")
    assert second != first and os.listdir(tmp_path / "models") == [second.name]  # the old install's dropped

    named = tmp_path / "models" / "named-abc"
    assert cached_conversion(src, write, root=tmp_path, kind="GGUF", target=named, source={"alias": "x"}) == named
    assert json.loads((named / "fieldtune-source.json").read_text()) == {"alias": "x"}
    assert sorted(os.listdir(tmp_path / "models")) == sorted([second.name, "named-abc"])


def test_hashes(tmp_path):
    assert text_sha256("é\ud800") == hashlib.sha256("é\ud800".encode("utf-8", "surrogatepass")).hexdigest()
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f") == hashlib.sha256(b"abc").hexdigest()
    expected = hashlib.sha256(b"f\0abc").hexdigest()
    assert files_sha256(tmp_path, [tmp_path / "f"]) == expected
    assert json_sha256({"b": 1, "a": 2}) == json_sha256({"a": 2, "b": 1})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_one_line_elsewhere():
    log = io.StringIO()
    bar = progress_bar(range(5), desc="epoch 1/2", file=log)
    assert isinstance(bar, LineProgress)
    for _ in bar:
        bar.set_postfix(loss="0.5000")
    assert log.getvalue().startswith("epoch 1/2: 5/5 it in ") and log.getvalue().endswith(", loss=0.5000\n")
    assert "\r" not in log.getvalue()

    terminal = _Terminal()
    for _ in progress_bar(range(5), desc="epoch 1/2", file=terminal):
        pass
    assert not isinstance(progress_bar(range(1), file=terminal), LineProgress)
    assert "\r" in terminal.getvalue()  # tqdm redraws in place


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.head = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 2)

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.head(self.emb(input_ids).mean(1)))


def test_the_training_loop_prints_one_plain_line_per_epoch_off_a_terminal(capsys):
    features = [{"input_ids": [1, 2 + i % 5, 3], "labels": i % 2} for i in range(12)]
    cfg = TrainConfig(epochs=3, batch_size=4, checkpoint=False, lr=1e-2)
    loss = get_task("classification").loss
    Loop(
        _Tiny(),
        features,
        lambda m: {"accuracy": 0.5},
        cfg,
        "accuracy",
        Accelerator(cpu=True),
        0,
        loss=loss,
        budget=plan_budget(cfg, len(features), "encoder"),
    ).run()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(" 3/3 it in " in line and ", loss=" in line for line in lines)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_artifact_keeps_the_licence_files_of_the_model_it_was_made_from(tmp_path):
    from fieldtune.artifacts import licence_files, save_artifact

    base = tmp_path / "base"
    base.mkdir()
    for name in ("NOTICE", "GEMMA_TERMS.html", "LICENSE.txt", "config.json", "model.safetensors"):
        (base / name).write_text(name, encoding="utf-8")
    assert [f.name for f in licence_files(base)] == ["GEMMA_TERMS.html", "LICENSE.txt", "NOTICE"]
    assert licence_files("HuggingFaceTB/SmolLM2-135M") == [] and licence_files(None) == []
    target = save_artifact(None, None, {"task": "classification"}, tmp_path / "model", licences_from=base)
    assert sorted(f.name for f in target.iterdir()) == ["GEMMA_TERMS.html", "LICENSE.txt", "NOTICE", "fieldtune.json"]
    assert (target / "NOTICE").read_text(encoding="utf-8") == "NOTICE"
