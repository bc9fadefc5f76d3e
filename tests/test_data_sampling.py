"""k-shot sampling (deterministic, exactly K per class) and fingerprint stability."""
from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from backend.data import BUILTIN_DEFAULT, fingerprint, load_examples, sample_k_shot
from backend.errors import ConfigError, DatasetError
from backend.prompts.example import Example


def _examples(counts: dict[str, int]) -> list[Example]:
    out = []
    for label, n in counts.items():
        out += [Example(guid=f"{label}{i}", text_a=f"{label} text {i}", label=label) for i in range(n)]
    return out


def test_k_per_class_and_deterministic():
    exs = _examples({"a": 20, "b": 9, "c": 15})
    first = sample_k_shot(exs, 4, seed=13)
    assert Counter(e.label for e in first) == {"a": 4, "b": 4, "c": 4}
    assert sample_k_shot(list(exs), 4, seed=13) == first
    assert sample_k_shot(exs, 4, seed=14) != first
    positions = [exs.index(e) for e in first]
    assert positions == sorted(positions)  # dataset order kept


def test_known_draw_is_stable_across_processes():
    # Pinned values: a change here means runs stop being reproducible from their config
    picks = [e.guid for e in sample_k_shot(_examples({"a": 10, "b": 10}), 2, seed=0)]
    assert picks == sorted(picks, key=lambda g: (g[0], int(g[1:])))
    assert picks == PINNED_PICKS


PINNED_PICKS = ["a0", "a5", "b1", "b4"]


def test_other_classes_do_not_shift_a_class():
    base = sample_k_shot(_examples({"a": 12, "b": 12}), 3, seed=5)
    more = sample_k_shot(_examples({"a": 12, "b": 12, "c": 6}), 3, seed=5)
    assert [e for e in base if e.label == "a"] == [e for e in more if e.label == "a"]


def test_custom_label_key():
    exs = _examples({"a": 6, "b": 6})
    picked = sample_k_shot(exs, 2, seed=1, label_key=lambda e: int(e.guid[1:]) % 2)
    assert Counter(int(e.guid[1:]) % 2 for e in picked) == {0: 2, 1: 2}


def test_too_few_examples_in_a_class():
    with pytest.raises(DatasetError, match="class 'b' has only 3 examples, fewer than shots=4"):
        sample_k_shot(_examples({"a": 10, "b": 3}), 4, seed=0)


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k(k):
    with pytest.raises(ConfigError, match="shots must be a positive"):
        sample_k_shot(_examples({"a": 3}), k, seed=0)


def test_unlabelled_examples_cannot_be_sampled():
    with pytest.raises(DatasetError, match="row 1 has no label"):
        sample_k_shot([Example(text_a="x", label="a"), Example(text_a="y")], 1, seed=0)


def test_builtin_k_shot():
    data = load_examples(BUILTIN_DEFAULT)
    picked = sample_k_shot(data.examples, 8, seed=42)
    assert Counter(e.label for e in picked) == {"negative": 8, "positive": 8}


# ------------------------------------------------------------------------------------ fingerprint

def test_fingerprint_is_sha256_of_canonical_json():
    # The documented format, checked byte for byte: sorted keys, no spaces, UTF-8, one line per example.
    # Nothing depends on hash() or dict order, so the value is the same on every run and machine.
    exs = [Example(guid=0, text_a="café", text_b="", label="positive", meta={"b": 1, "a": [2]})]
    line = '{"guid":0,"label":"positive","meta":{"a":[2],"b":1},"text_a":"café","text_b":""}\n'
    assert fingerprint(exs) == hashlib.sha256(line.encode()).hexdigest()
    assert fingerprint(exs) == "6ad8736ded4ae9044ca82baeca41dbddfc54dbdba282699371cea7081c4bc276"


def test_fingerprint_sensitivity():
    exs = _examples({"a": 3, "b": 3})
    fp = fingerprint(exs)
    assert fingerprint(list(exs)) == fp
    assert fingerprint(exs[::-1]) != fp
    changed = list(exs)
    changed[0] = Example(guid=changed[0].guid, text_a=changed[0].text_a + "!", label="a")
    assert fingerprint(changed) != fp
    assert fingerprint(exs, ["a", "b"]) != fingerprint(exs, ["b", "a"])


def test_loaded_fingerprint_independent_of_file_format(tmp_path):
    rows = [{"text_a": "good", "label": "pos"}, {"text_a": "bad", "label": "neg"}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "b.csv").write_text("text_a,label\ngood,pos\nbad,neg\n")
    assert load_examples(str(tmp_path / "a.jsonl")).fingerprint == load_examples(str(tmp_path / "b.csv")).fingerprint
    assert load_examples(str(tmp_path / "a.jsonl"), label_names=["pos", "neg"]).fingerprint != \
        load_examples(str(tmp_path / "a.jsonl")).fingerprint
