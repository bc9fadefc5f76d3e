"""RunConfig: the one schema the studio, the CLI, the job runner and storage share.

A run is reproducible from its config alone. Parsing is strict: an unknown key or a value of the wrong
type is reported by its dotted path (``data.shots: expected an integer, got 'sixteen'``), never ignored.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from backend.errors import ConfigError

METHODS = ("zero-shot", "soft-prompt", "prompt-tuning", "p-tuning", "prefix-tuning", "lora", "ia3",
           "adapter", "bitfit", "full")


@dataclass
class DataConfig:
    train: str | None = None
    eval: str | None = None
    eval_split: str | None = None
    train_split: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    label_names: list[str] | None = None
    shots: int | None = None
    seed: int = 13
    limit: int | None = None


@dataclass
class EvalOptions:
    batch_size: int = 32
    calibration: str | None = None          # None | "content-free" | "support"
    top_k: int = 0
    precision_at: list[int] = field(default_factory=list)


@dataclass
class TrainOptions:
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 8
    lr: float | None = None                 # None: the method's default
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    grad_accum: int = 1
    # Split each batch into chunks of at most this many padded tokens and accumulate their gradients:
    # the same optimizer step with fewer activations held. None: 512 on CPU, no split on GPU; 0: never.
    micro_batch_tokens: int | None = None
    max_grad_norm: float = 1.0
    eval_every: int | None = None
    eval_limit: int | None = None
    early_stopping: int | None = None       # patience in evaluations
    metric: str = "accuracy"
    output_dir: str | None = None
    seed: int = 42
    seeds: list[int] | None = None
    mixed_precision: str | None = None      # None: bf16/fp16 on CUDA, fp32 on CPU


@dataclass
class MethodConfig:
    name: str = "zero-shot"
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass
class RunConfig:
    model: str = "smollm2-135m-instruct"
    data: DataConfig = field(default_factory=DataConfig)
    template: str = ""
    verbalizer: Any = None                  # {class: [words]} | [[words], ...] | {"label_words": ..} | "labels" | file
    max_length: int = 256
    truncate: str = "tail"
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainOptions = field(default_factory=TrainOptions)
    eval: EvalOptions = field(default_factory=EvalOptions)
    name: str | None = None
    tags: list[str] = field(default_factory=list)

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
            if name not in METHODS:
                raise ConfigError(f"method.name: unknown method {name!r}; choose one of {', '.join(METHODS)}")
            cfg.method = MethodConfig(name=name, options=opts)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["method"] = self.method.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def validate(self) -> None:
        if not self.template.strip():
            raise ConfigError("template: missing (e.g. \"{text_a} It was {mask}.\")")
        if self.truncate not in ("tail", "head", "balanced"):
            raise ConfigError(f"truncate: must be tail, head or balanced, not {self.truncate!r}")
        if self.max_length < 8:
            raise ConfigError("max_length: must be at least 8")
        if self.verbalizer is None:
            raise ConfigError("verbalizer: missing (e.g. {\"negative\": [\"bad\"], \"positive\": [\"good\"]})")
        if not (self.data.eval or self.data.train):
            raise ConfigError("data: give at least data.eval (or data.train) — a file, builtin:NAME or hub id")
        if self.data.shots is not None and self.data.shots < 1:
            raise ConfigError("data.shots: must be at least 1")
        if self.eval.calibration not in (None, "content-free", "support"):
            raise ConfigError("eval.calibration: must be content-free, support or null")


def load_config(path: str | Path) -> RunConfig:
    """Read a RunConfig from a .json or .yaml/.yml file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {str(p)!r}: {exc.strerror or exc}") from None
    if p.suffix in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(f"{p.name} is not valid YAML: {getattr(exc, 'problem', exc)}",
                              row=(mark.line + 1) if mark else None) from None
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p.name} is not valid JSON: {exc.msg}", row=exc.lineno) from None
    return RunConfig.from_dict(raw)


# ---------------------------------------------------------------------------------------- helpers

def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "an object"}
    origin = get_origin(tp) or tp
    return names.get(origin, getattr(origin, "__name__", str(origin)))


def _check(value: Any, tp: Any, path: str) -> Any:
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Union or str(origin) == "<class 'types.UnionType'>" or type(tp).__name__ == "UnionType":
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(value, a, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConfigError(f"{path}: must not be null")
    base = origin or tp
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, bool):
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if isinstance(base, type) and not isinstance(value, base):
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if base is list:
        (item,) = get_args(tp) or (Any,)
        return [_check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = [k for k in raw if k not in known]
    if unknown:
        import difflib

        k = unknown[0]
        close = difflib.get_close_matches(k, known, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known))})"
        raise ConfigError(f"{prefix}{k}: unknown key{hint}")
    kwargs = {}
    for name, value in raw.items():
        tp = hints[name]
        path = f"{prefix}{name}"
        if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected an object")
            kwargs[name] = _build(tp, value, path + ".")
        else:
            kwargs[name] = _check(value, tp, path)
    return cls(**kwargs)
