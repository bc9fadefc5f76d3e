"""Where the studio keeps its database and artifact files by default.

One place decides this so the studio, the job runner and the CLI all open the same store unless told
otherwise (``PROMPT_STUDIO_HOME`` moves everything, e.g. for tests or a second workspace). Also the one
place where an untrusted name (an artifact's, from a database row or a bundle) becomes a path
(:func:`safe_join`), where a database URL is made fit to print (:func:`redact_url`), and where a path a
command would write is refused when it is one of the store's own files (:func:`check_not_store_file`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InvalidInput


def default_home() -> Path:
    """``$PROMPT_STUDIO_HOME`` if set, else ``~/.prompt-studio``; always absolute (a relative home would
    name another folder in a run's process, which starts in the source checkout)."""
    env = os.environ.get("PROMPT_STUDIO_HOME")
    return Path(env).expanduser().absolute() if env else Path.home() / ".prompt-studio"


def absolute_url(url: str) -> str:
    """``url`` with a relative SQLite file made absolute, anything else unchanged. Why: the URL is handed to
    job processes, which start in the source checkout; ``sqlite:///runs.db`` there is another, empty
    database (the run then fails "no run with id 1", and a stray database appears in the checkout)."""
    from sqlalchemy.engine import make_url

    path = sqlite_file(url)
    if path is None:
        return url
    u = make_url(url)
    return url if Path(u.database).is_absolute() and "~" not in u.database else \
        u.set(database=str(path)).render_as_string(hide_password=False)


def default_db_url() -> str:
    """SQLite file ``<home>/studio.db``."""
    return f"sqlite:///{default_home() / 'studio.db'}"


def default_artifacts_dir(url: str) -> Path:
    """Artifacts live beside a SQLite file database, else under ``<home>/artifacts``.

    Why beside the file: a database copied or moved with its folder keeps finding its weights; for a
    server database (PostgreSQL) there is no file, so the studio home is used.
    """
    path = sqlite_file(url)
    return path.parent / "artifacts" if path is not None else default_home() / "artifacts"


def sqlite_file(url: str) -> Path | None:
    """The resolved path of a SQLite file database, None for anything else (a server, ``:memory:``)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not u.database.startswith("file:"):
        return Path(u.database).expanduser().resolve()
    return None


def db_identity(url: str) -> str | None:
    """One name per database however its URL is spelled, or None for one that vanishes with its process.

    Why: the artifact folder records which databases use it (``ArtifactStore.register_owner``), and
    ``sqlite:///runs.db`` from one folder, the same file by its absolute path, or a server URL with
    another driver or password must count as one owner, not two. No password is kept in it.
    """
    from sqlalchemy.engine import make_url

    path = sqlite_file(url)
    if path is not None:
        return f"sqlite:///{path}"
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return None if u.database in (None, "", ":memory:") else u.render_as_string(hide_password=True)
    return u.set(drivername=u.get_backend_name(), password=None, query={}).render_as_string()


# -- the store's own files ---------------------------------------------------------------------------
# Why: a command that writes a file the user names (``storage export RUN OUT``, ``backend eval
# --predictions``, ``backend sweep --csv``) must never write over the database it records into or the
# artifact files its runs point at; a typo there (``export 1 studio.db``) destroyed every project, version
# and run without a word. One helper decides it, for every such flag.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")   # SQLite's files beside the database file


def _same(a: Path, b: Path) -> bool:
    """One file or folder: equal resolved paths, or (both existing) one inode, which also catches a hard
    link or another spelling on a case-insensitive file system."""
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def store_file_reason(path: str | Path, url: str | None, artifacts_root: str | Path | None) -> str | None:
    """Why ``path`` is one of the store's own files, or None when it is not.

    The store's files: the SQLite database of ``url`` and its companions (``-wal``, ``-shm``,
    ``-journal``), and anything in ``artifacts_root`` (the folder itself included). Compared after
    :meth:`Path.resolve`, so a relative path or a symlink to one of them counts as that file.
    """
    target = Path(path).expanduser().resolve()
    db = None
    if url:
        try:
            db = sqlite_file(url)
        except Exception:  # noqa: BLE001 - a malformed URL has no file here; opening it reports the fault
            db = None
    if db is not None:
        for suffix in ("", *SQLITE_COMPANIONS):
            companion = Path(f"{db}{suffix}")
            if _same(target, companion):
                what = "database file" if not suffix else f"database's {suffix[1:]} file"
                return f"it is the store's {what} {companion}; writing there would destroy its projects, " \
                       f"versions and runs"
    if artifacts_root is not None:
        root = Path(artifacts_root).expanduser().resolve()
        if any(_same(p, root) for p in (target, *target.parents)):
            return f"it is in the store's artifact folder {root}, which holds the runs' verified files"
    return None


def check_not_store_file(path: str | Path, url: str | None, artifacts_root: str | Path | None,
                         what: str = "output") -> Path:
    """``path`` as given, or :class:`InvalidInput` naming ``what``, the path and why, when it is one of the
    store's own files (see :func:`store_file_reason`)."""
    why = store_file_reason(path, url, artifacts_root)
    if why:
        resolved = Path(path).expanduser().resolve()
        shown = f"{path}" + (f" (resolves to {resolved})" if str(resolved) != str(path) else "")
        raise InvalidInput(f"{what}: refusing to write {shown}: {why}")
    return Path(path)


