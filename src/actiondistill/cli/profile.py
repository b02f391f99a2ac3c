"""`profile`: latency, throughput, GFLOPs, parameters and peak memory of one model on several backbones; with
`--mode end_to_end --stream`, streaming FPS per backbone and per-frame runtime, and where each frame's time goes."""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path
from typing import Any

# export.FRAME_RUNTIMES, without importing torch
RUNTIMES = ("eager", "compile", "onnx", "onnx-int8", "bf16", "bf16-compile")
HELP = ("time one video model on several backbones side by side (random weights): p50/p90/p99 latency, clips/s, "
        "GFLOPs (2 x MAC), parameters, peak memory and the speed-up against the first backbone; model-only latency "
        "excludes the text encoder, whose label embeddings are cached in deployment")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model, e.g. actionclip-transf, xclip, "
                        "compressed-triplet")
    parser.add_argument("--backbone", required=True, nargs="+", metavar="NAME",
                        help="backbones to compare, the first being the speed-up reference: CLIP architectures "
                        "(ViT-B-16, TinyCLIP-ViT-39M-16-Text-19M, embedded-base, ...), or tiny/resnet18/resnet50/pkd "
                        "for compressed-triplet")
    parser.add_argument("--frames", nargs="+", type=int, default=[8, 16, 32], metavar="T",
                        help="frames per clip (segments for compressed-triplet); default 8 16 32")
    parser.add_argument("--batch", nargs="+", type=int, default=[1], metavar="B", help="clips per call; default 1")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:index]; default cpu")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32",
                        help="fp32, or fp16/bf16 autocast mixed precision; default fp32")
    parser.add_argument("--mode", choices=("model", "end_to_end"), default="model",
                        help="model: encode_video on random frames (text encoder excluded); end_to_end: open + TSN "
                        "indices + decode + eval transform + encode_video per batch of clips")
    parser.add_argument("--stream", action="store_true", help="with --mode end_to_end: stream --video frame by frame "
                        "as zeroshot does (decode, resize, image encoder on each --runtime, temporal head over a "
                        "sliding window of --frames, scoring against cached labels) and report FPS and the time per "
                        "stage; --iters is then the frames streamed per round")
    parser.add_argument("--runtime", nargs="+", default=["eager"], metavar="NAME",
                        help=f"with --stream: image-encoder runtimes to compare ({', '.join(RUNTIMES)}); default eager")
    parser.add_argument("--video", type=Path, help="clip decoded in end_to_end mode (default: a synthesised clip)")
    parser.add_argument("--image-size", type=int, help="frame side for every backbone (default: each backbone's)")
    parser.add_argument("--num-classes", type=int, default=51,
                        help="classes of the internal classifiers (compressed-triplet only); default 51")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first; default 3")
    parser.add_argument("--iters", type=int, default=10, help="timed calls per turn; default 10")
    parser.add_argument("--rounds", type=int, default=1,
                        help="turns the backbones take, --iters calls each, pooled per row: spreads load from other "
                        "processes over every backbone on a shared machine; default 1")
    parser.add_argument("--results-dir", type=Path, help="where the results record goes (default data/results)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run_name(args: argparse.Namespace, device: str) -> str:
    """profile-<model>-<mode>-<device>-<dtype>-<backbones>; a digest of the backbones when their names are long;
    streaming profiles say so and name their runtimes."""
    joined = "+".join(args.backbone)
    if len(joined) > 120:
        joined = f"{len(args.backbone)}backbones-{hashlib.sha1(joined.encode()).hexdigest()[:10]}"
    mode = f"stream-{'+'.join(args.runtime)}" if args.stream else args.mode
    return f"profile-{args.model}-{mode}-{device.replace(':', '')}-{args.dtype}-{joined}"


def _plain(value: Any) -> Any:
    """NaN (no backbone sub-module, no FLOP count) as null, so the JSON stays standard."""
    return None if isinstance(value, float) and math.isnan(value) else value


def streams(args: argparse.Namespace) -> bool:
    """With --stream, streaming is what is timed, so its threads wait as `zeroshot`'s do (`openmp.limit_spinning`)."""
    return bool(args.mode == "end_to_end" and args.stream)


def run(args: argparse.Namespace) -> dict:
    import time

    from actiondistill.engine.records import build_record, write_record
    from actiondistill.models.registry import uses_clip_backbone
    from actiondistill.profiler import profile_backbones, profile_streaming

    check_stream_options(args)
    started = time.time()
    if args.stream:
        table = profile_streaming(args.model, args.backbone, args.runtime, args.frames, video=args.video,
                                  warmup=args.warmup, iters=args.iters, rounds=args.rounds,
                                  progress=not args.no_progress)
    else:
        table = profile_backbones(
            args.model, args.backbone, args.frames, args.batch, device=args.device, dtype=args.dtype, mode=args.mode,
            video=args.video, image_size=args.image_size, warmup=args.warmup, iters=args.iters, rounds=args.rounds,
            model_cfg=None if uses_clip_backbone(args.model) else {"num_classes": args.num_classes},
            progress=not args.no_progress,
        )
    rows = [{key: _plain(value) for key, value in row.items()} for row in table.to_dict("records")]
    device = rows[0].get("device", "cpu")
    result: dict[str, Any] = {
        "model": args.model,
        "backbones": list(args.backbone),
        "mode": args.mode,
        "stream": args.stream,
        "runtimes": list(args.runtime) if args.stream else None,
        "device": device,
        "dtype": args.dtype,
        "warmup": args.warmup,
        "iters": args.iters,
        "rounds": args.rounds,
        "note": table.attrs["note"],
        "video": table.attrs["video"],
        "columns": table.attrs["columns"],
        "rows": rows,
        "environment": table.attrs["environment"],
    }
    config = {key: value for key, value in result.items() if key not in ("rows", "environment", "columns", "note")}
    record = build_record("profile", _run_name(args, device), {"rows": rows}, config=config, device=device,
                          started=started, note=result["note"], video=result["video"])
    record["environment"] = {**record["environment"], **result["environment"]}
    result["record"] = str(write_record(record, args.results_dir))
    return result


def check_stream_options(args: argparse.Namespace) -> None:
    """Options the streaming path takes and the clip path does not (and back), refused naming the flag."""
    unknown = [name for name in args.runtime if name not in RUNTIMES]
    if unknown:
        raise ValueError(f"--runtime {' '.join(unknown)}: expected some of {', '.join(RUNTIMES)}")
    if not args.stream:
        if args.runtime != ["eager"]:
            raise ValueError(f"--runtime {' '.join(args.runtime)}: runtimes apply to the streaming path; add --mode "
                             "end_to_end --stream")
        return
    if args.mode != "end_to_end":
        raise ValueError("--stream: streams a video end to end; add --mode end_to_end")
    for flag, value, default in (("--batch", args.batch, [1]), ("--device", args.device, "cpu"),
                                 ("--dtype", args.dtype, "fp32"), ("--image-size", args.image_size, None)):
        if value != default:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            raise ValueError(f"{flag} {shown}: the streaming path encodes one frame at a time on the CPU, at each "
                             f"backbone's own size, in the --runtime's precision; leave {flag} out")


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_text(result: dict) -> str:
    if result["stream"]:
        return format_stream_text(result)
    header = (f"{'model':<18} {'backbone':<30} {'T':>3} {'B':>3} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} "
              f"{'clips/s':>8} {'GFLOPs':>8} {'params M':>8} {'image M':>8} {'peak MB':>8} {'speedup':>7}")
    lines = [header]
    for row in result["rows"]:
        lines.append(
            f"{row['model']:<18} {row['backbone']:<30} {row['frames']:>3} {row['batch']:>3} {row['p50_ms']:>9.1f} "
            f"{row['p90_ms']:>9.1f} {row['p99_ms']:>9.1f} {row['throughput_clips_s']:>8.2f} "
            f"{_number(row['gflops'], 1):>8} {row['params_total_m']:>8.1f} {_number(row['params_backbone_m'], 1):>8} "
            f"{row['peak_mem_mb']:>8.0f} {row['speedup_vs_first']:>6.2f}x")
    lines += [
        f"mode {result['mode']}, {result['dtype']}, warm-up {result['warmup']}, {result['rounds']} x "
        f"{result['iters']} timed calls; "
        f"GFLOPs = 2 x multiply-adds per call; image M = CLIP image-encoder parameters; speed-up = first backbone's "
        f"p50 / this p50",
        f"note: {result['note']}",
        _device_line(result["device"], result["environment"]),
    ]
    lines += _tail_lines(result)
    return "\n".join(lines)


def _device_line(device: str, env: dict) -> str:
    """The machine a table was measured on, with the load average when known (a busy machine slows every row)."""
    load = env.get("load_average")
    return (f"device: {device} ({env['device_name']}), torch {env['torch']}, {env['threads']} threads, "
            f"{env['cpu_count']} CPUs" + (f", load average {load[0]:.2f}" if load else ""))


def format_stream_text(result: dict) -> str:
    """The streaming table: FPS, per-frame latency, time per stage and agreement with eager fp32 per row."""
    lines = [f"{'backbone':<30} {'runtime':<9} {'T':>3} {'FPS':>7} {'p50 ms':>7} {'p99 ms':>7} {'decode':>7} "
             f"{'resize':>7} {'encoder':>7} {'head':>7} {'cosine':>8} {'top-1':>6} {'speedup':>7}"]
    for row in result["rows"]:
        lines.append(
            f"{row['backbone']:<30} {row['runtime']:<9} {row['frames']:>3} {row['fps']:>7.1f} "
            f"{row['latency_p50_ms']:>7.1f} {row['latency_p99_ms']:>7.1f} {_number(row['decode_ms'], 1):>7} "
            f"{_number(row['resize_ms'], 1):>7} {_number(row['encoder_ms'], 1):>7} {_number(row['head_ms'], 1):>7} "
            f"{_number(row['frame_min_cosine'], 5):>8} {_number(row['top1_agreement'], 2):>6} "
            f"{row['speedup_vs_first']:>6.2f}x")
    lines += [
        f"streamed at stride 1, warm-up {result['warmup']} frames, {result['rounds']} x {result['iters']} frames per "
        "row taking turns; FPS from the fastest round; stage times in ms per frame (head per window); cosine and "
        "top-1: agreement with eager fp32 on probe frames",
        f"note: {result['note']}",
        _device_line("cpu", result["environment"]),
        *_tail_lines(result),
    ]
    return "\n".join(lines)


def _tail_lines(result: dict) -> list[str]:
    """The streamed or decoded video, and where the record went."""
    lines = []
    video = result["video"]
    if video:
        source = "synthesised clip" if video["synthesised"] else video["path"]
        lines.append(f"video: {source}, {video['num_frames']} frames of {video['size']}, read with {video['backend']}")
    lines.append(f"record: {result['record']}")
    return lines
