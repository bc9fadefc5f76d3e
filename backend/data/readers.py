"""Read a data source into plain rows (list of dicts) plus its column names.

Sources: local ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` / ``.parquet`` files, a directory holding
``<split>.<ext>``, ``builtin:<name>``, and hub datasets (``hf:<id>[:<config>]`` or a bare hub id) through
``datasets.load_dataset`` when cached or online.

Local files are read with the stdlib (JSON), pandas (CSV/TSV) and pyarrow (Parquet) rather than through
``datasets``: that skips its arrow cache (a second or more per file, and files written to disk) and lets
every error name the exact line. Each failure is a DatasetError saying what is wrong and where. A CSV
whose header is written "``text, label``" is read in that dialect (``spaced_separators``); any other
CSV keeps every cell exactly as written.

A split is a plain name (``SPLIT_NAME``), never a path: it becomes the file name ``<split>.<ext>`` in a
folder, and a studio page sends it, so ``../`` or an absolute split would read any data file on the server.
Parquet is the one format whose rows can be far bigger than the file (a 30 KB file of repeated values
decodes to hundreds of megabytes), so it is read in batches against ``MAX_ROWS`` and a byte budget.
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
# train, dev, validation_matched, test.en: letters, digits, "_", ".", "-"; no "/", no "..", no leading ".".
# Empty is allowed: it has always meant the default split (a config may have stored it).
SPLIT_NAME = re.compile(r"(?:(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,99})?")
SPLIT_RULE = ("a split is a plain name like train, dev or test (letters, digits, '_', '.', '-'; at most 100 "
              "characters; no '/' or '..')")
# Parquet: at most this many rows read from one file, and this many bytes of decoded values: the smaller
# of MAX_BYTES and MAX_RATIO times the file's size (at least RATIO_FLOOR). Text compresses a few times;
# a hundred times is a file made of one repeated value.
MAX_ROWS = 1_000_000
MAX_BYTES = 512 << 20
MAX_RATIO = 100
RATIO_FLOOR = 64 << 20
_BATCH_ROWS = 1024
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


def json_limit_reason(exc: BaseException) -> str:
    """Why ``json.loads`` failed other than by a syntax error, in words: Python's own limits (recursion
    depth, 4,300-digit integers) raise RecursionError / ValueError, which would otherwise be a traceback."""
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if "integer string conversion" in str(exc):
        return "it holds a number with thousands of digits"
    return str(exc).split("\n")[0][:200]


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
            except (ValueError, RecursionError) as exc:
                raise DatasetError(f"line {line_no} of {path.name} cannot be read: "
                                   f"{json_limit_reason(exc)}") from None
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
    except (ValueError, RecursionError) as exc:   # no line to name: Python's limits say none
        raise DatasetError(f"{path.name} cannot be read: {json_limit_reason(exc)}") from None
    if isinstance(value, dict):  # {"data": [...]} or {"train": [...]}: the one list inside
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DatasetError(f"{path.name} must hold a list of objects (or an object with exactly one list)")
        value = lists[0]
    if not isinstance(value, list):
        raise DatasetError(f"{path.name} must hold a list of objects, not a JSON {type(value).__name__}")
    value = value[:limit] if limit is not None else value
    return [_object_or_error(v, f"item {i} of {path.name}") for i, v in enumerate(value)]


def _check_header(path: Path, sep: str, spaced: bool = False) -> None:
    """pandas silently renames a repeated column to ``name.1``; a mapping would then pick the wrong one."""
    with _open_text(path) as fh:
        header = next(csv.reader(fh, delimiter=sep, skipinitialspace=spaced), [])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise DatasetError(f"{path.name} has duplicate column names: {', '.join(repeated)}")


def spaced_separators(path: Path, sep: str) -> bool:
    """Whether ``path`` is written in the "``, ``" dialect: a header of two or more names, every one after
    the first preceded by a space (``text, label``). Such a file is read with ``skipinitialspace``, so its
    names and cells come out without the space (else the classes would be ``' negative'``, which no label
    words can name). Why only then: stripping every CSV would change cells of ordinary files, and with them
    the fingerprints of datasets that runs were recorded on."""
    try:
        with _open_text(path) as fh:
            header = next(csv.reader(fh, delimiter=sep), [])
    except (csv.Error, UnicodeDecodeError):   # reported by the reader itself, with the line
        return False
    return len(header) >= 2 and all(name.startswith(" ") and name.strip() for name in header[1:])


def _csv_reader(sep: str) -> Callable[[Path, int | None], list[dict[str, Any]]]:
    def read(path: Path, limit: int | None) -> list[dict[str, Any]]:
        import pandas as pd

        spaced = spaced_separators(path, sep)
        options = {"skipinitialspace": True} if spaced else {}   # ordinary files: exactly the old call
        try:
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, nrows=limit,
                                encoding="utf-8-sig", **options)
        except pd.errors.EmptyDataError:
            return []
        except pd.errors.ParserError as exc:
            raise DatasetError(f"cannot parse {path.name}: {str(exc).strip()}") from None
        _check_header(path, sep, spaced)
        return frame.to_dict(orient="records")
    return read


def _decoded_bytes(column: Any) -> int:
    """Bytes ``column``'s values take once decoded. A dictionary column's own ``nbytes`` counts each
    distinct value once, which is exactly what a Parquet bomb hides behind, so its values are counted per
    row (lengths taken through the indices, nothing decoded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        return int(column.nbytes)
    try:
        lengths = pc.take(pc.binary_length(column.dictionary), column.indices)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, TypeError):   # not text: small values, decode them
        return int(column.dictionary_decode().nbytes)
    return int(pc.sum(lengths).as_py() or 0) + 8 * len(column)


