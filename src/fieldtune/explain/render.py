"""An explanation as a standalone HTML page: the text with each word shaded green (pushes towards the
label) or red (pushes away), the shade's strength proportional to |score|; everything escaped."""

from __future__ import annotations

from html import escape
from typing import Any

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; line-height: 2; }}
.text {{ font-size: 1.2rem; white-space: pre-wrap; }}
.w {{ border-radius: 3px; padding: 0 1px; }}
.legend {{ color: #555; font-size: 0.9rem; }}
</style>
</head>
<body>
{sections}
<p class="legend">green: the word pushes towards the label; red: away from it; stronger colour, larger
|attribution| (hover a word for its score). Method: {method}.</p>
</body>
</html>
"""


def sections(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The explained predictions of a result: itself (classification) or its entities (NER)."""
    return result["entities"] if "entities" in result else [result]


def title(section: dict[str, Any]) -> str:
    """``label (score 0.97)``, NER with the span's words."""
    what = f"{section['label']} (score {section['score']:.3f})"
    return f"{section['word']!r}: {what}" if "word" in section else what


def highlighted(text: str, attributions: list[dict[str, Any]]) -> str:
    """The text as HTML, each attributed word in a shaded span."""
    peak = max((abs(a["score"]) for a in attributions), default=0.0) or 1.0
    parts, at = [], 0
    for a in attributions:
        parts.append(escape(text[at : a["start"]]))
        alpha = min(1.0, abs(a["score"]) / peak) * 0.8
        rgb = "22, 163, 74" if a["score"] >= 0 else "220, 38, 38"
        word = escape(text[a["start"] : a["end"]])
        parts.append(
            f'<span class="w" style="background: rgba({rgb}, {alpha:.3f})" title="{a["score"]:+.4f}">{word}</span>'
        )
        at = a["end"]
    parts.append(escape(text[at:]))
    return "".join(parts)


def to_html(text: str, result: dict[str, Any]) -> str:
    """The standalone page for ``result`` (from :func:`fieldtune.explain.explain`) on ``text``."""
    found = sections(result)
    blocks = [f'<h2>{escape(title(s))}</h2>\n<p class="text">{highlighted(text, s["attributions"])}</p>' for s in found]
    if not blocks:
        blocks = [f'<h2>no entities predicted</h2>\n<p class="text">{escape(text)}</p>']
    heading = escape(title(found[0])) if len(found) == 1 else f"{len(found)} entities"
    return PAGE.format(title=heading, sections="\n".join(blocks), method=escape(result["method"]))
