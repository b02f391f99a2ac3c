"""Throughput of the compressed-domain extraction against a plain RGB decode of the same MPEG-4 clips.

Clips come from the synthetic world (H.264, as the book uses them) and are re-encoded to MPEG-4 Part 2 first.
Each stage runs on all clips in one process, best of `--repeats` passes:
- rgb_decode: every frame to RGB (the baseline any RGB model pays);
- vectors_only: decode with motion-vector export, no RGB conversion (what an MV-only network needs);
- extract: CoViAR's representation (RGB frames, per-frame and accumulated MV fields);
- extract_residuals: extract plus the residual of every P-frame;
- dataset_items: CompressedVideoDataset items (3 segments) read back from the cache.

    .venv/bin/python benchmarks/bench_compressed.py [--clips 50 --size 64 --frames 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from actiondistill.data.compressed import extract, extract_all
from actiondistill.data.compressed_codec import decode_rgb, decode_with_vectors, reencode_mpeg4
from actiondistill.data.compressed_dataset import CompressedVideoDataset
from actiondistill.data.synthetic import generate
from actiondistill.io import atomic_write_json
from actiondistill.paths import project_root
from actiondistill.profiler import environment


def _best(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Fastest wall-clock of `repeats` calls and the count the call returns (frames or items)."""
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - start)
    return min(times), count


def _rates(seconds: float, clips: int, frames: int) -> dict:
    return {"seconds": round(seconds, 4), "clips_per_s": round(clips / seconds, 2),
            "frames_per_s": round(frames / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=project_root() / "benchmarks" / "results" / "compressed.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-compressed-") as tmp:
        root = Path(tmp)
        manifest = generate(root / "synth", args.clips, size=args.size, frames=args.frames, workers=1)
        h264 = [root / "synth" / clip["path"] for clip in manifest["clips"]]
        start = time.perf_counter()
        mpeg4 = [reencode_mpeg4(p, root / "mpeg4" / p.name) for p in tqdm(h264, desc="re-encode")]
        reencode_s = time.perf_counter() - start
        n = len(mpeg4)

        def rgb() -> int:
            return sum(len(decode_rgb(p)) for p in mpeg4)

        def vectors() -> int:
            return sum(1 for p in mpeg4 for _ in decode_with_vectors(p, rgb=False))

        def extraction() -> int:
            return sum(extract(p, reencode=False).num_frames for p in mpeg4)

        def with_residuals() -> int:
            total = 0
            for p in mpeg4:
                clip = extract(p, reencode=False)
                for t in clip.p_frames:
                    clip.residual(t)
                total += clip.num_frames
            return total

        results = {}
        for name, fn in (("rgb_decode", rgb), ("vectors_only", vectors), ("extract", extraction),
                         ("extract_residuals", with_residuals)):
            seconds, frames = _best(fn, args.repeats)
            results[name] = _rates(seconds, n, frames)
            print(f"{name:>18}: {results[name]}")

        start = time.perf_counter()
        extract_all(mpeg4, root / "cache", workers=1, progress=False)
        cache_s = time.perf_counter() - start
        cache_bytes = sum(f.stat().st_size for f in (root / "cache").iterdir())
        dataset = CompressedVideoDataset([(p, 0) for p in mpeg4], num_segments=3, train=True, cache_dir=root / "cache",
                                         workers=1, progress=False)
        seconds, items = _best(lambda: sum(1 for i in range(len(dataset)) if dataset[i]), args.repeats)

    rgb_fps = results["rgb_decode"]["frames_per_s"]
    record = {
        "benchmark": "compressed-domain extraction vs RGB decode",
        "clips": n, "size": args.size, "frames_per_clip": args.frames, "repeats": args.repeats,
        "source": "synthetic world (H.264) re-encoded to MPEG-4 Part 2, GOP 12, no B-frames",
        "reencode": _rates(reencode_s, n, n * args.frames),
        **results,
        "extract_all_to_cache": {**_rates(cache_s, n, n * args.frames), "cache_mb": round(cache_bytes / 2**20, 2)},
        "dataset_items_per_s": round(items / seconds, 1),
        "ratio_vs_rgb_decode": {name: round(results[name]["frames_per_s"] / rgb_fps, 3)
                                for name in ("vectors_only", "extract", "extract_residuals")},
        "environment": environment(),
    }
    atomic_write_json(args.out, record)
    print(f"ratios (frames/s vs RGB decode): {record['ratio_vs_rgb_decode']}; wrote {args.out}")


if __name__ == "__main__":
    main()
