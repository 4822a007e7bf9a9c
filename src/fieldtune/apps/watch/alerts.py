"""Alert rules on a key's bucketed series, and the runner that stores and sends what they find.

Two rules look at the negative share of each bucket against a rolling baseline made of the
previous ``window`` buckets (only buckets with at least ``min_volume`` events count: the share of a
2-item bucket is mostly noise; a key too sparse for that is judged against the window's pooled
rate instead, see ``_baseline``):

- ``zscore``: a robust z-score, ``(share - median) / scale`` with ``scale = 1.4826 * MAD``. A
  baseline can be flat (a quiet key with the same share every hour, or MAD = 0 by chance with few
  buckets), which would make any blip an infinite z; so the scale never goes below the binomial
  standard error ``sqrt(p0 (1 - p0) / n)`` at the baseline rate ``p0``, with ``n`` the smaller of
  the baseline's median volume and the bucket's own (the noise a share has at that volume even
  when the past looked flat; a half-empty night bucket is noisier than the day's median), nor
  below :data:`MIN_SCALE`. A bucket alerts when ``z >= z`` *and* a one-sided binomial test of its
  negatives against ``p0`` gives ``p < p_value``; the test knows the bucket's own volume, so a 2 of
  2 negative blip does not pass where a 40 of 50 surge does.
- ``cusum``: a one-sided CUSUM of the same standardised excess, ``S = max(0, S + z - k)``, that
  alarms when ``S > h`` and then restarts from 0. It catches a moderate shift that lasts (each
  bucket a little above the baseline) which no single bucket's z-score would flag. ``k`` and ``h``
  are in baseline standard deviations, not in points of share: on raw shares one (k, h) is too
  deaf for a busy key (share noise ~0.03) and too jumpy for a quiet one (~0.1); measured with
  ``bench/watch_alerts.py``, the standardised sum found more sustained shifts at fewer false
  alerts than any raw-share (k, h) tried.

``detect`` runs the configured rules, applies the per-key, per-rule cooldown, and ignores the
buckets before an accepted baseline ("accept new baseline" after a level shift).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import binomtest

from ...monitoring.webhook import post_webhook
from ...utils.times import utc
from .config import AlertSettings, WatchConfig
from .series import Bucket, bucketize

log = logging.getLogger("fieldtune.watch")

MAD_TO_SD = 1.4826  # makes the MAD a consistent estimate of the standard deviation for normal noise
MIN_SCALE = 0.01  # one point of negative share: below this a z-score measures rounding, not news
KINDS = ("topic", "entity")


def min_baseline(window: int) -> int:
    """Baseline buckets (with ``min_volume`` events) a rule needs before it may judge a bucket.

    A quarter of the window, at least 3: a median and a MAD of fewer points say little, while
    asking for the whole window would keep keys that are quiet at night from ever alerting.
    """
    return max(3, window // 4)


def _windows(values: np.ndarray, w: int) -> np.ndarray:
    """``out[i]`` holds ``values[i - w : i]`` (NaN before the start): the past only, never bucket i."""
    return sliding_window_view(np.concatenate([np.full(w, np.nan), values]), w)[: len(values)]


def _baseline(buckets: Sequence[Bucket], settings: AlertSettings) -> dict[str, np.ndarray]:
    """Per bucket, the baseline of the ``window`` buckets before it: median, MAD, scale, rate.

    Where too few baseline buckets reach ``min_volume`` (a key with 2 mentions an hour) but the
    window is complete and holds at least ``window`` events, the baseline is the window's pooled rate with no MAD:
    the z-score then compares the bucket with the binomial noise at its own volume. Without that,
    a sparse key could never alert, not even when 30 negative stories land in one bucket.
    """
    w = settings.window
    vol = np.array([b.volume for b in buckets], dtype=float)
    neg = np.array([b.negatives for b in buckets], dtype=float)
    counted = vol >= settings.min_volume
    shares = _windows(np.where(counted, neg / np.maximum(vol, 1), np.nan), w)
    enough = np.sum(~np.isnan(shares), axis=1) >= min_baseline(w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: replaced below
        median = np.nanmedian(shares, axis=1)
        mad = np.nanmedian(np.abs(shares - median[:, None]), axis=1)
        typical_volume = np.nanmedian(_windows(np.where(counted, vol, np.nan), w), axis=1)
    window_vol = np.nansum(_windows(vol, w), axis=1)
    # Pooled rate of the window, pulled off 0 and 1 (+0.5 / +1) so the binomial test stays defined.
    rate = (np.nansum(_windows(neg, w), axis=1) + 0.5) / (window_vol + 1.0)
    # A full window behind the bucket, one event per bucket on average: less is guesswork.
    pooled = ~enough & (window_vol >= w) & (np.arange(len(buckets)) >= w)
    median = np.where(enough, median, np.where(pooled, rate, np.nan))
    mad = np.where(enough, mad, np.where(pooled, 0.0, np.nan))
    # The noise floor: the share's binomial standard error at the baseline rate, for the smaller of
    # the baseline's typical volume and the bucket's own (a half-empty night bucket is noisier).
    noise_volume = np.where(enough, np.fmin(typical_volume, np.maximum(vol, 1.0)), np.maximum(vol, 1.0))
    floor = np.sqrt(rate * (1 - rate) / noise_volume)
    scale = np.maximum(np.maximum(MAD_TO_SD * np.nan_to_num(mad), floor), MIN_SCALE)
    return {
        "vol": vol,
        "neg": neg,
        "share": neg / np.maximum(vol, 1),
        "ok": counted & (enough | pooled),
        "pooled": pooled,
        "median": median,
        "mad": mad,
        "scale": scale,
        "rate": rate,
    }


def _row(bucket: Bucket, rule: str, value: float, threshold: float, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": None,
        "kind": None,
        "bucket_start": bucket.start,
        "rule": rule,
        "value": float(value),
        "threshold": float(threshold),
        "items": list(bucket.negative_items),
        "details": {"volume": bucket.volume, "negatives": bucket.negatives, "neg_share": bucket.neg_share, **details},
    }


def zscore_alerts(buckets: Sequence[Bucket], settings: AlertSettings) -> list[dict[str, Any]]:
    """Buckets whose negative share is a robust outlier against the previous ``window`` buckets.

    Args:
        buckets: A contiguous series from :func:`bucketize`.
        settings: ``window``, ``min_volume``, ``z`` and ``p_value`` are used.

    Returns:
        Alert rows (``key`` and ``kind`` still None: :func:`detect` fills them), one per firing
        bucket, no cooldown applied; ``value`` is the z-score, ``details`` holds the baseline
        median, MAD, scale, rate and the binomial p-value.
    """
    if not buckets:
        return []
    s = _baseline(buckets, settings)
    z = (s["share"] - np.nan_to_num(s["median"])) / s["scale"]
    out = []
    for i in np.flatnonzero(s["ok"] & (z >= settings.z)):
        # Only candidates pay for the exact test: it is the slow part and most buckets are not.
        p = binomtest(int(s["neg"][i]), int(s["vol"][i]), float(s["rate"][i]), alternative="greater").pvalue
        if p < settings.p_value:
            details = {
                "baseline_median": float(s["median"][i]),
                "baseline_mad": float(s["mad"][i]),
                "scale": float(s["scale"][i]),
                "baseline_rate": float(s["rate"][i]),
                "baseline": "pooled" if s["pooled"][i] else "buckets",
                "p_value": float(p),
            }
            out.append(_row(buckets[i], "zscore", z[i], settings.z, details))
    return out


def cusum_alerts(buckets: Sequence[Bucket], settings: AlertSettings) -> list[dict[str, Any]]:
    """One-sided CUSUM of the standardised negative share above the rolling median; restarts after an alarm.

    Each bucket adds ``(share - median) / scale - k`` (the z-score of :func:`zscore_alerts`, less the
    slack), the sum never goes below 0, and an alarm fires when it exceeds ``h``.

    A bucket with fewer than ``min_volume`` events (or without enough baseline) leaves the sum
    where it is: its share is too noisy to push the sum up, and a quiet night is no evidence that
    a surge is over either, so it does not pull the sum down.

    Args:
        buckets: A contiguous series from :func:`bucketize`.
        settings: ``window``, ``min_volume``, ``cusum_k`` and ``cusum_h`` are used.

    Returns:
        Alert rows, one per alarm; ``value`` is the sum that crossed ``cusum_h``, ``details`` holds
        the baseline median and scale, and when the run of excess began.
    """
    if not buckets:
        return []
    s = _baseline(buckets, settings)
    total, run_start, out = 0.0, None, []
    for i in np.flatnonzero(s["ok"]):
        total = max(0.0, total + (s["share"][i] - s["median"][i]) / s["scale"][i] - settings.cusum_k)
        if total == 0.0:
            run_start = None
            continue
        run_start = run_start if run_start is not None else buckets[i].start
        if total > settings.cusum_h:
            details = {
                "baseline_median": float(s["median"][i]),
                "scale": float(s["scale"][i]),
                "run_start": run_start.isoformat(),
            }
            out.append(_row(buckets[i], "cusum", total, settings.cusum_h, details))
            total, run_start = 0.0, None
    return out


RULES = {"zscore": zscore_alerts, "cusum": cusum_alerts}


def detect(
    buckets: Sequence[Bucket],
    settings: AlertSettings,
    key: str,
    kind: str,
    baseline_since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every configured rule on one key's series, with cooldown and de-duplication.

    Args:
        buckets: The key's contiguous series from :func:`bucketize`.
        settings: The alert settings (``rules`` says which rules run).
        key: The topic or entity name.
        kind: ``topic`` or ``entity``.
        baseline_since: An accepted baseline: buckets starting before it are ignored, both as
            candidates and as baseline (the level shift the analyst accepted must not look like
            news, nor keep the old level in the median).

    Returns:
        ``watch_alerts`` rows ``{"key", "kind", "bucket_start", "rule", "value", "threshold",
        "items", "details"}`` ordered by bucket: one per surge (the first rule to fire; others firing
        in the same bucket go to ``details["also"]``), then no rule alerts on this key for ``cooldown``
        buckets.

    Raises:
        ValueError: An unknown rule name.
    """
    if baseline_since is not None:
        since = utc(baseline_since)
        buckets = [b for b in buckets if b.start >= since]
    if not buckets:
        return []
    width = buckets[1].start - buckets[0].start if len(buckets) > 1 else None
    out: dict[tuple[datetime, str], dict[str, Any]] = {}
    for rule in dict.fromkeys(settings.rules):
        if rule not in RULES:
            raise ValueError(f"unknown alert rule {rule!r}: use one of {sorted(RULES)}")
        quiet_until: datetime | None = None
        for row in RULES[rule](buckets, settings):
            if quiet_until is not None and row["bucket_start"] <= quiet_until:
                continue
            row.update(key=key, kind=kind)
            out.setdefault((row["bucket_start"], rule), row)
            quiet_until = row["bucket_start"] + settings.cooldown * width if width else None
    return _one_per_surge(
        [out[k] for k in sorted(out, key=lambda k: (k[0], settings.rules.index(k[1])))], settings, width
    )


