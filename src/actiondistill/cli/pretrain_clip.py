"""`actiondistill pretrain-clip`: make (or reuse) the embedded CLIPs of a SynthActions world."""

from __future__ import annotations

import argparse
from pathlib import Path

from actiondistill.data.synth_world import DEFAULT_WORLD, PRESETS
from actiondistill.pretrain.pipeline import PretrainConfig

HELP = "pretrain embedded-base CLIP on SynthActions frames and distil embedded-tiny from it (cached under data/clips)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", type=int, default=1200, help="clips in the world (default 1200, the embedded "
                        "profile's)")
    parser.add_argument("--size", type=int, default=64, help="frame size of the world in pixels (default 64)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip of the world (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of the training (default 0)")
    parser.add_argument("--world", default=DEFAULT_WORLD, choices=sorted(PRESETS),
                        help="the world's difficulty preset when --manifest is not given (default standard)")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="use this manifest.json instead of the world given by --videos/--size/--frames/--seed")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of both stages (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size of both stages")
    parser.add_argument("--frames-per-clip", type=int, default=None, help="training frames decoded per clip")
    parser.add_argument("--extra-clips", type=int, default=0,
                        help="clips rendered only for pretraining, outside the world's splits, added to its "
                        "training frames (default 0: the world's training clips alone)")
    parser.add_argument("--attribute-weight", type=float, default=PretrainConfig.attribute_weight,
                        help="weight of the pretraining-only attribute heads (shape, colour, scene, size, position); "
                        f"0: off; default {PretrainConfig.attribute_weight:g}, see PretrainConfig.attribute_weight)")
    parser.add_argument("--state-weight", type=float, default=PretrainConfig.state_weight,
                        help="weight of the pretraining-only state head (the main object's per-frame position, "
                        f"angle, size, visibility; 0: off; default {PretrainConfig.state_weight:g}, see "
                        "PretrainConfig.state_weight)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    parser.add_argument("--force", action="store_true", help="train again even when the cache is complete (or a "
                        "shipped bundle matches)")
    parser.add_argument("--ship", action="store_true", help="then pack both models into weights/embedded/<key>/ "
                        "(int8, with the recipe, training log and SHA-256), where make book finds them")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> dict:
    import dataclasses

    from actiondistill.pretrain import ensure_embedded_clips

    if args.extra_clips < 0:
        raise ValueError(f"--extra-clips {args.extra_clips}: expected 0 or a positive integer")
    for flag, weight in (("--attribute-weight", args.attribute_weight), ("--state-weight", args.state_weight)):
        if weight < 0:
            raise ValueError(f"{flag} {weight}: expected 0 (off) or a positive weight")
    cfg = PretrainConfig(seed=args.seed, device=args.device, extra_clips=args.extra_clips,
                         attribute_weight=args.attribute_weight, state_weight=args.state_weight)
    stage = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size)) if v is not None}
    for key, value in stage.items():
        if value < 1:
            raise ValueError(f"--{key.replace('_', '-')} {value}: expected a positive integer")
    cfg.base = dataclasses.replace(cfg.base, **stage)
    cfg.tiny = dataclasses.replace(cfg.tiny, **stage)
    if args.frames_per_clip is not None:
        if not 1 <= args.frames_per_clip <= args.frames:
            raise ValueError(f"--frames-per-clip {args.frames_per_clip}: expected 1..{args.frames}")
        cfg.frames_per_clip = args.frames_per_clip
        cfg.eval_frames_per_clip = min(cfg.eval_frames_per_clip, args.frames_per_clip)
    if args.manifest is not None:
        manifest = args.manifest
    else:
        from actiondistill.data.sources import synthactions_manifest

        manifest = synthactions_manifest(args.videos, args.size, args.frames, args.seed, progress=not args.no_progress,
                                         world=args.world)
    result = ensure_embedded_clips(manifest, cfg, progress=not args.no_progress, force=args.force)
    report = result["report"]
    bundle = None
    if args.ship:
        from actiondistill.pretrain import shipped

        if result["source"] == "shipped":
            raise ValueError(f"--ship: {result['key']} is already shipped (installed from it); add --force to train "
                             "it again")
        bundle = str(shipped.pack(result["dir"], progress=not args.no_progress))
    return {
        "dir": result["dir"], "key": result["key"], "reused": result["reused"], "source": result["source"],
        "bundle": bundle, "manifest": str(manifest),
        "checkpoints": result["checkpoints"], "report": result["report_path"],
        "models": {name: {"zero_shot": {a: z["top1"] for a, z in m["zero_shot"].items()},
                          "chance": {a: z["chance"] for a, z in m["zero_shot"].items()},
                          "params": m["params"], "train_seconds": m["train_seconds"]}
                   for name, m in report["models"].items()},
        "heldout_frames": report["heldout"]["frames"],
    }


def format_text(result: dict) -> str:
    models = result["models"]
    attributes = list(next(iter(models.values()))["zero_shot"])
    verb = {"cache": "reused", "shipped": "installed the shipped", "trained": "trained"}[result["source"]]
    lines = [f"{verb} embedded CLIPs in {result['dir']}"]
    if result["bundle"]:
        lines.append(f"  packed for shipping into {result['bundle']}")
    lines += [f"  {name}: {path}" for name, path in result["checkpoints"].items()]
    lines.append(f"zero-shot top-1 % on {result['heldout_frames']} held-out frames (val + test clips):")
    lines.append(f"  {'model':<15}" + "".join(f"{a:>9}" for a in attributes) + f"{'visual':>12}{'train s':>9}")
    for name, m in models.items():
        lines.append(f"  {name:<15}" + "".join(f"{m['zero_shot'][a]:>9.1f}" for a in attributes)
                     + f"{m['params']['visual'] / 1e6:>11.2f}M{m['train_seconds']:>9.0f}")
    chance = next(iter(models.values()))["chance"]
    lines.append(f"  {'chance':<15}" + "".join(f"{chance[a]:>9.1f}" for a in attributes))
    return "\n".join(lines)
