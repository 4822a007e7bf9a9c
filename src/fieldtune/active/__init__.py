"""Active learning: which unlabelled texts to label next (``fieldtune suggest``).

``scoring`` turns a predictor's outputs into how unsure it is, ``select`` picks a batch (by score,
spread out over sentence embeddings, or at random), ``pool`` reads candidates (files, the store) and
what is already labelled, ``output`` writes the batch in the task's training format, and ``suggest``
puts them together.
"""
