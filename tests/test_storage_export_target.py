"""Where a command may write: never over the store's own files.

``python -m storage export RUN OUT`` once replaced the live SQLite database with a zip when OUT named it
(every project, version and run gone); ``backend eval --predictions`` and ``backend sweep --csv`` wrote
their files unchecked too. Each is refused now, by ``storage.paths.check_not_store_file``, however the
path is spelled (relative, through a symlink); an existing bundle is replaced only with ``--force``.
All in-process (``main([...])``): no subprocess, no model loaded.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from storage import InvalidInput, open_store
from storage.cli import main as storage_main


@pytest.fixture
def studio(tmp_path):
    """A SQLite store with one finished run holding one artifact; (url, run id, folder)."""
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    with open_store(url) as st:
        rid = st.create_run({"lr": 0.01}, method="soft", status="running")
        st.attach_artifact(rid, "adapter", "w.bin", b"w" * 100)
        st.set_status(rid, "succeeded")
    return url, rid, tmp_path


def _intact(url: str, rid: int) -> None:
    """The database still opens and still holds the run, its artifact readable."""
    with open_store(url) as st:
        run = st.get_run(rid)
        assert run.status == "succeeded" and st.read_artifact(run.artifacts[0].sha256) == b"w" * 100


def _export(url: str, rid: int, out: str | Path, *extra: str) -> int:
    return storage_main(["export", str(rid), str(out), "--db", url, *extra])


@pytest.mark.parametrize("name, why", [("studio.db", "database file"), ("studio.db-wal", "wal file"),
                                       ("studio.db-shm", "shm file"), ("studio.db-journal", "journal file")])
def test_export_refuses_the_database_and_its_companions(studio, capsys, name, why):
    url, rid, home = studio
    assert _export(url, rid, home / name) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bundle: refusing to write") and why in err and str(home / name) in err
    _intact(url, rid)


def test_export_refuses_the_artifact_folder_and_anything_in_it(studio, capsys):
    url, rid, home = studio
    for out in (home / "artifacts" / "run.zip", home / "artifacts" / "new" / "run.zip", home / "artifacts"):
        assert _export(url, rid, out) == 2
        assert "artifact folder" in capsys.readouterr().err
    assert not (home / "artifacts" / "run.zip").exists() and not (home / "artifacts" / "new").exists()
    _intact(url, rid)


def test_export_refuses_the_database_by_a_relative_path_and_through_symlinks(studio, capsys, monkeypatch):
    url, rid, home = studio
    (home / "sub").mkdir()
    monkeypatch.chdir(home / "sub")
    assert _export(url, rid, "../studio.db") == 2
    assert f"resolves to {home / 'studio.db'}" in capsys.readouterr().err
    (home / "link.zip").symlink_to(home / "studio.db")
    (home / "art-link").symlink_to(home / "artifacts")
    assert _export(url, rid, home / "link.zip") == 2
    assert "database file" in capsys.readouterr().err
    assert _export(url, rid, home / "art-link" / "run.zip", "--force") == 2
    assert "artifact folder" in capsys.readouterr().err
    assert (home / "link.zip").is_symlink()
    _intact(url, rid)


def test_export_replaces_an_existing_file_only_with_force(studio, capsys):
    url, rid, home = studio
    out = home / "someones.zip"
    out.write_text("not mine to replace")
    assert _export(url, rid, out) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert out.read_text() == "not mine to replace"
    assert [p.name for p in home.iterdir() if p.name.startswith(".someones")] == []   # no temp file left
    assert _export(url, rid, out, "--force") == 0
    assert "manifest.json" in zipfile.ZipFile(out).namelist()
    fresh = home / "fresh.zip"
    assert _export(url, rid, fresh) == 0 and zipfile.is_zipfile(fresh)


def test_export_onto_a_folder_says_to_give_a_file_name(studio, capsys):
    url, rid, home = studio
    (home / "out").mkdir()
    assert _export(url, rid, home / "out", "--force") == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and str(home / "out" / "run.zip") in err and "Traceback" not in err


def test_the_studios_export_replaces_its_own_file_but_never_the_database(studio):
    url, rid, home = studio
    with open_store(url) as st:
        out = home / "exports" / "run.zip"
        assert st.export_run(rid, out) == out and st.export_run(rid, out) == out   # a re-export replaces it
        with pytest.raises(InvalidInput, match="database file"):
            st.export_run(rid, home / "studio.db")
    _intact(url, rid)


def test_store_file_reason_is_none_for_other_paths(studio):
    from storage.paths import store_file_reason

    url, _, home = studio
    assert store_file_reason(home / "studio.db.zip", url, home / "artifacts") is None
    assert store_file_reason(home / "artifacts2" / "x", url, home / "artifacts") is None
    assert store_file_reason(home / "studio.db", "postgresql://u:p@h/db", None) is None
    hard = home / "hard.db"
    hard.hardlink_to(home / "studio.db")
    assert "database file" in store_file_reason(hard, url, None)


def _eval_config(home: Path) -> Path:
    cfg = {"template": "{text_a} It was {mask}.", "verbalizer": {"neg": ["bad"], "pos": ["good"]},
           "data": {"eval": str(home / "dev.jsonl")}, "model": str(home / "no-model")}
    (home / "dev.jsonl").write_text('{"text_a": "fine", "label": "pos"}\n')
    path = home / "run.json"
    path.write_text(json.dumps(cfg))
    return path


def test_backend_eval_refuses_predictions_onto_the_database(studio, capsys, monkeypatch):
    from backend.cli import main

    url, rid, home = studio
    cfg = _eval_config(home)
    assert main(["eval", str(cfg), "--db", url, "--predictions", str(home / "studio.db")]) == 2
    err = capsys.readouterr().err
    assert "error: --predictions: refusing to write" in err and "database file" in err
    monkeypatch.setenv("PROMPT_STUDIO_HOME", str(home))       # no --db: the studio's database is protected
    monkeypatch.chdir(home)
    assert main(["eval", str(cfg), "--predictions", "studio.db-wal"]) == 2
    assert "wal file" in capsys.readouterr().err
    _intact(url, rid)


def test_backend_sweep_refuses_csv_onto_the_database(studio, capsys):
    from backend.cli import main

    url, rid, home = studio
    _eval_config(home)
    (home / "train.jsonl").write_text('{"text_a": "bad", "label": "neg"}\n{"text_a": "good", "label": "pos"}\n')
    spec = home / "sweep.yaml"
    data = f"{{train: {home / 'train.jsonl'}, eval: {home / 'dev.jsonl'}}}"
    spec.write_text(f"name: s\nbase: {{template: '{{text_a}} {{mask}}', verbalizer: [[bad], [good]], "
                    f"model: {home / 'no-model'}, data: {data}}}\ngrid: {{train.lr: [0.001, 0.01]}}\n")
    assert main(["sweep", str(spec), "--db", url, "--csv", str(home / "studio.db"), "--queue-only"]) == 2
    err = capsys.readouterr().err
    assert "error: --csv: refusing to write" in err and "database file" in err
    with open_store(url) as st:
        assert [r.id for r in st.list_runs(limit=None)] == [rid]     # nothing was queued
    _intact(url, rid)


def test_importing_a_folder_says_it_is_a_folder(studio, capsys):
    url, _, folder = studio
    assert storage_main(["import", str(folder), "--db", url]) != 0
    err = capsys.readouterr().err
    assert "is a folder; give the bundle's .zip file" in err and "does not exist" not in err
