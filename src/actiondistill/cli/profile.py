"""`profile`: latency, throughput, GFLOPs, parameters and peak memory of one model on several backbones."""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path
from typing import Any

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
    """profile-<model>-<mode>-<device>-<dtype>-<backbones>; a digest of the backbones when their names are long."""
    joined = "+".join(args.backbone)
    if len(joined) > 120:
        joined = f"{len(args.backbone)}backbones-{hashlib.sha1(joined.encode()).hexdigest()[:10]}"
    return f"profile-{args.model}-{args.mode}-{device.replace(':', '')}-{args.dtype}-{joined}"


def _plain(value: Any) -> Any:
    """NaN (no backbone sub-module, no FLOP count) as null, so the JSON stays standard."""
    return None if isinstance(value, float) and math.isnan(value) else value


def run(args: argparse.Namespace) -> dict:
    import time

    from actiondistill.engine.records import build_record, write_record
    from actiondistill.models.registry import uses_clip_backbone
    from actiondistill.profiler import profile_backbones

    started = time.time()
    table = profile_backbones(
        args.model, args.backbone, args.frames, args.batch, device=args.device, dtype=args.dtype, mode=args.mode,
        video=args.video, image_size=args.image_size, warmup=args.warmup, iters=args.iters, rounds=args.rounds,
        model_cfg=None if uses_clip_backbone(args.model) else {"num_classes": args.num_classes},
        progress=not args.no_progress,
    )
    rows = [{key: _plain(value) for key, value in row.items()} for row in table.to_dict("records")]
    device = rows[0]["device"]
    result: dict[str, Any] = {
        "model": args.model,
        "backbones": list(args.backbone),
        "mode": args.mode,
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


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_text(result: dict) -> str:
    header = (f"{'model':<18} {'backbone':<30} {'T':>3} {'B':>3} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} "
              f"{'clips/s':>8} {'GFLOPs':>8} {'params M':>8} {'image M':>8} {'peak MB':>8} {'speedup':>7}")
    lines = [header]
    for row in result["rows"]:
        lines.append(
            f"{row['model']:<18} {row['backbone']:<30} {row['frames']:>3} {row['batch']:>3} {row['p50_ms']:>9.1f} "
            f"{row['p90_ms']:>9.1f} {row['p99_ms']:>9.1f} {row['throughput_clips_s']:>8.2f} "
            f"{_number(row['gflops'], 1):>8} {row['params_total_m']:>8.1f} {_number(row['params_backbone_m'], 1):>8} "
            f"{row['peak_mem_mb']:>8.0f} {row['speedup_vs_first']:>6.2f}x")
    env = result["environment"]
    load = env.get("load_average")
    lines += [
        f"mode {result['mode']}, {result['dtype']}, warm-up {result['warmup']}, {result['rounds']} x "
        f"{result['iters']} timed calls; "
        f"GFLOPs = 2 x multiply-adds per call; image M = CLIP image-encoder parameters; speed-up = first backbone's "
        f"p50 / this p50",
        f"note: {result['note']}",
        f"device: {result['device']} ({env['device_name']}), torch {env['torch']}, {env['threads']} threads, "
        f"{env['cpu_count']} CPUs" + (f", load average {load[0]:.2f}" if load else ""),
    ]
    video = result["video"]
    if video:
        source = "synthesised clip" if video["synthesised"] else video["path"]
        lines.append(f"video: {source}, {video['num_frames']} frames of {video['size']}, read with {video['backend']}")
    lines.append(f"record: {result['record']}")
    return "\n".join(lines)
