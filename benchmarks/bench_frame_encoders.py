"""Benchmark: which frame encoder learns where SynthActions' main object is, at a fixed number of steps, and what that
gives the actions.

`bench_world_ceiling.py` showed that the action is recoverable from per-frame object state but not from the
embedded CLIP's frame embeddings. This isolates the frame encoder: each architecture gets the same supervised
multi-task training (cross-entropy on shape, colour, scene and size; smooth L1 on the object's centre, stripe
orientation, radius and visibility from `frame_ground_truth`) on fresh pretraining-pool frames (never repeated
within the default budget, so no encoder can memorise), then is scored on held-out pool clips.

Encoders, all mapping a 64x64 frame to a 256-d vector:
- `embedded-base`: the book's image tower as it is now (`models.conv_stem`: a stride-16 convolutional stem feeding
  a 6-block ViT a 4x4 token grid), chosen by this benchmark;
- `vit-p8`: the first `embedded-base` tower (patch 8, 64 tokens, 6 blocks, class-token pooling);
- `vit-p16`: the same transformer with patch 16 (16 tokens; a quarter of the compute per step);
- `hybrid-p8`: `vit-p8` with a stride-8 convolutional stem (`models.conv_stem.ConvStem`) in place of its patch
  embedding: the same 64 tokens and 6 blocks;
- `hybrid-p16`: a stride-16 stem in place of the patch embedding of a 2-block ViT, i.e. ViT-Hybrid's recipe at
  this scale;
- `cnn-avg` / `cnn-flatten`: the stride-16 stem with global average pooling / a linear head on the flattened 4x4 map.

Measured on the `hard` world (`frame_encoders.json`) and the `standard` world (`frame_encoders_standard.json`, 300
steps): no ViT on 64 tokens got below the mean predictor's position error, the stride-16 stems did.

The position error to beat is the mean predictor's (`mean_predictor_xy_mae`): an encoder at that value has not
learnt where the object is. `action_top1` is what the trained encoder's frozen embeddings give the actions: the
world-ceiling MLP (`bench_world_ceiling.probe_accuracy`, 3 seeds) on 8 embedded frames of each clip of the embedded
world (train/test splits), the quantity the book's frozen-encoder chapters live on. Writes
benchmarks/results/frame_encoders.json.

    .venv/bin/python benchmarks/bench_frame_encoders.py [--steps 300] [--device cuda] [--encoders vit-p8 cnn-avg]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from actiondistill.data.synth_world import DEFAULT_WORLD, PRESETS
from actiondistill.io import atomic_write_json
from actiondistill.pretrain.state import STATE_FIELDS as STATE

RESULT = Path(__file__).parent / "results" / "frame_encoders.json"
ATTRIBUTES = ("shape", "colour", "scene", "size")
ENCODERS = ("embedded-base", "vit-p8", "vit-p16", "hybrid-p8", "hybrid-p16", "cnn-avg", "cnn-flatten")
ACTION_FRAMES = 8  # frames per clip of the action probe, as the book's models
EMBED = 256


def world_description(seed: int, world: str) -> dict:
    """What `pool.render_pool` needs of a world: the embedded profile's size, length, fps, classes and preset."""
    from actiondistill.data.synth_world import action_classes, zeroshot_classes

    classes = action_classes()
    return {"seed": seed, "size": 64, "frames": 32, "fps": 25, "classes": classes, "world": world,
            "num_seen_classes": len(classes) - len(zeroshot_classes())}


def labelled_frames(world: dict, clips: int, per_clip: int) -> dict[str, np.ndarray]:
    """Pool frames with their attribute ids (N, 4) and oracle state (N, 6), as `pretrain.state.STATE_FIELDS`."""
    from actiondistill.data.synth_world import ATTRIBUTES as VOCAB
    from actiondistill.pretrain.pool import render_pool
    from actiondistill.pretrain.state import frame_states

    pool = render_pool(world, clips, per_clip)
    attributes = [pool["clips"][clip]["attributes"] for clip in pool["pool_clip"]]
    ids = [[VOCAB[key].index(values[key]) for key in ATTRIBUTES] for values in attributes]
    state = frame_states({**world, "clips": pool["clips"]}, pool["pool_clip"], pool["frame"])
    return {"frames": pool["frames"], "ids": np.array(ids), "state": state}


