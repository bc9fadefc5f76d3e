"""One input example, the unit every part of the engine works on (OpenPrompt's InputExample)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    guid: Any = None
    text_a: str = ""
    text_b: str = ""
    label: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Example":
        """Build from a JSON object; unknown top-level keys go into ``meta`` so nothing is dropped."""
        known = {"guid", "text_a", "text_b", "label", "meta"}
        meta = dict(d.get("meta") or {})
        for k, v in d.items():
            if k not in known:
                meta.setdefault(k, v)
        return cls(guid=d.get("guid"), text_a=d.get("text_a") or "", text_b=d.get("text_b") or "",
                   label=d.get("label"), meta=meta)

    def to_dict(self) -> dict[str, Any]:
        return {"guid": self.guid, "text_a": self.text_a, "text_b": self.text_b,
                "label": self.label, "meta": dict(self.meta)}
