"""Alembic environment: runs on the connection ``fieldtune.store`` hands over (``config.attributes``),
or on ``sqlalchemy.url`` when called from the ``alembic`` command line."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from fieldtune.store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
