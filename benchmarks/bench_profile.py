"""The backbone swap's speed-up: ActionCLIP (Transf fusion) on ViT-B/16 vs TinyCLIP-ViT-39M/16 vs TinyCLIP-ViT-8M/16.

Usage: .venv/bin/python benchmarks/bench_profile.py [--device cpu] [--frames 8 16 32] [--batch 1] [--warmup 1]
       [--iters 1] [--rounds 3]
Random weights (latency does not depend on their values), model-only mode: encode_video on random 224x224 frames,
text encoder excluded (its label embeddings are cached in deployment). One frame count at a time, the backbones
taking turns (`rounds` turns of `iters` calls each), so each speed-up compares measurements taken under the same
load. Other processes may share the CPU: the load average before and after each frame count is stored, and on a
busy machine the speed-up of the fastest calls (speedup_min_vs_first) is the less disturbed estimate. Writes
benchmarks/results/profile_<device>.json.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

from actiondistill.io import atomic_write_json
from actiondistill.profiler import TEXT_ENCODER_NOTE, profile_backbones, resolve_device

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "actionclip-transf"
BACKBONES = ("ViT-B-16", "TinyCLIP-ViT-39M-16-Text-19M", "TinyCLIP-ViT-8M-16-Text-3M")


def _plain(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--frames", nargs="+", type=int, default=[8, 16, 32])
    parser.add_argument("--batch", nargs="+", type=int, default=[1])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    device = resolve_device(args.device)
    started = time.perf_counter()
    rows, loads, env = [], [], None
    for frames in args.frames:
        before = list(os.getloadavg())
        t0 = time.perf_counter()
        table = profile_backbones(MODEL, BACKBONES, [frames], args.batch, device=device, dtype=args.dtype,
                                  warmup=args.warmup, iters=args.iters, rounds=args.rounds,
                                  progress=not args.no_progress)
        env = table.attrs["environment"]
        rows += [{key: _plain(value) for key, value in row.items()} for row in table.to_dict("records")]
        loads.append({"frames": frames, "before": before, "after": list(os.getloadavg()),
                      "seconds": round(time.perf_counter() - t0, 1)})

    summary = {}
    for row in rows:
        ref = next(r for r in rows if r["backbone"] == BACKBONES[0] and r["frames"] == row["frames"]
                   and r["batch"] == row["batch"])
        summary.setdefault(f"T{row['frames']}_B{row['batch']}", {})[row["backbone"]] = {
            "p50_ms": round(row["p50_ms"], 1),
            "min_ms": round(row["min_ms"], 1),
            "speedup_vs_first": round(row["speedup_vs_first"], 3),
            "speedup_min_vs_first": round(ref["min_ms"] / row["min_ms"], 3),
            "gflops_ratio_vs_first": round(ref["gflops"] / row["gflops"], 3),
            "image_encoder_params_ratio_vs_first": round(ref["params_backbone_m"] / row["params_backbone_m"], 3),
        }
    out = RESULTS / f"profile_{device.type}.json"
    atomic_write_json(out, {
        "benchmark": "profile",
        "model": MODEL,
        "backbones": list(BACKBONES),
        "weights": "random (pretrained=None)",
        "mode": "model",
        "note": TEXT_ENCODER_NOTE,
        "device": str(device),
        "device_name": env["device_name"],
        "dtype": args.dtype,
        "frames": args.frames,
        "batches": args.batch,
        "warmup": args.warmup,
        "iters": args.iters,
        "rounds": args.rounds,
        "summary": summary,
        "rows": rows,
        "load_average": loads,
        "machine": env,
        "wall_s": round(time.perf_counter() - started, 1),
    })
    for key, per_backbone in summary.items():
        print(key, {name: (v["p50_ms"], v["speedup_vs_first"], v["speedup_min_vs_first"], v["gflops_ratio_vs_first"])
                    for name, v in per_backbone.items()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
