"""Wrapped pieces -> token ids for one of three model profiles, with OpenPrompt's truncation rules.

Profiles:
- ``masked``  : the mask token sits in place; the label is read at its position (BERT, RoBERTa, ...).
- ``causal``  : the label is the next token after the text before the mask; text after the mask is
  dropped (with a warning) and a template that starts with the mask is an error.
- ``seq2seq`` : the mask becomes a T5 sentinel ``<extra_id_k>`` in the encoder; the decoder is fed
  ``<pad> <extra_id_0>`` and the label is read at decoder position 1.

Truncation only ever cuts shortenable pieces (placeholders by default), never the mask or soft tokens.
Demonstrations share the budget with the input and give way first: whole demonstrations are dropped from
the last one back until the prompt fits, and only then is the input itself cut.
``tail`` trims the last shortenable pieces first, ``head`` the first ones (each from its end, as
OpenPrompt does), ``balanced`` trims each in proportion to its length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from backend.choices import KINDS, TRUNCATE_METHODS
from backend.errors import EncodingError
from backend.prompts.wrap import Wrapped

PROFILES = KINDS   # one encoding profile per model kind
_SPECIAL_NAMES = {"<mask>": "mask_token", "<eos>": "eos_token", "<bos>": "bos_token",
                  "<sep>": "sep_token", "<cls>": "cls_token"}


@dataclass(frozen=True)
class TokenizerInfo:
    """What encoding needs to know about a tokenizer, computed once (not per example)."""

    prefix: tuple[int, ...]          # special tokens the tokenizer puts before a single sequence
    suffix: tuple[int, ...]          # ... and after it
    mask_id: int | None
    pad_id: int
    special_text: dict[str, str | None]
    sentinel_ids: tuple[int, ...]    # <extra_id_0>, <extra_id_1>, ... where present
    decoder_start_id: int


def describe_tokenizer(tokenizer: Any, decoder_start_id: int | None = None) -> TokenizerInfo:
    """Find the tokenizer's special-token framing by probing it (works for any HF tokenizer)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    framed = tokenizer("x", add_special_tokens=True)["input_ids"]
    prefix: list[int] = []
    suffix: list[int] = []
    for start in range(len(framed) - len(plain) + 1):
        if framed[start:start + len(plain)] == plain:
            prefix, suffix = framed[:start], framed[start + len(plain):]
            break
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    sentinels = []
    vocab = tokenizer.get_vocab()
    for k in range(100):
        sid = vocab.get(f"<extra_id_{k}>")
        if sid is None:
            break
        sentinels.append(sid)
    special_text = {name: getattr(tokenizer, attr, None) for name, attr in _SPECIAL_NAMES.items()}
    return TokenizerInfo(prefix=tuple(prefix), suffix=tuple(suffix), mask_id=tokenizer.mask_token_id,
                         pad_id=int(pad), special_text=special_text, sentinel_ids=tuple(sentinels),
                         decoder_start_id=int(pad if decoder_start_id is None else decoder_start_id))


@dataclass(frozen=True)
class Encoded:
    input_ids: tuple[int, ...]
    loss_ids: tuple[int, ...]          # masked: -100 on added specials, 1 at the mask; causal: 1 at the read position
    soft_token_ids: tuple[int, ...]
    piece_index: tuple[int, ...]       # which wrapped piece each token came from (-1: added special)
    mask_positions: tuple[int, ...]    # where the label is read (decoder positions for seq2seq)
    profile: str
    decoder_input_ids: tuple[int, ...] | None = None
    dropped: tuple[tuple[int, int, int], ...] = ()   # (piece, offset in piece, token id) cut by truncation
    warnings: tuple[str, ...] = ()
    piece_demo: tuple[int, ...] = ()                   # per wrapped piece: its demonstration (-1: the input)
    demo_dropped: tuple[tuple[int, int, int], ...] = ()   # tokens of the demonstrations dropped to fit
    dropped_demos: tuple[int, ...] = ()                # which demonstrations were dropped

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def n_truncated(self) -> int:
        return len(self.dropped)


def _round_shares(shares: list[float], total: int) -> list[int]:
    """OpenPrompt's ``round_list``: ceil each share, then cap so the sum is exactly ``total``."""
    out, s = [], 0
    for x in shares:
        c = math.ceil(x)
        if s <= total:
            s += c
            out.append(c if s <= total else c - (s - total))
        else:
            out.append(0)
    return out


