"""method setfit: contrastive fine-tuning of a sentence encoder on pairs of the few training examples
(same label: similar, else dissimilar), then a logistic regression on its embeddings (the setfit library).

The regression is converted to a :class:`LinearHead` (no pickle in the artifact): softmax of
``coef_ @ x + intercept_`` is exactly its ``predict_proba``.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from ..config import RunConfig
from ..data.examples import Example
from ..zoo import resolve
from .head import LinearHead


def train_setfit(
    cfg: RunConfig, labels: list[str], train: list[Example], max_length: int, progress: bool
) -> tuple[Any, LinearHead, dict[str, Any]]:
    """The fine-tuned body (a SentenceTransformer), the head and training stats (steps, pairs)."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    index = {label: i for i, label in enumerate(labels)}
    data = Dataset.from_dict({"text": [ex.text for ex in train], "label": [index[ex.labels[0]] for ex in train]})
    model = SetFitModel.from_pretrained(resolve(cfg.model), normalize_embeddings=True, local_files_only=True)
    model.model_head.set_params(max_iter=1000)  # lbfgs' default 100 stops short with many labels
    model.model_body.max_seq_length = max_length  # train.max_length: the same truncation as at inference
    with tempfile.TemporaryDirectory(prefix="fieldtune-setfit-") as scratch:  # nothing is saved there
        args = TrainingArguments(
            output_dir=scratch,
            batch_size=cfg.setfit.batch_size,
            num_iterations=cfg.setfit.iterations,
            num_epochs=cfg.setfit.body_epochs,
            body_learning_rate=cfg.setfit.body_lr,
            max_length=max_length,
            seed=cfg.train.seed,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            show_progress_bar=progress,
        )
        trainer = Trainer(model=model, args=args, train_dataset=data)
        trainer.train()
    steps = int(getattr(trainer.st_trainer.state, "global_step", 0)) if hasattr(trainer, "st_trainer") else 0
    stats = {"steps": steps, "pairs": 2 * cfg.setfit.iterations * len(train)}
    return model.model_body, logistic_to_head(model.model_head, len(labels)), stats


def logistic_to_head(clf: Any, num_labels: int) -> LinearHead:
    """A fitted scikit-learn LogisticRegression as softmax logits over ``num_labels`` (classes 0..n-1).
    Binary: sklearn keeps one row w (p(1) = sigmoid(w.x + b)), which is softmax over [0, w.x + b]."""
    coef, intercept = np.asarray(clf.coef_, dtype=np.float32), np.asarray(clf.intercept_, dtype=np.float32)
    classes = [int(c) for c in clf.classes_]
    if coef.shape[0] == 1 and len(classes) == 2:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros(1, dtype=np.float32), intercept])
    weight = np.zeros((num_labels, coef.shape[1]), dtype=np.float32)
    bias = np.full(num_labels, -1e4, dtype=np.float32)  # a label absent from training can't win
    for row, cls in enumerate(classes):
        weight[cls], bias[cls] = coef[row], intercept[row]
    return LinearHead(weight, bias)
