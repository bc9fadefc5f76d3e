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
