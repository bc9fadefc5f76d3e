"""Candidate templates for the template search: pattern families filled with the task's words, and
rephrasings of the user's template written by the loaded model, each checked into a valid template.

Why families: the wording around the input moves zero-shot accuracy by tens of points, and the few
shapes that work (label before the text, after it, as a question, as an instruction, inside the model's
chat format) are well known; filling them with the task's own noun and label words gives candidates a
user would write, not random strings. Why rephrasings: an instruction-tuned model's own wording of the
user's prompt is often the phrasing it reads best, and it costs one short generation.

Everything a candidate goes through here is checked the way a typed template is (``parse_template``);
what fails is kept as ``Dropped`` with the reason, so the user sees what was tried and why it was not
scored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from backend.errors import StudioError
from backend.prompts.parse import parse_template

# Slots in the patterns are <angle> names, so they never clash with the template syntax's {braces}.
# <input>: the example's text field(s); <task>: the task's noun ("sentiment", "topic"); <options>: the
# classes' first label words ("positive or negative"). A capitalised slot is filled capitalised.
FAMILIES: dict[str, tuple[str, ...]] = {
    "prefix": (
        "<Task>:{mask}\n<input>",
        "[<Task>:{mask}] <input>",
        "<Options>?{mask}\n<input>",
        "This text is about{mask}. <input>",
    ),
    "suffix": (
        "<input> It was{mask}",
        "<input>\n<Task>:{mask}",
        "<input> The <task> is{mask}",
        "<input>\nIn one word, the <task> is{mask}",
        "<input> (<options>):{mask}",
        "Text: <input>\n<Task> (<options>):{mask}",
    ),
    "question": (
        "<input>\nQuestion: What is the <task>?\nAnswer:{mask}",
        "<input>\nQuestion: Is it <options>?\nAnswer:{mask}",
        "Q: What is the <task> of this text? <input>\nA:{mask}",
        "Question: Which <task> fits this text, <options>?\nText: <input>\nAnswer:{mask}",
    ),
    "instruction": (
        "Classify the <task> of the text as <options>.\nText: <input>\n<Task>:{mask}",
        "Decide the <task> (<options>).\n<input>\nAnswer:{mask}",
        "Read the text and answer with one word: <options>.\n<input>\nAnswer:{mask}",
        "Text: <input>\nWhat is its <task>: <options>?\nAnswer:{mask}",
    ),
}
# Chat family: the user turn of an instruction-tuned model's own chat format, the mask where its answer
# starts (built with the tokenizer's chat template, so it is the format the model was tuned on).
CHAT_TURNS: tuple[str, ...] = (
    "What is the <task> of this text: <options>? Answer with one word.\n<input>",
    "Classify this text as <options>.\n<input>",
    "<input>\n\nIs the <task> <options>? Answer in one word.",
)
MAX_TEXT = 2000      # characters: a candidate longer than this is not a prompt anyone meant


@dataclass(frozen=True)
class Candidate:
    text: str
    family: str           # prefix | suffix | question | instruction | chat | rephrased | yours


@dataclass(frozen=True)
class Dropped:
    text: str
    family: str
    reason: str


def options_phrase(words: Sequence[str]) -> str:
    """``a, b or c``: the classes' words as a reader says them."""
    words = [w.strip() for w in words if w.strip()]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _input(fields: Sequence[str]) -> str:
    return "\n".join("{" + f + "}" for f in fields)


def _fill(pattern: str, task: str, options: str, fields: Sequence[str]) -> str:
    out = pattern
    for slot, value in (("task", task), ("options", options)):
        out = out.replace(f"<{slot}>", value).replace(f"<{slot.capitalize()}>", value[:1].upper() + value[1:])
    return out.replace("<input>", _input(fields))


def check_candidate(text: str, fields: Sequence[str], kind: str) -> str | None:
    """Why ``text`` cannot be scored as a template for these input ``fields`` on a ``kind`` model, or None."""
    if len(text) > MAX_TEXT:
        return f"longer than {MAX_TEXT} characters"
    try:
        parsed = parse_template(text, require_mask=False)
    except StudioError as exc:
        return f"not a valid template: {exc}"
    if parsed.mask_count != 1:
        return f"needs exactly one {{mask}}, has {parsed.mask_count}"
    used = parsed.fields()["placeholder"]
    missing = [f for f in fields if f not in used]
    if missing:
        return "does not show the input: no " + ", ".join("{" + f + "}" for f in missing)
    extra = [f for f in used if f not in fields]
    if extra:
        return "reads a field the rows do not have: " + ", ".join("{" + f + "}" for f in extra)
    if kind == "causal":
        kinds = [s.kind for s in parsed.segments]
        if kinds.index("mask") < max((i for i, k in enumerate(kinds) if k == "placeholder"), default=-1):
            return "the mask comes before the input: a causal model would answer before reading it"
    return None


def _checked(items: Sequence[tuple[str, str]], fields: Sequence[str], kind: str,
             seen: set[str]) -> tuple[list[Candidate], list[Dropped]]:
    ok: list[Candidate] = []
    dropped: list[Dropped] = []
    for text, family in items:
        reason = "the same as another candidate" if text in seen else check_candidate(text, fields, kind)
        if reason:
            dropped.append(Dropped(text, family, reason))
            continue
        seen.add(text)
        ok.append(Candidate(text, family))
    return ok, dropped


