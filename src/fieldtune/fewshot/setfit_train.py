"""method setfit: contrastive fine-tuning of a sentence encoder on pairs of the few training examples
(same label: similar, else dissimilar), then a logistic regression on its embeddings (the setfit library).
``setfit.body_epochs: 0`` skips the contrastive step: the regression learns on the model's own embeddings.

The regression's L2 strength is chosen by stratified k-fold cross-validation on the training examples
(no dev data needed): scikit-learn's default ``C=1`` over-regularises unit-length embeddings with many
labels (BANKING77, 8 per intent: 0.774 test accuracy with C=1, 0.799 with the C that 4-fold CV picks).
The regression is converted to a :class:`LinearHead` (no pickle in the artifact): softmax of
``coef_ @ x + intercept_`` is exactly its ``predict_proba``.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from typing import Any

import numpy as np

from ..config import RunConfig
from ..data.examples import Example
from ..utils.progress import show_bars
from ..zoo import resolve
from .head import LinearHead, embed

HEAD_CS = tuple(float(c) for c in np.logspace(-1, 3, 9))  # 0.1 ... 1000, the grid CV picks from
FALLBACK_C = 10.0  # a label with a single example leaves nothing to cross-validate
MAX_FOLDS = 4


def train_setfit(
    cfg: RunConfig, labels: list[str], train: list[Example], max_length: int, progress: bool, base: Any
) -> tuple[Any, LinearHead, dict[str, Any]]:
    """The body (``base``, the loaded SentenceTransformer, fine-tuned unless ``body_epochs`` is 0), the
    head and training stats (steps, pairs, the chosen C)."""
    index = {label: i for i, label in enumerate(labels)}
    texts, y = [ex.text for ex in train], [index[ex.labels[0]] for ex in train]
    estimator = head_estimator(y, cfg.train.seed)
    if cfg.setfit.body_epochs == 0:
        base.max_seq_length = max_length
        estimator.fit(embed(base, texts, cfg.train.eval_batch_size), y)
        return base, logistic_to_head(estimator, len(labels)), {"steps": 0, "pairs": 0, **chosen_c(estimator)}

    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    data = Dataset.from_dict({"text": texts, "label": y})
    model = SetFitModel.from_pretrained(resolve(cfg.model), normalize_embeddings=True, local_files_only=True)
    model.model_head = estimator  # setfit fits any scikit-learn estimator on the tuned embeddings
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
            show_progress_bar=show_bars(progress),  # off a terminal its redraws would fill a log
        )
        trainer = Trainer(model=model, args=args, train_dataset=data)
        trainer.train()
    steps = int(getattr(trainer.st_trainer.state, "global_step", 0)) if hasattr(trainer, "st_trainer") else 0
    stats = {"steps": steps, "pairs": 2 * cfg.setfit.iterations * len(train), **chosen_c(estimator)}
    return model.model_body, logistic_to_head(estimator, len(labels)), stats


def head_estimator(y: list[int], seed: int) -> Any:
    """A logistic regression whose C stratified k-fold CV (k = 2..4, as the rarest label allows) picks
    from :data:`HEAD_CS`, refitted on all examples; a plain one with :data:`FALLBACK_C` when a label
    has a single example."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    folds = min(MAX_FOLDS, min(Counter(y).values()))
    if folds < 2:
        return LogisticRegression(C=FALLBACK_C, max_iter=1000)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    # lbfgs' default 100 iterations stop short with many labels
    return GridSearchCV(LogisticRegression(max_iter=1000), {"C": list(HEAD_CS)}, cv=cv, scoring="accuracy")


def chosen_c(estimator: Any) -> dict[str, float]:
    """``{"head_c": C}`` of a fitted :func:`head_estimator` (metrics.json's train stats)."""
    return {"head_c": float(getattr(estimator, "best_estimator_", estimator).C)}


def logistic_to_head(clf: Any, num_labels: int) -> LinearHead:
    """A fitted scikit-learn LogisticRegression as softmax logits over ``num_labels`` (classes 0..n-1).
    Binary: sklearn keeps one row w (p(1) = sigmoid(w.x + b)), which is softmax over [0, w.x + b]."""
    clf = getattr(clf, "best_estimator_", clf)  # a GridSearchCV: the refitted best regression
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
