"""The watch config: one YAML file naming the models, topics, entities, buckets and alert rules.

```yaml
sentiment: models/sentiment          # a fieldtune model folder (labels: positive / negative / neutral)
topics:                              # a model folder, or a few example phrases per topic
  earnings: [quarterly profit beats forecasts, revenue falls short]
  legal: [regulator fines the bank, lawsuit filed against]
entities:                            # name: aliases (the name itself always counts)
  ICBC: [Industrial and Commercial Bank of China, 工商银行]
bucket: 1h                           # 5min ... 1d
alerts: {z: 4.0, min_volume: 5}      # every rule setting has a default
db: sqlite:///watch.db               # default: watch.db beside this file; PostgreSQL by URL
```

Relative paths (models, a SQLite file) are taken from the config file's folder, so a config and its
models can move together.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ...config import describe_error, read_yaml
from ...errors import UserError

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600}
_UNITS |= {"d": 86400, "day": 86400}
MIN_BUCKET = timedelta(minutes=1)


def parse_duration(value: Any) -> timedelta:
    """``"5min"``, ``"1h"``, ``"1d"``, ``"90s"`` (or a number of seconds, or a timedelta) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*", str(value).lower())
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"{value!r} is not a duration: use e.g. 5min, 15min, 1h, 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)


class AlertSettings(_Strict):
    """When a surge of negative news becomes an alert (defaults measured by ``bench/watch_alerts.py``)."""

    window: int = Field(24, ge=3, description="Buckets in the rolling baseline before the bucket tested.")
    min_volume: int = Field(5, ge=1, description="Items a bucket needs before any rule may fire on it.")
    z: float = Field(4.0, gt=0, description="Robust z-score threshold on the negative share (median/MAD).")
    p_value: float = Field(
        0.01, gt=0, lt=1, description="One-sided binomial test gate: negatives vs the baseline rate."
    )
    cusum_k: float = Field(
        0.75,
        ge=0,
        description="CUSUM slack in baseline standard deviations (robust z units): smaller shifts are ignored.",
    )
    cusum_h: float = Field(6.0, gt=0, description="CUSUM decision threshold: accumulated excess z over the slack.")
    cooldown: int = Field(6, ge=0, description="Buckets during which a key does not alert again for the same rule.")
    rules: tuple[Literal["zscore", "cusum"], ...] = Field(("zscore", "cusum"), description="Rules that may alert.")


class WatchConfig(_Strict):
    """A validated watch config; build it with :func:`load_watch_config`."""

    path: Path = Field(Path("watch.yaml"), description="The YAML file (set by the loader).")
    db: str = Field("", description="SQLAlchemy URL; default sqlite:///<config folder>/watch.db.")
    sentiment: Path = Field(description="Sentiment model folder; its labels include positive, negative, neutral.")
    topics: Path | dict[str, list[str]] = Field(
        default_factory=dict, description="A topic model folder, or {topic: [a few example phrases]}."
    )
    topic_threshold: float | None = Field(
        None, gt=0, lt=1, description="Example-phrase topics: cosine to a topic's centroid (null: the measured 0.25)."
    )
    entities: dict[str, list[str]] = Field(default_factory=dict, description="{name: [aliases]} to follow.")
    ner: Path | None = Field(None, description="Optional NER model folder: organisation mentions beyond the list.")
    bucket: timedelta = Field(timedelta(hours=1), description="Time bucket of the series: 5min ... 1d.")
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    dedup_threshold: float = Field(0.92, gt=0, le=1, description="Cosine similarity above which stories are copies.")
    dedup_window: timedelta = Field(timedelta(hours=24), description="How far back copies are looked for.")
    webhook: str | None = Field(None, description="URL that receives each new alert as JSON (POST).")
    backend: str = Field("auto", description="Predictor backend: auto, torch, onnx, onnx-int8.")
    batch_size: int = Field(
        256,
        ge=1,
        description="Items claimed and scored together (the models run them 64 at a time, sorted by length: "
        "256 items per claim scored 2x the items/s of 64, bench/RESULTS.md).",
    )

    @field_validator("bucket", "dedup_window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("entities", mode="before")
    @classmethod
    def _aliases(cls, value: Any) -> Any:
        """``{name: null}`` and ``{name: "alias"}`` are forgiven; the name always counts as an alias."""
        if not isinstance(value, dict):
            return value
        out = {}
        for name, aliases in value.items():
            aliases = [] if aliases is None else [aliases] if isinstance(aliases, str) else aliases
            if not isinstance(aliases, list):
                return value  # let pydantic name the field and the bad value
            out[str(name)] = list(dict.fromkeys([str(name), *map(str, aliases)]))
        return out

    @model_validator(mode="after")
    def _check(self) -> WatchConfig:
        if self.bucket < MIN_BUCKET:
            raise ValueError(f"bucket {self.bucket} is shorter than {MIN_BUCKET}")
        if isinstance(self.topics, dict):
            empty = [name for name, phrases in self.topics.items() if not phrases]
            if empty:
                raise ValueError(f"topics {empty} have no example phrases: give each topic two or three")
        return self


def load_watch_config(source: str | Path | dict[str, Any], base_dir: str | Path | None = None) -> WatchConfig:
    """Read and validate a watch config; relative paths are resolved from the file's folder.

    Args:
        source: A YAML file or a dict (tests, the Python API).
        base_dir: Folder for relative paths when ``source`` is a dict (default: the current one).

    Raises:
        UserError: Missing file, bad YAML, unknown keys, bad values, a model folder that does not exist.
    """
    if isinstance(source, dict):
        raw, path = dict(source), Path(base_dir or ".") / "watch.yaml"
    else:
        path = Path(source)
        raw = read_yaml(path)
    raw["path"] = path
    try:
        cfg = WatchConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_error(err, source), hint="see the watch config section of the README") from None
    return _resolved(cfg, path.parent)


def _resolved(cfg: WatchConfig, folder: Path) -> WatchConfig:
    def local(p: Path) -> Path:
        return p if p.is_absolute() else folder / p

    cfg.sentiment = _model_folder(local(cfg.sentiment), "sentiment", cfg.path)
    if isinstance(cfg.topics, Path):
        cfg.topics = _model_folder(local(cfg.topics), "topics", cfg.path)
    if cfg.ner is not None:
        cfg.ner = _model_folder(local(cfg.ner), "ner", cfg.path)
    cfg.db = _db_url(cfg.db, folder)
    return cfg


def _model_folder(path: Path, key: str, config: Path) -> Path:
    if not path.is_dir():
        raise UserError(
            f"{key}: model folder {path} does not exist",
            path=config,
            hint=f"train one with `fieldtune train` and point `{key}:` at its model/ folder (relative to the config)",
        )
    return path


def _db_url(url: str, folder: Path) -> str:
    if not url:
        return f"sqlite:///{(folder / 'watch.db').resolve()}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(
            f"db: not a database URL: {url!r}", hint="sqlite:///watch.db or postgresql://user@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        db = Path(parsed.database)
        if not db.is_absolute():
            return parsed.set(database=str((folder / db).resolve())).render_as_string(hide_password=False)
    return url
