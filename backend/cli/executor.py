"""``--executor local|ray`` and ``--ray-address``: where ``train``, ``sweep`` and ``worker`` run their runs.

Local (the default) is this machine: in process for ``train``, child processes for ``worker`` and
``sweep``. Ray sends each run to a Ray cluster as a task (``backend.jobs.ray_executor``) and a sweep
through Ray Tune (``backend.sweeps.ray_tune``); the runs come back through their records in the shared
database, so ``--db`` should then name one every node reaches (PostgreSQL). Nothing here imports Ray.
"""
from __future__ import annotations

import argparse

from backend.errors import ConfigError
from backend.schema import check_text

EXECUTORS = ("local", "ray")


def add_executor_options(parser: argparse.ArgumentParser, how: str = "each run a Ray task") -> None:
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help=f"local: this machine (default); ray: a Ray cluster, {how}")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="the Ray cluster (HOST:PORT of its head, or 'auto' for the one this machine "
                             "belongs to); default: a private Ray instance on this machine")


def on_ray(args: argparse.Namespace) -> bool:
    """True for ``--executor ray``; ``--ray-address`` without it is a mistake, said as such."""
    address = getattr(args, "ray_address", None)
    if address is not None:
        check_text(address, "--ray-address", 1000)
        if not address.strip():
            raise ConfigError("an empty address: give HOST:PORT or auto, or leave the option out",
                              field="--ray-address")
        if getattr(args, "executor", "local") != "ray":
            raise ConfigError("only means something with --executor ray", field="--ray-address")
    return getattr(args, "executor", "local") == "ray"
