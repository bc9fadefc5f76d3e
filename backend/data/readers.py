"""Read a data source into plain rows (list of dicts) plus its column names.

Sources: local ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` / ``.parquet`` files, a directory holding
``<split>.<ext>``, ``builtin:<name>``, and hub datasets (``hf:<id>[:<config>]`` or a bare hub id) through
``datasets.load_dataset`` when cached or online.

Local files are read with the stdlib (JSON), pandas (CSV/TSV) and pyarrow (Parquet) rather than through
``datasets``: that skips its arrow cache (a second or more per file, and files written to disk) and lets
every error name the exact line. Each failure is a DatasetError saying what is wrong and where.
"""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend import hub
from backend.data.builtin import BUILTIN_PREFIX, builtin_dir
from backend.errors import DatasetError

HUB_PREFIX = "hf:"
DEFAULT_SPLIT = "train"
_PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


@dataclass
class Table:
    """Rows read from a source. ``typed`` is False for CSV/TSV, whose cells are all strings."""

    rows: list[dict[str, Any]]
    columns: list[str]
    typed: bool
    origin: str          # the file (or hub id) actually read, for messages


def _columns_of(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _open_text(path: Path) -> Any:
    return open(path, encoding="utf-8-sig")


def _object_or_error(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DatasetError(f"{where} is a JSON {type(value).__name__}, expected an object like "
                           '{"text_a": ..., "label": ...}')
    return value


def _read_jsonl(path: Path, limit: int | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"invalid JSON on line {line_no} of {path.name}: {exc.msg} "
                                   f"(character {exc.colno})") from None
            rows.append(_object_or_error(value, f"line {line_no} of {path.name}"))
    return rows


def _read_json(path: Path, limit: int | None) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON Lines saved as .json
            return _read_jsonl(path, limit)
        raise DatasetError(f"invalid JSON in {path.name} at line {exc.lineno}: {exc.msg}") from None
    if isinstance(value, dict):  # {"data": [...]} or {"train": [...]}: the one list inside
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DatasetError(f"{path.name} must hold a list of objects (or an object with exactly one list)")
        value = lists[0]
    if not isinstance(value, list):
        raise DatasetError(f"{path.name} must hold a list of objects, not a JSON {type(value).__name__}")
    value = value[:limit] if limit is not None else value
    return [_object_or_error(v, f"item {i} of {path.name}") for i, v in enumerate(value)]


def _check_header(path: Path, sep: str) -> None:
    """pandas silently renames a repeated column to ``name.1``; a mapping would then pick the wrong one."""
    with _open_text(path) as fh:
        header = next(csv.reader(fh, delimiter=sep), [])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise DatasetError(f"{path.name} has duplicate column names: {', '.join(repeated)}")


def _csv_reader(sep: str) -> Callable[[Path, int | None], list[dict[str, Any]]]:
    def read(path: Path, limit: int | None) -> list[dict[str, Any]]:
        import pandas as pd

        try:
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, nrows=limit,
                                encoding="utf-8-sig")
        except pd.errors.EmptyDataError:
            return []
        except pd.errors.ParserError as exc:
            raise DatasetError(f"cannot parse {path.name}: {str(exc).strip()}") from None
        _check_header(path, sep)
        return frame.to_dict(orient="records")
    return read


def _read_parquet(path: Path, limit: int | None) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path.name} is not a readable Parquet file: {exc}") from None
    if limit is not None:
        table = table.slice(0, limit)
    return table.to_pylist()


_READERS: dict[str, Callable[[Path, int | None], list[dict[str, Any]]]] = {
    ".jsonl": _read_jsonl, ".json": _read_json, ".csv": _csv_reader(","), ".tsv": _csv_reader("\t"),
    ".parquet": _read_parquet,
}
_UNTYPED = {".csv", ".tsv"}


