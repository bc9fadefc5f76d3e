"""Named post-processing transforms for template fields: OpenPrompt's ``post_processing`` without code.

OpenPrompt lets a template carry a Python lambda; ours names a transform instead, so template text is never
executed. The parser checks a name against these tables and ``wrap`` applies them; both import them from here.
"""
from __future__ import annotations

from typing import Any

_PUNCT = ".,;:!?\"'"


def _rstrip_punct(s: str) -> str:
    return s.rstrip().rstrip(_PUNCT)


def _ensure_period(s: str) -> str:
    s = s.rstrip()
    return s if not s or s[-1] in ".!?" else s + "."


def _first_lower(s: str) -> str:
    return s[:1].lower() + s[1:]


def _first_upper(s: str) -> str:
    return s[:1].upper() + s[1:]


# Named, side-effect-free transforms that replace OpenPrompt's ``post_processing`` lambdas.
POST_PROCESSORS: dict[str, Any] = {
    "strip": str.strip,
    "lower": str.lower,
    "upper": str.upper,
    "capitalize": _first_upper,
    "uncapitalize": _first_lower,
    "title": str.title,
    "rstrip_punct": _rstrip_punct,
    "strip_punct": lambda s: s.strip().strip(_PUNCT),
    "ensure_period": _ensure_period,
    "collapse_spaces": lambda s: " ".join(s.split()),
}
# ``join`` / ``join_comma`` act on list values before the string transforms run.
LIST_JOINERS = {"join": " ", "join_comma": ", ", "join_lines": "\n"}
