"""RunConfig: the one schema the studio, the CLI, the job runner and storage share.

A run is reproducible from its config alone. Parsing is strict: an unknown key or a value of the wrong
type is reported by its dotted path (``data.shots: expected an integer, got 'sixteen'``), never ignored.
Every number declares its range and every enumeration its choices on the field (``metadata``, checked by
``backend.schema.check``), and the method's options are checked against the method's own declarations
(its class in ``backend.methods.REGISTRY``, which imports no torch), so a config that parses is one a
worker can start — whoever submitted it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from backend.choices import CPU_MEMORY_MODES, DEFAULT_MODEL, DEMO_SELECTIONS, EVAL_DTYPES, TRUNCATE_METHODS
from backend.data.readers import SPLIT_NAME, SPLIT_RULE
from backend.errors import ConfigError
from backend.methods import get_method
from backend.schema import check, unknown_key

# Ranges are declared on each field (``metadata``) and checked by ``_build`` at parse time; see backend.schema.
PATH = {"path": True}                       # a file, folder, builtin:NAME or hub id
SEED = {"min": 0, "max": 2 ** 32 - 1}       # what numpy and torch accept as a seed
# The one seed of a project: K-shot sampling, the train / dev split and training all start from it unless a
# config sets data.seed and train.seed apart (they once defaulted to 13 and 42, which nobody could see).
DEFAULT_SEED = 13
COUNT = 1_000_000_000                       # examples
CALIBRATIONS = ("content-free", "support")
METRICS = ("accuracy", "macro_f1")          # what evaluate() reports and early stopping can maximise

# The built-in demo run (``python -m backend eval demo``); the studio's demo project opens on the same prompt.
DEMO_CONFIG: dict[str, Any] = {
    "model": DEFAULT_MODEL,
    "data": {"eval": "builtin:movie-reviews", "eval_split": "dev", "train": "builtin:movie-reviews",
             "train_split": "train"},
    "template": ("<|im_start|>user\nIs this movie review positive or negative? Answer with one word.\n"
                 "{text_a}<|im_end|>\n<|im_start|>assistant\n{mask}"),
    "verbalizer": {"negative": ["Negative"], "positive": ["Positive"]},
    "max_length": 256,
    "method": {"name": "zero-shot"},
    "eval": {"calibration": "content-free"},
    "name": "demo",
}


@dataclass
class DataConfig:
    train: str | None = field(default=None, metadata=PATH)
    eval: str | None = field(default=None, metadata=PATH)
    # A split names the file <split>.<ext> in the dataset's folder: a plain name, never a path (a config comes
    # from a browser too, and "../x" or "/x" would read any data file on the server; the reader checks again).
    eval_split: str | None = field(default=None, metadata={"max_len": 100, "pattern": SPLIT_NAME, "why": SPLIT_RULE})
    train_split: str | None = field(default=None, metadata={"max_len": 100, "pattern": SPLIT_NAME, "why": SPLIT_RULE})
    columns: dict[str, Any] = field(default_factory=dict)
    label_names: list[str] | None = field(default=None, metadata={"max_len": 1000, "max_items": 100_000})
    shots: int | None = field(default=None, metadata={"min": 1, "max": 1_000_000})
    seed: int = field(default=DEFAULT_SEED, metadata=SEED)
    limit: int | None = field(default=None, metadata={"min": 1, "max": COUNT})
    # split one source (data.train == data.eval, or only one given) into train / dev: the dev share, 0..1
    dev_fraction: float | None = field(default=None, metadata={"gt": 0, "lt": 1})


@dataclass
class EvalOptions:
    batch_size: int = field(default=32, metadata={"min": 1, "max": 4096})
    calibration: str | None = field(default=None, metadata={"choices": CALIBRATIONS})   # or None
    top_k: int = field(default=0, metadata={"min": 0, "max": 1000})   # vocabulary top-k at the mask; 0: off
    precision_at: list[int] = field(default_factory=list, metadata={"min": 1, "max": 1000, "max_items": 20})
    # the weights' dtype when an evaluation loads its own model (zero-shot, comparisons); auto: the device's
    dtype: str = field(default="auto", metadata={"choices": EVAL_DTYPES})


@dataclass
class TrainOptions:
    steps: int | None = field(default=None, metadata={"min": 1, "max": 10_000_000})
    epochs: float | None = field(default=None, metadata={"gt": 0, "max": 100_000})
    batch_size: int = field(default=8, metadata={"min": 1, "max": 4096})
    lr: float | None = field(default=None, metadata={"gt": 0, "max": 10})   # None: the method's default
    weight_decay: float = field(default=0.0, metadata={"min": 0, "max": 10})
    warmup_ratio: float = field(default=0.06, metadata={"min": 0, "max": 1})
    grad_accum: int = field(default=1, metadata={"min": 1, "max": 4096})
    # Split each batch into chunks of at most this many padded tokens and accumulate their gradients:
    # the same optimizer step with fewer activations held. None: 512 on CPU, no split on GPU; 0: never.
    micro_batch_tokens: int | None = field(default=None, metadata={"min": 0, "max": 10_000_000})
    # CPU only: "fast" keeps freed activation buffers for the next step, "lean" returns them to the OS (less
    # resident memory, a page fault per 4 KiB touched again); "auto": fast when memory is ample (backend/cpu_memory.py)
    cpu_memory: str = field(default="auto", metadata={"choices": CPU_MEMORY_MODES})
    max_grad_norm: float = field(default=1.0, metadata={"min": 0, "max": 1e6})   # 0: no clipping
    eval_every: int | None = field(default=None, metadata={"min": 1, "max": 10_000_000})
    eval_limit: int | None = field(default=None, metadata={"min": 1, "max": COUNT})
    early_stopping: int | None = field(default=None, metadata={"min": 1, "max": 1_000_000})   # patience in evaluations
    metric: str = field(default="accuracy", metadata={"choices": METRICS})   # higher is better
    output_dir: str | None = field(default=None, metadata=PATH)
    seed: int = field(default=DEFAULT_SEED, metadata=SEED)
    seeds: list[int] | None = field(default=None, metadata={**SEED, "max_items": 100})
    # None: bf16/fp16 on CUDA, fp32 on CPU ("no" is accelerate's name for fp32)
    mixed_precision: str | None = field(default=None, metadata={"choices": ("no", "fp16", "bf16")})


@dataclass
class DemoOptions:
    """In-context demonstrations (LM-BFF) for zero-shot evaluation, shown where the template's
    ``{"demos": K}`` block is; the rows come from the training split only (backend.prompts.demos)."""

    k: int | None = field(default=None, metadata={"min": 0, "max": 16})   # per class; None: the template's K
    selection: str = field(default="random", metadata={"choices": DEMO_SELECTIONS})
    seed: int = field(default=13, metadata=SEED)


@dataclass
class ResourceOptions:
    """What a run asks of the machine that runs it: a Ray cluster places its task by this
    (``backend.jobs.ray_executor``); a local worker runs one run at a time and ignores it. Fractions share."""

    cpus: float = field(default=1.0, metadata={"gt": 0, "max": 1024})
    gpus: float = field(default=0.0, metadata={"min": 0, "max": 64})


@dataclass
class MethodConfig:
    name: str = "zero-shot"
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass
class RunConfig:
    model: str = field(default=DEFAULT_MODEL, metadata=PATH)
    data: DataConfig = field(default_factory=DataConfig)
    template: str = field(default="", metadata={"max_len": 100_000})
    verbalizer: Any = None                  # {class: [words]} | [[words], ...] | {"label_words": ..} | "labels" | file
    max_length: int = field(default=256, metadata={"min": 8, "max": 131_072})
    truncate: str = field(default="tail", metadata={"choices": TRUNCATE_METHODS})
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainOptions = field(default_factory=TrainOptions)
    eval: EvalOptions = field(default_factory=EvalOptions)
    name: str | None = field(default=None, metadata={"max_len": 1000})
    # The project the run is recorded in, and whose template / verbalizer names ``name`` is looked up in
    # (None: the default project; ``--project`` on the command line overrides it).
    project: str | None = field(default=None, metadata={"max_len": 64})
    tags: list[str] = field(default_factory=list, metadata={"max_len": 200, "max_items": 100})
    resources: ResourceOptions = field(default_factory=ResourceOptions)
    demos: DemoOptions = field(default_factory=DemoOptions)
    # Which sweep and configuration this run is ({"name", "key", "params", "early_stop"}, backend.sweeps):
    # it changes nothing about what runs, but a sweep's table is rebuilt from stored runs alone.
    sweep: dict[str, Any] | None = None

    # ------------------------------------------------------------------ (de)serialisation

    @classmethod
    def from_dict(cls, raw: Any) -> "RunConfig":
        if not isinstance(raw, dict):
            raise ConfigError("the config must be a JSON/YAML object")
        raw = dict(raw)
        method = raw.pop("method", None)
        cfg = _build(cls, raw, "")
        if method is not None:
            if isinstance(method, str):
                method = {"name": method}
            if not isinstance(method, dict) or not isinstance(method.get("name", "zero-shot"), str):
                raise ConfigError("method: expected an object like {\"name\": \"lora\", \"r\": 8}")
            opts = dict(method)
            name = opts.pop("name", "zero-shot")
            # Checked here, not first in the worker: a run that cannot start is never queued.
            get_method(name).parse_options(opts)
            cfg.method = MethodConfig(name=name, options=opts)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["method"] = self.method.to_dict()
        if d["project"] is None:    # a config that names no project keeps the shape it always had
            del d["project"]
        if self.resources == ResourceOptions():     # the default request keeps the config it always had
            del d["resources"]
        if self.demos == DemoOptions():     # a run without demonstration options keeps the config it had
            del d["demos"]
        if d["sweep"] is None:      # a run outside any sweep keeps the config it always had
            del d["sweep"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def validate(self) -> None:
        """Rules across fields (each field's own range is checked by ``_build`` as it is read), the template
        compiled and the label words read (pure, no tokenizer): a run whose template or words cannot work is
        never queued nor recorded, whichever way it came (CLI, studio, sweep, a config re-run as JSON), and
        the CLI says so before the seconds of importing torch."""
        if not self.template.strip():
            raise ConfigError("template: missing (e.g. \"{text_a} It was {mask}.\")")
        from backend.prompts.parse import parse_template
        from backend.prompts.template import compile_template

        parsed = parse_template(self.template)    # a TemplateError with the span of the mistake
        compile_template(parsed)
        if self.verbalizer is None:
            raise ConfigError("verbalizer: missing (e.g. {\"negative\": [\"bad\"], \"positive\": [\"good\"]})")
        if not isinstance(self.verbalizer, str):   # a file, or a probing mode, is read where the run starts
            from backend.prompts.verbalizer import parse_verbalizer

            parse_verbalizer(self.verbalizer)   # a class without words, a word that is not text: said now
        if not (self.data.eval or self.data.train):
            raise ConfigError("data: give at least data.eval (or data.train) — a file, builtin:NAME or hub id")
        if self.project is not None:
            from storage import InvalidInput, check_project_name

            try:
                check_project_name(self.project)
            except InvalidInput as exc:
                raise ConfigError(f"project: {exc.message}", field="project") from None
        if self.demos.k and self.method.name != "zero-shot":
            raise ConfigError(f"demos.k: demonstrations are shown in zero-shot evaluation only, not with method "
                              f"{self.method.name!r}; set demos.k to 0 or use method zero-shot")
        if self.method.name != "zero-shot" and self.demos.k is None:
            block = parsed.demos
            if block is not None and block.value:
                raise ConfigError(f"template: its demonstrations block ({{\"demos\": {block.value}}}) is shown in "
                                  f"zero-shot evaluation only, not with method {self.method.name!r}; remove it or "
                                  "set demos.k to 0")


def load_config(path: str | Path) -> RunConfig:
    """Read a RunConfig from a .json or .yaml/.yml file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")   # a BOM (Notepad's UTF-8) is not part of the config
    except OSError as exc:
        raise ConfigError(f"cannot read config {str(p)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p.name} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                          "save it as UTF-8") from None
    if p.suffix in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.load(text, Loader=yaml_loader())     # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(f"{p.name} is not valid YAML: {getattr(exc, 'problem', exc)}",
                              row=(mark.line + 1) if mark else None) from None
        except (ValueError, RecursionError) as exc:    # a 5,000-digit number; nesting deeper than the stack
            raise ConfigError(f"{p.name} cannot be read: {_reason(exc)}") from None
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p.name} is not valid JSON: {exc.msg}", row=exc.lineno) from None
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{p.name} cannot be read: {_reason(exc)}") from None
    return RunConfig.from_dict(raw)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if "integer string conversion" in str(exc):
        return "it holds a number with thousands of digits"
    return str(exc).split("\n")[0][:200]


# ---------------------------------------------------------------------------------------- helpers

def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    meta = {f.name: f.metadata for f in fields(cls)}
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise ConfigError(f"{prefix}{unknown_key(unknown[0], known)}")
    kwargs = {}
    for name, value in raw.items():
        tp = hints[name]
        path = f"{prefix}{name}"
        if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected an object")
            kwargs[name] = _build(tp, value, path + ".")
        else:
            kwargs[name] = check(value, tp, path, meta[name])
    return cls(**kwargs)


def yaml_loader() -> Any:
    """PyYAML's SafeLoader, reading ``1e-3`` as the number YAML 1.2 says it is (YAML 1.1 wants ``1.0e-3``
    and reads the way everyone writes a learning rate as text). Every YAML the product reads (run
    configs, sweep specs, the sweep designer's option values) goes through it, so ``lr: 1e-3`` means
    the same number everywhere."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
                   r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
        list("-+0123456789."))
    return Loader
