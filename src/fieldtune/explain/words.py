"""Words as the user sees them: spans of the text split on whitespace and punctuation (the same
splitting NER uses), sub-word pieces mapped onto them, and piece scores summed per word."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..tasks.token_classification import WORD


@dataclass(frozen=True)
class Word:
    """One word of the text: ``text[start:end] == word``."""

    word: str
    start: int
    end: int


def split_words(text: str) -> list[Word]:
    """The words of ``text`` with character offsets (runs of word characters, joined by ``-'’.``;
    every CJK character and every other non-space character is a word of its own)."""
    return [Word(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def word_of_char(text: str, words: Sequence[Word]) -> np.ndarray:
    """For every character of ``text`` the index of the word holding it, -1 for spaces."""
    owner = np.full(len(text), -1, dtype=np.int64)
    for i, w in enumerate(words):
        owner[w.start : w.end] = i
    return owner


def pieces_to_words(offsets: Sequence[tuple[int, int]], owner: np.ndarray) -> list[int]:
    """The word of each sub-word piece from the tokenizer's offset mapping (-1: a special token or a
    piece of whitespace only). A piece belongs to the word holding its first non-space character."""
    found = []
    for start, end in offsets:
        word = -1
        for c in range(start, min(end, len(owner))):
            if owner[c] >= 0:
                word = int(owner[c])
                break
        found.append(word)
    return found


def sum_per_word(piece_scores: np.ndarray, piece_words: Sequence[int], n_words: int) -> np.ndarray:
    """Piece scores summed into their words (pieces of no word are dropped)."""
    out = np.zeros(n_words, dtype=np.float64)
    for score, word in zip(piece_scores, piece_words):
        if word >= 0:
            out[word] += float(score)
    return out


def attributions(words: Sequence[Word], scores: Sequence[float]) -> list[dict]:
    """``[{"word", "start", "end", "score"}]`` in text order."""
    return [
        {"word": w.word, "start": w.start, "end": w.end, "score": round(float(s), 6)} for w, s in zip(words, scores)
    ]
