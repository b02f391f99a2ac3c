"""`eval`: evaluate a checkpoint on a split (closed-set or zero-shot) and write a results record."""

from __future__ import annotations

import argparse

HELP = "evaluate a trained checkpoint on a split (test, val, train or zeroshot) and write a results record"

SPLITS = ("test", "val", "train", "zeroshot")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt or best.pt of a run (or bare weights "
                        "with --config)")
    parser.add_argument("--config", help="YAML config (default: the config stored in the checkpoint)")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="which split; zeroshot scores the held-out clips against the held-out class texts only")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. eval.clips=3 data.sampler=dense eval.batch_size=32")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> dict:
    import time
    from dataclasses import replace

    from actiondistill.config import apply_override, from_dict, load_config, to_dict
    from actiondistill.engine.checkpoint import load_checkpoint, model_state
    from actiondistill.engine.distributed import DistEnv, init_distributed, resolve_device, shutdown_distributed
    from actiondistill.engine.records import build_record, write_record
    from actiondistill.evaluate import evaluate
    from actiondistill.train import build_dataset, build_model, default_run_name

    started = time.time()
    checkpoint = load_checkpoint(args.checkpoint)
    if args.config:
        cfg = load_config(args.config, args.overrides)
    elif isinstance(checkpoint.get("config"), dict):
        cfg = from_dict(checkpoint["config"], source=f"{args.checkpoint} (stored config)")
        for text in args.overrides:
            cfg = apply_override(cfg, text)
    else:
        raise ValueError(f"{args.checkpoint}: holds no config (bare weights); pass --config FILE")
    env = DistEnv.from_env()
    device = resolve_device(cfg.device, env)
    started_group = init_distributed(env, device, cfg.distributed.backend)
    try:
        # The checkpoint holds every weight: skip loading the backbone's pretrained file and init checkpoint.
        model = build_model(replace(cfg.model, checkpoint=None, pretrained=None), cfg.data.num_frames)
        model.load_state_dict(model_state(checkpoint))
        split = {"test": cfg.data.test_split, "val": cfg.data.eval_split, "train": cfg.data.train_split,
                 "zeroshot": cfg.data.zeroshot_split}[args.split]
        if not split:
            raise ValueError(f"--split {args.split}: the config names no such split (data.eval_split is null)")
        data = build_dataset(cfg, split, train=False)
        result = evaluate(model.to(device), data, views=cfg.eval.clips,
                          batch_size=cfg.eval.batch_size or cfg.data.batch_size, device=device,
                          num_workers=cfg.data.num_workers, amp=cfg.optim.amp and device.type == "cuda",
                          progress=not args.no_progress and env.is_main, desc=f"eval {split}")
    finally:
        if started_group:
            shutdown_distributed()
    result.update(split=split, zero_shot=args.split == "zeroshot", checkpoint=str(args.checkpoint))
    name = f"{checkpoint.get('run_name') or default_run_name(cfg)}-eval-{args.split}"
    if env.is_main:
        record = build_record("eval", name, result, config=to_dict(cfg), seed=cfg.seed, model=model, device=device,
                              started=started, checkpoint=str(args.checkpoint), split=split)
        result["record"] = str(write_record(record, cfg.results_dir))
    return result


def format_text(result: dict) -> str:
    kind = "zero-shot " if result["zero_shot"] else ""
    text = (f"{kind}{result['split']}: top1 {result['top1']:.2f}  top{result['topk']} {result['top5']:.2f}  "
            f"mean class {result['mean_class_acc']:.2f}  ({result['num_samples']} clips, "
            f"{result['num_classes']} classes, {result['views']} view(s))")
    if result.get("record"):
        text += f"\nrecord: {result['record']}"
    return text
