"""`zeroshot`: real-time zero-shot action recognition on a video file or a webcam with the user's own labels.

Predictions are printed as they are emitted (one line each) and the FPS/latency summary at the end; with
`--json` (no path) nothing is printed live and the JSON holds `predictions` and `stats`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actiondistill.cli._model_args import DEFAULT_FRAMES, add_model_arguments, build_model

HELP = "zero-shot action recognition on a video file or webcam with free-text labels, streamed in real time"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", metavar="FILE", help="a video file, decoded frame by frame")
    source.add_argument("--webcam", type=int, metavar="N", help="an OpenCV camera index (0 is the default camera)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help='comma-separated labels, e.g. "juggling, riding a bike, waving"')
    labels.add_argument("--labels-file", metavar="FILE", help="labels separated by new lines or commas; '#' comments")
    add_model_arguments(parser, f"frames per window (default: the model's, else {DEFAULT_FRAMES})")
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

    from actiondistill.realtime import StreamingRecognizer, parse_labels, video_source, webcam_source

    labels = parse_labels(_label_text(args))
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: expected >= 1")
        torch.set_num_threads(args.threads)
    model, spec = build_model(args)
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
