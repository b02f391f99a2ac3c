"""How long idle OpenMP threads spin, and what it does to a 224 px stream: `actiondistill.openmp`'s measurement.

Usage: .venv/bin/python benchmarks/bench_openmp_spin.py [--rounds 3] [--runtime bf16-compile] [--backbone ...]

libgomp reads GOMP_SPINCOUNT and OMP_WAIT_POLICY once, when torch loads it, so each setting streams in a fresh
process started with only that setting in its environment. The processes take turns round by round (every setting's
round 1, then every setting's round 2, ...) so that load from other processes lands on every setting alike. Each
process builds the book's student architecture (ActionCLIP, 2-layer fusion transformer, 8-frame windows) on a
TinyCLIP backbone with random weights (speed only) on one image-encoder runtime, warms it up on one pass over the
file and times a second pass at 2 threads, as `zeroshot` streams a file: FPS and the time per stage (decode,
resize, encoder, head). Writes benchmarks/results/openmp_spin.json with every round, each setting's best round and
its FPS against the default's in the same round (paired).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actiondistill.openmp import SPIN_VARIABLES, spin_settings  # torch-free: safe before a child's setting applies

RESULTS = Path(__file__).resolve().parent / "results" / "openmp_spin.json"
#: name -> the OpenMP variables its process starts with (none: libgomp's defaults)
SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "spin 30000": {"GOMP_SPINCOUNT": "30000"},
    "spin 3000": {"GOMP_SPINCOUNT": "3000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="turns every setting takes (default 3)")
    parser.add_argument("--runtime", default="bf16-compile", help="image-encoder runtime (default bf16-compile)")
    parser.add_argument("--backbone", default="TinyCLIP-ViT-8M-16-Text-3M", help="CLIP backbone (default 8M/16)")
    parser.add_argument("--frames", type=int, default=90, help="frames of the streamed file (default 90)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the stream (default 2)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="OpenMP settings compared (default all)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"the JSON written (default {RESULTS})")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one timed stream, in the process its setting needs
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.frames < 16 or args.threads < 1:
        parser.error(f"--rounds {args.rounds}, --frames {args.frames}, --threads {args.threads}: expected rounds >= 1, "
                     "frames >= 16 and threads >= 1")
    return args


def stream_once(spec: dict[str, Any]) -> dict[str, Any]:
    """The child's work: build, warm up on one pass, time the next pass. Imports torch only now, after the
    process started with its OpenMP setting."""
    import torch

    from actiondistill.export import frame_runtime
    from actiondistill.models import create_model
    from actiondistill.realtime import StreamingRecognizer, video_source

    torch.manual_seed(0)
    model = create_model(spec["model"], backbone=spec["backbone"], num_frames=spec["window"], **spec["options"])
    built = frame_runtime(model, spec["runtime"], labels=spec["labels"], num_frames=spec["window"])
    recognizer = StreamingRecognizer(model, spec["labels"], num_frames=spec["window"], runtime=built)
    torch.set_num_threads(spec["threads"])
    recognizer.run(video_source(spec["video"]), progress=False)  # compiles for this thread count, warms caches
    recognizer.reset()
    stats = recognizer.run(video_source(spec["video"]), progress=False).stats
    return {"fps": stats["fps"], "stages_ms": stats["stages_ms"], "runtime": built.runtime, "head": built.head,
            "openmp": spin_settings()}


def run_child(spec: dict[str, Any], setting: dict[str, str]) -> dict[str, Any]:
    """One stream in a fresh process whose environment holds exactly `setting`'s OpenMP variables."""
    env = {k: v for k, v in os.environ.items() if k not in SPIN_VARIABLES} | setting
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the stream with {setting or 'no OpenMP variables'} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(stream_once(json.loads(args.child))))
        return {}
    # the parent may load anything: its children start with their own environment
    from tqdm.auto import tqdm

    from actiondistill.io import atomic_write_json

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_streaming_realsize as realsize

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="actiondistill-spin-") as folder:
        video = realsize.make_video(Path(folder) / "stream.mp4", args.frames, realsize.FULL["video_size"])
        spec = {"model": realsize.MODEL, "options": realsize.MODEL_OPTIONS, "backbone": args.backbone,
                "runtime": args.runtime, "window": realsize.FULL["window"], "labels": realsize.LABELS,
                "threads": args.threads, "video": str(video)}
        machine = realsize.machine()
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in args.settings}
        bar = tqdm(total=args.rounds * len(args.settings), desc="OpenMP settings")
        for _ in range(args.rounds):
            for name in args.settings:
                bar.set_postfix(setting=name)
                rounds[name].append(run_child(spec, SETTINGS[name]))
                bar.update(1)
        bar.close()
    reference = args.settings[0]
    rows = []
    for name in args.settings:
        fps = [run["fps"] for run in rounds[name]]
        best = max(rounds[name], key=lambda run: run["fps"])
        paired = [round(a["fps"] / b["fps"], 4) for a, b in zip(rounds[name], rounds[reference], strict=True)]
        rows.append({"setting": name, "variables": SETTINGS[name], "fps_best": best["fps"], "fps_rounds": fps,
                     "stages_ms_best": best["stages_ms"], f"fps_vs_{reference}_per_round": paired,
                     "runtime": best["runtime"], "head": best["head"], "openmp": best["openmp"]})
    result = {
        "benchmark": "openmp_spin",
        # the parent's own OpenMP variables say nothing: each row records its processes'
        "machine": {k: v for k, v in machine.items() if k != "openmp"} | {"load_average_after": list(os.getloadavg())},
        "stream": {k: v for k, v in spec.items() if k != "video"} | {"frames": args.frames,
                                                                      "video_size": realsize.FULL["video_size"]},
        "rounds": args.rounds,
        "reference": reference,
        "rows": rows,
        "note": "random weights: speed only; each round of each setting is a fresh process (libgomp reads its "
                "variables once), timed on its second pass over the file",
        "wall_s": round(time.perf_counter() - started, 1),
    }
    atomic_write_json(args.out, result)
    for row in rows:
        print(f"{row['setting']:>11}: best {row['fps_best']:.1f} FPS, rounds {row['fps_rounds']}, "
              f"vs {reference} {row[f'fps_vs_{reference}_per_round']}, stages {row['stages_ms_best']}")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
