"""``fieldtune watch demo``: sentiment model from the shipped headlines → a week of news replayed → alerts."""

from __future__ import annotations

from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from ...recipes import train
from ...store.watch_store import WatchStore
from .config import load_watch_config
from .items import read_items
from .replay import replay
from .scoring import Scorer
from .synthetic import COMPANIES

PACKAGE = Path(__file__).resolve().parents[2]
NEWS = PACKAGE / "samples" / "watch" / "news.jsonl"
TOPICS = {
    "earnings": ["quarterly profit beats forecasts", "cuts full-year outlook after weak results", "to report results"],
    "mergers": ["agrees to buy rival", "takeover bid collapses", "in talks about a possible merger"],
    "legal": ["fined by regulator", "faces lawsuit from investors", "regulator opens investigation"],
    "markets": [
        "shares rally as investors return",
        "shares plunge amid liquidity fears",
        "downgraded by rating agency",
    ],
}


def write_demo_config(folder: Path, sentiment: Path) -> Path:
    """A watch.yaml for the synthetic news: four topics by example phrases, the six fictional companies."""
    config = {
        "sentiment": str(sentiment.resolve()),
        "topics": TOPICS,
        "entities": COMPANIES,
        "bucket": "2h",
        "db": "sqlite:///watch.db",
    }
    path = folder / "watch.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_watch_demo(output: Path, console: Console) -> Path:
    """Train, write the config, replay the shipped week of news (a surge about Northwind Bank on day 6)."""
    output.mkdir(parents=True, exist_ok=True)
    result = train(PACKAGE / "configs" / "watch_sentiment.yaml", [f"output={output / 'sentiment'}"])
    console.print(f"sentiment model: test accuracy {result.metrics['test']['accuracy']:.3f} (synthetic headlines)")
    for old in output.glob("watch.db*"):  # the demo starts from an empty database every time
        old.unlink()
    config = write_demo_config(output, result.model_dir)
    cfg = load_watch_config(config)
    store = WatchStore(cfg.db)
    report = replay(cfg, store, Scorer.from_config(cfg), read_items(NEWS), speed=None)
    console.print(
        f"replayed {report.stored} items: {report.duplicates} syndicated copies collapsed, "
        f"{len(report.rejected)} rejected, {len(report.alerts)} alerts",
        highlight=False,
    )
    console.print(alerts_table(report.alerts))
    return config


def alerts_table(alerts: list[dict]) -> Table:
    """Alerts as a terminal table (the demo and ``fieldtune watch alerts``); other rules that fired on
    the same surge are shown after the first."""
    table = Table("bucket", "kind", "key", "rule", "value", "threshold", "items")
    for a in alerts:
        also = "".join(f" +{x['rule']}" for x in (a.get("details") or {}).get("also", []))
        table.add_row(
            str(a["bucket_start"]),
            a["kind"],
            a["key"],
            a["rule"] + also,
            f"{a['value']:.3g}",
            f"{a['threshold']:.3g}",
            str(len(a["items"])),
        )
    return table
