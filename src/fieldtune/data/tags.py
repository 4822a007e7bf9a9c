"""Tag validation and IOB1 -> IOB2 normalisation.

CoNLL-2003 is IOB1: ``I-X`` opens an entity unless it continues one, and ``B-X`` appears only
between two adjacent entities of the same type. We train on IOB2 (every entity opens with
``B-``), which is what seqeval's strict mode and most tools expect.
"""

from __future__ import annotations

import re

from ..errors import UserError

_TAG = re.compile(r"^(O|[BIES]-\S+)$")


def check_tag(tag: str, path: object, line: int) -> None:
    """Raise a :class:`UserError` naming the line if ``tag`` isn't ``O`` or ``B-/I-TYPE``."""
    if _TAG.match(tag) and not tag.startswith(("E-", "S-")):
        return
    fix = ""
    if re.match(r"^[BI]_", tag):
        fix = f" — did you mean {tag[0]}-{tag[2:]}?"
    elif tag.startswith(("E-", "S-")):
        fix = " — BIOES/BMES tags are not supported; convert to BIO"
    raise UserError(
        f"invalid tag {tag!r}{fix}",
        path=path,
        line=line,
        hint="tags must be O, B-TYPE or I-TYPE (IOB1 or IOB2)",
    )


def normalize_tags(tags: list[str]) -> tuple[list[str], bool]:
    """Convert IOB1 or IOB2 tags to IOB2.

    Returns:
        The IOB2 tags and whether anything changed (i.e. the input was IOB1 or malformed IOB2).
    """
    out, changed, prev = [], False, "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag, changed = "B-" + tag[2:], True
        out.append(tag)
        prev = tag
    return out, changed
