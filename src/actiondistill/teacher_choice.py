"""Chapter 2's experiment: train every candidate teacher the same way, measure it the same way, choose by a rule.

The candidates are ActionCLIP with each of its fusion heads, X-CLIP and ViFi-CLIP, all on one CLIP backbone with one
recipe: the one Trainer, the ActionCLIP objective, the same epochs, batch size, learning rates, frames and seeds.

Two regimes, one switch (`freeze_image_encoder`):
- frozen (the embedded profile, a 2-core CPU): the CLIP image encoder is frozen; models whose `encode_video` is
  "encode each frame, then fuse" train on cached frame embeddings (actiondistill.frame_cache), while the text encoder,
  the logit scale and the model's own modules train. X-CLIP's cross-frame messages live inside the image encoder,
  so it trains on pixels with the CLIP image weights frozen and its messages, integration transformer and prompt
  generator trainable. No candidate sees pixel augmentation (cached features cannot have it): TSN frame sampling
  is the only training randomness.
- full fine-tuning (the real profiles, a GPU): every candidate trains end to end on pixels with ActionCLIP's
  augmentation.

`selection_rule` is fixed before any result is seen; `select_teacher` applies it to the measured summary.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from actiondistill.chapter_records import read_record, record_path
from actiondistill.config import TrainConfig, to_dict
from actiondistill.io import atomic_write_json, read_json

#: Registry names of the candidates, in the order tables list them.
CANDIDATES = ("actionclip-meanp", "actionclip-conv1d", "actionclip-lstm", "actionclip-transf", "actionclip-transf_cls",
              "xclip", "vificlip")
#: How the book names them.
LABELS = {
    "actionclip-meanp": "ActionCLIP meanP",
    "actionclip-conv1d": "ActionCLIP Conv1D",
    "actionclip-lstm": "ActionCLIP LSTM",
    "actionclip-transf": "ActionCLIP Transf",
    "actionclip-transf_cls": "ActionCLIP Transf_cls",
    "xclip": "X-CLIP",
    "vificlip": "ViFi-CLIP",
}
#: Published figures (REFERENCE.md), top-1 %; the K400 rows are ViT-B/16 unless said otherwise.
REPORTED = [
    {"model": "ActionCLIP", "benchmark": "Kinetics-400", "frames": 8, "top1": 81.09, "gflops": math.nan},
    {"model": "ActionCLIP", "benchmark": "Kinetics-400", "frames": 16, "top1": 81.68, "gflops": math.nan},
    {"model": "ActionCLIP", "benchmark": "Kinetics-400", "frames": 32, "top1": 82.32, "gflops": math.nan},
    {"model": "X-CLIP", "benchmark": "Kinetics-400", "frames": 8, "top1": 83.8, "gflops": 145.0},
    {"model": "ViFi-CLIP", "benchmark": "Kinetics-400", "frames": 16, "top1": 83.9, "gflops": 281.0},
    {"model": "ActionCLIP", "benchmark": "HMDB51 zero-shot", "frames": math.nan, "top1": 40.8, "gflops": math.nan},
    {"model": "X-CLIP", "benchmark": "HMDB51 zero-shot", "frames": 32, "top1": 44.6, "gflops": math.nan},
    {"model": "ViFi-CLIP", "benchmark": "HMDB51 zero-shot", "frames": math.nan, "top1": 51.3, "gflops": math.nan},
    {"model": "ActionCLIP", "benchmark": "UCF101 zero-shot", "frames": math.nan, "top1": 58.3, "gflops": math.nan},
    {"model": "X-CLIP", "benchmark": "UCF101 zero-shot", "frames": 32, "top1": 72.0, "gflops": math.nan},
    {"model": "ViFi-CLIP", "benchmark": "UCF101 zero-shot", "frames": math.nan, "top1": 76.8, "gflops": math.nan},
]
WEIGHTS_NAME = "model.pt"


def reported_table() -> pd.DataFrame:
    """The published numbers, labelled as reported (not measured here); GFLOPs as the papers give them."""
    table = pd.DataFrame(REPORTED)
    table.insert(0, "source", "reported")
    return table


#: Candidates that cannot teach chapters which train on cached frame embeddings, and why.
CACHED_FEATURE_EXCLUSIONS = {
    "xclip": "its frames exchange messages inside the image encoder, so it cannot read the cached frame embeddings "
             "the later chapters distil on",
}


def excluded_teachers(freeze_image_encoder: bool) -> dict[str, str]:
    """{candidate: reason} of the candidates the rule may not pick: with a frozen, cached image encoder, X-CLIP."""
    return dict(CACHED_FEATURE_EXCLUSIONS) if freeze_image_encoder else {}


def selection_rule(max_slowdown: float = 1.25, tie_points: float = 1.0, latency_frames: int = 16,
                   excluded: Mapping[str, str] | None = None) -> str:
    """The rule in words, to state before the results."""
    rule = (f"among the candidates whose {latency_frames}-frame latency is at most {max_slowdown:g}x the fastest "
            f"candidate's, take the highest mean closed-set top-1; candidates within {tie_points:g} point(s) of it "
            "count as tied, and the tie goes to the highest mean zero-shot top-1")
    if excluded:
        rule += " (measured, but not eligible whatever its scores: " + "; ".join(
            f"{LABELS.get(name, name)}, because {why}" for name, why in excluded.items()) + ")"
    return rule


def model_kwargs(name: str, fusion_layers: int) -> dict[str, Any]:
    """Per-candidate constructor options: transformer depth for ActionCLIP's transformer heads, nothing else."""
    return {"fusion_layers": fusion_layers} if name.startswith("actionclip-transf") else {}


