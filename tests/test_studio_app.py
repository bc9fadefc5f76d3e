"""The launched studio through gradio_client: every tab's main actions against a live app.

One app per module (launching costs seconds), built from an injected context: a tiny random causal
model over SmolLM2's real tokenizer and a fresh store, so nothing is downloaded or converted.
"""
from __future__ import annotations

import json
import os
import re

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="module")
def studio(tmp_path_factory, smol_tok):
    from backend.services.testing import make_context
    from studio.app import build_app, launch
    from tests.tiny import tiny_model

    ctx = make_context(tmp_path_factory.mktemp("studio"), tiny_model("causal", smol_tok))
    demo = build_app(ctx)
    launch(demo, ctx, port=None, block=False)
    yield demo.local_url, ctx, demo
    demo.close()


@pytest.fixture(scope="module")
def client(studio):
    from tests.client_helpers import api_client

    return api_client(studio[0])


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_template_preview_shows_chips_and_errors_at_the_span(client):
    feedback, preview = client.predict("Review: {text_a} Verdict: {mask}", [0, 1], 64, "tail",
                                       api_name="/preview")
    assert "Template OK" in feedback
    assert preview.count("class='ps-example'") == 2 and "ps-chip" in preview
    feedback, preview = client.predict("Review: {text_a} Verdict: {mask", [0], 64, "tail", api_name="/preview")
    assert "ps-error" in feedback and "never closed" in feedback
    assert "<mark class='ps-mark ps-error'" in feedback and "{mask</mark>" in feedback
    assert "Fix the template" in preview


def test_template_preview_shows_demonstrations_from_the_training_rows(client):
    _, preview = client.predict("{demos}Review: {text_a} Verdict: {mask}", [0], 256, "tail", api_name="/preview")
    assert preview.count("ps-demo") > 2 and "2 demonstration(s)" in preview and "→ " in preview
    _, plain = client.predict("Review: {text_a} Verdict: {mask}", [0], 256, "tail", api_name="/preview")
    assert plain.count("ps-demo") == 1 and "demonstration(s)" not in plain     # the legend's only


def test_length_histogram_summary(client):
    _plot, info = client.predict("{text_a} Verdict: {mask}", 8, "tail", api_name="/lengths")
    assert "truncated" in _text(info) and "examples measured" in _text(info)
    assert re.search(r"truncated:\s*\d+\s*\((\d+\.\d)%\)", _text(info))


def test_data_tab_loads_builtin_and_maps_columns(client):
    out = client.predict("Built-in", "builtin:nli-mini", None, "", "train", 0, api_name="/load_data")
    assert "Loaded builtin:nli-mini" in out[0] or "Loaded builtin:nli-mini" in str(out)
    summary = next(o for o in out if isinstance(o, str) and "fingerprint" in o)
    assert "nli-mini" in summary
    page = client.predict("", api_name="/browse")
    assert page["data"]  # rows of the loaded data
    back = client.predict("Built-in", "builtin:movie-reviews", None, "", "dev", 0, api_name="/load_data")
    assert any(isinstance(o, str) and "movie-reviews" in o for o in back)
    kshot = client.predict(2, 7, api_name="/k_shot")
    assert any(isinstance(o, str) and "K-shot of" in o for o in kshot)
    client.predict("Built-in", "builtin:movie-reviews", None, "", "dev", 0, api_name="/load_data")


