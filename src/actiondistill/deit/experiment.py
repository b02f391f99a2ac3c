"""Chapter 5's experiment: the two-headed DeiT student against its ablations and the single-head baseline.

Every variant trains with chapter 2's recipe (the teacher's data, frames, optimiser and, unless overridden, epochs)
through `engine.runs.train_and_evaluate`, once per seed, and is scored on the test and zero-shot splits with the
DeiT average of the two heads and with each head alone:

- `single`: plain `actionclip-transf` with the ActionCLIP objective, the single-head baseline;
- `none`:   the two-headed student whose token takes part in the attention but has no loss (the frame head alone);
- `gt`:     both heads learn the labels, no teacher: what two-headed training gives by itself;
- `soft`, `hard`: the token head learns from chapter 2's frozen teacher (DeiT's soft or hard distillation).

`gt` against `single` measures the extra token and head; `soft`/`hard` against `gt` measure the teacher; that is
the ablation the thesis turned on ("the gain came from the two-headed training itself, not from the teacher").
`attribution` decides which, from paired per-seed differences against their spread.

The soft term is DeiT's: a KL summed over the batch's logits and divided by their number, about 1/C of a
per-sample KL, while hard and gt are per-sample cross-entropies. `per_sample_alpha` gives the alpha at which the
soft term weighs, per sample, what `alpha` gives the other two, so that soft is not hard at a C-times smaller
weight; with AdamW only the ratio of the two terms matters, not the overall scale.

On cached frame embeddings the teacher reads the student's inputs, so student and teacher share the frozen image
encoder (checked): the chapter then isolates the distillation token on the temporal transformer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actiondistill.chapter_records import read_record, record_path
from actiondistill.chapters.latency import CALLS
from actiondistill.config import ModelConfig, ObjectiveConfig, TeacherConfig, TrainConfig, from_dict, to_dict
from actiondistill.engine.runs import grid, recorded_row, run_grid, run_inputs, train_and_evaluate
from actiondistill.io import atomic_write_json, json_nulls, read_json
from actiondistill.stats import PairedDifference, paired_by_seed

#: The variants, in the order tables list them.
VARIANTS = ("single", "none", "gt", "soft", "hard")
LABELS = {
    "single": "single head (ActionCLIP Transf)",
    "none": "two heads, token without loss",
    "gt": "two heads, labels on both",
    "soft": "two heads, soft distillation",
    "hard": "two heads, hard distillation",
}
TEACHER_VARIANTS = ("soft", "hard")
#: How each head is named in tables; "single" is the baseline's only head.
HEAD_LABELS = {"both": "average of the heads", "frame": "frame head", "token": "token head", "single": "single head"}
SINGLE_MODEL, STUDENT_MODEL = "actionclip-transf", "actionclip-twohead"
#: Published figures, top-1 %. DeiT: ImageNet-1k at 224 px, hard distillation from a RegNetY-16GF teacher (the DeiT
#: repository's model zoo). The thesis reports its finding for this chapter in words only (REFERENCE.md).
REPORTED = [
    {"work": "DeiT", "benchmark": "ImageNet", "model": "DeiT-Ti", "setting": "no distillation", "top1": 72.2},
    {"work": "DeiT", "benchmark": "ImageNet", "model": "DeiT-Ti", "setting": "distillation token, hard",
     "top1": 74.5},
    {"work": "DeiT", "benchmark": "ImageNet", "model": "DeiT-S", "setting": "no distillation", "top1": 79.9},
    {"work": "DeiT", "benchmark": "ImageNet", "model": "DeiT-S", "setting": "distillation token, hard",
     "top1": 81.2},
    {"work": "DeiT", "benchmark": "ImageNet", "model": "DeiT-B", "setting": "no distillation", "top1": 81.8},
    {"work": "DeiT", "benchmark": "ImageNet", "model": "DeiT-B", "setting": "distillation token, hard",
     "top1": 83.4},
]
THESIS_FINDING = "the gain came from the two-headed training itself, not from the teacher"
THESIS_SOURCE = "heads"


def reported_table() -> pd.DataFrame:
    """The published numbers, labelled as reported (not measured here)."""
    table = pd.DataFrame(REPORTED)
    table.insert(0, "source", "reported")
    return table


def per_sample_alpha(alpha: float, classes: int) -> float:
    """The soft-distillation alpha whose token term weighs per sample what `alpha` gives a per-sample loss.

    DeiT's soft term is a per-sample KL divided by the C logits of each sample, so (1 - a) * base + a * KL / C
    has the term ratio of (1 - alpha) * base + alpha * KL when a / (1 - a) = C * alpha / (1 - alpha).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha}: expected a value in [0, 1]")
    if classes < 1:
        raise ValueError(f"classes={classes}: expected >= 1")
    return classes * alpha / (classes * alpha + 1.0 - alpha)


