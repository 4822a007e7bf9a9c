"""``Store``: every read and write of predictions, feedback and the registry, each in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..errors import UserError
from ..utils.hashing import text_sha256
from .db import database_url, make_engine, migrate, safe_url, write_lock
from .models import STAGES, Decision, Feedback, ModelVersion, Prediction, utcnow


class Store:
    """Predictions, feedback and the model registry in one database.

    ``Store()`` opens ``FIELDTUNE_DB_URL`` or ``sqlite:///runs/fieldtune.db`` and migrates it
    to the newest schema.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = database_url(url)
        self.engine = make_engine(self.url)
        migrate(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Store({safe_url(self.url)})"

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return self._session()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in a write transaction (committed on leaving), under the SQLite write lock."""
        with write_lock(self.engine), self.session() as s, s.begin():
            yield s

    # --- predictions -------------------------------------------------------------------------
    def log_predictions(self, rows: list[dict[str, Any]]) -> None:
        """Insert prediction rows (dicts with the :class:`Prediction` columns) in one transaction."""
        if rows:
            with self.writing() as s:
                s.execute(insert(Prediction), rows)

    def prediction(self, prediction_id: str) -> Prediction | None:
        with self.session() as s:
            return s.get(Prediction, prediction_id)

    def predictions(
        self,
        *,
        model_version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        last: int | None = None,
    ) -> list[Prediction]:
        """Logged predictions, oldest first; ``last=N`` keeps the N newest."""
        q = select(Prediction)
        if model_version:
            q = q.where(Prediction.model_version == model_version)
        if since:
            q = q.where(Prediction.created_at >= since)
        if until:
            q = q.where(Prediction.created_at < until)
        q = q.order_by(Prediction.created_at.desc(), Prediction.id.desc())
        if last:
            q = q.limit(last)
        with self.session() as s:
            return list(reversed(s.scalars(q).all()))

    def count(self, table: type) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(table)) or 0

    # --- feedback ----------------------------------------------------------------------------
    def add_feedback(self, rows: Iterable[dict[str, Any]]) -> list[int]:
        """Insert corrections in one transaction (all or none); returns their ids."""
        now = utcnow()
        ids = []
        with self.writing() as s:
            for row in rows:
                item = Feedback(
                    prediction_id=row.get("prediction_id"),
                    model_version=row.get("model_version"),
                    text=row.get("text"),
                    text_hash=row.get("text_hash") or text_sha256(row.get("text") or ""),
                    label=row["label"],
                    source=row.get("source") or "api",
                    status="accepted",
                    created_at=row.get("created_at") or now,
                )
                s.add(item)
                s.flush()
                ids.append(item.id)
        return ids

    def feedback(self, status: str = "accepted") -> list[Feedback]:
        with self.session() as s:
            q = select(Feedback).where(Feedback.status == status).order_by(Feedback.id)
            return list(s.scalars(q).all())

    def assign_splits(self, splits: dict[int, str]) -> None:
        """Freeze the train/holdout split of feedback rows that have none yet."""
        with self.writing() as s:
            for fid, split in splits.items():
                s.execute(update(Feedback).where(Feedback.id == fid, Feedback.split.is_(None)).values(split=split))

    # --- registry ----------------------------------------------------------------------------
    def models(self) -> list[ModelVersion]:
        with self.session() as s:
            return list(s.scalars(select(ModelVersion).order_by(ModelVersion.created_at)).all())

    def model(self, version: str) -> ModelVersion:
        with self.session() as s:
            row = s.get(ModelVersion, version)
        if row is None:
            raise UserError(f"no model version {version!r} in the registry", hint="see `fieldtune registry list`")
        return row

    def find_model(self, version: str) -> ModelVersion | None:
        with self.session() as s:
            return s.get(ModelVersion, version)

    def champion(self) -> ModelVersion | None:
        with self.session() as s:
            return s.scalars(select(ModelVersion).where(ModelVersion.stage == "champion")).first()

    def decisions(self, version: str | None = None) -> list[Decision]:
        q = select(Decision).order_by(Decision.id)
        if version:
            q = q.where((Decision.version == version) | (Decision.previous == version))
        with self.session() as s:
            return list(s.scalars(q).all())

    def register(self, row: dict[str, Any], reason: str = "registered") -> tuple[ModelVersion, bool]:
        """Add a model version (stage ``challenger`` unless given); (row, created). Registering the
        same version again returns the existing row unchanged."""
        now = utcnow()
        with self.writing() as s:
            existing = s.get(ModelVersion, row["version"])
            if existing is not None:
                return existing, False
            stage = row.get("stage", "challenger")
            if stage == "champion":
                raise ValueError("register as challenger, then promote")
            item = ModelVersion(**{**row, "stage": stage, "created_at": now, "updated_at": now})
            s.add(item)
            s.add(_decision("register", row["version"], None, reason, {"path": row["path"], "stage": stage}))
        return item, True

    def promote(self, version: str, reason: str, details: dict[str, Any] | None = None, action: str = "promote") -> str:
        """Make ``version`` the champion and archive the previous one, in one transaction.
        Returns the previous champion's version ('' if there was none)."""
        now = utcnow()
        with self.writing() as s:
            target = s.get(ModelVersion, version, with_for_update=True)
            if target is None:
                raise UserError(f"no model version {version!r} in the registry", hint="see `fieldtune registry list`")
            current = s.scalars(select(ModelVersion).where(ModelVersion.stage == "champion").with_for_update()).first()
            previous = current.version if current else None
            if previous == version:
                return previous
            if current is not None:
                current.stage, current.updated_at = "archived", now
                s.flush()  # the unique "one champion" index sees the old one leave first
            target.stage, target.updated_at = "champion", now
            s.add(_decision(action, version, previous, reason, details or {}))
        return previous or ""

    def set_stage(self, version: str, stage: str, action: str, reason: str, details: dict[str, Any]) -> None:
        """Move a non-champion to ``stage`` (e.g. a losing challenger to ``rejected``) and log why."""
        assert stage in STAGES and stage != "champion"
        with self.writing() as s:
            target = s.get(ModelVersion, version, with_for_update=True)
            if target is None:
                raise UserError(f"no model version {version!r} in the registry")
            if target.stage == "champion":
                raise UserError(f"{version} is the champion", hint="promote another version first")
            target.stage, target.updated_at = stage, utcnow()
            s.add(_decision(action, version, None, reason, details))

    def previous_champion(self) -> str | None:
        """The champion before the current one (what ``rollback`` returns to)."""
        current = self.champion()
        if current is None:
            return None
        for d in reversed(self.decisions()):
            if d.action in ("promote", "rollback") and d.version == current.version:
                return d.previous
        return None


def _decision(action: str, version: str | None, previous: str | None, reason: str, details: dict) -> Decision:
    return Decision(
        created_at=utcnow(), action=action, version=version, previous=previous, reason=reason, details=details
    )
