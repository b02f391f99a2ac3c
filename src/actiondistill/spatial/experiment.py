"""Chapter 4's experiment: the multi-task student trained on the action and on spatial targets, its ablations, the
choice of the setting later chapters use, and the record they read.

A setting (`SpatialSetting`) is lambda (the weight of the spatial losses), the objectives trained, where the
targets come from (the CLIP framework with K frames per clip, or the synthetic world's ground truth) and nothing
else: the student (`student_model`: the chapter-2 teacher's video architecture on the student CLIP), the recipe
(chapter 2's), the frames and the seeds are shared, so a difference between two settings is the setting's.

Each run is `engine.runs.train_and_evaluate` with two hooks: the training set is wrapped in a
`SpatialTargetDataset` and the row gains the selection split's top-1 (`val_top1`) and, given ground truth, the
trained heads' top-1 per attribute on the test clips (`head_<objective>_top1`). `select_setting` picks the best
multi-task setting on the selection split, never on the test split the headline reports.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actiondistill.chapter_records import read_record, record_path
from actiondistill.config import ModelConfig, ObjectiveConfig, TrainConfig, to_dict
from actiondistill.engine.runs import grid, run_datasets, run_grid, train_and_evaluate
from actiondistill.engine.runs import summarise as summarise_seeds
from actiondistill.io import atomic_write_json
from actiondistill.spatial.targets import SpatialTargets
from actiondistill.spatial.vocab import MANIFEST_OBJECTIVES

FRAMEWORK = "clip"
GROUND_TRUTH = "ground_truth"
SOURCES = (FRAMEWORK, GROUND_TRUTH)
STUDENT_MODEL = "spatial-multitask"
#: Published figures (REFERENCE.md), top-1 %. The thesis gives no number for spatial distillation alone ("improves
#: accuracy over single-objective ActionCLIP"), only for its final student, which combines all three distillations.
REPORTED = [
    {"model": "ActionCLIP ViT-B/16, 32 frames (ActionCLIP paper, from Kinetics-400)", "benchmark": "HMDB51",
     "top1": 76.2},
    {"model": "ActionCLIP (thesis teacher)", "benchmark": "HMDB51", "top1": 68.8},
    {"model": "thesis student: TinyCLIP + spatial + two-headed DeiT distillation", "benchmark": "HMDB51",
     "top1": 66.5},
]


def reported_table() -> pd.DataFrame:
    """The published numbers, labelled as reported (not measured here)."""
    table = pd.DataFrame(REPORTED)
    table.insert(0, "source", "reported")
    return table


@dataclass(frozen=True)
class SpatialSetting:
    """One way of training the multi-task student.

    Args:
        weight: lambda, the weight of the spatial losses against the action loss; 0 is the action-only baseline
            (whatever the other fields say).
        objectives: the spatial objectives trained (None: every objective of the targets).
        source: "clip" (the CLIP-based framework) or "ground_truth" (the synthetic world's one-hot attributes).
        frames: K, the frames per clip the framework scored (ignored for ground truth).
    """

    weight: float
    objectives: tuple[str, ...] | None = None
    source: str = FRAMEWORK
    frames: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.weight, int | float) or isinstance(self.weight, bool) or not self.weight >= 0:
            raise ValueError(f"weight={self.weight!r}: expected a number >= 0 (lambda)")
        if self.objectives is not None:
            if isinstance(self.objectives, str) or not self.objectives:
                raise ValueError(f"objectives={self.objectives!r}: expected None (all) or a non-empty list of names")
            object.__setattr__(self, "objectives", tuple(self.objectives))
        if self.source not in SOURCES:
            raise ValueError(f"source={self.source!r}: expected one of {SOURCES}")
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 1:
            raise ValueError(f"frames={self.frames!r}: expected a positive integer (K)")
        object.__setattr__(self, "weight", float(self.weight))

    @property
    def baseline(self) -> bool:
        return self.weight == 0

    @property
    def objectives_label(self) -> str:
        return "all" if self.objectives is None else "+".join(self.objectives)

    @property
    def source_label(self) -> str:
        return "ground truth" if self.source == GROUND_TRUTH else f"CLIP, K={self.frames}"

    @property
    def name(self) -> str:
        """How tables name it; every action-only setting is the one baseline."""
        if self.baseline:
            return "λ=0 (action only)"
        return f"λ={self.weight:g}, {self.objectives_label}, {self.source_label}"

    @property
    def slug(self) -> str:
        """A file-name-safe name for run folders."""
        if self.baseline:
            return "lambda0"
        source = "gt" if self.source == GROUND_TRUTH else f"k{self.frames}"
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"lambda{self.weight:g}-{self.objectives_label}-{source}")

    @property
    def targets_key(self) -> str:
        """The key of its targets in the mapping `run_spatial` receives (see `targets_key`)."""
        return targets_key(self.source, self.frames)

    def to_dict(self) -> dict[str, Any]:
        return {"weight": self.weight, "objectives": None if self.objectives is None else list(self.objectives),
                "source": self.source, "frames": self.frames, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpatialSetting:
        objectives = data.get("objectives")
        return cls(float(data["weight"]), None if objectives is None else tuple(objectives),
                   str(data.get("source", FRAMEWORK)), int(data.get("frames", 8)))


def targets_key(source: str, frames: int) -> str:
    """"ground_truth", or "clip-K<frames>" for the framework's targets from K frames per clip."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: expected one of {SOURCES}")
    return GROUND_TRUTH if source == GROUND_TRUTH else f"{FRAMEWORK}-K{frames}"


def ablation_settings(lambdas: Sequence[float] = (0.0, 0.3, 1.0, 3.0),
                      objectives: Sequence[str] = MANIFEST_OBJECTIVES, frames: Sequence[int] = (1, 4, 8),
                      weight: float = 1.0, default_frames: int = 8,
                      ground_truth: bool = True) -> dict[str, list[SpatialSetting]]:
    """The chapter's ablations, each a list of settings that differ from the default setting (lambda `weight`, all
    objectives, framework targets from `default_frames` frames) in one thing:

    - "lambda": the weight of the spatial losses (0: the action-only baseline);
    - "objectives": each objective alone, then all of them;
    - "targets": the framework's targets against the ground truth (only where `ground_truth`: the synthetic world);
    - "frames": K, the frames per clip the framework scores.

    The default setting appears in every ablation; `unique_settings` lists each setting once for training.
    """
    if weight <= 0:
        raise ValueError(f"weight={weight}: the ablations vary a multi-task setting, expected lambda > 0")
    if not lambdas or not objectives or not frames:
        raise ValueError("lambdas, objectives and frames: expected at least one value each")
    default = SpatialSetting(weight, None, FRAMEWORK, default_frames)
    groups = {
        "lambda": [dataclasses.replace(default, weight=float(w)) for w in lambdas],
        "objectives": [dataclasses.replace(default, objectives=(o,)) for o in objectives] + [default],
        "frames": [dataclasses.replace(default, frames=int(k)) for k in frames],
    }
    if ground_truth:
        groups["targets"] = [default, dataclasses.replace(default, source=GROUND_TRUTH)]
    return groups


def unique_settings(groups: Mapping[str, Sequence[SpatialSetting]]) -> list[SpatialSetting]:
    """Every setting of the ablations once, in order of first appearance (settings with one name are one run)."""
    out: dict[str, SpatialSetting] = {}
    for settings in groups.values():
        for setting in settings:
            out.setdefault(setting.name, setting)
    return list(out.values())


def student_model(choice: Mapping[str, Any], backbone: str, pretrained: str | None, fallback: str = "transf",
                  fusion_layers: int = 2, head_input: str = "video") -> dict[str, Any]:
    """The chapter's student: the chapter-2 teacher's video architecture (`read_choice`) on the student CLIP.

    With a frozen image encoder the spatial losses reach the action only through trainable parameters between the
    frame embeddings and the heads: the fusion. A teacher whose fusion has none (meanP; ViFi-CLIP, which is meanP
    here) or that is not an ActionCLIP (X-CLIP) gives `fallback` instead, and the returned `reason` says so.
    Returns {"name", "backbone", "pretrained", "fusion", "kwargs" (the model's constructor options without the
    heads), "teacher", "reason"}.
    """
    from actiondistill.models.fusion import FUSIONS, build_fusion

    teacher = str(choice["model"]["name"])
    kinds = {kind.lower(): kind for kind in FUSIONS}
    if fallback not in FUSIONS:
        raise ValueError(f"fallback={fallback!r}: expected one of {sorted(FUSIONS)}")
    kind = kinds.get(teacher.removeprefix("actionclip-")) if teacher.startswith("actionclip-") else None
    trainable = kind is not None and any(p.numel() for p in build_fusion(kind, 8, 4, 1).parameters())
    if trainable:
        kwargs = {"fusion": kind, **{k: v for k, v in choice["model"].get("kwargs", {}).items() if k != "fusion"}}
        reason = f"the teacher's fusion ({kind}) has parameters, so the student keeps it"
    else:
        kwargs = {"fusion": fallback, "fusion_layers": int(fusion_layers)}
        what = f"{kind} fusion has no parameters" if kind else "is not an ActionCLIP, so no fusion can be copied"
        reason = (f"the teacher ({teacher}) {what}; the student uses {fallback} instead, so that the spatial losses "
                  "have trainable parameters through which to shape the video embedding")
    if head_input not in ("video", "frames"):
        raise ValueError(f"head_input={head_input!r}: expected 'video' or 'frames'")
    kwargs["head_input"] = head_input
    return {"name": STUDENT_MODEL, "backbone": backbone, "pretrained": pretrained, "fusion": kwargs["fusion"],
            "kwargs": kwargs, "teacher": teacher, "reason": reason}


def spatial_config(base: TrainConfig, student: Mapping[str, Any], setting: SpatialSetting, targets: SpatialTargets,
                   seed: int, run_prefix: str = "spatial", runs_dir: str | Path | None = None) -> TrainConfig:
    """`base` (chapter 2's recipe) with the student, one head per trained objective, the `spatial_multitask`
    objective at the setting's lambda (the action loss keeps `base`'s text mode), the seed and a run folder."""
    from actiondistill.paths import data_dir

    names = list(setting.objectives) if setting.objectives is not None else targets.names
    selected = targets.select(names)
    run_name = f"{run_prefix}-{setting.slug}-seed{seed}"
    out_dir = Path(runs_dir) if runs_dir is not None else data_dir() / "runs" / run_prefix
    model = ModelConfig(name=student["name"], backbone=student["backbone"], pretrained=student["pretrained"],
                        kwargs={**student["kwargs"], "spatial_heads": selected.head_sizes()})
    texts = base.objective.kwargs.get("texts", "classes")
    objective = ObjectiveConfig("spatial_multitask", {"weight": setting.weight, "objectives": names,
                                                      "multi_label": selected.multi_label, "texts": texts})
    return dataclasses.replace(base, seed=seed, model=model, objective=objective, run_name=run_name,
                               out_dir=str(out_dir / run_name))


def split_dataset(cfg: TrainConfig, split: str, features: Any = None) -> Any:
    """One more evaluation split (e.g. "val"), built exactly as `run_datasets` builds the test split."""

    view = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, test_split=split))
    return run_datasets(view, features)["test"]


