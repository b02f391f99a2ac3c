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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from actiondistill.chapter_records import read_record, record_path
from actiondistill.chapters.latency import CALLS, classifier_latency, model_spec
from actiondistill.config import TrainConfig, to_dict
from actiondistill.engine.runs import run_grid, train_and_evaluate
from actiondistill.io import atomic_write_json

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


def run_choice(base: TrainConfig, seeds: Mapping[str, Sequence[int]], features: Any = None,
               freeze_image_encoder: bool = True, freeze_token_embedding: bool = False, fusion_layers: int = 2,
               epochs: Mapping[str, int] | None = None, run_prefix: str = "teacher-choice",
               runs_dir: str | Path | None = None, progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Train and evaluate every candidate named in `seeds` (name -> its seeds); one row per (candidate, seed).

    `epochs` overrides `base.epochs` for some candidates (where one's cost forces a smaller budget). Rows follow the
    order of `seeds`; `progress` shows a bar over the runs, `workers` trains that many side by side (`run_grid`).
    """
    unknown = sorted(set(seeds) - set(CANDIDATES))
    if unknown:
        raise ValueError(f"candidates {unknown}: unknown; expected names from {CANDIDATES}")
    jobs = [(name, int(seed)) for name, names_seeds in seeds.items() for seed in names_seeds]
    if not jobs:
        raise ValueError("seeds: expected at least one candidate with at least one seed")

    def run_one(name: str, seed: int) -> dict[str, Any]:
        cfg = candidate_config(base, name, seed, run_prefix, fusion_layers, runs_dir)
        if epochs and name in epochs:
            cfg = dataclasses.replace(cfg, epochs=int(epochs[name]))
        return train_and_evaluate(cfg, features, freeze_image_encoder, freeze_token_embedding, progress=False)

    return run_grid(jobs, run_one, what="candidates", progress=progress, workers=workers)


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
                  fusion_layers: int = 2, device: str = "cpu", warmup: int = 1, calls: int = CALLS,
                  threads: int | None = 1, progress: bool = True) -> pd.DataFrame:
    """Chapter 2's candidates on one backbone in the book's one latency table (`chapters.latency`), batch 1.

    Every model is built with one template, which shortens the untimed text encoding; per clip, each further
    template would add one (C, D) product over cached embeddings, negligible beside the image encoder.
    """
    specs = {name: model_spec(name, backbone, model_kwargs(name, fusion_layers)) for name in names}
    return classifier_latency(specs, class_texts, frames=frames, batches=(1,), device=device, warmup=warmup,
                              calls=calls, threads=threads, progress=progress)


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
