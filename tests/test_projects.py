"""Projects in storage: two projects' runs and versions never mix, the same name in two projects is two
histories, names are checked, bundles keep the project, and migration 0002 keeps every earlier row."""
from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config

from storage import DEFAULT_PROJECT, InvalidInput, NotFound, check_project_name, open_store
from storage.engine import MIGRATIONS_DIR, make_engine, writer
from tests.storage_helpers import pg_cluster, store  # noqa: F401


def test_two_projects_runs_and_versions_never_mix(store):  # noqa: F811
    a1 = store.save_version("template", "prompt", "{text_a} A {mask}", project="alpha")
    b1 = store.save_version("template", "prompt", "{text_a} B {mask}", project="beta")
    b2 = store.save_version("template", "prompt", "{text_a} B2 {mask}", project="beta")
    store.save_version("verbalizer", "words", '{"x": ["y"]}', project="beta")
    # the same name: two independent histories, each numbered from 1
    assert (a1.number, b1.number, b2.number) == (1, 1, 2)
    assert (a1.project, b2.project) == ("alpha", "beta")
    assert store.get_version("template", "prompt", project="alpha").content == "{text_a} A {mask}"
    assert [v.number for v in store.list_versions("template", "prompt", project="beta")] == [1, 2]
    assert store.list_names("verbalizer", project="alpha") == []
    assert store.list_names("verbalizer", project="beta") == ["words"]
    assert store.list_names("template") == []                      # the default project holds none
    with pytest.raises(NotFound, match="no template named 'prompt' in project 'demo'"):
        store.get_version("template", "prompt")
    # identical content in another project is a separate version, not the other project's
    same = store.save_version("template", "prompt", "{text_a} A {mask}", project="beta")
    assert same.id != a1.id and same.number == 3

    ra = store.create_run({}, method="zero-shot", template_version_id=a1.id, project="alpha")
    rb = store.create_run({}, method="zero-shot", template_version_id=b1.id, project="beta")
    rd = store.create_run({}, method="zero-shot")
    assert [r.id for r in store.list_runs(project="alpha")] == [ra]
    assert [r.id for r in store.list_runs(project="beta")] == [rb]
    assert [r.id for r in store.list_runs(project=DEFAULT_PROJECT)] == [rd]
    assert store.get_run(rd).project == DEFAULT_PROJECT
    # a run never points at another project's version
    with pytest.raises(InvalidInput, match="belongs to project 'beta', not to the run's project 'alpha'"):
        store.create_run({}, method="zero-shot", template_version_id=b1.id, project="alpha")
    counts = {p.name: (p.runs, p.templates, p.verbalizers) for p in store.list_projects()}
    assert counts == {"alpha": (1, 1, 0), "beta": (1, 1, 1), DEFAULT_PROJECT: (1, 0, 0)}


def test_project_create_rename_and_settings(store):  # noqa: F811
    p = store.create_project("sentiment", {"seed": 7, "source": "builtin:movie-reviews"})
    assert p.settings == {"seed": 7, "source": "builtin:movie-reviews"} and p.runs == 0
    with pytest.raises(InvalidInput, match="already exists"):
        store.create_project("sentiment")
    merged = store.update_project_settings("sentiment", {"seed": 9, "shots": 16, "source": None})
    assert merged.settings == {"seed": 9, "shots": 16}
    store.save_version("template", "t", "{text_a} {mask}", project="sentiment")
    renamed = store.rename_project("sentiment", "reviews")
    assert renamed.templates == 1 and renamed.settings == {"seed": 9, "shots": 16}
    assert store.get_version("template", "t", project="reviews").content == "{text_a} {mask}"
    with pytest.raises(NotFound, match="no project named 'sentiment'"):
        store.get_project("sentiment")
    with pytest.raises(InvalidInput, match="settings must be an object"):
        store.update_project_settings("reviews", ["seed"])  # type: ignore[arg-type]
    assert store.ensure_project("fresh").name == "fresh"


@pytest.mark.parametrize("name, why", [
    ("", "empty"), ("   ", "empty"), ("../etc", "'/' is not allowed"), ("a/b", "'/' is not allowed"),
    ("..", "must start with a letter or digit"), (".hidden", "must start with a letter or digit"),
    ("trailing.", "not end with a space or dot"), ("x" * 65, "at most 64"), ("tab\there", "'\\t' is not allowed"),
    ("nul\x00", "is not allowed"), ("a\\b", "is not allowed"), (42, "must be text"),
])
def test_bad_project_names_are_refused_with_the_reason(name, why):
    with pytest.raises(InvalidInput, match="project name") as exc:
        check_project_name(name)
    assert why in exc.value.message