def _read_file(path: Path, limit: int | None) -> Table:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DatasetError(f"{path.name}: unsupported file type {path.suffix or '(none)'}; use one of "
                           + ", ".join(_READERS))
    try:
        rows = reader(path, limit)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path.name} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows:
        raise DatasetError(f"{path.name} is empty: no rows")
    columns = _columns_of(rows)
    # JSON rows may leave a key out; make every row have every column so mapping sees None, not KeyError
    for row in rows:
        for col in columns:
            row.setdefault(col, None)
    return Table(rows=rows, columns=columns, typed=path.suffix.lower() not in _UNTYPED, origin=str(path))


def _split_file(directory: Path, split: str | None) -> Path:
    want = split or DEFAULT_SPLIT
    for suffix in _READERS:
        candidate = directory / f"{want}{suffix}"
        if candidate.is_file():
            return candidate
    available = sorted({p.stem for p in directory.iterdir() if p.suffix.lower() in _READERS})
    raise DatasetError(f"no split {want!r} in {directory}: expected {want}.jsonl (or .json/.csv/.tsv/"
                       f".parquet); available splits: {', '.join(available) or 'none'}")


def _decode_class_labels(dataset: Any, rows: list[dict[str, Any]]) -> None:
    """Hub datasets store class labels as ints plus names; use the names, the user-facing values."""
    from datasets import ClassLabel

    for name, feature in dataset.features.items():
        if isinstance(feature, ClassLabel):
            for row in rows:
                if isinstance(row.get(name), int) and row[name] >= 0:
                    row[name] = feature.int2str(row[name])


def _read_hub(source: str, split: str | None, limit: int | None) -> Table:
    import datasets

    ident = source[len(HUB_PREFIX):] if source.startswith(HUB_PREFIX) else source
    repo, _, config = ident.partition(":")
    want = split or DEFAULT_SPLIT
    if not hub.offline() and not hub.reachable():
        raise DatasetError(f"{source!r} is not a local file, and the Hugging Face hub cannot be reached from "
                           f"this machine to fetch dataset {repo!r}; give a local file, or set HF_HUB_OFFLINE=1 "
                           "to read a copy cached while online")
    try:
        dataset = datasets.load_dataset(repo, config or None, split=want)
    except ConnectionError as exc:
        raise DatasetError(f"{source!r} is not a local file, and hub dataset {repo!r} is not cached and "
                           f"cannot be fetched offline ({exc}); download it once while online or give a "
                           "local file") from None
    except Exception as exc:  # the hub loader raises many types; all mean "this source does not load"
        raise DatasetError(f"{source!r} is not a local file, and hub dataset {repo!r} (split {want!r}) "
                           f"could not be loaded: {type(exc).__name__}: {exc}") from None
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    rows = dataset.to_list()
    if not rows:
        raise DatasetError(f"hub dataset {repo!r} split {want!r} has no rows")
    _decode_class_labels(dataset, rows)
    return Table(rows=rows, columns=list(dataset.column_names), typed=True, origin=f"{HUB_PREFIX}{ident}")


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise DatasetError(f"limit must be a positive whole number, got {limit!r}")


def read_source(source: str, split: str | None = None, limit: int | None = None) -> Table:
    """Read ``source`` (see module doc); ``limit`` keeps the first rows only."""
    _check_limit(limit)
    text = (source or "").strip()
    if not text:
        raise DatasetError("no data source given")
    if text.startswith(BUILTIN_PREFIX):
        return _read_file(_split_file(builtin_dir(text), split), limit)
    path = Path(text).expanduser()
    if path.is_dir():
        return _read_file(_split_file(path, split), limit)
    if path.is_file():
        return _read_file(path, limit)
    if path.exists():
        raise DatasetError(f"{path} is neither a file nor a directory")
    if text.startswith(HUB_PREFIX):
        return _read_hub(text, split, limit)
    if text.startswith(_PATH_PREFIXES) or path.suffix.lower() in _READERS or re.match(r"^[A-Za-z]:\\", text):
        raise DatasetError(f"file not found: {path}")
    return _read_hub(text, split, limit)


def load_rows(source: str, split: str | None = None, limit: int | None = None) -> tuple[list[dict], list[str]]:
    """Rows as dicts and the source's column names (for the studio's column-mapping UI)."""
    table = read_source(source, split, limit)
    return table.rows, table.columns