def world_clips(videos: int, world: str) -> dict:
    """The embedded world's train and test clips as `ACTION_FRAMES` decoded frames each (segment centres)."""
    from actiondistill.data.sources import synthactions_manifest
    from actiondistill.data.synthetic import load_manifest
    from actiondistill.pretrain.frames import decode_frames

    manifest_path = synthactions_manifest(videos, 64, 32, 0, progress=False, world=world)
    manifest = load_manifest(manifest_path)
    decoded = decode_frames(manifest_path, ["train", "test"], ACTION_FRAMES)
    clips = decoded["clip"][::ACTION_FRAMES]
    splits = np.array([manifest["clips"][i]["split"] for i in clips])
    return {"frames": decoded["frames"], "labels": torch.tensor([manifest["clips"][i]["label"] for i in clips]),
            "train": np.flatnonzero(splits == "train"), "test": np.flatnonzero(splits == "test"),
            "classes": manifest["num_seen_classes"]}


def action_accuracy(encoder: nn.Module, world: dict, device: torch.device, seeds: int = 3) -> list[float]:
    """Test top-1 % of the world-ceiling MLP on the frozen encoder's embeddings of each clip's frames, per seed."""
    from bench_world_ceiling import probe_accuracy

    from actiondistill.pretrain.frames import frames_to_images

    encoder.eval()
    frames = world["frames"]
    with torch.no_grad():
        embedded = torch.cat([encoder(frames_to_images(frames[i:i + 256]).to(device)).float().cpu()
                              for i in range(0, len(frames), 256)]).view(-1, ACTION_FRAMES, EMBED)
    labels, train, test = world["labels"], world["train"], world["test"]
    return [round(probe_accuracy(embedded[train], labels[train], embedded[test], labels[test], world["classes"],
                                 seed, epochs=600)["test"], 2) for seed in range(seeds)]


def build_encoder(name: str) -> nn.Module:
    from open_clip.transformer import VisionTransformer

    from actiondistill.models import create_backbone
    from actiondistill.models.conv_stem import ConvStem, attach_conv_stem

    def vit(patch: int, layers: int = 6) -> VisionTransformer:  # the first embedded-base tower's shape
        return VisionTransformer(image_size=64, patch_size=patch, width=256, layers=layers, heads=4, mlp_ratio=4.0,
                                 output_dim=EMBED)

    if name == "embedded-base":
        return create_backbone("embedded-base").visual
    if name == "vit-p8":
        return vit(8)
    if name == "vit-p16":
        return vit(16)
    if name == "hybrid-p8":
        return attach_conv_stem(vit(8), (32, 64))  # the 8x8 grid of the patch embedding it replaces
    if name == "hybrid-p16":
        return attach_conv_stem(vit(16, layers=2), (32, 64, 128))  # the 4x4 grid of the patch-16 embedding
    if name == "cnn-avg":
        return nn.Sequential(ConvStem(EMBED, (32, 64, 128)), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(EMBED, EMBED))
    if name == "cnn-flatten":
        return nn.Sequential(ConvStem(EMBED, (32, 64, 128)), nn.Flatten(), nn.Linear(EMBED * 16, EMBED))
    raise ValueError(f"encoder {name!r}: expected one of {ENCODERS}")


