"""Batching: splitting rows into micro-batches by token budget."""
from __future__ import annotations


def test_split_by_tokens_keeps_order_and_budget():
    from backend.batching import split_by_tokens

    lengths = [5, 5, 6, 9, 30, 4]
    assert split_by_tokens([0, 1, 2, 3], lengths, None) == [[0, 1, 2, 3]]
    assert split_by_tokens([0, 1, 2, 3], lengths, 0) == [[0, 1, 2, 3]]
    assert split_by_tokens([0, 1, 2, 3], lengths, 12) == [[0, 1], [2], [3]]      # 2 x 6 > 12 is false: [0, 1] fits
    assert split_by_tokens([0, 1, 2, 3], lengths, 18) == [[0, 1, 2], [3]]
    assert split_by_tokens([4, 5], lengths, 10) == [[4], [5]]                   # a row over budget stays whole
    rows = list(range(6))
    for budget in (1, 7, 13, 40, 1000):
        chunks = split_by_tokens(rows, lengths, budget)
        assert [r for c in chunks for r in c] == rows
        assert all(len(c) == 1 or len(c) * max(lengths[r] for r in c) <= budget for c in chunks)
    # Packed rows cost their own tokens, not rows x longest: [5, 5, 6, 9] is 25 packed, 36 padded.
    assert split_by_tokens([0, 1, 2, 3], lengths, 25, packed=True) == [[0, 1, 2, 3]]
    assert split_by_tokens([0, 1, 2, 3], lengths, 25) == [[0, 1, 2], [3]]
    for budget in (1, 7, 13, 40, 1000):
        chunks = split_by_tokens(rows, lengths, budget, packed=True)
        assert [r for c in chunks for r in c] == rows
        assert all(len(c) == 1 or sum(lengths[r] for r in c) <= budget for c in chunks)
