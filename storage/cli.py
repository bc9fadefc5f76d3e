"""``python -m storage``: inspect projects, runs and versions, export and import run bundles, audit and clean.

Every command takes ``--db URL`` (default: the studio's database) and ``--artifacts DIR``. ``--json``
prints machine-readable output (strict JSON: non-finite numbers become null). Errors are one line on
stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from .errors import StorageError
from .paths import default_db_url
from .store import ORPHAN_MIN_AGE_S, Store, open_store


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _print_json(obj: Any) -> None:
    print(json.dumps(_clean(obj), indent=1, sort_keys=True, allow_nan=False))


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _fmt_metrics(m: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(m.items()))


def cmd_runs(store: Store, a: argparse.Namespace) -> None:
    runs = store.list_runs(status=a.status, method=a.method, tag=a.tag, limit=a.limit, project=a.project)
    if a.json:
        _print_json([{k: v for k, v in r.to_dict().items() if k not in ("history", "artifacts")}
                     for r in runs])
        return
    print(f"{'id':>5}  {'status':<10} {'method':<16} {'created':<19}  metrics")
    for r in runs:
        print(f"{r.id:>5}  {r.status:<10} {r.method[:16]:<16} {_when(r.created_at):<19}  "
              f"{_fmt_metrics(r.metrics)}")


def cmd_show(store: Store, a: argparse.Namespace) -> None:
    run = store.get_run(a.run)
    if a.json:
        _print_json(run.to_dict())
        return
    print(f"run {run.id} ({run.uid})  {run.status}  method={run.method}  seed={run.seed}  project={run.project}")
    print(f"model: {run.model_id or '-'} @ {run.model_revision or '-'}   tags: {', '.join(run.tags) or '-'}")
    for kind, vid in (("template", run.template_version_id), ("verbalizer", run.verbalizer_version_id)):
        if vid is not None:
            v = store.get_version_by_id(vid)
            print(f"{kind}: {v.name} v{v.number} ({v.sha256[:12]})")
    if run.error:
        print(f"error: {run.error}")
    print("history:")
    for h in run.history:
        where = f"{h.host}:{h.pid}" if h.host else "-"     # an import records no process of this machine
        print(f"  {_when(h.at)}  {h.status:<10} {where}  {h.note or ''}")
    print(f"metrics: {_fmt_metrics(run.metrics) or '-'}")
    for art in run.artifacts:
        print(f"artifact: {art.kind}/{art.name}  {art.size} bytes  {art.sha256[:12]}")
    print("config: " + json.dumps(run.config, sort_keys=True))


def cmd_export(store: Store, a: argparse.Namespace) -> None:
    """Refuses OUT when it exists (unless ``--force``), is a folder, or is one of the store's own files
    (``bundle.export_run``): a typo must not replace a deliverable, let alone the database, silently."""
    from .bundle import export_run

    out = export_run(store, a.run, Path(a.out), overwrite=a.force)
    print(f"exported run {a.run} to {out}")


def cmd_import(store: Store, a: argparse.Namespace) -> None:
    run_id = store.import_bundle(Path(a.file))
    print(json.dumps({"run_id": run_id}) if a.json else f"imported as run {run_id}")


def cmd_versions(store: Store, a: argparse.Namespace) -> None:
    versions = store.list_versions(a.kind, a.name, project=a.project)
    if a.json:
        _print_json([v.to_dict() for v in versions])
        return
    for v in versions:
        alias = f" [{', '.join(v.aliases)}]" if v.aliases else ""
        print(f"v{v.number:<4} {v.sha256[:12]}  {_when(v.created_at)}  {v.author or '-':<12} "
              f"{v.message}{alias}")


def cmd_projects(store: Store, a: argparse.Namespace) -> None:
    projects = store.list_projects()
    if a.json:
        _print_json([p.to_dict() for p in projects])
        return
    print(f"{'project':<24} {'runs':>5} {'templates':>9} {'verbalizers':>11}  updated")
    for p in projects:
        print(f"{p.name[:24]:<24} {p.runs:>5} {p.templates:>9} {p.verbalizers:>11}  {_when(p.updated_at)}")


def cmd_check(store: Store, a: argparse.Namespace) -> None:
    report = store.check(orphan_min_age_s=a.min_age)
    if a.json:
        _print_json(report)
    else:
        print(f"{report['runs']} runs, {report['artifacts']} artifact files: "
              + ("ok" if report["ok"] else "PROBLEMS"))
        for problem in report["problems"]:
            print(f"  {problem}")
        for warning in report["warnings"]:
            print(f"  warning: {warning}")
    if not report["ok"]:
        raise SystemExit(1)


def cmd_gc(store: Store, a: argparse.Namespace) -> None:
    res = store.gc(min_age_s=a.min_age, dry_run=a.dry_run)
    if a.json:
        _print_json(res)
        return
    blobs, tmps = res["blobs"], res["tmp_files"]
    print(f"{'would remove' if a.dry_run else 'removed'} {blobs} orphan blob{'' if blobs == 1 else 's'} "
          f"({res['blob_bytes']} bytes) and {tmps} temp file{'' if tmps == 1 else 's'} "
          f"({res['tmp_bytes']} bytes)")


def _min_age(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-age", type=float, default=ORPHAN_MIN_AGE_S, metavar="SECONDS",
                   help="only files untouched this long count as orphans: younger ones may belong to a "
                        f"writer still running (default {ORPHAN_MIN_AGE_S:g})")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help=f"SQLAlchemy URL (default {default_db_url()})")
    common.add_argument("--artifacts", default=None, help="artifact store folder (default: beside "
                                                         "a SQLite file, else <home>/artifacts)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    p = argparse.ArgumentParser(prog="python -m storage", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("runs", parents=[common], help="list runs (newest first)")
    r.add_argument("--status")
    r.add_argument("--method")
    r.add_argument("--tag")
    r.add_argument("--limit", type=int, default=100)
    r.add_argument("--project", help="only this project's runs (default: every project's)")
    r.set_defaults(func=cmd_runs)
    s = sub.add_parser("show", parents=[common], help="one run in detail")
    s.add_argument("run", type=int)
    s.set_defaults(func=cmd_show)
    e = sub.add_parser("export", parents=[common], help="write a run bundle (zip)")
    e.add_argument("run", type=int)
    e.add_argument("out", help="the bundle's file name; never the database's or its artifact folder's")
    e.add_argument("--force", action="store_true", help="replace OUT if it exists (default: refuse)")
    e.set_defaults(func=cmd_export)
    i = sub.add_parser("import", parents=[common], help="import a run bundle (zip)")
    i.add_argument("file")
    i.set_defaults(func=cmd_import)
    v = sub.add_parser("versions", parents=[common], help="versions of a template or verbalizer")
    v.add_argument("kind", choices=["template", "verbalizer"])
    v.add_argument("name")
    v.add_argument("--project", help="the project holding the name (default: demo)")
    v.set_defaults(func=cmd_versions)
    pj = sub.add_parser("projects", parents=[common], help="projects with their run and name counts")
    pj.set_defaults(func=cmd_projects)
    c = sub.add_parser("check", parents=[common], help="verify the database and every artifact file")
    _min_age(c)
    c.set_defaults(func=cmd_check)
    g = sub.add_parser("gc", parents=[common], help="remove orphan blobs and stale temp files",
                       description="Remove blobs no artifact row of THIS database references, and stale "
                                   "temp files. The artifact folder must belong to this database alone: "
                                   "two SQLite files in one folder share <folder>/artifacts by default, "
                                   "and gc refuses (exit 2) while another database is registered there.")
    g.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    _min_age(g)
    g.set_defaults(func=cmd_gc)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with open_store(args.db, Path(args.artifacts) if args.artifacts else None) as store:
            args.func(store, args)
    except StorageError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    return 0
