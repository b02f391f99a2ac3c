"""`spatial-targets`: compute (or reuse) the CLIP-based spatial targets of a world and measure them.

The targets land in data/cache/spatial_targets/ (see actiondistill.spatial.targets for the key); when the manifest
has attributes, their quality against the ground truth is printed per objective.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "score every clip of a world with a frozen CLIP against spatial vocabularies; cache the soft targets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="a SynthActions manifest.json or its folder")
    parser.add_argument("--clip", required=True, metavar="embedded-base|embedded-tiny|WEIGHTS",
                        help="the frozen CLIP: an embedded CLIP of this world (made or reused as `pretrain-clip "
                        "--manifest` does, with the default recipe), or a weights file / pretrained tag of --backbone")
    parser.add_argument("--backbone", default=None, help="architecture of --clip WEIGHTS (default embedded-base)")
    parser.add_argument("--attributes", default="shape,colour,scene,size",
                        help="manifest attributes to predict, comma-separated (default shape,colour,scene,size); "
                        "'' for none")
    parser.add_argument("--vocab", action="append", default=[], type=Path, metavar="FILE",
                        help="a vocabulary file (one concept per line, e.g. objects.txt); repeatable")
    parser.add_argument("--frames", type=int, default=8, help="frames scored per clip, segment centres (default 8)")
    parser.add_argument("--temperature", type=float, default=0.01,
                        help="softmax temperature over cosine similarities (default 0.01, CLIP's scale of 100)")
    parser.add_argument("--aggregate", choices=("mean", "max"), default="mean",
                        help="how frame probabilities become a clip's (default mean)")
    parser.add_argument("--size", type=int, default=None, help="frame size of the eval transform (default: the "
                        "world's)")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="image-encoder precision of the frame features (default fp32)")
    parser.add_argument("--split", action="append", default=None, metavar="SPLIT",
                        help="measure quality on this split only; repeatable (default: every clip)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> dict:
    from actiondistill.io import read_json
    from actiondistill.pretrain import STAGES
    from actiondistill.spatial import SpatialTargetCache, manifest_vocabularies, read_vocabulary, target_quality
    from actiondistill.spatial.clips import ClipList

    clips = ClipList.from_manifest(args.manifest)
    manifest = read_json(clips.manifest)
    attributes = [a.strip() for a in args.attributes.split(",") if a.strip()]
    vocabularies = list(manifest_vocabularies(manifest, attributes).values()) if attributes else []
    vocabularies += [read_vocabulary(path) for path in args.vocab]
    if not vocabularies:
        raise ValueError("--attributes '' and no --vocab: nothing to predict")
    if args.clip in STAGES:
        if args.backbone not in (None, args.clip):
            raise ValueError(f"--backbone {args.backbone}: --clip {args.clip} is itself the architecture")
        from actiondistill.pretrain import ensure_embedded_clips

        backbone = args.clip
        weights = ensure_embedded_clips(clips.manifest, progress=not args.no_progress)["checkpoints"][args.clip]
    else:
        backbone, weights = args.backbone or "embedded-base", args.clip
    cache = SpatialTargetCache(clips, vocabularies, backbone, weights, size=args.size, frames=args.frames,
                               temperature=args.temperature, aggregate=args.aggregate, dtype=args.dtype,
                               device=args.device, progress=not args.no_progress)
    targets = cache.get()
    has_truth = isinstance(manifest.get("attributes"), dict) and all("attributes" in c for c in manifest["clips"])
    quality = target_quality(targets, clips.manifest, splits=args.split) if has_truth else None
    return {
        "manifest": str(clips.manifest), "cache": str(cache.path), "key": cache.key, "reused": not cache.computed,
        "backbone": backbone, "weights": str(weights), "clips": len(targets.paths), "frames": cache.frames,
        "temperature": cache.temperature, "aggregate": cache.aggregate, "size": cache.size, "dtype": cache.dtype,
        "objectives": {name: {"concepts": len(v), "multi_label": v.multi_label}
                       for name, v in targets.vocabularies.items()},
        "compute_s": targets.meta.get("compute_s"), "frame_embeddings": targets.meta.get("frame_embeddings"),
        "quality_splits": args.split, "quality": quality,
    }


def format_text(result: dict) -> str:
    lines = [f"{'reused' if result['reused'] else 'computed'} spatial targets of {result['clips']} clips: "
             f"{result['cache']}",
             f"  {result['backbone']} ({result['weights']}), {result['frames']} frames per clip, temperature "
             f"{result['temperature']:g}, {result['aggregate']} over frames"]
    for name, objective in result["objectives"].items():
        kind = "multi-label" if objective["multi_label"] else "single-label"
        lines.append(f"  {name}: {objective['concepts']} concepts, {kind}")
    quality = result["quality"]
    if quality:
        where = ", ".join(result["quality_splits"]) if result["quality_splits"] else "all clips"
        lines.append(f"quality against the ground truth ({where}):")
        lines.append(f"  {'objective':<12}{'top-1 %':>9}{'chance %':>10}{'majority %':>12}{'p(true)':>9}{'ECE':>7}")
        for name, q in quality.items():
            lines.append(f"  {name:<12}{q['top1']:>9.1f}{q['chance']:>10.1f}{q['majority']:>12.1f}"
                         f"{q['true_prob']:>9.3f}{q['ece']:>7.3f}")
    return "\n".join(lines)
