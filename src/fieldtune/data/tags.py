"""Tag validation and IOB1 -> IOB2 normalisation.

CoNLL-2003 is IOB1: ``I-X`` opens an entity unless it continues one, and ``B-X`` appears only
between two adjacent entities of the same type. We train on IOB2 (every entity opens with
``B-``), which is what seqeval's strict mode and most tools expect. BIOES (``S-`` single, ``E-`` end)
and BMES (``M-`` middle), common in Chinese character-level data, are converted to IOB2 too.
"""

from __future__ import annotations

import re

from ..errors import UserError

_TAG = re.compile(r"^(O|[BIMES]-\S+)$")
# BIOES / BMES prefixes and the IOB prefix each becomes (an I- that opens an entity becomes B- after)
_TO_IOB = {"S-": "B-", "E-": "I-", "M-": "I-"}


def check_tag(tag: str, path: object, line: int) -> None:
    """Raise a :class:`UserError` naming the line if ``tag`` isn't ``O`` or ``B/I/M/E/S-TYPE``."""
    if _TAG.match(tag):
        return
    fix = ""
    if re.match(r"^[BIMES]_", tag):
        fix = f" — did you mean {tag[0]}-{tag[2:]}?"
    raise UserError(
        f"invalid tag {tag!r}{fix}",
        path=path,
        line=line,
        hint="tags must be O, B-TYPE or I-TYPE (IOB1 or IOB2; BIOES/BMES with S-, M-, E- are converted)",
    )


def is_bioes(tags: list[str]) -> bool:
    """Do ``tags`` use BIOES/BMES prefixes (``S-``, ``M-``, ``E-``)?"""
    return any(tag[:2] in _TO_IOB for tag in tags)


def normalize_tags(tags: list[str]) -> tuple[list[str], bool]:
    """Convert IOB1, IOB2, BIOES or BMES tags to IOB2.

    Returns:
        The IOB2 tags and whether anything changed (the input was IOB1, BIOES/BMES or malformed IOB2).
    """
    out, changed, prev = [], False, "O"
    for tag in tags:
        if tag[:2] in _TO_IOB:
            tag, changed = _TO_IOB[tag[:2]] + tag[2:], True
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag, changed = "B-" + tag[2:], True
        out.append(tag)
        prev = tag
    return out, changed
