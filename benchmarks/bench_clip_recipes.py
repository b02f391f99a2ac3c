"""Benchmark: how the embedded CLIP's pretraining heads trade its zero-shot knowledge against the action in its
frozen frame embeddings.

The attribute heads (`attribute_weight`) teach the image tower the caption attributes (shape, colour, scene, size,
position), the state head (`state_weight`) the actor's per-frame state. Both shape the 256-d embedding that every
action model of the book sees frozen. For each recipe given, this reports:

- the CLIP's zero-shot top-1 per caption attribute on held-out frames (its pretraining report);
- the closed-set action top-1 of `bench_world_ceiling.py`'s MLP on its frozen `embedded-base` frame embeddings
  (`--seeds` seeds), and the same MLP with the exact per-frame oracle state appended to the embeddings: the second
  says how much of the embeddings' shortfall is missing information and how much is the nuisance the classifier
  must learn to ignore from 65 clips per class;
- how the unit-norm embeddings spread: the norm of their mean direction (near 1: every frame points the same way)
  and the variance within a clip (what moves) against the variance between clips' means (what the clip is).

Recipes are `PretrainConfig` overrides as JSON; each is pretrained first if missing (about 12 minutes on a 2-core
CPU). Writes benchmarks/results/clip_recipes.json.

    .venv/bin/python benchmarks/bench_clip_recipes.py --recipes '{}' '{"state_weight": 4}' \
        '{"attribute_weight": 0, "state_weight": 16}'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch
from bench_world_ceiling import (
    FRAMES,
    add_world_arguments,
    classifier_data,
    clip_features,
    embedded_base,
    oracle_features,
    probe_accuracy,
    top1_summary,
    world_manifests,
)
from tqdm.auto import tqdm

RESULT = Path(__file__).parent / "results" / "clip_recipes.json"


def spread(x: torch.Tensor) -> dict[str, float]:
    """Mean-direction norm, within-clip and between-clip variance of (clips, frames, D) embeddings, made unit-norm."""
    unit = x / x.norm(dim=-1, keepdim=True)
    clip_mean = unit.mean(1, keepdim=True)
    return {"mean_direction_norm": round(float(unit.mean((0, 1)).norm()), 4),
            "within_clip_var": round(float((unit - clip_mean).pow(2).sum(-1).mean()), 4),
            "between_clip_var": round(float((clip_mean - unit.mean((0, 1))).pow(2).sum(-1).mean()), 4)}


def mlp_row(train_x, train_y, test_x, test_y, classes: int, seeds: int, epochs: int) -> dict[str, float | list]:
    return top1_summary([probe_accuracy(train_x, train_y, test_x, test_y, classes, seed, epochs)["test"]
                         for seed in range(seeds)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_world_arguments(parser)
    parser.add_argument("--recipes", type=json.loads, nargs="+", default=[{}],
                        help="PretrainConfig overrides as JSON, one per recipe ('{}': the default recipe)")
    parser.add_argument("--epochs", type=int, default=600, help="full-batch training steps of the MLP")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.pretrain:
        parser.error("--pretrain: give the recipes with --recipes")
    from actiondistill.data.synthetic import load_manifest
    from actiondistill.io import atomic_write_json

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    manifest_path, clip_manifest = world_manifests(args)
    manifest = load_manifest(manifest_path)
    pick, indices, split, labels = classifier_data(manifest)
    classes = manifest["num_seen_classes"]
    oracle = {s: oracle_features(manifest, split[s], indices) for s in split}
    rows = []
    for recipe in tqdm(args.recipes, desc="recipes"):
        clips, features = embedded_base(manifest_path, recipe, clip_manifest)
        emb = {s: clip_features(features, manifest, split[s], pick) for s in split}
        report = clips["report"]
        both = {s: torch.cat([emb[s], oracle[s]], dim=-1) for s in split}
        rows.append({
            "recipe": recipe, "clip_key": clips["key"], "config": report["config"],
            "zero_shot": {model: {a: v["top1"] for a, v in entry["zero_shot"].items()}
                          for model, entry in report["models"].items()},
            "embedded_base": mlp_row(emb["train"], labels["train"], emb["test"], labels["test"], classes, args.seeds,
                                     args.epochs),
            "embedded_base_plus_oracle": mlp_row(both["train"], labels["train"], both["test"], labels["test"],
                                                 classes, args.seeds, args.epochs),
            "spread": spread(emb["train"]),
        })
        row = rows[-1]
        print(f"{json.dumps(recipe):<45} frozen {row['embedded_base']['test_mean']:5.1f} +- "
              f"{row['embedded_base']['test_std']:.1f}, + oracle {row['embedded_base_plus_oracle']['test_mean']:5.1f}; "
              f"zero-shot {row['zero_shot']['embedded-base']}; {row['spread']}", flush=True)
    atomic_write_json(args.out, {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "world": {"preset": args.world, "videos": args.videos, "train_clips": len(split["train"]),
                  "test_clips": len(split["test"]), "classes": classes, "chance": round(100.0 / classes, 2)},
        "classifier": {"frames": FRAMES, "hidden": 256, "epochs": args.epochs, "seeds": args.seeds},
        "rows": rows,
    })
    print(f"chance {100.0 / classes:.1f}; wrote {args.out}")


if __name__ == "__main__":
    main()
