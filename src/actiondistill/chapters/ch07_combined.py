"""Chapter 7, "Combined students": the three distillations combined into one student, every model of the book in
one table timed side by side, and the book's goal decided from the numbers.

The experiment itself is `combined` (reading chapters 3 to 5's records beside chapter 2's, which this module reads
with `kit.read_teacher`, training the combinations, collecting every model of the book, and the record the
introduction's headline reads); this module runs it with the chapter's parameters, decides whether a student
reaches the goal (`goal`), makes the tables and figures, and says them in the sentences the chapter's text glues.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from actiondistill import combined as cx
from actiondistill.chapters import kit
from actiondistill.chapters.kit import ChapterParams, Facts, Md
from actiondistill.stats import paired_difference

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

    from actiondistill.config import TrainConfig

#: The goal stated for this book: at least this speed-up over the teacher, within this many points of its top-1.
GOAL_SPEEDUP = 2.5
GOAL_POINTS = 1.0
#: Points whose positions differ by at most this fraction of the axes' ranges share one number label.
NEAR = 0.03


@dataclass
class Params(ChapterParams):
    """Chapter 7's parameters (the smoke profile's defaults). `dataset` must be the data of chapter 2's teacher;
    the world's fields (videos, world, size, frames, seed) name the records of a hand run; `device` is where
    missing frame features or spatial targets would be computed."""

    feature_dtype: str = "bf16"     # precision of the cached frame embeddings (chapters 2 and 3's)
    # training seeds of every combination (chapters 2 to 5 ran the same ones)
    seeds: list[int] = field(default_factory=lambda: [0])
    # actiondistill.combined.COMBINATIONS ("swap", the reference, and any of the others)
    combinations: list[str] = field(default_factory=lambda: list(cx.COMBINATIONS))
    latency_frames: int | None = None  # frames per clip timed; None: chapter 2's rule frames
    throughput_batch: int = 2       # clips per call for the throughput column
    latency_device: str = "cpu"     # where latency is measured
    # rounds of one timed call per model, the models taking turns call by call (1 thread)
    latency_calls: int = 2
    goal_speedup: float = GOAL_SPEEDUP  # the book's goal: at least this speed-up over the teacher ...
    goal_points: float = GOAL_POINTS    # ... within this many points of the teacher's closed-set top-1


@dataclass
class Result:
    """Everything chapter 7 computes: the ingredients read back, the combinations' runs and what each adds, the
    validation curves, every model of the book with its cost, the goal's verdict, the record it wrote, the tables
    and the facts its text glues."""

    params: Params
    records: dict[str, Any]           # chapters 2 to 5's records (`kit.read_teacher`, `combined.read_chapters`)
    base: TrainConfig                 # chapter 2's recipe on chapter 3's best student CLIP
    spatial: dict[str, Any]           # chapter 4's chosen setting (`combined.spatial_setting`)
    deit: dict[str, Any]              # chapter 5's best two-headed variant (`combined.deit_setting`)
    world_name: str                   # "SynthActions" or the real dataset's name
    runs: pd.DataFrame                # one row per (combination, seed): `combined.run_combinations`
    summary: pd.DataFrame             # `combined.summarise` of the runs (top1, zs_top1)
    added: pd.DataFrame               # what each combination adds to the swap alone (`combined.added_value`)
    zero_shot: bool                   # whether the world has held-out classes (zero-shot measured)
    curves: pd.DataFrame              # validation curves (`combined.learning_curves`)
    models: pd.DataFrame              # every model of the book, one row per (model, seed) (`combined.collect`)
    specs: dict[str, Any]             # the distinct architectures timed (`combined.architectures`)
    latency: pd.DataFrame             # `chapters.latency.classifier_latency` of `specs`
    frames_timed: int
    machine: str
    table: pd.DataFrame               # the final table (`combined.final_table`, with CLIP and number)
    outcome: dict[str, Any]           # the goal's verdict (`goal`)
    path: Path                        # the record the introduction's headline reads
    tables: dict[str, Any] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)
    verdicts: dict[str, str] = field(default_factory=dict)

    @property
    def steps_per_epoch(self) -> int:
        return int(self.runs["steps"].iloc[0] // self.runs["epochs"].iloc[0])


# --------------------------------------------------------------------------------------- checks
def check_combinations(combinations: Sequence[str]) -> None:
    """The combinations must be known ones and include the swap alone, the reference of every comparison."""
    unknown = sorted(set(combinations) - set(cx.COMBINATIONS))
    if unknown or "swap" not in combinations:
        raise ValueError(f"combinations={list(combinations)}: expected 'swap' (the reference) and others from "
                         f"{cx.COMBINATIONS}")


# --------------------------------------------------------------------------------------- the goal
def goal(table: pd.DataFrame, min_speedup: float = GOAL_SPEEDUP, max_drop: float = GOAL_POINTS,
         models: pd.DataFrame | None = None) -> dict[str, Any]:
    """Which students (every row of `combined.final_table` but the first, the teacher) run at least `min_speedup`
    times the teacher's speed within `max_drop` points of its mean top-1, and a sentence saying so, chosen from the
    numbers: the fastest that reaches it, or else the most accurate student fast enough and the fastest accurate
    enough. With `models` (`combined.collect`'s rows: model, seed, top1), the sentence also gives the student's
    top-1 against the teacher's paired by seed under the book's noise rule, since a mean within `max_drop` says
    nothing of how far apart the seeds lie."""
    students = table.iloc[1:]
    by_seed = models.pivot_table(index="seed", columns="model", values="top1") if models is not None else None

    def against_teacher(name: str) -> str:
        if by_seed is None or name not in by_seed or table.index[0] not in by_seed:
            return ""
        paired = paired_difference(by_seed[name], by_seed[table.index[0]])
        return f"; against the teacher seed by seed, {paired.described()}"

    fast = students[students["speedup"] >= min_speedup]
    close = students[students["drop"] <= max_drop]
    reached = fast[fast["drop"] <= max_drop].sort_values("speedup", ascending=False)
    points = f"{max_drop:g} point{'' if max_drop == 1 else 's'}"
    rule = f"at least {min_speedup:g}x the teacher's speed within {points} of its top-1"
    if not reached.empty:
        others = f" ({len(reached) - 1} other student(s) too)" if len(reached) > 1 else ""
        sentence = (f"The goal, a student {rule}, is reached by **{reached.index[0]}**{others}: "
                    f"{reached['speedup'].iloc[0]:.2f}x the teacher's speed, {change(reached['drop'].iloc[0])} "
                    f"top-1{against_teacher(reached.index[0])}.")
    else:
        parts = []
        if not fast.empty:
            best = fast.sort_values("top1_mean", ascending=False)
            parts.append(f"the most accurate student at least {min_speedup:g}x as fast, **{best.index[0]}** "
                         f"({best['speedup'].iloc[0]:.2f}x), is {change(best['drop'].iloc[0])}"
                         f"{against_teacher(best.index[0])}")
        else:
            parts.append(f"no student runs {min_speedup:g}x as fast as the teacher (the fastest, "
                         f"**{students['speedup'].idxmax()}**, reaches {students['speedup'].max():.2f}x)")
        if not close.empty:
            best = close.sort_values("speedup", ascending=False)
            parts.append(f"the fastest student within {points}, **{best.index[0]}**, runs at "
                         f"{best['speedup'].iloc[0]:.2f}x")
        else:
            parts.append(f"no student is within {points} of the teacher")
        sentence = f"No student reaches the goal ({rule}): " + "; ".join(parts) + "."
    return {"rule": rule, "reached": [str(n) for n in reached.index], "sentence": sentence,
            "min_speedup": min_speedup, "max_drop": max_drop}


def change(drop: float) -> str:
    """'1.2 points below the teacher's' / 'above'; never -0.0."""
    if abs(drop) < 0.05:
        return "level with the teacher's"
    return f"{abs(drop):.1f} points {'below' if drop > 0 else 'above'} the teacher's"


# --------------------------------------------------------------------------------------- sentences
def features_text(computed: Sequence[str] | None) -> Md:
    """Where the two frame-embedding caches came from: `computed` lists the roles ("student", "teacher") this run
    computed; None when the students train on pixels (no caches)."""
    if computed is None:
        return Md("not needed in this profile: the students train on pixels, which the teacher reads itself")
    return Md("computed by this run for the " + " and ".join(computed) if computed else
              "both reused from chapters 2 and 3")


def reused_text(runs: pd.DataFrame) -> Md:
    """Which combinations were read back from which earlier chapter ("none" when all trained here)."""
    reuse = runs[runs["reused_from"] != ""].groupby("reused_from")["combination"].unique()
    return Md("; ".join(f"{', '.join(cx.LABELS[c] for c in combos)} from {chapter}"
                        for chapter, combos in reuse.items()) or "none")


def zero_shot_text(runs: pd.DataFrame, world_name: str) -> Md:
    """Each combination's zero-shot change against the swap alone, or why there is none (no held-out classes)."""
    if not bool(runs["zs_top1"].notna().any()):
        return Md(f"not measured: {world_name} has no held-out classes")
    return Md("; ".join(f"{row.label} {row.mean:+.1f}" for row in cx.added_value(runs, "zs_top1").itertuples()))


def curves_text(curves: pd.DataFrame) -> Md:
    """The validation curves' verdicts (`combined.flattening`), or why there are no curves."""
    if curves.empty:
        return Md("these runs were trained without a validation split (`eval_split` is null in chapter 2's "
                  "recipe), so there is no curve to judge.")
    return Md(cx.flattening_text(cx.flattening(curves)))


def full_combination(names: Sequence[str]) -> str | None:
    """The final table's row of the full combination (swap + spatial + two heads), under any of its joined names."""
    return next((name for name in names if cx.LABELS["swap+spatial+deit"] in str(name).split(" = ")), None)


def thesis_text(table: pd.DataFrame, reported: pd.DataFrame, chance: float) -> str:
    """The thesis's combined student beside ours (drop, speed-up, image-encoder share), then how far the numbers
    can be read: near chance, one seed, or the largest spread over seeds."""
    full = full_combination(table.index)
    if full is not None:
        ours = table.loc[full]
        ratio = table["params_backbone_m"] / table["params_backbone_m"].iloc[0]
        verb = "loses" if ours["drop"] > 0 else "gains"
        thesis = (f"The thesis's combined student gave up {reported['drop'].iloc[1]:.1f} points of top-1 for "
                  f"{reported['speedup'].iloc[1]:.2f}x the speed with about half the teacher's backbone; ours (swap "
                  f"+ spatial + two heads) {verb} {abs(ours['drop']):.1f} points for {ours['speedup']:.2f}x, with "
                  f"{ratio[full]:.2f} of the teacher's image-encoder parameters.")
    else:
        thesis = "The full combination (swap + spatial + two heads) was not trained in this run."
    return thesis + caveat(float(table["top1_mean"].iloc[0]), chance, float(table["top1_std"].max()))


def caveat(teacher_top1: float, chance: float, spread_max: float) -> str:
    """How far the table's accuracy differences can be read: not at all near chance, not with one seed, else down
    to the largest standard deviation over seeds of any model."""
    if teacher_top1 - chance <= 5:
        return (f" The teacher itself is within 5 points of chance ({teacher_top1:.1f}% against {chance:.1f}%) on "
                "this world, so the accuracy differences in this chapter say little; its sizes, FLOPs and speeds "
                "are its solid part.")
    if math.isnan(spread_max):
        return " With one seed per model, no accuracy difference here can be told from seed-to-seed noise."
    return (f" The largest standard deviation over seeds of any model is {spread_max:.1f} points: smaller "
            "differences in the table are within the noise.")


# --------------------------------------------------------------------------------------- tables
def ingredients_table(choice: Mapping[str, Any], swap: Mapping[str, Any], base: TrainConfig,
                      spatial: Mapping[str, Any], deit: Mapping[str, Any], freeze_image_encoder: bool,
                      freeze_token_embedding: bool, seeds: Sequence[int]) -> Styler:
    """What every combination is built from: chapters 2 to 5's choices, the recipe and the seeds."""
    teacher_model = choice["model"]
    alpha = deit["soft_alpha"] if deit["variant"] == "soft" else deit["alpha"]
    return pd.DataFrame({
        "ingredient": ["teacher (chapter 2)", "student CLIP (chapter 3)", "spatial setting (chapter 4)",
                       "two heads (chapter 5)", "recipe (chapter 2)", "image encoder / token table", "seeds"],
        "value": [f"{choice['label']} on {teacher_model['backbone']}",
                  f"{base.model.backbone}, {swap['best']['label']}",
                  f"{spatial['setting'].name}; heads read the "
                  f"{spatial['student']['kwargs'].get('head_input', 'video')} embedding",
                  f"{deit['label']} (alpha {alpha:.3g}, tau {deit['tau']:g}"
                  + (", teacher on its own CLIP)" if deit["uses_teacher"] else ", no teacher)"),
                  f"{base.epochs} epoch(s), batch {base.data.batch_size}, lr {base.optim.lr:g}, "
                  f"{base.data.num_frames} frames per clip",
                  f"{'frozen' if freeze_image_encoder else 'fine-tuned'} / "
                  f"{'frozen' if freeze_token_embedding else 'trained'}",
                  ", ".join(map(str, seeds))]}).pipe(kit.table)


def summary_table(summary: pd.DataFrame) -> Styler:
    """Each combination's closed-set and zero-shot top-1 over seeds (mean ± sd [range])."""
    return pd.DataFrame({"combination": summary["label"], "seeds": summary["seeds"],
                         "closed-set top-1 (%)": kit.spread_column(summary, "top1"),
                         "zero-shot top-1 (%)": kit.spread_column(summary, "zs_top1")}).pipe(kit.table)


def models_table(table: pd.DataFrame, throughput_batch: int, caption: str = "") -> Styler:
    """The book's final table, for the reader: accuracy over seeds beside size, cost, speed and the drop."""
    def mean_sd(means: pd.Series, sds: pd.Series) -> list[str]:
        return ["" if np.isnan(m) else kit.mean_sd_range(m, s) for m, s in zip(means, sds, strict=True)]

    clips = f"clips/s (batch {throughput_batch})"
    view = pd.DataFrame({
        "#": table["number"], "model": table.index, "chapter": table["chapter"], "CLIP": table["CLIP"],
        "seeds": table["seeds"], "top-1 (%)": mean_sd(table["top1_mean"], table["top1_std"]),
        "zero-shot (%)": mean_sd(table["zs_top1_mean"], table["zs_top1_std"]),
        "image encoder (M)": table["params_backbone_m"], "total (M)": table["params_total_m"],
        "GFLOPs (2 x MAC)": table["gflops"], "latency (ms)": table["latency_ms"],
        clips: table["throughput_clips_s"], "speed-up": table["speedup"], "drop (points)": table["drop"]})
    styler = view.style.format({"image encoder (M)": "{:.2f}", "total (M)": "{:.2f}", "GFLOPs (2 x MAC)": "{:.2f}",
                                "latency (ms)": "{:.1f}", clips: "{:.1f}", "speed-up": "{:.2f}x",
                                "drop (points)": "{:+.1f}"}).hide(axis="index")
    return styler.set_caption(caption) if caption else styler


def thesis_table(reported: pd.DataFrame, table: pd.DataFrame, world_name: str) -> Styler:
    """The thesis's reported teacher and student beside ours measured here (the teacher and the full
    combination, when it was trained)."""
    full = full_combination(table.index)
    ratio = table["params_backbone_m"] / table["params_backbone_m"].iloc[0]
    rows = [{"source": r["source"], "model": r["model"], "benchmark": r["benchmark"], "top-1 (%)": r["top1"],
             "drop (points)": r["drop"], "speed-up": r["speedup"], "image encoder, x teacher's": r["backbone_ratio"]}
            for r in reported.to_dict(orient="records")]
    for name in [table.index[0]] + ([full] if full is not None else []):
        rows.append({"source": "measured here", "model": name, "benchmark": world_name,
                     "top-1 (%)": table.loc[name, "top1_mean"], "drop (points)": table.loc[name, "drop"],
                     "speed-up": table.loc[name, "speedup"], "image encoder, x teacher's": ratio[name]})
    return pd.DataFrame(rows).style.format({"top-1 (%)": "{:.1f}", "drop (points)": "{:+.1f}",
                                            "speed-up": "{:.2f}x", "image encoder, x teacher's": "{:.2f}"}
                                           ).hide(axis="index")


# --------------------------------------------------------------------------------------- the chapter
def run(params: Params) -> Result:
    """Read chapters 2 to 5's choices, train the combinations, time every model of the book side by side, decide
    the goal and write the record the introduction's headline reads."""
    from actiondistill import backbone_swap as bs
    from actiondistill.chapters.latency import classifier_latency
    from actiondistill.engine.runs import run_datasets
    from actiondistill.evaluate import class_texts_of
    from actiondistill.profiler import load_note
    from actiondistill.spatial.sources import dataset_clips

    started = time.perf_counter()
    p = params
    facts = Facts()
    world_name = "SynthActions" if p.dataset == "synthactions" else p.dataset.upper()
    check_combinations(p.combinations)
    reported = cx.reported_table()
    facts.add(ch7_thesis_teacher=float(reported["top1"].iloc[0]), ch7_thesis_student=float(reported["top1"].iloc[1]),
              ch7_thesis_speedup=float(reported["speedup"].iloc[1]), ch7_thesis_drop=float(reported["drop"].iloc[1]),
              ch7_goal_speedup=float(p.goal_speedup), ch7_goal_points=float(p.goal_points))
    records_as = p.records_as()

    # the ingredients, read back
    records = cx.read_chapters(kit.read_teacher(p).choice, records_as)
    choice, swap = records["choice"], records["swap"]
    base = cx.student_base(choice, swap)
    freeze_image_encoder = bool(choice.get("freeze_image_encoder", True))
    freeze_token_embedding = bs.frozen_token_embedding(bs.teacher_runs(choice, p.seeds))
    spatial = cx.spatial_setting(records["spatial"], base)
    deit = cx.deit_setting(records["deit"])
    teacher_model = choice["model"]
    # chapter 2's world (its recipe's manifest): this chapter trains on what the teacher was trained on
    world = kit.World(Path(base.data.manifest) if base.data.manifest else None)
    student_features = teacher_features = None
    computed = None
    if freeze_image_encoder:
        student_features, student_computed = kit.frame_features(world, base.model.backbone, base.model.pretrained,
                                                                base.data.size, p.device, p.feature_dtype)
        teacher_features, teacher_computed = kit.frame_features(world, teacher_model["backbone"],
                                                                teacher_model["pretrained"], base.data.size,
                                                                p.device, p.feature_dtype)
        computed = [role for role, done in (("student", student_computed), ("teacher", teacher_computed)) if done]
    facts.add(ch7_features=features_text(computed))
    framework = (spatial["targets"].get("backbone"), spatial["targets"].get("pretrained"))
    same_clip = framework == (teacher_model["backbone"], str(teacher_model["pretrained"]))
    targets = cx.spatial_targets_of(spatial, dataset_clips(base), teacher_features if same_clip else None,
                                    p.feature_dtype, device=p.device, progress=False)
    findings = cx.earlier_findings(spatial, deit)
    facts.add(ch7_teacher=Md(f"**{choice['label']}**"),
              ch7_student_clip=Md(f"`{base.model.backbone}` ({swap['best']['label']})"),
              ch7_spatial=Md(f"**{spatial['setting'].name}**"), ch7_deit=Md(f"**{deit['label']}**"),
              ch7_findings=Md(findings), ch7_seeds=len(p.seeds))
    tables: dict[str, Any] = {"ingredients": ingredients_table(choice, swap, base, spatial, deit,
                                                                freeze_image_encoder, freeze_token_embedding,
                                                                p.seeds)}

    # the combinations
    training = time.perf_counter()
    runs = cx.run_combinations(base, p.seeds, p.combinations, swap=swap, spatial=spatial, targets=targets,
                               deit=deit, choice=choice, features=student_features,
                               teacher_features=teacher_features, freeze_image_encoder=freeze_image_encoder,
                               freeze_token_embedding=freeze_token_embedding, run_prefix=f"ch7-{records_as}",
                               progress=False, workers=p.grid_workers)
    training_s = time.perf_counter() - training
    trained = runs[runs["reused_from"] == ""]
    facts.add(ch7_runs=len(runs), ch7_trained=len(trained), ch7_training_s=training_s,
              ch7_run_s=float((trained["train_s"] + trained["eval_s"]).mean()) if len(trained) else 0.0,
              ch7_reused=reused_text(runs))
    where = np.where(runs["reused_from"] == "", "here", runs["reused_from"])  # or the chapter it was read from
    tables["runs"] = kit.runs_table(runs.assign(trained=where), ["label", "seed", "model", "top1", "zs_top1",
                                                                 "train_s", "eval_s", "trained"],
                                    {"label": "combination"})

    # what each ingredient adds
    summary = cx.summarise(runs, metrics=("top1", "zs_top1"))
    added = cx.added_value(runs)
    zero_shot = bool(runs["zs_top1"].notna().any())  # real datasets have no held-out classes
    chance = 100 / int(runs["classes"].iloc[0])
    facts.add(ch7_added=Md("; ".join(added["sentence"]) + "."), ch7_zs_added=zero_shot_text(runs, world_name),
              ch7_chance=chance)
    tables["summary"] = summary_table(summary)

    # the validation curves
    curves = cx.learning_curves(runs)
    facts.add(ch7_steps=int(runs["steps"].max()), ch7_curves=curves_text(curves))

    # every model of the book, timed side by side
    models = cx.collect(cx.book_entries(records, runs), p.seeds)
    specs = cx.architectures(models)
    frames_timed = int(p.latency_frames if p.latency_frames is not None else choice.get("latency_frames", 16))
    class_texts = class_texts_of(run_datasets(base, student_features)["train"])
    timing = time.perf_counter()
    latency = classifier_latency(specs, class_texts, frames=[frames_timed],
                                 batches=sorted({1, int(p.throughput_batch)}), device=p.latency_device,
                                 calls=p.latency_calls, progress=False)
    facts.add(ch7_latency_s=time.perf_counter() - timing)
    table = cx.final_table(models, latency, frames_timed, int(p.throughput_batch))
    table["CLIP"] = [specs[a]["backbone"] for a in table["arch"]]
    table["number"] = range(1, len(table) + 1)
    machine = kit.machine_label(latency.attrs["environment"], p.latency_device)
    facts.add(ch7_machine=Md(machine), ch7_frames=frames_timed, ch7_models=len(table), ch7_archs=len(specs))
    note = (f"Measured on: {machine} ({p.latency_calls} rounds of one call per model in turn; throughput at "
            f"batch {p.throughput_batch}). {load_note(latency)}")
    tables["models"] = models_table(table, p.throughput_batch, note)

    # the goal, and the thesis's result
    outcome = goal(table, p.goal_speedup, p.goal_points, models)
    thesis = thesis_text(table, reported, chance)
    facts.add(ch7_goal_sentence=Md(outcome["sentence"]), ch7_thesis=Md(thesis))
    tables["thesis"] = thesis_table(reported, table, world_name)

    # the record
    path = cx.write_results(cx.results_path(records_as), runs, table.drop(columns=["number"]), outcome,
                            extra={"profile": p.profile, "seeds": list(p.seeds), "frames": frames_timed,
                                   "throughput_batch": int(p.throughput_batch), "machine": machine,
                                   "architectures": specs, "ingredients": {
                                       "student": swap["best"]["label"], "spatial": spatial["setting"].name,
                                       "deit": deit["variant"], "findings": findings}})
    facts.add(ch7_results_path=Md(f"`{path.relative_to(path.parents[2])}`"),
              ch7_chapter_s=time.perf_counter() - started)
    verdicts = {"findings": findings, "added": facts["ch7_added"], "curves": facts["ch7_curves"],
                "goal": outcome["sentence"], "thesis": thesis}
    return Result(params=p, records=records, base=base, spatial=spatial, deit=deit, world_name=world_name, runs=runs,
                  summary=summary, added=added, zero_shot=zero_shot, curves=curves, models=models, specs=specs,
                  latency=latency, frames_timed=frames_timed, machine=machine, table=table, outcome=outcome,
                  path=path, tables=tables, facts=facts, verdicts=verdicts)


# --------------------------------------------------------------------------------------- figures
def _panels(zero_shot: bool) -> list[tuple[str, str]]:
    return [("top1", "closed-set top-1 (%)")] + ([("zs_top1", "zero-shot top-1 (%)")] if zero_shot else [])


def combinations_figure(result: Result) -> Figure:
    """Each combination's top-1 per seed (a grey line joins one seed across combinations) with the mean ± sd:
    closed-set, and zero-shot where the world has held-out classes."""
    order = [cx.LABELS[c] for c in result.params.combinations]
    return kit.paired_seeds_figure(result.runs, "label", _panels(result.zero_shot), order,
                                   f"the combinations ({len(result.params.seeds)} seed(s); red: mean ± sd, grey: one "
                                   "seed across combinations)", rotation=20)


def validation_curves_figure(result: Result) -> Figure:
    """Validation top-1 against epoch per combination (mean over seeds, band: sd): whether the curves have
    flattened before training stops. Without validation curves, a figure that says so."""
    import matplotlib.pyplot as plt

    fig = plot_validation_curves(result.curves, None if result.curves.empty else result.steps_per_epoch).figure
    plt.close(fig)  # shown once, as the cell's value
    return fig


def plot_validation_curves(curves: pd.DataFrame, steps_per_epoch: int | None = None, ax: Any = None) -> Any:
    """`validation_curves_figure` on given axes (or new ones); returns the axes."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"), sns.color_palette("deep"):
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        if curves.empty:
            ax.text(0.5, 0.5, "no validation curves: these runs were trained without a validation split",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set(xticks=[], yticks=[], title="Validation top-1 during training")
            return ax
        sns.lineplot(data=curves, x="epoch", y="top1", hue="label", errorbar="sd", marker="o", ax=ax)
        label = "epoch" if steps_per_epoch is None else f"epoch ({steps_per_epoch} optimizer steps each)"
        ax.set(xlabel=label, ylabel="validation top-1 (%)", title="Validation top-1 during training")
        ax.legend(title=None, fontsize="small")
    return ax


def number_groups(xs: Sequence[float], ys: Sequence[float], near: float = NEAR) -> list[list[int]]:
    """The points' indices grouped for labelling: a point within `near` of the axes' ranges (in both x and y) of a
    group's first point joins that group; points with no y (NaN) are left out."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if not len(xs) or np.isnan(ys).all():
        return []
    gap = near * (np.ptp(xs) or 1.0), near * ((np.nanmax(ys) - np.nanmin(ys)) or 1.0)
    groups: list[list[int]] = []
    for i in np.flatnonzero(~np.isnan(ys)):
        group = next((g for g in groups if abs(xs[g[0]] - xs[i]) <= gap[0] and abs(ys[g[0]] - ys[i]) <= gap[1]),
                     None)
        if group is None:
            groups.append([int(i)])
        else:
            group.append(int(i))
    return groups


def accuracy_latency_figure(result: Result) -> Figure:
    """Every model of the book: mean top-1 (bar: one sd) against latency at batch 1, coloured by chapter and
    shaped by CLIP, numbered as in the final table; the teacher's top-1 dashed and the goal's corner shaded (at
    least `goal_speedup` times the teacher's speed within `goal_points` of its top-1).

    Not `kit.accuracy_latency_figure`: the chapter's reader looks for the goal's corner and the teacher's level,
    not a Pareto front."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    p, table = result.params, result.table
    plot = table.reset_index()
    teacher_ms, teacher_top1 = float(table["latency_ms"].iloc[0]), float(table["top1_mean"].iloc[0])
    panels = _panels(result.zero_shot)
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"), sns.color_palette("deep"):
        fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 5.2), squeeze=False)
        axes = axes[0]
        for ax, (metric, title) in zip(axes, panels, strict=True):
            ax.errorbar(plot["latency_ms"], plot[f"{metric}_mean"], yerr=plot[f"{metric}_std"].fillna(0),
                        fmt="none", ecolor="0.6", capsize=3, zorder=1)
            sns.scatterplot(data=plot, x="latency_ms", y=f"{metric}_mean", hue="chapter", style="CLIP", s=120,
                            ax=ax, zorder=2, palette="deep", legend=ax is axes[0])
            for group in number_groups(plot["latency_ms"], plot[f"{metric}_mean"]):
                ax.annotate(",".join(str(plot["number"].iloc[i]) for i in group),
                            (plot["latency_ms"].iloc[group[0]], plot[f"{metric}_mean"].iloc[group[0]]),
                            xytext=(5, 4), textcoords="offset points", fontsize=8)
            ax.axhline(float(table[f"{metric}_mean"].iloc[0]), ls="--", color="0.4", lw=1, label="teacher")
            ax.set(xlabel=f"latency at {result.frames_timed} frames, batch 1 (ms, {p.latency_device})", ylabel=title)
        _, high = axes[0].get_ylim()
        axes[0].fill_between([0, teacher_ms / p.goal_speedup], teacher_top1 - p.goal_points,
                             max(high, teacher_top1 + 1), color="C2", alpha=0.12, label="goal", zorder=0)
        for ax in axes:
            ax.set_xlim(left=0)
        handles, labels = axes[0].get_legend_handles_labels()
        axes[0].get_legend().remove()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
        fig.suptitle(f"every model of the book ({len(p.seeds)} seed(s)); numbers as in the table")
        fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value
    return fig
