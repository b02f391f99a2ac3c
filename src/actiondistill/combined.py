"""Chapter 7's experiment: the three distillations combined into one student, and the book's final table.

Every combination is the student of chapter 3 (the chapter-2 teacher's video model on the smaller CLIP, with the
initialisation chapter 3 found best), trained with chapter 2's recipe and the profile's seeds, plus:

- `swap`: nothing (chapter 3's own runs, read back, not retrained);
- `swap+spatial`: chapter 4's chosen setting (spatial heads and losses; chapter 4's runs are read back when they
  are exactly this configuration, i.e. when chapter 4's student CLIP is chapter 3's best);
- `swap+deit`: chapter 5's best two-headed variant (the distillation token; its teacher, when the variant has one,
  is chapter 2's teacher on its own CLIP, reading its own cached embeddings of the student's frames:
  `frame_cache.TeacherFrameDataset`);
- `swap+spatial+deit`: both, one two-headed student with spatial heads (`spatial-twohead`) and the spatial
  objective around the two-headed loss (`spatial_multitask` with `deit=`).

Each run is `engine.runs.train_and_evaluate`, which writes an evaluation record; every model of the book is then
identified by its per-seed weight files, and `collect` reads any chapter's models back from those records, with
the architecture each was trained as, for the final table (`final_table`): accuracy over seeds beside parameters,
GFLOPs and latency measured for all architectures in one profiler run (the book's one latency table,
`chapters.latency.classifier_latency`). Chapter 7's goal, its tables and figures are the chapter's
(`chapters.ch07_combined`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from actiondistill.chapter_records import record_path
from actiondistill.config import ObjectiveConfig, TrainConfig
from actiondistill.engine.runs import grid, recorded_row, run_grid, run_inputs, train_and_evaluate
from actiondistill.engine.runs import summarise as summarise_seeds
from actiondistill.io import atomic_write_json, json_nulls, read_json
from actiondistill.stats import paired_by_seed, paired_difference

#: The combinations, in the order tables list them.
COMBINATIONS = ("swap", "swap+spatial", "swap+deit", "swap+spatial+deit")
LABELS = {
    "swap": "swap",
    "swap+spatial": "swap + spatial",
    "swap+deit": "swap + two heads",
    "swap+spatial+deit": "swap + spatial + two heads",
}
#: Where each chapter's record is made (the error for a stale record names the chapter to rerun).
CHAPTERS = {2: "02_teacher", 3: "03_backbone", 4: "04_spatial", 5: "05_deit"}
#: The thesis's final result (REFERENCE.md): HMDB51 top-1, speed relative to its teacher, backbone parameters
#: relative to the teacher's ("half the backbone parameters").
REPORTED = [
    {"model": "ActionCLIP (thesis teacher)", "benchmark": "HMDB51", "top1": 68.8, "speedup": 1.0,
     "backbone_ratio": 1.0},
    {"model": "thesis student: TinyCLIP + spatial + two-headed DeiT", "benchmark": "HMDB51", "top1": 66.5,
     "speedup": 1.73, "backbone_ratio": 0.5},
]


def reported_table() -> pd.DataFrame:
    """The thesis's numbers, labelled as reported (not measured here), with its drop in points."""
    table = pd.DataFrame(REPORTED)
    table.insert(0, "source", "reported")
    table["drop"] = table["top1"].iloc[0] - table["top1"]
    return table


# --------------------------------------------------------------------------------------- the chapters' records
def read_chapters(choice: Mapping[str, Any], profile: str, results_dir: str | Path | None = None) -> dict[str, Any]:
    """Chapter 2's record `choice` (read and checked by the chapter) with chapters 3 to 5's records under `profile`
    ("choice", "swap", "spatial", "deit"), after checking that chapters 3 to 5 were made with that teacher (a stale
    record names the chapter to rerun)."""
    from actiondistill import backbone_swap as bs
    from actiondistill.deit import experiment as dx
    from actiondistill.spatial import experiment as sx

    records = {"choice": dict(choice), "swap": bs.read_results(profile, results_dir),
               "spatial": sx.read_results(profile, results_dir), "deit": dx.read_results(profile, results_dir)}
    theirs = {3: (records["swap"]["teacher"]["model"], records["swap"]["teacher"]["weights"]),
              4: (records["spatial"]["teacher"], None),
              5: (records["deit"]["teacher"]["model"], records["deit"]["teacher"]["weights"])}
    ours = {3: (choice["model"], choice["weights"]), 4: (choice["teacher"], None),
            5: (choice["model"], choice["weights"])}
    for chapter, made_with in theirs.items():
        if made_with != ours[chapter]:
            raise ValueError(f"chapter {chapter}'s record of profile {profile!r} was made with another teacher than "
                             f"chapter 2's current one ({choice['teacher']}, weights {choice['weights']}): rerun "
                             f"chapter {chapter} (python -m actiondistill book --profile {profile} --only "
                             f"{CHAPTERS[chapter]})")
    return records