# -- names that become paths ------------------------------------------------------------------------
# Why one helper: an artifact's name comes from a database row or from a bundle someone sent, and it
# becomes a file path when a run is served or materialised. A name such as ``../../x`` or ``/etc/x``
# would write anywhere the server can; every join of an untrusted name onto a folder goes through here.
MAX_NAME_BYTES = 1024     # the whole name, UTF-8 encoded
MAX_PART_BYTES = 255      # each ``/``-separated part: NAME_MAX of ext4, XFS, APFS and NTFS
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def check_artifact_name(name: object, where: str = "artifact name") -> str:
    """``name`` if it is a safe relative file path (``w.bin``, ``adapter/adapter_config.json``).

    Refused: non-strings, empty names, absolute paths, ``..`` or ``.`` parts, empty parts (``a//b``,
    a trailing ``/``), backslashes, drive letters, NUL and other control characters, lone surrogates
    (not encodable, so no file system or database takes them), and names longer in UTF-8 than
    ``MAX_NAME_BYTES`` or with a part longer than ``MAX_PART_BYTES`` (why bytes: that is what the file
    system counts, and a name it cannot create must fail here, not when the run is served). Raises
    :class:`InvalidInput` naming ``where`` and the name.
    """
    if not isinstance(name, str):
        raise InvalidInput(f"{where}: expected a string, not {type(name).__name__}")
    why = _unsafe_because(name)
    if why:
        shown = repr(name[:80]) + (f" (first 80 of {len(name)} characters)" if len(name) > 80 else "")
        raise InvalidInput(f"{where} {shown} is not a safe file name: {why}")
    return name


def _unsafe_because(name: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_BYTES:  # each character is at least one byte: no need to encode a huge one
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains a control character"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode (a lone surrogate)"
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long in UTF-8, over the limit of {MAX_NAME_BYTES}"
    if "\\" in name:
        return "it contains a backslash"
    if name.startswith("/"):
        return "it is an absolute path"
    if _DRIVE_RE.match(name):
        return "it starts with a drive letter"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "it has an empty, '.' or '..' part"
    long = next((p for p in parts if len(p.encode("utf-8")) > MAX_PART_BYTES), None)
    if long is not None:
        return (f"its part {long[:40]!r}... is {len(long.encode('utf-8'))} bytes long in UTF-8, over the "
                f"limit of {MAX_PART_BYTES} for one file or folder name")
    return None


def safe_join(root: Path, name: str, where: str = "artifact name") -> Path:
    """``root / name``, refusing names that are not safe (see :func:`check_artifact_name`) and results
    that resolve outside ``root`` (a symlink inside ``root`` pointing elsewhere)."""
    check_artifact_name(name, where)
    base = Path(root).resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base):
        raise InvalidInput(f"{where} {name!r} resolves to {target}, outside {base}")
    return target


def redact_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs (``postgresql://u:***@host/db``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))
