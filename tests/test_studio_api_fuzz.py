"""Fuzz every endpoint of the launched studio over raw HTTP: wrong types, 1 MB strings, negative numbers,
NaN / infinity, lone surrogates, nulls and file-system paths, in every parameter at once and one parameter
at a time on top of the endpoint's defaults.

What must hold: no 5xx and no traceback — an error the user sees is the app's own message (a ``gr.Error``
with text, never Gradio's bare ``null`` for an unexpected exception, never the guard's "Something went
wrong" that marks a bug); nothing from ``/etc/passwd`` comes back; nothing is created outside the studio's
home; and the server still answers afterwards. The named endpoints are called as a client would
(``POST /gradio_api/call/<name>`` then its event stream); the private ones (page-load and change helpers)
are still reachable by any page through the queue by ``fn_index``, so they are fuzzed there.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.slow

MARKER = f"psfuzz{uuid.uuid4().hex[:8]}"
PATHS = ["/etc/passwd", f"../../{MARKER}", "~", f"~/{MARKER}", f"/tmp/{MARKER}/x", "..\\..\\" + MARKER]
HUGE = "x{text_a} " * (1024 * 1024 // 10)          # ~1 MB, still a template that parses
SURROGATE = "bad \ud800 text {text_a} {mask} \udfff"
PASSWD_LINE = "root:x:0:"
BUG_SIGNS = ("Something went wrong", "Traceback (most recent call last)")


# ------------------------------------------------------------------------------------------ the app

class _Errors(logging.Handler):
    """Collects ERROR records from any logger while the fuzz runs (the guard logs each bug it catches)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    from backend.services.testing import make_context
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    base = tmp_path_factory.mktemp("fuzz")
    home = base / "a" / "b" / "home"   # so '../../x' relative to the home still lands inside ``base``
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMPT_STUDIO_HOME", str(home))
        ctx = make_context(home, tiny_model("causal", smol_tok))
        demo = build_app(ctx)
        launch(demo, ctx, port=None, block=False)
        errors = _Errors()
        logging.getLogger().addHandler(errors)
        try:
            yield {"url": demo.local_url.rstrip("/"), "ctx": ctx, "base": base, "home": home, "errors": errors}
        finally:
            logging.getLogger().removeHandler(errors)
            demo.close()


# ------------------------------------------------------------------------------------------ bad values

def _kind(param: dict[str, Any]) -> str:
    """'file', 'list', 'int', 'float', 'bool' or 'str' from the parameter's JSON schema."""
    schema = param.get("type") or {}
    if "properties" in schema and "path" in schema.get("properties", {}):
        return "file"
    return {"array": "list", "integer": "int", "number": "float", "boolean": "bool"}.get(schema.get("type"), "str")


def _file(path: str) -> dict[str, Any]:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


FAMILIES = ("wrong type", "huge", "negative", "nan", "surrogate", "null", "path")


def bad_values(kind: str, turn: int = 0) -> dict[str, Any]:
    """One bad value of each family for a parameter of ``kind``; ``turn`` rotates the variants (which
    path, NaN or infinity) so that different endpoints get different ones."""
    path = PATHS[turn % len(PATHS)]
    nan = (math.nan, -math.inf, math.inf)[turn % 3]
    if kind == "str":
        return {"wrong type": (12345, ["a"], {"a": 1})[turn % 3], "huge": HUGE, "negative": "-1",
                "nan": "NaN", "surrogate": SURROGATE, "null": None, "path": path}
    if kind in ("int", "float"):
        return {"wrong type": "twelve", "huge": 10 ** 30, "negative": (-1, -10 ** 9)[turn % 2], "nan": nan,
                "surrogate": SURROGATE, "null": None, "path": path}
    if kind == "bool":
        return {"wrong type": "yes", "huge": 10 ** 30, "negative": -1, "nan": nan, "surrogate": SURROGATE,
                "null": None, "path": path}
    if kind == "list":
        return {"wrong type": ("not a list", [[{"a": 1}]], 7)[turn % 3],
                "huge": [HUGE] + [str(i) for i in range(2000)], "negative": [-1, "-1"], "nan": [nan],
                "surrogate": [SURROGATE], "null": (None, [None])[turn % 2], "path": PATHS[:3]}
    files = (_file("/etc/passwd"), _file(f"../../{MARKER}"), _file("~/.bashrc"),
             {"path": "x", "url": "file:///etc/passwd", "meta": {"_type": "gradio.FileData"}})
    return {"wrong type": "/etc/passwd", "huge": _file(HUGE[:4096]), "negative": -1, "nan": _file("NaN"),
            "surrogate": _file(SURROGATE), "null": None, "path": files[turn % len(files)]}


