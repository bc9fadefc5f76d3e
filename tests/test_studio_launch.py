"""Launch options: defaults, the login rule for non-loopback hosts, and a real ``python launch.py``."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from studio.app import check_args, make_context, parse_args
from tests.browser_helpers import launched_studio

ROOT = Path(__file__).resolve().parents[1]


def test_defaults():
    args = parse_args([])
    assert (args.host, args.port, args.db, args.model, args.auth, args.max_upload_mb) == \
        ("127.0.0.1", None, None, None, None, 50.0)
    assert check_args(args) is None


@pytest.mark.parametrize("argv, message", [
    (["--host", "0.0.0.0"], "--auth"),
    (["--host", "192.168.1.5"], "--auth"),
    (["--auth", "nopassword"], "USER:PASSWORD"),
    (["--auth", ":secret"], "USER:PASSWORD"),
    (["--max-upload-mb", "0"], "positive"),
])
def test_refused_options(argv, message):
    with pytest.raises(SystemExit) as err:
        check_args(parse_args(argv))
    assert message in str(err.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_login(host):
    assert check_args(parse_args(["--host", host])) is None


def test_login_pair_and_exposed_host():
    assert check_args(parse_args(["--host", "0.0.0.0", "--auth", "ana:s3cret:with:colons"])) == \
        ("ana", "s3cret:with:colons")


def test_data_dir_and_db_url(tmp_path):
    ctx = make_context(parse_args(["--data-dir", str(tmp_path / "home"), "--db",
                                   f"sqlite:///{tmp_path / 'elsewhere.db'}", "--max-upload-mb", "3"]))
    try:
        assert ctx.store.url.endswith("elsewhere.db") and (tmp_path / "elsewhere.db").exists()
        assert ctx.data_dir == tmp_path / "home" and ctx.max_upload_mb == 3
        assert ctx.jobs is not None  # training is wired to the job runner
    finally:
        ctx.close()


def test_the_studio_model_dtype_is_checked_before_anything_loads_and_named_on_the_page(tmp_path):
    assert parse_args([]).dtype == "auto"
    with pytest.raises(SystemExit) as err:      # a CPU runs no float16: refused at launch, not in a thread later
        make_context(parse_args(["--data-dir", str(tmp_path / "home"), "--dtype", "float16"]))
    assert "--dtype: evaluating in float16 on a CPU" in str(err.value)
    ctx = make_context(parse_args(["--data-dir", str(tmp_path / "home"), "--dtype", "bfloat16"]))
    try:
        assert ctx.model.dtype == "bfloat16" and ctx.model.spec   # loads lazily, in bf16 (below)
    finally:
        ctx.close()


def test_a_bf16_studio_model_is_used_by_every_evaluation_it_builds(tmp_path, smol_tok):
    """The studio's evaluations run on its one model: the configs it builds say its dtype, so a comparison
    job (its own process, loading its own model) and the record both match what the page scored with."""
    import dataclasses

    from backend.services import data, evaluate, project, runconfig
    from backend.services.context import ModelSlot
    from backend.services.testing import make_context as service_context
    from tests.tiny import tiny_model

    tiny = tiny_model("causal", smol_tok)
    bf16 = dataclasses.replace(tiny, model=tiny.model.to(torch.bfloat16), dtype=torch.bfloat16)
    ctx = service_context(tmp_path, bf16)
    ctx.model = ModelSlot(bf16.spec, loader=lambda: bf16, dtype="bfloat16")
    ctx.model.start()
    assert ctx.model.wait(30) and ", bfloat16" in ctx.model.status()["message"]
    project.bootstrap(ctx)
    try:
        args = dict(template="{text_a} It was {mask}", label_words="negative: bad\npositive: good",
                    selection=data.default_selection(), max_length=64, eval_limit=8)
        cfg = runconfig.build(ctx, **args)
        assert cfg.eval.dtype == "bfloat16"
        assert runconfig.build(ctx, **args, method="prompt-tuning").eval.dtype == "auto"   # training: fp32 weights
        res = evaluate.zero_shot(ctx, cfg)
        assert res["run_id"] and res["metrics"]["n"] == 8
        doc = [a for a in ctx.store.list_artifacts(res["run_id"]) if a.kind == "lineage"][0]
        assert json.loads(ctx.store.read_artifact(doc.sha256))["dtype"] == "bfloat16"
        from backend.services import runs   # the same prompt on the model in fp32: the comparison says why they differ

        fp32 = tiny_model("causal", smol_tok)
        ctx.model = ModelSlot.ready(fp32)
        other = evaluate.zero_shot(ctx, runconfig.build(ctx, **args))
        diff = runs.compare(ctx, [res["run_id"], other["run_id"]])["config_diff"]
        assert diff["lineage.dtype"] == ["bfloat16", "float32"] and diff["config.eval.dtype"] == ["bfloat16", "auto"]
        assert "lineage.device" not in diff and "lineage.code_version" not in diff   # only what differs
    finally:
        ctx.close()


def test_a_broken_import_is_not_hidden_as_a_missing_feature(tmp_path, monkeypatch):
    """A job runner that fails to import is a bug to see, not a studio that quietly cannot train."""
    monkeypatch.setitem(sys.modules, "backend.services.jobs", None)   # importing it raises ImportError
    with pytest.raises(ImportError):
        make_context(parse_args(["--data-dir", str(tmp_path / "home")]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_launch_py_serves_the_page(tmp_path):
    port = _free_port()
    env = dict(os.environ, PROMPT_STUDIO_NO_BOOTSTRAP="1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "--data-dir", str(tmp_path), "--port",
                             str(port)], cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        page = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert "Prompt Studio" in page
        assert (tmp_path / "studio.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_exposed_host_without_login_exits_with_a_message(tmp_path):
    env = dict(os.environ, PROMPT_STUDIO_NO_BOOTSTRAP="1")
    out = subprocess.run([sys.executable, str(ROOT / "launch.py"), "--host", "0.0.0.0", "--data-dir",
                          str(tmp_path)], cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "--auth" in out.stderr


def test_a_studio_slow_to_answer_still_starts(tmp_path, smol_tok, monkeypatch):
    """Gradio's own reachability check gives up after one request slower than 3 s (a busy laptop) and
    refuses to start; the studio waits for its first answer itself instead (studio.app.wait_until_served)."""
    import gradio.networking

    monkeypatch.setattr(gradio.networking, "url_ok", lambda url: False)   # as a 3-s timeout reads to it
    with launched_studio(tmp_path, smol_tok, jobs=False) as (url, _ctx):
        with urllib.request.urlopen(url, timeout=30) as page:
            assert "Prompt Studio" in page.read().decode()


def test_a_studio_that_never_answers_is_a_clear_error():
    from backend.errors import StudioError
    from studio.app import wait_until_served

    url = f"http://127.0.0.1:{_free_port()}/"   # nobody listens there
    started = time.monotonic()
    with pytest.raises(StudioError, match=r"did not answer there within 1 s") as err:
        wait_until_served(url, timeout_s=1.0)
    assert url in str(err.value) and time.monotonic() - started < 10


def test_a_studio_behind_a_login_counts_as_answering(tmp_path, smol_tok):
    """Its first page is the login page: the launch's own check must accept that, not wait 60 s."""
    started = time.monotonic()
    with launched_studio(tmp_path, smol_tok, jobs=False, auth=("user", "secret"), ready_s=20) as (url, _ctx):
        assert time.monotonic() - started < 20
        with pytest.raises(urllib.error.HTTPError) as refused:   # the app itself still wants the login
            urllib.request.urlopen(url + "config", timeout=30)
        assert refused.value.code == 401
