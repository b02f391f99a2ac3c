"""Chapter 3's experiment: the chosen teacher on a TinyCLIP-style CLIP, with three initialisations of that CLIP.

The student is the teacher of chapter 2 (`teacher_choice.read_choice`: the same registry model and fusion, the same
recipe, frames and seeds) with only its CLIP swapped for a smaller one. Which weights the smaller CLIP starts from
is the question, so three initialisations are compared:
- `tinyclip`: TinyCLIP's distilled weights (embedded: `embedded-tiny`, made from the teacher's CLIP by inheritance
  plus affinity mimicking; real profiles: a TinyCLIP release checkpoint);
- `inherited`: TinyCLIP's manual weight inheritance straight from the teacher's CLIP, without any distillation
  training (what affinity mimicking adds is the difference to `tinyclip`);
- `random`: open_clip's initialisation (what any inherited knowledge is worth).

In the frozen-encoder regime each initialisation is its own frozen image encoder, hence its own frame-feature cache,
which is keyed by a weight *file*. So the inherited and random CLIPs are written once to files under
data/cache/backbones/, named by a hash of what made them (teacher weights, architectures, seed), as safetensors
(equal tensors give equal bytes): the feature cache key, and everything downstream, stays stable across runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from actiondistill.chapter_records import read_record, record_path
from actiondistill.chapters.latency import CALLS, classifier_latency, model_spec
from actiondistill.config import TrainConfig, from_dict, to_dict
from actiondistill.engine.runs import grid, run_grid, train_and_evaluate
from actiondistill.engine.runs import summarise as summarise_seeds
from actiondistill.io import atomic_write_json, json_nulls, read_json
from actiondistill.stats import PairedDifference, paired_by_seed

#: The initialisations of the student's CLIP, in the order tables list them.
INITS = ("tinyclip", "inherited", "random")
#: How the book names them (the teacher's row included).
LABELS = {
    "teacher": "teacher (chapter 2)",
    "tinyclip": "TinyCLIP-distilled",
    "inherited": "inherited, no distillation",
    "random": "random init",
}
#: Bump when the way inherited / random backbones are made changes, so old files are not reused.
INIT_VERSION = 1
#: A speed-up at least this large counts as the "steep latency drop" the thesis describes.
STEEP_SPEEDUP = 1.5
#: TinyCLIP's published figures (REFERENCE.md): ImageNet zero-shot top-1 (%) and GMACs per image.
REPORTED = [
    {"model": "TinyCLIP-ViT-39M-16-Text-19M", "teacher": "ViT-B-16", "imagenet_zs": 63.5, "gmacs": 9.5},
    {"model": "TinyCLIP-ViT-8M-16-Text-3M", "teacher": "ViT-B-16", "imagenet_zs": 41.1, "gmacs": 2.0},
    {"model": "TinyCLIP-ViT-40M-32-Text-19M", "teacher": "ViT-B-32", "imagenet_zs": 59.8, "gmacs": 3.5},
    {"model": "TinyCLIP-ViT-61M-32-Text-29M", "teacher": "ViT-B-32", "imagenet_zs": 62.4, "gmacs": 5.3},
]


@dataclass
class InitBackbone:
    """One initialisation of the student's CLIP: the weights (`pretrained`: a file, or a tag for TinyCLIP releases)
    and how they were obtained (`meta`: source, inheritance map, seed); `computed` is False when reused from disk."""

    init: str
    backbone: str
    pretrained: str
    computed: bool
    meta: dict[str, Any]


def backbones_dir() -> Path:
    """data/cache/backbones: inherited and random-init CLIPs written for the feature caches to key on."""
    from actiondistill.paths import data_dir

    return data_dir() / "cache" / "backbones"


def prepare_inits(teacher_backbone: str, teacher_pretrained: str | os.PathLike, student_backbone: str,
                  tinyclip_pretrained: str | os.PathLike | None, inits: Sequence[str] = INITS, seed: int = 0,
                  root: str | os.PathLike | None = None, progress: bool = True) -> dict[str, InitBackbone]:
    """The student's CLIP under each initialisation in `inits`, as weight files (written once, then reused).

    `tinyclip` is `tinyclip_pretrained` as given. `inherited` is `make_inherited(teacher, student_backbone)` from
    the teacher's CLIP weights; `random` is open_clip's initialisation under `seed`. Both are saved under `root`
    (default data/cache/backbones) with a JSON beside them saying how they were made.
    """
    from tqdm.auto import tqdm

    unknown = [i for i in inits if i not in INITS]
    if unknown or not inits:
        raise ValueError(f"inits={list(inits)}: expected a non-empty list from {list(INITS)}")
    if "tinyclip" in inits and tinyclip_pretrained is None:
        raise ValueError(f"init 'tinyclip' needs TinyCLIP weights for {student_backbone!r} (a checkpoint file or a "
                         "pretrained tag); got None")
    root = Path(root) if root is not None else backbones_dir()
    out = {}
    for init in tqdm(list(inits), desc="student initialisations", disable=not progress):
        if init == "tinyclip":
            out[init] = InitBackbone(init, student_backbone, str(tinyclip_pretrained), False,
                                     {"init": init, "source": str(tinyclip_pretrained)})
        elif init == "inherited":
            out[init] = _inherited(teacher_backbone, teacher_pretrained, student_backbone, root)
        else:
            out[init] = _random(student_backbone, seed, root)
    return out


def _inherited(teacher_backbone: str, teacher_pretrained: str | os.PathLike, student_backbone: str,
               root: Path) -> InitBackbone:
    from actiondistill.io import file_sha256
    from actiondistill.models.backbones import backbone_config
    from actiondistill.models.pretrained import resolve_pretrained

    checkpoint = resolve_pretrained(teacher_backbone, teacher_pretrained)[0]
    meta = {"init": "inherited", "version": INIT_VERSION, "teacher_backbone": teacher_backbone,
            "teacher_config": backbone_config(teacher_backbone), "teacher_sha256": file_sha256(checkpoint),
            "student_backbone": student_backbone, "student_config": backbone_config(student_backbone)}

    def make() -> tuple[Any, dict[str, Any]]:
        from actiondistill.models import create_backbone, make_inherited

        teacher = create_backbone(teacher_backbone, pretrained=teacher_pretrained, device="cpu")
        student, report = make_inherited(teacher, student_backbone)
        return student, {"source": str(teacher_pretrained), "layer_map": report.layer_map,
                         "summary": report.summary()}

    return _cached("inherited", student_backbone, meta, make, root)


def _random(student_backbone: str, seed: int, root: Path) -> InitBackbone:
    from actiondistill.models.backbones import backbone_config

    meta = {"init": "random", "version": INIT_VERSION, "seed": int(seed), "student_backbone": student_backbone,
            "student_config": backbone_config(student_backbone)}

    def make() -> tuple[Any, dict[str, Any]]:
        import torch

        from actiondistill.models import create_backbone

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return create_backbone(student_backbone, device="cpu"), {"source": f"open_clip initialisation, seed {seed}"}

    return _cached("random", student_backbone, meta, make, root)


def _cached(init: str, student_backbone: str, meta: dict[str, Any], make: Any, root: Path) -> InitBackbone:
    """Reuse `<root>/<student>-<init>-<hash of meta>.safetensors` (and its .json) or make and write both."""
    from actiondistill.models.checkpoints import save_weights

    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:12]
    path = root / f"{student_backbone}-{init}-{key}.safetensors"
    info = path.with_suffix(".json")
    if path.is_file() and info.is_file():
        return InitBackbone(init, student_backbone, str(path), False, read_json(info))
    model, made = make()
    save_weights(model, path)
    record = {**meta, **made, "key": key}
    atomic_write_json(info, record)
    return InitBackbone(init, student_backbone, str(path), True, record)


def recipe(choice: Mapping[str, Any]) -> TrainConfig:
    """Chapter 2's base TrainConfig, as recorded with the chosen teacher."""
    return from_dict(dict(choice["config"]), source="teacher choice: config", cls=TrainConfig)