def test_bad_upload_is_reported_next_to_the_field(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    broken = tmp_path / "reviews.jsonl"
    broken.write_text('{"text_a": "fine", "label": "a"}\n{"text_a": oops}\n')
    out = client.predict("Upload", None, handle_file(str(broken)), "", None, 0, api_name="/load_data")
    assert "ps-error" in out[0] and "line 2" in out[0]
    wrong_type = tmp_path / "notes.txt"
    wrong_type.write_text("hello")
    with pytest.raises(AppError, match="Invalid file type"):
        client.predict("Upload", None, handle_file(str(wrong_type)), "", None, 0, api_name="/load_data")


def test_upload_with_unusual_column_names_is_guessed_and_can_be_remapped(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "opinions.jsonl"
    path.write_text("\n".join(json.dumps({"opinion": f"text {i}", "stars": "high" if i % 2 else "low"})
                              for i in range(8)))
    out = client.predict("Upload", None, handle_file(str(path)), "", None, 0, api_name="/load_data")
    shown = " ".join(o for o in out if isinstance(o, str))
    assert "Loaded opinions.jsonl. Guessed the columns" in out[0] and "&#x27;stars&#x27;" in out[0]
    assert str(tmp_path) not in shown and "uploads" not in shown       # the file's name, never a server path
    mapped = client.predict("opinion", "(none)", "stars", [], api_name="/map_columns")
    assert "Column mapping applied" in mapped[0]
    summary = next(o for o in mapped if isinstance(o, str) and "fingerprint" in o)
    assert "high, low" in summary and "opinions" in summary
    client.predict("Built-in", "builtin:movie-reviews", None, "", "dev", 0, api_name="/load_data")


def test_save_template_version_and_history(client):
    msg, table, *_ = client.predict("demo", "{text_a} In short: {mask}", "shorter", api_name="/save_template")
    assert "Saved as demo v" in msg
    again, *_ = client.predict("demo", "{text_a} In short: {mask}", "same", api_name="/save_template")
    assert "Unchanged" in again
    bad, *_ = client.predict("demo", "{text_a} In short: {mask", "broken", api_name="/save_template")
    assert "ps-error" in bad
    assert any(row[1] == "shorter" for row in table["data"])
    diff = client.predict("demo", "1", "2", api_name="/diff_template")
    assert "In short" in diff


def test_verbalizer_coverage_and_probe(client):
    feedback, coverage = client.predict("negative: bad, terrible\npositive: good, great", "{text_a} It was {mask}",
                                        api_name="/coverage")
    assert feedback == "" and "terrible" in coverage and "ps-coverage" in coverage
    feedback, _ = client.predict("negative bad", "{text_a} It was {mask}", api_name="/coverage")
    assert "ps-error" in feedback
    msg, probe, suggestions = client.predict("{text_a} It was {mask}", "negative: bad\npositive: good",
                                             [0, 1], 5, 64, "tail", api_name="/probe")
    assert probe.count("class='ps-example'") == 2 and "Top tokens at the mask" in probe
    # the demo's rows are the rows the Evaluate tab scores: their labels are not mined for label words
    assert "2 probed rows are scored by the Evaluate tab" in msg and suggestions == ""


def _evaluate(client, template="Review: {text_a} Verdict: {mask}"):
    return client.predict("current template + label words (zero-shot)", "dev", 0, False, template,
                          "negative: bad\npositive: good", 64, "tail", "demo", api_name="/evaluate")


def test_evaluate_confusion_matrix_and_cell_drill_down(client):
    out = _evaluate(client)
    msg, card = out[0], out[1]
    assert "Recorded as run" in msg and "accuracy" in card
    run_id = int(re.search(r"run (\d+)", msg).group(1))
    cell = client.predict("negative", "positive", api_name="/cell_examples")
    assert "predicted as" in cell
    assert f"Run {run_id}" in card


def test_runs_table_compare_open_and_export(client):
    _evaluate(client)
    _evaluate(client, "{text_a} So: {mask}")
    table, choices, *_ = client.predict("", "", "", api_name="/runs")
    assert len(table["data"]) >= 2 and table["data"][0][1] == "succeeded"
    ids = [row[0] for row in table["data"][:2]]
    msg, _plot, diff, metrics, _keys = client.predict([f"#{i}" for i in ids], [], api_name="/compare")
    assert msg == "" and "config.template" in diff and "accuracy" in metrics
    one, *_ = client.predict(["#1"], [], api_name="/compare")
    assert "at least two" in one
    detail, _plot, config = client.predict(f"#{ids[0]}", api_name="/open_run")
    assert "sha256" in detail and '"template"' in config
    bundle, note = client.predict(f"#{ids[0]}", api_name="/export_bundle")
    assert bundle and str(bundle).endswith(".zip") and "Bundle written" in note


def test_train_tab_cost_card_command_and_start(client):
    args = ["prompt-tuning"]
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/estimate_cost"]
    n_params = len(info["parameters"])
    # the options of every method, in order, then the training options: use each endpoint's defaults
    defaults = [p.get("parameter_default") for p in info["parameters"]]
    args = ["prompt-tuning"] + defaults[1:n_params]
    labels = [p["label"] for p in info["parameters"]]
    args[labels.index("Steps")] = 4
    msg, cost = client.predict(*args, api_name="/estimate_cost")
    assert msg == "" and "trainable parameters" in cost and "estimated time" in cost
    msg, command = client.predict(*args, api_name="/copy_command")
    assert "python -m backend train run.json" in str(command)
    msg, *_ = client.predict(*args, api_name="/start_training")
    assert "queued" in msg or "not available yet" in msg


def test_playground_and_train_progress_report_problems_next_to_their_fields(client):
    msg, out = client.predict("A fine film.", "", [], api_name="/classify")
    assert "pick at least one trained run" in msg and out == ""
    msg, _ = client.predict("", "", ["#1"], api_name="/classify")
    assert "type some text" in msg
    status, *_ = client.predict("#999", api_name="/train_progress")
    assert "no run with id 999" in status
    note = client.predict("#999", api_name="/cancel_training")
    assert "no run with id 999" in note


@pytest.fixture(scope="module")
def loading_client(tmp_path_factory):
    """An app whose model never finishes loading: the page works, model-dependent controls say so."""
    from tests.client_helpers import api_client

    from backend.services.testing import make_context
    from studio.app import build_app, launch

    ctx = make_context(tmp_path_factory.mktemp("loading"))
    demo = build_app(ctx)
    launch(demo, ctx, block=False)
    yield api_client(demo.local_url)
    demo.close()


def test_while_the_model_loads_controls_say_so(loading_client):
    feedback, preview = loading_client.predict("{text_a} It was {mask}", [0], 64, "tail", api_name="/preview")
    assert "Template OK" in feedback and "loading model..." in preview and "wrapped segments" in preview
    out = _evaluate(loading_client)
    assert "loading model..." in out[0]
    _, coverage = loading_client.predict("a: x\nb: y", "{text_a} {mask}", api_name="/coverage")
    assert "loading model..." in coverage


def test_gradio_keeps_its_copies_private_in_the_data_folder(tmp_path, monkeypatch, studio):
    """Uploads and downloads were copied to /tmp/gradio (a bundle world-readable) and kept forever."""
    from studio.app import gradio_tmp_in

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    used = gradio_tmp_in(tmp_path)
    assert used == os.environ["GRADIO_TEMP_DIR"] == str(tmp_path / "gradio-tmp")
    assert (tmp_path / "gradio-tmp").stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "chosen"))     # the user's own choice stands
    assert gradio_tmp_in(tmp_path / "other") == str(tmp_path / "chosen") and not (tmp_path / "other").exists()
    assert studio[2].delete_cache == (3600, 3600)     # Gradio removes its copies an hour on, and at shutdown
