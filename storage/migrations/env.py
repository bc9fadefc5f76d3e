"""Alembic environment: always driven by :func:`storage.engine.upgrade_schema` with an open connection.

There is no alembic.ini: the package locates its own scripts, so upgrades work from any directory. To
write a new migration after changing ``storage/models.py``: open a throwaway database at the current head
(``open_store("sqlite:////tmp/x.db")``), then inside ``with writer(engine).begin() as conn`` set
``cfg.attributes["connection"] = conn`` and call ``alembic.command.revision(cfg, message, autogenerate=True)``
with ``cfg`` configured as in :func:`storage.engine.upgrade_schema`; review the generated script.
"""
from __future__ import annotations

from alembic import context

from storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached when someone runs the alembic CLI by hand
    raise RuntimeError("storage migrations run through storage.open_store(), not the alembic CLI")

# render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
