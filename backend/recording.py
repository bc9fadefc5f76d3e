"""Recording a run: the one place that writes a run's lineage, whoever starts the run.

Why one place: runs used to be recorded several ways (zero-shot with versions and a dataset snapshot, the
studio's evaluation of a trained run with neither, queued runs with the config's model name and no
versions, CLI training with nothing), so "what exactly produced this score" depended on the button that
started it. Every entry point (studio evaluate / train / re-run, CLI eval / train, sweep, worker) now
records through here, so every run carries the same lineage:

- its config, and its parent run (an evaluated or resumed run);
- the model actually loaded: spec, canonical id and revision (the sha256 of its weight files, or the hub
  commit that pins them), written back when a queued run's process loads it;
- the template and verbalizer versions (saving identical content finds the existing version);
- a dataset snapshot whose fingerprint covers the exact train and eval rows, listing them (source row
  numbers, see ``row_ids``), so "which rows were used" is answerable;
- the code version that ran it (``code_version``);
- what the model computed on and in: its device, its weights' dtype and the autocast a training ran under
  (the same config scores differently in bf16 on a GPU and in fp32 on a CPU).

The ids go into the run row's columns; the whole record is also attached to the run as a ``lineage``
artifact (``lineage.json``), so it travels with exported bundles and holds what has no column (code
version, model spec).
"""
from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backend.config import RunConfig
from backend.prompts.example import Example
from backend.prompts.verbalizer import Verbalizer

LINEAGE_KIND = "lineage"
LINEAGE_NAME = "lineage.json"
KEY_CHARS = 16   # content keys listed for rows without a source row number: 64 bits, plenty to tell rows apart


@functools.cache
def code_version() -> str:
    """``git describe --always --dirty`` of this checkout, else the installed package's version, else
    ``"unknown"``. Computed once per process, when this module is imported (below), and never raises: a
    run is recorded even without git. Asked at the first recording instead, a studio started on one commit
    recorded the next one after a ``git pull``, while it still ran the code it had imported."""
    return describe_code()


