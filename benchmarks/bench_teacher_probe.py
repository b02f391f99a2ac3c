"""Benchmark: what chapter 2's candidates reach on a world, as a function of their training budget.

The world-ceiling benchmark bounds the frame embeddings with a flat MLP; this one trains the book's own candidates
(`teacher_choice.run_choice`, the chapter's recipe: frozen `embedded-base` image encoder, cached frame embeddings,
the text tower fine-tuned) on the same world and CLIP, for each `--epochs` budget, with `--seeds` seeds, and records
closed-set and zero-shot top-1, the optimizer steps and the time. It is how the embedded profile's epochs and batch
size were chosen: a teacher measured after too few steps is a measure of the budget, not of the method.

    .venv/bin/python benchmarks/bench_teacher_probe.py [--videos 2400] [--epochs 6 30] [--batch-size 32]
        [--model-kwargs '{"logit_scale_init": 100}'] [--train-token-embedding] [--clip-videos 2400]
        [--amp-dtype bfloat16] [--fusion-lr-mult 10] [--objective actionclip] [--time-reversal 0.5] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from bench_world_ceiling import add_world_arguments, embedded_base, world_manifests

from actiondistill.io import atomic_write_json
from actiondistill.parallel import threads_per_worker

RESULT = Path(__file__).parent / "results" / "teacher_probe.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_world_arguments(parser)
    parser.add_argument("--models", nargs="+", default=["actionclip-meanp", "actionclip-transf"])
    parser.add_argument("--epochs", type=int, nargs="+", default=[6, 30])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--model-kwargs", type=json.loads, default={},
                        help='model options for every candidate as JSON, e.g. \'{"trainable_text_blocks": 1}\'')
    parser.add_argument("--train-token-embedding", action="store_true",
                        help="train the text tower's token table too (default: frozen, as the embedded profile)")
    parser.add_argument("--amp-dtype", choices=["float16", "bfloat16"], default="float16",
                        help="bfloat16: train under bf16 autocast on the CPU too (float16: fp32 on a CPU)")
    parser.add_argument("--fusion-lr-mult", type=float, default=10.0,
                        help="the temporal heads' learning rate over the text tower's (the book's recipe: 10)")
    parser.add_argument("--objective", default="actionclip",
                        help="training objective: actionclip (the recipe's KL video-text loss) or cross_entropy")
    parser.add_argument("--time-reversal", type=float, default=0.0,
                        help="probability that a training clip plays backwards, its label swapped (data.time_reversal)")
    parser.add_argument("--workers", type=int, default=2,
                        help="runs trained side by side, the cores shared out (the embedded profile's grid_workers)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    from actiondistill import teacher_choice as tc
    from actiondistill.config import from_dict
    from actiondistill.data.synthetic import world_preset

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    manifest, clip_manifest = world_manifests(args)
    clips, features = embedded_base(manifest, args.pretrain, clip_manifest)
    weights = clips["checkpoints"]["embedded-base"]
    rows = []
    for epochs in args.epochs:
        base = from_dict({
            "epochs": epochs, "device": "cpu",
            "data": {"dataset": "synthactions", "manifest": str(manifest), "train_split": "train", "test_split": "test",
                     "eval_split": None, "num_frames": 8, "sampler": "tsn", "size": 64,
                     "batch_size": args.batch_size, "flip": False, "time_reversal": args.time_reversal},
            "model": {"backbone": "embedded-base", "pretrained": str(weights), "kwargs": args.model_kwargs},
            "optim": {"lr": args.lr, "fusion_lr_mult": args.fusion_lr_mult, "weight_decay": 0.2, "warmup_epochs": 0.5,
                      "clip_grad": 1.0, "amp_dtype": args.amp_dtype},
            "objective": {"name": args.objective,
                          "kwargs": {"texts": "classes"} if args.objective == "actionclip" else {}},
        })
        prefix = f"teacher-probe-{args.objective}-e{epochs}-r{args.time_reversal:g}-f{args.fusion_lr_mult:g}"
        started = time.perf_counter()
        runs = tc.run_choice(base, {m: list(range(args.seeds)) for m in args.models}, features=features,
                             freeze_token_embedding=not args.train_token_embedding, run_prefix=prefix,
                             progress=True, workers=args.workers)
        seconds = time.perf_counter() - started
        for model, group in runs.groupby("model", sort=False):
            rows.append({"model": model, "epochs": epochs, "batch_size": args.batch_size,
                         "steps": int(group["steps"].iloc[0]), "top1": [round(float(v), 2) for v in group["top1"]],
                         "top1_mean": round(float(group["top1"].mean()), 2),
                         "top1_std": round(float(group["top1"].std(ddof=1)), 2) if len(group) > 1 else 0.0,
                         "zs_top1_mean": round(float(group["zs_top1"].mean()), 2),
                         "train_acc_mean": round(float(group["train_acc"].mean()), 2),
                         "reversal_errors_mean": round(float(group["reversal_errors"].mean()), 1),
                         "train_s_mean": round(float(group["train_s"].mean()), 1)})
            row = rows[-1]
            print(f"{model:<22} epochs {epochs:3d} ({row['steps']} steps): top-1 {row['top1_mean']:5.1f} +- "
                  f"{row['top1_std']:4.1f}, zero-shot {row['zs_top1_mean']:5.1f}, train {row['train_acc_mean']:5.1f}, "
                  f"{row['train_s_mean']:.0f} s/run", flush=True)
        print(f"epochs {epochs}: {seconds:.0f} s", flush=True)
    classes = int(runs["classes"].iloc[0])
    atomic_write_json(args.out, {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "world": {"preset": args.world, "revision": world_preset(args.world).revision, "videos": args.videos,
                  "classes": classes,
                  "chance": round(100.0 / classes, 2), "zs_chance": round(100.0 / int(runs["zs_classes"].iloc[0]), 2)},
        "pretrain": args.pretrain, "model_kwargs": args.model_kwargs,
        "token_embedding": "trained" if args.train_token_embedding else "frozen", "clip_key": clips["key"],
        "seeds": args.seeds,
        "lr": args.lr, "fusion_lr_mult": args.fusion_lr_mult, "amp_dtype": args.amp_dtype,
        "time_reversal": args.time_reversal, "objective": args.objective, "workers": args.workers,
        "threads_per_run": threads_per_worker(args.workers) if args.workers > 1 else torch.get_num_threads(),
        "rows": rows,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
