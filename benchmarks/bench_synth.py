"""How fast SynthActions is generated: whole-dataset clips/min, and where a clip's time goes (render vs encode).

Run: `.venv/bin/python benchmarks/bench_synth.py [--videos 300]`; writes benchmarks/results/synth.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from actiondistill.data.encode import write_video
from actiondistill.data.synthetic import ENCODER_OPTIONS, action_classes, clip_seed, generate, render_clip, sample_spec
from actiondistill.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "synth.json"


def time_generate(videos: int, size: int, frames: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(Path(tmp) / "data", videos, size=size, frames=frames, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        mean_kib = sum(p.stat().st_size for p in (Path(tmp) / "data/videos").glob("*.mp4")) / videos / 1024
    return {"videos": videos, "size": size, "frames": frames, "workers": workers, "seconds": round(seconds, 3),
            "clips_per_minute": round(60 * videos / seconds, 1), "mean_file_kib": round(mean_kib, 1)}


def time_stages(clips: int, size: int, frames: int) -> dict:
    """One process, no pool: the per-clip cost of rendering and of H.264 encoding."""
    classes = action_classes()
    specs = [sample_spec(clip_seed(1, i), classes[i % len(classes)]) for i in range(clips)]
    start = time.perf_counter()
    videos = [render_clip(spec, size, frames) for spec in specs]
    render = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i, video in enumerate(videos):
            write_video(Path(tmp) / f"{i}.mp4", video, options=ENCODER_OPTIONS)
        encode = time.perf_counter() - start
    return {"clips": clips, "size": size, "frames": frames, "render_clips_per_second": round(clips / render, 1),
            "render_ms_per_clip": round(1000 * render / clips, 2),
            "encode_ms_per_clip": round(1000 * encode / clips, 2), "encode_share": round(encode / (render + encode), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=300)
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": workers,
                    "python": platform.python_version(), "torch": version("torch"), "numpy": version("numpy"),
                    "opencv": version("opencv-python-headless"), "av": version("av"),
                    "load_average_before": [round(x, 2) for x in os.getloadavg()]},  # other work slows the run
        "generate": [time_generate(args.videos, 64, 32, workers), time_generate(args.videos // 3, 112, 32, workers)],
        "stages": [time_stages(100, 64, 32), time_stages(50, 112, 32)],
        "target_clips_per_minute_64px": 1000,
    }
    atomic_write_json(RESULTS, result)
    for g in result["generate"]:
        print(f"generate {g['videos']} clips {g['size']}px x{g['frames']}: {g['clips_per_minute']:.0f} clips/min "
              f"({g['workers']} workers, {g['mean_file_kib']} KiB/clip)")
    for s in result["stages"]:
        print(f"{s['size']}px: render {s['render_ms_per_clip']} ms/clip ({s['render_clips_per_second']} clips/s), "
              f"encode {s['encode_ms_per_clip']} ms/clip, encode share {s['encode_share']:.0%}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