# --------------------------------------------------------------------------------------- configurations
def recipe(choice: Mapping[str, Any], epochs: int | None = None) -> TrainConfig:
    """Chapter 2's base recipe (`tc.read_choice(profile)["config"]`), optionally with another epoch budget."""
    base = from_dict(choice["config"], source="chapter 2's teacher choice")
    if base.objective.name != "actionclip":
        raise ValueError(f"chapter 2's recipe trains with objective {base.objective.name!r}; this experiment expects "
                         "'actionclip' (its frame-head loss is ActionCLIP's)")
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs={epochs}: expected >= 1")
        base = dataclasses.replace(base, epochs=int(epochs))
    return base


def teacher_config(choice: Mapping[str, Any], seed: int) -> tuple[TeacherConfig, int]:
    """The frozen chapter-2 teacher for a student seed: the teacher trained with the same seed when there is one,
    else its first seed; returns the config and the teacher's seed."""
    weights = {int(s): w for s, w in choice["weights"].items()}
    if not weights:
        raise ValueError("chapter 2's choice lists no teacher weights; re-run chapter 2")
    teacher_seed = seed if seed in weights else min(weights)
    m = choice["model"]
    model = ModelConfig(name=m["name"], backbone=m["backbone"], pretrained=m["pretrained"],
                        checkpoint=str(weights[teacher_seed]), kwargs=dict(m.get("kwargs") or {}))
    return TeacherConfig(name="teacher", model=model), teacher_seed


def variant_config(base: TrainConfig, variant: str, seed: int, teacher: TeacherConfig | None = None, *,
                   alpha: float = 0.5, tau: float = 1.0, soft_alpha: float | None = None, fusion_layers: int = 2,
                   run_prefix: str = "deit", runs_dir: str | Path | None = None) -> TrainConfig:
    """`base` turned into one variant's run: model, objective, teacher, seed and a run name / folder of its own.

    The frame head's loss keeps the base ActionCLIP objective's options (`texts`, `sharpness`); `soft_alpha`
    (default `alpha`) is the soft variant's weight (see `per_sample_alpha`).
    """
    from actiondistill.paths import data_dir

    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: expected one of {list(VARIANTS)}")
    run_name = f"{run_prefix}-{variant}-seed{seed}"
    out_dir = Path(runs_dir) if runs_dir is not None else data_dir() / "runs" / run_prefix
    kwargs = {**base.model.kwargs, "fusion_layers": fusion_layers}  # the recipe's options (logit_scale_init, ...)
    if variant == "single":
        model = dataclasses.replace(base.model, name=SINGLE_MODEL, kwargs=kwargs)
        objective, teachers = base.objective, []
    else:
        model = dataclasses.replace(base.model, name=STUDENT_MODEL, kwargs=kwargs)
        frame_loss = {k: v for k, v in base.objective.kwargs.items() if k in ("texts", "sharpness")}
        weight = soft_alpha if variant == "soft" and soft_alpha is not None else alpha
        objective = ObjectiveConfig("deit_twohead", {"distillation": variant, "alpha": float(weight),
                                                     "tau": float(tau), **frame_loss})
        teachers = []
        if variant in TEACHER_VARIANTS:
            if teacher is None:
                raise ValueError(f"variant {variant!r} distils from a teacher: pass teacher= (teacher_config)")
            teachers = [teacher]
    return dataclasses.replace(base, seed=seed, model=model, objective=objective, teachers=teachers,
                               run_name=run_name, out_dir=str(out_dir / run_name))


