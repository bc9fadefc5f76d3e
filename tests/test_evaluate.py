"""Zero-shot scoring on tiny random models of all three kinds: the fast path equals the full forward."""
from __future__ import annotations

import json

import pytest
import torch

from backend.batching import EncodeSettings, collate, encode_examples
from backend.evaluate import classification_metrics, evaluate, probe
from backend.prompt_model import PromptModel
from backend.prompts.encode import describe_tokenizer
from backend.prompts.example import Example
from backend.prompts.template import compile_template
from backend.prompts.verbalizer import compile_verbalizer, parse_verbalizer
from tests.cli_helpers import backend_cli
from tests.tiny import bert_tokenizer, smol_tokenizer, t5_like_tokenizer, tiny_model

EXAMPLES = [Example(guid=i, text_a=t, label=lab) for i, (t, lab) in enumerate(
    [("a great movie", "positive"), ("boring and bad", "negative"), ("loved it", "positive"),
     ("a waste of time", "negative"), ("", "positive")])]
WORDS = {"negative": ["bad", "terrible"], "positive": ["great", "wonderful film"]}
TOKENIZERS = {"masked": bert_tokenizer, "causal": smol_tokenizer, "seq2seq": t5_like_tokenizer}


@pytest.fixture(scope="module", params=["masked", "causal", "seq2seq"])
def setup(request):
    kind = request.param
    tok = TOKENIZERS[kind]()
    lm = tiny_model(kind, tok)
    tpl = compile_template("{soft} {text_a} It was {mask}.", tok)
    pm = PromptModel(lm.model, kind, tpl, compile_verbalizer(parse_verbalizer(WORDS, ["negative", "positive"]), tok))
    return kind, tok, lm, pm


def test_mask_only_logits_equal_full_forward(setup):
    kind, tok, lm, pm = setup
    st = EncodeSettings(profile=kind, max_length=64)
    batch = collate(encode_examples(pm.template, EXAMPLES, tok, st), describe_tokenizer(tok).pad_id)
    with torch.no_grad():
        fast = pm.vocab_logits(pm.mask_hidden(batch))
        out = lm.model(**pm._model_inputs(batch)).logits
        full = out[:, 1] if kind == "seq2seq" else out[torch.arange(len(EXAMPLES)), batch["mask_pos"]]
    assert torch.allclose(fast, full, atol=1e-4)


def test_evaluate_outputs_probabilities_and_metrics(setup):
    kind, tok, _, pm = setup
    res = evaluate(pm, tok, EXAMPLES, settings=EncodeSettings(profile=kind, max_length=64), batch_size=2, top_k=3)
    assert res.metrics["n"] == len(EXAMPLES)
    for row in res.predictions:
        assert abs(sum(row["probs"].values()) - 1) < 1e-5
        assert len(row["top_k"]) == 3
    # batch size must not change the scores (dynamic padding is exact)
    res1 = evaluate(pm, tok, EXAMPLES, settings=EncodeSettings(profile=kind, max_length=64), batch_size=5)
    for a, b in zip(res.predictions, res1.predictions):
        assert a["probs"]["positive"] == pytest.approx(b["probs"]["positive"], abs=1e-4)
    cal = evaluate(pm, tok, EXAMPLES, settings=EncodeSettings(profile=kind, max_length=64), calibration="content-free")
    assert cal.metrics["calibration"] == "content-free"
    pr = probe(pm, tok, EXAMPLES[:2], settings=EncodeSettings(profile=kind, max_length=64), top_k=4)
    assert len(pr[0]["top_k"]) == 4 and {w["class"] for w in pr[0]["label_words"]} == {"negative", "positive"}


def test_exact_multi_token_scoring_for_causal():
    tok = smol_tokenizer()
    lm = tiny_model("causal", tok)
    tpl = compile_template("{text_a} It was {mask}", tok)
    verb = compile_verbalizer(parse_verbalizer(WORDS, ["negative", "positive"], multi_token="exact"), tok)
    pm = PromptModel(lm.model, "causal", tpl, verb)
    st = EncodeSettings(profile="causal", max_length=64)
    encs = encode_examples(tpl, EXAMPLES[:1], tok, st)
    with torch.no_grad():
        got = pm.exact_class_scores(encs, describe_tokenizer(tok).pad_id)[0].exp()
        # reference: full forward on prompt + word, summing sub-token log-probs
        ids = list(encs[0].input_ids)
        word_scores = []
        for words in verb.token_ids:
            per = []
            for toks in words:
                logits = lm.model(input_ids=torch.tensor([ids + list(toks)])).logits[0]
                logp = torch.log_softmax(logits, -1)
                per.append(sum(logp[len(ids) - 1 + k, t] for k, t in enumerate(toks)))
            word_scores.append(torch.logsumexp(torch.stack(per), 0))
        ref = torch.softmax(torch.stack(word_scores), 0)
    assert torch.allclose(got, ref, atol=1e-4)


def test_metrics():
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    assert m["accuracy"] == 0.75 and m["confusion"] == [[1, 1], [0, 2]]
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_cli_eval_on_a_local_tiny_model(tmp_path):
    tok = bert_tokenizer()
    lm = tiny_model("masked", tok)
    lm.model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"text_a": e.text_a, "label": e.label}) for e in EXAMPLES))
    cfg = {"model": str(tmp_path / "m"), "data": {"eval": str(data)}, "template": "{text_a} It was {mask}.",
           "verbalizer": WORDS, "method": {"name": "zero-shot"}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = backend_cli("eval", str(tmp_path / "c.json"), "--no-db", "--predictions", str(tmp_path / "p.jsonl"),
                      timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n"] == len(EXAMPLES) and 0 <= res["accuracy"] <= 1 and "confusion" in res
    preds = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(preds) == len(EXAMPLES) and set(preds[0]["probs"]) == {"negative", "positive"}
    assert len(preds[0]["top_k"]) == 5 and {"token", "id", "prob"} <= set(preds[0]["top_k"][0])
    bad = {**cfg, "template": '{"placehoder": "text_a"} {mask}'}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = backend_cli("eval", str(tmp_path / "bad.json"), "--no-db", timeout=300)
    assert out.returncode == 2 and "did you mean 'placeholder'" in out.stderr and "Traceback" not in out.stderr


def test_whole_vocabulary_probing_counts_only_single_token_objects():
    from backend.evaluate import evaluate_vocabulary

    tok = smol_tokenizer()
    lm = tiny_model("causal", tok)
    tpl = compile_template("{text_a} was born in{mask}", tok)
    pm = PromptModel(lm.model, "causal", tpl, compile_verbalizer(parse_verbalizer({"*": ["the"]}, ["*"]), tok))
    exs = [Example(text_a="Ada Lovelace", label="London"), Example(text_a="X", label="Zzyzxqwv")]
    res = evaluate_vocabulary(pm, tok, exs, settings=EncodeSettings(profile="causal", max_length=32))
    assert res.metrics["single_token_gold"] == 0.5
    assert 0 <= res.metrics["precision@1"] <= res.metrics["precision@10"] <= 0.5
    assert len(res.predictions[0]["top_k"]) == 5