def train_spatial(cfg: TrainConfig, setting: SpatialSetting, targets: SpatialTargets, features: Any = None,
                  head_truth: SpatialTargets | None = None, select_split: str | None = "val",
                  freeze_image_encoder: bool = True, freeze_token_embedding: bool = False,
                  progress: bool = True) -> dict[str, Any]:
    """Train one setting with one seed (`cfg` from `spatial_config`) and return `train_and_evaluate`'s row plus:

    the setting (`setting`, `weight`, `objectives`, `source`, `target_frames`); `val_top1`, closed-set top-1 on
    `select_split` (None: NaN); and, given `head_truth` (ground-truth targets), `head_<objective>_top1`, the trained
    heads' top-1 against the true attribute on the test clips (NaN for the untrained heads of lambda = 0).
    """
    from actiondistill.evaluate import evaluate
    from actiondistill.spatial.dataset import SpatialTargetDataset
    from actiondistill.spatial.quality import head_quality

    names = list(setting.objectives) if setting.objectives is not None else targets.names
    selected = targets.select(names)
    batch = cfg.eval.batch_size or cfg.data.batch_size

    def measure(model: Any, data: Mapping[str, Any]) -> dict[str, float]:
        out = {"val_top1": math.nan}
        if select_split is not None:
            out["val_top1"] = evaluate(model, split_dataset(cfg, select_split, features), batch_size=batch,
                                       progress=False)["top1"]
        if head_truth is not None:
            judged = [n for n in names if n in head_truth.names]
            scores = {}
            if judged and not setting.baseline:
                scores = head_quality(model, SpatialTargetDataset(data["test"], head_truth.select(judged)),
                                      batch_size=batch, progress=False)
            out.update({f"head_{n}_top1": scores[n]["top1"] if n in scores else math.nan for n in judged})
        return out

    row = train_and_evaluate(cfg, features, freeze_image_encoder, freeze_token_embedding, progress=progress,
                             wrap_train=lambda dataset: SpatialTargetDataset(dataset, selected), measure=measure)
    return {"setting": setting.name, "weight": setting.weight, "objectives": setting.objectives_label,
            "source": setting.source, "target_frames": setting.frames if setting.source == FRAMEWORK else 0, **row}


