"""When a drift check says drift: the thresholds, their defaults and their parsing."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import UserError


@dataclass(frozen=True)
class Thresholds:
    """When a check says drift. The defaults are the usual rules of thumb.

    - ``psi`` 0.2: the credit-scoring convention for PSI (< 0.1 stable, 0.1-0.2 moderate,
      > 0.2 a significant shift). With many labels and a small window, PSI of two samples of
      the *same* distribution is ~(labels - 1) * (1/n_ref + 1/n_window), easily over 0.2 for
      77 intents and 500 predictions, so the chi-square test must also reject "same
      distribution" at ``label_p`` (0.01) before the label check says drift.
    - ``confidence_drop`` 0.10: the mean top-label confidence is 10 points below the
      reference's — large against the ~0.01 sampling noise of a mean over hundreds of scores.
    - ``mmd_p`` 0.01: the MMD permutation test rejects "same embedding distribution" at 1 %
      (a 1 % false alarm rate per run when nothing changed).
    - ``oov_increase`` 0.05: 5 more words in every 100 unseen in training than in the
      reference: new products, names, languages or a broken client sending junk.
    - ``min_predictions`` 30: below this no statistic above means much; the window is refused.
    """

    psi: float = 0.2
    label_p: float = 0.01
    confidence_drop: float = 0.10
    mmd_p: float = 0.01
    oov_increase: float = 0.05
    min_predictions: int = 30

    @classmethod
    def parse(cls, items: list[str] | None) -> Thresholds:
        """Defaults with ``name=value`` overrides (``psi=0.25``)."""
        names = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for item in items or []:
            name, sep, raw = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in names:
                raise UserError(f"bad threshold {item!r}", hint=f"use NAME=VALUE with NAME one of {', '.join(names)}")
            try:
                values[name] = int(raw) if name == "min_predictions" else float(raw)
            except ValueError:
                raise UserError(f"threshold {name}: {raw!r} is not a number") from None
            if values[name] < 0 or (name == "min_predictions" and values[name] < 2):
                raise UserError(f"threshold {name}: {raw} is out of range")
        return replace(cls(), **values)
