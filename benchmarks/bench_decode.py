"""Decode throughput of the video readers: whole clips and 8-frame TSN reads, decord vs PyAV, one process.

Usage: .venv/bin/python benchmarks/bench_decode.py [--data DIR] [--clips 100] [--size 64] [--frames 32]
Without --data it encodes N H.264 clips of moving textured content into a temporary folder. Every read
includes opening the file, as a dataset's __getitem__ does. Writes benchmarks/results/decode.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from tqdm.auto import tqdm

from actiondistill.data.encode import write_video
from actiondistill.data.sampling import tsn_indices
from actiondistill.data.video import open_video
from actiondistill.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "decode.json"
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}


def moving_content(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """A drifting noise texture under three squares with their own colours and velocities: real motion for the
    encoder (static or flat frames would make decoding unrealistically cheap)."""
    texture = rng.integers(0, 90, (size * 2, size * 2, 3), dtype=np.uint8)
    drift = rng.integers(-2, 3, 2)
    out = np.empty((frames, size, size, 3), np.uint8)
    squares = [(rng.integers(0, size, 2), rng.integers(-3, 4, 2), rng.integers(6, size // 3),
                rng.integers(90, 256, 3)) for _ in range(3)]
    for t in range(frames):
        dy, dx = (drift * t) % size
        out[t] = texture[dy:dy + size, dx:dx + size]
        for start, velocity, side, colour in squares:
            y, x = (start + velocity * t) % (size - side)
            out[t, y:y + side, x:x + side] = colour
    return out


def make_clips(folder: Path, count: int, size: int, frames: int, progress: bool) -> list[Path]:
    rng = np.random.default_rng(0)
    return [write_video(folder / f"{k:04d}.mp4", moving_content(rng, frames, size))
            for k in tqdm(range(count), desc="encoding clips", disable=not progress)]


def one_pass(paths: list[Path], backend: str, mode: str, segments: int, seed: int) -> float:
    """Seconds to open every clip and read it whole ("full") or at `segments` random TSN frames."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for path in paths:
        with open_video(path, backend) as reader:
            n = reader.num_frames
            reader.read(range(n) if mode == "full" else tsn_indices(n, segments, train=True, rng=rng))
    return time.perf_counter() - start


def time_reads(paths: list[Path], segments: int, repeats: int, progress: bool) -> dict:
    """Best and median clips/s per backend and mode. Passes are interleaved (every configuration once per
    round) so that load from other processes spreads over all of them; one warm-up round is discarded."""
    configs = [(backend, mode) for backend in ("decord", "pyav") for mode in ("full", f"tsn{segments}")]
    seconds: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
    for round_ in tqdm(range(repeats + 1), desc="timing rounds", disable=not progress):
        for backend, mode in configs:
            elapsed = one_pass(paths[:5] if round_ == 0 else paths, backend, mode, segments, round_)
            if round_:
                seconds[(backend, mode)].append(elapsed)
    results: dict[str, dict] = {}
    for (backend, mode), times in seconds.items():
        best, median = min(times), statistics.median(times)
        results.setdefault(backend, {})[mode] = {
            "clips_per_s": len(paths) / best, "clips_per_s_median": len(paths) / median,
            "ms_per_clip": 1000 * best / len(paths), "pass_seconds": times}
    return results


def machine() -> dict:
    import decord

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "av": av.__version__, "ffmpeg_in_av": ".".join(map(str, av.library_versions["libavcodec"])),
            "decord": decord.__version__}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder of existing video files (default: encode new clips)")
    parser.add_argument("--clips", type=int, default=100, help="clips to encode without --data")
    parser.add_argument("--size", type=int, default=64, help="frame side of encoded clips")
    parser.add_argument("--frames", type=int, default=32, help="frames per encoded clip")
    parser.add_argument("--segments", type=int, default=8, help="frames of a TSN read")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the clips per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
            if not paths:
                raise FileNotFoundError(f"{args.data}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
            source = {"data": str(args.data), "clips": len(paths)}
        else:
            paths = make_clips(Path(tmp), args.clips, args.size, args.frames, args.progress)
            source = {"generated": "H.264 MP4 (libx264 crf 18, write_video defaults), moving textured squares",
                      "clips": len(paths), "size": args.size, "frames": args.frames}
        results = time_reads(paths, args.segments, args.repeats, args.progress)
    record = {"benchmark": "decode", "source": source, "single_process": True, "decoder_threads": 1,
              "includes_open": True, "repeats": args.repeats, "machine": machine(), "results": results,
              # The 1-minute load average: other work on the machine slows every number down.
              "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}}
    atomic_write_json(args.out, record)
    for backend, modes in results.items():
        print(backend, "  ".join(f"{mode}: {r['clips_per_s']:.0f} clips/s ({r['ms_per_clip']:.2f} ms)"
                                 for mode, r in modes.items()))
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
