"""Benchmark: how much of SynthActions' action label is recoverable from per-frame state, and from CLIP frame features.

Every action model of the book sees a clip as 8 frame embeddings from a frozen CLIP. This measures, with one and
the same classifier (an MLP on the 8 standardised frame vectors, full-batch AdamW, `--seeds` seeds), the closed-set
top-1 on the test clips of a `--world` preset's world from:

- the oracle frame state (`frame_ground_truth`: the main object's centre, stripe angle, radius, visibility, the two
  landmarks and, derived from those, the centre's step since the previous frame and its distance to each landmark,
  per frame), exact and with Gaussian noise of 0.05 and 0.15 frame units added. The derived columns are what a
  flat MLP cannot compute from 700 clips: without them the ceiling measured 62% rather than the rows below;
- the cached `embedded-base` frame embeddings the chapters train on (the embedded CLIP pretrained by
  `pretrain-clip`, made first if missing); alone, with each frame's change since the previous one ("+ step"), and
  with every training clip also played backwards under its reversed label ("+ time reversal", what
  `data.time_reversal` does to a training set).

The oracle rows bound what a perfect frame encoder would give this classifier with this little data; the gap
between them and the CLIP row is the frame encoder's. Writes benchmarks/results/world_ceiling.json.

    .venv/bin/python benchmarks/bench_world_ceiling.py [--world standard] [--videos 2400] [--seeds 3]
        [--clip-videos 2400] [--train-clips 1428 2856]

`--clip-videos` encodes a larger world with the CLIPs of a smaller one (the shipped ones), and `--train-clips` trains
the classifier on a part of the training clips, so that how the top-1 grows with the action data alone is measured
on the same test clips.
"""

from __future__ import annotations

import argparse
import json
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
from actiondistill.engine.time_reversal import reversal_map
from actiondistill.io import atomic_write_json
from actiondistill.pretrain.state import STATE_FIELDS

RESULT = Path(__file__).parent / "results" / "world_ceiling.json"
FRAMES = 8  # frames per clip the classifier sees, as the book's models


def classifier_data(manifest: dict) -> tuple[list[int], list[int], dict[str, list[int]], dict[str, torch.Tensor]]:
    """What the classifier sees of a world: `pick`, the FRAMES positions it takes among the 16 frames
    FrameFeatureCache keeps, `indices`, those frames' numbers in the clip, and each split's clips and labels."""
    from actiondistill.frame_cache import frame_indices

    cached = frame_indices(manifest["frames"], 16)
    pick = [int(round(k * (len(cached) - 1) / (FRAMES - 1))) for k in range(FRAMES)]
    split = {s: [i for i, c in enumerate(manifest["clips"]) if c["split"] == s] for s in ("train", "test")}
    labels = {s: torch.tensor([manifest["clips"][i]["label"] for i in split[s]]) for s in split}
    return pick, [cached[k] for k in pick], split, labels


def top1_summary(test_top1: list[float]) -> dict[str, float | list[float]]:
    """Per-seed test top-1, its mean and its sample standard deviation, rounded for the JSON."""
    test = np.array(test_top1)
    return {"test_top1": [round(float(v), 2) for v in test], "test_mean": round(float(test.mean()), 2),
            "test_std": round(float(test.std(ddof=1)) if len(test) > 1 else 0.0, 2)}


def oracle_features(manifest: dict, clips: list[int], indices: list[int]) -> torch.Tensor:
    """(clips, FRAMES, 14): x, y, cos, sin of the stripe angle, 8 x radius, visible, tree (x, y), house (x, y), the
    centre's step (dx, dy) from the previous sampled frame, and its distance to the tree and to the house."""
    from actiondistill.pretrain.state import clip_ground_truth, state_array

    rows = []
    for i in clips:
        truth = clip_ground_truth(manifest, i)
        state = np.concatenate([state_array(truth), truth["landmarks"].reshape(-1, 4)], axis=1)[indices]
        centre = state[:, :2]
        step = np.diff(centre, axis=0, prepend=centre[:1])
        distance = np.linalg.norm(centre[:, None, :] - state[:, 6:10].reshape(-1, 2, 2), axis=2)
        rows.append(np.concatenate([state, step, distance], axis=1))
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """The world and CLIP options the benchmarks on the embedded profile's world share."""
    parser.add_argument("--world", default=DEFAULT_WORLD, choices=sorted(PRESETS))
    parser.add_argument("--videos", type=int, default=2400, help="clips of the world (the embedded profile's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pretrain", type=json.loads, default={},
                        help='PretrainConfig overrides as JSON, e.g. \'{"base": {"epochs": 6}}\' (default: the recipe)')
    parser.add_argument("--clip-videos", type=int, default=None,
                        help="use the CLIPs of the world of this many clips (same preset and seed), e.g. the shipped "
                             "2,400-clip ones on a larger world, so that only the action data changes (default: "
                             "the CLIPs of --videos' world)")


