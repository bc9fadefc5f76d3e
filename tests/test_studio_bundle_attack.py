"""The bundle attack end to end through the studio's HTTP API (gradio_client): a logged-in user uploads
bundles whose artifacts are named to escape the store; each is refused with a message naming the file
(never a server path), nothing is imported and nothing is written outside the studio's folder."""
from __future__ import annotations

import os
import uuid

import pytest

from storage import open_store
from tests.test_storage_bundle_security import _make_run, _renamed, forge

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    from tests.client_helpers import api_client

    from backend.services.testing import make_context
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    home = tmp_path_factory.mktemp("home")
    ctx = make_context(home, tiny_model("causal", smol_tok))
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    yield api_client(demo.local_url), ctx, home
    demo.close()


def test_hostile_bundles_uploaded_to_the_studio_write_nothing_outside(studio, tmp_path):
    from gradio_client import handle_file

    client, ctx, home = studio
    with open_store(f"sqlite:///{tmp_path / 'src.db'}", tmp_path / "src-artifacts") as st:
        good = st.export_run(_make_run(st), tmp_path / "good.zip")
    marker = f"evil-{uuid.uuid4().hex[:8]}"
    outside = tmp_path / "outside"
    outside.mkdir()
    before = {p for p in tmp_path.rglob("*")} | {p for p in home.rglob("*")}
    runs_before = len(ctx.store.list_runs())
    for i, name in enumerate([f"../../{marker}.txt", f"{outside}/{marker}.txt", f"a/../../../{marker}.txt",
                              f"..\\..\\{marker}.txt"]):
        bundle = _renamed(good, tmp_path / f"attack{i}.zip", name)
        msg = client.predict(handle_file(str(bundle)), api_name="/import_bundle")
        assert f"attack{i}.zip" in msg and "not a safe file name" in msg, msg
        # the bundle is named by its file name: not by where the upload sits on the server (the hostile
        # name itself is quoted, it is the sender's own text)
        assert str(bundle) not in msg and str(home) not in msg and "gradio" not in msg.lower()
    bomb = forge(good, tmp_path / "bomb.zip", manifest=lambda m: m["files"]["config.json"].update(size=1 << 40))
    msg = client.predict(handle_file(str(bomb)), api_name="/import_bundle")
    assert "bomb.zip" in msg and "Imported" not in msg
    assert len(ctx.store.list_runs()) == runs_before                          # nothing imported
    after = {p for p in tmp_path.rglob("*")} | {p for p in home.rglob("*")}
    assert not [p for p in after - before if marker in p.name]
    assert not any(marker in p.name for p in tmp_path.parent.rglob(f"*{marker}*"))
    assert client.predict(handle_file(str(good)), api_name="/import_bundle").count("Imported as run #") == 1
