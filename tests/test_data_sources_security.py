"""The studio reads only the datasets it offers: built-ins, its uploads, files under its data folder and
cached hub ids. Any other server path (absolute, ``..``, ``~``, a symlink out) is a clear error with no
rows and no columns, through the services and through the HTTP API; the CLI still reads local files."""
from __future__ import annotations

import os

import pytest

from backend.services import data, evaluate, project, runconfig
from backend.services.testing import make_context

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
SECRET = "the-server-secret"
BAD = ["/etc/passwd", "../../x", "~/.ssh/id_rsa", "hf:../../etc", "../secret.csv", "uploads/../../secret.csv"]


@pytest.fixture
def ctx_and_secret(tmp_path):
    secret = tmp_path / "secret.csv"      # a readable dataset-shaped file outside the studio's folder
    secret.write_text(f"text,label\n{SECRET},a\nother,b\n")
    ctx = make_context(tmp_path / "studio")
    yield ctx, secret
    ctx.close()


def _sel(source):
    return {"source": source, "columns": {}, "split": None, "limit": None, "shots": None, "seed": 13}


def _refused(res):
    assert "error" in res and res["error"]["field"] == "data", res
    msg = res["error"]["message"]
    assert SECRET not in str(res) and ("data folder" in msg or "not readable" in msg or "not a dataset" in msg), msg
    return msg


@pytest.mark.parametrize("source", BAD + ["ABSOLUTE_SECRET", "LINK_OUT"])
def test_server_paths_give_a_clear_error_and_no_rows_or_columns(ctx_and_secret, source):
    ctx, secret = ctx_and_secret
    if source == "ABSOLUTE_SECRET":
        source = str(secret)
    elif source == "LINK_OUT":
        (ctx.uploads_dir / "link.csv").symlink_to(secret)
        source = str(ctx.uploads_dir / "link.csv")
    _refused(data.load(ctx, _sel(source)))
    _refused(data.columns(ctx, _sel(source)))
    assert data.splits(ctx, source) == [] and data.row_choices(ctx, _sel(source)) == []
    assert "error" in data.browse(ctx, _sel(source))


def test_folder_listing_outside_is_refused(ctx_and_secret):
    ctx, secret = ctx_and_secret
    (secret.parent / "train.csv").write_text(secret.read_text())
    assert data.splits(ctx, str(secret.parent)) == []
    _refused(data.load(ctx, _sel(str(secret.parent))))


def test_what_the_studio_offers_still_loads(ctx_and_secret, tmp_path):
    ctx, _ = ctx_and_secret
    assert data.load(ctx, _sel("builtin:movie-reviews"))["n"] > 0
    mine = tmp_path / "mine.csv"
    mine.write_text("text,label\nhello,a\nbye,b\n")
    saved = data.save_upload(ctx, mine)["source"]
    assert data.load(ctx, _sel(saved))["n"] == 2
    relative = os.path.relpath(saved, ctx.data_dir)            # "uploads/mine-<digest>.csv"
    assert data.load(ctx, _sel(relative))["n"] == 2
    assert "no built-in dataset" in data.load(ctx, _sel("builtin:../../etc"))["error"]["message"]


def test_a_run_config_cannot_read_a_server_file(ctx_and_secret, smol_tok):
    from tests.tiny import tiny_model

    ctx, secret = ctx_and_secret
    ctx = make_context(ctx.data_dir.parent / "with-model", tiny_model("causal", smol_tok))
    opening = project.bootstrap(ctx)
    cfg = runconfig.build(ctx, template=opening["template"], label_words=opening["label_words"],
                          selection=_sel("builtin:movie-reviews"))
    cfg.data.eval = str(secret)
    _refused(evaluate.zero_shot(ctx, cfg))
    assert ctx.store.list_runs() == []
    cfg.data.eval, cfg.verbalizer = "builtin:movie-reviews", str(secret)
    assert evaluate.zero_shot(ctx, cfg)["error"]["field"] == "verbalizer"
    ctx.close()


def test_the_cli_still_reads_local_files(ctx_and_secret):
    from backend.data import load_examples

    _, secret = ctx_and_secret
    assert load_examples(str(secret)).examples[0].text_a == SECRET


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from tests.client_helpers import api_client

    from studio.app import build_app, launch

    ctx = make_context(tmp_path_factory.mktemp("studio-sec"))
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    yield api_client(demo.local_url), ctx
    demo.close()
    ctx.close()


def test_the_http_api_refuses_server_paths(client, tmp_path):
    c, ctx = client
    secret = tmp_path / "secret.csv"
    secret.write_text(f"text,label\n{SECRET},a\nother,b\n")
    for source in BAD[:3] + [str(secret)]:
        out = c.predict("Hub id", None, None, source, None, 0, 0.2, api_name="/load_data")
        assert "ps-error" in out[0] and SECRET not in str(out), (source, out)
        assert "data folder" in out[0] or "not readable" in out[0], out[0]
        page = c.predict("", api_name="/browse")
        assert SECRET not in str(page)