def teacher_runs(choice: Mapping[str, Any], seeds: Sequence[int]) -> pd.DataFrame:
    """The teacher's chapter-2 rows (one per seed) from the evaluation records its runs wrote; no retraining."""
    from actiondistill.paths import results_dir

    folder = Path(choice["config"].get("results_dir") or results_dir())
    rows = []
    for seed in seeds:
        weights = choice["weights"].get(str(seed))
        if weights is None:
            raise ValueError(f"seed {seed}: the teacher {choice['teacher']!r} was trained with seeds "
                             f"{sorted(choice['weights'])} in chapter 2; rerun chapter 2 with seed {seed} or drop it")
        rows.append(read_json(folder / f"{Path(weights).parent.name}-eval.json")["metrics"]["row"])
    return pd.DataFrame(rows).assign(init="teacher", backbone=choice["model"]["backbone"],
                                     pretrained=str(choice["model"]["pretrained"]))


def frozen_token_embedding(teacher: pd.DataFrame) -> bool:
    """Whether the teacher's runs kept the token embedding table fixed (the students must do the same)."""
    states = set(teacher["token_embedding"])
    if len(states) != 1:
        raise ValueError(f"the teacher's runs disagree on the token embedding ({sorted(states)}); rerun chapter 2")
    return states == {"frozen"}


