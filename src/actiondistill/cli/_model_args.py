"""The video-model options that `zeroshot` and `export` share: which model, on which CLIP, from which weights.

The leading underscore keeps this module out of command discovery (`actiondistill.cli`).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from actiondistill.book_models import ROLES, WeightsChoice, book_weights, checkpoint_choice, knowledge_of

DEFAULT_MODEL = "actionclip-meanp"
DEFAULT_BACKBONE = "embedded-tiny"
DEFAULT_FRAMES = 8
RANDOM_WARNING = "WARNING: random weights (--random-weights): the predictions mean nothing"


def add_model_arguments(parser: argparse.ArgumentParser, frames_help: str) -> None:
    """--model, --backbone, --model-option, the weights (--checkpoint, --pretrained, --book-model, --profile,
    --random-weights) and --frames (described by `frames_help`)."""
    parser.add_argument("--model", help=f"registered video model (default: the weights' own, else {DEFAULT_MODEL})")
    parser.add_argument("--backbone", help=f"CLIP backbone name (default: the weights' own, else {DEFAULT_BACKBONE})")
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a model build option (YAML value), e.g. fusion_layers=2; repeatable")
    weights = parser.add_argument_group("weights (default: the book's trained student; see the README)")
    weights.add_argument("--checkpoint", metavar="PATH", help="model weights: a run folder, a chapter record (.json), "
                         "a Trainer checkpoint or a state dict; a run's config.yaml supplies model, backbone, options "
                         "and frames unless given")
    weights.add_argument("--pretrained", help="backbone weights only (a file or an open_clip tag, e.g. real CLIP "
                         "weights placed under data/checkpoints/); the temporal head starts untrained")
    weights.add_argument("--book-model", choices=sorted(ROLES), default="student",
                         help="which of the book's trained models to use when no weights are given (default student)")
    weights.add_argument("--profile", default="embedded", help="the book profile whose trained model to use "
                         "(default embedded)")
    weights.add_argument("--random-weights", action="store_true", help="run untrained random weights (speed tests "
                         "only: the predictions mean nothing)")
    parser.add_argument("--frames", type=int, help=frames_help)


def choose_weights(args: argparse.Namespace) -> WeightsChoice:
    """The weights the options ask for: --checkpoint, else --pretrained, else --random-weights, else the book's."""
    given = [flag for flag, on in (("--checkpoint", args.checkpoint), ("--random-weights", args.random_weights)) if on]
    if len(given) > 1 or (args.random_weights and args.pretrained):
        raise ValueError(f"{' and '.join(given + (['--pretrained'] if args.pretrained else []))}: expected one "
                         "source of weights")
    if args.checkpoint:
        return checkpoint_choice(args.checkpoint)
    if args.pretrained:
        return WeightsChoice("pretrained backbone", None, knows=f"backbone weights {args.pretrained}, temporal head "
                             "untrained")
    if args.random_weights:
        return WeightsChoice("random", None, knows=RANDOM_WARNING)
    try:
        return book_weights(args.book_model, args.profile)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--book-model {args.book_model} --profile {args.profile}: no trained model yet "
                                f"({err}); or pass --checkpoint PATH, --pretrained FILE|TAG or --random-weights"
                                ) from None


def build_model(args: argparse.Namespace, num_frames: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(the model, its spec) from the options above; `num_frames` overrides the length it is built at.

    The spec's "weights" is the `WeightsChoice`, whose `summary()` the commands record."""
    from actiondistill.models import create_model, load_weights

    choice = choose_weights(args)
    weights, stored = (None, choice.stored)
    if choice.file is not None and not stored:
        weights, stored = read_checkpoint(str(choice.file))
        if stored:
            choice.knows = knowledge_of(stored)
    spec = model_spec(args, stored)
    if choice.source.startswith("book "):
        _check_book_model(args, stored, choice)
    if num_frames is not None:
        spec["num_frames"] = num_frames
    try:
        model = create_model(spec["name"], backbone=spec["backbone"], num_frames=spec["num_frames"],
                             pretrained=args.pretrained, **spec["kwargs"])
    except TypeError as err:  # an option the model's constructor does not take, or a value of the wrong type
        options = " ".join(f"--model-option {item}" for item in args.model_option) or "the stored model options"
        raise ValueError(f"{options}: not accepted by {spec['name']} ({err})") from None
    if weights is not None:
        load_weights(model, weights, origin=str(choice.file), fmt="trainer checkpoint")
    elif choice.file is not None:
        load_weights(model, choice.file)
    spec["weights"] = choice
    return model, spec


def _check_book_model(args: argparse.Namespace, stored: Mapping[str, Any], choice: WeightsChoice) -> None:
    """The book's weights fit one model on one backbone: asking for another is a clear error, not a key dump."""
    model_cfg = stored.get("model") if isinstance(stored.get("model"), Mapping) else {}
    for flag, asked, key in (("--model", args.model, "name"), ("--backbone", args.backbone, "backbone")):
        if asked is not None and asked != model_cfg.get(key):
            raise ValueError(f"{flag} {asked}: the {choice.source} is {model_cfg.get('name')} on "
                             f"{model_cfg.get('backbone')}; leave {flag} out, or pass --checkpoint PATH, --pretrained "
                             "FILE|TAG or --random-weights")


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
