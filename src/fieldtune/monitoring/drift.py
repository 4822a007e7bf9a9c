"""Drift: is the recent traffic of a model version still like the data it was trained for?

``check_drift`` compares a window of logged predictions (the last N, or a time range) with the
version's training reference (:mod:`.reference`) on four checks:

- ``label_shift``: PSI between the predicted-label distributions, with a chi-square p-value;
- ``confidence_drop``: how much lower the mean confidence is, with a KS p-value;
- ``embedding_shift``: an MMD² permutation test on sentence embeddings, and the cosine distance
  between the two centroids;
- ``unseen_vocabulary``: how much the rate of words never seen in training went up.

A check that cannot be computed says why (inputs logged as hashes have no text to embed; NER
predictions have no single label) rather than disappearing. The same statistics over earlier
windows of the version's history give the plot. ``write_report`` writes ``report.md``,
``drift.png`` and ``drift.json`` (the payload ``post_webhook`` sends).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .reference import (
    REFERENCE_HINT,
    Reference,
    default_cache_dir,
    embed,
    label_items,
    load_reference,
    oov_rate,
    seeded_sample,
    write_atomic,
)

CHECKS = ("label_shift", "confidence_drop", "embedding_shift", "unseen_vocabulary")
WINDOW = 500  # the default window: the last 500 predictions
MAX_EMBEDDINGS = 500  # window texts embedded for the MMD test (seeded sample)
HISTORY_EMBEDDINGS = 100  # per earlier window of the plot: keeps 20 windows to seconds of CPU
PERMUTATIONS = 200  # the smallest reachable p-value is 1/201, below the 0.01 threshold
PSI_EPS = 1e-4  # a label absent on one side counts as this share, so PSI stays finite
HASHED = "the inputs were logged as sha256 hashes only (FIELDTUNE_LOG_INPUTS=hash): no text to"


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


@dataclass
class Check:
    """One check's verdict. ``reason`` is set when it could not be computed."""

    value: float | None
    threshold: float | None
    drifted: bool
    rule: str
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    private: dict[str, Any] = field(default_factory=dict)  # report.md only: may quote user text

    @property
    def status(self) -> str:
        return "unavailable" if self.reason else ("drift" if self.drifted else "ok")

    def as_dict(self) -> dict[str, Any]:
        out = {
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "rule": self.rule,
        }
        if self.reason:
            out["reason"] = self.reason
        return {**out, **self.details}


def _unavailable(threshold: float, rule: str, reason: str) -> Check:
    return Check(None, threshold, False, rule, reason=reason)