def check_features(features: Any, model: ModelConfig) -> None:
    """Refuse cached frame embeddings made by another image encoder than `model`'s (they would not be its inputs)."""
    from actiondistill.frame_cache import check_encoder

    check_encoder(features, model.backbone, model.pretrained, "the students'")


# --------------------------------------------------------------------------------------- training
def run_ablation(base: TrainConfig, choice: Mapping[str, Any], variants: Sequence[str] = VARIANTS,
                 seeds: Sequence[int] = (0,), features: Any = None, *, alpha: float = 0.5, tau: float = 1.0,
                 soft_alpha: float | None = None, fusion_layers: int = 2, freeze_image_encoder: bool = True,
                 freeze_token_embedding: bool = False, run_prefix: str = "deit", runs_dir: str | Path | None = None,
                 progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Train and evaluate every variant with every seed; one row per (variant, seed).

    Rows are `train_and_evaluate`'s (top1, zs_top1, and for two-headed models top1_frame, top1_token,
    zs_top1_frame, zs_top1_token) plus the variant, its label, distillation mode, alpha, tau, the teacher's seed,
    `reused_from` and, from the Trainer's record, the last epoch's training metrics of the heads
    (`train_acc_frame`, `train_acc_token`, `train_teacher_agreement`: token head argmax == teacher argmax).
    A single-head run that chapter 2 already made as the teacher (`teacher_run`) is not trained again: its row is
    read back and `reused_from` names its run. `features` (cached frame embeddings, with `freeze_image_encoder`)
    must come from `base.model`'s image encoder, which must also be the teacher's.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants={list(variants)}: expected a non-empty selection of {list(VARIANTS)}")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    cached = features is not None and freeze_image_encoder
    if cached:
        check_features(features, base.model)
        if any(v in TEACHER_VARIANTS for v in variants):
            _check_teacher_reads_features(choice, base.model)
    def run_one(variant: str, seed: int) -> dict[str, Any]:
        teacher, teacher_seed = teacher_config(choice, seed) if variant in TEACHER_VARIANTS else (None, None)
        cfg = variant_config(base, variant, seed, teacher, alpha=alpha, tau=tau, soft_alpha=soft_alpha,
                             fusion_layers=fusion_layers, run_prefix=run_prefix, runs_dir=runs_dir)
        reused = teacher_run(cfg, choice, cached, freeze_image_encoder, freeze_token_embedding) \
            if variant == "single" else None
        if reused is None:
            row, run_name = train_and_evaluate(cfg, features, freeze_image_encoder, freeze_token_embedding,
                                               progress=False), cfg.run_name
        else:
            row, run_name = reused
        kwargs = cfg.objective.kwargs
        return {"variant": variant, "label": LABELS[variant], **row,
                "distillation": kwargs.get("distillation", "n/a"), "alpha": kwargs.get("alpha", math.nan),
                "tau": kwargs.get("tau", math.nan),
                "teacher_seed": teacher_seed if teacher_seed is not None else math.nan,
                "reused_from": run_name if reused is not None else "",
                **_training_metrics(cfg, run_name)}

    return run_grid(grid(variants, seeds), run_one, what="variants", progress=progress, workers=workers)


