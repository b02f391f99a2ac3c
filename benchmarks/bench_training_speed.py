"""Benchmark: how fast chapter 2's teacher trains on this CPU, per precision and kernel choice, side by side.

The book's cost is its training runs, and chapter 2's recipe (330 steps of ActionCLIP Transf on cached frame
embeddings, the text tower fine-tuned) is what chapters 3, 4, 5 and 7 train with too. Each variant trains the same
run for `--epochs` epochs; the variants take turns run by run for `--rounds` rounds, so load on the shared machine
falls on all of them alike, and the JSON keeps every round's training seconds and their median ratio to the first.

- `fp32, per-tensor AdamW, flash attention`: the engine before 2026-12-07;
- `bf16 autocast`: `optim.amp_dtype=bfloat16` alone;
- `bf16 autocast, fused AdamW`;
- `bf16 autocast, fused AdamW, math attention`: what the engine does now (`engine.optim.build_optimizer`,
  `train._step_attention`).

    .venv/bin/python benchmarks/bench_training_speed.py [--epochs 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
from collections.abc import Iterator
from pathlib import Path

import torch
from bench_world_ceiling import add_world_arguments, embedded_base, world_manifests

from actiondistill.io import atomic_write_json

RESULT = Path(__file__).parent / "results" / "training_speed.json"
#: name -> (optim.amp_dtype, fused AdamW, math attention on the CPU)
VARIANTS = {
    "fp32, per-tensor AdamW, flash attention": ("float16", False, False),
    "bf16 autocast": ("bfloat16", False, False),
    "bf16 autocast, fused AdamW": ("bfloat16", True, False),
    "bf16 autocast, fused AdamW, math attention": ("bfloat16", True, True),
}


@contextlib.contextmanager
def kernels(fused: bool, math_attention: bool) -> Iterator[None]:
    """The engine with its optimizer and attention choices set as asked (restored afterwards)."""
    import actiondistill.train as train
    from actiondistill.engine.optim import param_groups

    build, attention = train.build_optimizer, train._step_attention

    def per_tensor(model, cfg):
        return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                 weight_decay=cfg.weight_decay, foreach=False)

    if not fused:
        train.build_optimizer = per_tensor
    if not math_attention:
        train._step_attention = lambda device: contextlib.nullcontext()
    try:
        yield
    finally:
        train.build_optimizer, train._step_attention = build, attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_world_arguments(parser)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run (11 steps each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    from actiondistill import teacher_choice as tc
    from actiondistill.config import from_dict

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    manifest, clip_manifest = world_manifests(args)
    clips, features = embedded_base(manifest, args.pretrain, clip_manifest)

    def recipe(amp_dtype: str):
        return from_dict({
            "epochs": args.epochs, "device": "cpu",
            "data": {"dataset": "synthactions", "manifest": str(manifest), "train_split": "train",
                     "test_split": "test", "eval_split": None, "num_frames": 8, "sampler": "tsn", "size": 64,
                     "batch_size": 128, "flip": False},
            "model": {"backbone": "embedded-base", "pretrained": str(clips["checkpoints"]["embedded-base"]),
                      "kwargs": {"logit_scale_init": 100.0}},
            "optim": {"lr": 4e-4, "fusion_lr_mult": 10.0, "weight_decay": 0.2, "warmup_epochs": 0.5,
                      "clip_grad": 1.0, "amp_dtype": amp_dtype},
            "objective": {"name": "actionclip", "kwargs": {"texts": "classes"}},
        })

    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    load_before = os.getloadavg()
    for round_ in range(args.rounds + 1):  # round 0 warms the caches and is not kept
        for i, (name, (amp_dtype, fused, math_attention)) in enumerate(VARIANTS.items()):
            with kernels(fused, math_attention):
                runs = tc.run_choice(recipe(amp_dtype), {"actionclip-transf": [1000 + round_]}, features=features,
                                     freeze_token_embedding=True, run_prefix=f"training-speed-r{round_}-v{i}",
                                     progress=False)
            if round_:
                seconds[name].append(round(float(runs["train_s"].iloc[0]), 3))
        if round_:
            print(f"round {round_}: " + ", ".join(f"{n}: {s[-1]:.1f} s" for n, s in seconds.items()), flush=True)
    reference = seconds[next(iter(VARIANTS))]
    rows = [{"variant": name, "train_s": values, "median_s": statistics.median(values),
             "speedup_vs_first": round(statistics.median(r / v for r, v in zip(reference, values, strict=True)), 3)}
            for name, values in seconds.items()]
    for row in rows:
        print(f"{row['variant']:<46} median {row['median_s']:.2f} s, {row['speedup_vs_first']:.2f}x")
    atomic_write_json(args.out, {
        "benchmark": "training_speed",
        "what": f"chapter 2's teacher (ActionCLIP Transf, batch 128, cached frame embeddings), {args.epochs} epochs "
                f"({args.epochs * 11} optimizer steps) per run; variants interleaved run by run; speed-up = median "
                "over rounds of the first variant's seconds over the variant's",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "rounds": args.rounds, "rows": rows,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