@dataclass
class DriftReport:
    """The checks of one window against the reference, and the same statistics over time."""

    model_version: str
    task: str
    window: dict[str, Any]
    checks: dict[str, Check]
    reference: dict[str, Any]
    history: list[dict[str, Any]]
    thresholds: Thresholds
    created: str
    notes: list[str] = field(default_factory=list)
    output_dir: Path | None = None

    @property
    def drifted(self) -> bool:
        return any(c.drifted for c in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        """What ``drift.json`` holds and a webhook receives (no user text in it)."""
        from ..serving.model import json_safe

        return json_safe(
            {
                "model_version": self.model_version,
                "task": self.task,
                "window": self.window,
                "drifted": self.drifted,
                "checks": {name: check.as_dict() for name, check in self.checks.items()},
                "thresholds": asdict(self.thresholds),
                "reference": self.reference,
                "history": self.history,
                "notes": self.notes,
                "created": self.created,
                "report": str(self.output_dir) if self.output_dir else None,
            }
        )


# --- statistics -----------------------------------------------------------------------------------


def _shares(counts: Any, eps: float = PSI_EPS) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    p = np.maximum(c / max(c.sum(), 1.0), eps)
    return p / p.sum()


def psi(reference_counts: Any, window_counts: Any, eps: float = PSI_EPS) -> float:
    """Population stability index sum((w - r) * ln(w / r)) over the bins' shares, zero shares
    replaced by ``eps``. 0 for identical distributions; symmetric; > 0.2 is a large shift."""
    r, w = _shares(reference_counts, eps), _shares(window_counts, eps)
    return float(np.sum((w - r) * np.log(w / r)))


def chi2_pvalue(reference_counts: Any, window_counts: Any) -> float:
    """p-value of the chi-square test that both count vectors come from one distribution."""
    from scipy.stats import chi2_contingency

    table = np.asarray([reference_counts, window_counts], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(chi2_contingency(table, correction=False)[1])


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0) -> tuple[float, float]:
    """(unbiased MMD², permutation p-value) between two samples of vectors.

    RBF kernel exp(-d² / (2σ²)) with σ² the median squared distance of the pooled sample (the
    median heuristic). The kernel matrix is computed once; every permutation's statistic is a
    pair of matrix products over 0/1 membership vectors, so 200 permutations of 1,000 points take
    well under a second. The p-value is (1 + #{null ≥ observed}) / (1 + permutations).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("the MMD test needs at least 2 points per sample")
    z = np.concatenate([x, y])
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    off = d2[~np.eye(m + n, dtype=bool)]
    sigma2 = float(np.median(off))
    if sigma2 <= 0:
        sigma2 = float(off.mean()) or 1.0  # more than half the pairs identical
    k = np.exp(-d2 / (2.0 * sigma2))
    np.fill_diagonal(k, 0.0)  # unbiased: no k(x_i, x_i) terms

    rng = np.random.default_rng(seed)
    members = np.zeros((permutations + 1, m + n))
    members[0, :m] = 1.0  # the observed split first
    order = np.argsort(rng.random((permutations, m + n)), axis=1)[:, :m]
    np.put_along_axis(members[1:], order, 1.0, axis=1)
    a, b = members, 1.0 - members
    ka, kb = a @ k, b @ k
    stats = (
        np.einsum("ij,ij->i", ka, a) / (m * (m - 1))
        + np.einsum("ij,ij->i", kb, b) / (n * (n - 1))
        - 2.0 * np.einsum("ij,ij->i", ka, b) / (m * n)
    )
    observed = stats[0]
    p = (1.0 + np.sum(stats[1:] >= observed - 1e-12)) / (1.0 + permutations)
    return float(observed), float(p)


def centroid_distance(x: np.ndarray, y: np.ndarray) -> float:
    """1 - cosine similarity of the two mean vectors."""
    cx, cy = np.asarray(x).mean(axis=0), np.asarray(y).mean(axis=0)
    denom = float(np.linalg.norm(cx) * np.linalg.norm(cy))
    return float(1.0 - (cx @ cy) / denom) if denom > 0 else 0.0


# --- the checks -----------------------------------------------------------------------------------


class _Embedder:
    """Embeds each distinct text once per run (the window is also the plot's last window)."""

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, embed(missing)))
        return np.stack([self.cache[t] for t in texts])


def label_check(ref: Reference, rows: list[Any], t: Thresholds) -> Check:
    rule = f"psi > {t.psi} and chi2_p < {t.label_p}"
    if ref.task == "ner":
        return _unavailable(t.psi, rule, "NER predictions have no single label to count")
    window: Counter = Counter()
    for row in rows:
        window.update(label_items(ref.task, row.label) or [])
    if not window:
        return _unavailable(t.psi, rule, "no predicted labels in the window")
    if not ref.label_counts:
        return _unavailable(t.psi, rule, "the reference has no predicted labels")
    space = list(dict.fromkeys([*ref.labels, *ref.label_counts, *window]))
    r = np.array([ref.label_counts.get(x, 0) for x in space], dtype=np.float64)
    w = np.array([window.get(x, 0) for x in space], dtype=np.float64)
    value, p = psi(r, w), chi2_pvalue(r, w)
    rs, ws = r / r.sum(), w / w.sum()
    top = np.argsort(-np.abs(ws - rs))[:5]
    changes = [
        {"label": space[i], "reference": round(float(rs[i]), 4), "window": round(float(ws[i]), 4)}
        for i in top
        if ws[i] != rs[i]
    ]
    return Check(
        value,
        t.psi,
        value > t.psi and p < t.label_p,
        rule,
        {"psi": value, "chi2_p": p, "labels": len(space), "top_changes": changes},
    )


def confidence_check(ref: Reference, rows: list[Any], t: Thresholds) -> Check:
    rule = f"reference mean - window mean > {t.confidence_drop}"
    window = np.array([row.confidence for row in rows if row.confidence is not None], dtype=np.float64)
    if len(window) < 2 or len(ref.confidences) < 2:
        side = "window" if len(window) < 2 else "reference"
        return _unavailable(
            t.confidence_drop, rule, f"too few confidences in the {side} (NER without entities has none)"
        )
    from scipy.stats import ks_2samp

    ref_mean, win_mean = float(ref.confidences.mean()), float(window.mean())
    drop = ref_mean - win_mean
    details = {
        "reference_mean": ref_mean,
        "window_mean": win_mean,
        "ks_p": float(ks_2samp(ref.confidences, window).pvalue),
        "scored": int(len(window)),
    }
    return Check(drop, t.confidence_drop, drop > t.confidence_drop, rule, details)


