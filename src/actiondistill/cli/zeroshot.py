"""`zeroshot`: real-time zero-shot action recognition on a video file or a webcam with the user's own labels.

Predictions are printed as they are emitted (one line each) and the FPS/latency summary at the end; with
`--json` (no path) nothing is printed live and the JSON holds `predictions` and `stats`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HELP = "zero-shot action recognition on a video file or webcam with free-text labels, streamed in real time"

DEFAULT_MODEL = "actionclip-meanp"
DEFAULT_BACKBONE = "embedded-tiny"
DEFAULT_FRAMES = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", metavar="FILE", help="a video file, decoded frame by frame")
    source.add_argument("--webcam", type=int, metavar="N", help="an OpenCV camera index (0 is the default camera)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help='comma-separated labels, e.g. "juggling, riding a bike, waving"')
    labels.add_argument("--labels-file", metavar="FILE", help="labels separated by new lines or commas; '#' comments")
    parser.add_argument("--model", help=f"registered video model (default: the checkpoint's, else {DEFAULT_MODEL})")
    parser.add_argument("--backbone", help=f"CLIP backbone name (default: the checkpoint's, else {DEFAULT_BACKBONE})")
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a model build option (YAML value), e.g. fusion_layers=2; repeatable")
    parser.add_argument("--pretrained", help="backbone weights: a file or an open_clip tag")
    parser.add_argument("--checkpoint", metavar="PATH", help="model weights: a Trainer checkpoint (its stored config "
                        "then supplies model, backbone and frames unless given) or a plain state dict")
    parser.add_argument("--frames", type=int, help=f"frames per window (default: the model's, else {DEFAULT_FRAMES})")
    parser.add_argument("--stride", type=int, default=4, help="emit a prediction every N frames (default 4)")
    parser.add_argument("--topk", type=int, default=3, help="labels shown per prediction (default 3)")
    parser.add_argument("--smoothing", type=float, help="EMA factor in (0, 1] on the probabilities (default: none)")
    parser.add_argument("--max-frames", type=int, help="stop after N frames (default: until the source ends)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds without a frame before the source counts as stalled (default 5)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice); one frame at a "
                        "time gains little from more, and on a busy machine 1 is often fastest")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> dict:
    import torch
    from tqdm.auto import tqdm

    from actiondistill.models import create_model, load_weights
    from actiondistill.realtime import StreamingRecognizer, parse_labels, video_source, webcam_source

    labels = parse_labels(_label_text(args))
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: expected >= 1")
        torch.set_num_threads(args.threads)
    weights, stored = _read_checkpoint(args.checkpoint) if args.checkpoint else (None, {})
    spec = _model_spec(args, stored)
    model = create_model(spec["name"], backbone=spec["backbone"], num_frames=spec["num_frames"],
                         pretrained=args.pretrained, **spec["kwargs"])
    if weights is not None:
        load_weights(model, weights, origin=str(args.checkpoint), fmt="trainer checkpoint")
    elif args.checkpoint:
        load_weights(model, args.checkpoint)
    recognizer = StreamingRecognizer(model, labels, num_frames=args.frames, stride=args.stride,
                                     smoothing=args.smoothing, device=args.device, topk=args.topk)
    if args.video is not None:
        source, source_name = video_source(args.video, timeout=args.timeout), str(args.video)
    else:
        source, source_name = webcam_source(args.webcam, timeout=args.timeout), f"webcam {args.webcam}"
    live = args.json != "-"

    def show(prediction) -> None:
        tqdm.write(format_prediction(prediction.to_dict()), file=sys.stdout)

    result = recognizer.run(source, max_frames=args.max_frames, on_prediction=show if live else None,
                            progress=not args.no_progress)
    return {
        "source": source_name,
        "model": spec["name"],
        "backbone": spec["backbone"],
        "checkpoint": args.checkpoint,
        "labels": labels,
        "num_frames": recognizer.num_frames,
        "stride": recognizer.stride,
        "smoothing": recognizer.smoothing,
        "threads": torch.get_num_threads(),
        "predictions": [p.to_dict() for p in result.predictions],
        "stats": result.stats,
    }


def format_prediction(prediction: dict) -> str:
    """One emission as a line: time, frame index, top-k labels with probabilities."""
    top = " | ".join(f"{label} {prob:.2f}" for label, prob in prediction["topk"])
    return f"[{prediction['time_s']:8.2f} s] frame {prediction['frame']:6d}  {top}"


def format_text(result: dict) -> str:
    """The summary; the prediction lines were printed live while the stream ran."""
    s = result["stats"]
    if not s["frames"]:
        return f"{result['source']}: no frames processed ({s['stopped']})"
    fuse = f"{s['fuse_ms']:.1f} ms" if s["fuse_ms"] is not None else "n/a"
    text = (f"{s['predictions']} predictions over {s['frames']} frames from {result['source']} "
            f"({result['model']} on {result['backbone']}, {result['num_frames']}-frame windows, stride "
            f"{result['stride']}): {s['fps']:.1f} FPS, latency p50 {s['latency_p50_ms']:.1f} ms / p90 "
            f"{s['latency_p90_ms']:.1f} ms per frame (encode {s['encode_ms']:.1f} ms, fuse {fuse}, source "
            f"{s['source_ms']:.1f} ms); stopped: {s['stopped']}")
    if s["dropped"]:
        text += f"; {s['dropped']} frames dropped (the model was slower than the camera)"
    return text


def _label_text(args: argparse.Namespace) -> str:
    if args.labels is not None:
        return args.labels
    path = Path(args.labels_file)
    if not path.is_file():
        raise FileNotFoundError(f"--labels-file {path}: no such file")
    return path.read_text(encoding="utf-8")


def _model_options(items: list[str]) -> dict[str, Any]:
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--model-option {item!r}: expected KEY=VALUE, e.g. fusion_layers=2")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return options


def _read_checkpoint(path: str) -> tuple[Mapping | None, dict[str, Any]]:
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


def _model_spec(args: argparse.Namespace, stored: dict[str, Any]) -> dict[str, Any]:
    """Model name, backbone, build options and frames: the command line first, then the checkpoint's config."""
    model_cfg = stored.get("model") if isinstance(stored.get("model"), dict) else {}
    data_cfg = stored.get("data") if isinstance(stored.get("data"), dict) else {}
    name = args.model or model_cfg.get("name") or DEFAULT_MODEL
    same_model = args.model is None or args.model == model_cfg.get("name")
    kwargs = dict(model_cfg.get("kwargs") or {}) if same_model else {}
    kwargs.update(_model_options(args.model_option))
    return {
        "name": name,
        "backbone": args.backbone or model_cfg.get("backbone") or DEFAULT_BACKBONE,
        # the model is built at the trained length (its temporal weights are sized by it); --frames sets the window
        "num_frames": int(data_cfg.get("num_frames") or args.frames or DEFAULT_FRAMES),
        "kwargs": kwargs,
    }
