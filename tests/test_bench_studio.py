"""bench/bench_studio.py's requests stay what the studio takes (its direct /run call broke silently once,
when the preview got another input)."""
from __future__ import annotations

import httpx

from bench.bench_studio import call, direct, preview_args


def test_the_bench_calls_the_preview_as_the_studio_takes_it(tmp_path, smol_tok):
    from backend.services.testing import make_context
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path, tiny_model("causal", smol_tok))
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    try:
        with httpx.Client(base_url=demo.local_url.rstrip("/"), timeout=120) as client:
            for fn, is_direct in ((call, False), (direct, True)):
                _, body = fn(client, "preview", preview_args("Review: {text_a} benchword: {mask}", is_direct))
                assert "benchword" in body and "ps-chip" in body, body[:300]
    finally:
        demo.close()