def _texts_or_reason(rows: list[Any], t: Thresholds, what: str) -> tuple[list[str], str | None]:
    texts = [row.text for row in rows if row.text]
    if not texts:
        return texts, f"{HASHED} {what}"
    if len(texts) < t.min_predictions:
        return (
            texts,
            f"only {len(texts)} of {len(rows)} predictions were logged with their text (need {t.min_predictions})",
        )
    return texts, None


def embedding_check(
    ref: Reference,
    rows: list[Any],
    t: Thresholds,
    embedder: _Embedder,
    *,
    max_embeddings: int = MAX_EMBEDDINGS,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> Check:
    rule = f"mmd_p < {t.mmd_p}"
    texts, reason = _texts_or_reason(rows, t, "embed")
    if reason:
        return _unavailable(t.mmd_p, rule, reason)
    if len(ref.embeddings) < 2:
        return _unavailable(t.mmd_p, rule, "the reference has fewer than 2 embedded texts")
    sample = [texts[i] for i in seeded_sample(len(texts), max_embeddings, seed)]
    window = embedder(sample)
    mmd2, p = mmd_test(ref.embeddings, window, permutations, seed)
    details = {
        "p_value": p,
        "mmd2": mmd2,
        "centroid_cosine_distance": centroid_distance(ref.embeddings, window),
        "reference_n": int(len(ref.embeddings)),
        "window_n": len(sample),
        "permutations": permutations,
    }
    return Check(p, t.mmd_p, p < t.mmd_p, rule, details)


def vocabulary_check(ref: Reference, rows: list[Any], t: Thresholds) -> Check:
    rule = f"window rate - reference rate > {t.oov_increase}"
    texts, reason = _texts_or_reason(rows, t, "count words in")
    if reason:
        return _unavailable(t.oov_increase, rule, reason)
    rate, unseen = oov_rate(texts, ref.vocab)
    increase = rate - ref.oov_rate
    details = {"window_rate": rate, "reference_rate": ref.oov_rate, "vocab_source": ref.vocab_source}
    private = {"top_unseen": unseen.most_common(15)}
    return Check(increase, t.oov_increase, increase > t.oov_increase, rule, details, private=private)


def run_checks(
    ref: Reference, rows: list[Any], t: Thresholds, embedder: _Embedder, *, max_embeddings: int = MAX_EMBEDDINGS
) -> dict[str, Check]:
    """The four checks of ``rows`` (logged predictions) against ``ref``."""
    return {
        "label_shift": label_check(ref, rows, t),
        "confidence_drop": confidence_check(ref, rows, t),
        "embedding_shift": embedding_check(ref, rows, t, embedder, max_embeddings=max_embeddings),
        "unseen_vocabulary": vocabulary_check(ref, rows, t),
    }


# --- the window, the model, the report --------------------------------------------------------------


def parse_time(value: str | None, now: datetime | None = None) -> datetime | None:
    """An ISO date/time (naive means UTC) or a duration back from now: ``30m``, ``24h``, ``7d``."""
    if not value:
        return None
    now = now or datetime.now(timezone.utc)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", value)
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return now - timedelta(**{unit: float(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"not a time: {value!r}", hint="use ISO 8601 (2024-05-01T12:00) or a duration (24h, 7d)"
        ) from None
    return _utc(parsed)


def _utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _iso(dt: datetime) -> str:
    return _utc(dt).isoformat(timespec="seconds").replace("+00:00", "Z")


def resolve_model(store: Any, version: str | None, model: Path | None) -> tuple[Path, dict[str, Any], str]:
    """(artifact folder, fieldtune.json, version): from ``model`` (a path), the registry's
    ``version`` (or a unique prefix of it), or the registry's champion."""
    from ..serving.model import check_model_dir, model_version

    if model is not None:
        model_dir, meta = check_model_dir(model)
        found = model_version(meta)
        if version and version != found:
            raise UserError(f"{model} holds version {found}, not {version}", hint="drop --version or fix --model")
        return model_dir, meta, found
    if version:
        row = store.find_model(version)
        if row is None:  # a unique prefix is enough, as in `fieldtune registry show`
            matches = [m for m in store.models() if m.version.startswith(version)]
            row = matches[0] if len(matches) == 1 else None
        if row is None:
            raise UserError(
                f"model version {version!r} is not in the registry",
                hint="register it (fieldtune registry add) or pass its artifact with --model PATH",
            )
    else:
        row = store.champion()
        if row is None:
            raise UserError("the registry has no champion", hint="pass --version V or --model PATH")
    model_dir, meta = check_model_dir(row.path)
    return model_dir, meta, row.version


def select_window(
    store: Any,
    version: str,
    *,
    window: int | None,
    since: datetime | None,
    until: datetime | None,
    minimum: int,
) -> tuple[list[Any], dict[str, Any]]:
    """The logged predictions to judge: the last ``window``, or those in [since, until) (the last
    ``window`` of them when both are given)."""
    if window is not None and window < minimum:
        raise UserError(
            f"a window of {window} predictions is too small to judge drift",
            hint=f"use --window {minimum} or more (threshold min_predictions={minimum})",
        )
    ranged = since is not None or until is not None
    last = window if window is not None else (None if ranged else WINDOW)
    rows = store.predictions(
        model_version=version,
        since=since.astimezone(timezone.utc) if since else None,
        until=until.astimezone(timezone.utc) if until else None,
        last=last,
    )
    if len(rows) < minimum:
        where = (
            f" between {_iso(since) if since else 'the start'} and {_iso(until) if until else 'now'}" if ranged else ""
        )
        raise UserError(
            f"only {len(rows)} logged predictions of model {version}{where}; drift needs at least {minimum}",
            hint="wait for more traffic, widen the window (--since 7d), or check --version / --db",
        )
    selection = f"last {last}" if last else "all"
    if since or until:
        selection += f" in [{_iso(since) if since else '-'}, {_iso(until) if until else 'now'})"
    info = {
        "selection": selection,
        "predictions": len(rows),
        "texts": sum(1 for r in rows if r.text),
        "from": _iso(rows[0].created_at),
        "to": _iso(rows[-1].created_at),
    }
    return rows, info


def check_drift(
    store: Any,
    version: str | None = None,
    *,
    model: Path | None = None,
    window: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    thresholds: Thresholds = Thresholds(),
    reference_file: Path | None = None,
    cache_dir: Path | None = None,
    refresh_reference: bool = False,
    history: int = 20,
    backend: str = "auto",
) -> DriftReport:
    """Compare a window of a version's logged predictions with its training reference.

    Args:
        store: A :class:`~fieldtune.store.Store`.
        version: The model version (default: the registry's champion).
        model: Its artifact folder, for a version served without the registry.
        window: The last N predictions (default 500 without ``since``/``until``).
        since, until: A time range of predictions instead (UTC when naive).
        reference_file: Reference texts instead of the model's held-out data.
        cache_dir: Where references are cached (default ``.drift/`` beside a SQLite store).
        history: Windows of the same size, ending with this one, for the plot (0 or 1: none).

    Raises:
        UserError: Unknown version, missing reference data, or too few predictions.
    """
    model_dir, meta, version = resolve_model(store, version, model)
    rows, info = select_window(
        store, version, window=window, since=since, until=until, minimum=thresholds.min_predictions
    )
    cache = Path(cache_dir) if cache_dir else default_cache_dir(getattr(store, "url", None))
    ref = load_reference(
        model_dir, meta, version, cache, reference_file=reference_file, refresh=refresh_reference, backend=backend
    )
    embedder = _Embedder()
    checks = run_checks(ref, rows, thresholds, embedder)
    notes = list(ref.notes)
    if 0 < info["texts"] < info["predictions"]:
        notes.append(f"{info['predictions'] - info['texts']} predictions in the window were logged as hashes only")
    past = _history(store, version, rows, ref, thresholds, embedder, history, checks)
    return DriftReport(
        model_version=version,
        task=ref.task,
        window=info,
        checks=checks,
        reference=ref.summary(),
        history=past,
        thresholds=thresholds,
        created=_iso(datetime.now(timezone.utc)),
        notes=notes,
    )


def _history(
    store: Any,
    version: str,
    rows: list[Any],
    ref: Reference,
    t: Thresholds,
    embedder: _Embedder,
    chunks: int,
    current: dict[str, Check],
) -> list[dict[str, Any]]:
    """The statistics over up to ``chunks`` consecutive windows of ``len(rows)`` predictions,
    oldest first, the last being the current window. Earlier windows embed a sample of
    ``HISTORY_EMBEDDINGS`` texts each."""
    size = len(rows)
    windows: list[list[Any]] = []
    if chunks > 1:
        older = store.predictions(model_version=version, until=rows[0].created_at, last=(chunks - 1) * size)
        for end in range(len(older), 0, -size):
            part = older[max(0, end - size) : end]
            if len(part) >= t.min_predictions:
                windows.insert(0, part)
    out = []
    for part in windows:
        out.append(_point(part, run_checks(ref, part, t, embedder, max_embeddings=HISTORY_EMBEDDINGS)))
    out.append(_point(rows, current))
    return out


def _point(rows: list[Any], checks: dict[str, Check]) -> dict[str, Any]:
    point: dict[str, Any] = {
        "from": _iso(rows[0].created_at),
        "to": _iso(rows[-1].created_at),
        "predictions": len(rows),
    }
    for name, check in checks.items():
        point[name] = {"value": check.value, "drifted": check.drifted} if check.reason is None else None
    return point


# --- outputs ------------------------------------------------------------------------------------------


def default_output_dir(root: Path = Path("runs") / "drift") -> Path:
    """``runs/drift/<UTC time>``, suffixed when two reports start within a second."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path, n = root / stamp, 1
    while path.exists():
        path, n = root / f"{stamp}-{n}", n + 1
    return path


def write_report(report: DriftReport, output_dir: Path | None = None) -> Path:
    """Write ``drift.json``, ``drift.png`` and ``report.md`` into ``output_dir``; returns it."""
    output_dir = Path(output_dir) if output_dir else default_output_dir()
    output_dir.mkdir(parents=True, exist_ok=True)
    report.output_dir = output_dir
    payload = report.as_json()
    write_atomic(output_dir / "drift.json", json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"))
    drift_png(report.history, report.thresholds, report.checks, output_dir / "drift.png")
    write_atomic(output_dir / "report.md", render_markdown(report).encode("utf-8"))
    return output_dir


PANELS = (  # (check, title, threshold field, log scale)
    ("label_shift", "predicted-label PSI", "psi", False),
    ("confidence_drop", "confidence drop (reference - window)", "confidence_drop", False),
    ("embedding_shift", "embedding MMD p-value (lower = more shift)", "mmd_p", True),
    ("unseen_vocabulary", "unseen-word rate increase", "oov_increase", False),
)


def drift_png(history: list[dict[str, Any]], t: Thresholds, checks: dict[str, Check], path: Path) -> str:
    """One panel per statistic over the windows of the history; the threshold dashed, drift in red."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(8, 2.3 * len(PANELS)), sharex=True)
    xs = np.arange(len(history))
    for ax, (name, title, key, log) in zip(axes, PANELS):
        points = [h.get(name) for h in history]
        ys = np.array([p["value"] if p and p["value"] is not None else np.nan for p in points], dtype=float)
        ax.set_title(title, fontsize=9)
        if np.isnan(ys).all():
            reason = checks[name].reason or "not computed"
            ax.text(0.5, 0.5, f"unavailable: {reason}", ha="center", va="center", fontsize=8, wrap=True)
            ax.set_yticks([])
            continue
        ax.plot(xs, ys, "o-", color="tab:blue", lw=1.2, ms=4)
        red = [i for i, p in enumerate(points) if p and p["drifted"]]
        ax.plot(xs[red], ys[red], "o", color="tab:red", ms=6, label="drift")
        ax.axhline(getattr(t, key), color="gray", ls="--", lw=1, label=f"threshold {getattr(t, key)}")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(1 / (PERMUTATIONS + 1) / 2, 1.05)
        ax.legend(fontsize=7, loc="best")
    labels = [h["to"][5:16].replace("T", " ") for h in history]
    axes[-1].set_xticks(
        xs, labels, rotation=30 if len(xs) > 6 else 0, fontsize=7, ha="right" if len(xs) > 6 else "center"
    )
    axes[-1].set_xlabel(f"windows of up to {history[-1]['predictions']} predictions, by last prediction (UTC)")
    fig.suptitle("Drift over time (last window = this report)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def render_markdown(report: DriftReport) -> str:
    """The human-readable report: verdict, checks, their details, the plot and the history."""
    w, ref = report.window, report.reference
    verdict = "**DRIFT**" if report.drifted else "**no drift**"
    lines = [
        f"# Drift report: model {report.model_version}",
        "",
        f"{verdict} — {report.created}",
        "",
        f"- window: {w['predictions']} predictions ({w['selection']}), {w['from']} to {w['to']}, "
        f"{w['texts']} with text",
        f"- reference: {ref['source']} — {ref['texts']} texts, {ref['embedded']} embedded, vocabulary from "
        f"{ref['vocab_source']} ({ref['vocab_size']} words)",
        "",
        "| check | status | value | threshold | rule |",
        "|---|---|---|---|---|",
    ]
    for name, c in report.checks.items():
        status = f"unavailable: {c.reason}" if c.reason else c.status
        lines.append(f"| {name} | {status} | {_fmt(c.value)} | {_fmt(c.threshold)} | `{c.rule}` |")
    lines += ["", "## Details", ""]
    c = report.checks["label_shift"]
    if not c.reason:
        lines.append(f"- label shift: PSI {_fmt(c.details['psi'])}, chi-square p {_fmt(c.details['chi2_p'])}")
        for ch in c.details["top_changes"]:
            lines.append(
                f"  - `{ch['label']}`: {ch['reference']:.1%} of the reference, {ch['window']:.1%} of the window"
            )
    c = report.checks["confidence_drop"]
    if not c.reason:
        lines.append(
            f"- confidence: mean {_fmt(c.details['reference_mean'])} (reference) vs {_fmt(c.details['window_mean'])} "
            f"(window), KS p {_fmt(c.details['ks_p'])}"
        )
    c = report.checks["embedding_shift"]
    if not c.reason:
        lines.append(
            f"- embeddings ({ref['embedder']}): MMD² {_fmt(c.details['mmd2'])}, "
            f"permutation p {_fmt(c.details['p_value'])} "
            f"({c.details['permutations']} permutations, {c.details['reference_n']} vs {c.details['window_n']} texts), "
            f"centroid cosine distance {_fmt(c.details['centroid_cosine_distance'])}"
        )
    c = report.checks["unseen_vocabulary"]
    if not c.reason:
        lines.append(
            f"- unseen words: {c.details['window_rate']:.1%} of the window's words vs "
            f"{c.details['reference_rate']:.1%} of the reference's"
        )
        top = c.private.get("top_unseen") or []
        if top:
            lines.append("  - most frequent: " + ", ".join(f"`{word}` ({n})" for word, n in top))
    lines += ["", "## Over time", "", "![drift over time](drift.png)", ""]
    if len(report.history) > 1:
        lines += [f"Earlier windows embed a seeded sample of {HISTORY_EMBEDDINGS} texts each for the MMD test.", ""]
    lines += ["| window end | predictions | " + " | ".join(CHECKS) + " |", "|---|---|" + "---|" * len(CHECKS)]
    for h in report.history:
        cells = []
        for name in CHECKS:
            p = h.get(name)
            cells.append("–" if not p else _fmt(p["value"]) + (" ⚠" if p["drifted"] else ""))
        lines.append(f"| {h['to']} | {h['predictions']} | " + " | ".join(cells) + " |")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    t = report.thresholds
    lines += [
        "",
        f"Thresholds: PSI > {t.psi} with chi-square p < {t.label_p}; confidence drop > {t.confidence_drop}; "
        f"MMD p < {t.mmd_p}; unseen-word increase > {t.oov_increase}; at least {t.min_predictions} predictions.",
        "",
    ]
    return "\n".join(lines)


def check_webhook_url(url: str) -> str:
    """Only http(s): urllib would also open file:// and ftp:// URLs."""
    if not re.match(r"^https?://[^/\s]+", url or ""):
        raise UserError(f"not an http(s) URL: {url!r}", hint="--webhook https://hooks.example.com/...")
    return url


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 10.0) -> str | None:
    """POST ``payload`` as JSON; returns None on a 2xx answer, else what went wrong (never raises:
    a failed alert must not hide the drift verdict)."""
    from .. import __version__

    request = urllib.request.Request(
        check_webhook_url(url),
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": f"fieldtune/{__version__}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            response.read()
        return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return str(getattr(e, "reason", e))


__all__ = [
    "CHECKS",
    "REFERENCE_HINT",
    "Check",
    "DriftReport",
    "Thresholds",
    "centroid_distance",
    "check_drift",
    "chi2_pvalue",
    "mmd_test",
    "post_webhook",
    "psi",
    "write_report",
]
