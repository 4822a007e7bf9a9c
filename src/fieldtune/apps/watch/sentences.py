"""Long texts for the sentiment model: a sentence splitter and the per-item aggregation.

A headline is scored as it is. An item with a body is scored per segment — the title, then the
body's first :data:`MAX_BODY_SENTENCES` sentences — in the same batched call as every other title,
and the segments' calibrated probabilities are combined by :func:`aggregate`:

    p(item) = sum_i w_i p_i / sum_i w_i,   w_i = role_i * (1 - p_i(neutral) + EPS)

``role_i`` is :data:`TITLE_WEIGHT` (2) for the title and 1 for a body sentence. Why these weights:

- The polar mass ``1 - p(neutral)`` weights a segment by how much sentiment it carries. News bodies are
  mostly neutral (datelines, who the company is, what the analyst expected); a plain mean would pull
  every long article towards neutral however clearly its key sentences are negative.
- The title counts twice: it is the editor's one-line summary of the story, the text the analyst sees
  on the dashboard, and the only segment every item has.
- A title-only item gets exactly its title's probabilities (one segment: the weights cancel), so the
  aggregation never changes headline scores.

Only the first sentences are scored: news is written top-down (the lede carries the story), and it
bounds the cost of a long article to that of ``MAX_BODY_SENTENCES + 1`` headlines.
"""

from __future__ import annotations

import re

import numpy as np

TITLE_WEIGHT = 2.0  # the title counts as two body sentences (see the module docstring)
MAX_BODY_SENTENCES = 20  # body sentences scored per item; later ones are skipped
EPS = 1e-3  # keeps an all-neutral text's weights positive (its mean is then a plain weighted mean)

# Latin sentence ends need whitespace (or the end) after them, so "3.5%" and "U.S.-based" never split;
# Chinese/Japanese full-width ends need none ("亏损。股价下跌"); a line break always ends a segment.
_BOUNDARY = re.compile(
    r"(?P<cjk>[。！？；]+[”’」』）)\"']*)"
    r"|(?P<latin>[.!?]+[\"'”’)\]]*)(?=\s|$)"
    r"|(?P<nl>\n+)"
)
# Words whose period does not end a sentence ("Apple Inc. said", "Mr. Smith", "Jan. 5", "vs. rivals").
ABBREVIATIONS = frozenset(
    "inc corp co ltd plc llc lp ag sa nv bhd mr mrs ms dr prof st jr sr gen gov rep sen no nos vs etc "
    "approx est dept bros ave mt ft fig cf al jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_INITIALS = re.compile(r"(?:[a-z]\.)*[a-z]")  # "J", "U.S", "e.g", "i.e" (the last period is cut off)
_LAST_WORD = re.compile(r"[\w.&'-]+$")
_NEXT_CHAR = re.compile(r"\s*(\S)")


def split_sentences(text: str, limit: int | None = None) -> list[str]:
    """Sentences of ``text`` (Latin ``.!?``, Chinese ``。！？；``, line breaks), stripped, none empty.

    Abbreviations (``Inc.``, ``Mr.``, ``Jan.``), initials (``U.S.``, ``J.``) and decimals (``3.5%``)
    stay inside their sentence; so does a period followed by a lower-case word.

    Args:
        text: Any text; empty or blank gives ``[]``.
        limit: Stop after this many sentences (the rest of the text is not scanned).

    Returns:
        The sentences in order, each with its closing punctuation.
    """
    out: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group("latin") and not _ends_sentence(text, match):
            continue
        piece = text[start : match.end()].strip()
        if piece:
            out.append(piece)
            if limit is not None and len(out) >= limit:
                return out
        start = match.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Is this ``.``/``!``/``?`` run a sentence end rather than an abbreviation's period?"""
    if "!" in match.group() or "?" in match.group():
        return True
    following = _NEXT_CHAR.match(text, match.end())
    if following and following.group(1).islower():
        return False  # "approx. five", "the U.S. economy": a sentence doesn't start in lower case
    word = _LAST_WORD.search(text, max(0, match.start() - 40), match.start())
    if word is None:
        return True
    token = word.group().lower().lstrip("'-&")
    return not (token in ABBREVIATIONS or _INITIALS.fullmatch(token))


def segments(title: str, text: str) -> list[str]:
    """What the sentiment model scores for one item: the title, then its body's first sentences."""
    return [title, *split_sentences(text, MAX_BODY_SENTENCES)] if text else [title]


def aggregate(probs: np.ndarray, owners: np.ndarray, is_title: np.ndarray, neutral: int, n_items: int) -> np.ndarray:
    """Per-item probabilities from per-segment ones (the weighting is in the module docstring).

    Args:
        probs: ``(segments, labels)`` calibrated probabilities, rows summing to 1.
        owners: ``(segments,)`` the item index of each segment.
        is_title: ``(segments,)`` True where the segment is its item's title.
        neutral: The column of the neutral label.
        n_items: Number of items (every item owns at least its title).

    Returns:
        ``(n_items, labels)`` probabilities, rows summing to 1.
    """
    weights = np.where(is_title, TITLE_WEIGHT, 1.0) * (1.0 - probs[:, neutral] + EPS)  # (segments,)
    totals = np.zeros((n_items, probs.shape[1]), dtype=np.float64)
    np.add.at(totals, owners, probs * weights[:, None])
    return totals / np.bincount(owners, weights=weights, minlength=n_items)[:, None]
