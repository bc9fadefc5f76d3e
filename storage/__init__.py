"""Prompt Studio storage: versioned templates and verbalizers, runs, metrics and artifacts.

SQLAlchemy 2 over SQLite (WAL) by default or any SQLAlchemy URL (PostgreSQL to share runs between
machines); Alembic migrations applied on open; a content-addressed artifact store. Nothing here imports
torch, gradio or the backend. Entry point: :func:`open_store`.
"""
from __future__ import annotations

from .errors import IntegrityError, InvalidInput, InvalidTransition, NotFound, StorageError
from .paths import default_db_url, default_home
from .projects import DEFAULT_PROJECT
from .projects import check_name as check_project_name
from .store import Store, open_store
from .versions import CURRENT as CURRENT_VERSION
from .types import ArtifactInfo, DatasetSnapshotInfo, ProjectInfo, RunInfo, StatusChange, VersionInfo

__all__ = ["CURRENT_VERSION", "DEFAULT_PROJECT", "ArtifactInfo", "DatasetSnapshotInfo", "IntegrityError", "InvalidInput",
           "InvalidTransition", "NotFound", "ProjectInfo", "RunInfo", "StatusChange", "StorageError", "Store",
           "VersionInfo", "check_project_name", "default_db_url", "default_home", "open_store"]
