"""Benchmark: which frame encoder learns where SynthActions' main object is, at a fixed number of steps.

`bench_world_ceiling.py` showed that the action is recoverable from per-frame object state but not from the
embedded CLIP's frame embeddings. This isolates the frame encoder: each architecture gets the same supervised
multi-task training (cross-entropy on shape, colour, scene and size; smooth L1 on the object's centre, stripe
orientation, radius and visibility from `frame_ground_truth`) on fresh pretraining-pool frames (never repeated
within the default budget, so no encoder can memorise), then is scored on held-out pool clips.

Encoders, all mapping a 64x64 frame to a 256-d vector:
- `vit-p8`: the `embedded-base` image tower (patch 8, 64 tokens, class-token pooling), as the book uses it;
- `vit-p16`: the same transformer with patch 16 (16 tokens; a quarter of the compute per step);
- `hybrid-p16`: a convolutional stem (four conv-BN-ReLU pairs with max pooling, stride 16) in place of the patch
  embedding of a 2-layer ViT, i.e. ViT-Hybrid's recipe at this scale;
- `cnn-avg` / `cnn-flatten`: the same stem with global average pooling / a linear head on the flattened 4x4 map.

The position error to beat is the mean predictor's (`mean_predictor_xy_mae`): an encoder at that value has not
learnt where the object is. Writes benchmarks/results/frame_encoders.json.

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

from actiondistill.io import atomic_write_json

RESULT = Path(__file__).parent / "results" / "frame_encoders.json"
ATTRIBUTES = ("shape", "colour", "scene", "size")
STATE = ("x", "y", "cos", "sin", "radius x8", "visible")
ENCODERS = ("vit-p8", "vit-p16", "hybrid-p16", "cnn-avg", "cnn-flatten")
EMBED = 256


def world_description(seed: int) -> dict:
    """What `pool.render_pool` needs of a world: the embedded profile's size, length, fps and classes."""
    from actiondistill.data.synth_world import action_classes, zeroshot_classes

    classes = action_classes()
    return {"seed": seed, "size": 64, "frames": 32, "fps": 25, "classes": classes,
            "num_seen_classes": len(classes) - len(zeroshot_classes())}


def labelled_frames(world: dict, clips: int, per_clip: int) -> dict[str, np.ndarray]:
    """Pool frames with their attribute ids (N, 4) and oracle state (N, 6) in the order of STATE."""
    from actiondistill.data.synth_world import ATTRIBUTES as VOCAB
    from actiondistill.data.synthetic import frame_ground_truth, sample_spec
    from actiondistill.pretrain.pool import render_pool

    pool = render_pool(world, clips, per_clip)
    truths = [frame_ground_truth(sample_spec(entry["seed"], entry["label_text"]), world["size"], world["frames"])
              for entry in pool["clips"]]  # once per clip: it covers every frame
    ids, state = [], []
    for clip, frame in zip(pool["pool_clip"], pool["frame"], strict=True):
        truth, attributes = truths[clip], pool["clips"][clip]["attributes"]
        ids.append([VOCAB[key].index(attributes[key]) for key in ATTRIBUTES])
        angle = truth["angle"][frame]
        state.append([truth["x"][frame], truth["y"][frame], np.cos(angle), np.sin(angle), 8 * truth["radius"][frame],
                      float(truth["visible"][frame])])
    return {"frames": pool["frames"], "ids": np.array(ids), "state": np.array(state, np.float32)}


def conv_stem(width: int = EMBED) -> nn.Sequential:
    """64x64 -> (width, 4, 4): four blocks of two 3x3 conv-BN-ReLU and a 2x2 max pool."""
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, width))


def build_encoder(name: str) -> nn.Module:
    from open_clip.transformer import VisionTransformer

    from actiondistill.models import create_backbone

    if name == "vit-p8":
        return create_backbone("embedded-base").visual
    if name == "vit-p16":
        return VisionTransformer(image_size=64, patch_size=16, width=256, layers=6, heads=4, mlp_ratio=4.0,
                                 output_dim=EMBED)
    if name == "hybrid-p16":
        vit = VisionTransformer(image_size=64, patch_size=16, width=256, layers=2, heads=4, mlp_ratio=4.0,
                                output_dim=EMBED)
        vit.conv1 = conv_stem(256)  # same output grid as the 16x16 patch embedding it replaces
        return vit
    if name == "cnn-avg":
        return nn.Sequential(conv_stem(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(EMBED, EMBED))
    if name == "cnn-flatten":
        return nn.Sequential(conv_stem(), nn.Flatten(), nn.Linear(EMBED * 16, EMBED))
    raise ValueError(f"encoder {name!r}: expected one of {ENCODERS}")


def train_and_score(name: str, train: dict, test: dict, classes: list[int], args: argparse.Namespace,
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
    return {"seed": seed, "seconds_per_step": round(seconds / args.steps, 4),
            "top1": {key: round(100 * hit, 2) for key, hit in zip(ATTRIBUTES, hits, strict=True)},
            "mae": {key: round(float(e), 4) for key, e in zip(STATE, errors.cpu(), strict=True)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--train-clips", type=int, default=2400, help="pool clips to train on (4 frames each)")
    parser.add_argument("--test-clips", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    from actiondistill.data.synth_world import ATTRIBUTES as VOCAB

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    world = world_description(seed=0)
    frames = labelled_frames(world, args.train_clips + args.test_clips, per_clip=4)
    cut = 4 * args.train_clips
    train = {key: value[:cut] for key, value in frames.items()}
    test = {key: value[cut:] for key, value in frames.items()}
    classes = [len(VOCAB[key]) for key in ATTRIBUTES]
    mean_mae = np.abs(test["state"][:, :2] - train["state"][:, :2].mean(0)).mean(0)
    rows = []
    for name in tqdm(args.encoders, desc="encoders"):
        params = sum(p.numel() for p in build_encoder(name).parameters())
        for seed in range(args.seeds):
            rows.append({"encoder": name, "params": params, **train_and_score(name, train, test, classes, args, seed)})
            row = rows[-1]
            tqdm.write(f"{name:<12} seed {seed}  " + " ".join(f"{k} {v:5.1f}" for k, v in row["top1"].items())
                       + f"  x/y MAE {row['mae']['x']:.3f}/{row['mae']['y']:.3f}  {row['seconds_per_step']:.3f} s/step")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    atomic_write_json(args.out, {
        "machine": {"platform": platform.platform(), "device": device, "cpu_count": os.cpu_count(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "recipe": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seeds": args.seeds,
                   "train_frames": cut, "test_frames": len(test["ids"]), "frames_seen": args.steps * args.batch},
        "chance": {key: round(100.0 / n, 2) for key, n in zip(ATTRIBUTES, classes, strict=True)},
        "mean_predictor_xy_mae": [round(float(v), 4) for v in mean_mae],
        "rows": rows,
    })
    print(f"mean predictor x/y MAE {mean_mae[0]:.3f}/{mean_mae[1]:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
