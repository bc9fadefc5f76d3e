"""The studio's explicit context: the store, the base model (loaded in the background) and caches.

One ``StudioContext`` is created by ``studio/app.py`` (or by a test, with a tiny model injected) and passed
to every service function. Nothing here is a module global, so two apps in one process (tests) never
share state, and everything a request reuses — the tokenizer, its ``TokenizerInfo``, tokenized texts,
loaded datasets — lives in one visible place.
"""
from __future__ import annotations

import copy
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.errors import ModelError
from backend.models import DEFAULT_MODEL, LoadedModel
from backend.prompts.encode import TokenizerInfo, describe_tokenizer
from backend.prompts.tokencache import MemoTokenizer
from storage import Store

if TYPE_CHECKING:   # annotations only: both modules import this one
    from backend.services.jobs import JobRunner
    from backend.services.playground import RunsServer

log = logging.getLogger(__name__)

LOADING_MESSAGE = "loading model..."


class ModelSlot:
    """The one base model of a studio session, loaded once in a background thread.

    Why a thread: loading SmolLM2 takes seconds (tens on first use, when its GGUF is converted) and the
    page must show at once; controls that need the model read ``status()`` and say "loading model..."
    until ``ready``. Requests then reuse the same tokenizer and ``TokenizerInfo`` (never reloaded per
    keystroke).
    """

    def __init__(self, spec: str = DEFAULT_MODEL, loader: Callable[[], LoadedModel] | None = None,
                 dtype: str = "auto") -> None:
        self.spec = spec
        # the studio's evaluations run on this one model, so its dtype is theirs (``eval.dtype`` of the
        # configs it builds); a dtype the device cannot run is refused here, before anything loads
        self.dtype = dtype
        if dtype != "auto":
            from backend.models.device import eval_device_dtype

            eval_device_dtype(dtype, setting="--dtype")
        self._loader = loader or (lambda: _load_default(spec, dtype))
        self._start_lock = threading.Lock()
        # Held around every forward pass in the studio process: PromptModel hooks the shared base model's
        # LM head for the duration of a call, so two concurrent calls would read each other's captures.
        self.lock = threading.RLock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded: LoadedModel | None = None
        self._tokenizer: MemoTokenizer | None = None
        self._info: TokenizerInfo | None = None
        self._error: str | None = None

    @classmethod
    def ready(cls, loaded: LoadedModel) -> ModelSlot:
        """A slot holding an already-loaded model (tests inject tiny models this way)."""
        slot = cls(loaded.spec, loader=lambda: loaded)
        slot._finish(loaded)
        return slot

    def start(self) -> None:
        """Begin loading in the background (idempotent)."""
        with self._start_lock:
            if self._thread is not None or self._done.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="studio-model-loader", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._finish(self._loader())
        except ModelError as exc:
            self._error = exc.message
            self._done.set()
        except Exception as exc:  # noqa: BLE001 - a broken model must not kill the page; say why
            log.exception("loading model %s failed", self.spec)
            self._error = f"cannot load model {self.spec!r}: {exc}"
            self._done.set()

    def _finish(self, loaded: LoadedModel) -> None:
        start_id = getattr(loaded.model.config, "decoder_start_token_id", None) if loaded.kind == "seq2seq" \
            else None
        self._info = describe_tokenizer(loaded.tokenizer, start_id)
        self._tokenizer = MemoTokenizer(loaded.tokenizer)
        self._loaded = loaded
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loaded or failed (tests and the CLI use this; request handlers never do)."""
        self.start()
        return self._done.wait(timeout)

    def status(self) -> dict[str, Any]:
        if self._loaded is not None:
            return {"state": "ready", "model_id": self._loaded.model_id, "kind": self._loaded.kind,
                    "message": f"model {model_label(self._loaded.model_id)} ({self._loaded.kind}) on "
                               f"{self._loaded.device}" + self._dtype_said()}
        if self._error is not None:
            return {"state": "failed", "model_id": self.spec, "kind": None,
                    "message": self._error.replace(self.spec, model_label(self.spec))}
        return {"state": "loading", "model_id": self.spec, "kind": None, "message": LOADING_MESSAGE}

    def _dtype_said(self) -> str:
        if self.dtype == "auto" or self._loaded is None:
            return ""
        from backend.models.device import dtype_note

        note = dtype_note(self._loaded.dtype, self._loaded.device)
        return f", {self.dtype}" + (f" ({note})" if note else "")

    def get(self) -> LoadedModel:
        """The loaded model, or a ModelError saying it is still loading / why it failed."""
        if self._loaded is None:
            raise ModelError(self._error or LOADING_MESSAGE)
        return self._loaded

    @property
    def tokenizer(self) -> MemoTokenizer:
        self.get()
        assert self._tokenizer is not None
        return self._tokenizer

    @property
    def info(self) -> TokenizerInfo:
        self.get()
        assert self._info is not None
        return self._info

    @property
    def profile(self) -> str:
        """The encoding profile: the model kind names it (masked / causal / seq2seq)."""
        return self.get().kind


def model_label(model_id: str) -> str:
    """How the page names a model: a local path by its folder or file name (the page never shows where
    the server keeps things), the embedded default and hub ids as they are."""
    return Path(model_id).name if Path(model_id).is_absolute() else model_id


def _load_default(spec: str, dtype: str = "auto") -> LoadedModel:
    from backend.models import load_model
    from backend.models.device import eval_device_dtype

    device, dt = eval_device_dtype(dtype, setting="--dtype")
    return load_model(spec, device=device, dtype=dt)


class DatasetCache:
    """Loaded datasets keyed by what was asked for (source, columns, split, limit); a few are kept.

    Each browser keeps its own selection as a plain dict (a Gradio State); the loaded rows are shared.
    """

    def __init__(self, maxsize: int = 4, loader: Callable[..., Any] | None = None) -> None:
        self.maxsize = maxsize
        self._loader = loader
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(selection: dict[str, Any]) -> str:
        return json.dumps(selection, sort_keys=True, default=str)

    def get(self, selection: dict[str, Any]) -> Any:
        """The LoadedData for ``selection`` (``{"source", "columns", "split", "limit"}``), loading on a miss."""
        k = self.key(selection)
        with self._lock:
            if k in self._items:
                self._items.move_to_end(k)
                return self._items[k]
        loaded = self._load(selection)
        with self._lock:
            self._items[k] = loaded
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return loaded

    def _load(self, selection: dict[str, Any]) -> Any:
        loader = self._loader
        if loader is None:
            from backend.data import load_examples as loader
        return loader(selection["source"], columns=selection.get("columns") or None,
                      split=selection.get("split") or None, limit=selection.get("limit") or None)


@dataclass
class StudioContext:
    """Everything a service call may touch, created once per app."""

    store: Store
    model: ModelSlot
    data_dir: Path
    datasets: DatasetCache = field(default_factory=DatasetCache)
    project: str = "demo"               # the project a service call works in (``scoped`` gives another)
    max_upload_mb: float = 50.0
    jobs: JobRunner | None = None        # the job runner; the app always starts one, a test may not
    serving: RunsServer | None = None    # the Playground's runs server, created on first use
    lock: threading.Lock = field(default_factory=threading.Lock)   # guards creating ``serving``
    _root: StudioContext | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A run whose process died (kill -9, a reboot) cannot record its end: fail it now, once, so a
        # studio without a job runner (whose worker would reap it) never shows a dead run as running.
        self.store.reap_dead_runs()

    @property
    def root(self) -> StudioContext:
        """The app's one context (a scoped view's origin): what is created lazily (``serving``) lives there."""
        return self._root or self

    def scoped(self, project: str | None) -> StudioContext:
        """This context working in ``project``: the same store, model, caches and job runner (shared, not
        copied), only ``project`` differs. Why a view rather than setting ``project``: one context serves
        every browser, and each browser session has its own current project (a ``gr.State``)."""
        if not project or project == self.project:
            return self
        from storage import check_project_name

        view = copy.copy(self)
        view.project = check_project_name(project)
        view._root = self.root
        return view

    def run(self, run_id: Any) -> Any:
        """Run ``run_id`` (a RunInfo) if it is one of this project's. Why: the pickers list only the
        project's runs, but an id typed in a box or sent over the API could name any run; another
        project's run is not found here, and the message says where it is."""
        from storage import DEFAULT_PROJECT, NotFound

        info = self.store.get_run(run_id)
        if (info.project or DEFAULT_PROJECT) != self.project:
            raise NotFound(f"run #{info.id} is in project {info.project!r}, not in {self.project!r}: open that "
                           "project on the Start tab to use it")
        return info

    def runs(self, run_ids: Any) -> list[Any]:
        """``run`` for each id, in order."""
        return [self.run(i) for i in run_ids]

    def close(self) -> None:
        """Stop the job worker this app started (if any) and release the database."""
        if self.jobs is not None and hasattr(self.jobs, "stop"):
            self.jobs.stop()
        self.store.close()

    @property
    def uploads_dir(self) -> Path:
        path = self.data_dir / "uploads"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def exports_dir(self) -> Path:
        path = self.data_dir / "exports"
        path.mkdir(parents=True, exist_ok=True)
        return path
