"""Schema management: Alembic upgrade from an empty database, models and migrations agree, and many
processes may open (and so upgrade) the same new database at once."""
from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config

from storage import StorageError, default_db_url, default_home, open_store
from storage.engine import MIGRATIONS_DIR, current_revision, make_engine
from storage.models import Base
from storage.paths import default_artifacts_dir
from tests.storage_helpers import pg_cluster  # noqa: F401


def _head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _assert_schema_matches_models(engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    assert diff == [], f"models.py and the migrations disagree: {diff}"


def test_empty_database_is_upgraded_to_head_matching_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'studio.db'}"  # folder does not exist yet
    st = open_store(url)
    assert current_revision(st.engine) == _head()
    _assert_schema_matches_models(st.engine)
    st.close()


def test_postgresql_schema_matches_the_models(pg_cluster):  # noqa: F811
    st = open_store(pg_cluster.new_database())
    assert current_revision(st.engine) == _head()
    _assert_schema_matches_models(st.engine)
    st.close()


def test_sqlite_settings_are_applied_on_every_connection(tmp_path):
    st = open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "a")
    with st.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30000
        assert pragma("synchronous") == 1  # NORMAL
    st.close()


def test_reopening_is_a_no_op_and_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url, tmp_path / "a") as st:
        st.save_version("template", "t", "x")
    with open_store(url, tmp_path / "a") as st:
        assert st.get_version("template", "t").content == "x"


def _open_and_write(url: str, i: int) -> int:
    st = open_store(url)
    rid = st.create_run({"i": i}, method="m")
    st.close()
    return rid


@pytest.mark.slow
def test_many_processes_opening_a_new_database_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    with mp.get_context("spawn").Pool(4) as pool:
        ids = pool.starmap(_open_and_write, [(url, i) for i in range(8)])
    assert sorted(ids) == list(range(1, 9))
    with sqlite3.connect(tmp_path / "race.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(_head(),)]


def test_works_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "a") as st:
        assert st.list_runs() == []


def test_default_locations_follow_prompt_studio_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_STUDIO_HOME", str(tmp_path / "home"))
    assert default_home() == tmp_path / "home"
    assert default_db_url() == f"sqlite:///{tmp_path / 'home' / 'studio.db'}"
    assert default_artifacts_dir(default_db_url()) == (tmp_path / "home" / "artifacts").resolve()
    with open_store() as st:
        rid = st.create_run({}, method="m")
        st.attach_artifact(rid, "w", "w", b"x")
    assert (tmp_path / "home" / "studio.db").exists()
    assert len(list((tmp_path / "home" / "artifacts").glob("??/*"))) == 1
    monkeypatch.delenv("PROMPT_STUDIO_HOME")
    assert str(default_home()) == os.path.expanduser("~/.prompt-studio")


def test_a_relative_home_or_database_is_made_absolute(tmp_path, monkeypatch):
    """A job's process starts in the source checkout: a relative home or ``sqlite:///runs.db`` handed to it
    named another, empty database there (the run failed "no run with id 1")."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPT_STUDIO_HOME", "relhome")
    assert default_home() == tmp_path / "relhome" and default_db_url() == f"sqlite:///{tmp_path}/relhome/studio.db"
    with open_store("sqlite:///rel.db", tmp_path / "a") as st:
        assert st.url == f"sqlite:///{tmp_path}/rel.db"
    with open_store() as st:
        assert st.url == f"sqlite:///{tmp_path}/relhome/studio.db"


def test_in_memory_database_works(tmp_path):
    with open_store("sqlite://", tmp_path / "a") as st:
        st.save_version("template", "t", "x")
        assert st.list_names("template") == ["t"]


@pytest.mark.parametrize("url, message", [
    ("not a url", "is not a valid SQLAlchemy URL"),
    ("nosuchdb://x/y", "Can't load plugin: sqlalchemy.dialects:nosuchdb"),
])
def test_bad_urls_are_clear_errors(url, message):
    with pytest.raises(StorageError, match=message):
        make_engine(url)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database " * 100)
    with pytest.raises(StorageError, match="cannot open database .*file is not a database"):
        open_store(f"sqlite:///{notes}")


def test_a_database_from_a_newer_version_is_one_clear_error_and_untouched(tmp_path):
    from storage.errors import SchemaTooNew

    db = tmp_path / "s.db"
    open_store(f"sqlite:///{db}", tmp_path / "a").close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_from_the_future'")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(SchemaTooNew, match=r"newer Prompt Studio \(schema ffff_from_the_future\); upgrade "
                                           r"Prompt Studio to open it, nothing was changed"):
        open_store(f"sqlite:///{db}", tmp_path / "a")
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("ffff_from_the_future",)]
    conn.close()
