"""`zeroshot`: real-time zero-shot action recognition on a video file or a webcam with the user's own labels.

Predictions are printed as they are emitted (one line each) and the FPS/latency summary at the end; with
`--json` (no path) nothing is printed live and the JSON holds `predictions` and `stats`. `--runtime` runs the image
encoder, the per-frame cost, on a faster runtime after checking it against eager fp32 (`export.frame_runtime`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actiondistill.cli._model_args import DEFAULT_FRAMES, RANDOM_WARNING, add_model_arguments, build_model

HELP = "zero-shot action recognition on a video file or webcam with free-text labels, streamed in real time"
# export.FRAME_RUNTIMES, without importing torch
RUNTIMES = ("eager", "compile", "onnx", "onnx-int8", "bf16", "bf16-compile")

def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", metavar="FILE", help="a video file, decoded frame by frame")
    source.add_argument("--webcam", type=int, metavar="N", help="an OpenCV camera index (0 is the default camera)")
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help='comma-separated labels, e.g. "juggling, riding a bike, waving"; a label '
                        'with a comma goes in double quotes: \'"pouring, stirring", waving\'')
    labels.add_argument("--labels-file", metavar="FILE", help="labels separated by new lines or commas; '#' comments")
    add_model_arguments(parser, f"frames per window (default: the model's, else {DEFAULT_FRAMES})")
    parser.add_argument("--stride", type=int, default=4, help="emit a prediction every N frames (default 4)")
    parser.add_argument("--topk", type=int, default=3, help="labels shown per prediction (default 3)")
    parser.add_argument("--smoothing", type=float, help="EMA factor in (0, 1] on the probabilities (default: none)")
    parser.add_argument("--max-frames", type=int, help="stop after N frames (default: until the source ends)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds without a frame before the source counts as stalled (default 5)")
    parser.add_argument("--live", action="store_true", help="with --video: play the file at its frame rate, as a "
                        "camera delivers frames; frames the model cannot keep up with are dropped (the newest wins)")
    parser.add_argument("--runtime", default="eager", metavar="NAME",
                        help=f"where the per-frame image encoder runs: {', '.join(RUNTIMES)} (default eager); any but "
                        "eager is checked against eager fp32 at start-up and refused if it changes the predictions; "
                        "ONNX files are cached under the data folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: the fastest of 1, 2 and all "
                        "cores, timed on a few frames at start-up; on a busy machine that is often 1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def streams(args: argparse.Namespace) -> bool:
    """Always: idle OpenMP threads spin briefly between frames (`openmp.limit_spinning`)."""
    return True


def run(args: argparse.Namespace) -> dict:
    import os

    import torch
    from tqdm.auto import tqdm

    from actiondistill.cli import EXIT_ERROR, EXIT_INTERRUPTED, StoppedEarly
    from actiondistill.realtime import StreamingRecognizer, parse_labels, pick_threads, video_source, webcam_source

    check_options(args)
    labels = parse_labels(_label_text(args))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    source = video_source(args.video, timeout=args.timeout) if args.video is not None else None  # fail before
    try:  # building the model when the file cannot be read
        model, spec = build_model(args)
        model.progress = not args.no_progress
        recognizer = StreamingRecognizer(model, labels, num_frames=args.frames, stride=args.stride,
                                         smoothing=args.smoothing, device=args.device, topk=args.topk,
                                         runtime=args.runtime)
    except BaseException:
        if source is not None:
            source.close()
        raise
    if args.threads is not None:
        threads = {"threads": args.threads, "chosen_by": "--threads"}
    elif recognizer.device.type == "cpu":
        threads = pick_threads(recognizer)
    else:  # on a GPU the CPU threads only feed it: torch's default is left alone
        threads = {"threads": torch.get_num_threads(), "chosen_by": "torch's default"}
    weights = spec["weights"]
    live = args.json != "-"
    if live:
        print(f"{spec['name']} on {spec['backbone']}; {weights.line()}; {threads_text(threads)}; "
              f"{runtime_text(recognizer.frame_encoder.summary())}", file=sys.stderr)
    if args.live:  # a live replay starts its clock now, not while the model was being built
        source.close()
        source = video_source(args.video, timeout=args.timeout, live=True)
    if source is None:
        source = webcam_source(args.webcam, timeout=args.timeout)
    source_name = str(args.video) if args.video is not None else f"webcam {args.webcam}"

    def show(prediction) -> None:
        tqdm.write(format_prediction(prediction.to_dict()), file=sys.stdout)

    result = recognizer.run(source, max_frames=args.max_frames, on_prediction=show if live else None,
                            progress=not args.no_progress)
    out = {
        "source": source_name,
        "model": spec["name"],
        "backbone": spec["backbone"],
        "checkpoint": args.checkpoint,
        "weights": weights.summary(),
        "labels": labels,
        "num_frames": recognizer.num_frames,
        "stride": recognizer.stride,
        "smoothing": recognizer.smoothing,
        "threads": torch.get_num_threads(),
        "threads_choice": threads,
        "runtime": recognizer.frame_encoder.summary(),
        "live": args.live,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "warnings": warnings_of(labels, recognizer.num_frames, result.stats, weights),
        "predictions": [p.to_dict() for p in result.predictions],
        "stats": result.stats,
    }
    if result.stats.get("interrupted"):
        raise StoppedEarly(out, "interrupted (Ctrl-C): the summary covers the frames before it", EXIT_INTERRUPTED)
    if result.stats.get("error"):
        raise StoppedEarly(out, result.stats["error"], EXIT_ERROR)
    return out


def check_options(args: argparse.Namespace) -> None:
    """Refuse bad values before anything is opened or built, naming the flag as the user typed it."""
    if args.video is not None and not str(args.video).strip():
        raise ValueError("--video '': expected the path of a video file")
    if args.video is not None and Path(args.video).is_dir():
        raise ValueError(f"--video {args.video}: is a folder; expected a video file")
    if args.runtime not in RUNTIMES:
        raise ValueError(f"--runtime {args.runtime}: expected one of {', '.join(RUNTIMES)}")
    if args.live and args.video is None:
        raise ValueError("--live: replays a --video file at its frame rate; a webcam is live already")
    if args.webcam is not None and args.webcam < 0:
        raise ValueError(f"--webcam {args.webcam}: expected a camera index >= 0 (0 is the default camera)")
    for flag, value in (("--stride", args.stride), ("--topk", args.topk), ("--frames", args.frames),
                        ("--max-frames", args.max_frames), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} {value}: expected an integer >= 1")
    if args.smoothing is not None and not 0 < args.smoothing <= 1:
        raise ValueError(f"--smoothing {args.smoothing:g}: expected an EMA factor in (0, 1]")
    if not args.timeout > 0:
        raise ValueError(f"--timeout {args.timeout:g}: expected a positive number of seconds")


def warnings_of(labels: list[str], window: int, stats: dict, weights) -> list[str]:
    """What a user should know about this result: untrained weights, a label list that cannot discriminate, and
    why a short video gave no prediction."""
    out = []
    if weights.source == "random":
        out.append(RANDOM_WARNING)
    if len(labels) == 1:
        out.append(f"one label ({labels[0]!r}): its probability is always 1.00, since the scores are a softmax over "
                   "the labels; give two or more")
    if not stats["predictions"] and 0 < stats["frames"] < window and not stats.get("interrupted"):
        out.append(f"no prediction: the source gave {stats['frames']} frames, fewer than the {window}-frame window "
                   "(--frames)")
    return out


def threads_text(choice: dict) -> str:
    """How the thread count was chosen, with the per-frame times the start-up test measured."""
    if choice["chosen_by"] != "start-up test":
        return f"threads {choice['threads']} ({choice['chosen_by']})"
    timed = ", ".join(f"{n}: {ms:.1f} ms" for n, ms in choice["frame_ms"].items())
    return f"threads {choice['threads']} (fastest per frame at start-up: {timed})"


def runtime_text(runtime: dict) -> str:
    """The runtime (and its temporal head's, where it brings one), and for a checked one its agreement with eager
    fp32 and where its ONNX file came from."""
    name = runtime["runtime"] + ("" if runtime.get("head", "fp32") == "fp32" else f", head {runtime['head']}")
    if runtime["fallback_reason"]:
        return f"runtime {name} (torch.compile fell back: {runtime['fallback_reason']})"
    check = runtime["agreement"]
    if check is None:
        return f"runtime {name}"
    text = (f"runtime {name} (agrees with eager fp32: frame cosine >= {check['frame_min_cosine']:.5f}, "
            f"top-1 {check['top1_agreement']:.0%} of {check['windows']} probe windows")
    cache = runtime["cache"]
    if cache is not None:
        text += f"; ONNX {'reused from' if cache['reused'] else 'exported to'} {cache['directory']}"
    return text + f"; ready in {runtime['build_s']:.1f} s)"


def format_prediction(prediction: dict) -> str:
    """One emission as a line: time, frame index, top-k labels with probabilities."""
    top = " | ".join(f"{label} {prob:.2f}" for label, prob in prediction["topk"])
    return f"[{prediction['time_s']:8.2f} s] frame {prediction['frame']:6d}  {top}"


def format_text(result: dict) -> str:
    """The summary; the prediction lines were printed live while the stream ran."""
    s = result["stats"]
    if not s["frames"]:
        return "\n".join([f"{result['source']}: no frames processed ({s['stopped']})",
                          *(f"warning: {w}" for w in result["warnings"])])
    names = {"decode": "source"}  # decoding a file, or waiting for a camera's or a live replay's next frame
    stages = ", ".join(f"{names.get(name, name)} {ms:.1f} ms" for name, ms in s["stages_ms"].items() if ms is not None)
    text = (f"{s['predictions']} predictions over {s['frames']} frames from {result['source']} "
            f"({result['model']} on {result['backbone']}, {result['num_frames']}-frame windows, stride "
            f"{result['stride']}, runtime {s['runtime']}): {s['fps']:.1f} FPS, latency p50 {s['latency_p50_ms']:.1f} "
            f"ms / p90 {s['latency_p90_ms']:.1f} ms per frame ({stages})")
    if s["arrival_latency_p50_ms"] is not None:
        text += (f"; arrival to prediction p50 {s['arrival_latency_p50_ms']:.1f} ms / p99 "
                 f"{s['arrival_latency_p99_ms']:.1f} ms")
    text += f"; stopped: {s['stopped']}"
    if s["dropped"]:
        text += f"; {s['dropped']} frames dropped (the model was slower than the source: the newest frame wins)"
    text += f"; {threads_text(result['threads_choice'])}, load average {result['load_average'][0]:.2f}"
    return "\n".join([text, *(f"warning: {w}" for w in result["warnings"])])


def _label_text(args: argparse.Namespace) -> str:
    if args.labels is not None:
        return args.labels
    path = Path(args.labels_file)
    if path.is_dir():
        raise ValueError(f"--labels-file {path}: is a folder; expected a text file of labels")
    if not path.is_file():
        raise FileNotFoundError(f"--labels-file {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--labels-file {path}: not UTF-8 text (byte {err.start}); expected labels separated by "
                         "new lines or commas") from None