def cases(params: list[dict[str, Any]], turn: int = 0, singles: int = 4) -> list[tuple[str, list[Any]]]:
    """Every bad family in every parameter at once, then a few parameters alone on top of the endpoint's
    defaults (spread over a long form; a rotating family each), so a call reaches past the first check."""
    kinds = [_kind(p) for p in params]
    defaults = [p.get("parameter_default") for p in params]
    out = [(f"all {fam}", [bad_values(k, turn)[fam] for k in kinds]) for fam in FAMILIES]
    big = [i for i, k in enumerate(kinds) if k == "str"][2:]   # a long form: 1 MB in two fields is enough
    out[FAMILIES.index("huge")][1][slice(None)] = [HUGE[:1000] if i in big else v
                                                  for i, v in enumerate(out[FAMILIES.index("huge")][1])]
    picked = sorted({i * len(params) // singles for i in range(singles)}) if params else []
    for n, i in enumerate(picked):
        fam = FAMILIES[(turn + n + i) % len(FAMILIES)]
        args = list(defaults)
        args[i] = bad_values(kinds[i], turn + n)[fam]
        out.append((f"{params[i].get('parameter_name')}={fam}", args))
    return out


# ------------------------------------------------------------------------------------------ calling

def _events(resp: Any) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a server-sent-event stream."""
    out, event = [], None
    for line in resp.iter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            raw = line.split(":", 1)[1].strip()
            try:
                data = json.loads(raw)
            except ValueError:
                data = raw
            out.append((event or "message", data))
    return out


def transport_safe(call: Any) -> Any:
    """A dropped connection is a finding like any other (the server failed while answering)."""
    def inner(*args: Any) -> dict[str, Any]:
        try:
            return call(*args)
        except httpx.TransportError as exc:
            return {"status": 599, "event": None, "data": None, "raw": f"connection failed: {exc!r}"}
    return inner


@transport_safe
def call_named(http: Any, url: str, name: str, args: list[Any], session: str | None = None) -> dict[str, Any]:
    """POST /gradio_api/call/<name> then read its stream: {"status", "event", "data", "raw"}. ``session``:
    the calls of one endpoint share one, as a page's calls do (Gradio builds every new session's copy of the
    whole app's config: ~0.1 s each, half of what this test spent)."""
    body = json.dumps({"data": args} if session is None else {"data": args, "session_hash": session},
                      allow_nan=True)
    r = http.post(f"{url}/gradio_api/call/{name}", content=body, headers={"content-type": "application/json"})
    if r.status_code != 200:
        return {"status": r.status_code, "event": None, "data": None, "raw": r.text}
    event_id = r.json()["event_id"]
    with http.stream("GET", f"{url}/gradio_api/call/{name}/{event_id}") as resp:
        events = _events(resp)
        status = resp.status_code
    final = [e for e in events if e[0] in ("complete", "error")]
    event, data = final[-1] if final else (None, None)
    return {"status": status, "event": event, "data": data, "raw": json.dumps(events, default=str)}


@transport_safe
def call_private(http: Any, url: str, fn_index: int, args: list[Any], session: str) -> dict[str, Any]:
    """Join the queue for ``fn_index`` as the page does, and read the session's stream until it ends; the
    calls of one function share a session (a new one costs the server a copy of the whole app's config)."""
    body = json.dumps({"data": args, "fn_index": fn_index, "session_hash": session, "event_data": None,
                       "trigger_id": None}, allow_nan=True)
    r = http.post(f"{url}/gradio_api/queue/join", content=body, headers={"content-type": "application/json"})
    if r.status_code != 200:
        return {"status": r.status_code, "event": None, "data": None, "raw": r.text}
    event, data, raw = None, None, []
    with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as resp:
        status = resp.status_code
        for _, msg in _events(resp):
            raw.append(msg)
            if not isinstance(msg, dict):
                continue
            if msg.get("msg") == "process_completed":
                ok = msg.get("success")
                event, data = ("complete", msg["output"].get("data")) if ok else ("error", msg.get("output"))
            elif msg.get("msg") == "unexpected_error":
                event, data = "error", {"error": None, "unexpected": msg.get("message")}
            if msg.get("msg") in ("close_stream", "process_completed", "unexpected_error"):
                break
    return {"status": status, "event": event, "data": data, "raw": json.dumps(raw, default=str)}


def problem(res: dict[str, Any]) -> str | None:
    """Why this response is not acceptable, or None."""
    if res["status"] >= 500:
        return f"HTTP {res['status']}: {res['raw'][:300]}"
    if PASSWD_LINE in res["raw"]:
        return "the response contains /etc/passwd"
    for sign in BUG_SIGNS:
        if sign in res["raw"]:
            return f"bug surfaced: {res['raw'][:400]}"
    if res["event"] == "error":
        err = res["data"].get("error") if isinstance(res["data"], dict) else res["data"]
        if not err:
            return "unexpected exception (Gradio's generic error, no message)"
    if res["status"] == 200 and res["event"] is None:
        return f"the stream ended without a result: {res['raw'][:300]}"
    return None


def _private_fns(http: Any, url: str) -> list[tuple[int, list[dict[str, Any]]]]:
    """(fn_index, parameters) for each backend function not on the named API, typed from /config."""
    config = http.get(f"{url}/config").json()
    comps = {c["id"]: c for c in config["components"]}
    type_of = {"number": "integer", "checkbox": "boolean", "file": "file"}
    out = []
    for dep in config["dependencies"]:
        if not dep.get("backend_fn") or dep.get("api_visibility") == "public":
            continue
        params = []
        for cid in dep["inputs"]:
            comp = comps.get(cid, {})
            ctype = comp.get("type", "")
            multi = comp.get("props", {}).get("multiselect")
            schema: dict[str, Any] = {"type": "array"} if multi else {"type": type_of.get(ctype, "string")}
            if ctype == "file":
                schema = {"properties": {"path": {}}}
            params.append({"parameter_name": f"{ctype}#{cid}", "type": schema,
                           "parameter_default": comp.get("props", {}).get("value")})
        out.append((dep["id"], params))
    return out


def _snapshot(base: Path, home: Path) -> set[str]:
    return {str(p) for p in base.rglob("*") if home not in p.parents}


def _marker_hits() -> list[str]:
    """Files named after this run's marker anywhere a relative or '~' path could have put them."""
    roots = {Path.cwd(), Path.cwd().parent, Path.cwd().parent.parent, Path("/tmp"), Path.home()}
    hits = []
    for root in roots:
        try:
            hits += [str(p) for p in root.iterdir() if MARKER in p.name]
        except OSError:
            continue
    return hits


# ------------------------------------------------------------------------------------------ the test

def test_every_endpoint_survives_bad_input(studio):
    url, base, home = studio["url"], studio["base"], studio["home"]
    before = _snapshot(base, home)
    tilde = Path.cwd() / "~"
    tilde_before = tilde.exists()
    took: dict[str, float] = {}
    with httpx.Client(timeout=120) as http:
        info = http.get(f"{url}/gradio_api/info").json()
        # the endpoints that run a model inline (searches, cost cards) first: they queue on its lock, and
        # started last they would be the test's tail with nothing left to overlap them
        named = sorted(info["named_endpoints"].items(), key=lambda kv: ("search_templates" not in kv[0]
                                                                          and "cost" not in kv[0], kv[0]))
        assert len(named) >= 20, "the studio's API lost its endpoints"
        jobs = [(api, lambda a, api=api, turn=turn: call_named(http, url, api.lstrip("/"), a, f"fuzz{turn}"),
                 cases(ep["parameters"], turn)) for turn, (api, ep) in enumerate(named)]
        private = _private_fns(http, url)
        assert private, "no private helper functions found in /config"
        # not surrogates here: Gradio's session stream (orjson) drops the connection when a message echoes
        # one (its Dropdown's "not in the list of choices" does); /call above carries them
        jobs += [(f"fn_index {i}", lambda a, i=i, turn=turn: call_private(http, url, i, a, f"fuzzp{turn}"),
                  [c for c in cases(params, turn, singles=1) if "surrogate" not in c[0]][:5])
                 for turn, (i, params) in enumerate(private)]

        def run(job: tuple[str, Any, list[tuple[str, list[Any]]]]) -> list[str]:
            name, call, todo = job
            started = time.monotonic()
            found = [f"{name} [{label}]: {why}" for label, args in todo if (why := problem(call(args)))]
            took[name] = time.monotonic() - started
            return found

        with ThreadPoolExecutor(4) as pool:   # endpoints in parallel, as several browsers would
            findings = [f for found in pool.map(run, jobs) for f in found]
        # the server still answers, with the right thing
        res = call_named(http, url, "preview", ["{text_a} It was {mask}", [], 64, "tail"])
        assert res["event"] == "complete" and "Template OK" in res["data"][0]
    logged = [f"{r.name}: {r.getMessage()}" for r in studio["errors"].records]
    if os.environ.get("PS_FUZZ_REPORT"):  # the whole story, for whoever fixes what the fuzz found
        tracebacks = [logging.Formatter().format(r) for r in studio["errors"].records]
        slowest = sorted(took.items(), key=lambda kv: -kv[1])[:15]
        Path(os.environ["PS_FUZZ_REPORT"]).write_text("\n".join(
            findings + ["", "slowest:"] + [f"{k} {v:.1f}s" for k, v in slowest] + [""] + tracebacks))
    assert not findings, "\n".join(findings[:60])
    assert not logged, "\n".join(logged[:30])
    created = _snapshot(base, home) - before
    assert not created, f"files created outside the studio's home: {sorted(created)[:10]}"
    assert not _marker_hits(), f"files created from fuzzed paths: {_marker_hits()}"
    assert tilde.exists() == tilde_before, "a folder named '~' was created in the working directory"