def student_config(base: TrainConfig, model: Mapping[str, Any], init: InitBackbone, seed: int, run_prefix: str,
                   runs_dir: str | os.PathLike | None = None) -> TrainConfig:
    """`base` with the teacher's model on the student's CLIP, the seed, and a run name / folder of its own."""
    from actiondistill.paths import data_dir

    run_name = f"{run_prefix}-{init.init}-{model['name']}-seed{seed}"
    out_dir = Path(runs_dir) if runs_dir is not None else data_dir() / "runs" / run_prefix
    mcfg = dataclasses.replace(base.model, name=model["name"], backbone=init.backbone, pretrained=init.pretrained,
                               checkpoint=None, kwargs=dict(model.get("kwargs") or {}))
    return dataclasses.replace(base, seed=seed, model=mcfg, run_name=run_name, out_dir=str(out_dir / run_name))


def run_swap(base: TrainConfig, model: Mapping[str, Any], inits: Mapping[str, InitBackbone], seeds: Sequence[int],
             features: Mapping[str, Any] | None = None, freeze_image_encoder: bool = True,
             freeze_token_embedding: bool = False, run_prefix: str = "backbone-swap",
             runs_dir: str | os.PathLike | None = None, progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Train and evaluate the student under every initialisation and seed with `engine.runs.train_and_evaluate`.

    `features` maps an initialisation to the FrameFeatures of its own frozen image encoder (frozen regime).
    One row per (initialisation, seed), with `init`, `backbone` and `pretrained` added.
    """
    if not seeds:
        raise ValueError("seeds: expected at least one seed")

    def run_one(name: str, seed: int) -> dict[str, Any]:
        init = inits[name]
        cfg = student_config(base, model, init, seed, run_prefix, runs_dir)
        row = train_and_evaluate(cfg, (features or {}).get(name), freeze_image_encoder, freeze_token_embedding,
                                 progress=False)
        return {**row, "init": name, "backbone": init.backbone, "pretrained": init.pretrained}

    return run_grid(grid(list(inits), seeds), run_one, what="initialisations", progress=progress, workers=workers)


def summarise(runs: pd.DataFrame, metrics: Sequence[str] = ("top1", "zs_top1")) -> pd.DataFrame:
    """Mean, std, min and max over seeds per initialisation (the teacher included), in the order of `runs`."""

    table = summarise_seeds(runs.assign(model=runs["init"]), metrics=metrics)
    table.index.name = "init"
    return table


def thesis_verdict(speedup: float, comparison: PairedDifference) -> str:
    """Whether our swap shows what the thesis saw: a steep latency drop and a clear accuracy drop.

    `comparison` is teacher minus student, paired by seed (`stats.paired_by_seed` on the init column): a positive
    mean is an accuracy drop. The latency drop is steep from STEEP_SPEEDUP; the accuracy drop is clear when the
    book's noise rule counts it.
    """
    steep = speedup >= STEEP_SPEEDUP
    gap, beyond, noise = comparison.mean, comparison.beyond, comparison.against_noise()
    change = -gap or 0.0  # the student's change, never printed as -0.0
    latency = (f"the latency drop is {'steep' if steep else 'not steep'} ({speedup:.2f}x faster; we call "
               f"{STEEP_SPEEDUP:g}x steep)")
    if beyond is None:
        accuracy = f"the accuracy changes by {change:+.1f} points, {noise}"
        clear = None
    elif beyond and gap > 0:
        accuracy, clear = f"the accuracy drop ({gap:.1f} points) is {noise}", True
    elif beyond:
        accuracy, clear = f"the student is *more* accurate, by {change:.1f} points, {noise}", False
    else:
        accuracy, clear = f"the accuracy change ({change:+.1f} points) is {noise}", False
    if clear is None:
        outcome = "ours can confirm the speed-up only" if steep else "ours confirms neither part"
    elif steep and clear:
        outcome = "ours reproduces both"
    elif steep:
        outcome = "ours reproduces the speed-up but not the accuracy drop"
    elif clear:
        outcome = "ours reproduces the accuracy drop but not the speed-up"
    else:
        outcome = "ours reproduces neither"
    return (f"The thesis saw a steep latency drop and a clear accuracy drop. Here {latency}, and {accuracy}; "
            f"so {outcome}.")


def best_init(summary: pd.DataFrame, runs: pd.DataFrame, inits: Sequence[str] | None = None) -> dict[str, Any]:
    """The initialisation with the highest mean closed-set top-1 (`summary`; zero-shot breaks exact ties), and its
    margin over the runner-up (`ranking[1]`), paired by seed on `runs` (None with a single initialisation)."""
    candidates = [i for i in (inits or summary.index) if i != "teacher"]
    if not candidates:
        raise ValueError("best_init: no student initialisation in the summary")
    ranked = summary.loc[candidates].sort_values(["top1_mean", "zs_top1_mean"], ascending=False,
                                                 na_position="last")
    order = [str(i) for i in ranked.index]
    margin = paired_by_seed(runs, "init", order[0], order[1]) if len(order) > 1 else None
    return {"init": order[0], "ranking": order, "margin": margin}


def winner_sentence(best: Mapping[str, Any]) -> str:
    """Which initialisation wins and by how much, judged by the book's noise rule."""
    winner = LABELS[best["init"]]
    margin = best["margin"]
    if margin is None:
        return f"Only one initialisation was trained ({winner})."
    runner_up = LABELS[best["ranking"][1]]
    if margin.beyond is None:
        return (f"{winner} has the highest mean closed-set top-1, {margin.mean:.1f} points above {runner_up}, "
                f"{margin.against_noise()}: the winner is provisional.")
    if not margin.beyond:
        return (f"{winner} has the highest mean closed-set top-1, {margin.mean:.1f} points above {runner_up}, "
                f"{margin.against_noise()}: no initialisation clearly wins.")
    return (f"{winner} wins: {margin.mean:.1f} points of closed-set top-1 above {runner_up}, "
            f"{margin.against_noise()}.")


def latency_table(model: Mapping[str, Any], teacher_backbone: str, student_backbone: str,
                  class_texts: Sequence[str], frames: Sequence[int] = (8, 16, 32), device: str = "cpu",
                  warmup: int = 1, calls: int = CALLS, threads: int | None = 1,
                  progress: bool = True) -> pd.DataFrame:
    """The teacher and the student side by side in the book's one latency table (`chapters.latency`; the teacher
    is the speed-up reference), batch 1. Random weights, so one student row serves every initialisation."""
    specs = {role: model_spec(model["name"], backbone, model.get("kwargs"))
             for role, backbone in (("teacher", teacher_backbone), ("student", student_backbone))}
    return classifier_latency(specs, class_texts, frames=frames, batches=(1,), device=device, warmup=warmup,
                              calls=calls, threads=threads, progress=progress)


def image_encoder_facts(backbone: str) -> dict[str, float]:
    """Image-encoder parameters (M) and GMACs per image (multiply-adds, as TinyCLIP reports them) of an architecture,
    counted on random weights at its own input size."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from actiondistill.models.backbones import backbone_config, create_backbone, visual_parameter_count

    side = backbone_config(backbone)["vision_cfg"]["image_size"]
    model = create_backbone(backbone, device="cpu")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.encode_image(torch.zeros(1, 3, side, side))
    return {"params_m": visual_parameter_count(model) / 1e6, "gmacs": counter.get_total_flops() / 2e9}


def reported_table(teacher_backbone: str, student_backbone: str) -> pd.DataFrame:
    """TinyCLIP's published figures (source "reported") beside our teacher/student pair (source "measured here").

    Image-encoder parameters are counted from each architecture's config for every row (REFERENCE.md computes
    them the same way), and each row's ratio is to its own teacher's image encoder. Reported GMACs and ImageNet
    zero-shot top-1 are the TinyCLIP paper's; ours are counted here (no ImageNet score exists for our CLIPs).
    """
    import torch

    from actiondistill.models.backbones import create_backbone, visual_parameter_count

    def visual_m(name: str) -> float:
        with torch.device("meta"):
            return visual_parameter_count(create_backbone(name)) / 1e6

    rows = []
    for fact in REPORTED:
        params = visual_m(fact["model"])
        rows.append({"source": "reported", "model": fact["model"], "teacher": fact["teacher"],
                     "image_encoder_m": params, "vs_teacher": params / visual_m(fact["teacher"]),
                     "gmacs": fact["gmacs"], "imagenet_zs": fact["imagenet_zs"]})
    teacher, student = image_encoder_facts(teacher_backbone), image_encoder_facts(student_backbone)
    rows.append({"source": "measured here", "model": student_backbone, "teacher": teacher_backbone,
                 "image_encoder_m": student["params_m"], "vs_teacher": student["params_m"] / teacher["params_m"],
                 "gmacs": student["gmacs"], "imagenet_zs": math.nan})
    return pd.DataFrame(rows)


def results_path(profile: str, results_dir: str | os.PathLike | None = None) -> Path:
    """data/results/backbone_swap-<profile>.json: where chapter 7 finds the best student setting of the profile."""
    return record_path("backbone_swap", profile, results_dir)


def _margin_record(best: Mapping[str, Any]) -> dict[str, Any] | None:
    """`best_init`'s margin as the record has always kept it: winner `a` minus runner-up `b` in closed-set top-1,
    `gap` its mean, `spread` two standard errors, `beyond` the noise rule's judgement (None with one seed)."""
    margin = best["margin"]
    if margin is None:
        return None
    a, b = best["ranking"][:2]
    return {"a": a, "b": b, "metric": "top1", "gap": margin.mean, "spread": margin.margin, "beyond": margin.beyond,
            "seeds": margin.seeds}