def run_spatial(base: TrainConfig, student: Mapping[str, Any], settings: Sequence[SpatialSetting],
                seeds: Sequence[int], targets: Mapping[str, SpatialTargets], features: Any = None,
                head_truth: SpatialTargets | None = None, select_split: str | None = "val",
                freeze_image_encoder: bool = True, freeze_token_embedding: bool = False,
                run_prefix: str = "spatial", runs_dir: str | Path | None = None, previous: pd.DataFrame | None = None,
                progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Train every (setting, seed) not already in `previous` and return `previous`'s rows plus the new ones.

    `targets` maps `SpatialSetting.targets_key` ("clip-K8", "ground_truth", ...) to the targets of that source;
    settings with one name (e.g. every lambda = 0) train once per seed. `progress` shows a bar over the runs;
    `workers` trains that many side by side (`run_grid`).
    """
    settings = unique_settings({"settings": settings})
    if not settings or not seeds:
        raise ValueError("settings, seeds: expected at least one of each")
    missing = sorted({s.targets_key for s in settings} - set(targets))
    if missing:
        raise ValueError(f"targets {missing}: needed by the settings but not given (given: {sorted(targets)})")
    done = set() if previous is None or previous.empty else set(zip(previous["setting"], previous["seed"],
                                                                     strict=True))
    jobs = [(s, seed) for s, seed in grid(settings, seeds) if (s.name, seed) not in done]

    def run_one(setting: SpatialSetting, seed: int) -> dict[str, Any]:
        chosen = targets[setting.targets_key]
        cfg = spatial_config(base, student, setting, chosen, seed, run_prefix, runs_dir)
        return train_spatial(cfg, setting, chosen, features, head_truth, select_split, freeze_image_encoder,
                             freeze_token_embedding, progress=False)

    new = run_grid(jobs, run_one, what="settings", name=lambda s: s.slug, progress=progress, workers=workers)
    if previous is None or previous.empty:
        return new
    return pd.concat([previous, new], ignore_index=True) if jobs else previous.copy()


def summarise_settings(runs: pd.DataFrame, metrics: Sequence[str] = ("top1", "zs_top1", "val_top1")) -> pd.DataFrame:
    """Mean, std, min and max over seeds per setting (`engine.runs.summarise`), with the setting's fields."""

    table = summarise_seeds(runs.assign(model=runs["setting"]), metrics)
    fields = runs.drop_duplicates("setting").set_index("setting")[["weight", "objectives", "source",
                                                                    "target_frames"]]
    table = fields.loc[table.index].join(table)
    table.index.name = "setting"
    return table


def selection_rule(metric: str = "val_top1") -> str:
    """The rule in words, to state before the results."""
    split = "validation" if metric.startswith("val") else "test"
    return (f"among the multi-task settings (lambda > 0) whose targets come from the CLIP framework (the ground truth "
            f"exists only in the synthetic world), take the highest mean closed-set top-1 on the {split} split")


def select_setting(summary: pd.DataFrame, metric: str = "val_top1") -> str:
    """`selection_rule` applied to a `summarise_settings` table: the chosen setting's name."""
    column = f"{metric}_mean"
    if column not in summary.columns:
        raise ValueError(f"select_setting: no column {column!r}; the table has {list(summary.columns)}")
    eligible = summary[(summary["weight"] > 0) & (summary["source"] == FRAMEWORK) & summary[column].notna()]
    if eligible.empty:
        raise ValueError(f"select_setting: no multi-task setting with framework targets and a {column} to compare")
    return str(eligible[column].idxmax())


def reliability(targets: SpatialTargets, truth: SpatialTargets, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data of single-label targets against one-hot `truth` (`ground_truth_targets`), per
    objective and equal-width confidence bin: mean confidence, accuracy (%) and share of clips (%)."""
    if bins < 1:
        raise ValueError(f"bins={bins}: expected >= 1")
    rows = truth.rows([targets.root / p for p in targets.paths])
    out = []
    for name, vocab in targets.vocabularies.items():
        if vocab.multi_label or name not in truth.names:
            continue
        probs = targets.targets[name]
        correct = probs.argmax(axis=1) == truth.targets[name][rows].argmax(axis=1)
        confidence = probs.max(axis=1)
        which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
        for b in np.unique(which):
            mask = which == b
            out.append({"objective": name, "bin": int(b), "confidence": float(confidence[mask].mean()),
                        "accuracy": 100.0 * float(correct[mask].mean()), "share": 100.0 * float(mask.mean())})
    if not out:
        raise ValueError("reliability: no single-label objective has ground truth")
    return pd.DataFrame(out)


def results_path(profile: str, results_dir: str | Path | None = None) -> Path:
    """data/results/spatial-<profile>.json: where later chapters find this chapter's outcome."""
    return record_path("spatial", profile, results_dir)


def write_results(path: str | Path, best: SpatialSetting, student: Mapping[str, Any], base: TrainConfig,
                  runs: pd.DataFrame, summary: pd.DataFrame, headline: Mapping[str, Any], targets: Mapping[str, Any],
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Record the chosen setting with what a later chapter needs to train it again (student, targets' settings,
    recipe) and to judge it (the headline effect, the summary per setting, the weights per seed)."""
    mine = runs[runs["setting"] == best.name]
    record = {
        "best": best.to_dict(),
        "student": dict(student),
        "targets": dict(targets),
        "headline": dict(headline),
        "weights": {int(s): w for s, w in zip(mine["seed"], mine["weights"], strict=True)},
        "summary": summary.reset_index().to_dict(orient="records"),
        "config": to_dict(base),
        **(dict(extra) if extra else {}),
    }
    return atomic_write_json(path, record)


def read_results(profile: str, results_dir: str | Path | None = None) -> dict[str, Any]:
    """Chapter 4's record under `profile`; `SpatialSetting.from_dict(record["best"])` rebuilds the setting."""
    return read_record("spatial", profile, "04_spatial", "spatial-distillation results", results_dir)