def truncate_parts(parts: Sequence[Sequence[int]], shortenable: Sequence[bool], n: int,
                   method: str = "tail") -> list[list[int]]:
    """Remove ``n`` tokens from shortenable parts; returns new parts (OpenPrompt's three methods)."""
    out = [list(p) for p in parts]
    if n <= 0:
        return out
    if method == "balanced":
        lens = [len(p) if s else 0 for p, s in zip(out, shortenable)]
        total = sum(lens)
        if total == 0:
            return out
        cuts = _round_shares([ln / total * n for ln in lens], n)
        return [p[:len(p) - c] if c else p for p, c in zip(out, cuts)]
    order = range(len(out) - 1, -1, -1) if method == "tail" else range(len(out))
    left = n
    for i in order:
        if not shortenable[i] or not out[i]:
            continue
        ln = len(out[i])
        out[i] = out[i][:-left] if left < ln else []
        left -= ln
        if left <= 0:
            break
    return out


def _piece_ids(text: str | None, tokenizer: Any, info: TokenizerInfo) -> list[int]:
    if not text:
        return []
    if text in info.special_text:
        tok = info.special_text[text]
        if tok is None:
            raise EncodingError(f"this tokenizer has no {_SPECIAL_NAMES[text].replace('_token', '')} token, "
                                f"so {text!r} cannot be encoded")
        text = tok
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode(wrapped: Wrapped, tokenizer: Any, *, profile: str = "masked", max_length: int = 512,
           truncate: str = "tail", info: TokenizerInfo | None = None) -> Encoded:
    """Tokenize wrapped pieces for ``profile``, truncating shortenable pieces to fit ``max_length``."""
    if profile not in PROFILES:
        raise EncodingError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    if truncate not in TRUNCATE_METHODS:
        raise EncodingError(f"unknown truncation {truncate!r}; use one of {', '.join(TRUNCATE_METHODS)}")
    if max_length < 1:
        raise EncodingError("max_length must be at least 1")
    info = info or describe_tokenizer(tokenizer)
    pieces = list(wrapped.pieces)
    warnings: list[str] = []
    mask_idx = [i for i, p in enumerate(pieces) if p.loss_ids == 1]
    if not mask_idx:
        raise EncodingError("the template has no mask")

    if profile == "causal":
        first = mask_idx[0]
        after = "".join(p.text or "" for p in pieces[first + 1:] if p.kind != "soft").strip()
        if after or any(p.kind == "soft" for p in pieces[first + 1:]):
            shown = after if len(after) <= 40 else after[:37] + "..."
            warnings.append(f"causal models read the label right after the text before the mask; "
                            f"what follows the mask is dropped: {shown!r}")
        if len(mask_idx) > 1:
            warnings.append("causal models use only the first mask; later masks are dropped")
        pieces = pieces[:first + 1]
        mask_idx = [first]

    ids_per_piece: list[list[int]] = []
    sentinel_k = 0
    for p in pieces:
        if p.loss_ids == 1:
            if profile == "masked":
                if info.mask_id is None:
                    raise EncodingError("this tokenizer has no mask token; use a causal or seq2seq profile")
                ids_per_piece.append([info.mask_id])
            elif profile == "seq2seq":
                if sentinel_k >= len(info.sentinel_ids):
                    raise EncodingError("this tokenizer has no <extra_id_N> sentinel tokens for seq2seq masks")
                ids_per_piece.append([info.sentinel_ids[sentinel_k]])
                sentinel_k += 1
            else:
                ids_per_piece.append([])  # causal: the mask is the next token, not an input token
        elif p.soft_token_ids:
            ids_per_piece.append([info.pad_id])  # any id works: soft tokens use their own embeddings
        else:
            ids_per_piece.append(_piece_ids(p.text, tokenizer, info))

    if profile == "causal" and not any(ids_per_piece):
        raise EncodingError("the template starts with the mask; a causal model needs text before it to "
                            "predict the label word")

    n_special = len(info.prefix) + (0 if profile == "causal" else len(info.suffix))
    total = sum(len(x) for x in ids_per_piece) + n_special
    piece_demo = tuple(p.demo for p in pieces)
    demo_dropped, dropped_demos, total = _drop_demos(ids_per_piece, piece_demo, total, max_length)
    shortenable = [bool(p.shortenable_ids) for p in pieces]
    cut = truncate_parts(ids_per_piece, shortenable, total - max_length, truncate) if total > max_length \
        else ids_per_piece
    dropped = tuple((i, len(c), tok) for i, (full, c) in enumerate(zip(ids_per_piece, cut))
                    for tok in full[len(c):])
    kept_total = sum(len(x) for x in cut) + n_special
    if kept_total > max_length:
        fixed = sum(len(x) for x, s in zip(ids_per_piece, shortenable) if not s) + n_special
        raise EncodingError(f"the template's fixed parts need {fixed} tokens (with special tokens), more than "
                            f"max_length {max_length}; shorten the template or raise max_length")

    input_ids: list[int] = list(info.prefix)
    loss: list[int] = [-100] * len(info.prefix)
    soft: list[int] = [0] * len(info.prefix)
    piece_index: list[int] = [-1] * len(info.prefix)
    mask_positions: list[int] = []
    for i, (p, ids) in enumerate(zip(pieces, cut)):
        if p.loss_ids == 1 and profile != "causal":
            mask_positions.append(len(input_ids))
        input_ids.extend(ids)
        loss.extend([p.loss_ids] * len(ids))
        soft.extend([p.soft_token_ids] * len(ids))
        piece_index.extend([i] * len(ids))
    decoder_ids = None
    if profile == "causal":
        mask_positions = [len(input_ids) - 1]
        loss[-1] = 1
    else:
        input_ids.extend(info.suffix)
        loss.extend([-100] * len(info.suffix))
        soft.extend([0] * len(info.suffix))
        piece_index.extend([-1] * len(info.suffix))
    if profile == "seq2seq":
        decoder_ids = (info.decoder_start_id, info.sentinel_ids[0])
        mask_positions = [1]
    return Encoded(input_ids=tuple(input_ids), loss_ids=tuple(loss), soft_token_ids=tuple(soft),
                   piece_index=tuple(piece_index), mask_positions=tuple(mask_positions), profile=profile,
                   decoder_input_ids=decoder_ids, dropped=dropped, warnings=tuple(warnings),
                   piece_demo=piece_demo if any(d >= 0 for d in piece_demo) else (),
                   demo_dropped=demo_dropped, dropped_demos=dropped_demos)


