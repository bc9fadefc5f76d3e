"""SQLAlchemy ORM tables: the schema of the studio's memory.

Kept free of behaviour: the repository modules (``versions``, ``runs``, ``metrics``, ``bundle``) hold the
rules, and nothing outside ``storage`` sees these classes (the API returns plain dataclasses). Times are
UTC epoch seconds as floats: portable between SQLite and PostgreSQL, trivially comparable, and what
``time.time()`` gives the training loop. Any change here needs a new Alembic migration in
``storage/migrations/versions``.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# 64-bit ids and sizes on PostgreSQL (metric rows and weight files outgrow int32); on SQLite a primary key
# must be exactly INTEGER to be the autoincrementing rowid.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Project(Base):
    """A named workspace: owns entities and runs (``storage.projects``); ``settings`` is the backend's
    (data source, column mapping, dev fraction, the one seed, shots), stored as given."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class DatasetSnapshot(Base):
    __tablename__ = "dataset_snapshots"
    __table_args__ = (UniqueConstraint("fingerprint", "columns_key", name="uq_snapshot_content"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)
    columns_key: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical JSON of ``columns``
    fingerprint: Mapped[str] = mapped_column(String(200))
    row_counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)


class Entity(Base):
    """A named template or verbalizer of one project; its content lives only in its versions."""

    __tablename__ = "entities"
    __table_args__ = (UniqueConstraint("project_id", "kind", "name", name="uq_entity_project_kind_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", name="fk_entities_project_id"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("entity_id", "number", name="uq_version_number"),
                      UniqueConstraint("entity_id", "sha256", name="uq_version_content"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float)


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("entity_id", "alias", name="uq_alias"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    updated_at: Mapped[float] = mapped_column(Float)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status", "status", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)  # stable across export/import
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(100))
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_revision: Mapped[str | None] = mapped_column(Text, nullable=True)
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), nullable=True)
    verbalizer_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), nullable=True)
    dataset_snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_snapshots.id"),
                                                            nullable=True)
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    # The parent's uid survives export/import even when the parent run is not in this database.
    parent_uid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RunTag(Base):
    __tablename__ = "run_tags"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)


class StatusEvent(Base):
    __tablename__ = "run_status_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[float] = mapped_column(Float)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),
                      Index("ix_metrics_run_id_id", "run_id", "id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)  # NULL = NaN (SQLite's way)
    wall_time: Mapped[float] = mapped_column(Float)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "kind", "name", name="uq_artifact_name"),
                      Index("ix_artifacts_sha256", "sha256"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)  # relative to the artifact store root
    created_at: Mapped[float] = mapped_column(Float)


class Prediction(Base):
    __tablename__ = "predictions"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    gold: Mapped[Any] = mapped_column(JSON, nullable=True)
    predicted: Mapped[Any] = mapped_column(JSON, nullable=True)
    probs: Mapped[Any] = mapped_column(JSON, nullable=True)
