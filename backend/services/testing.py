"""A StudioContext for tests and benchmarks: a fresh SQLite store in a temporary folder and an injected,
already-loaded model (the tests pass a tiny one), so nothing is downloaded or converted."""
from __future__ import annotations

from pathlib import Path

from backend.models import LoadedModel
from backend.services.context import ModelSlot, StudioContext


def make_context(folder: Path, loaded: LoadedModel | None = None, *, max_upload_mb: float = 5.0) -> StudioContext:
    """``loaded=None`` gives a context whose model never finishes loading (the "loading model..." state)."""
    from storage import open_store

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{folder / 'studio.db'}", artifacts_dir=folder / "artifacts")
    slot = ModelSlot.ready(loaded) if loaded is not None else ModelSlot("never-loaded", loader=_never)
    return StudioContext(store=store, model=slot, data_dir=folder, max_upload_mb=max_upload_mb)


def _never() -> LoadedModel:
    import threading

    threading.Event().wait()  # a model that is always "loading": the daemon thread just waits
    raise AssertionError("unreachable")


def on_disk(loaded: LoadedModel, folder: Path) -> LoadedModel:
    """Save a (tiny) model with its tokenizer and load it back by path, so the job runner's child
    process, which loads the model from the run's config, can load it too."""
    from backend.models import load_model

    folder = Path(folder)
    loaded.model.save_pretrained(str(folder))
    loaded.tokenizer.save_pretrained(str(folder))
    return load_model(str(folder), device="cpu", cache_dir=folder.parent / "model-cache")


def with_jobs(ctx: StudioContext) -> StudioContext:
    """Attach a started job runner (children log under ``<data_dir>/logs``)."""
    from backend.services.jobs import JobRunner

    ctx.jobs = JobRunner(ctx.store, log_dir=ctx.data_dir / "logs", project=ctx.project, poll_s=0.3).start()
    return ctx
