"""Runs on a Ray cluster: each run one Ray task, recorded in the shared store exactly like a local job.

Why Ray and not more of our own scheduling: when one machine is not enough, Ray already places work by
its resource request (CPUs, GPUs), queues what does not fit and notices dead workers and nodes. What stays
ours is the run's record, and the task body is the local job child's own code path
(``backend.jobs.child.execute``): the run is created ``queued`` in the shared store (PostgreSQL when the
cluster has several machines), the task moves it to ``running`` from the Ray worker process (history: its
host, pid, Ray node and task), sends heartbeats, streams metric events, attaches the trained files and
records ``succeeded | failed | cancelled``. A run waiting for a free GPU in Ray's queue is still
``queued`` in the store, which is the truth, so nothing has to keep it alive meanwhile.

Cancel: the studio's or the CLI's cancel sets ``cancel_requested``; the task reads it before every
optimizer step (``CancelFlag``), as a local child does. ``ray.cancel`` (Ctrl-C in the CLI, the studio
stopping) arrives in the task as SIGINT, which ``StopOnSignal`` turns into the same clean end (last
checkpoint, ``cancelled``, "stopped by SIGINT"); ``ray.cancel(force=True)`` kills the worker.

Liveness: the task's process records its own host and pid. A run whose worker died (killed, out of
memory, node lost) is failed by the driver that submitted it as soon as Ray reports the task's end, with
Ray's reason; if the driver is gone too (Ray then kills the tasks it owned), any process that opens the
store fails it by ``storage.runs.gone_reason``: at once on the worker's own machine (dead pid), after
the heartbeat timeout from any other machine, because a pid means nothing across hosts.

Secrets: the database URL (with its password) reaches the task through Ray's object store
(``ray.put``), never through ``runtime_env`` (Ray's runtime-env agent writes env vars to its log in clear)
nor a command line; tests/test_ray_executor.py greps Ray's session logs for it.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from backend.errors import ConfigError
from backend.jobs.worker import STALE_AFTER_S, Worker
from backend.openmp import wait_policy_for_elsewhere

ROOT = Path(__file__).resolve().parents[2]
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}   # no usage-stats prompt or upload attempt


def ray_module() -> Any:
    """``ray``, or a clear error naming the package when this installation has none."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs the 'ray' package, which is not installed here "
                          "(pip install 'ray[tune]==2.60.0', or python3 launch.py, which installs it)",
                          field="--executor") from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at ``address`` ("auto", "HOST:PORT"); None or "local" starts a private
    instance on this machine (``num_cpus`` of its cores). Returns the ``ray`` module.

    Quiet on purpose: no dashboard, workers' output stays in Ray's own log files, Ray's loggers at
    WARNING. Workers import this code base from the same path as the driver (``PYTHONPATH``): every
    node needs the same checkout and environment (the README says how). Their OpenMP threads sleep while
    they wait (``OMP_WAIT_POLICY``, the driver's own value when it has one)."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    # workers get the code base (same path as the driver) and sleeping OpenMP waits, as a local job child
    # does (backend/openmp.py): a Ray node runs several tasks, and other work, on the cores it has
    env_vars = {"PYTHONPATH": str(ROOT), **wait_policy_for_elsewhere()}
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING,
                              "runtime_env": {"env_vars": env_vars}}
    if address and address != "local":
        _check_reachable(address)
        kwargs["address"] = address
    else:
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConfigError(f"cannot reach a Ray cluster at {address!r}: {first}", field="--ray-address") from None
    return ray


def _check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """A HOST:PORT that nothing answers on is said at once: ``ray.init`` would retry it for minutes."""
    if address == "auto":
        return                               # Ray looks for this machine's cluster and fails fast itself
    if address.startswith("ray://"):
        raise ConfigError("ray:// (Ray Client) needs the 'ray[client]' extra, which is not installed: give the "
                          "head's GCS address HOST:PORT (port 6379 by default) instead", field="--ray-address")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{address[:100]!r} is not an address: give HOST:PORT of the cluster's head "
                          "(e.g. 10.0.0.5:6379) or auto", field="--ray-address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"nothing answers at {address[:100]} ({exc.strerror or exc}): is the cluster's head "
                          "running (ray start --head) and the port open?", field="--ray-address") from None