def _parquet_budget(path: Path, meta: Any, limit: int | None) -> int:
    """The byte budget for ``path``; DatasetError before anything is read when the footer already says
    the rows wanted, or their uncompressed size, are over it."""
    budget = min(MAX_BYTES, max(RATIO_FLOOR, MAX_RATIO * path.stat().st_size))
    wanted = meta.num_rows if limit is None else min(meta.num_rows, limit)
    if wanted > MAX_ROWS:
        raise DatasetError(f"{path.name} has {meta.num_rows:,} rows, over the limit of {MAX_ROWS:,} rows a "
                           "Parquet file may give; keep fewer rows (limit) or split the file")
    rows = size = 0
    for i in range(meta.num_row_groups):     # uncompressed sizes, of the rows wanted (pages decode one by one)
        group = meta.row_group(i)
        if rows >= wanted or not group.num_rows:
            continue
        share = min(1.0, (wanted - rows) / group.num_rows)
        rows, size = rows + group.num_rows, size + int(group.total_byte_size * share)
    if size > budget:
        raise DatasetError(_too_big(path, size, budget))
    return budget


def _too_big(path: Path, size: int, budget: int) -> str:
    return (f"{path.name} is a {path.stat().st_size / 2 ** 20:,.2f} MiB file whose values decode to "
            f"{size / 2 ** 20:,.0f} MiB or more, over the {budget / 2 ** 20:,.0f} MiB it may give (a Parquet file "
            f"may decode to {MAX_RATIO} times its size, at least {RATIO_FLOOR >> 20} MiB and at most "
            f"{MAX_BYTES >> 20} MiB); keep fewer rows (limit) or save the data as CSV or JSON Lines")


def _read_parquet(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """Rows read batch by batch, stopping at ``limit``, never past the row and byte caps (module doc)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    try:
        with pq.ParquetFile(path) as pf:
            budget = _parquet_budget(path, pf.metadata, limit)
            decoded = 0
            for batch in pf.iter_batches(batch_size=min(limit or _BATCH_ROWS, _BATCH_ROWS)):
                if limit is not None:
                    batch = batch.slice(0, limit - len(rows))
                decoded += sum(_decoded_bytes(col) for col in batch.columns)
                if decoded > budget:
                    raise DatasetError(_too_big(path, decoded, budget))
                rows.extend(batch.to_pylist())
                if limit is not None and len(rows) >= limit:
                    break
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path.name} is not a readable Parquet file: {exc}") from None
    return rows


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


def _check_split(split: str | None) -> str:
    """The split to read; DatasetError unless it is a plain name (``SPLIT_RULE``), so it can only ever
    name a file inside the source's folder."""
    want = split or DEFAULT_SPLIT
    if not isinstance(want, str) or SPLIT_NAME.fullmatch(want) is None:
        shown = repr(want[:60]) if isinstance(want, str) else type(want).__name__
        raise DatasetError(f"split {shown} is not a split name: {SPLIT_RULE}")
    return want


def _split_file(directory: Path, split: str | None) -> Path:
    want = _check_split(split)
    root = directory.resolve()
    for suffix in _READERS:
        candidate = directory / f"{want}{suffix}"
        if candidate.is_file():
            if root not in candidate.resolve().parents:   # a link out of the folder: not this source's data
                raise DatasetError(f"split {want!r} of {directory} is a link to a file outside that folder")
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
    _check_split(split)
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