def student_base(choice: Mapping[str, Any], swap: Mapping[str, Any]) -> TrainConfig:
    """Chapter 2's recipe with chapter 3's best student CLIP (its backbone and initial weights)."""
    from actiondistill import backbone_swap as bs

    base = bs.recipe(choice)
    best = swap["best"]["model"]
    return dataclasses.replace(base, model=dataclasses.replace(base.model, backbone=best["backbone"],
                                                               pretrained=best["pretrained"], checkpoint=None))


def deit_setting(deit: Mapping[str, Any], metric: str = "top1") -> dict[str, Any]:
    """Chapter 5's best *two-headed* variant (the single head can be its overall best, but is no DeiT student), its
    options, and how it compared with the single head there (`vs_single`: variant minus single head, paired by seed;
    None without single-head runs)."""
    from actiondistill.deit import experiment as dx
    runs = pd.DataFrame(deit["runs"])
    means = runs[runs["variant"] != "single"].groupby("variant")[metric].mean()
    if means.empty:
        raise ValueError("chapter 5's record has no two-headed variant; rerun chapter 5 with one of "
                         f"{[v for v in dx.VARIANTS if v != 'single']}")
    order = [v for v in dx.VARIANTS if v in means.index]
    variant = max(order, key=lambda v: (means[v], -order.index(v)))
    effect = paired_by_seed(runs, "variant", variant, "single", metric) if "single" in set(runs["variant"]) else None
    return {"variant": variant, "label": dx.LABELS[variant], "uses_teacher": variant in dx.TEACHER_VARIANTS,
            "alpha": float(deit["alpha"]), "tau": float(deit["tau"]),
            "soft_alpha": None if deit.get("soft_alpha") is None else float(deit["soft_alpha"]),
            "fusion_layers": int(deit["fusion_layers"]), "top1_mean": float(means[variant]), "vs_single": effect}


def spatial_setting(spatial: Mapping[str, Any], base: TrainConfig) -> dict[str, Any]:
    """Chapter 4's chosen setting, its student moved onto `base`'s CLIP, and its headline (did it help there?)."""
    from actiondistill.spatial import experiment as sx

    student = {**spatial["student"], "backbone": base.model.backbone, "pretrained": base.model.pretrained}
    return {"setting": sx.SpatialSetting.from_dict(spatial["best"]), "student": student,
            "targets": dict(spatial["targets"]), "headline": dict(spatial["headline"]),
            "weights": {int(s): w for s, w in spatial["weights"].items()}}


def spatial_targets_of(spatial: Mapping[str, Any], clips: Any, framework_features: Any = None, dtype: str = "fp32",
                       device: str = "cpu", progress: bool = True) -> Any:
    """The targets chapter 4's chosen setting trained on (`spatial_setting`): the synthetic ground truth, or the
    CLIP framework's with chapter 4's recorded settings, from its cache.

    `clips`: a SynthActions manifest, or a `ClipList` (`spatial.sources.dataset_clips` of the run's config, which
    is also right for a manifest). `framework_features` are the framework CLIP's cached frame embeddings, as chapter
    4 passed them (their precision is part of the key; without them, the recorded precision, else `dtype`); a key
    other than the recorded one is an error.
    """
    from actiondistill.spatial import ClipList, SpatialTargetCache, ground_truth_targets
    from actiondistill.spatial import experiment as sx
    from actiondistill.spatial.sources import chapter_vocabularies

    clips = clips if isinstance(clips, ClipList) else ClipList.from_manifest(clips)
    setting, recorded = spatial["setting"], spatial["targets"]
    if setting.source == sx.GROUND_TRUTH:
        if clips.manifest is None:
            raise ValueError("spatial targets: chapter 4 chose ground-truth targets, which only a SynthActions "
                             "manifest has")
        return ground_truth_targets(clips.manifest)
    vocabularies = chapter_vocabularies(recorded.get("vocabulary_files"), clips.manifest, recorded["objectives"])
    cache = SpatialTargetCache(clips, vocabularies, recorded["backbone"], recorded["pretrained"],
                               size=recorded.get("size"), frames=setting.frames, temperature=recorded["temperature"],
                               aggregate=recorded["aggregate"], dtype=recorded.get("dtype", dtype),
                               features=framework_features,
                               device=device, progress=progress)
    if recorded.get("key") and cache.key != recorded["key"]:
        raise ValueError(f"spatial targets: chapter 4 trained on {recorded['key']!r}, these settings give "
                         f"{cache.key!r} (another CLIP, precision or vocabulary); rerun chapter 4 with this world")
    return cache.get()