def teacher_run(cfg: TrainConfig, choice: Mapping[str, Any], cached: bool, freeze_image_encoder: bool,
                freeze_token_embedding: bool) -> tuple[dict[str, Any], str] | None:
    """Chapter 2's run of the teacher of `cfg.seed` when it is exactly the single-head run `cfg` describes (same
    model, recipe, seed and inputs): its evaluation row and run name, else None.

    When chapter 2 chose ActionCLIP Transf, the single-head baseline of seed s *is* the teacher of seed s; the
    config in its evaluation record is compared (run name and folder aside) rather than assumed.
    """

    weights = choice["weights"].get(str(cfg.seed))
    if weights is None:
        return None
    row = recorded_row(cfg, weights, run_inputs(cached, freeze_image_encoder, freeze_token_embedding))
    return (row, Path(weights).parent.name) if row is not None else None


def _check_teacher_reads_features(choice: Mapping[str, Any], student: ModelConfig) -> None:
    m = choice["model"]
    if (m["backbone"], str(m["pretrained"])) != (student.backbone, str(student.pretrained)):
        raise ValueError(f"the teacher ({m['name']}) was trained on {m['backbone']} weights {m['pretrained']}, the "
                         f"students use {student.backbone} weights {student.pretrained}: on cached frame embeddings "
                         "the teacher must read the students' inputs, so give the students the teacher's image "
                         "encoder (or train on pixels with freeze_image_encoder=False)")
    if m["name"] == "xclip":
        raise ValueError("the teacher is X-CLIP, whose frames exchange messages inside the image encoder: it cannot "
                         "read cached frame embeddings; train on pixels (freeze_image_encoder=False)")


def _training_metrics(cfg: TrainConfig, run_name: str) -> dict[str, float]:
    """The last epoch's per-head training metrics from the Trainer's record (NaN where a variant has none)."""
    from actiondistill.paths import results_dir

    record = read_json(Path(cfg.results_dir or results_dir()) / f"{run_name}.json")
    train = record["metrics"]["train"]
    return {f"train_{k}": float(train.get(k, math.nan))
            for k in ("acc_frame", "acc_token", "teacher_acc", "teacher_agreement")}


