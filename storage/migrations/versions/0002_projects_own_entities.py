"""projects own templates, verbalizers and runs; projects get settings and updated_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 13:50:00

Every row written before projects existed moves to the project "demo" (created when such rows exist):
entities get ``project_id`` (NOT NULL, unique per project, kind and name, so the same template name can
live in two projects), runs with no project get "demo" as well. Nothing is deleted or renamed.
"""
from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

DEFAULT_PROJECT = "demo"   # storage.projects.DEFAULT_PROJECT when this migration was written


def _default_project_id(conn: sa.Connection) -> int | None:
    """The id of "demo", created only when earlier rows need a home."""
    pending = conn.execute(sa.text("SELECT (SELECT COUNT(*) FROM entities) + "
                                   "(SELECT COUNT(*) FROM runs WHERE project_id IS NULL)")).scalar()
    found = conn.execute(sa.text("SELECT id FROM projects WHERE name = :n"), {"n": DEFAULT_PROJECT}).scalar()
    if found is not None or not pending:
        return found
    now = time.time()
    projects = sa.table("projects", sa.column("name", sa.String), sa.column("settings", sa.JSON),
                        sa.column("created_at", sa.Float), sa.column("updated_at", sa.Float))
    conn.execute(projects.insert().values(name=DEFAULT_PROJECT, settings={}, created_at=now, updated_at=now))
    return conn.execute(sa.text("SELECT id FROM projects WHERE name = :n"), {"n": DEFAULT_PROJECT}).scalar()


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settings', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.Float(), nullable=True))
    conn.execute(sa.text("UPDATE projects SET settings = '{}' WHERE settings IS NULL"))
    conn.execute(sa.text("UPDATE projects SET updated_at = created_at WHERE updated_at IS NULL"))
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.alter_column('settings', existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column('updated_at', existing_type=sa.Float(), nullable=False)

    demo = _default_project_id(conn)
    with op.batch_alter_table('entities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.Integer(), nullable=True))
    if demo is not None:
        conn.execute(sa.text("UPDATE entities SET project_id = :p WHERE project_id IS NULL"), {"p": demo})
        conn.execute(sa.text("UPDATE runs SET project_id = :p WHERE project_id IS NULL"), {"p": demo})
    with op.batch_alter_table('entities', schema=None) as batch_op:
        batch_op.alter_column('project_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint('uq_entity_kind_name', type_='unique')
        batch_op.create_unique_constraint('uq_entity_project_kind_name', ['project_id', 'kind', 'name'])
        batch_op.create_foreign_key('fk_entities_project_id', 'projects', ['project_id'], ['id'])


def downgrade() -> None:
    """Back to one global namespace: refused when two projects hold the same name (it would lose one)."""
    conn = op.get_bind()
    clash = conn.execute(sa.text("SELECT kind, name FROM entities GROUP BY kind, name HAVING COUNT(*) > 1")).first()
    if clash is not None:
        raise RuntimeError(f"cannot downgrade: {clash[0]} {clash[1]!r} exists in several projects")
    with op.batch_alter_table('entities', schema=None) as batch_op:
        batch_op.drop_constraint('fk_entities_project_id', type_='foreignkey')
        batch_op.drop_constraint('uq_entity_project_kind_name', type_='unique')
        batch_op.create_unique_constraint('uq_entity_kind_name', ['kind', 'name'])
        batch_op.drop_column('project_id')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('settings')