def _one_per_surge(rows: list[dict[str, Any]], settings: AlertSettings, width: Any) -> list[dict[str, Any]]:
    """One alert per surge and key: the first rule to fire speaks; rules firing in the same bucket are
    listed in its ``details["also"]``, and for ``cooldown`` buckets no rule alerts again on this key
    (a risk team wants one message per surge, not one per statistic)."""
    kept: list[dict[str, Any]] = []
    quiet_until: datetime | None = None
    for row in rows:
        if kept and row["bucket_start"] == kept[-1]["bucket_start"]:
            also = kept[-1]["details"].setdefault("also", [])
            also.append({"rule": row["rule"], "value": row["value"], "threshold": row["threshold"]})
            continue
        if quiet_until is not None and row["bucket_start"] <= quiet_until:
            continue
        kept.append(row)
        quiet_until = row["bucket_start"] + settings.cooldown * width if width else None
    return kept


def _pairs(keys: Mapping[str, Iterable[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(keys, Mapping):
        return [(kind, key) for kind in KINDS for key in keys.get(kind, [])]
    return [(kind, key) for kind, key in keys]


def json_ready(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An alert row as JSON can carry it: datetimes as ISO 8601 strings, NaN as None."""

    def fix(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [fix(v) for v in value]
        return value

    return fix(dict(alert))


def send_alerts(store: Any, url: str, alerts: Sequence[Mapping[str, Any]]) -> int:
    """POST each alert to the webhook and mark the delivered ones sent.

    A failure is logged and the alert keeps ``sent_at`` empty (stored, never lost, resendable);
    the remaining alerts of this call are not tried, so a webhook that is down costs one timeout,
    not one per alert.

    Args:
        store: A ``WatchStore`` (``mark_sent`` is used).
        url: The webhook URL.
        alerts: Stored alert rows (with their ``id``).

    Returns:
        How many were delivered.
    """
    for done, alert in enumerate(alerts):
        error = post_webhook(url, json_ready(alert))
        if error:
            log.warning("watch webhook %s failed (%s): %d alert(s) left unsent", url, error, len(alerts) - done)
            return done
        store.mark_sent(alert["id"])
        if isinstance(alert, dict):
            alert["sent_at"] = datetime.now(timezone.utc)  # what the store now holds, give or take
    return len(alerts)


def run_detection(
    store: Any,
    cfg: WatchConfig,
    keys: Mapping[str, Iterable[str]] | Iterable[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Run the rules on every key's series; store the new alerts and send them to the webhook.

    Re-running is safe: the store keeps one row per (key, kind, bucket_start, rule), so alerts
    found before are not stored, returned or sent again. Alerts still unsent (the webhook failed,
    or was configured later) are posted again before the new ones.

    Args:
        store: A ``WatchStore`` (``keys``, ``baselines``, ``mentions``, ``add_alerts``, ``alerts``,
            ``mark_sent``).
        cfg: The watch config (``bucket``, ``alerts``, ``webhook``).
        keys: ``{"topic": [...], "entity": [...]}`` or ``(kind, key)`` pairs to look at
            (default: every key with mentions).

    Returns:
        The alerts that are new, as stored (with ``id``; ``sent_at`` set when the webhook took it).
    """
    baselines = store.baselines()
    new: list[dict[str, Any]] = []
    for kind, key in _pairs(store.keys() if keys is None else keys):
        since = baselines.get((kind, key))
        buckets = bucketize(store.mentions(kind, key, since, None), cfg.bucket)
        found = detect(buckets, cfg.alerts, key, kind, since)
        if found:
            new.extend(store.add_alerts(found))
    if cfg.webhook:
        # Alerts a failed webhook left unsent go first, oldest first: delivery is late, never lost.
        fresh = {a["id"] for a in new}
        unsent = [a for a in store.alerts() if a.get("sent_at") is None and a["id"] not in fresh]
        send_alerts(store, cfg.webhook, unsent + new)
    return new
