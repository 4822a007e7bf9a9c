"""fieldtune watch: news items with their scores, mentions, alerts, baselines.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.String(200)


def upgrade() -> None:
    _items()
    _mentions()
    _alerts()
    _baselines()


def _items() -> None:
    op.create_table(
        "watch_items",
        sa.Column("id", ID, primary_key=True),
        sa.Column("time", TS, nullable=False),
        sa.Column("source", ID, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("duplicate_of", ID, nullable=True),
        sa.Column("embedding", sa.LargeBinary, nullable=True),
        sa.Column("sentiment", sa.String(50), nullable=True),
        sa.Column("p_positive", sa.Float, nullable=True),
        sa.Column("p_negative", sa.Float, nullable=True),
        sa.Column("p_neutral", sa.Float, nullable=True),
        sa.Column("topics", sa.JSON, nullable=True),
        sa.Column("entities", sa.JSON, nullable=True),
        sa.Column("orgs", sa.JSON, nullable=True),
        sa.Column("model_versions", sa.JSON, nullable=True),
        sa.Column("scored_at", TS, nullable=True),
    )
    op.create_index("ix_watch_items_time", "watch_items", ["time"])
    op.create_index("ix_watch_items_status_time", "watch_items", ["status", "time", "id"])  # a claim's query
    op.create_index("ix_watch_items_duplicate_of", "watch_items", ["duplicate_of"])


def _mentions() -> None:
    op.create_table(
        "watch_mentions",
        sa.Column("item_id", ID, sa.ForeignKey("watch_items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(10), primary_key=True),
        sa.Column("key", ID, primary_key=True),
        sa.Column("time", TS, nullable=False),
    )
    op.create_index("ix_watch_mentions_kind_key_time", "watch_mentions", ["kind", "key", "time"])


def _alerts() -> None:
    op.create_table(
        "watch_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", ID, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("bucket_start", TS, nullable=False),
        sa.Column("rule", sa.String(20), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.UniqueConstraint("key", "kind", "bucket_start", "rule", name="uq_watch_alerts_bucket_rule"),
    )
    op.create_index("ix_watch_alerts_bucket_start", "watch_alerts", ["bucket_start"])


def _baselines() -> None:
    op.create_table(
        "watch_baselines",
        sa.Column("key", ID, primary_key=True),
        sa.Column("kind", sa.String(10), primary_key=True),
        sa.Column("since", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watch_baselines")
    op.drop_index("ix_watch_alerts_bucket_start", table_name="watch_alerts")
    op.drop_table("watch_alerts")
    op.drop_index("ix_watch_mentions_kind_key_time", table_name="watch_mentions")
    op.drop_table("watch_mentions")
    op.drop_index("ix_watch_items_duplicate_of", table_name="watch_items")
    op.drop_index("ix_watch_items_status_time", table_name="watch_items")
    op.drop_index("ix_watch_items_time", table_name="watch_items")
    op.drop_table("watch_items")
