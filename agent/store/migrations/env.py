"""Alembic environment for the finding store; no alembic.ini is involved.

Online: ``agent.store.engine.migrate`` passes an open connection (already inside a
transaction) via ``config.attributes["connection"]``. Offline (``--sql``): the URL comes from
the ``sqlalchemy.url`` main option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from agent.errors import StoreError
from agent.store.schema import Base

config = context.config
target_metadata = Base.metadata


def run_online(connection: Connection) -> None:
    """Migrate through the caller's connection and transaction."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline(url: str) -> None:
    """Emit the migration SQL for ``url``'s dialect without connecting."""
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Pick online or offline mode from what the caller put in the config."""
    connection = config.attributes.get("connection")
    if context.is_offline_mode():
        run_offline(config.get_main_option("sqlalchemy.url") or "sqlite://")
    elif isinstance(connection, Connection):
        run_online(connection)
    else:
        raise StoreError(
            "alembic was started without a database connection",
            hint="run migrations through agent.store.open_store(url)",
        )


main()
