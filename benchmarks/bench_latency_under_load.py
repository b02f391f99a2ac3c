"""Benchmark: chapter 2's latency table while the machine is busy, to check that the book's latency survives load.

Chapter 2 times every candidate with `teacher_choice.latency_table` (the book's one latency table,
`chapters.latency`: the models take turns call by call, on one thread; each model's fastest call, speed-ups from
the same rounds). Its five ActionCLIP heads run the same image encoder on every frame and differ only in a small
temporal head, so on any machine their latencies should lie within a few percent of each other; a table that
shows one of them much slower measured the load, not the model. This runs the table (`--calls` rounds, chapter 2's
8/16/32 frames) once per `--threads` value and reports, per thread count and frame count, the spread of the five
heads' latency (slowest / fastest) and of their speed-ups over meanP, with the load average before and after.
Run it beside a busy process (e.g. `make test`) to see the table under load. Writes
benchmarks/results/latency_under_load.json.

    .venv/bin/python benchmarks/bench_latency_under_load.py [--calls 15] [--threads 1 2] [--label "beside make test"]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "latency_under_load.json"
HEADS = ("actionclip-meanp", "actionclip-conv1d", "actionclip-lstm", "actionclip-transf", "actionclip-transf_cls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=15, help="rounds of one call per head (chapter 2: 15)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="torch threads while timing (book: 1)")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--label", default="", help="what ran beside it, recorded in the JSON")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    from actiondistill.data.synth_world import action_classes
    from actiondistill.engine.records import environment
    from actiondistill.io import atomic_write_json
    from actiondistill.teacher_choice import latency_table

    load_before = list(os.getloadavg())
    started = time.perf_counter()
    by_threads = {}
    for threads in args.threads:
        table = latency_table(HEADS, "embedded-base", action_classes()[:22], frames=args.frames, calls=args.calls,
                              threads=threads)
        spread = {}
        for frames, rows in table.groupby("frames"):
            rows = rows.set_index("model")
            ms, speedup = rows["latency_ms"], rows["speedup_vs_first"]
            spread[int(frames)] = {"latency_ms": {k: round(float(v), 2) for k, v in ms.items()},
                                   "slowest_over_fastest": round(float(ms.max() / ms.min()), 3),
                                   "speedup_vs_meanp": {k: round(float(v), 3) for k, v in speedup.items()},
                                   "speedup_max_over_min": round(float(speedup.max() / speedup.min()), 3),
                                   "under_load": sorted(rows.index[rows["under_load"]].tolist())}
            heads = ", ".join(f"{k.removeprefix('actionclip-')} {v:.1f}" for k, v in ms.items())
            print(f"{threads} thread(s), {int(frames):3d} frames: slowest / fastest head {ms.max() / ms.min():.2f} "
                  f"({heads} ms); speed-ups over meanP {speedup.min():.2f}-{speedup.max():.2f}")
        by_threads[threads] = spread
    atomic_write_json(args.out, {"label": args.label, "calls": args.calls, "seconds": round(time.perf_counter()
                                 - started, 1), "load_average_before": load_before,
                                 "load_average_after": list(os.getloadavg()), "machine": environment(),
                                 "by_threads": by_threads})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
