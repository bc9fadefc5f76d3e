"""The shape of the code: one definition of each shared list, and imports that only point down.

Read with the standard library's ``ast`` (nothing is imported), so a broken module is reported by name.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backend", "storage", "studio")


def _sources() -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return out


NOT_YET: set[tuple[str, str]] = set()     # (file, literal) allowed for now; none left


def test_each_shared_list_is_defined_once_in_backend_choices():
    literals = ['"smollm2-135m-instruct"', '"tail", "head", "balanced"', '"masked", "causal", "seq2seq"']
    for literal in literals:
        where = [path for path, text in _sources().items()
                 if literal in text and (path, literal) not in NOT_YET]
        assert where == ["backend/choices.py"], f"{literal} is defined in {where}; import it from backend.choices"