def resources_of(config: dict[str, Any]) -> dict[str, float]:
    """The Ray resource request of a run: ``resources.cpus`` / ``resources.gpus`` of its config (ranges
    checked by RunConfig), 1 CPU and no GPU when absent."""
    req = config.get("resources") or {}
    return {"num_cpus": float(req.get("cpus", 1.0)), "num_gpus": float(req.get("gpus", 0.0))}


def shortfall(ray: Any, request: dict[str, float]) -> str | None:
    """What the whole cluster lacks for ``request`` (all its nodes together, busy or not), or None.
    A cluster that adds nodes on demand (autoscaling) shows only its current ones: start it with the
    largest node kind present."""
    total = ray.cluster_resources()
    for key, name, what in (("num_cpus", "CPU", "CPUs"), ("num_gpus", "GPU", "GPUs")):
        if request[key] > total.get(name, 0.0):
            return (f"asks for {request[key]:g} {what} (resources.{what[:3].lower()}s), and the Ray cluster has "
                    f"{total.get(name, 0.0):g} in all")
    return None


def submitter_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_task(run_id: int, artifacts_root: str, db_url: str, submitted_by: str) -> str:
    """The body of a run's Ray task (in a Ray worker process): start the queued run here, then run it
    with the local job child's code; returns the run's final status (or, when another worker had
    already taken or cancelled it, the status it has, without doing anything)."""
    from storage import open_store

    from backend.jobs.child import execute
    from backend.jobs.signals import StopOnSignal

    store = open_store(db_url, Path(artifacts_root))
    try:
        with StopOnSignal() as stop:     # ray.cancel(force=False) is a SIGINT here: a clean 'cancelled'
            if not start_queued(store, run_id, submitted_by):
                return store.get_run(run_id).status
            return execute(store, run_id, stop=stop, claimed=True)
    finally:
        store.close()


def start_queued(store: Any, run_id: int, submitted_by: str, what: str = "a Ray task") -> bool:
    """queued -> running, from this process (so host and pid are the Ray worker's). False when the run
    is no longer queued: cancelled meanwhile, or claimed by another worker sharing the store (the
    transition is checked under the row lock, so two never both start it)."""
    from storage.errors import InvalidTransition

    if store.get_run(run_id).status != "queued":
        return False
    try:
        store.set_status(run_id, "running", note=f"started by {what} ({_where()}), submitted by {submitted_by}")
    except InvalidTransition:
        return False
    return True


def _where() -> str:
    try:
        import ray

        ctx = ray.get_runtime_context()
        return f"node {ctx.get_node_id()[:12]}, task {ctx.get_task_id()}"
    except Exception:  # noqa: BLE001 - a description only; outside Ray (tests calling run_task) say so
        return "outside a Ray worker"


