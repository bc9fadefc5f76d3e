"""``python -m backend worker`` and ``predict``: run queued runs, and score text with trained runs."""
from __future__ import annotations

import argparse


def cmd_worker(args: argparse.Namespace) -> int:
    """Claim and run queued runs from a shared database until stopped (or the queue is empty, ``--once``)."""
    from backend.cli.executor import on_ray
    from backend.jobs import worker_main

    if on_ray(args):       # the same loop, each claimed run a Ray task (backend.jobs.ray_executor)
        import functools

        from backend.jobs.ray_executor import RayWorker

        make = functools.partial(RayWorker, address=args.ray_address)
        return int(worker_main(args.db, concurrency=args.concurrency, once=args.once, make_worker=make) or 0)
    return int(worker_main(args.db, concurrency=args.concurrency or 1, once=args.once) or 0)


def cmd_predict(args: argparse.Namespace) -> int:
    """Class probabilities for ``--text`` with each ``--run``; text is checked before any model loads."""
    from backend.schema import check

    # argv bytes that are not UTF-8 arrive as lone surrogates: refused here, before any model loads
    check(args.text, list[str], "--text", {"max_len": 100_000})
    if args.text_b is not None:
        check(args.text_b, str, "--text-b", {"max_len": 100_000})
    from backend.serving import predict_command

    return int(predict_command(args) or 0)