def _drop_demos(ids_per_piece: list[list[int]], piece_demo: Sequence[int], total: int, max_length: int
                ) -> tuple[tuple[tuple[int, int, int], ...], tuple[int, ...], int]:
    """Empty whole demonstrations, the last first, while the prompt is over ``max_length`` (in place);
    returns their tokens, their numbers and the new total."""
    gone: list[tuple[int, int, int]] = []
    demos: list[int] = []
    for j in sorted({d for d in piece_demo if d >= 0}, reverse=True):
        if total <= max_length:
            break
        for i, d in enumerate(piece_demo):
            if d == j and ids_per_piece[i]:
                gone.extend((i, off, tok) for off, tok in enumerate(ids_per_piece[i]))
                total -= len(ids_per_piece[i])
                ids_per_piece[i] = []
        demos.append(j)
    return tuple(gone), tuple(sorted(demos)), total


@dataclass(frozen=True)
class TokenView:
    """One token as the studio draws it (truncated tokens included, struck through)."""

    id: int
    text: str
    piece: int
    special: bool
    mask: bool
    soft: int
    loss: int
    truncated: bool = False
    read: bool = False        # the label is read here (causal: the token before the mask)
    demo: int = -1            # the demonstration this token belongs to (-1: the input)


def token_views(encoded: Encoded, tokenizer: Any) -> list[TokenView]:
    """Tokens in display order, with the pieces' truncated tail tokens placed where they were cut."""
    toks = tokenizer.convert_ids_to_tokens(list(encoded.input_ids))
    read = set(encoded.mask_positions) if encoded.profile == "causal" else set()
    views = []
    dropped_by_piece: dict[int, list[tuple[int, int]]] = {}
    demo_of = encoded.piece_demo
    for piece, off, tok in encoded.dropped + encoded.demo_dropped:
        dropped_by_piece.setdefault(piece, []).append((off, tok))
    n = len(encoded.input_ids)
    for pos in range(n):
        piece = encoded.piece_index[pos]
        views.append(TokenView(id=encoded.input_ids[pos], text=toks[pos], piece=piece, special=piece < 0,
                               mask=encoded.loss_ids[pos] == 1 and encoded.profile != "causal",
                               soft=encoded.soft_token_ids[pos], loss=encoded.loss_ids[pos], read=pos in read,
                               demo=demo_of[piece] if demo_of and piece >= 0 else -1))
        last_of_piece = piece >= 0 and (pos + 1 == n or encoded.piece_index[pos + 1] != piece)
        if last_of_piece and piece in dropped_by_piece:
            views.extend(_dropped_views(dropped_by_piece.pop(piece), piece, tokenizer, demo_of))
    for piece, items in sorted(dropped_by_piece.items()):  # pieces cut to nothing
        at = next((k for k, v in enumerate(views) if v.piece > piece), len(views))
        views[at:at] = _dropped_views(items, piece, tokenizer, demo_of)
    return views


def _dropped_views(items: list[tuple[int, int]], piece: int, tokenizer: Any,
                   demo_of: Sequence[int]) -> list[TokenView]:
    texts = tokenizer.convert_ids_to_tokens([t for _, t in items])
    demo = demo_of[piece] if demo_of else -1
    return [TokenView(id=t, text=s, piece=piece, special=False, mask=False, soft=0, loss=0, truncated=True, demo=demo)
            for (_, t), s in zip(items, texts)]