def describe_code() -> str:
    """What ``code_version`` says, asked now (the job server compares it before forking a run: a child
    runs the code the server imported, so a checkout changed since then means a cold start)."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"prompt-studio {version('prompt-studio')}"
    except Exception:  # noqa: BLE001 - not installed as a package (or broken metadata): still record the run
        return "unknown"


def row_ids(examples: Sequence[Example]) -> list[Any]:
    """The rows' identities, in order. Examples read by the loader carry their source row number (guid):
    those are listed as ``[first, last]`` runs of consecutive numbers (a whole split is one pair); rows
    without one (built in code) are listed by the first characters of their content key."""
    guids = [e.guid for e in examples]
    if not all(isinstance(g, int) and not isinstance(g, bool) for g in guids):
        from backend.data.fingerprint import example_key

        return [example_key(e)[:KEY_CHARS] for e in examples]
    runs: list[list[int]] = []
    for g in guids:
        if runs and g == runs[-1][1] + 1:
            runs[-1][1] = g
        else:
            runs.append([g, g])
    return runs


def expand_rows(ids: Iterable[Any]) -> list[Any]:
    """``row_ids`` back to one identity per row (row numbers, or content keys)."""
    out: list[Any] = []
    for item in ids:
        if isinstance(item, list):
            out.extend(range(int(item[0]), int(item[1]) + 1))
        else:
            out.append(item)
    return out


def save_versions(store: Any, cfg: RunConfig, verb: Verbalizer, author: str = "",
                  project: str | None = None) -> tuple[int, int]:
    """Save (or find) the run's template and verbalizer as versions of its name in the run's project
    (``project``, else the config's); returns their ids."""
    name = cfg.name or "default"
    project = project or cfg.project
    t = store.save_version("template", name, cfg.template, message="used by a run", author=author,
                           project=project)
    v = store.save_version("verbalizer", name, verb.canonical_json(), message="used by a run", author=author,
                           project=project)
    return t.id, v.id


def _source(cfg: RunConfig, trained: bool) -> str:
    d = cfg.data
    if d.dev_fraction is not None:
        from backend.data.splitting import one_source

        return one_source(d)[0]
    return " -> ".join(dict.fromkeys(s for s in (d.train if trained else None, d.eval) if s)) or "?"


def save_snapshot(store: Any, cfg: RunConfig, *, train: Sequence[Example], eval: Sequence[Example],
                  classes: Sequence[str], how: str = "", counts: dict[str, int] | None = None) -> int:
    """The dataset snapshot of exactly these train and eval rows: fingerprinted over both (so equal rows
    find the same snapshot), with row counts, the split made (``how``, ``counts``) and each row's identity."""
    from backend.data.fingerprint import fingerprint

    both = f"train {fingerprint(train, classes)}\neval {fingerprint(eval, classes)}\n"
    row_counts: dict[str, Any] = {"eval": len(eval), "train": len(train),
                                  "eval_rows": row_ids(eval), "train_rows": row_ids(train)}
    if how:
        row_counts.update(split=how, **{f"split_{k}": v for k, v in (counts or {}).items()})
    return store.save_dataset_snapshot(_source(cfg, bool(train)), dict(cfg.data.columns or {}),
                                       hashlib.sha256(both.encode()).hexdigest(), row_counts, list(classes))


@dataclass(frozen=True)
class Lineage:
    """Where a run came from; ``columns()`` is what the run row stores, the rest goes to lineage.json."""

    model_spec: str
    model_id: str
    model_revision: str
    template_version_id: int
    verbalizer_version_id: int
    dataset_snapshot_id: int
    parent_run_id: int | None
    code_version: str
    device: str          # "cpu", "cuda:0" ...
    dtype: str           # the weights': "float32", "bfloat16" ...
    autocast: str        # mixed precision a training ran under: "no", "bf16", "fp16"

    def columns(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "model_revision": self.model_revision,
                "template_version_id": self.template_version_id,
                "verbalizer_version_id": self.verbalizer_version_id,
                "dataset_snapshot_id": self.dataset_snapshot_id}


def _named(value: Any) -> str:
    """A device or dtype as records name it (``torch.bfloat16`` -> ``bfloat16``); "unknown" when absent."""
    return "unknown" if value is None else str(value).removeprefix("torch.")


def lineage(store: Any, cfg: RunConfig, *, loaded: Any, verbalizer: Verbalizer, train: Sequence[Example],
            eval: Sequence[Example], classes: Sequence[str], parent_run_id: int | None = None, how: str = "",
            counts: dict[str, int] | None = None, project: str | None = None, autocast: str = "no") -> Lineage:
    """Save the versions and the snapshot a run used and say where it came from (writes no run)."""
    tv, vv = save_versions(store, cfg, verbalizer, project=project)
    snap = save_snapshot(store, cfg, train=train, eval=eval, classes=classes, how=how, counts=counts)
    return Lineage(model_spec=str(getattr(loaded, "spec", "") or cfg.model), model_id=loaded.model_id,
                   model_revision=loaded.revision, template_version_id=tv, verbalizer_version_id=vv,
                   dataset_snapshot_id=snap, parent_run_id=parent_run_id, code_version=code_version(),
                   device=_named(getattr(loaded, "device", None)), dtype=_named(getattr(loaded, "dtype", None)),
                   autocast=autocast)


def create_run(store: Any, cfg: RunConfig, *, method: str, loaded: Any, verbalizer: Verbalizer,
               train: Sequence[Example], eval: Sequence[Example], classes: Sequence[str],
               parent_run_id: int | None = None, tags: Iterable[str] = (), project: str | None = None,
               seed: int | None = None, status: str = "running", how: str = "",
               counts: dict[str, int] | None = None) -> int:
    """Create a run whose model and rows are already loaded (an evaluation), with its whole lineage."""
    project = project or cfg.project
    lin = lineage(store, cfg, loaded=loaded, verbalizer=verbalizer, train=train, eval=eval, classes=classes,
                  parent_run_id=parent_run_id, how=how, counts=counts, project=project)
    run_id = store.create_run(cfg.to_dict(), method=method, seed=seed, parent_run_id=parent_run_id,
                              tags=list(tags), status=status, project=project, **lin.columns())
    _attach(store, run_id, lin)
    return run_id


def record_started(store: Any, run_id: int, cfg: RunConfig, *, loaded: Any, verbalizer: Verbalizer,
                   train: Sequence[Example], eval: Sequence[Example], classes: Sequence[str], how: str = "",
                   counts: dict[str, int] | None = None, autocast: str = "no") -> Lineage:
    """Write the lineage of a run created before its model and rows were loaded (queued: studio train,
    re-run, CLI train, resume, sweep, worker), once its process has loaded them: the model id and
    revision actually loaded replace the config's model name."""
    run = store.get_run(run_id)
    lin = lineage(store, cfg, loaded=loaded, verbalizer=verbalizer, train=train, eval=eval, classes=classes,
                  parent_run_id=run.parent_run_id, how=how, counts=counts, project=run.project, autocast=autocast)
    store.set_lineage(run_id, **lin.columns())
    _attach(store, run_id, lin)
    return lin


def _attach(store: Any, run_id: int, lin: Lineage) -> None:
    doc = json.dumps(asdict(lin), indent=2, sort_keys=True).encode()
    store.attach_artifact(run_id, LINEAGE_KIND, LINEAGE_NAME, doc)


def read_lineage(store: Any, run_id: int) -> dict[str, Any] | None:
    """A run's lineage.json, or None for a run recorded before lineage existed."""
    for art in store.list_artifacts(run_id):
        if (art.kind, art.name) == (LINEAGE_KIND, LINEAGE_NAME):
            return json.loads(store.read_artifact(art.sha256))
    return None


code_version()   # the code this process imported is the code its runs run