def test_good_project_names():
    for name in ("demo", "AG News 4-class", "sst2_v1.2", "Café", "x" * 64):
        assert check_project_name(name) == name


def test_bad_project_name_never_reaches_the_database(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "a") as st:
        with pytest.raises(InvalidInput):
            st.save_version("template", "t", "x", project="../../x")
        with pytest.raises(InvalidInput):
            st.create_run({}, method="m", project="a/b")
        assert st.list_projects() == []


def test_bundle_keeps_the_project(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "a") as src:
        v = src.save_version("template", "t", "{text_a} {mask}", project="alpha")
        rid = src.create_run({"k": 1}, method="zero-shot", template_version_id=v.id, project="alpha")
        src.set_status(rid, "running")
        src.set_status(rid, "succeeded")
        bundle = src.export_run(rid, tmp_path / "run.zip")
    with open_store(f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "b") as dst:
        new = dst.import_bundle(bundle)
        assert dst.get_run(new).project == "alpha"
        assert dst.get_version_by_id(dst.get_run(new).template_version_id).project == "alpha"
        assert dst.list_names("template", project="alpha") == ["t"] and dst.list_names("template") == []


def _database_at_0001_with_rows(url: str) -> None:
    """A database as Prompt Studio left it before projects: entities in one namespace, a run without a
    project pointing at a version, another run in a named project."""
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with writer(engine).begin() as conn:
        sql = conn.exec_driver_sql
        sql("INSERT INTO entities (id, kind, name, created_at) VALUES (1, 'template', 'demo', 1.0), "
            "(2, 'verbalizer', 'demo', 1.0)")
        sql("INSERT INTO versions (id, entity_id, number, sha256, content, message, author, created_at) VALUES "
            "(1, 1, 1, 'a', '{text_a} {mask}', 'first', '', 1.0), (2, 1, 2, 'b', '{text_a} ! {mask}', '', '', 2.0), "
            "(3, 2, 1, 'c', '{\"x\": [\"y\"]}', '', '', 1.0)")
        sql("INSERT INTO projects (id, name, created_at) VALUES (7, 'old', 5.0)")
        sql("INSERT INTO runs (id, uid, config, status, method, cancel_requested, created_at, template_version_id, "
            "verbalizer_version_id, project_id) VALUES "
            "(1, 'u1', '{}', 'succeeded', 'zero-shot', false, 1.0, 2, 3, NULL), "
            "(2, 'u2', '{}', 'failed', 'lora', false, 2.0, 1, 3, 7)")
    engine.dispose()


def _check_upgraded(url: str, artifacts) -> None:
    with open_store(url, artifacts) as st:
        assert [v.content for v in st.list_versions("template", "demo")] == ["{text_a} {mask}", "{text_a} ! {mask}"]
        assert st.get_version("verbalizer", "demo").project == "demo"
        assert [r.id for r in st.list_runs(project="demo")] == [1]
        assert [r.id for r in st.list_runs(project="old")] == [2]
        assert st.get_run(1).template_version_id == 2   # references kept: nothing was deleted or renumbered
        old = st.get_project("old")
        assert old.settings == {} and old.updated_at == old.created_at == 5.0
        # after the upgrade, the same name in another project is independent
        assert st.save_version("template", "demo", "new", project="old").number == 1


def test_migration_0002_keeps_every_row_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _database_at_0001_with_rows(url)
    _check_upgraded(url, tmp_path / "a")


def test_migration_0002_keeps_every_row_postgresql(tmp_path, pg_cluster):  # noqa: F811
    url = pg_cluster.new_database()
    _database_at_0001_with_rows(url)
    with make_engine(url).begin() as conn:   # explicit ids above: move the sequences past them
        for table in ("entities", "versions", "runs", "projects"):
            conn.exec_driver_sql(f"SELECT setval('{table}_id_seq', (SELECT MAX(id) FROM {table}))")
    _check_upgraded(url, tmp_path / "a")


def test_fresh_database_has_no_project_until_one_is_used(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "a") as st:
        assert st.list_projects() == []
        st.create_run({}, method="m")
        assert [p.name for p in st.list_projects()] == [DEFAULT_PROJECT]
