"""Datasets for the studio: load (built-in, upload, hub id) with a column mapping, browse, label
distribution, K-shot sampling.

A *selection* is the plain dict a browser keeps (``{"source", "columns", "split", "limit", "shots",
"seed", "dev_fraction"}``); the rows it names are loaded once into the context's DatasetCache and shared
by every tab. A source without separate split files (an upload, one hub split) is divided into train and
dev by ``dev_fraction`` (stratified, seeded), so no run scores rows it trained on; K-shot samples come
from the train part only. Its numbers are checked (``whole_number``): a limit or shots of 0, None or ""
means all rows.

Every source goes through ``studio_source`` first: the studio reads built-in data, its own uploads, files
under its data folder and cached hub datasets, never another file on the server.
"""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from backend.config import DEFAULT_SEED, RunConfig
from backend.errors import ConfigError, DatasetError
from backend.prompts.example import Example
from backend.services.context import StudioContext
from backend.services.results import service
from backend.textcheck import brief

UPLOAD_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def default_selection() -> dict[str, Any]:
    """The demo project's data: the built-in dataset and split the CLI's demo evaluates."""
    from backend.config import DEMO_CONFIG

    data = DEMO_CONFIG["data"]
    return {"source": data["eval"], "columns": {}, "split": data.get("eval_split"), "limit": None,
            "shots": None, "seed": DEFAULT_SEED}


def studio_source(ctx: StudioContext, source: str) -> str:
    """What the studio reads for ``source``: a built-in name, a real path under the data folder, or
    ``hf:ID``; DatasetError for anything else on the server's disk (``..``, absolute paths, ``~``, links)."""
    from backend.data.sources import confine

    return confine(source, [ctx.data_dir])


def confine_config(ctx: StudioContext, cfg: RunConfig) -> RunConfig:
    """A config from the page (or edited JSON) may only read what the studio offers: its data sources
    are confined like the Data tab's, its splits are plain names checked again (a caller may have set one
    after parsing: a split is a file name in the source's folder), and label words come inline, not from a
    server file."""
    from dataclasses import fields

    from backend.config import DataConfig
    from backend.pipeline import OPEN_VOCAB, WHOLE_VOCAB
    from backend.schema import check

    for key in ("train", "eval"):
        if getattr(cfg.data, key):
            setattr(cfg.data, key, studio_source(ctx, getattr(cfg.data, key)))
    declared = {f.name: f.metadata for f in fields(DataConfig)}
    for key in ("train_split", "eval_split"):
        check(getattr(cfg.data, key), str | None, f"data.{key}", declared[key])
    if isinstance(cfg.verbalizer, str) and cfg.verbalizer not in (OPEN_VOCAB, WHOLE_VOCAB):
        raise ConfigError("verbalizer: give the label words inline (e.g. {\"negative\": [\"bad\"]}); the "
                          "studio does not read verbalizer files from the server", field="verbalizer")
    return cfg


def confine_output(ctx: StudioContext, cfg: RunConfig) -> RunConfig:
    """A run the studio queues writes only under the studio's runs folder: ``train.output_dir`` in edited
    JSON or a sweep's base would otherwise have the worker create folders and write weights anywhere the
    server can. A config copied from a run of this studio (its folder is under the root) still works; a run
    only read (evaluated, served) keeps whatever folder it trained in."""
    if not cfg.train.output_dir:
        return cfg
    from backend.jobs.paths import runs_root
    from backend.textcheck import brief

    root = runs_root(ctx.store).resolve()
    target = Path(cfg.train.output_dir).expanduser().resolve()
    if target != root and root not in target.parents:
        raise ConfigError(f"train.output_dir: the studio keeps its runs' files in its own runs folder; it does not "
                          f"write to {brief(cfg.train.output_dir)}: remove train.output_dir (python -m backend "
                          "train writes anywhere you ask)", field="train.output_dir")
    cfg.train.output_dir = str(target)
    return cfg


ALL_ROWS = "0 or empty: all rows"   # what a selection's limit and shots of 0, None or "" mean
MAX_PAGE = 1000                     # rows one browse call returns at most