def earlier_findings(spatial: Mapping[str, Any], deit: Mapping[str, Any]) -> str:
    """What chapters 4 and 5 found for the two ingredients, in words chosen from their verdicts, and that the
    combinations are trained either way."""
    helps = spatial["headline"].get("helps")
    gain = spatial["headline"].get("gain") or {}
    if gain.get("seeds", 0) < 2:
        four = "chapter 4 ran one seed, so it could not say whether its setting helps"
    elif helps:
        four = f"in chapter 4 its setting helped ({gain['mean']:+.1f} points over the action-only student)"
    elif gain.get("hurts"):
        four = f"in chapter 4 its setting hurt ({gain['mean']:+.1f} points against the action-only student)"
    else:
        four = (f"in chapter 4 its setting gave no measurable gain ({gain['mean']:+.1f} points against the "
                "action-only student, within two standard errors)")
    effect = deit["vs_single"]
    if effect is None or effect.verdict == "unknown":
        five = f"chapter 5 could not judge its best two-headed variant ({deit['label']}) against the single head"
    else:
        word = {"gain": "beat", "loss": "fell below", "none": "did not measurably differ from"}[effect.verdict]
        five = (f"chapter 5's best two-headed variant ({deit['label']}) {word} the single head "
                f"({effect.mean:+.1f} points, paired over {effect.seeds} seeds)")
    unproven = not helps or effect is None or effect.verdict != "gain"
    tail = (" Each ingredient is combined with the swap regardless: what it adds on the smaller CLIP is measured "
            "here, not assumed." if unproven else " Both are combined with the swap.")
    return f"{four[0].upper()}{four[1:]}; {five}.{tail}"


# --------------------------------------------------------------------------------------- configurations
def combination_config(base: TrainConfig, combination: str, seed: int, *, spatial: Mapping[str, Any] | None = None,
                       targets: Any = None, deit: Mapping[str, Any] | None = None, teacher: Any = None,
                       run_prefix: str = "combined", runs_dir: str | Path | None = None) -> TrainConfig:
    """One combination's run: `base` (`student_base`) with the spatial part (`spatial_setting` and its
    `SpatialTargets`) and / or the two-headed part (`deit_setting`, and the teacher's `TeacherConfig` when its
    variant has one), built by chapters 4 and 5's own config functions; the run is named by the combination."""
    from actiondistill.deit import experiment as dx
    from actiondistill.paths import data_dir
    from actiondistill.spatial import experiment as sx

    if combination not in COMBINATIONS:
        raise ValueError(f"combination {combination!r}: expected one of {list(COMBINATIONS)}")
    with_spatial, with_deit = "spatial" in combination, "deit" in combination
    if with_spatial and (spatial is None or targets is None):
        raise ValueError(f"combination {combination!r} needs spatial= (spatial_setting) and targets= (SpatialTargets)")
    if with_deit and deit is None:
        raise ValueError(f"combination {combination!r} needs deit= (deit_setting)")
    slug = combination.replace("+", "-")
    run_name = f"{run_prefix}-{slug}-seed{seed}"
    out_dir = str((Path(runs_dir) if runs_dir is not None else data_dir() / "runs" / run_prefix) / run_name)
    cfg = dataclasses.replace(base, seed=seed)
    if with_spatial:
        cfg = sx.spatial_config(cfg, spatial["student"], spatial["setting"], targets, seed)
    if with_deit:
        two = dx.variant_config(base, deit["variant"], seed, teacher, alpha=deit["alpha"], tau=deit["tau"],
                                soft_alpha=deit["soft_alpha"], fusion_layers=deit["fusion_layers"])
        if with_spatial:
            kwargs = {**two.model.kwargs, "spatial_heads": cfg.model.kwargs["spatial_heads"],
                      "head_input": cfg.model.kwargs.get("head_input", "video")}
            model = dataclasses.replace(two.model, name="spatial-twohead", kwargs=kwargs)
            objective = ObjectiveConfig("spatial_multitask", {**cfg.objective.kwargs, "deit": two.objective.kwargs})
            two = dataclasses.replace(two, model=model, objective=objective)
        cfg = two
    return dataclasses.replace(cfg, run_name=run_name, out_dir=out_dir)


