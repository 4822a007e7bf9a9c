"""Parity check: does an exported model predict what the PyTorch model predicts?

The artifact stores no data, so the check runs on a built-in list of varied English sentences
(short, long, names, numbers, punctuation, one longer than 100 words) turned into features by the
task itself, exactly as ``Predictor`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..tasks.base import Task

# fp32 ONNX runs the same graph as PyTorch; only float re-association differs (~1e-6 on logits).
# Anything beyond these bounds means the export is wrong (e.g. a shape baked in while tracing).
FP32_MIN_AGREEMENT = 0.99
FP32_MAX_DIFF = 1e-3
# Dynamic int8 quantisation perturbs logits by design (no bound on the difference); it must still
# pick the same label almost always. Near-tied labels on out-of-domain sentences may flip.
INT8_MIN_AGREEMENT = 0.95

# Predictions where PyTorch itself barely separates its best two labels (softmax probabilities
# less than 1 point apart) are coin flips that any rounding may swap; they are counted ("ties")
# but left out of ``agreement``. Toy models and out-of-domain inputs have many such ties.
TIE_GAP = 0.01
# Batches of 6 over 32 texts: five full batches and one of 2, each padded to its own longest row,
# so both dynamic axes (batch and sequence) are exercised with padding.
PARITY_BATCH = 6

Forward = Callable[[list[dict[str, Any]], int, int], list[np.ndarray]]

SAMPLE_TEXTS: tuple[str, ...] = (
    "Hi.",
    "Where is my card?",
    "The weather in Paris was lovely yesterday.",
    "I transferred 250 euros to my sister in Berlin on Monday, but it still hasn't arrived.",
    "Barack Obama met Angela Merkel at the White House in Washington.",
    "Can you tell me what exchange rate you use for US dollars?",
    "My PIN got blocked after three wrong tries - what now?!",
    "Apple released a new iPhone in September, and Tim Cook presented it in Cupertino.",
    "ok",
    "Why was I charged a fee for withdrawing cash at an ATM in London?",
    "The quick brown fox jumps over the lazy dog.",
    "Justin Bieber and Selena Gomez were spotted in Toronto last night.",
    "Please cancel the payment I made to Amazon on the 3rd of March.",
    "Is it possible to get a virtual card for online shopping?",
    "Microsoft, Google and Amazon all reported higher profits this quarter.",
    "I lost my wallet on the train from Manchester to Leeds.",
    "What's the fastest way to top up my account from abroad?",
    "The United Nations held a summit in New York about climate change.",
    "lol that game last night was insane, Messi scored twice for Inter Miami",
    "Thank you very much for your help!",
    "She studied medicine at Oxford University before moving to Sydney in 2015.",
    "My new card still hasn't arrived and it has been two weeks.",
    "Does the app support Apple Pay and Google Pay?",
    "The Eiffel Tower is 330 metres tall and was completed in 1889.",
    "Why does my balance show a pending transaction from Netflix?",
    "New York Times reporter interviewed the CEO of Tesla, Elon Musk.",
    "I want to change my PIN.",
    "The café on Rue de Rivoli serves the best croissants — honestly!",
    "Can I use my card in Japan, or do I need to tell you before I travel?",
    "Real Madrid beat Barcelona 3-1 at the Santiago Bernabéu on Sunday evening.",
    "Is there a limit on how much money I can exchange each month?",
    (  # more than 100 words: long inputs, truncation (classification) or windows (NER)
        "Last summer my family and I drove from Edinburgh to Cornwall, stopping in York, "
        "Manchester, Birmingham and Bristol along the way, and although the weather was mostly "
        "grey we had a wonderful time visiting castles, museums and tiny seaside villages where "
        "the fish and chips were better than anything we had tasted in London. On the third day "
        "the car broke down near Bath, so we spent an unplanned afternoon at the Roman baths "
        "while a mechanic named Peter replaced the alternator. By the time we reached St Ives "
        "the children had collected more than forty postcards, two sunburns and a very strong "
        "opinion about which ice cream shop in England deserves a medal, which they explained to "
        "every stranger they met."
    ),
)


def sample_features(task: Task, tokenizer: Any, labels: list[str], max_length: int) -> list[dict[str, Any]]:
    """Features of :data:`SAMPLE_TEXTS` built by ``task`` as the Predictor builds them."""
    examples = [task.from_text(text) for text in SAMPLE_TEXTS]
    label2id = {label: i for i, label in enumerate(labels)}
    return task.encode(examples, tokenizer, label2id, max_length)


def measure_parity(
    reference: Forward, candidate: Forward, features: list[dict[str, Any]], pad_id: int, batch_size: int = PARITY_BATCH
) -> dict[str, Any]:
    """Compare two forward functions (``inference.forward_logits`` contract) on ``features``.

    Returns:
        ``agreement``: share of predictions with the same arg-max label (per example for sequence
        tasks, per word's first sub-word for NER), not counting reference ties (:data:`TIE_GAP`);
        ``raw_agreement``: the same over all predictions; ``max_abs_diff``: the largest absolute
        logit difference at any real (non-padding) position; ``predictions`` and ``ties``: counts.
    """
    expected = reference(features, batch_size, pad_id)
    actual = candidate(features, batch_size, pad_id)
    same, tie, diff = [], [], 0.0
    for feat, ref, got in zip(features, expected, actual, strict=True):
        diff = max(diff, float(np.abs(ref - got).max()))
        ref_rows, got_rows = _scored_rows(ref, feat), _scored_rows(got, feat)
        same += (ref_rows.argmax(-1) == got_rows.argmax(-1)).tolist()
        tie += (_top_gap(ref_rows) < TIE_GAP).tolist()
    same_arr, tie_arr = np.array(same, dtype=bool), np.array(tie, dtype=bool)
    decisive = same_arr[~tie_arr] if (~tie_arr).any() else same_arr
    return {
        "agreement": float(decisive.mean()) if len(decisive) else 1.0,
        "raw_agreement": float(same_arr.mean()) if len(same_arr) else 1.0,
        "max_abs_diff": diff,
        "predictions": len(same),
        "ties": int(tie_arr.sum()),
    }


def _scored_rows(logits: np.ndarray, feature: dict[str, Any]) -> np.ndarray:
    """The logit rows that predict: one per sequence, or one per word (its first sub-word)."""
    if "first" in feature:
        return logits[[pos for pos, _ in feature["first"]]].reshape(-1, logits.shape[-1])
    return logits.reshape(1, -1)


def _top_gap(rows: np.ndarray) -> np.ndarray:
    """Softmax probability of the best label minus that of the runner-up, per row."""
    e = np.exp(rows - rows.max(-1, keepdims=True))
    probs = np.sort(e / e.sum(-1, keepdims=True), axis=-1)
    return probs[:, -1] - probs[:, -2] if rows.shape[-1] > 1 else np.ones(len(rows))


def parity_failures(parity: dict[str, Any], int8: bool) -> list[str]:
    """Why ``parity`` is not good enough for an fp32 (or int8) export; empty when it passes."""
    problems = []
    min_agreement = INT8_MIN_AGREEMENT if int8 else FP32_MIN_AGREEMENT
    if parity["agreement"] < min_agreement:
        problems.append(f"label agreement {parity['agreement']:.4f} < {min_agreement}")
    if not int8 and parity["max_abs_diff"] > FP32_MAX_DIFF:
        problems.append(f"max logit difference {parity['max_abs_diff']:.2e} > {FP32_MAX_DIFF:.0e}")
    return problems
