"""Run configuration: typed dataclasses loaded from YAML and overridable as `key=value` on the command line.

One config object describes a whole run (data, model, optimiser, objective, teachers, evaluation), so that a
chapter, the CLI and a torchrun job on a cluster train exactly the same thing, and the results record can store
the full config beside the numbers. Validation is strict: a misspelt key or a wrong type fails at load time,
naming the file (or the override) and the key path, instead of silently training with a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataConfig:
    """Where clips come from and how they are sampled.

    `dataset` picks a builder registered with `actiondistill.train.register_dataset`; `hmdb51` / `ucf101` read
    the official split `fold` (1-3) under `root` (default data/<dataset>), with the split names "train" and
    "test"; any other name (the default `synthactions`) reads `manifest` (a manifest.json or its folder; relative
    paths are under data/) with `VideoDataset.from_manifest`. `batch_size` is per process (under torchrun the
    global batch is batch_size x processes x optim.grad_accum).
    `eval_split` (validation during training) may be null. `sampler` is the FrameSampler kind (tsn, dense,
    uniform). `time_reversal` plays each training clip backwards with this probability and swaps its label for the
    reversed action's (`engine.time_reversal`; SynthActions only, whose every action has a reversal). `kwargs`
    passes extra options on: {"sampler": {...}, "train_transform": {...}, "eval_transform": {...}, "dataset": {...}}
    (e.g. `data.kwargs.train_transform.hue=0` where colour is a label).
    """

    dataset: str = "synthactions"
    manifest: str | None = None
    root: str | None = None
    fold: int = 1
    train_split: str = "train"
    eval_split: str | None = "val"
    test_split: str = "test"
    zeroshot_split: str = "zeroshot"
    num_frames: int = 8
    sampler: str = "tsn"
    size: int = 224
    batch_size: int = 8
    num_workers: int = 0
    flip: bool = True
    time_reversal: float = 0.0
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """A video model from the registry; `checkpoint` loads weights after construction (a Trainer checkpoint or a
    bare state dict), `pretrained` is the backbone's pretrained tag or file."""

    name: str = "actionclip-meanp"
    backbone: str = "embedded-tiny"
    pretrained: str | None = None
    checkpoint: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """AdamW + cosine schedule with linear warm-up; defaults are ActionCLIP's (REFERENCE.md)."""

    lr: float = 5e-6
    fusion_lr_mult: float = 10.0
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup_epochs: float = 5.0
    min_lr_ratio: float = 0.0
    grad_accum: int = 1
    clip_grad: float | None = None
    amp: bool = True
    amp_dtype: str = "float16"


@dataclass
class ObjectiveConfig:
    """The training step's loss, by registry name (`actiondistill.engine.objectives`), with its keyword args."""

    name: str = "actionclip"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TeacherConfig:
    """A frozen teacher; `cache_outputs` stores its logits on disk (only for deterministic, eval-style inputs)."""

    name: str = "teacher"
    model: ModelConfig = field(default_factory=ModelConfig)
    cache_outputs: bool = False


@dataclass
class EvalConfig:
    """Validation during training (every `every` epochs and after the last; `monitor` picks best.pt: top1, top5,
    mean_class_acc, or nll where lower is better) and multi-view testing: `clips` clips per video, averaged
    (needs data.sampler=dense, which samples them as consecutive clips). `batch_size` defaults to data's."""

    every: int = 1
    batch_size: int | None = None
    clips: int = 1
    monitor: str = "top1"


@dataclass
class DistributedConfig:
    """torchrun settings; the backend defaults to nccl on CUDA and gloo on CPU."""

    backend: str | None = None
    find_unused_parameters: bool = False


@dataclass
class TrainConfig:
    """Everything that determines one training run.

    `run_name` names the results record (default "<model>-<dataset>-seed<seed>"); `out_dir` holds checkpoints and
    logs (default data/runs/<run_name>); `results_dir` receives the record (default data/results); `device` is
    "auto" (the local GPU under torchrun, else the CPU), "cpu" or "cuda[:N]".
    """

    seed: int = 0
    run_name: str | None = None
    out_dir: str | None = None
    results_dir: str | None = None
    device: str = "auto"
    epochs: int = 10
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    teachers: list[TeacherConfig] = field(default_factory=list)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (or start from the defaults when `path` is None) and apply `key=value` overrides.

    Overrides use dotted key paths (`optim.lr=1e-4`, `teachers.0.cache_outputs=true`, `model.kwargs.depth=2`);
    each value is parsed with `yaml.safe_load`, so `true`, `16`, `[0.9, 0.98]` and `{a: 1}` work. PyYAML reads
    `1e-4` (no dot) as a string: float fields accept such numeric strings, in files and overrides alike.
    """
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such config file (expected a YAML file)")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{p}: not valid YAML ({err})") from err
        if not isinstance(raw, dict):
            raise ValueError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    cfg = from_dict(raw, source=source)
    for text in overrides:
        cfg = apply_override(cfg, text)
    return cfg


def apply_override(cfg: TrainConfig, text: str) -> TrainConfig:
    """Return a new config with one `dotted.key=value` override applied and validated."""
    if "=" not in text:
        raise ValueError(f"override {text!r}: expected key=value (e.g. optim.lr=1e-4)")
    key, value_text = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as err:
        raise ValueError(f"override {text!r}: value is not valid YAML ({err})") from err
    data = to_dict(cfg)
    _set_path(data, key.split("."), value, source=f"override {text!r}")
    return from_dict(data, source=f"override {text!r}")


def _set_path(node: Any, parts: list[str], value: Any, source: str) -> None:
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"{source}: {where}: expected a list index below {len(node)}")
            index = int(part)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if part not in node:
                    raise ValueError(f"{source}: unknown key {where}")
                node = node[part]
        else:
            raise ValueError(f"{source}: {'.'.join(parts[:depth])} is a {type(node).__name__}, it has no key {part}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) for YAML/JSON and checkpoints; `from_dict(to_dict(c)) == c`."""
    return _plain(dataclasses.asdict(cfg))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def from_dict(data: dict[str, Any], source: str = "<dict>", cls: type = TrainConfig) -> Any:
    """Build a config dataclass from a nested dict, rejecting unknown keys and wrong types.

    Errors read "<source>: unknown key optim.lrr" or "<source>: optim.lr: expected float, got str 'abc'".
    """
    return _build(cls, data, source, "")


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "<top level>"
        raise ValueError(f"{source}: {where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ValueError(f"{source}: unknown key {path} (known at this level: {', '.join(sorted(names))})")
        kwargs[key] = _check(hints[key], value, source, path)
    return cls(**kwargs)


def _check(tp: Any, value: Any, source: str, path: str) -> Any:
    """Validate (and lightly coerce) `value` against the annotation `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(arg, value, source, path)
            except ValueError as err:
                errors.append(err)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, source, f"{path}.")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _type_error(source, path, "a list", value)
        return [_check(args[0], v, source, f"{path}.{i}") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _type_error(source, path, f"a list of {len(args)} values", value)
        return tuple(_check(a, v, source, f"{path}.{i}") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(source, path, "a mapping", value)
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(source, path, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(source, path, "an integer", value)
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _type_error(source, path, "a number", value) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(source, path, "a number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(source, path, "a string", value)
        return value
    raise TypeError(f"config annotation {tp!r} at {path} is not supported")


def _type_error(source: str, path: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{source}: {path}: expected {expected}, got {type(value).__name__} {value!r}")


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the config as YAML (atomically), so a run folder says how it was made."""
    from actiondistill.io import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