# --------------------------------------------------------------------------------------- training
def train_combination(cfg: TrainConfig, features: Any = None, teacher_features: Any = None, targets: Any = None,
                      freeze_image_encoder: bool = True, freeze_token_embedding: bool = False,
                      progress: bool = True) -> dict[str, Any]:
    """Train one combination (`combination_config`) with `train_and_evaluate` and return its row.

    The training items gain the spatial targets (`targets`, for a spatial objective) and, when the config has a
    teacher and the student trains on cached `features`, the teacher's own cached embeddings of the same frames
    (`teacher_features`, checked by cache key against the teacher's image encoder).
    """
    from actiondistill.frame_cache import TeacherFrameDataset, check_encoder
    from actiondistill.spatial.dataset import SpatialTargetDataset

    spatial = cfg.objective.name == "spatial_multitask"
    if spatial and targets is None:
        raise ValueError(f"run {cfg.run_name!r}: the spatial objective needs targets= (SpatialTargets)")
    cached = features is not None and freeze_image_encoder
    teacher_frames = None
    if cached and cfg.teachers:
        if teacher_features is None:
            raise ValueError(f"run {cfg.run_name!r}: the student trains on cached frame embeddings of its own CLIP "
                             "and has a teacher: pass teacher_features= (the teacher CLIP's cache of the same world)")
        check_encoder(features, cfg.model.backbone, cfg.model.pretrained, "the student's")
        for teacher in cfg.teachers:
            check_encoder(teacher_features, teacher.model.backbone, teacher.model.pretrained,
                          f"teacher {teacher.name!r}'s")
        teacher_frames = teacher_features

    def wrap(dataset: Any) -> Any:
        if teacher_frames is not None:
            dataset = TeacherFrameDataset(dataset, teacher_frames)
        if spatial:
            names = cfg.objective.kwargs.get("objectives") or targets.names
            dataset = SpatialTargetDataset(dataset, targets.select(list(names)))
        return dataset

    return train_and_evaluate(cfg, features, freeze_image_encoder, freeze_token_embedding, progress=progress,
                              wrap_train=wrap)


