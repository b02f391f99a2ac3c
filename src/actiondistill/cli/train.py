"""`train`: train a video model from a YAML config, on one device or many under torchrun."""

from __future__ import annotations

import argparse

HELP = "train a video model from a YAML config with key=value overrides (multi-GPU: launch with torchrun)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides with dotted keys, e.g. optim.lr=1e-4 data.num_frames=16")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's checkpoint.pt (exactly as if never interrupted)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


#: The packages whose objectives a config may name: each registers its own when imported (the engine, below them,
#: knows none of them).
OBJECTIVE_PACKAGES = ("actiondistill.pretrain.objectives", "actiondistill.pkd", "actiondistill.deit",
                      "actiondistill.spatial")


def load_objectives() -> None:
    """Register every objective of the package, so that a config can name any of them."""
    import importlib

    for package in OBJECTIVE_PACKAGES:
        importlib.import_module(package)


def run(args: argparse.Namespace) -> dict:
    from actiondistill.config import load_config
    from actiondistill.engine.distributed import shutdown_distributed
    from actiondistill.evaluate import scalar_metrics
    from actiondistill.train import build_from_config

    load_objectives()
    cfg = load_config(args.config, args.overrides)
    trainer = build_from_config(cfg, progress=not args.no_progress)
    try:
        result = trainer.fit(resume=args.resume)
    finally:
        if trainer.started_process_group:
            shutdown_distributed()
    return {
        "run_name": trainer.run_name,
        "out_dir": str(trainer.out_dir),
        "epoch": result["epoch"],
        "global_step": result["global_step"],
        "train": result["train"],
        "val": scalar_metrics(result["val"]) if result["val"] else None,
        "best": result["best"],
        "world_size": trainer.env.world_size,
    }


def format_text(result: dict) -> str:
    lines = [f"run {result['run_name']}: {result['epoch']} epochs, {result['global_step']} steps "
             f"({result['world_size']} process(es)) in {result['out_dir']}"]
    if result["train"]:
        lines.append("train: " + ", ".join(f"{k} {v:.4g}" for k, v in result["train"].items()
                                           if k in ("loss", "acc")))
    if result["val"]:
        val = result["val"]
        lines.append(f"val: top1 {val['top1']:.2f}  top5 {val['top5']:.2f}  mean class {val['mean_class_acc']:.2f}"
                     f"  ({val['num_samples']} clips); best {result['best']:.2f}")
    return "\n".join(lines)
