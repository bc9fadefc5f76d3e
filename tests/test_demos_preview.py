"""The token preview shows demonstrations: their tokens marked (and struck through when dropped to fit),
which training rows they are and the label word shown, before the input; without training rows it says
why there are none."""
from __future__ import annotations

from backend.prompts.example import Example
from backend.services.preview import render
from studio.views.tokens import preview_html

POOL = [Example(guid=f"train-{i}", text_a=t, label=lab) for i, (t, lab) in enumerate([
    ("a dull film", "negative"), ("a lovely film", "positive"), ("boring plot", "negative"),
    ("great acting", "positive")])]
ROWS = [(0, Example(guid="dev-0", text_a="so so", label="negative"))]
WORDS = {"negative": ["bad", "awful"], "positive": ["good"]}
TEMPLATE = "{demos}{text_a} It was {mask}."


def test_preview_marks_demonstration_tokens_before_the_input(bert_tok):
    out = render(TEMPLATE, ROWS, tokenizer=bert_tok, profile="masked", demo_pool=POOL, label_words=WORDS)
    (ex,) = out["examples"]
    assert sorted(d["word"] for d in ex["demos"]) == ["bad", "good"]
    assert {d["guid"] for d in ex["demos"]} <= {e.guid for e in POOL}
    demo_tokens = [t for t in ex["tokens"] if t["demo"] >= 0]
    assert {t["demo"] for t in demo_tokens} == {0, 1} and not any(t["mask"] for t in demo_tokens)
    first_input = next(i for i, t in enumerate(ex["tokens"]) if t["demo"] < 0 and not t["special"])
    last_demo = max(i for i, t in enumerate(ex["tokens"]) if t["demo"] >= 0)
    assert last_demo < first_input
    assert sum(t["mask"] for t in ex["tokens"]) == 1
    assert [p["kind"] for p in ex["pieces"] if p["demo"] >= 0].count("label") == 2
    html = preview_html({**out, "model": {"state": "ready"}})
    assert "ps-demo" in html and "2 demonstration(s)" in html and "→ good" in html
    assert not [f for f in out["lint"] if "demonstrations" in f["message"]]


def test_preview_shows_the_demonstrations_dropped_to_fit(bert_tok):
    full = render(TEMPLATE, ROWS, tokenizer=bert_tok, profile="masked", demo_pool=POOL, label_words=WORDS)
    n = full["examples"][0]["length"]
    out = render(TEMPLATE, ROWS, tokenizer=bert_tok, profile="masked", demo_pool=POOL, label_words=WORDS,
                 max_length=n - 1)
    (ex,) = out["examples"]
    assert ex["demos_dropped"] == [1] and ex["n_truncated"] == 0
    dropped = [t for t in ex["tokens"] if t["truncated"]]
    assert dropped and all(t["demo"] == 1 for t in dropped)
    html = preview_html({**out, "model": {"state": "ready"}})
    assert "1 dropped to fit max length" in html and "<s>" in html


def test_preview_without_training_rows_says_why_there_are_no_demonstrations(bert_tok):
    out = render(TEMPLATE, ROWS, tokenizer=bert_tok, profile="masked")
    (ex,) = out["examples"]
    assert ex["demos"] == [] and all(t["demo"] < 0 for t in ex["tokens"])
    (note,) = [f for f in out["lint"] if "demonstrations come from the training rows" in f["message"]]
    assert note["span"] == [0, len("{demos}")]
