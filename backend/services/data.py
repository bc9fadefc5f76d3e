"""Datasets for the studio: load (built-in, upload, hub id) with a column mapping, browse, label
distribution, K-shot sampling.

A *selection* is the plain dict a browser keeps (``{"source", "columns", "split", "limit", "shots",
"seed"}``); the rows it names are loaded once into the context's DatasetCache and shared by every tab.
"""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from backend.errors import DatasetError
from backend.prompts.example import Example
from backend.services.context import StudioContext
from backend.services.results import service

UPLOAD_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def default_selection() -> dict[str, Any]:
    """The demo project's data: the built-in dataset and split the CLI's demo evaluates."""
    from backend.services.project import demo_config

    data = demo_config()["data"]
    return {"source": data["eval"], "columns": {}, "split": data.get("eval_split"), "limit": None,
            "shots": None, "seed": 13}


def _base(selection: dict[str, Any]) -> dict[str, Any]:
    """What identifies the loaded rows (K-shot sampling is applied on top, per browser)."""
    return {k: selection.get(k) for k in ("source", "columns", "split", "limit")}


def loaded(ctx: StudioContext, selection: dict[str, Any]) -> Any:
    if not selection or not selection.get("source"):
        raise DatasetError("no dataset loaded: pick one on the Data tab")
    return ctx.datasets.get(_base(selection))


def examples(ctx: StudioContext, selection: dict[str, Any]) -> list[Example]:
    """The selection's examples (K-shot sampled when ``shots`` is set); raises DatasetError."""
    rows = list(loaded(ctx, selection).examples)
    shots = selection.get("shots")
    if shots:
        from backend.data import sample_k_shot

        rows = list(sample_k_shot(rows, int(shots), int(selection.get("seed") or 13)))
    return rows


def label_names(ctx: StudioContext, selection: dict[str, Any]) -> list[str]:
    return [str(x) for x in loaded(ctx, selection).label_names]


def example_row(i: int, ex: Example) -> dict[str, Any]:
    return {"row": i, "text_a": ex.text_a, "text_b": ex.text_b, "label": ex.label, **{
        f"meta.{k}": v for k, v in ex.meta.items()}}


@service("data")
def load(ctx: StudioContext, selection: dict[str, Any]) -> dict[str, Any]:
    """Load (or reuse) the selection: a summary with the label distribution, the source's columns and
    the mapping in effect (the guessed one when none was given), and the source's splits."""
    from backend.data import ColumnMap

    data = loaded(ctx, selection)
    rows = examples(ctx, selection)
    used = ColumnMap.from_value(selection.get("columns") or None, list(data.columns))
    return {"selection": selection, "n": len(rows), "total": len(data.examples),
            "label_names": [str(x) for x in data.label_names], "columns": list(data.columns),
            "mapping": {"text_a": used.text_a, "text_b": used.text_b, "label": used.label,
                        "meta": sorted(used.meta)},
            "fingerprint": data.fingerprint, "distribution": distribution_of(rows, data.label_names),
            "splits": splits(selection["source"])}


@service("data")
def columns(ctx: StudioContext, selection: dict[str, Any]) -> dict[str, Any]:
    """The source's columns alone (the first rows are read), so a mapping can be chosen for a file whose
    columns could not be guessed."""
    from backend.data import load_rows

    _rows, cols = load_rows(selection["source"], selection.get("split") or None, limit=50)
    return {"columns": list(cols)}


def builtin_choices() -> list[str]:
    from backend.data import builtin_datasets

    return [f"builtin:{name}" for name in builtin_datasets()]


def splits(source: str) -> list[str]:
    """The splits a built-in dataset or a directory offers (files ``<split>.<ext>``); [] for one file."""
    from backend.data import builtin_datasets

    name = source[len("builtin:"):] if source.startswith("builtin:") else None
    directory = builtin_datasets().get(name) if name else Path(source).expanduser()
    if directory is None or not directory.is_dir():
        return []
    return sorted({p.stem for p in directory.iterdir() if p.suffix.lower() in UPLOAD_SUFFIXES})


def distribution_of(rows: list[Example], names: Any = ()) -> dict[str, int]:
    counts = Counter(str(ex.label) for ex in rows)
    ordered = {str(n): counts.pop(str(n), 0) for n in names or ()}
    ordered.update(sorted(counts.items()))
    return ordered


@service("data")
def browse(ctx: StudioContext, selection: dict[str, Any], query: str = "", offset: int = 0,
           limit: int = 50) -> dict[str, Any]:
    """One page of rows, optionally only those whose text or label contains ``query``."""
    rows = examples(ctx, selection)
    q = (query or "").strip().lower()
    hits = [(i, ex) for i, ex in enumerate(rows)
            if not q or q in ex.text_a.lower() or q in ex.text_b.lower() or q in str(ex.label).lower()]
    offset = max(0, int(offset or 0))
    page = hits[offset:offset + int(limit)]
    return {"rows": [example_row(i, ex) for i, ex in page], "matched": len(hits), "n": len(rows),
            "offset": offset}


def pick(ctx: StudioContext, selection: dict[str, Any], rows: list[int]) -> list[tuple[int, Example]]:
    """Examples by row number (for previews and probes); an unknown row is a DatasetError naming it."""
    data = examples(ctx, selection)
    bad = [r for r in rows if not 0 <= int(r) < len(data)]
    if bad:
        raise DatasetError(f"row {bad[0]} does not exist (the data has {len(data)} rows)", row=bad[0])
    return [(int(r), data[int(r)]) for r in rows]


def row_choices(ctx: StudioContext, selection: dict[str, Any], limit: int = 200) -> list[tuple[str, int]]:
    """``(label, row)`` pairs for an example picker: the row number and the start of its text."""
    try:
        rows = examples(ctx, selection)[:limit]
    except DatasetError:
        return []
    return [(f"#{i} [{ex.label}] {ex.text_a[:60]}", i) for i, ex in enumerate(rows)]


@service("upload")
def save_upload(ctx: StudioContext, path: str | Path) -> dict[str, Any]:
    """Copy an uploaded file into the data dir (size and type checked) so a run can read it later."""
    src = Path(path)
    if src.suffix.lower() not in UPLOAD_SUFFIXES:
        raise DatasetError(f"{src.name}: unsupported file type; upload {', '.join(UPLOAD_SUFFIXES)}",
                           field="upload")
    size_mb = src.stat().st_size / 1e6
    if size_mb > ctx.max_upload_mb:
        raise DatasetError(f"{src.name} is {size_mb:.1f} MB; the limit is {ctx.max_upload_mb:g} MB "
                           "(--max-upload-mb)", field="upload")
    import hashlib

    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    dest = ctx.uploads_dir / f"{src.stem}-{digest}{src.suffix.lower()}"
    if not dest.exists():
        shutil.copyfile(src, dest)
    return {"source": str(dest), "name": src.name, "size_mb": round(size_mb, 3)}


NO_COLUMN = "(none)"


def mapping(text_a: str | None, text_b: str | None, label: str | None, meta: list[str] | None) -> dict[str, Any]:
    """The column mapping as load_examples takes it: text_b / label may be ``(none)`` (unlabelled data),
    each meta column keeps its own name as the meta field (``{meta:NAME}`` in templates)."""
    cols: dict[str, Any] = {}
    if text_a and text_a != NO_COLUMN:
        cols["text_a"] = text_a
    cols["text_b"] = text_b if text_b and text_b != NO_COLUMN else None
    cols["label"] = label if label and label != NO_COLUMN else None
    cols["meta"] = {m: m for m in meta or []}
    return cols
