"""`actiondistill synth`: write a SynthActions dataset (H.264 clips + manifest.json)."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from actiondistill.data.synth_world import DEFAULT_WORLD, PRESETS

HELP = "render the embedded SynthActions world into a folder of H.264 clips and a manifest.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (re-running resumes it)")
    parser.add_argument("--videos", required=True, type=int, help="number of clips")
    parser.add_argument("--size", type=int, default=64, help="frame width and height in pixels, even (default 64)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    parser.add_argument("--fps", type=int, default=25, help="frame rate of the files (default 25)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--world", default=DEFAULT_WORLD, choices=sorted(PRESETS),
                        help="difficulty preset: 'standard' (a salient actor, the book's world) or 'hard' (the first "
                             "world: a small actor among distractors of its size); default standard")
    parser.add_argument("--zeroshot-fraction", type=float, default=0.15,
                        help="fraction of clips from held-out compositions, split 'zeroshot' (default 0.15)")
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: CPU count)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> dict:
    from actiondistill.data.synthetic import MANIFEST, SPLITS, clip_path, generate

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: is a file; expected a folder (a new one, or one to resume)")
    reused = sum((args.out / clip_path(i)).is_file() for i in range(max(args.videos, 0)))
    start = time.perf_counter()
    manifest = generate(args.out, args.videos, size=args.size, frames=args.frames, fps=args.fps, seed=args.seed,
                        world=args.world, zeroshot_fraction=args.zeroshot_fraction, workers=args.workers,
                        progress=not args.no_progress)
    seconds = time.perf_counter() - start
    counts = Counter(clip["split"] for clip in manifest["clips"])
    return {
        "out": str(args.out),
        "manifest": str(args.out / MANIFEST),
        "world": manifest["world"],
        "clips": len(manifest["clips"]),
        "reused": reused,
        "splits": {split: counts.get(split, 0) for split in SPLITS},
        "classes": len(manifest["classes"]),
        "seen_classes": manifest["num_seen_classes"],
        "zeroshot_classes": len(manifest["zeroshot_classes"]),
        "seconds": round(seconds, 3),
        "clips_per_minute": round(60.0 * len(manifest["clips"]) / max(seconds, 1e-9), 1),
    }


def format_text(result: dict) -> str:
    splits = ", ".join(f"{k} {v}" for k, v in result["splits"].items())
    return (f"wrote {result['clips']} {result['world']}-world clips ({splits}) of {result['classes']} classes "
            f"({result['zeroshot_classes']} held out) to {result['manifest']}, {result['reused']} reused, "
            f"in {result['seconds']:.1f} s ({result['clips_per_minute']:.0f} clips/min)")
