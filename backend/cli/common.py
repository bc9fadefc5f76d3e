"""What every ``python -m backend`` command shares: JSON on stdout and the run database it records into."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def print_json(obj: Any) -> None:
    """One JSON document per line on stdout: the output meant for programs."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def open_store(args: argparse.Namespace) -> Any:
    """The run database named by ``--db`` (None with ``--no-db``), with the runs whose process is gone
    marked failed first, so a command never starts from a database that lies about what is running."""
    if getattr(args, "no_db", False):
        return None
    from storage import open_store as _open

    store = _open(args.db)
    store.reap_dead_runs()
    return store


def refuse_store_file(args: argparse.Namespace, path: str, field: str) -> None:
    """Refuse (storage's InvalidInput: one ``error:`` line, exit 2) an output path that is one of the files
    of the store this command records into: its SQLite database with its companions, or its artifact
    folder, chosen as :func:`open_store` will choose them. Checked before the store is opened, so a
    refusal creates and records nothing. With ``--no-db`` nothing is recorded and there is no store here
    to protect: no check (any other existing file may be overwritten: these are derived outputs)."""
    if getattr(args, "no_db", False):
        return
    from storage.paths import check_not_store_file, default_artifacts_dir, default_db_url

    url = args.db or default_db_url()
    check_not_store_file(path, url, default_artifacts_dir(url), field)


# Commands whose runs are recorded, and whose template / verbalizer names are looked up, in one project.
PROJECT_COMMANDS = ("eval", "train", "compare", "sweep", "search-templates", "search-words")


def _project_name(text: str) -> str:
    """An argparse type: a valid project name (argparse reports anything else with the reason, exit 2)."""
    from storage import InvalidInput, check_project_name

    try:
        return check_project_name(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_project_option(sub: Any) -> None:
    """``--project NAME`` on every command that records runs (``sub``: the parser's subcommands)."""
    for name in PROJECT_COMMANDS:
        sub.choices[name].add_argument(
            "--project", type=_project_name, metavar="NAME",
            help="record the run in this project (created when new) and keep its template and label-word "
                 "versions there; default: the config's 'project', else demo")


def with_project(cfg: Any, args: argparse.Namespace) -> Any:
    """``cfg`` with ``--project`` applied (it overrides the config's own ``project``)."""
    if getattr(args, "project", None):
        cfg.project = args.project
    return cfg
