#!/usr/bin/env python
"""Alert quality of `fieldtune watch` on synthetic series with injected negative spikes.

The generator (seeded; every number below is a flag):

- ``--keys`` keys (topics / entities) × ``--buckets`` buckets each (think hours).
- Volume: each key has a base rate λ drawn log-uniformly from ``--volume`` (default 20–200 events
  per bucket) and a daily cycle, ``λ_t = λ (1 + 0.5 sin(2π t / 24 + φ))`` with a random phase, so
  nights are quiet (down to λ/2); the bucket's volume is Poisson(λ_t).
- Negatives: each key has a baseline negative rate ``p`` uniform in ``--rate`` (default 0.1–0.3).
  Real shares wander more than a binomial does (a story runs for a few hours), so each bucket's
  rate is drawn from Beta(p c, (1 - p) c) with ``c = --concentration`` (default 300: a standard
  deviation of about 0.02 around p = 0.2) and the negatives are Binomial(volume, rate_t).
- Spikes: after a warm-up of ``2 × window`` buckets, spikes start at gaps of
  ``2 × window + Exponential(--gap)`` buckets (default mean gap 150), last 1–3 buckets (uniform), raise
  the negative rate to uniform ``--spike-rate`` (default 0.5–0.8) and multiply the volume by a
  uniform factor in ``--spike-volume`` (default 1–3: a surge often, not always, brings more news).

Scoring, per rule set (``zscore`` alone, ``cusum`` alone, ``both`` = the default settings):

- recall: share of spikes with an alert in buckets ``onset .. onset + 2``;
- false alerts per 1,000 spike-free buckets: alerts outside every ``onset .. last + 2`` stretch,
  over the number of buckets outside those stretches (after the first ``window``, where no rule
  can fire); with both rules a surge gives one alert (the other rule is noted in its details).

A second scenario (``shift``, informative, no target) injects sustained moderate shifts instead:
the rate rises by 0.08–0.15 for 6–12 buckets, volume unchanged — the case CUSUM is for; recall
there is "alerted before the shift ended".

    OMP_NUM_THREADS=1 .venv/bin/python bench/watch_alerts.py            # ~1 minute on one core
    OMP_NUM_THREADS=1 .venv/bin/python bench/watch_alerts.py --keys 20 --buckets 1000 --z 3.5

Writes ``bench/results/watch_alerts.{json,md}`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from fieldtune.apps.watch.alerts import detect  # noqa: E402
from fieldtune.apps.watch.config import AlertSettings  # noqa: E402
from fieldtune.apps.watch.series import Bucket  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
RULE_SETS = {"zscore": ("zscore",), "cusum": ("cusum",), "both": ("zscore", "cusum")}


@dataclass
class Series:
    """One key's synthetic series and the (onset, last) buckets of what was injected."""

    buckets: list[Bucket]
    events: list[tuple[int, int]]


def make_series(rng: np.random.Generator, args: argparse.Namespace, scenario: str, window: int) -> Series:
    """One key: Poisson volume with a daily cycle, Beta-binomial negatives, injected events."""
    n = args.buckets
    lam = np.exp(rng.uniform(np.log(args.volume[0]), np.log(args.volume[1])))
    t = np.arange(n)
    lam_t = lam * (1 + 0.5 * np.sin(2 * np.pi * t / 24 + rng.uniform(0, 2 * np.pi)))
    p = rng.uniform(*args.rate)
    rate = rng.beta(p * args.concentration, (1 - p) * args.concentration, size=n)
    events, start = [], 2 * window
    while True:
        start += 2 * window + int(rng.exponential(args.gap))
        length = int(rng.integers(1, 4)) if scenario == "spike" else int(rng.integers(6, 13))
        if start + length + 2 >= n:
            break
        if scenario == "spike":
            rate[start : start + length] = rng.uniform(*args.spike_rate)
            lam_t[start : start + length] *= rng.uniform(*args.spike_volume)
        else:
            rate[start : start + length] = np.minimum(rate[start : start + length] + rng.uniform(0.08, 0.15), 1)
        events.append((start, start + length - 1))
        start += length
    vol = rng.poisson(lam_t)
    neg = rng.binomial(vol, rate)
    buckets = [
        Bucket(start=T0 + i * HOUR, volume=int(v), negatives=int(k), neg_share=k / v if v else 0.0)
        for i, (v, k) in enumerate(zip(vol, neg, strict=True))
    ]
    return Series(buckets, events)


