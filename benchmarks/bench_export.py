"""Eager PyTorch vs torch.compile vs onnxruntime for the embedded student's video encoder, side by side on CPU.

Usage: .venv/bin/python benchmarks/bench_export.py [--threads 1] [--batch 1 8] [--rounds 3]
Builds ActionCLIP meanP on `embedded-tiny` (random weights: speed does not depend on them) at 8 frames, compiles
it with torch.compile (inductor), exports it to ONNX, checks both against eager (`actiondistill.export`), then times
`encode_video` (frames -> normalised embedding) of the three runtimes in one `profiler.sweep`, taking turns
(`--rounds`), so other processes' load lands on every runtime alike. Records compile and export times, the
agreement, the machine and the load average before and after. `--cold` gives inductor a fresh, empty cache
folder, so the recorded compile time is a first compilation rather than a load from an earlier run's on-disk
cache. Writes benchmarks/results/export.json.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from actiondistill.export import runtime_table
from actiondistill.io import atomic_write_json
from actiondistill.models import create_model

RESULTS = Path(__file__).resolve().parent / "results" / "export.json"
MODEL, BACKBONE = "actionclip-meanp", "embedded-tiny"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="clips per call (default 1 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime CPU threads (default 1)")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode (default 'default')")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10, help="timed calls per runtime per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns the runtimes take (default 3)")
    parser.add_argument("--cold", action="store_true", help="compile with an empty inductor cache (a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cache = tempfile.TemporaryDirectory(prefix="inductor-") if args.cold else None
    if cache is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name  # read by inductor when it first compiles
    load_before = os.getloadavg()
    torch.manual_seed(0)
    model = create_model(MODEL, backbone=BACKBONE, num_frames=args.frames)
    started = time.perf_counter()
    table = runtime_table(model, ("eager", "compile", "onnx"), batches=args.batch, compile_mode=args.compile_mode,
                          warmup=args.warmup, iters=args.iters, rounds=args.rounds, progress=not args.no_progress)
    keep = ["runtime", "frames", "batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput_clips_s",
            "speedup_vs_first", "gflops", "params_total_m", "peak_mem_mb"]
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in table[keep].to_dict("records")]
    export = table.attrs["export"]
    summary = {f"{row['runtime']}_b{row['batch']}_speedup": round(row["speedup_vs_first"], 3) for row in rows
               if row["runtime"] != "eager"}
    result = {
        "benchmark": "export",
        "model": MODEL,
        "backbone": BACKBONE,
        "frames": args.frames,
        "threads": args.threads,
        "machine": table.attrs["environment"],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "timing": {"warmup": args.warmup, "iters": args.iters, "rounds": args.rounds},
        "rows": rows,
        "speedups_vs_eager": summary,
        "compile": {**table.attrs["compile"],
                    "inductor_cache": "cold (empty temporary folder)" if args.cold else "default (warm if these graphs "
                    "were compiled before on this machine)"},
        "onnx": {"export_s": export["export_s"], "opset": export["opset"], "providers": export["providers"],
                 "bytes": {name: info["bytes"] for name, info in export["files"].items()}},
        "agreement": {runtime: {side: {k: check[side][k] for k in ("max_abs_diff", "min_cosine", "top1_agreement")}
                                for side in ("video", "text")} for runtime, check in table.attrs["agreement"].items()},
        "wall_s": round(time.perf_counter() - started, 1),
        "notes": "video encoder only (frames -> normalised embedding; text embeddings are cached in deployment); "
                 "random weights; speedup = eager p50 / runtime p50 at the same batch, measured in the same run; "
                 "GFLOPs counted on the eager row only; compile_s is the first call of each encoder (compilation)",
    }
    atomic_write_json(args.out, result)
    if cache is not None:
        cache.cleanup()
    for row in rows:
        print(f"{row['runtime']:<8} batch {row['batch']}: p50 {row['p50_ms']:8.2f} ms, p90 {row['p90_ms']:8.2f} ms, "
              f"{row['throughput_clips_s']:7.1f} clips/s, x{row['speedup_vs_first']:.2f} vs eager")
    print(f"compile: {result['compile']}; onnx export {export['export_s']:.1f} s")
    print(f"load average before {result['load_average_before']}, after {result['load_average_after']}; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