def run_combinations(base: TrainConfig, seeds: Sequence[int], combinations: Sequence[str] = COMBINATIONS, *,
                     swap: Mapping[str, Any], spatial: Mapping[str, Any] | None = None, targets: Any = None,
                     deit: Mapping[str, Any] | None = None, choice: Mapping[str, Any] | None = None,
                     features: Any = None, teacher_features: Any = None, freeze_image_encoder: bool = True,
                     freeze_token_embedding: bool = False, run_prefix: str = "combined",
                     runs_dir: str | Path | None = None, progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Every combination with every seed; one row per (combination, seed): `train_and_evaluate`'s row plus
    `combination`, `label` and `reused_from` (the chapter whose run it is, or "").

    `swap` rows are chapter 3's runs of its best initialisation (`swap`: its record); `swap+spatial` reuses chapter
    4's run of a seed when `engine.runs.recorded_row` finds it is exactly this configuration
    (`spatial["weights"]`); everything else trains here. `choice` (chapter 2's record) gives the teacher of a
    two-headed variant with one.
    """
    from actiondistill.deit import experiment as dx

    unknown = [c for c in combinations if c not in COMBINATIONS]
    if unknown or not combinations:
        raise ValueError(f"combinations={list(combinations)}: expected a non-empty selection of {list(COMBINATIONS)}")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    if deit is not None and deit["uses_teacher"] and choice is None:
        raise ValueError(f"the two-headed variant {deit['variant']!r} distils from chapter 2's teacher: pass choice=")
    inputs = run_inputs(features is not None and freeze_image_encoder, freeze_image_encoder,
                           freeze_token_embedding)
    def run_one(combination: str, seed: int) -> dict[str, Any]:
        if combination == "swap":
            row, reused = _swap_row(swap, seed), "chapter 3"
        else:
            teacher = dx.teacher_config(choice, seed)[0] if "deit" in combination and deit["uses_teacher"] else None
            cfg = combination_config(base, combination, seed, spatial=spatial, targets=targets, deit=deit,
                                     teacher=teacher, run_prefix=run_prefix, runs_dir=runs_dir)
            previous = spatial["weights"].get(seed) if combination == "swap+spatial" else None
            row = recorded_row(cfg, previous, inputs) if previous else None
            reused = "chapter 4" if row is not None else ""
            if row is None:
                row = train_combination(cfg, features, teacher_features, targets, freeze_image_encoder,
                                        freeze_token_embedding, progress=False)
        return {"combination": combination, "label": LABELS[combination], **row, "reused_from": reused}

    return run_grid(grid(combinations, seeds), run_one, what="combinations", progress=progress, workers=workers)


def _swap_row(swap: Mapping[str, Any], seed: int) -> dict[str, Any]:
    best = swap["best"]["init"]
    mine = [r for r in swap["runs"] if r["init"] == best and int(r["seed"]) == seed]
    if not mine:
        raise ValueError(f"seed {seed}: chapter 3 has no run of its best initialisation ({best}) with this seed; rerun "
                         "chapter 3 with the same seeds")
    return dict(mine[0])


def summarise(runs: pd.DataFrame, metrics: Sequence[str] = ("top1", "zs_top1", "train_s")) -> pd.DataFrame:
    """Mean, std, min and max over seeds per combination (`engine.runs.summarise`), with its label."""

    table = summarise_seeds(runs.assign(model=runs["combination"]), metrics=[m for m in metrics if m in runs])
    table.index.name = "combination"
    table.insert(0, "label", [LABELS[c] for c in table.index])
    return table


def added_value(runs: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """What each combination adds to the swap alone, paired by seed (`stats.paired_by_seed`: mean, std, verdict
    "gain" / "loss" / "none" / "unknown"), with a sentence per combination."""
    if "swap" not in set(runs["combination"]):
        raise ValueError("added_value: the runs need the swap alone (combination 'swap') as the reference")
    rows = []
    for combination in [c for c in COMBINATIONS if c in set(runs["combination"]) and c != "swap"]:
        effect = paired_by_seed(runs, "combination", combination, "swap", metric)
        rows.append({"combination": combination, "label": LABELS[combination], "mean": effect.mean,
                     "std": effect.std, "seeds": effect.seeds, "verdict": effect.verdict,
                     "sentence": f"{LABELS[combination]} against the swap alone: {effect.described()}"})
    return pd.DataFrame(rows).set_index("combination")


# --------------------------------------------------------------------------------------- learning curves
def learning_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs' validation curves (`engine.runs.val_curve`) as one long table: combination, label, seed, epoch,
    top1. Runs recorded without validation are left out."""
    rows = [{"combination": run["combination"], "label": run["label"], "seed": int(run["seed"]), "epoch": int(epoch),
             "top1": float(top1)}
            for run in runs.to_dict("records") for epoch, top1 in (run.get("val_curve") or [])]
    return pd.DataFrame(rows, columns=["combination", "label", "seed", "epoch", "top1"])


def flattening(curves: pd.DataFrame, tail: float = 0.3) -> pd.DataFrame:
    """Per combination, the validation top-1 gained over the last `tail` of training, paired over seeds by the
    book's noise rule: a combination whose gain there is beyond noise was still learning when training stopped, so
    its score measures the budget as much as the method.

    The gain of a seed is its last evaluation minus its evaluation at the latest epoch at most (1 - tail) of the
    way through. Columns: label, from_epoch, to_epoch, gain (mean points), margin (two standard errors), seeds,
    flattened (True, False, or None with one seed), sentence.
    """
    if not 0 < tail < 1:
        raise ValueError(f"tail={tail}: expected a fraction of the training in (0, 1)")
    rows = []
    for combination, group in curves.groupby("combination", sort=False):
        last = int(group["epoch"].max())
        earlier = group.loc[group["epoch"] <= (1 - tail) * last, "epoch"]
        if earlier.empty:
            continue
        start = int(earlier.max())
        at = group.pivot_table(index="seed", columns="epoch", values="top1")
        effect = paired_difference(at[last], at[start])
        flattened = None if effect.verdict == "unknown" else effect.verdict != "gain"
        state = {None: "one seed: not judged", True: "flattened", False: "still rising when training stopped"}
        rows.append({"combination": combination, "label": LABELS[combination], "from_epoch": start, "to_epoch": last,
                     "gain": effect.mean, "margin": effect.margin, "seeds": effect.seeds, "flattened": flattened,
                     "sentence": f"{LABELS[combination]}: {effect.mean:+.1f} validation points from epoch {start} to "
                                 f"{last} ({effect.phrase()}): {state[flattened]}"})
    return pd.DataFrame(rows).set_index("combination") if rows else pd.DataFrame(
        columns=["label", "from_epoch", "to_epoch", "gain", "margin", "seeds", "flattened", "sentence"])


def flattening_text(verdicts: pd.DataFrame) -> str:
    """`flattening`'s verdicts as one passage for the book, or why there are none (each run validated only once)."""
    if verdicts.empty:
        return ("no curve can be judged: each run was validated too rarely (the rule needs an evaluation before the "
                "last 30% of training and one at its end).")
    return "; ".join(verdicts["sentence"]) + "."


# --------------------------------------------------------------------------------------- every model of the book
def book_entries(records: Mapping[str, Any], combinations: pd.DataFrame) -> list[tuple[str, str, dict[int, str]]]:
    """Every model of the book as (chapter, name, {seed: weights}) for `collect`, in the order of the chapters: the
    teacher first (the speed-up reference), chapter 3's students per initialisation, chapter 4's chosen setting,
    chapter 5's variants, then this chapter's combinations (`run_combinations`' rows)."""
    from actiondistill import backbone_swap as bs
    from actiondistill.deit import experiment as dx
    from actiondistill.spatial import experiment as sx

    def per_seed(rows: pd.DataFrame) -> dict[int, str]:
        return {int(s): str(w) for s, w in zip(rows["seed"], rows["weights"], strict=True)}

    choice, swap, spatial, deit = (records[k] for k in ("choice", "swap", "spatial", "deit"))
    entries = [("chapter 2", f"teacher ({choice['label']})", {int(s): w for s, w in choice["weights"].items()})]
    swap_runs = pd.DataFrame(swap["runs"])
    entries += [("chapter 3", f"swap ({bs.LABELS[i]})", per_seed(swap_runs[swap_runs["init"] == i]))
                for i in swap_runs["init"].unique()]
    setting = sx.SpatialSetting.from_dict(spatial["best"])
    entries.append(("chapter 4", f"spatial ({setting.name})", {int(s): w for s, w in spatial["weights"].items()}))
    deit_runs = pd.DataFrame(deit["runs"])
    entries += [("chapter 5", dx.LABELS[v], per_seed(deit_runs[deit_runs["variant"] == v]))
                for v in deit_runs["variant"].unique()]
    entries += [("chapter 7", LABELS[c], per_seed(combinations[combinations["combination"] == c]))
                for c in combinations["combination"].unique()]
    return entries


def collect(entries: Sequence[tuple[str, str, Mapping[Any, str]]], seeds: Sequence[int],
            results_dir: str | Path | None = None) -> pd.DataFrame:
    """Every model of the book, one row per (model, seed), read back from its runs' evaluation records.

    `entries` are (chapter, name, {seed: weights file}); only `seeds` are kept. Entries with the same weight files
    are one model (e.g. chapter 3's best initialisation and chapter 7's swap alone) and become one, its names
    joined with " = " and its first chapter kept. Columns: chapter, model, seed, top1, zs_top1, weights, and the
    architecture it was trained as (`arch`: registry name, backbone and constructor options, as JSON-able dict).
    """
    from actiondistill.paths import results_dir as default_results

    folder = Path(results_dir or default_results())
    wanted = [int(s) for s in seeds]
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    for chapter, name, weights in entries:
        files = {int(s): str(w) for s, w in weights.items() if int(s) in wanted}
        if not files:
            raise ValueError(f"{chapter} {name!r}: no weights for the seeds {wanted} (has {sorted(weights)})")
        key = tuple(files[s] for s in sorted(files))
        if key in merged:
            merged[key]["names"].append(name)
        else:
            merged[key] = {"chapter": chapter, "names": [name], "files": files}
    rows = []
    for entry in merged.values():
        for seed, weights in sorted(entry["files"].items()):
            path = folder / f"{Path(weights).parent.name}-eval.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no evaluation record of {weights} ({entry['chapter']}, "
                                        f"{entry['names'][0]}); rerun that chapter")
            record = read_json(path)
            row, model = record["metrics"]["row"], record["config"]["model"]
            arch = {"name": model["name"], "backbone": model["backbone"],
                    "kwargs": {k: v for k, v in (model.get("kwargs") or {}).items() if k != "init_from"}}
            rows.append({"chapter": entry["chapter"], "model": " = ".join(entry["names"]), "seed": seed,
                         "top1": float(row["top1"]), "zs_top1": _nan(row.get("zs_top1")), "weights": weights,
                         "arch": arch})
    return pd.DataFrame(rows)


def architectures(models: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The distinct architectures of `collect`'s rows, named "<registry name> on <backbone>" (numbered when one name
    has several configurations), and each row's name for them as `models["arch_name"]` (set in place)."""
    specs: dict[str, dict[str, Any]] = {}
    names = []
    for arch in models["arch"]:
        found = next((n for n, s in specs.items() if s == arch), None)
        if found is None:
            found = f"{arch['name']} on {arch['backbone']}"
            count = sum(1 for s in specs.values() if (s["name"], s["backbone"]) == (arch["name"], arch["backbone"]))
            found += f" ({count + 1})" if count else ""
            specs[found] = arch
        names.append(found)
    models["arch_name"] = names
    return specs


def final_table(models: pd.DataFrame, latency: pd.DataFrame, frames: int, throughput_batch: int = 1) -> pd.DataFrame:
    """One row per model of the book (`collect` with `architectures` applied; the first model is the teacher):
    seeds, top-1 and zero-shot top-1 (mean, std), image-encoder and total parameters (M), GFLOPs (2 x MAC), latency
    (`latency_ms`, as `profiler.sweep` defines it) at batch 1 and throughput (clips/s at `throughput_batch`) at `frames`
    frames, the speed-up over the teacher, the drop in points from the teacher's top-1, and the architecture.

    The speed-up comes from the sweep's per-round ratios (`speedup_vs_first`), taken against the teacher's
    architecture, so load that struck one round moves it least (`profiler.sweep`)."""
    grouped = models.groupby("model", sort=False)
    table = grouped.agg(chapter=("chapter", "first"), arch=("arch_name", "first"), seeds=("seed", "size"),
                        top1_mean=("top1", "mean"), top1_std=("top1", "std"), zs_top1_mean=("zs_top1", "mean"),
                        zs_top1_std=("zs_top1", "std"))
    timed = latency[latency["frames"] == frames]
    one = timed[timed["batch"] == 1].set_index("model")
    many = timed[timed["batch"] == throughput_batch].set_index("model")
    missing = sorted((set(table["arch"]) - set(one.index)) | (set(table["arch"]) - set(many.index)))
    if missing:
        raise ValueError(f"latency: no rows at {frames} frames (batch 1 and {throughput_batch}) for {missing}")
    for column in ("params_backbone_m", "params_total_m", "gflops", "latency_ms"):
        table[column] = table["arch"].map(one[column]).to_numpy()
    table["throughput_clips_s"] = table["arch"].map(many["throughput_clips_s"]).to_numpy()
    teacher = table.iloc[0]
    speedup = one["speedup_vs_first"]  # against the sweep's first architecture: re-based on the teacher's
    table["speedup"] = table["arch"].map(speedup).to_numpy() / speedup[teacher["arch"]]
    table["drop"] = teacher["top1_mean"] - table["top1_mean"]
    return table


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


# --------------------------------------------------------------------------------------- results record
def results_path(profile: str, results_dir: str | Path | None = None) -> Path:
    """data/results/combined-<profile>.json: the book's final table of the profile."""
    return record_path("combined", profile, results_dir)


def write_results(path: str | Path, runs: pd.DataFrame, table: pd.DataFrame, outcome: Mapping[str, Any],
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Record the combinations' runs, the final table and the goal's outcome (atomically; NaN as null)."""
    record = {"runs": runs.to_dict(orient="records"), "table": table.reset_index().to_dict(orient="records"),
              "goal": dict(outcome), **(dict(extra) if extra else {})}
    return atomic_write_json(path, json_nulls(record))

