"""The predictor of a prompted-NER artifact (``kind: llm``, task ``ner``): entities asked of the base
model as JSON (:class:`~fieldtune.llm.ner.LLMTagger`), with the encoder NER predictor's output shape
(``[{"entity_group", "word", "start", "end", "score"}]``, character offsets; score 1.0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.examples import TaggedSentence
from ..llm.ner import LLMTagger, evaluate_tagger, tag_sentences, word_spans
from ..tasks import get_task
from .base import check_backend, checked_texts, register_predictor
from .loaders import load_llm_artifact

BACKENDS = ("auto", "torch")


@register_predictor("llm", task="ner")
class NerPredictor:
    """Tags from a prompted causal LM; no weights of its own (the artifact references the base model)."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self, tagger: LLMTagger, meta: dict[str, Any], batch_size: int) -> None:
        self.tagger, self.meta, self.batch_size = tagger, meta, batch_size
        self.task = get_task("ner")
        self.labels: list[str] = meta["labels"]
        self.backend = "torch"

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, meta: dict[str, Any], batch_size: int, backend: str, threads: int | None
    ) -> NerPredictor:
        """The base model and the saved prompt; ``threads`` is not used."""
        check_backend(backend, BACKENDS, f"backend {backend!r} is not available for causal LMs", "use --backend torch")
        model, tokenizer = load_llm_artifact(model_dir, meta)
        state = meta["state"]
        return cls(LLMTagger(model, tokenizer, state["prompt"], state["max_new_tokens"], batch_size), meta, batch_size)

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """Entities of one text (returns one list) or of each of a list of texts."""
        batch = checked_texts(texts)
        tags, _ = self.tagger.tag(batch, [word_spans(t) for t in batch])
        outputs = [
            self.task.to_output(t, self.task.from_text(t), (tg, [1.0] * len(tg)), top_k) for t, tg in zip(batch, tags)
        ]
        return outputs[0] if isinstance(texts, str) else outputs

    def predict_examples(self, examples: list[TaggedSentence]) -> list[Any]:
        """(tags, confidences) per sentence, the encoder NER task's prediction shape."""
        return tag_sentences(self.tagger, examples)[0]

    def evaluate(self, examples: list[TaggedSentence]) -> dict[str, Any]:
        """seqeval metrics plus the prompting failure counts (parse failures, hallucinations, truncations)."""
        return evaluate_tagger(self.tagger, examples)[0]