def whole_number(value: Any, name: str, empty: str, zero_is_empty: bool = True) -> int | None:
    """``value`` as a whole number ≥ 0; None for None, "" and (``zero_is_empty``) 0, which ``empty`` says
    the meaning of; else a DatasetError naming the setting and the value. Why: a selection comes back
    from the browser or an API caller, where "x" or NaN was a ValueError and 2.7 silently became 2."""
    number = value.strip() if isinstance(value, str) else value
    if number is None or number == "":
        return None
    if isinstance(number, str):
        try:
            number = float(number)
        except ValueError:
            pass
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise DatasetError(f"{name}: expected a whole number, 0 or more ({empty}), got {brief(value)}")
    return None if number == 0 and zero_is_empty else number


def check_selection(selection: dict[str, Any]) -> None:
    """DatasetError / ConfigError naming the first of limit, shots, seed, dev fraction that cannot be used;
    so a bad value is refused when the selection is saved, not when the project is next opened."""
    from backend.data.splitting import check_fraction

    for key in ("limit", "shots"):
        whole_number(selection.get(key), key, ALL_ROWS)
    if selection.get("seed") is not None and (bad := seed_error(selection["seed"])):
        raise DatasetError(bad["error"]["message"])
    if selection.get("dev_fraction") is not None:
        check_fraction(selection["dev_fraction"])


def _base(ctx: StudioContext, selection: dict[str, Any]) -> dict[str, Any]:
    """What identifies the loaded rows (the dev split and K-shot sampling are applied on top, per browser)."""
    base = {k: selection.get(k) for k in ("source", "columns", "split")}
    base["source"] = studio_source(ctx, base["source"])
    base["limit"] = whole_number(selection.get("limit"), "limit", ALL_ROWS)
    return base


def source_of(selection: Any) -> str:
    """The selection's source, or DatasetError "no dataset loaded".

    Why a selection that is not a dict counts as none: the browser keeps it and the client sends it
    back, so it may be anything (a string from an old page, a number from an API caller)."""
    source = selection.get("source") if isinstance(selection, dict) else None
    if not source:
        raise DatasetError("no dataset loaded: pick one on the Data tab")
    return source


def loaded(ctx: StudioContext, selection: dict[str, Any]) -> Any:
    source_of(selection)
    return ctx.datasets.get(_base(ctx, selection))


def train_dev(ctx: StudioContext, selection: dict[str, Any]) -> tuple[list[Example], list[Example]] | None:
    """The selection's (train, dev) parts when ``dev_fraction`` splits its one source, else None."""
    fraction = selection.get("dev_fraction")
    if fraction is None:
        return None
    from backend.data.splitting import split_train_dev

    return split_train_dev(list(loaded(ctx, selection).examples), fraction, seed_of(selection))


def seed_error(value: Any) -> dict[str, Any] | None:
    """Why ``value`` cannot be the project's seed, or None. Checked before the seed reaches the page's
    state: a number beyond 64 bits there cannot even be sent back to the browser."""
    from backend.config import SEED

    try:
        seed = int(value)
    except (TypeError, ValueError, OverflowError):
        return {"error": {"message": f"seed: expected a whole number, got {str(value)[:40]!r}"}}
    if not SEED["min"] <= seed <= SEED["max"]:
        return {"error": {"message": f"seed: must be between {SEED['min']} and {SEED['max']}, got {str(seed)[:40]}"}}
    return None


def seed_of(selection: dict[str, Any]) -> int:
    """The selection's seed, read as runconfig.build reads it, so the page and its runs split alike."""
    seed = selection.get("seed")
    try:
        return DEFAULT_SEED if seed is None or isinstance(seed, bool) else int(seed)
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_SEED


def examples(ctx: StudioContext, selection: dict[str, Any]) -> list[Example]:
    """The selection's examples: all rows, or a K-shot sample (of the train part, when the source is
    split) when ``shots`` is set; raises DatasetError."""
    rows = list(loaded(ctx, selection).examples)
    shots = whole_number(selection.get("shots"), "shots", ALL_ROWS)
    if shots:
        from backend.data import sample_k_shot

        parts = train_dev(ctx, selection)
        rows = list(sample_k_shot(parts[0] if parts else rows, shots, seed_of(selection)))
    return rows


