"""What the page asks of any workbench job (a comparison, a template or label-word search): where it
stands, to cancel it, and which one a freshly opened page shows. Each kind's own service adds what is
particular to it (the comparison's table, the search's message)."""
from __future__ import annotations

from typing import Any, Callable

from backend.services.context import StudioContext
from backend.services.results import user_error
from backend.workbench.jobbase import JobKind


def answer(ctx: StudioContext, kind: JobKind, status: Callable[[Any, Any], dict[str, Any]], job: int) -> dict[str, Any]:
    """``status(store, info)`` of job ``job`` (one of this project's, of this kind); a failed job is the
    user's message, with the reason it failed."""
    res = status(ctx.store, ctx.run(job))
    if res["status"] == "failed":
        return user_error(f"{kind.title} #{res['job']} failed: {res['run_error']}", kind.field)
    return res


def cancel(ctx: StudioContext, kind: JobKind, job: int) -> dict[str, Any]:
    """Ask job ``job`` (one of this project's, of this kind) to stop between two batches."""
    kind.check(ctx.run(job))
    ctx.store.request_cancel(int(job))
    return {"job": int(job), "message": f"Cancel requested for {kind.title} #{int(job)}."}


def latest(ctx: StudioContext, kind: JobKind) -> int | None:
    """The job of this kind a freshly opened page shows: a running one, else a queued one, else the newest."""
    return kind.latest(ctx.store, ctx.project)
