"""Benchmark: chapter 2's latency table while the machine is busy, to check that the book's latency survives load.

Chapter 2 times every candidate with `teacher_choice.latency_table` (the profiler's interleaved rounds, each model's
fastest round, speed-ups from the same rounds). Its five ActionCLIP heads run the same image encoder on every frame
and differ only in a small temporal head, so on any machine their latencies should lie within a few percent of each
other; a table that shows one of them several times slower measured the load, not the model. This runs the table
(`--rounds` rounds, chapter 2's 8/16/32 frames) and reports, per frame count, the spread of the five heads' latency
(slowest / fastest), by the table's latency (the fastest round's median) and by each head's fastest single call,
with the load average before and after. Run it beside a busy process (e.g. `make test`) to see
the table under load. Writes benchmarks/results/latency_under_load.json.

    .venv/bin/python benchmarks/bench_latency_under_load.py [--rounds 3] [--iters 5] [--label "beside make test"]
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5)
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
    table = latency_table(HEADS, "embedded-base", action_classes()[:22], frames=args.frames, iters=args.iters,
                          rounds=args.rounds)
    spread = {}
    for frames, rows in table.groupby("frames"):
        ms = rows.set_index("model")["latency_ms"]
        fastest_call = rows.set_index("model")["min_ms"]
        spread[int(frames)] = {"latency_ms": {k: round(float(v), 2) for k, v in ms.items()},
                               "slowest_over_fastest": round(float(ms.max() / ms.min()), 3),
                               "min_ms": {k: round(float(v), 2) for k, v in fastest_call.items()},
                               "min_ms_slowest_over_fastest": round(float(fastest_call.max() / fastest_call.min()), 3),
                               "under_load": sorted(rows.loc[rows["under_load"], "model"].tolist())
                               if "under_load" in rows else []}
        heads = ", ".join(f"{k.removeprefix('actionclip-')} {v:.1f}" for k, v in ms.items())
        print(f"{int(frames):3d} frames: slowest / fastest head {ms.max() / ms.min():.2f} ({heads} ms); by each "
              f"head's fastest call {fastest_call.max() / fastest_call.min():.2f}")
    atomic_write_json(args.out, {"label": args.label, "rounds": args.rounds, "iters": args.iters,
                                 "seconds": round(time.perf_counter() - started, 1), "load_average_before": load_before,
                                 "load_average_after": list(os.getloadavg()), "machine": environment(),
                                 "by_frames": spread})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
