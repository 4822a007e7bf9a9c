"""Synthetic financial headlines (our own text, CC0) for the demo, the tests and the benchmarks.

Fictional companies; headline templates per topic and sentiment; a news stream with Poisson volume
per hour, syndicated copies (the same story reworded by another source) and, optionally, injected
negative surges about one company (``spikes``) so an alert has something to find. Seeded: the same
arguments always give the same items.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

COMPANIES = {
    "Northwind Bank": ["Northwind", "北风银行"],
    "Contoso Financial": ["Contoso"],
    "Fabrikam Motors": ["Fabrikam"],
    "Litware Energy": ["Litware"],
    "Tailspin Airlines": ["Tailspin"],
    "Huaxin Bank": ["Huaxin", "华信银行"],
}
SOURCES = ["Wire A", "Daily Ledger", "Market Desk", "Finance Post", "City Journal"]

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "earnings": {
        "positive": [
            "{c} quarterly profit beats forecasts as revenue climbs {p}%",
            "{c} raises full-year guidance after strong {q} results",
            "{c} posts record earnings, shares jump {p}%",
            "{c} net income rises {p}% on higher margins",
        ],
        "negative": [
            "{c} swings to a loss as revenue falls {p}%",
            "{c} cuts full-year outlook after weak {q} results",
            "{c} misses profit estimates, shares slide {p}%",
            "{c} warns of lower earnings as costs surge",
        ],
        "neutral": [
            "{c} to report {q} results on Thursday",
            "{c} earnings in line with analyst expectations",
            "{c} keeps full-year guidance unchanged",
            "{c} schedules conference call on {q} figures",
        ],
    },
    "mergers": {
        "positive": [
            "{c} agrees to buy rival in deal that lifts shares {p}%",
            "{c} wins approval for its takeover of a regional lender",
            "{c} completes acquisition ahead of schedule",
        ],
        "negative": [
            "{c} takeover bid collapses after financing falls through",
            "{c} merger blocked by competition authority",
            "{c} writes down value of last year's acquisition",
        ],
        "neutral": [
            "{c} confirms it is in early talks about a possible merger",
            "{c} hires advisers to review strategic options",
            "{c} says acquisition talks are continuing",
        ],
    },
    "legal": {
        "positive": [
            "{c} cleared of wrongdoing after regulator review",
            "{c} settles dispute on favourable terms",
            "Court rules in favour of {c} in patent case",
        ],
        "negative": [
            "{c} fined by regulator over compliance failures",
            "{c} faces lawsuit from investors over disclosures",
            "Regulator opens investigation into {c} lending practices",
            "{c} executives charged with fraud",
        ],
        "neutral": [
            "{c} responds to questions from the regulator",
            "Hearing in {c} case set for next month",
            "{c} publishes its annual compliance report",
        ],
    },
    "markets": {
        "positive": [
            "{c} shares rally {p}% as investors return",
            "{c} bonds gain after credit rating upgrade",
            "Analysts upgrade {c} to buy",
        ],
        "negative": [
            "{c} shares plunge {p}% amid liquidity fears",
            "{c} downgraded to junk by rating agency",
            "Investors dump {c} stock as debt worries grow",
            "{c} shares hit a five-year low",
        ],
        "neutral": [
            "{c} shares little changed in quiet trading",
            "{c} to be added to the regional stock index",
            "{c} announces date of annual shareholder meeting",
        ],
    },
}
CHINESE = {
    "positive": ["{c}季度利润大增{p}%，股价上涨", "{c}获得监管批准，投资者信心回升"],
    "negative": ["{c}股价大跌{p}%，投资者担忧", "{c}因违规被监管机构罚款"],
    "neutral": ["{c}将于下周公布季度业绩", "{c}召开年度股东大会"],
}
REWRITES = ["{t}", "UPDATE 1-{t}", "{t} - sources", "{t}: report"]


@dataclass(frozen=True)
class Spike:
    """A negative surge about one company: from ``start`` for ``hours`` hours, ``extra`` stories per hour."""

    company: str
    start: datetime
    hours: int = 2
    extra: int = 12


def headline(
    rng: random.Random, company: str, sentiment: str, topic: str | None = None, companies: dict | None = None
) -> tuple[str, str]:
    """One (headline, topic) about ``company`` with the given sentiment; Chinese aliases get Chinese text."""
    topic = topic or rng.choice(list(TEMPLATES))
    aliases = (companies or COMPANIES)[company]
    chinese = [a for a in aliases if not a.isascii()]
    if chinese and rng.random() < 0.15:
        return rng.choice(CHINESE[sentiment]).format(c=chinese[0], p=rng.randint(2, 30)), topic
    name = rng.choice([company, company, *[a for a in aliases if a.isascii()]])
    text = rng.choice(TEMPLATES[topic][sentiment])
    return text.format(c=name, p=rng.randint(2, 30), q=rng.choice(["first-quarter", "second-quarter", "annual"])), topic


def labelled(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` labelled headlines ``{"text", "label", "topic"}`` (balanced sentiments) for training a model."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sentiment = ("positive", "negative", "neutral")[i % 3]
        text, topic = headline(rng, rng.choice(list(COMPANIES)), sentiment)
        rows.append({"text": text, "label": sentiment, "topic": topic})
    return rows


def stream(
    start: datetime,
    hours: int,
    per_hour: float = 6.0,
    spikes: tuple[Spike, ...] = (),
    seed: int = 0,
    copies: float = 0.1,
    companies: dict[str, list[str]] | None = None,
) -> Iterator[dict[str, str]]:
    """Items ``{"id", "time", "source", "title"}``, hour by hour: background news + spikes + copies.

    Background sentiment is 25% negative, 35% positive, 40% neutral; a spike adds ``extra``
    negative stories per hour about its company. A fraction ``copies`` of stories is syndicated:
    the same headline, reworded, from another source a few minutes later. ``companies`` replaces the
    six fictional ones (``{name: [aliases]}``): a busy stream needs many, or every template about
    every company recurs within a day and reads, rightly, as a copy.
    """
    rng = random.Random(seed)
    start = start.astimezone(timezone.utc)
    n = 0
    for h in range(hours):
        hour = start + timedelta(hours=h)
        names = list(companies or COMPANIES)
        events = [(rng.choice(names), _background(rng)) for _ in range(_poisson(rng, per_hour))]
        for spike in spikes:
            if spike.start <= hour < spike.start + timedelta(hours=spike.hours):
                events += [(spike.company, "negative")] * spike.extra
        stamped = sorted((rng.uniform(0, 3000), c, s) for c, s in events)
        for offset, company, sentiment in stamped:
            title, _ = headline(rng, company, sentiment, companies=companies)
            n += 1
            t = hour + timedelta(seconds=offset)
            yield _item(f"n{n:07d}", t, rng.choice(SOURCES), title)
            if rng.random() < copies:
                n += 1
                later = t + timedelta(minutes=rng.randint(1, 9))
                yield _item(f"n{n:07d}", later, rng.choice(SOURCES), rng.choice(REWRITES).format(t=title))


def _item(item_id: str, t: datetime, source: str, title: str) -> dict[str, str]:
    return {"id": item_id, "time": t.isoformat(timespec="seconds"), "source": source, "title": title}


def _background(rng: random.Random) -> str:
    r = rng.random()
    return "negative" if r < 0.25 else "positive" if r < 0.6 else "neutral"


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: lam is small (a few stories per hour per stream)
    limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
