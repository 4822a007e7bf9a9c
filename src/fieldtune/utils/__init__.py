"""Helpers below every other layer: atomic writes, hashing, quiet/offline Hugging Face, progress output.

Nothing here imports another fieldtune module except :mod:`fieldtune.errors`.
"""