# --------------------------------------------------------------------------------------- analysis
def head_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, seed, head) with top1 and zs_top1: the average and each head of the two-headed
    students, the only head of the single-head baseline."""
    parts = []
    for head in ("both", "frame", "token"):
        suffix = "" if head == "both" else f"_{head}"
        cols = {f"top1{suffix}": "top1", f"zs_top1{suffix}": "zs_top1"}
        if f"top1{suffix}" not in runs:
            continue
        part = runs[["variant", "seed", *[c for c in cols if c in runs]]].rename(columns=cols)
        part = part.assign(head=np.where(runs["variant"] == "single", "single", head))
        parts.append(part[(head == "both") | (runs["variant"] != "single")])
    long = pd.concat(parts, ignore_index=True)
    long["head_label"] = long["head"].map(HEAD_LABELS)
    long["variant_label"] = long["variant"].map(LABELS)
    return long


def summarise(runs: pd.DataFrame, metrics: Sequence[str] = ("top1", "top1_frame", "top1_token", "zs_top1",
                                                             "train_s")) -> pd.DataFrame:
    """Mean, std, min and max over seeds per variant (columns `<metric>_<stat>`), plus the seed count."""
    present = [m for m in metrics if m in runs]
    grouped = runs.groupby("variant", sort=False)
    table = grouped[present].agg(["mean", "std", "min", "max"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    table.insert(0, "label", [LABELS[v] for v in table.index])
    return table


def attribution(runs: pd.DataFrame, metric: str = "top1") -> dict[str, Any]:
    """Where the two-headed student's gain comes from, decided from the measurements.

    heads: `gt` (two heads on the labels, no teacher) against `single`; teacher: the better of `soft` / `hard`
    (by mean) against `gt`, each a `stats.PairedDifference` paired by seed. `source` is "heads", "teacher", "both"
    or "neither" (a measured gain, by the book's noise rule, from each), or "undetermined" with one seed; `sentence`
    says it in words, `agrees_with_thesis` compares it with the thesis.
    """
    have = set(runs["variant"])
    if not {"single", "gt"} <= have:
        raise ValueError(f"attribution needs the variants 'single' and 'gt'; have {sorted(have)}")
    teachers = [v for v in TEACHER_VARIANTS if v in have]
    if not teachers:
        raise ValueError(f"attribution needs a teacher variant ({list(TEACHER_VARIANTS)}); have {sorted(have)}")
    means = runs.groupby("variant")[metric].mean()
    best_teacher = max(teachers, key=lambda v: means[v])
    heads = paired_by_seed(runs, "variant", "gt", "single", metric)
    teacher = paired_by_seed(runs, "variant", best_teacher, "gt", metric)
    gains = {"heads": heads.verdict == "gain", "teacher": teacher.verdict == "gain"}
    source = ("undetermined" if "unknown" in (heads.verdict, teacher.verdict) else "both"
              if all(gains.values()) else "heads" if gains["heads"] else "teacher" if gains["teacher"] else "neither")
    conclusion = {
        "undetermined": "with one seed, where a gain comes from cannot be told from seed-to-seed noise",
        "heads": "the gain comes from the extra token and head (two-headed training on the labels), not from the "
                 "teacher",
        "teacher": "the gain comes from the teacher, not from the extra token and head",
        "both": "the extra token and head and the teacher each add a measurable gain",
        "neither": "neither the extra token and head nor the teacher gives a measurable gain here",
    }[source]
    details = (f"Training two heads on the labels instead of one changes top-1 by {heads.described()}; "
               f"then distilling the token head from the teacher ({best_teacher}) changes top-1 by "
               f"{teacher.described()}.")
    if source == "heads":
        comparison = f"This agrees with the thesis, which found that {THESIS_FINDING}."
    elif source == "undetermined":
        comparison = f"The thesis found that {THESIS_FINDING}."
    else:
        comparison = f"The thesis found instead that {THESIS_FINDING}."
    return {"source": source, "best_teacher_variant": best_teacher, "heads": heads, "teacher": teacher,
            "agrees_with_thesis": source == THESIS_SOURCE, "conclusion": conclusion,
            "sentence": f"{details} So {conclusion}. {comparison}"}


def best_setting(runs: pd.DataFrame, metric: str = "top1") -> dict[str, Any]:
    """The variant with the highest mean `metric` (ties go to the earlier, simpler variant in VARIANTS), how to
    rebuild it (model, objective) and its weights per seed; for chapter 7."""
    order = [v for v in VARIANTS if v in set(runs["variant"])]
    means = runs.groupby("variant")[metric].mean()
    best = max(order, key=lambda v: (means[v], -order.index(v)))
    mine = runs[runs["variant"] == best]
    first = mine.iloc[0]
    setting = {
        "variant": best,
        "label": LABELS[best],
        "model": first["model"],
        "head": "single" if best == "single" else "both",
        "distillation": first["distillation"],
        "alpha": _number(first["alpha"]),
        "tau": _number(first["tau"]),
        "uses_teacher": best in TEACHER_VARIANTS,
        "metric": metric,
        "mean": float(mine[metric].mean()),
        "std": _number(mine[metric].std(ddof=1)) if len(mine) > 1 else None,
        "zs_top1_mean": _number(mine["zs_top1"].mean()),
        "weights": {int(s): w for s, w in zip(mine["seed"], mine["weights"], strict=True)},
    }
    return setting


# --------------------------------------------------------------------------------------- latency
def latency_table(backbones: Sequence[str], frames: Sequence[int] = (8,), fusion_layers: int = 2,
                  device: str = "cpu", warmup: int = 1, calls: int = CALLS, threads: int | None = 1,
                  progress: bool = True) -> pd.DataFrame:
    """Latency (batch 1) of the single-head and the two-headed model, side by side, on each backbone.

    Two parts are timed with `profiler.sweep`, the two models taking turns call by call (`calls` rounds, `threads`
    threads, as `chapters.latency` times every chapter's models) so they share the machine's conditions:
    "whole clip" (`encode_video` on pixels: image encoder on every frame plus the temporal part; the class texts'
    embeddings are computed once in deployment) and "temporal part" (`fuse_frames` on frame embeddings, where the
    distillation token and its head live). The two-headed model runs both heads (DeiT inference). Random weights:
    latency does not depend on their values. Rows as `sweep` returns them plus `backbone` and `part`; attrs
    "environment" (the first sweep's), "rounds", "load_spread" and "under_load" (any row's) as `sweep` sets them.
    """
    import torch

    from actiondistill.models import create_model
    from actiondistill.models.backbones import backbone_config
    from actiondistill.profiler import sweep

    if not backbones:
        raise ValueError("backbones: expected at least one CLIP backbone name")
    names = {"single head": SINGLE_MODEL, "two heads": STUDENT_MODEL}
    tables = []
    for backbone in backbones:
        config = backbone_config(backbone)
        dim, side = config["embed_dim"], config["vision_cfg"]["image_size"]

        def factory(name: str, backbone: str = backbone):
            return lambda t: create_model(name, backbone=backbone, num_frames=t, fusion_layers=fusion_layers)

        def embeddings(batch: int, t: int, hw: tuple[int, int], dim: int = dim) -> torch.Tensor:
            return torch.randn(batch, t, dim, generator=torch.Generator().manual_seed(0))

        models = {label: factory(name) for label, name in names.items()}
        common = {"frames": frames, "batches": (1,), "device": device, "warmup": warmup, "iters": 1,
                  "rounds": calls, "threads": threads, "progress": progress}
        whole = sweep(models, image_size=side, method="encode_video", backbone="backbone.visual", **common)
        temporal = sweep(models, image_size=side, method="fuse_frames", make_inputs=embeddings, backbone=None,
                         **common)
        for part, table in (("whole clip", whole), ("temporal part", temporal)):
            tables.append(table.assign(backbone=backbone, part=part))
    out = pd.concat(tables, ignore_index=True)
    out.attrs = {key: tables[0].attrs[key] for key in ("environment", "rounds", "load_spread")}
    out.attrs["under_load"] = bool(out["under_load"].any())
    return out


# --------------------------------------------------------------------------------------- results record
def results_path(profile: str, results_dir: str | Path | None = None) -> Path:
    """data/results/deit-<profile>.json: where chapter 7 finds this chapter's results of its profile."""
    return record_path("deit", profile, results_dir)


def _attribution_record(attr: Mapping[str, Any]) -> dict[str, Any]:
    """`attribution` (on top-1) as the record has always kept it: each comparison named (variant, reference,
    metric), its `as_dict` and its phrase."""
    def comparison(diff: PairedDifference, variant: str, reference: str) -> dict[str, Any]:
        return {"variant": variant, "reference": reference, "metric": "top1", **diff.as_dict(),
                "phrase": diff.phrase()}

    return {**attr, "heads": comparison(attr["heads"], "gt", "single"),
            "teacher": comparison(attr["teacher"], attr["best_teacher_variant"], "gt")}


def write_results(path: str | Path, runs: pd.DataFrame, base: TrainConfig, choice: Mapping[str, Any],
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Record the runs, their summary, the attribution and the best setting (atomically) for later chapters."""
    record = {
        "best": best_setting(runs),
        "attribution": _attribution_record(attribution(runs)) if {"single", "gt"} <= set(runs["variant"])
        and set(TEACHER_VARIANTS) & set(runs["variant"]) else None,
        "summary": summarise(runs).reset_index().to_dict(orient="records"),
        "runs": runs.to_dict(orient="records"),
        "teacher": {"model": dict(choice["model"]), "weights": dict(choice["weights"])},
        "config": to_dict(base),
        **(dict(extra) if extra else {}),
    }
    return atomic_write_json(path, json_nulls(record))


def read_results(profile: str, results_dir: str | Path | None = None) -> dict[str, Any]:
    """Chapter 5's results under `profile` (run chapter 5 first)."""
    return read_record("deit", profile, "05_deit", "two-headed DeiT results", results_dir)


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value