def world_manifests(args: argparse.Namespace) -> tuple[Path, Path]:
    """The manifest of `--videos`' world and that of the world whose CLIPs encode it (`--clip-videos`)."""
    from actiondistill.data.sources import synthactions_manifest

    manifest = synthactions_manifest(args.videos, 64, 32, 0, progress=False, world=args.world)
    if args.clip_videos in (None, args.videos):
        return manifest, manifest
    return manifest, synthactions_manifest(args.clip_videos, 64, 32, 0, progress=False, world=args.world)


def embedded_base(manifest_path: Path, pretrain: dict, clip_manifest: Path | None = None) -> tuple[dict, object]:
    """The embedded CLIPs of `clip_manifest`'s world (default: this one's; `ensure_embedded_clips`, made first if
    missing) and the cached `embedded-base` frame embeddings of this world the chapters train on (a
    `FrameFeatures`)."""
    from actiondistill.config import from_dict
    from actiondistill.frame_cache import FrameFeatureCache
    from actiondistill.pretrain import PretrainConfig, ensure_embedded_clips

    clips = ensure_embedded_clips(clip_manifest or manifest_path, from_dict(pretrain, cls=PretrainConfig),
                                  progress=True)
    weights = clips["checkpoints"]["embedded-base"]
    return clips, FrameFeatureCache(manifest_path, "embedded-base", weights, 64, dtype="bf16").get()


def clip_features(features, manifest: dict, clips: list[int], pick: list[int]) -> torch.Tensor:
    """(clips, FRAMES, D) of cached frame embeddings `features`, at cached positions `pick`."""
    return torch.stack([features.frames(features.index(manifest["clips"][i]["path"]), pick) for i in clips]).float()


def with_step(x: torch.Tensor) -> torch.Tensor:
    """(clips, FRAMES, 2D): each frame's vector and its change since the previous sampled frame, the derivation
    the oracle's step columns get, so that the flat MLP need not learn differences of 256-d vectors from 700 clips."""
    return torch.cat([x, torch.diff(x, dim=1, prepend=x[:, :1])], dim=-1)


