"""`actiondistill compressed`: what the decoder exports from a video's compressed stream, frame by frame."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

HELP = "report a video's picture types, GOP positions and exported motion vectors (optionally after MPEG-4 re-encode)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True, type=Path, help="video file")
    parser.add_argument("--reencode", action="store_true",
                        help="re-encode to MPEG-4 Part 2 (GOP --gop, no B-frames) first, as the compressed track does")
    parser.add_argument("--gop", type=int, default=12, help="GOP length of the re-encode (default 12)")


def run(args: argparse.Namespace) -> dict:
    from actiondistill.data.compressed_codec import motion_summary, reencode_mpeg4

    if not args.reencode:
        return {**motion_summary(args.video), "reencoded": False}
    with tempfile.TemporaryDirectory(prefix="actiondistill-mpeg4-") as tmp:
        summary = motion_summary(reencode_mpeg4(args.video, Path(tmp) / "reencoded.mp4", gop=args.gop))
    return {**summary, "path": str(args.video), "reencoded": True}


def format_text(result: dict) -> str:
    lines = [f"{'frame':>5} {'type':>4} {'gop':>3} {'vectors':>7} {'mean px':>8} {'max px':>7}"]
    for f in result["frames"]:
        lines.append(f"{f['index']:>5} {f['type']:>4} {f['gop_position']:>3} {f['vectors']:>7} "
                     f"{f['mean_motion']:>8.2f} {f['max_motion']:>7.2f}")
    types = ", ".join(f"{k} {v}" for k, v in result["picture_types"].items())
    how = "re-encoded to MPEG-4 Part 2, " if result["reencoded"] else ""
    lines.append(f"{result['path']} ({how}codec {result['codec']}): {result['num_frames']} frames ({types}), "
                 f"{result['gops']} GOPs, {result['vectors']} motion vectors, mean motion {result['mean_motion']:.2f} "
                 f"px, max {result['max_motion']:.2f} px")
    return "\n".join(lines)
