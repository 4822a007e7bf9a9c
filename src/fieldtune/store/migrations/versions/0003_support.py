"""fieldtune support: chat sessions, turns, handoffs to agents, knowledge-base items.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.String(200)
SESSION_ID = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "support_sessions",
        sa.Column("id", SESSION_ID, primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "support_turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", SESSION_ID, sa.ForeignKey("support_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("reply", sa.JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_support_turns_session_id", "support_turns", ["session_id", "id"])
    _handoffs()
    op.create_table(
        "support_kb",
        sa.Column("id", ID, primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("intent", ID, nullable=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=True),
        sa.Column("origin", sa.String(10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def _handoffs() -> None:
    op.create_table(
        "support_handoffs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", SESSION_ID, sa.ForeignKey("support_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("guesses", sa.JSON, nullable=False),
        sa.Column("agent", ID, nullable=True),
        sa.Column("intent", ID, nullable=True),
        sa.Column("template_id", ID, nullable=True),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("feedback_id", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
    )
    op.create_index("ix_support_handoffs_session_id", "support_handoffs", ["session_id"])
    op.create_index("ix_support_handoffs_status_id", "support_handoffs", ["status", "id"])  # the agent queue


def downgrade() -> None:
    op.drop_table("support_kb")
    op.drop_index("ix_support_handoffs_status_id", table_name="support_handoffs")
    op.drop_index("ix_support_handoffs_session_id", table_name="support_handoffs")
    op.drop_table("support_handoffs")
    op.drop_index("ix_support_turns_session_id", table_name="support_turns")
    op.drop_table("support_turns")
    op.drop_table("support_sessions")
