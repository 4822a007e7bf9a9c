"""Adaptation with sentence embeddings: zero-shot (texts compared with label descriptions) and SetFit
(contrastive few-shot fine-tuning of the encoder, then a logistic-regression head).

Both end in the same artifact (``fieldtune.json`` kind ``embedding``): a sentence-transformers body
and a linear head over its normalised embeddings, served by :class:`~fieldtune.predict.embedding.EmbeddingPredictor`.
"""
