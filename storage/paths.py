"""Where the studio keeps its database and artifact files by default.

One place decides this so the studio, the job runner and the CLI all open the same store unless told
otherwise (``PROMPT_STUDIO_HOME`` moves everything, e.g. for tests or a second workspace).
"""
from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """``$PROMPT_STUDIO_HOME`` if set, else ``~/.prompt-studio``."""
    env = os.environ.get("PROMPT_STUDIO_HOME")
    return Path(env).expanduser() if env else Path.home() / ".prompt-studio"


def default_db_url() -> str:
    """SQLite file ``<home>/studio.db``."""
    return f"sqlite:///{default_home() / 'studio.db'}"


def default_artifacts_dir(url: str) -> Path:
    """Artifacts live beside a SQLite file database, else under ``<home>/artifacts``.

    Why beside the file: a database copied or moved with its folder keeps finding its weights; for a
    server database (PostgreSQL) there is no file, so the studio home is used.
    """
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not u.database.startswith("file:"):
        return Path(u.database).expanduser().resolve().parent / "artifacts"
    return default_home() / "artifacts"
