"""Benchmark: the embedded-profile CLIP pretraining, cold, in a temporary data folder.

Generates the embedded world (1200 clips, 64x64x32; timed apart: it belongs to the data chapter), then times
`ensure_embedded_clips` with the default recipe (frame decoding, stage 1 embedded-base, stage 2 embedded-tiny, the
zero-shot report) and a second, cached call. The machine's load average is recorded before and after: on a shared
machine the seconds are pessimistic. Writes benchmarks/results/pretrain_clip.json.

    .venv/bin/python benchmarks/bench_pretrain_clip.py [--videos 1200]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from actiondistill.io import atomic_write_json

RESULT = Path(__file__).parent / "results" / "pretrain_clip.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as tmp:
        os.environ["ACTIONDISTILL_DATA"] = tmp
        from actiondistill.data.sources import synthactions_manifest
        from actiondistill.pretrain import PretrainConfig, ensure_embedded_clips

        start = time.perf_counter()
        manifest = synthactions_manifest(args.videos, 64, 32, 0, progress=False)
        world_seconds = time.perf_counter() - start
        cfg = PretrainConfig()
        start = time.perf_counter()
        result = ensure_embedded_clips(manifest, cfg, progress=False)
        total = time.perf_counter() - start
        start = time.perf_counter()
        again = ensure_embedded_clips(manifest, cfg, progress=False)
        reuse = time.perf_counter() - start
    assert again["reused"] and not result["reused"]
    report = result["report"]
    models = report["models"]
    out = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "world": {"videos": args.videos, "size": 64, "frames": 32, "seconds": round(world_seconds, 2)},
        "config": dataclasses.asdict(cfg),
        "train_frames": report["train_frames"], "heldout": report["heldout"],
        "seconds": {"total": round(total, 2), "decode": report["decode_seconds"],
                    **{name: m["stage_seconds"] for name, m in models.items()},
                    "report": report["report_seconds"], "reuse": round(reuse, 3)},
        "minutes_total": round(total / 60, 2),
        "models": {name: {"zero_shot_top1": {a: z["top1"] for a, z in m["zero_shot"].items()},
                          "chance": {a: z["chance"] for a, z in m["zero_shot"].items()},
                          "params": m["params"], "steps": m["steps"], "train_seconds": m["train_seconds"],
                          "final_train": {k: round(v, 4) for k, v in m["history"][-1].items()
                                          if isinstance(v, float)}}
                   for name, m in models.items()},
    }
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}: {out['minutes_total']} min total; "
          + "; ".join(f"{name} {m['zero_shot_top1']}" for name, m in out["models"].items()))


if __name__ == "__main__":
    main()
