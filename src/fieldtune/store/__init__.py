"""The store: predictions, feedback and the model registry (SQLAlchemy 2, Alembic migrations).

SQLite by default (``runs/fieldtune.db``), PostgreSQL by URL (``FIELDTUNE_DB_URL``).
Modules: ``models`` (tables), ``db`` (engines, migrations), ``store`` (``Store``: all reads and
writes), ``registry`` (registering artifacts, checked promotion and rollback).
"""

from . import (
    support_models,  # noqa: F401  (the support tables, likewise)
    watch_models,  # noqa: F401  (puts the watch tables on Base.metadata for Alembic and tests)
)
from .db import DB_URL_ENV, database_url
from .models import Decision, Feedback, ModelVersion, Prediction
from .store import Store

__all__ = ["DB_URL_ENV", "Decision", "Feedback", "ModelVersion", "Prediction", "Store", "database_url"]
