"""Prompt Studio: the Gradio web app (a thin shell over ``backend.services``).

``build_app(ctx)`` builds the Blocks from an explicit context (tests inject one with a tiny model);
``main(argv)`` parses the launch options, opens the store, starts loading the model in the background and
serves the page at once — fully offline (no analytics, no share link, no remote fonts or scripts).
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402  (the environment above must be set before gradio is imported)

from backend.errors import StudioError  # noqa: E402
from backend.services.context import StudioContext  # noqa: E402
from studio.idle_queue import calm_queue, calm_server  # noqa: E402
from studio.shared import Shared, drafts_for  # noqa: E402
from studio.style import CSS, HEAD_JS  # noqa: E402
from studio.tabs import compare, data, evaluate, playground, runs, start, template, train, verbalizer  # noqa: E402

log = logging.getLogger("studio")
TITLE = "Prompt Studio"
READY_S = 60.0   # how long a started studio may take to answer its first request
TABS = (("Start", start), ("Data", data), ("Template", template), ("Verbalizer", verbalizer), ("Evaluate", evaluate),
        ("Compare", compare), ("Train", train), ("Runs", runs), ("Playground", playground))


def build_app(ctx: StudioContext) -> gr.Blocks:
    """The whole studio for ``ctx``; nothing is loaded here (the model loads in the background)."""
    ctx.model.start()
    # delete_cache: Gradio removes the files it copied for this app an hour on, and all at shutdown (ours
    # are in the data folder already: an upload is stored under uploads/, an export under exports/)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        shared = Shared.create(ctx, demo)
        with gr.Tabs(elem_id="ps-tabs") as tabs:
            shared.tabs = tabs   # the start screen's buttons move to other tabs
            for label, module in TABS:
                tab_id = label.lower()
                with gr.Tab(label, id=tab_id, elem_id=f"tab-{tab_id}") as tab:
                    built = module.build(ctx, shared)
                if isinstance(built, dict) and "refresh" in built:   # a list that must be current when opened
                    tab.select(built["refresh"], built["filters"], built["outputs"], api_visibility="private")
        shared.check_placed()
        shared.wire_load(demo)
        shared.keep_drafts_in_browser()
        demo.load(_opening(ctx), inputs=[shared.kept_drafts, shared.kept_project],
                  outputs=[shared.template_text, shared.label_words, shared.max_length], api_visibility="private")
    return demo


def _opening(ctx: StudioContext) -> Any:
    """On each page load the editors show this browser's unsaved drafts, else the project's latest saved
    template and label words (a version saved from another browser included)."""
    from backend.services import project

    def fill(kept: dict[str, Any] | None, remembered: str | None = None) -> tuple[Any, ...]:
        # The editors are built read-only and only this answer makes them editable: an answer landing
        # after the user had started typing would otherwise replace what they typed.
        editable = gr.update(interactive=True)
        try:
            if remembered and remembered != ctx.project and \
                    remembered in {p.name for p in ctx.store.list_projects()}:
                # the Start tab brings this browser back to its project with that project's drafts; filled
                # here too, whichever answer came last would decide which project's text the editors show
                return editable, editable, gr.skip()
            kept = drafts_for(kept, ctx.project)
            res = project.opening(ctx, ctx.project)
        except Exception:  # noqa: BLE001 - whatever went wrong, the user must be able to type
            res = {"error": {"message": "no opening drafts"}}
        if "error" in res:
            return editable, editable, gr.skip()
        return (gr.update(value=kept.get("template") or res["template"], interactive=True),
                gr.update(value=kept.get("label_words") or res["label_words"], interactive=True),
                res["max_length"])
    return fill


# ------------------------------------------------------------------------------------------ launching

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python launch.py", description="Prompt Studio: design, train and "
                                "compare prompts for a pretrained language model, offline.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: 7860 or the next free one)")
    p.add_argument("--data-dir", default=None, help="where the studio keeps its database, uploads and "
                   "artifacts (default: $PROMPT_STUDIO_HOME or ~/.prompt-studio)")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default: a SQLite file in the data dir)")
    p.add_argument("--model", default=None, help="base model: the embedded default, a local directory or "
                   ".gguf, or a cached hub id")
    from backend.choices import EVAL_DTYPES

    p.add_argument("--dtype", default="auto", choices=EVAL_DTYPES,
                   help="the base model's dtype for the studio's evaluations (default auto: bf16 on a GPU, fp32 "
                        "on a CPU; bfloat16 is several times faster on CPUs with AMX, with a few predictions "
                        "changed). Training always loads fp32 weights (train.mixed_precision sets autocast)")
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                   help="require a login (mandatory when --host is not a loopback address)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest dataset upload (default 50)")
    from backend.cli.executor import add_executor_options

    add_executor_options(p)
    p.add_argument("--project", default=None, metavar="NAME", help="the project a new browser session opens "
                   "(created when new; default: demo); the start screen switches between projects")
    return p.parse_args(list(argv))


def check_args(args: argparse.Namespace) -> tuple[str, str] | None:
    """Validate options that depend on each other; returns the (user, password) pair if any."""
    auth = None
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise SystemExit("--auth must look like USER:PASSWORD")
        auth = (user, password)
    if not _is_loopback(args.host) and auth is None:
        raise SystemExit(f"--host {args.host} exposes the studio beyond this machine: add --auth USER:PASSWORD")
    if args.max_upload_mb <= 0:
        raise SystemExit("--max-upload-mb must be positive")
    from backend.cli.executor import on_ray

    try:
        on_ray(args)
    except StudioError as exc:
        raise SystemExit(str(exc)) from None
    if args.project is not None:
        from storage import InvalidInput, check_project_name

        try:
            check_project_name(args.project)
        except InvalidInput as exc:
            raise SystemExit(f"--project: {exc.message}") from None
    return auth


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_context(args: argparse.Namespace) -> StudioContext:
    from backend.models import DEFAULT_MODEL
    from backend.services.context import ModelSlot
    from storage import open_store

    from storage import default_home

    home = Path(args.data_dir).expanduser().absolute() if args.data_dir else default_home()
    home.mkdir(parents=True, exist_ok=True)
    url = args.db or f"sqlite:///{home / 'studio.db'}"
    # artifacts live beside a SQLite file (storage's rule); with a server database, in the data dir
    store = open_store(url, None if url.startswith("sqlite:///") else home / "artifacts")
    try:
        slot = ModelSlot(args.model or DEFAULT_MODEL, dtype=getattr(args, "dtype", "auto"))
    except StudioError as exc:
        store.close()
        raise SystemExit(str(exc)) from None
    ctx = StudioContext(store=store, model=slot, data_dir=home,
                        max_upload_mb=args.max_upload_mb, **({"project": args.project} if args.project else {}))
    from backend.services.jobs import JobRunner

    try:     # --executor ray: queued runs go to the Ray cluster (joined here, so a wrong address stops now)
        ctx.jobs = JobRunner(store, log_dir=home / "logs", project=ctx.project,
                             executor=getattr(args, "executor", "local"),
                             ray_address=getattr(args, "ray_address", None)).start()
    except StudioError as exc:
        store.close()
        raise SystemExit(str(exc)) from None
    return ctx


def launch(demo: gr.Blocks, ctx: StudioContext, *, host: str = "127.0.0.1", port: int | None = None,
           auth: tuple[str, str] | None = None, block: bool = True, ready_s: float = READY_S) -> Any:
    """Serve ``demo`` offline; ``block=False`` returns at once (tests, benchmarks).

    ``show_error=True``: every handler is guarded (``studio.tabs.common.guard``), so its failures already
    arrive as short messages; what else can fail is Gradio's own check of a request (a number field sent
    text, a file path that was never uploaded), and without this its message is replaced by a bare null.

    Gradio's own "is localhost reachable" check gives up on one request slower than 3 s and then
    refuses to start with advice about share links; on a busy laptop (a training job on every core) the
    first page can take longer than that. ``_frontend=False`` skips that check only (Gradio 6.x);
    ``wait_until_served`` does it instead, patiently, with a message about what did not answer.

    ``enable_monitoring=False``: Gradio's traffic page (/monitoring, its key printed to the console) is not
    part of the studio; with it off nothing reads the queue's per-event summary, which the calm queue skips.
    """
    calm_queue(demo.queue(default_concurrency_limit=2))   # an idle studio sleeps (studio/idle_queue.py)
    calm_server()
    served = demo.launch(
        server_name=host, server_port=port, auth=auth, share=False, quiet=True, inbrowser=False,
        prevent_thread_lock=True, show_error=True, footer_links=["api"], enable_monitoring=False,
        max_file_size=int(ctx.max_upload_mb * 1024 * 1024), allowed_paths=[str(ctx.exports_dir)],
        css=CSS, head=HEAD_JS, theme=gr.themes.Soft(font=[gr.themes.Font("system-ui"), "sans-serif"],
                                                   font_mono=[gr.themes.Font("ui-monospace"), "monospace"]),
        ssr_mode=False, _frontend=False)
    try:
        wait_until_served(demo.local_url, ready_s)
    except StudioError:
        demo.close()
        raise
    if block:
        _serve_until_stopped(demo)
    return served


def wait_until_served(url: str, timeout_s: float = READY_S) -> None:
    """Return once ``url`` answers (any page, or a login page); a clear error after ``timeout_s``.

    Asked directly, never through a proxy from the environment: the question is whether our own server
    answers, and the browser on this machine reaches it directly too."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    problem = "no answer"
    while True:
        try:
            with opener.open(urllib.request.Request(url, method="HEAD"),
                             timeout=max(1.0, min(10.0, deadline - time.monotonic()))):
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:   # a login page answers too
                return
            problem = f"HTTP {exc.code}"
        except OSError as exc:
            problem = str(getattr(exc, "reason", None) or exc)
        if time.monotonic() >= deadline:
            raise StudioError(f"The studio started at {url} but did not answer there within {timeout_s:.0f} s "
                              f"({problem}); is a firewall or another program in the way?")
        time.sleep(0.25)


OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    auth = check_args(args)
    # The studio runs offline: a hub model or dataset id is read from the local cache only, failing at
    # once with a clear message instead of retrying the network (export HF_HUB_OFFLINE=0 to allow it).
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    ctx = make_context(args)
    gradio_tmp_in(ctx.data_dir)
    demo = build_app(ctx)
    try:
        launch(demo, ctx, host=args.host, port=args.port, auth=auth, block=False)
    except StudioError as exc:
        ctx.close()
        raise SystemExit(str(exc)) from None
    print(f"Prompt Studio: {demo.local_url} (data in {ctx.data_dir}; Ctrl+C stops)", flush=True)
    try:
        _serve_until_stopped(demo)
    finally:
        ctx.close()
    return 0


def gradio_tmp_in(home: Path) -> str:
    """Gradio's copies of uploads and downloads (a bundle, the sweep CSV) in ``home/gradio-tmp``, private
    (0700), unless ``GRADIO_TEMP_DIR`` names a place already; returns the folder used. Why: by default
    they go to ``/tmp/gradio``, world-readable and kept after the studio stops. Gradio reads the variable
    as the app is built, so this runs before ``build_app``."""
    if "GRADIO_TEMP_DIR" not in os.environ:
        (home / "gradio-tmp").mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["GRADIO_TEMP_DIR"] = str(home / "gradio-tmp")
    return os.environ["GRADIO_TEMP_DIR"]


def _serve_until_stopped(demo: gr.Blocks) -> None:
    """Wait while the server runs. Not ``demo.block_thread()``: it wakes ten times a second to look, a
    tenth of what an idle studio spends (bench/results/idle.md); Ctrl+C interrupts this sleep at once."""
    try:
        while demo.is_running:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("Stopping Prompt Studio.", flush=True)
        demo.close()