def candidate_config(base: TrainConfig, name: str, seed: int, run_prefix: str, fusion_layers: int,
                     runs_dir: str | Path | None = None) -> TrainConfig:
    """`base` with the candidate's model, the seed, and a run name / folder of its own; the base's model options
    (e.g. `trainable_text_blocks`) apply to every candidate, under the candidate's own."""
    from actiondistill.paths import data_dir

    run_name = f"{run_prefix}-{name}-seed{seed}"
    out_dir = Path(runs_dir) if runs_dir is not None else data_dir() / "runs" / run_prefix
    kwargs = {**base.model.kwargs, **model_kwargs(name, fusion_layers)}
    model = dataclasses.replace(base.model, name=name, kwargs=kwargs)
    return dataclasses.replace(base, seed=seed, model=model, run_name=run_name, out_dir=str(out_dir / run_name))


def frozen_pixel_kwargs(cfg: TrainConfig) -> TrainConfig:
    """Pixels exactly as the cached features see them: full-frame crop, no flip, jitter or grayscale."""
    kwargs = {**cfg.data.kwargs, "train_transform": {"scales": [1.0], "jitter_p": 0.0, "grayscale_p": 0.0}}
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, flip=False, kwargs=kwargs))


def choice_datasets(cfg: TrainConfig, features: Any = None) -> dict[str, Any]:
    """Train, test, (with `data.eval_split`) validation and (SynthActions only) zero-shot datasets: cached features
    when given, else pixels.

    Train, test and validation are restricted to the seen classes, zero-shot to the held-out ones (labels
    renumbered).
    """
    from actiondistill.train import _seen_or_heldout, build_dataset

    d = cfg.data
    synthetic = d.dataset not in ("hmdb51", "ucf101")
    splits = {"train": (d.train_split, True), "test": (d.test_split, False)}
    if d.eval_split:
        splits["val"] = (d.eval_split, False)
    if synthetic:
        splits["zeroshot"] = (d.zeroshot_split, False)
    if features is None:
        return {key: build_dataset(cfg, split, train) for key, (split, train) in splits.items()}
    from actiondistill.data.sampling import FrameSampler
    from actiondistill.frame_cache import FrameFeatureDataset, manifest_file
    from actiondistill.paths import data_dir

    manifest = manifest_file(d.manifest if Path(d.manifest).is_absolute() else data_dir() / d.manifest)
    out = {}
    for key, (split, train) in splits.items():
        sampler = FrameSampler(kind=d.sampler, frames=d.num_frames, train=train, **d.kwargs.get("sampler", {}))
        dataset = FrameFeatureDataset(features, manifest, split, sampler=sampler, seed=cfg.seed)
        out[key] = _seen_or_heldout(dataset, manifest, split, zero_shot=split == d.zeroshot_split)
    return out