def split_summary(ctx: StudioContext, selection: dict[str, Any]) -> dict[str, Any] | None:
    """Train / dev sizes and how they were made, for the Data tab's card (None: the source has split files)."""
    from backend.data.splitting import describe

    parts = train_dev(ctx, selection)
    if parts is None:
        return None
    fraction = float(selection["dev_fraction"])
    return {"train": len(parts[0]), "dev": len(parts[1]), "dev_fraction": fraction,
            "how": describe(fraction, seed_of(selection), len(parts[0]), len(parts[1]))}


def label_names(ctx: StudioContext, selection: dict[str, Any]) -> list[str]:
    return [str(x) for x in loaded(ctx, selection).label_names]


def example_row(i: int, ex: Example) -> dict[str, Any]:
    return {"row": i, "text_a": ex.text_a, "text_b": ex.text_b, "label": ex.label, **{
        f"meta.{k}": v for k, v in ex.meta.items()}}


@service("data")
def load(ctx: StudioContext, selection: dict[str, Any]) -> dict[str, Any]:
    """Load (or reuse) the selection: a summary with the label distribution, the source's columns and
    the mapping in effect (the guessed one when none was given), and the source's splits."""
    data = loaded(ctx, selection)
    rows = examples(ctx, selection)
    used = data.mapping
    return {"selection": selection, "n": len(rows), "total": len(data.examples), "guessed": data.guessed,
            "label_names": [str(x) for x in data.label_names], "columns": list(data.columns),
            "mapping": {"text_a": used.text_a, "text_b": used.text_b, "label": used.label,
                        "meta": sorted(used.meta)},
            "fingerprint": data.fingerprint, "distribution": distribution_of(rows, data.label_names),
            "splits": splits(ctx, selection["source"]), "split": split_summary(ctx, selection)}


@service("data")
def columns(ctx: StudioContext, selection: dict[str, Any]) -> dict[str, Any]:
    """The source's columns alone (the first rows are read), so a mapping can be chosen for a file whose
    columns could not be guessed."""
    from backend.data import load_rows

    _rows, cols = load_rows(studio_source(ctx, source_of(selection)), selection.get("split") or None, limit=50)
    return {"columns": list(cols)}


def builtin_choices() -> list[str]:
    from backend.data import builtin_datasets

    return [f"builtin:{name}" for name in builtin_datasets()]