def train_and_score(name: str, train: dict, test: dict, classes: list[int], world: dict, args: argparse.Namespace,
                    seed: int) -> dict:
    from actiondistill.pretrain.frames import frames_to_images

    torch.manual_seed(seed)
    device = torch.device(args.device)
    encoder = build_encoder(name).to(device)
    head = nn.Linear(EMBED, sum(classes) + len(STATE)).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05, betas=(0.9, 0.98))
    ids, state = torch.from_numpy(train["ids"]), torch.from_numpy(train["state"])

    def losses(images: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, list, torch.Tensor]:
        out = head(encoder(images))
        parts = torch.split(out, [*classes, len(STATE)], dim=1)
        ce = sum(F.cross_entropy(logits, y[:, k]) for k, logits in enumerate(parts[:-1]))
        hits = [(logits.argmax(1) == y[:, k]).float().mean().item() for k, logits in enumerate(parts[:-1])]
        return ce + 4 * F.smooth_l1_loss(parts[-1], r, beta=0.1), hits, (parts[-1] - r).abs().mean(0)

    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for step in tqdm(range(args.steps), desc=f"{name} seed {seed}", leave=False):
        scale = min(1.0, (step + 1) / 20) * 0.5 * (1 + np.cos(np.pi * step / args.steps))  # warm-up, cosine
        for group in opt.param_groups:
            group["lr"] = args.lr * scale
        pick = torch.randint(len(ids), (args.batch,), generator=generator)
        images = frames_to_images(train["frames"][pick.numpy()]).to(device)
        loss, _, _ = losses(images, ids[pick].to(device), state[pick].to(device))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    encoder.eval()
    with torch.no_grad():
        _, hits, errors = losses(frames_to_images(test["frames"]).to(device), torch.from_numpy(test["ids"]).to(device),
                                 torch.from_numpy(test["state"]).to(device))
    actions = action_accuracy(encoder, world, device)
    return {"seed": seed, "seconds_per_step": round(seconds / args.steps, 4),
            "top1": {key: round(100 * hit, 2) for key, hit in zip(ATTRIBUTES, hits, strict=True)},
            "mae": {key: round(float(e), 4) for key, e in zip(STATE, errors.cpu(), strict=True)},
            "action_top1": actions, "action_mean": round(float(np.mean(actions)), 2),
            "action_std": round(float(np.std(actions, ddof=1)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--train-clips", type=int, default=2400, help="pool clips to train on (4 frames each)")
    parser.add_argument("--test-clips", type=int, default=256)
    parser.add_argument("--videos", type=int, default=1200, help="clips of the world the action probe uses")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--world", default=DEFAULT_WORLD, choices=sorted(PRESETS))
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    from actiondistill.data.synth_world import ATTRIBUTES as VOCAB

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    world = world_description(seed=0, world=args.world)
    frames = labelled_frames(world, args.train_clips + args.test_clips, per_clip=4)
    cut = 4 * args.train_clips
    train = {key: value[:cut] for key, value in frames.items()}
    test = {key: value[cut:] for key, value in frames.items()}
    classes = [len(VOCAB[key]) for key in ATTRIBUTES]
    world = world_clips(args.videos, args.world)
    mean_mae = np.abs(test["state"][:, :2] - train["state"][:, :2].mean(0)).mean(0)
    rows = []
    for name in tqdm(args.encoders, desc="encoders"):
        params = sum(p.numel() for p in build_encoder(name).parameters())
        for seed in range(args.seeds):
            scores = train_and_score(name, train, test, classes, world, args, seed)
            rows.append({"encoder": name, "params": params, **scores})
            row = rows[-1]
            tqdm.write(f"{name:<12} seed {seed}  " + " ".join(f"{k} {v:5.1f}" for k, v in row["top1"].items())
                       + f"  x/y MAE {row['mae']['x']:.3f}/{row['mae']['y']:.3f}  action {row['action_mean']:.1f}"
                       + f" +- {row['action_std']:.1f}  {row['seconds_per_step']:.3f} s/step")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    atomic_write_json(args.out, {
        "machine": {"platform": platform.platform(), "device": device, "cpu_count": os.cpu_count(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "recipe": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seeds": args.seeds,
                   "train_frames": cut, "test_frames": len(test["ids"]), "frames_seen": args.steps * args.batch},
        "chance": {key: round(100.0 / n, 2) for key, n in zip(ATTRIBUTES, classes, strict=True)},
        "action_probe": {"videos": args.videos, "frames": ACTION_FRAMES, "train_clips": len(world["train"]),
                         "test_clips": len(world["test"]), "chance": round(100.0 / world["classes"], 2)},
        "mean_predictor_xy_mae": [round(float(v), 4) for v in mean_mae],
        "rows": rows,
    })
    print(f"mean predictor x/y MAE {mean_mae[0]:.3f}/{mean_mae[1]:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
