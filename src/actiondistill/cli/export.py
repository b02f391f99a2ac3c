"""`export`: the video and text encoders of a video model to ONNX, checked against eager, and timed beside it.

Writes `video_encoder.onnx`, `text_encoder.onnx` and `export.json` (manifest with the agreement) to --out; then
times the video encoder of eager PyTorch, torch.compile and onnxruntime side by side in one run, after each
runtime passed its agreement check (largest difference of the normalised embeddings, lowest cosine similarity,
zero-shot top-1 agreement on probe clips).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from actiondistill.cli._model_args import DEFAULT_FRAMES, add_model_arguments, build_model

HELP = ("export a video model's encoders to ONNX (checked against eager PyTorch) and time eager, torch.compile and "
        "onnxruntime side by side")

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, f"frames per clip of the exported video encoder (default: the checkpoint's, else "
                        f"{DEFAULT_FRAMES})")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the .onnx files and export.json")
    parser.add_argument("--runtimes", nargs="+", choices=("compile", "onnx"), default=["compile", "onnx"],
                        help="runtimes timed beside eager (default: compile onnx); the ONNX files are written "
                        "either way")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode: default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8], metavar="B",
                        help="clips per call (default 1 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2; >= 1 with compile)")
    parser.add_argument("--iters", type=int, default=10, help="timed calls per turn (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="turns the runtimes take, --iters calls each (default 1)")
    parser.add_argument("--max-diff", type=float, default=1e-4,
                        help="largest allowed |difference| of the normalised embeddings (default 1e-4)")
    parser.add_argument("--min-cosine", type=float, default=0.99999,
                        help="lowest allowed cosine similarity to eager (default 0.99999)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu; ONNX then uses onnxruntime's "
                        "CUDA provider)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def run(args: argparse.Namespace) -> dict:
    import torch

    from actiondistill.export import RUNTIMES, Tolerance, export_onnx, runtime_table
    from actiondistill.profiler import resolve_device

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: expected >= 1")
        torch.set_num_threads(args.threads)
    if any(b < 1 for b in args.batch):
        raise ValueError(f"--batch {args.batch}: expected integers >= 1")
    device = resolve_device(args.device)
    model, spec = build_model(args, num_frames=args.frames)  # the exported graph's clip length is the user's
    tolerance = Tolerance(max_abs_diff=args.max_diff, min_cosine=args.min_cosine)
    export = None
    if "onnx" not in args.runtimes:  # written either way; timed only when asked
        export = export_onnx(model.to(device), args.out, tolerance=tolerance, progress=not args.no_progress)
    timed = [r for r in RUNTIMES if r == "eager" or r in args.runtimes]
    table = runtime_table(model, timed, out_dir=args.out, batches=args.batch, compile_mode=args.compile_mode,
                          warmup=args.warmup, iters=args.iters, rounds=args.rounds, device=device,
                          tolerance=tolerance, progress=not args.no_progress)
    export = table.attrs["export"] or export
    agreement = {"onnx": export["agreement"], **table.attrs["agreement"]}
    rows = [{key: _plain(value) for key, value in row.items() if key != "latencies_ms"}
            for row in table.to_dict("records")]
    return {
        "model": spec["name"],
        "backbone": spec["backbone"],
        "checkpoint": args.checkpoint,
        "weights": spec["weights"].summary(),
        "num_frames": spec["num_frames"],
        "out": args.out,
        "files": {name: info["path"] for name, info in export["files"].items()},
        "runtimes": timed,
        "agreement": agreement,
        "compile": table.attrs["compile"],
        "columns": table.attrs["columns"],
        "rows": rows,
        "environment": table.attrs["environment"],
    }


def format_text(result: dict) -> str:
    weights = result["weights"]
    lines = [f"{result['model']} on {result['backbone']}, {result['num_frames']} frames: exported to {result['out']} "
             f"({', '.join(result['files'].values())}, export.json)",
             f"weights: {weights['source']} {weights['file'] or ''} ({weights['knows']})".replace("  ", " "),
             "agreement with eager PyTorch:"]
    for runtime, check in result["agreement"].items():
        video, text = check["video"], check["text"]
        lines.append(f"  {runtime:<8} video: max |diff| {video['max_abs_diff']:.2e}, min cosine "
                     f"{video['min_cosine']:.7f}, top-1 agreement {video['top1_agreement']:.0%} ({video['n']} clips); "
                     f"text: max |diff| {text['max_abs_diff']:.2e}, min cosine {text['min_cosine']:.7f}")
    compiled = result["compile"]
    if compiled and compiled["fallback_reason"]:
        lines.append(f"torch.compile fell back to eager: {compiled['fallback_reason']}")
    elif compiled:
        seconds = ", ".join(f"{k} {v:.1f} s" for k, v in compiled["compile_s"].items())
        lines.append(f"torch.compile mode {compiled['mode']}: first call (compilation) {seconds}")
    lines.append(f"{'runtime':<26} {'B':>3} {'p50 ms':>9} {'p90 ms':>9} {'clips/s':>9} {'vs eager':>8}")
    for row in result["rows"]:
        lines.append(f"{row['runtime']:<26} {row['batch']:>3} {row['p50_ms']:>9.2f} {row['p90_ms']:>9.2f} "
                     f"{row['throughput_clips_s']:>9.1f} {row['speedup_vs_first']:>7.2f}x")
    env = result["environment"]
    load = env.get("load_average")
    lines.append(f"video encoder only (text embeddings are cached in deployment); device {result['rows'][0]['device']} "
                 f"({env['device_name']}), torch {env['torch']}, {env['threads']} threads, {env['cpu_count']} CPUs"
                 + (f", load average {load[0]:.2f}" if load else ""))
    return "\n".join(lines)