def train_candidate(cfg: TrainConfig, features: Any = None, freeze_image_encoder: bool = True,
                    freeze_token_embedding: bool = False, progress: bool = True,
                    wrap_train: Callable[[Any], Any] | None = None,
                    measure: Callable[[Any, Mapping[str, Any]], Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Train one candidate with one seed, evaluate it closed-set and zero-shot, and return one tidy row.

    With `freeze_image_encoder`, `features` (a FrameFeatures of the same backbone weights) replaces pixels for the
    models that accept frame embeddings. `freeze_token_embedding` keeps the text tower's token table (most of its
    parameters, of which a label set uses a few dozen rows) fixed: a cheaper step, the text transformer still
    trains. The run folder keeps the final weights (`model.pt`), not the optimiser state; an evaluation record
    `<run_name>-eval` joins the Trainer's record in the results folder.

    Teachers in `cfg.teachers` are built frozen (`build_teacher`) and handed to the Trainer (distillation objectives
    such as `deit_twohead`); on cached features they receive the same frame embeddings as the student. A model with
    selectable heads (`actionclip-twohead`) is scored with its current head (the DeiT average) and the row adds
    `top1_<head>` (and `zs_top1_<head>`) for each of its other heads.

    Two hooks let a later chapter train its own variant without a second copy of this function: `wrap_train`
    replaces the training set by a wrapper of it (e.g. `SpatialTargetDataset`, whose items carry extra targets for
    the objective), and `measure(model, datasets)` returns extra row entries measured on the trained model and the
    unwrapped train / test / zero-shot datasets (its time counts in `eval_s`).
    """
    from actiondistill.engine.records import build_record, count_parameters, write_record
    from actiondistill.engine.seeding import seed_everything
    from actiondistill.evaluate import class_texts_of, evaluate, evaluate_heads, scalar_metrics, zero_shot_eval
    from actiondistill.models.checkpoints import save_weights
    from actiondistill.train import Trainer, build_model, build_teacher

    seed_everything(cfg.seed)
    model = build_model(cfg.model, cfg.data.num_frames)
    use_features = freeze_image_encoder and features is not None and model.accepts_frame_embeddings
    if freeze_image_encoder:
        model.backbone.visual.requires_grad_(False)
        if not use_features:
            cfg = frozen_pixel_kwargs(cfg)
    if freeze_token_embedding:
        model.backbone.token_embedding.requires_grad_(False)
    data = choice_datasets(cfg, features if use_features else None)
    teachers = {t.name: build_teacher(cfg, t, class_texts_of(data["train"])) for t in cfg.teachers}
    train_data = wrap_train(data["train"]) if wrap_train is not None else data["train"]
    trainer = Trainer(cfg, model, train_data, val_data=data.get("val"), teachers=teachers, progress=progress,
                      checkpoints=False)  # the run is its final weights; the curve is in `val_curve`
    started = time.perf_counter()
    fit = trainer.fit()
    train_s = time.perf_counter() - started
    model.eval()  # from here on only evaluation: the class texts are encoded once and stay cached
    out_dir = Path(trainer.out_dir)
    save_weights(model, out_dir / WEIGHTS_NAME)

    started = time.perf_counter()
    batch = cfg.eval.batch_size or cfg.data.batch_size
    closed = evaluate(model, data["test"], batch_size=batch, progress=progress, desc="test")
    zero = None
    if "zeroshot" in data:
        zero = zero_shot_eval(model, data["zeroshot"], class_texts=class_texts_of(data["zeroshot"]), batch_size=batch,
                              progress=progress, desc="zero-shot")
    heads: dict[str, float] = {}
    if hasattr(model, "HEADS"):
        others = [h for h in model.HEADS if h != model.head]
        for key, split in (("top1", "test"), ("zs_top1", "zeroshot")):
            if split in data:
                scores = evaluate_heads(model, data[split], class_texts_of(data[split]), heads=others,
                                        batch_size=batch, progress=False)
                heads.update({f"{key}_{h}": r["top1"] for h, r in scores.items()})
    measured = dict(measure(model, data)) if measure is not None else {}
    eval_s = time.perf_counter() - started
    row = {
        "model": cfg.model.name,
        "seed": cfg.seed,
        "top1": closed["top1"],
        "top5": closed["top5"],
        "mean_class_acc": closed["mean_class_acc"],
        "zs_top1": zero["top1"] if zero else math.nan,
        "zs_mean_class_acc": zero["mean_class_acc"] if zero else math.nan,
        "classes": closed["num_classes"],
        "zs_classes": zero["num_classes"] if zero else 0,
        "train_loss": fit["train"]["loss"],
        "train_acc": fit["train"]["acc"],
        "epochs": fit["epoch"],
        "steps": fit["global_step"],
        "train_s": train_s,
        "eval_s": eval_s,
        **run_inputs(use_features, freeze_image_encoder, freeze_token_embedding),
        "trainable_m": count_parameters(model, trainable=True) / 1e6,
        "params_m": count_parameters(model) / 1e6,
        "weights": str(out_dir / WEIGHTS_NAME),
        "reversal_errors": reversal_errors(closed["confusion"], closed["classes"]),
        "val_curve": val_curve(trainer.history),
        **heads,
        **measured,
    }
    metrics = {"test": scalar_metrics(closed), "zeroshot": scalar_metrics(zero) if zero else None, "row": row}
    write_record(build_record("evaluation", f"{trainer.run_name}-eval", metrics, config=to_dict(cfg), seed=cfg.seed,
                              model=model, device=trainer.device), cfg.results_dir)
    return row



def val_curve(history: Sequence[Mapping[str, Any]], metric: str = "top1") -> list[list[float]]:
    """[[epoch, validation `metric`], ...] of a Trainer's history (empty without validation): whether a run had
    flattened before its training stopped, which its final test score alone cannot tell."""
    return [[int(h["epoch"]), float(h[metric])] for h in history if h["split"] == "val" and metric in h]


def run_inputs(cached: bool, freeze_image_encoder: bool, freeze_token_embedding: bool) -> dict[str, str]:
    """How a run's row (`train_candidate`) names its inputs; `recorded_row` matches runs on them."""
    return {"input": "cached frame embeddings" if cached else "pixels",
            "image_encoder": "frozen" if freeze_image_encoder else "fine-tuned",
            "token_embedding": "frozen" if freeze_token_embedding else "trained"}


def recorded_row(cfg: TrainConfig, weights: str | Path, inputs: Mapping[str, str]) -> dict[str, Any] | None:
    """The evaluation row of the run that made `weights` when it is exactly the run `cfg` describes (same config but
    for its name and folder, same `inputs` as `run_inputs` gives), else None: a later chapter's reuse check."""
    from actiondistill.paths import results_dir

    path = Path(cfg.results_dir or results_dir()) / f"{Path(weights).parent.name}-eval.json"
    if not Path(weights).is_file() or not path.is_file():
        return None
    record = read_json(path)
    names = ("run_name", "out_dir")
    same_config = ({k: v for k, v in record.get("config", {}).items() if k not in names}
                   == {k: v for k, v in to_dict(cfg).items() if k not in names})
    row = record.get("metrics", {}).get("row") or {}
    same_inputs = all(row.get(k) == v for k, v in inputs.items())
    return dict(row) if same_config and same_inputs and row.get("weights") == str(weights) else None

def reversal_errors(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> float:
    """Share (%) of closed-set errors that name the clip's time-reversal partner (SynthActions; NaN elsewhere).

    A model blind to frame order cannot tell a clip from its reversal, so its errors concentrate there.
    """
    from actiondistill.data.synthetic import reverse_action

    index = {c: i for i, c in enumerate(classes)}
    errors = partner = 0
    for true, row in enumerate(confusion):
        errors += sum(row) - row[true]
        try:
            other = reverse_action(classes[true])
        except (KeyError, ValueError):
            return math.nan
        if other in index:
            partner += row[index[other]]
    return 100.0 * partner / errors if errors else math.nan


def run_choice(base: TrainConfig, seeds: Mapping[str, Sequence[int]], features: Any = None,
               freeze_image_encoder: bool = True, freeze_token_embedding: bool = False, fusion_layers: int = 2,
               epochs: Mapping[str, int] | None = None, run_prefix: str = "teacher-choice",
               runs_dir: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Train and evaluate every candidate named in `seeds` (name -> its seeds); one row per (candidate, seed).

    `epochs` overrides `base.epochs` for some candidates (where one's cost forces a smaller budget). Rows follow the
    order of `seeds`; `progress` shows a bar over the runs.
    """
    from tqdm.auto import tqdm

    unknown = sorted(set(seeds) - set(CANDIDATES))
    if unknown:
        raise ValueError(f"candidates {unknown}: unknown; expected names from {CANDIDATES}")
    jobs = [(name, seed) for name, names_seeds in seeds.items() for seed in names_seeds]
    if not jobs:
        raise ValueError("seeds: expected at least one candidate with at least one seed")
    rows = []
    bar = tqdm(jobs, desc="candidates x seeds", disable=not progress)
    for name, seed in bar:
        bar.set_postfix(model=name, seed=seed)
        cfg = candidate_config(base, name, seed, run_prefix, fusion_layers, runs_dir)
        if epochs and name in epochs:
            cfg = dataclasses.replace(cfg, epochs=int(epochs[name]))
        rows.append(train_candidate(cfg, features, freeze_image_encoder, freeze_token_embedding, progress=False))
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame, metrics: Sequence[str] = ("top1", "zs_top1", "train_s")) -> pd.DataFrame:
    """Mean, std, min and max over seeds per candidate (columns `<metric>_<stat>`), plus the seed count."""
    grouped = runs.groupby("model", sort=False)
    table = grouped[list(metrics)].agg(["mean", "std", "min", "max"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table


def pareto_front(table: pd.DataFrame, latency: str = "latency_ms", accuracy: str = "top1_mean") -> pd.Series:
    """True for rows no other row beats: none is at least as fast and at least as accurate, and better in one."""
    lat, acc = table[latency].to_numpy(), table[accuracy].to_numpy()
    front = []
    for i in range(len(table)):
        dominated = any(lat[j] <= lat[i] and acc[j] >= acc[i] and (lat[j] < lat[i] or acc[j] > acc[i])
                        for j in range(len(table)) if j != i)
        front.append(not dominated)
    return pd.Series(front, index=table.index, name="pareto")


def select_teacher(table: pd.DataFrame, max_slowdown: float = 1.25, tie_points: float = 1.0,
                   latency: str = "latency_ms", accuracy: str = "top1_mean",
                   zero_shot: str = "zs_top1_mean", excluded: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Apply `selection_rule` to a table indexed by candidate with latency, accuracy and zero-shot columns.

    A missing zero-shot score (real datasets) leaves ties to the closed-set accuracy. `excluded` candidates
    ({name: reason}, e.g. `excluded_teachers(True)`) take no part, not even as the fastest. Returns the teacher and
    the steps that led to it (eligible and tied candidates, the fastest latency, the exclusions).
    """
    excluded = dict(excluded or {})
    missing = [c for c in (latency, accuracy, zero_shot) if c not in table.columns]
    if missing:
        raise ValueError(f"select_teacher: columns {missing} missing; the table has {list(table.columns)}")
    table = table.drop(index=[name for name in excluded if name in table.index])
    if table.empty:
        raise ValueError(f"select_teacher: no candidates left (excluded: {sorted(excluded)})")
    fastest = float(table[latency].min())
    eligible = table[table[latency] <= max_slowdown * fastest]
    best = float(eligible[accuracy].max())
    tied = eligible[eligible[accuracy] >= best - tie_points]
    teacher = str(tied.sort_values([zero_shot, accuracy], ascending=False, na_position="last").index[0])
    return {"teacher": teacher, "fastest_ms": fastest, "eligible": [str(n) for n in eligible.index],
            "tied": [str(n) for n in tied.index], "best_top1": best,
            "rule": selection_rule(max_slowdown, tie_points, excluded=excluded), "max_slowdown": max_slowdown,
            "tie_points": tie_points, "excluded": excluded}


def latency_table(names: Sequence[str], backbone: str, class_texts: Sequence[str], frames: Sequence[int] = (8, 16, 32),
                  fusion_layers: int = 2, device: str = "cpu", warmup: int = 2, iters: int = 8, rounds: int = 3,
                  progress: bool = True) -> pd.DataFrame:
    """Latency (batch 1) of classifying one clip of pixels among `class_texts`, per candidate and frame count.

    What is timed is `predict_proba` with the class texts' embeddings already cached (they are computed once in
    deployment): the image encoder on every frame, the model's temporal part, and for X-CLIP its per-video prompt
    generator. Every model is built with one template, which shortens the untimed text encoding; per clip, each
    further template would add one (C, D) product over cached embeddings, negligible beside the image encoder.
    Random weights: latency does not depend on their values. The candidates take `rounds` turns, so a burst of
    load from other processes cannot make one of them look several times slower than models of the same cost
    (`profiler.sweep`: read `latency_ms` and `speedup_vs_first`; `under_load` flags rows the load reached). Rows as
    `sweep` returns them.
    """
    import torch

    from actiondistill.models import create_model
    from actiondistill.models.backbones import backbone_config
    from actiondistill.profiler import sweep

    texts = list(class_texts)

    def factory(name: str):
        return lambda t: create_model(name, backbone=backbone, num_frames=t, templates=("{}",),
                                      **model_kwargs(name, fusion_layers))

    def inputs(batch: int, t: int, hw: tuple[int, int]) -> tuple[torch.Tensor, list[str]]:
        return torch.randn(batch, t, 3, *hw, generator=torch.Generator().manual_seed(0)), texts

    side = backbone_config(backbone)["vision_cfg"]["image_size"]
    return sweep({name: factory(name) for name in names}, frames=frames, batches=(1,), image_size=side,
                 device=device, warmup=warmup, iters=iters, rounds=rounds, method="predict_proba",
                 make_inputs=inputs, backbone="backbone.visual", progress=progress)


def choice_path(profile: str, results_dir: str | Path | None = None) -> Path:
    """data/results/teacher_choice-<profile>.json: where later chapters find the teacher of their profile."""
    return record_path("teacher_choice", profile, results_dir)


def write_choice(path: str | Path, decision: Mapping[str, Any], base: TrainConfig, runs: pd.DataFrame,
                 table: pd.DataFrame, fusion_layers: int, extra: Mapping[str, Any] | None = None) -> Path:
    """Record the chosen teacher with what later chapters need to rebuild it: model config and per-seed weights."""
    teacher = decision["teacher"]
    mine = runs[runs["model"] == teacher]
    record = {
        "teacher": teacher,
        "label": LABELS.get(teacher, teacher),
        "model": {"name": teacher, "backbone": base.model.backbone, "pretrained": base.model.pretrained,
                  "num_frames": base.data.num_frames, "kwargs": model_kwargs(teacher, fusion_layers)},
        "weights": {int(s): w for s, w in zip(mine["seed"], mine["weights"], strict=True)},
        "decision": dict(decision),
        "summary": table.reset_index().to_dict(orient="records"),
        "config": to_dict(base),
        **(dict(extra) if extra else {}),
    }
    return atomic_write_json(path, record)


def read_choice(profile: str, results_dir: str | Path | None = None) -> dict[str, Any]:
    """The teacher chosen by chapter 2 under `profile` (run chapter 2 first)."""
    return read_record("teacher_choice", profile, "02_teacher", "teacher chosen", results_dir)