def splits(ctx: StudioContext, source: str) -> list[str]:
    """The splits a built-in dataset or a folder the studio may read offers (files ``<split>.<ext>``);
    [] for one file, a hub id, or a source the studio may not read."""
    from backend.data import builtin_datasets

    try:
        source = studio_source(ctx, source)
    except DatasetError:
        return []
    name = source[len("builtin:"):] if source.startswith("builtin:") else None
    directory = builtin_datasets().get(name) if name else Path(source)
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
    """One page of rows whose text or label contains ``query`` (all when empty): from ``offset`` (None or ""
    is 0), ``limit`` rows (None or "" is 50; at most MAX_PAGE, as a page goes to a browser)."""
    first = whole_number(offset, "offset", "empty: from the first row", zero_is_empty=False) or 0
    size = whole_number(limit, "limit", f"1 to {MAX_PAGE}", zero_is_empty=False)
    if size is not None and not 1 <= size <= MAX_PAGE:
        raise DatasetError(f"limit: a page holds 1 to {MAX_PAGE} rows, got {brief(limit)}")
    rows = examples(ctx, selection)
    q = (query or "").strip().lower()
    hits = [(i, ex) for i, ex in enumerate(rows)
            if not q or q in ex.text_a.lower() or q in ex.text_b.lower() or q in str(ex.label).lower()]
    page = hits[first:first + (50 if size is None else size)]
    return {"rows": [example_row(i, ex) for i, ex in page], "matched": len(hits), "n": len(rows), "offset": first}


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
    """Copy an uploaded file into the data dir (size and type checked) so a run can read it later.

    The name carries the content's sha256, so a file already under that name is trusted only after its
    size and hash are checked: a copy killed mid-way (or an older, non-atomic version) may have left it
    truncated, and every run would then read short data. A missing or wrong file is written afresh."""
    import hashlib

    src = Path(path)
    if src.suffix.lower() not in UPLOAD_SUFFIXES:
        raise DatasetError(f"{src.name}: unsupported file type; upload {', '.join(UPLOAD_SUFFIXES)}",
                           field="upload")
    size_mb = src.stat().st_size / 1e6
    if size_mb > ctx.max_upload_mb:
        raise DatasetError(f"{src.name} is {size_mb:.1f} MB; the limit is {ctx.max_upload_mb:g} MB "
                           "(--max-upload-mb)", field="upload")
    blob = src.read_bytes()   # hash and copy the same bytes, so the name always matches the content
    sha = hashlib.sha256(blob).hexdigest()
    dest = ctx.uploads_dir / f"{src.stem}-{sha[:12]}{src.suffix.lower()}"
    try:
        if not (dest.is_file() and dest.stat().st_size == len(blob)
                and hashlib.sha256(dest.read_bytes()).hexdigest() == sha):
            _write_atomically(dest, blob)
    except OSError as exc:
        raise DatasetError(f"{src.name}: could not save the upload ({exc.strerror or exc}); nothing was "
                           "kept", field="upload") from None
    return {"source": str(dest), "name": src.name, "size_mb": round(size_mb, 3)}


def _write_atomically(dest: Path, blob: bytes) -> None:
    """Write ``blob`` to a unique temp file beside ``dest``, fsync it, then rename it into place.

    Why: readers (and the next upload of the same file) only ever see no file or the whole file, even
    when the copy dies on a full disk or a kill, and two concurrent uploads never share one inode."""
    import io
    import os
    import tempfile

    from storage.artifacts import fsync_path

    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(io.BytesIO(blob), out)
            out.flush()
            os.fchmod(out.fileno(), 0o644)   # mkstemp makes 0600; an upload is ordinary shared data
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(dest.parent)   # make the rename itself durable


NO_COLUMN = "(none)"


def mapping(text_a: str | None, text_b: str | None, label: str | None, meta: list[str] | None) -> dict[str, Any]:
    """The column mapping as load_examples takes it: text_b / label may be ``(none)`` (unlabelled data),
    each meta column keeps its own name as the meta field (``{meta:NAME}`` in templates)."""
    for name, value in (("text_a", text_a), ("text_b", text_b), ("label", label)):
        _column_name(value, name)
    if meta is not None and not isinstance(meta, list):
        raise DatasetError(f"column mapping: meta must be a list of column names, got {brief(meta)}",
                           field="columns")
    for i, m in enumerate(meta or []):
        _column_name(m, f"meta[{i}]")
    cols: dict[str, Any] = {}
    if text_a and text_a != NO_COLUMN:
        cols["text_a"] = text_a
    cols["text_b"] = text_b if text_b and text_b != NO_COLUMN else None
    cols["label"] = label if label and label != NO_COLUMN else None
    cols["meta"] = {m: m for m in meta or []}
    return cols


def _column_name(value: Any, name: str) -> None:
    """A mapped column is named by text (one of the file's columns, checked when the rows are read);
    anything else the client sent is a DatasetError naming the field, not a TypeError further on."""
    if value is not None and not isinstance(value, str):
        raise DatasetError(f"column mapping: {name} must be a column name (text), got {brief(value)}",
                           field="columns")


def source_label(source: str) -> str:
    """How the page names a source: an upload or any file by its file name (the studio's own folders are a
    server detail), without the content digest uploads are stored under; built-ins and hub ids as given."""
    import re

    from backend.data.mapping import display_name

    name = display_name(source)
    return re.sub(r"-[0-9a-f]{12}(\.[A-Za-z0-9]+)$", r"\1", name) if name != source else name
