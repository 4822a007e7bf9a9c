"""Fine-tune the sentence encoder on question -> answer pairs, so a question lands next to its answer.

sentence-transformers' ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss``: for each
(question, answer) pair in a batch, the other pairs' answers are the negatives (in-batch negatives, a
cross-entropy over the batch's cosine similarities). Many questions share one answer template, and a
batch holding two questions of the same template would teach the model to push a question away from
its own answer; the library's ``NO_DUPLICATES`` batch sampler keeps every text (so every template)
at most once per batch.

Time on this machine (2 cores shared with other jobs, ``OMP_NUM_THREADS=1``, minilm, batch 32, a
question against a ~60-word template): about 2 minutes per 1,000 pairs per epoch (113 s measured for
1,000 BANKING77 pairs; 1,330 s for all 10,003).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...models.embedder import load_sentence_encoder
from ...utils.atomic import staged_dir
from ...utils.hf import offline_env, quiet_transformers

LEARNING_RATE = 5e-5  # sentence-transformers' default for MNRL fine-tuning of small encoders
WARMUP = 0.1


def fine_tune(
    pairs: list[tuple[str, str]],
    output: Path,
    base: str = "minilm",
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 13,
    learning_rate: float = LEARNING_RATE,
) -> Path:
    """Fine-tune ``base`` on (question, answer text) pairs with in-batch negatives; save it to ``output``.

    Args:
        pairs: (question, answer) texts; an answer may repeat (many questions per template).
        output: The folder to write (replaced if it exists; written whole or not at all).
        base: A zoo alias or a local sentence-transformers folder.
        epochs: Passes over the pairs.
        batch_size: Pairs per batch: more in-batch negatives per step. With fewer distinct answers
            than this, a batch holds one pair per distinct answer.
        seed: Shuffling and initialisation seed.
        learning_rate: AdamW's peak learning rate (linear warm-up over the first 10% of steps, then decay).

    Returns:
        ``output``, a SentenceTransformer folder that ``load_sentence_encoder(str(output))`` loads.

    Raises:
        UserError: No pairs, an empty text, or fewer than two distinct answers (nothing to contrast).
    """
    _check(pairs)
    offline_env()
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import PrinterCallback

    loss_class, samplers = _library_parts()
    model = load_sentence_encoder(base)
    data = Dataset.from_dict({"anchor": [q for q, _ in pairs], "positive": [a for _, a in pairs]})
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="fieldtune-biencoder-") as scratch, quiet_transformers():
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,  # checkpoints are off: nothing is written there
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=WARMUP,  # a float below 1 is a share of the steps (transformers 5)
            seed=seed,
            batch_sampler=samplers.NO_DUPLICATES,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss_class(model))
        trainer.remove_callback(PrinterCallback)  # with the bars off it prints the final loss dict to stdout
        trainer.train()
    with staged_dir(output) as staging:
        model.save(str(staging))
    return output


def _library_parts() -> tuple[Any, Any]:
    """sentence-transformers' ``MultipleNegativesRankingLoss`` and ``BatchSamplers``, wherever they live."""
    try:  # sentence-transformers 6 moved them; the old paths still work there, with a deprecation warning
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss
        from sentence_transformers.training_args import BatchSamplers
    return MultipleNegativesRankingLoss, BatchSamplers


def _check(pairs: list[tuple[str, str]]) -> None:
    if not pairs:
        raise UserError("no (question, answer) pairs to fine-tune on", hint="give labelled questions and templates")
    for i, pair in enumerate(pairs, start=1):
        if len(pair) != 2 or not all(isinstance(t, str) and t.strip() for t in pair):
            raise UserError(f"pair {i} is not two non-empty texts: {pair!r}"[:200])
    if len({a for _, a in pairs}) < 2:
        raise UserError(
            "all pairs have the same answer: in-batch negatives need at least two different answers",
            hint="add questions for other templates",
        )