def score(data: list[Series], settings: AlertSettings, scenario: str) -> dict[str, float]:
    """Recall of the injected events and false alerts per 1,000 event-free buckets."""
    hits = total = false = quiet = 0
    for series in data:
        index = {b.start: i for i, b in enumerate(series.buckets)}
        alerted = sorted(index[a["bucket_start"]] for a in detect(series.buckets, settings, "k", "topic"))
        covered = np.zeros(len(series.buckets), dtype=bool)
        for onset, last in series.events:
            covered[onset : last + 3] = True
            until = onset + 2 if scenario == "spike" else last
            hits += any(onset <= i <= until for i in alerted)
            total += 1
        false += sum(not covered[i] for i in alerted)
        quiet += int(np.sum(~covered[settings.window :]))
    return {
        "recall": hits / max(total, 1),
        "false_per_1000": 1000 * false / max(quiet, 1),
        "events": total,
        "false_alerts": false,
        "quiet_buckets": quiet,
    }


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown: one row per scenario × rule set."""
    lines = [
        "| scenario | rules | recall (≤ 2 buckets) | false alerts / 1,000 buckets | events | false alerts |",
        "|---|---|---|---|---|---|",
    ]
    for scenario, by_rules in results.items():
        for rules, r in by_rules.items():
            lines.append(
                f"| {scenario} | {rules} | {r['recall']:.3f} | {r['false_per_1000']:.2f} | {r['events']} | "
                f"{r['false_alerts']} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags: the generator's parameters and alert-setting overrides."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=100)
    p.add_argument("--buckets", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--volume", type=float, nargs=2, default=(20.0, 200.0))
    p.add_argument("--rate", type=float, nargs=2, default=(0.1, 0.3))
    p.add_argument("--concentration", type=float, default=300.0)
    p.add_argument("--gap", type=float, default=150.0)
    p.add_argument("--spike-rate", type=float, nargs=2, default=(0.5, 0.8))
    p.add_argument("--spike-volume", type=float, nargs=2, default=(1.0, 3.0))
    p.add_argument("--scenarios", default="spike,shift")
    p.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    for name, field in AlertSettings.model_fields.items():
        if name != "rules":
            p.add_argument(f"--{name.replace('_', '-')}", type=type(field.default), default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate, detect, score, write the JSON + markdown results."""
    args = parse_args(argv)
    overrides = {k: getattr(args, k) for k in AlertSettings.model_fields if getattr(args, k, None) is not None}
    base = AlertSettings(**overrides)
    started = time.perf_counter()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in args.scenarios.split(","):
        rng = np.random.default_rng([args.seed, ["spike", "shift"].index(scenario)])
        data = [make_series(rng, args, scenario, base.window) for _ in range(args.keys)]
        results[scenario] = {
            name: score(data, base.model_copy(update={"rules": rules}), scenario) for name, rules in RULE_SETS.items()
        }
    seconds = time.perf_counter() - started
    md = table(results)
    settings = base.model_dump(mode="json")
    print(md)
    print(f"\nsettings: {json.dumps(settings)}\n{args.keys} keys × {args.buckets} buckets, {seconds:.1f} s")
    args.output.mkdir(parents=True, exist_ok=True)
    generator = {k: v for k, v in vars(args).items() if k not in AlertSettings.model_fields and k != "output"}
    payload = {"settings": settings, "generator": generator, "results": results, "seconds": seconds}
    (args.output / "watch_alerts.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (args.output / "watch_alerts.md").write_text(f"{md}\n\nsettings: `{json.dumps(settings)}`\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