def state_readout(train_x: torch.Tensor, train_s: torch.Tensor, test_x: torch.Tensor, test_s: torch.Tensor,
                  ridge: float = 1.0) -> dict[str, float]:
    """Test mean absolute error of a ridge regression from frame embeddings to each oracle state column: how much
    of the state is linearly in the embedding (the position error to beat is the mean predictor's)."""
    flat = {split: x.reshape(-1, x.shape[-1]).double() for split, x in (("train", train_x), ("test", test_x))}
    mean, std = flat["train"].mean(0), flat["train"].std(0) + 1e-6
    a, b = (flat["train"] - mean) / std, (flat["test"] - mean) / std
    a1, b1 = (torch.cat([m, torch.ones(len(m), 1, dtype=m.dtype)], 1) for m in (a, b))
    y = train_s.reshape(-1, train_s.shape[-1]).double()
    weights = torch.linalg.solve(a1.T @ a1 + ridge * torch.eye(a1.shape[1], dtype=a.dtype), a1.T @ y)
    target = test_s.reshape(-1, test_s.shape[-1]).double()
    error = (b1 @ weights - target).abs().mean(0)
    baseline = (y.mean(0) - target).abs().mean(0)
    return {"mae": {n: round(float(e), 4) for n, e in zip(STATE_FIELDS, error, strict=True)},
            "mean_predictor_mae": {n: round(float(e), 4) for n, e in zip(STATE_FIELDS, baseline, strict=True)}}


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   classes: int, seed: int, epochs: int, train_clips: int | None = None,
                   reversal: torch.Tensor | None = None) -> dict[str, float]:
    """Train the MLP on standardised inputs; top-1 % on train and test. `train_clips`: train on that many of the
    training clips, drawn by `seed`, to see how the top-1 grows with the action data on the same test clips.
    `reversal` (each class's reversed class): every training clip is also trained on played backwards, labelled
    with its reversal (`data.time_reversal`'s augmentation, in the limit of both directions every epoch)."""
    if train_clips is not None:
        if not 0 < train_clips <= len(train_x):
            raise ValueError(f"--train-clips {train_clips}: expected 1..{len(train_x)}, the world's training clips")
        keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:train_clips]
        train_x, train_y = train_x[keep], train_y[keep]
    if reversal is not None:
        train_x, train_y = torch.cat([train_x, train_x.flip(1)]), torch.cat([train_y, reversal[train_y]])
    mean, std = train_x.mean((0, 1)), train_x.std((0, 1)) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(train_x[0].numel(), 256), nn.GELU(),
                        nn.Dropout(0.2), nn.Linear(256, classes))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.05)
    for _ in range(epochs):
        net.train()
        loss = F.cross_entropy(net(train_x), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        return {split: 100.0 * float((net(x).argmax(1) == y).float().mean())
                for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_world_arguments(parser)
    parser.add_argument("--epochs", type=int, default=600, help="full-batch training steps of the MLP")
    parser.add_argument("--train-clips", type=int, nargs="+", default=[None],
                        help="also train on only this many of the training clips (one row set per count; default: "
                             "all), the same test clips")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    from actiondistill.data.synthetic import load_manifest, world_preset

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    manifest_path, clip_manifest = world_manifests(args)
    manifest = load_manifest(manifest_path)
    pick, indices, split, labels = classifier_data(manifest)
    classes = manifest["num_seen_classes"]

    started = time.perf_counter()
    inputs = {"oracle": {s: oracle_features(manifest, split[s], indices) for s in split}}
    oracle_s = time.perf_counter() - started
    clips, features = embedded_base(manifest_path, args.pretrain, clip_manifest)
    inputs["embedded-base"] = {s: clip_features(features, manifest, split[s], pick) for s in split}
    inputs["embedded-base + step"] = {s: with_step(x) for s, x in inputs["embedded-base"].items()}
    noise = {"oracle": 0.0, "oracle + noise 0.05": 0.05, "oracle + noise 0.15": 0.15, "embedded-base": 0.0,
             "embedded-base + step": 0.0, "embedded-base + time reversal": 0.0}
    inputs["embedded-base + time reversal"] = inputs["embedded-base"]
    reversal = torch.tensor(reversal_map(manifest["classes"][:classes]))
    rows = []
    for (name, sigma), train_clips in tqdm([(row, n) for n in args.train_clips for row in noise.items()],
                                           desc="inputs"):
        data = inputs[name if name in inputs else "oracle"]
        generator = torch.Generator().manual_seed(0)
        noisy = {s: x + sigma * torch.randn(x.shape, generator=generator) for s, x in data.items()}
        scores = [probe_accuracy(noisy["train"], labels["train"], noisy["test"], labels["test"], classes, seed,
                                 args.epochs, train_clips, reversal if name.endswith("time reversal") else None)
                  for seed in range(args.seeds)]
        rows.append({"input": name, "dim": int(data["train"].shape[-1]), "noise": sigma,
                     "train_clips": train_clips or len(split["train"]), **top1_summary([s["test"] for s in scores]),
                     "train_mean": round(float(np.mean([s["train"] for s in scores])), 2)})
    fields = len(STATE_FIELDS)  # the oracle's leading columns are the state itself
    readout = state_readout(inputs["embedded-base"]["train"], inputs["oracle"]["train"][..., :fields],
                            inputs["embedded-base"]["test"], inputs["oracle"]["test"][..., :fields])
    atomic_write_json(args.out, {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "world": {"preset": args.world, "revision": world_preset(args.world).revision, "videos": args.videos,
                  "size": 64, "frames": 32, "train_clips": len(split["train"]),
                  "test_clips": len(split["test"]), "classes": classes, "chance": round(100.0 / classes, 2)},
        "pretrain": args.pretrain, "clip_key": clips["key"],
        "classifier": {"frames": FRAMES, "frame_indices": indices, "hidden": 256, "epochs": args.epochs,
                       "seeds": args.seeds},
        "oracle_seconds": round(oracle_s, 2), "rows": rows, "embedded_state_readout": readout,
    })
    for row in rows:
        print(f"{row['input']:<22} {row['train_clips']:5d} train clips: test top-1 {row['test_mean']:5.1f} +- "
              f"{row['test_std']:4.1f}  "
              f"(train {row['train_mean']:5.1f})")
    print(f"state readout MAE {readout['mae']} (mean predictor {readout['mean_predictor_mae']})")
    print(f"chance {100.0 / classes:.1f}; wrote {args.out}")


if __name__ == "__main__":
    main()
