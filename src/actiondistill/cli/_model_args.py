"""The video-model options that `zeroshot` and `export` share: which model, on which CLIP, from which weights.

The leading underscore keeps this module out of command discovery (`actiondistill.cli`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

DEFAULT_MODEL = "actionclip-meanp"
DEFAULT_BACKBONE = "embedded-tiny"
DEFAULT_FRAMES = 8


def add_model_arguments(parser: argparse.ArgumentParser, frames_help: str) -> None:
    """--model, --backbone, --model-option, --pretrained, --checkpoint and --frames (described by `frames_help`)."""
    parser.add_argument("--model", help=f"registered video model (default: the checkpoint's, else {DEFAULT_MODEL})")
    parser.add_argument("--backbone", help=f"CLIP backbone name (default: the checkpoint's, else {DEFAULT_BACKBONE})")
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a model build option (YAML value), e.g. fusion_layers=2; repeatable")
    parser.add_argument("--pretrained", help="backbone weights: a file or an open_clip tag")
    parser.add_argument("--checkpoint", metavar="PATH", help="model weights: a Trainer checkpoint (its stored config "
                        "then supplies model, backbone and frames unless given) or a plain state dict")
    parser.add_argument("--frames", type=int, help=frames_help)


def build_model(args: argparse.Namespace, num_frames: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(the model, its spec) from the options above; `num_frames` overrides the length it is built at."""
    from actiondistill.models import create_model, load_weights

    weights, stored = read_checkpoint(args.checkpoint) if args.checkpoint else (None, {})
    spec = model_spec(args, stored)
    if num_frames is not None:
        spec["num_frames"] = num_frames
    model = create_model(spec["name"], backbone=spec["backbone"], num_frames=spec["num_frames"],
                         pretrained=args.pretrained, **spec["kwargs"])
    if weights is not None:
        load_weights(model, weights, origin=str(args.checkpoint), fmt="trainer checkpoint")
    elif args.checkpoint:
        load_weights(model, args.checkpoint)
    return model, spec


def model_options(items: list[str]) -> dict[str, Any]:
    """`--model-option KEY=VALUE` items as a dict, values read as YAML."""
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--model-option {item!r}: expected KEY=VALUE, e.g. fusion_layers=2")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return options


def read_checkpoint(path: str) -> tuple[Mapping | None, dict[str, Any]]:
    """(the model state of a Trainer checkpoint, its stored config) or (None, {}) for plain weight files,
    which `load_weights` reads itself (state dicts, TinyCLIP wrappers, OpenAI archives, safetensors)."""
    from actiondistill.engine.checkpoint import load_checkpoint
    from actiondistill.models import checkpoint_format

    if checkpoint_format(path) != "state_dict":
        return None, {}
    raw = load_checkpoint(path)
    if isinstance(raw, Mapping) and isinstance(raw.get("model"), Mapping):
        config = raw.get("config")
        return raw["model"], config if isinstance(config, dict) else {}
    return None, {}


def model_spec(args: argparse.Namespace, stored: dict[str, Any]) -> dict[str, Any]:
    """Model name, backbone, build options and frames: the command line first, then the checkpoint's config."""
    model_cfg = stored.get("model") if isinstance(stored.get("model"), dict) else {}
    data_cfg = stored.get("data") if isinstance(stored.get("data"), dict) else {}
    name = args.model or model_cfg.get("name") or DEFAULT_MODEL
    same_model = args.model is None or args.model == model_cfg.get("name")
    kwargs = dict(model_cfg.get("kwargs") or {}) if same_model else {}
    kwargs.update(model_options(args.model_option))
    return {
        "name": name,
        "backbone": args.backbone or model_cfg.get("backbone") or DEFAULT_BACKBONE,
        # the model is built at the trained length (its temporal weights are sized by it); --frames sets the window
        "num_frames": int(data_cfg.get("num_frames") or args.frames or DEFAULT_FRAMES),
        "kwargs": kwargs,
    }