def write_results(path: str | os.PathLike, choice: Mapping[str, Any], inits: Mapping[str, InitBackbone],
                  runs: pd.DataFrame, summary: pd.DataFrame, latency: pd.DataFrame, best: Mapping[str, Any],
                  base: TrainConfig, extra: Mapping[str, Any] | None = None) -> Path:
    """Record the chapter atomically: every run, the summary, the latency table, and the best student setting with
    what rebuilds it (`best.model`: registry name, backbone, initial weights, frames, kwargs; `best.weights`: the
    trained weights per seed)."""
    winner = best["init"]
    mine = runs[runs["init"] == winner]
    init = inits[winner]
    record = {
        "teacher": {"name": choice["teacher"], "label": choice.get("label", choice["teacher"]),
                    "model": choice["model"], "weights": choice["weights"]},
        "inits": {name: dataclasses.asdict(i) for name, i in inits.items()},
        "best": {
            "init": winner,
            "label": LABELS[winner],
            "model": {**choice["model"], "backbone": init.backbone, "pretrained": init.pretrained},
            "weights": {int(s): w for s, w in zip(mine["seed"], mine["weights"], strict=True)},
            "ranking": list(best["ranking"]),
            "margin": _margin_record(best),
            "top1_mean": float(summary.loc[winner, "top1_mean"]),
            "zs_top1_mean": float(summary.loc[winner, "zs_top1_mean"]),
        },
        "runs": runs.to_dict(orient="records"),
        "summary": summary.reset_index().to_dict(orient="records"),
        "latency": latency.to_dict(orient="records"),
        "config": to_dict(base),
        **(dict(extra) if extra else {}),
    }
    return atomic_write_json(path, json_nulls(record))


def read_results(profile: str, results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Chapter 3's record under `profile` (run chapter 3 first)."""
    return read_record("backbone_swap", profile, "03_backbone", "backbone-swap results", results_dir)