def chat_wrap(tokenizer: Any, user_turn: str) -> str | None:
    """``user_turn`` in the tokenizer's chat format, ending where the assistant's answer starts (None when
    the tokenizer has no chat template). The template's own text may contain braces: they become
    ``{"text": ...}`` blocks so the template syntax reads them literally."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    marker = "\u0000INPUT\u0000"
    holes = re.findall(r"\{[a-z_]+\}", user_turn)
    turn = re.sub(r"\{[a-z_]+\}", marker, user_turn)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": turn}], tokenize=False,
                                             add_generation_prompt=True)
    rendered = re.sub(r"[{}]", lambda m: '{"text": "' + m.group(0) + '"}', rendered)
    for hole in holes:
        rendered = rendered.replace(marker, hole, 1)
    return rendered + "{mask}"


def family_candidates(task: str, class_words: Sequence[str], fields: Sequence[str], kind: str,
                      tokenizer: Any = None, seen: set[str] | None = None) -> tuple[list[Candidate], list[Dropped]]:
    """Every family pattern filled with the task's noun, the classes' words and the input fields; the chat
    family when ``tokenizer`` has a chat template and the model is causal."""
    task = " ".join(str(task or "category").split()) or "category"
    options = options_phrase(class_words)
    items = [(_fill(p, task, options, fields), fam) for fam, pats in FAMILIES.items() for p in pats]
    if kind == "causal" and tokenizer is not None:
        for turn in CHAT_TURNS:
            wrapped = chat_wrap(tokenizer, _fill(turn, task, options, fields))
            if wrapped is not None:
                items.append((wrapped, "chat"))
    return _checked(items, fields, kind, set() if seen is None else seen)


# ------------------------------------------------------------------------------------------ rephrasings

REPHRASE_REQUEST = ("Rewrite this prompt in different words. Keep {placeholders} exactly as written, "
                    "with {{mask}} where the answer goes. Reply with the new prompt only.\n\nPrompt: {template}")
# Spellings a model uses for a placeholder it was told to keep: {{x}}, [x], <x>, {X}.
_VARIANTS = r"\{\{\s*(%s)\s*\}\}|\[\s*(%s)\s*\]|<\s*(%s)\s*>|\{\s*(%s)\s*\}"
_LEADS = re.compile(r"^\s*(?:(?:new\s+)?prompt\s*:|template\s*:|\d+[.)]\s+|[-*\u2022]\s+)", re.IGNORECASE)


def rephrase_request(template: str, fields: Sequence[str]) -> str:
    names = ["{" + f + "}" for f in fields]
    return REPHRASE_REQUEST.format(placeholders=" and ".join(names + ["{mask}"]), template=template)


def normalise_placeholders(text: str, names: Sequence[str]) -> str:
    """The placeholder spellings models write instead of ``{name}`` turned back into ``{name}``."""
    alt = "|".join(re.escape(n) for n in names)
    pattern = re.compile(_VARIANTS % (alt, alt, alt, alt), re.IGNORECASE)
    return pattern.sub(lambda m: "{" + next(g for g in m.groups() if g).lower() + "}", text)


def parse_rephrasings(outputs: Sequence[str], fields: Sequence[str], kind: str, *,
                      seen: set[str] | None = None) -> tuple[list[Candidate], list[Dropped]]:
    """The model's replies -> valid templates, and the rest with why they were dropped.

    A reply is cut at its first blank line (models add explanations after), stripped of a leading
    "Prompt:" / list number and of wrapping quotes or backticks, and its placeholder spellings are
    normalised; what is left must pass ``check_candidate``."""
    items = []
    empty: list[Dropped] = []
    for raw in outputs:
        text = str(raw).strip().split("\n\n")[0].strip()
        text = _LEADS.sub("", text, count=1).strip().strip("`").strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1].strip()
        if not text:
            empty.append(Dropped(str(raw)[:200], "rephrased", "the model wrote nothing usable"))
            continue
        items.append((normalise_placeholders(text, [*fields, "mask"]), "rephrased"))
    ok, dropped = _checked(items, fields, kind, set() if seen is None else seen)
    return ok, empty + dropped


def generate_rephrasings(loaded: Any, template: str, fields: Sequence[str], *, n: int = 8, seed: int = 0,
                         max_new_tokens: int = 96) -> tuple[list[str], str | None]:
    """``n`` sampled rewrites of ``template`` by the loaded model (instruction-tuned causal models only),
    or ([], why none were asked for)."""
    import torch

    tok = loaded.tokenizer
    if loaded.kind != "causal" or not getattr(tok, "chat_template", None):
        return [], "the loaded model is not an instruction-tuned causal model (no chat template): no rephrasings"
    if n < 1:
        return [], "no rephrasings asked for"
    prompt = tok.apply_chat_template([{"role": "user", "content": rephrase_request(template, fields)}],
                                     tokenize=False, add_generation_prompt=True)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(loaded.device)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        out = loaded.model.generate(**enc, do_sample=True, temperature=0.8, top_p=0.95, num_return_sequences=n,
                                    max_new_tokens=max_new_tokens, pad_token_id=pad)
    return [tok.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True) for row in out], None