# ------------------------------------------------------------------------------------------ split names

def _split_escapes(secret):
    """The secret file as a split of the built-in dataset: absolute, and ``..`` up from the built-in folder."""
    from backend.data.builtin import builtin_dir

    stem = secret.with_suffix("")
    return [str(stem), os.path.relpath(stem, builtin_dir("builtin:movie-reviews"))]


def test_a_split_is_a_plain_name_never_a_path(ctx_and_secret):
    """A split is joined to the dataset's folder as ``<split>.csv``: a path there read any server file.
    The split names datasets use (built-in, ../shared/datasets, hub) still load."""
    from backend.config import DEMO_CONFIG, RunConfig
    from backend.data import load_examples
    from backend.errors import ConfigError, DatasetError
    from tests.cli_helpers import ROOT

    ctx, secret = ctx_and_secret
    for split in _split_escapes(secret):
        res = data.load(ctx, dict(_sel("builtin:movie-reviews"), split=split))
        assert "error" in res and SECRET not in str(res) and "not a split name" in res["error"]["message"], res
        with pytest.raises(DatasetError, match="not a split name"):
            load_examples("builtin:movie-reviews", split=split)
        for key in ("eval_split", "train_split"):
            raw = dict(DEMO_CONFIG, data={**DEMO_CONFIG["data"], key: split})
            with pytest.raises(ConfigError, match=f"data.{key}: a split is a plain name"):
                RunConfig.from_dict(raw)
    for split in ("train", "dev", "", None):
        assert load_examples("builtin:movie-reviews", split=split).examples
    shared = ROOT.parent / "shared" / "datasets"
    for folder, split in (("sst2", "dev"), ("agnews", "test"), ("lama_trex/P103", "test")):
        if (shared / folder).is_dir():
            assert load_examples(str(shared / folder), split=split, limit=3).examples
    for split in ("train", "dev", "validation", "test", "validation_matched", "test.en", "P103", ""):
        raw = dict(DEMO_CONFIG, data={**DEMO_CONFIG["data"], "eval_split": split, "train_split": split})
        assert RunConfig.from_dict(raw).data.eval_split == split


def test_confine_config_checks_a_split_set_after_parsing(ctx_and_secret):
    """evaluate.trained_run sets the page's split on a parsed config: confine_config checks it again."""
    from backend.config import DEMO_CONFIG, RunConfig
    from backend.errors import ConfigError

    ctx, secret = ctx_and_secret
    cfg = RunConfig.from_dict(DEMO_CONFIG)
    cfg.data.eval_split = _split_escapes(secret)[1]
    with pytest.raises(ConfigError, match="data.eval_split"):
        data.confine_config(ctx, cfg)


def test_a_studio_run_writes_only_under_the_studios_runs_folder(ctx_and_secret, tmp_path):
    """train.output_dir in edited JSON or a sweep's base: the worker would create run-N and write weights
    there; the studio refuses a folder outside its runs root for a run it queues (training.submit, the cost
    card) and keeps one under it (a copied config)."""
    from backend.config import DEMO_CONFIG, RunConfig
    from backend.errors import ConfigError
    from backend.jobs.paths import runs_root

    ctx, _ = ctx_and_secret
    for outside in (str(tmp_path / "anywhere"), "/tmp", str(runs_root(ctx.store) / ".." / "elsewhere")):
        cfg = RunConfig.from_dict({**DEMO_CONFIG, "method": {"name": "lora"}, "train": {"output_dir": outside}})
        with pytest.raises(ConfigError, match="train.output_dir: the studio keeps its runs' files") as err:
            data.confine_output(ctx, cfg)
        assert err.value.field == "train.output_dir"
    inside = runs_root(ctx.store) / "mine"
    cfg = RunConfig.from_dict({**DEMO_CONFIG, "method": {"name": "lora"}, "train": {"output_dir": str(inside)}})
    assert data.confine_output(ctx, cfg).train.output_dir == str(inside.resolve())
    assert data.confine_config(ctx, RunConfig.from_dict({**DEMO_CONFIG, "method": {"name": "lora"}, "train": {
        "output_dir": "/tmp"}})).train.output_dir == "/tmp"    # only read (evaluated, served): not refused


def test_a_split_file_linked_out_of_its_folder_is_refused(ctx_and_secret, tmp_path):
    from backend.data import load_examples
    from backend.errors import DatasetError

    _, secret = ctx_and_secret
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dev.csv").write_text("text,label\nmine,a\n")
    (folder / "train.csv").symlink_to(secret)
    assert load_examples(str(folder), split="dev").examples[0].text_a == "mine"
    with pytest.raises(DatasetError, match="link to a file outside") as err:
        load_examples(str(folder), split="train")
    assert SECRET not in str(err.value)