class RayRuns:
    """The Ray side of a store: submit runs as tasks, and turn a task's end into the run's record.

    One per (store, cluster connection). ``children`` maps run id -> the task's ObjectRef; the object
    owns them, so when this process exits Ray stops them (and their runs are reaped as above)."""

    def __init__(self, store: Any, address: str | None = None, *, num_cpus: int | None = None) -> None:
        self.store = store
        self.ray = connect(address, num_cpus=num_cpus)
        self._db = self.ray.put(store.url)     # the URL (and its password) by the object store, see above
        self._task = self.ray.remote(max_retries=0)(run_task)   # a crashed run is not re-run by itself
        self.children: dict[int, Any] = {}
        self.name = f"ray:{submitter_name()}"

    def submit(self, run_id: int) -> Any:
        """Start ``run_id`` (queued) as a Ray task with its resource request; returns the ObjectRef. A
        request the whole cluster cannot meet fails the run with the reason and raises ConfigError (Ray
        would keep it waiting for ever)."""
        request = resources_of(self.store.get_run(run_id).config)
        short = shortfall(self.ray, request)
        if short is not None:
            self.store.set_status(run_id, "failed", error=f"resources: {short}")
            raise ConfigError(f"run {run_id}: {short}", field="resources")
        ref = self._task.options(name=f"prompt-studio-run-{run_id}", **request).remote(
            run_id, str(self.store.artifacts.root), self._db, self.name)
        self.children[run_id] = ref
        return ref

    def finished(self, timeout: float = 0.0) -> list[int]:
        """Runs whose task has ended (each settled, see ``settle``) within ``timeout`` seconds."""
        if not self.children:
            return []
        refs = list(self.children.values())
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        done = [rid for rid, ref in self.children.items() if ref in ready]
        for run_id in done:
            self.settle(run_id, self.children.pop(run_id))
        return done

    def settle(self, run_id: int, ref: Any) -> str:
        """After a run's task ended: a run it left ``running`` is failed with Ray's reason (the task
        records its own end; this is for a worker that died first). Returns the run's status."""
        reason = None
        try:
            self.ray.get(ref, timeout=5)
        except self.ray.exceptions.TaskCancelledError:
            reason = "its Ray task was cancelled"
        except self.ray.exceptions.WorkerCrashedError:
            reason = "its Ray worker process died (killed, out of memory or its node went away)"
        except self.ray.exceptions.RayError as exc:
            reason = f"its Ray task failed: {(str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}"
        from backend.jobs.child import fail_if_running

        return fail_if_running(self.store, run_id, lambda info: (
            f"process gone: {reason or 'its Ray task ended without recording an end'} (host {info.host}, pid {info.pid})"))

    def cancel_orphans(self) -> None:
        """Tasks still waiting in Ray's queue for a run cancelled meanwhile (in the store) give their place up."""
        for run_id, ref in self.children.items():
            if self.store.get_run(run_id).status == "cancelled":
                self.ray.cancel(ref)

    def stop(self, wait_s: float = 30.0) -> None:
        """Ask every task to stop (SIGINT in the task: last checkpoint, ``cancelled``), give them ``wait_s``
        seconds, then kill what is left (its run failed with that reason). Runs still waiting in Ray's
        queue stay ``queued`` in the store: another worker or a later start runs them."""
        for ref in self.children.values():
            self.ray.cancel(ref)
        deadline = time.monotonic() + wait_s
        while self.children and time.monotonic() < deadline:
            self.finished(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        for ref in self.children.values():
            self.ray.cancel(ref, force=True)
        self.finished(timeout=10.0)


class RayWorker(Worker):
    """The local ``Worker`` (its ``run`` loop, ``children``, ``log_dir``) with runs going to Ray: what
    ``JobRunner`` and ``python -m backend worker --executor ray`` use.

    Each poll submits the oldest queued runs (at most ``concurrency`` in flight: Ray queues the rest by
    resources anyway, this only keeps the store's order), settles ended tasks and fails other processes'
    runs that are gone. A task's output stays in Ray's worker logs, so ``log_dir`` is unused."""

    def __init__(self, store: Any, *, address: str | None = None, concurrency: int | None = None,
                 log_dir: Path | None = None, stale_after_s: float = STALE_AFTER_S,
                 num_cpus: int | None = None) -> None:
        # Worker.__init__ is not called: it sizes a pool of local child processes, and there are none here
        self.runs = RayRuns(store, address, num_cpus=num_cpus)
        self.store = store
        self.concurrency = concurrency or max(1, int(self.runs.ray.cluster_resources().get("CPU", 1)))
        self.log_dir = log_dir
        self.stale_after_s = stale_after_s

    @property  # type: ignore[override]
    def children(self) -> dict[int, Any]:
        return self.runs.children

    def poll(self) -> list[int]:
        self.runs.finished()
        self.runs.cancel_orphans()
        self.store.reap_dead_runs(self.stale_after_s, exclude=self.children)
        if self.children:
            self._supervise()        # sweeps queued with early stopping: ASHA from the store, as locally
        started = []
        free = self.concurrency - len(self.children)
        if free > 0:
            for info in self.store.list_runs(status="queued", limit=free + len(self.children), newest_first=False):
                if len(started) >= free:
                    break
                if info.id not in self.children:
                    try:
                        self.runs.submit(info.id)
                    except ConfigError:       # the cluster can never run it: failed with the reason
                        continue
                    started.append(info.id)
        return started

    def stop(self, wait_s: float = 30.0) -> None:
        self.runs.stop(wait_s)


def run_on_ray(store: Any, run_id: int, address: str | None, *, stop: Callable[[], bool] | None = None,
               poll_s: float = 0.5) -> str:
    """Run one queued run on the cluster and wait for it (the CLI's ``train --executor ray``); ``stop``
    (Ctrl-C in the CLI) cancels it cleanly. Returns its final status."""
    runs = RayRuns(store, address)
    ref = runs.submit(run_id)
    asked = False
    while not runs.finished(timeout=poll_s):
        if stop is not None and stop() and not asked:
            runs.ray.cancel(ref)   # SIGINT in the task; a task still waiting for resources never starts
            asked = True
    if asked and store.get_run(run_id).status == "queued":
        store.request_cancel(run_id)   # never started: cancelled, so no other worker picks it up later
    return store.get_run(run_id).status
