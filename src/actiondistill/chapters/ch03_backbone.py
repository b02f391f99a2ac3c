"""Chapter 3, the backbone swap: chapter 2's teacher with its CLIP swapped for a TinyCLIP-style one.

`run(Params())` reads the teacher chosen in chapter 2 (`kit.read_teacher`: model, recipe, runs per seed),
starts the student's CLIP three ways (`backbone_swap.prepare_inits`: TinyCLIP-distilled, inherited, random), trains
the student under each with the teacher's recipe and seeds, judges every accuracy difference by the book's noise rule
(`stats.paired_by_seed`), times teacher and student side by side (`backbone_swap.latency_table`), and records the
best student setting for chapter 7 (`backbone_swap.write_results`). The experiment's machinery stays in
`actiondistill.backbone_swap`; this module holds the chapter's order of computation, its tables, its sentences and
its figure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from actiondistill import backbone_swap as bs
from actiondistill.chapters import kit
from actiondistill.chapters.kit import ChapterParams, Facts, Md
from actiondistill.stats import PairedDifference, paired_by_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from actiondistill.config import TrainConfig

#: The TinyCLIP release whose share of ViT-B/16's image encoder is the thesis's "half the backbone".
THESIS_TINYCLIP = "TinyCLIP-ViT-39M-16-Text-19M"


@dataclass
class Params(ChapterParams):
    """Chapter 3's parameters (the smoke profile's defaults); `dataset` must be chapter 2's, and `size` is the world's
    and the model's input size."""

    # PretrainConfig overrides, as in chapter 2
    pretrain: dict[str, Any] = field(default_factory=kit.smoke_pretrain)
    feature_dtype: str = "bf16"     # precision of the cached frame embeddings (fp32, bf16, fp16)
    student_backbone: str = "embedded-tiny"  # the student's CLIP (real data: e.g. TinyCLIP-ViT-39M-16-Text-19M)
    student_pretrained: str | None = None    # its TinyCLIP weights (file or tag); None: the in-project embedded-tiny
    # initialisations of the student's CLIP
    inits: list[str] = field(default_factory=lambda: ["tinyclip", "inherited", "random"])
    init_seed: int = 0              # seed of the random initialisation
    # training seeds (the teacher's chapter-2 runs must include them)
    seeds: list[int] = field(default_factory=lambda: [0])
    # frame counts timed (batch 1); chapter 2's rule frames are always added
    latency_frames: list[int] = field(default_factory=lambda: [16])
    latency_device: str = "cpu"     # where latency is measured
    latency_calls: int = 2          # rounds of one timed call per model, taking turns call by call (1 thread)


@dataclass
class Result:
    """Everything chapter 3 computes: the teacher read from chapter 2, the student's runs, their summary and
    comparisons, the latency table, the decision and its record, the tables the notebook shows and the facts its
    text glues."""

    params: Params
    choice: dict[str, Any]           # chapter 2's record of the chosen teacher
    base: TrainConfig                # chapter 2's recipe, which every student trains with
    teacher: pd.DataFrame            # the teacher's chapter-2 runs, one per seed
    students: dict[str, bs.InitBackbone]
    freeze_image_encoder: bool
    freeze_token_embedding: bool
    runs: pd.DataFrame               # one row per initialisation and seed
    all_runs: pd.DataFrame           # the teacher's rows, then the students'
    summary: pd.DataFrame            # mean, std, min, max over seeds per initialisation (the teacher included)
    gaps: dict[str, PairedDifference]  # init -> teacher minus init, paired by seed (closed-set)
    latency: pd.DataFrame            # `bs.latency_table`: teacher and student per timed frame count
    rule_frames: int                 # chapter 2's rule frames, where the speed-up is read
    speedup: pd.Series               # frames -> the student's speed-up over the teacher
    machine: str                     # where the latency was measured
    best: dict[str, Any]             # `bs.best_init`: the winner, the ranking and the margin
    verdict: str                     # does the swap behave as in the thesis
    path: Path                       # the record chapter 7 reads
    tables: dict[str, Any] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)

    @property
    def teacher_backbone(self) -> str:
        return str(self.choice["model"]["backbone"])

    @property
    def student_backbone(self) -> str:
        return self.params.student_backbone


# ------------------------------------------------------------------------------------------- rules and sentences
def student_weights(params: Params, world: kit.World, teacher_backbone: str, teacher_weights: str) -> str:
    """The TinyCLIP weights of the student's CLIP: `student_pretrained` when given, else the in-project CLIP of the
    world, which must be the sibling of the teacher's (the same `pretrain`)."""
    if params.student_pretrained is not None:
        return params.student_pretrained
    if not params.synthetic_world:
        raise ValueError(f"dataset={params.dataset!r}: set `student_pretrained` to TinyCLIP weights for "
                         f"{params.student_backbone!r} (a checkpoint file or a tag); embedded-tiny exists for "
                         "SynthActions only")
    if Path(world.checkpoint(teacher_backbone)).resolve() != Path(teacher_weights).resolve():
        raise ValueError(f"the teacher's CLIP is {teacher_weights}, but this chapter's `pretrain` gives "
                         f"{world.checkpoint(teacher_backbone)}: run chapters 2 and 3 with the same `pretrain`")
    return world.checkpoint(params.student_backbone)


def feature_state(computed: Sequence[str]) -> str:
    """Which initialisations' frame embeddings this run computed (their labels), or that all were cached."""
    return f"computed by this run for {', '.join(computed)}" if computed else "all reused from the cache"


def regime_sentence(freeze_image_encoder: bool, feature_s: float = 0.0, state: str = "",
                    layer_map: Mapping[str, Any] | None = None) -> str:
    """How the students see their frames (frozen embeddings or pixels), and which teacher blocks the inherited CLIP
    keeps."""
    if freeze_image_encoder:
        regime = (f"The image encoder is frozen, as in chapter 2: each initialisation's frame embeddings were computed "
                  f"once ({feature_s:.0f} s in all; {state}).")
    else:
        regime = "Every initialisation is fine-tuned end to end on pixels, as the teacher was in chapter 2."
    if layer_map:
        regime += (f" The inherited CLIP keeps the teacher's image blocks {layer_map['visual']} and text blocks "
                   f"{layer_map['text']}.")
    return regime


def beyond_label(beyond: bool | None) -> str:
    """The accuracy table's "drop beyond noise" cell for a paired difference's `beyond`."""
    return {True: "yes", False: "no", None: "one seed"}[beyond]


def chance(classes: int) -> float:
    """Chance accuracy (%) among `classes` classes; NaN without classes (no held-out classes on real data)."""
    return 100 / classes if classes else math.nan


def thesis_student(inits: Sequence[str]) -> str:
    """The initialisation that stands for the thesis's TinyCLIP student: TinyCLIP-distilled when trained."""
    return "tinyclip" if "tinyclip" in inits else inits[0]


def thesis_text(speedup: float, gap: PairedDifference, zs_gap: PairedDifference, student: str) -> str:
    """`bs.thesis_verdict` on the closed-set drop, with the zero-shot change of the same student when measured."""
    verdict = bs.thesis_verdict(speedup, gap)
    if not math.isnan(zs_gap.mean):
        verdict += (f" Zero-shot, the {bs.LABELS[student]} student scores {(-zs_gap.mean) or 0.0:+.1f} points "
                    f"against the teacher, {zs_gap.against_noise()}.")
    return verdict


def mimic_text(runs: pd.DataFrame, summary: pd.DataFrame, inits: Sequence[str]) -> str:
    """What affinity mimicking (TinyCLIP-distilled against inherited) and any inherited knowledge (the best informed
    initialisation against random) are worth, each judged by the noise rule; what cannot be isolated is said so."""
    if "tinyclip" in inits and "inherited" in inits:
        mimic = paired_by_seed(runs, "init", "tinyclip", "inherited")
        text = (f"Affinity mimicking, the training that turns the inherited CLIP into the TinyCLIP-distilled one, "
                f"is worth {mimic.mean:+.1f} points closed-set to the student, {mimic.against_noise()}.")
    else:
        text = "Affinity mimicking is not isolated in this run (it needs both the tinyclip and inherited inits)."
    if "random" in inits and len(inits) > 1:
        informed = [n for n in inits if n != "random"]
        best_informed = max(informed, key=lambda n: summary.loc[n, "top1_mean"])
        knowledge = paired_by_seed(runs, "init", best_informed, "random")
        text += (f" Inherited knowledge of any kind ({bs.LABELS[best_informed]} against random) is worth "
                 f"{knowledge.mean:+.1f} points, {knowledge.against_noise()}.")
    return text


def ranking_text(summary: pd.DataFrame, ranking: Sequence[str]) -> str:
    """'TinyCLIP-distilled (13.3) > random init (6.7) > ...': the ranking by mean closed-set top-1."""
    return " > ".join(f"{bs.LABELS[n]} ({summary.loc[n, 'top1_mean']:.1f})" for n in ranking)


def speedup_range(speedup: Mapping[int, float]) -> str:
    """'2.27x at 8, 2.30x at 16': the student's speed-up per timed frame count."""
    return ", ".join(f"{s:.2f}x at {t}" for t, s in speedup.items())


def latency_caption(machine: str, calls: int, latency: pd.DataFrame) -> str:
    """Where and how the cost table's latencies were measured, and whether load disturbed them."""
    from actiondistill.profiler import load_note

    return (f"Measured on: {machine} (batch 1, {calls} rounds of one call per model in turn). "
            + load_note(latency))


# ------------------------------------------------------------------------------------------- tables
def architecture_table(teacher_backbone: str, student_backbone: str) -> pd.DataFrame:
    """Teacher's and student's CLIPs side by side: encoders' shapes, image-encoder parameters and GMACs per frame."""
    from actiondistill.models import backbone_config

    arch = {}
    for role, name in (("teacher", teacher_backbone), ("student", student_backbone)):
        cfg = backbone_config(name)
        facts = bs.image_encoder_facts(name)
        vision, text = cfg["vision_cfg"], cfg["text_cfg"]
        arch[role] = {"CLIP": name,
                      "image encoder: layers x width, patch": (f"{vision['layers']} x {vision['width']}, "
                                                               f"{vision['patch_size']}"),
                      "text encoder: layers x width": f"{text['layers']} x {text['width']}",
                      "embedding width": cfg["embed_dim"], "image encoder params (M)": round(facts["params_m"], 2),
                      "GMACs per frame": round(facts["gmacs"], 3)}
    return pd.DataFrame(arch)


def inits_table(students: Mapping[str, bs.InitBackbone]) -> Any:
    return pd.DataFrame({"initialisation": [bs.LABELS[n] for n in students],
                         "weights": [Path(i.pretrained).name for i in students.values()],
                         "made by": [i.meta.get("source", "") for i in students.values()],
                         "this run": ["written" if i.computed else "reused" for i in students.values()]}
                        ).pipe(kit.table)


def recipe_table(base: TrainConfig, freeze_image_encoder: bool, freeze_token_embedding: bool,
                 seeds: Sequence[int]) -> Any:
    optim = base.optim
    return pd.DataFrame({
        "setting": ["frames per clip (TSN)", "epochs", "batch size", "text encoder lr", "fusion lr", "weight decay",
                    "warm-up epochs", "image encoder", "token embedding table", "seeds"],
        "value": [base.data.num_frames, base.epochs, base.data.batch_size, optim.lr, optim.lr * optim.fusion_lr_mult,
                  optim.weight_decay, optim.warmup_epochs, "frozen" if freeze_image_encoder else "fine-tuned",
                  "frozen" if freeze_token_embedding else "trained", ", ".join(map(str, seeds))]},
    ).pipe(kit.table)


def accuracy_table(summary: pd.DataFrame, gaps: Mapping[str, PairedDifference], teacher_backbone: str,
                   student_backbone: str) -> Any:
    """Accuracy over seeds per initialisation, with the drop from the teacher and whether the noise rule counts it."""
    students = list(gaps)
    return pd.DataFrame({
        "CLIP": [teacher_backbone] + [student_backbone] * len(students),
        "initialisation": summary.index.map(bs.LABELS), "seeds": summary["seeds"].to_numpy(),
        "closed-set top-1 (%)": kit.spread_column(summary, "top1"),
        "zero-shot top-1 (%)": kit.spread_column(summary, "zs_top1"),
        "drop vs teacher (points)": [math.nan] + [gaps[n].mean for n in students],
        "drop beyond noise": [""] + [beyond_label(gaps[n].beyond) for n in students],
    }).style.format({"drop vs teacher (points)": "{:+.1f}"}, na_rep="").hide(axis="index")


def ranking_table(summary: pd.DataFrame, gaps: Mapping[str, PairedDifference], ranking: Sequence[str]) -> Any:
    return pd.DataFrame({"initialisation": [bs.LABELS[n] for n in ranking],
                         "closed-set top-1": [summary.loc[n, "top1_mean"] for n in ranking],
                         "zero-shot top-1": [summary.loc[n, "zs_top1_mean"] for n in ranking],
                         "below the teacher (points)": [gaps[n].mean for n in ranking]}
                        ).pipe(kit.table)


def reported_styler(beside: pd.DataFrame) -> Any:
    return (beside.rename(columns={"image_encoder_m": "image encoder params (M)", "vs_teacher": "x its teacher's",
                                   "gmacs": "GMACs per image", "imagenet_zs": "ImageNet zero-shot top-1 (%)"})
            .style.format({"image encoder params (M)": "{:.2f}", "x its teacher's": "{:.2f}",
                           "GMACs per image": "{:.3g}", "ImageNet zero-shot top-1 (%)": "{:.1f}"}, na_rep="")
            .hide(axis="index"))


# ------------------------------------------------------------------------------------------- the chapter
def run(params: Params) -> Result:
    """Chapter 3 in the notebook's order: the teacher, the student's initialisations, training, accuracy, cost,
    the verdict, TinyCLIP's published figures, the record."""
    from actiondistill.engine.runs import run_datasets
    from actiondistill.evaluate import class_texts_of
    started = time.perf_counter()
    records_as = params.records_as()
    facts, tables = Facts(), {}

    # the teacher and its student
    world = kit.prepare_world(params, clips=False)
    chosen = kit.read_teacher(params, world)
    choice, base = chosen.choice, chosen.config
    model = choice["model"]
    teacher_backbone, teacher_weights = model["backbone"], model["pretrained"]
    student_backbone = params.student_backbone
    freeze_image_encoder = bool(choice.get("freeze_image_encoder", True))
    teacher = bs.teacher_runs(choice, params.seeds)
    freeze_token_embedding = bs.frozen_token_embedding(teacher)
    if params.student_pretrained is None and params.synthetic_world:
        world = kit.prepare_world(params, params.pretrain)
    tinyclip_weights = student_weights(params, world, teacher_backbone, teacher_weights)
    facts.add(ch3_teacher=Md(f"**{choice['label']}**"), ch3_teacher_backbone=Md(f"`{teacher_backbone}`"),
              ch3_student_backbone=Md(f"`{student_backbone}`"))
    arch = tables["architecture"] = architecture_table(teacher_backbone, student_backbone)
    params_row, gmacs_row = arch.loc["image encoder params (M)"], arch.loc["GMACs per frame"]
    facts.add(ch3_params_ratio=float(params_row["student"] / params_row["teacher"]),
              ch3_gmacs_ratio=float(gmacs_row["student"] / gmacs_row["teacher"]))

    # three initialisations of the student's CLIP
    students = bs.prepare_inits(teacher_backbone, teacher_weights, student_backbone, tinyclip_weights,
                                inits=params.inits, seed=params.init_seed, progress=False)
    features, feature_s, state = None, 0.0, ""
    if freeze_image_encoder:
        if not params.synthetic_world:
            raise ValueError("chapter 2 froze the image encoder on a dataset without a SynthActions manifest; the "
                             "real-data profiles fine-tune end to end (freeze_image_encoder=False)")
        made, fresh = kit.frame_features_together(world, student_backbone,
                                                  [init.pretrained for init in students.values()], params.size,
                                                  device=params.device, dtype=params.feature_dtype)
        features = dict(zip(students, made, strict=True))
        computed = [bs.LABELS[name] for name, new in zip(students, fresh, strict=True) if new]
        feature_s = sum(float(f.meta["compute_s"]) for f in features.values())
        state = feature_state(computed)
        facts.add(ch3_feature_s=feature_s, ch3_feature_state=Md(state))
    layer_map = students["inherited"].meta.get("layer_map") if "inherited" in students else None
    facts.add(ch3_regime=Md(regime_sentence(freeze_image_encoder, feature_s, state, layer_map)))
    tables["inits"] = inits_table(students)
    tables["recipe"] = recipe_table(base, freeze_image_encoder, freeze_token_embedding, params.seeds)

    # training the students
    training = time.perf_counter()
    runs = bs.run_swap(base, model, students, params.seeds, features=features,
                       freeze_image_encoder=freeze_image_encoder, freeze_token_embedding=freeze_token_embedding,
                       run_prefix=f"ch3-{records_as}", progress=False, workers=params.grid_workers)
    facts.add(ch3_runs=len(runs), ch3_training_s=time.perf_counter() - training,
              ch3_epoch_s=float((runs["train_s"] / runs["epochs"]).mean()),
              ch3_teacher_epoch_s=float((teacher["train_s"] / teacher["epochs"]).mean()))
    tables["runs"] = kit.runs_table(runs.assign(initialisation=runs["init"].map(bs.LABELS)),
                                    ["initialisation", "seed", "trainable_m", "top1", "zs_top1", "train_s", "eval_s"])

    # accuracy
    all_runs = pd.concat([teacher, runs], ignore_index=True)
    summary = bs.summarise(all_runs)
    gaps = {name: paired_by_seed(all_runs, "init", "teacher", name) for name in students}
    zs_gaps = {name: paired_by_seed(all_runs, "init", "teacher", name, "zs_top1") for name in students}
    tables["accuracy"] = accuracy_table(summary, gaps, teacher_backbone, student_backbone)
    facts.add(ch3_chance=chance(int(teacher["classes"].iloc[0])),
              ch3_zs_chance=chance(int(teacher["zs_classes"].iloc[0])))
    for name in summary.index:
        facts.add(**{f"ch3_top1_{name}": float(summary.loc[name, "top1_mean"]),
                     f"ch3_zs_{name}": float(summary.loc[name, "zs_top1_mean"])})
    for name in students:
        facts.add(**{f"ch3_drop_{name}": gaps[name].mean,
                     f"ch3_zs_drop_{name}": zs_gaps[name].mean})

    # parameters, compute and latency
    rule_frames = int(choice.get("latency_frames", params.latency_frames[0]))
    timed_frames = sorted({*params.latency_frames, rule_frames})
    class_texts = class_texts_of(run_datasets(base, next(iter(features.values())) if features else None)["train"])
    latency = bs.latency_table(model, teacher_backbone, student_backbone, class_texts, frames=timed_frames,
                               device=params.latency_device, calls=params.latency_calls, progress=False)
    machine = kit.machine_label(latency.attrs["environment"], params.latency_device)
    ms = latency.pivot(index="model", columns="frames", values="latency_ms").loc[["teacher", "student"]]
    gflops = latency.pivot(index="model", columns="frames", values="gflops").loc[["teacher", "student"]]
    speedup = latency.pivot(index="model", columns="frames", values="speedup_vs_first").loc["student"]
    sizes = latency.drop_duplicates("model").set_index("model").loc[["teacher", "student"]]
    cost = pd.DataFrame({"CLIP": [teacher_backbone, student_backbone],
                         "image encoder params (M)": sizes["params_backbone_m"].to_numpy(),
                         "total params (M)": sizes["params_total_m"].to_numpy()}, index=["teacher", "student"])
    for t in timed_frames:
        cost[f"GFLOPs, {t} frames"] = gflops[t]
        cost[f"latency, {t} frames (ms)"] = ms[t]
        cost[f"speed-up, {t} frames"] = [1.0, speedup[t]]
    tables["cost"] = cost.T.style.format(precision=2).set_caption(
        latency_caption(machine, params.latency_calls, latency))
    facts.add(ch3_machine=Md(machine), ch3_rule_frames=rule_frames, ch3_speedup=float(speedup[rule_frames]),
              ch3_teacher_ms=float(ms.loc["teacher", rule_frames]),
              ch3_student_ms=float(ms.loc["student", rule_frames]),
              ch3_flops_ratio=float(gflops.loc["teacher", rule_frames] / gflops.loc["student", rule_frames]),
              ch3_backbone_ratio=float(sizes.loc["student", "params_backbone_m"]
                                       / sizes.loc["teacher", "params_backbone_m"]),
              ch3_total_ratio=float(sizes.loc["student", "params_total_m"] / sizes.loc["teacher", "params_total_m"]),
              ch3_speedup_range=Md(speedup_range(speedup)))

    # does the swap behave as in the thesis
    student = thesis_student(list(students))
    verdict = thesis_text(float(speedup[rule_frames]), gaps[student], zs_gaps[student], student)
    best = bs.best_init(summary, all_runs, list(students))
    winner = best["init"]
    facts.add(ch3_thesis_verdict=Md(verdict), ch3_winner_sentence=Md(bs.winner_sentence(best)),
              ch3_best=Md(f"**{bs.LABELS[winner]}**"), ch3_best_top1=float(summary.loc[winner, "top1_mean"]),
              ch3_best_zs=float(summary.loc[winner, "zs_top1_mean"]), ch3_best_drop=gaps[winner].mean,
              ch3_ranking=Md(ranking_text(summary, best["ranking"])),
              ch3_mimic=Md(mimic_text(all_runs, summary, list(students))))
    tables["ranking"] = ranking_table(summary, gaps, best["ranking"])

    # beside the published numbers
    beside = bs.reported_table(teacher_backbone, student_backbone)
    facts.add(ch3_reported_ratio=float(beside.loc[beside["model"] == THESIS_TINYCLIP, "vs_teacher"].iloc[0]))
    tables["reported"] = reported_styler(beside)

    # the record for chapter 7
    path = bs.write_results(bs.results_path(records_as), choice, students, runs, summary, latency, best, base,
                            extra={"profile": params.profile, "machine": machine, "rule_frames": rule_frames,
                                   "speedup": {int(t): float(s) for t, s in speedup.items()},
                                   "freeze_image_encoder": freeze_image_encoder,
                                   "freeze_token_embedding": freeze_token_embedding,
                                   "teacher_runs": teacher.to_dict(orient="records"), "verdict": verdict})
    facts.add(ch3_results_path=Md(f"`{path.relative_to(path.parents[2])}`"),
              ch3_chapter_s=time.perf_counter() - started)
    return Result(params=params, choice=choice, base=base, teacher=teacher, students=students,
                  freeze_image_encoder=freeze_image_encoder, freeze_token_embedding=freeze_token_embedding, runs=runs,
                  all_runs=all_runs, summary=summary, gaps=gaps, latency=latency, rule_frames=rule_frames,
                  speedup=speedup, machine=machine, best=best, verdict=verdict, path=path, tables=tables, facts=facts)


# ------------------------------------------------------------------------------------------- figure
def swap_figure(result: Result) -> Figure:
    """Closed-set and zero-shot top-1 against latency at the rule frames (mean over seeds, a bar of one standard
    deviation, chance dash-dotted; the three initialisations share the student's latency), and latency against
    frames per clip for teacher and student."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    params, summary, latency, teacher = result.params, result.summary, result.latency, result.teacher
    ms = latency.pivot(index="model", columns="frames", values="latency_ms")
    plot = summary.assign(label=summary.index.map(bs.LABELS),
                          latency_ms=[ms.loc["teacher" if n == "teacher" else "student", result.rule_frames]
                                      for n in summary.index])
    palette = dict(zip(plot["label"], sns.color_palette("deep", len(plot)), strict=True))
    markers = dict(zip(plot["label"], ["o", "s", "D", "X"][: len(plot)], strict=True))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
        for ax, (metric, title) in zip(axes[:2], [("top1", "closed-set top-1 (%)"),
                                                  ("zs_top1", "zero-shot top-1 (%)")], strict=True):
            ax.errorbar(plot["latency_ms"], plot[f"{metric}_mean"], yerr=plot[f"{metric}_std"].fillna(0), fmt="none",
                        ecolor="0.6", capsize=3, zorder=1)
            sns.scatterplot(data=plot, x="latency_ms", y=f"{metric}_mean", hue="label", style="label",
                            palette=palette, markers=markers, s=110, ax=ax, zorder=2, legend=ax is axes[0])
            classes = int(teacher["classes" if metric == "top1" else "zs_classes"].iloc[0])
            if classes:
                ax.axhline(chance(classes), ls="-.", color="0.75", lw=1, label="chance")
            ax.set(xlabel=f"latency at {result.rule_frames} frames, batch 1 (ms, {params.latency_device})",
                   ylabel=title)
        axes[0].legend(loc="best", fontsize=8, frameon=False)
        lines = latency.assign(role=latency["model"].map({"teacher": f"teacher ({result.teacher_backbone})",
                                                          "student": f"student ({result.student_backbone})"}))
        sns.lineplot(data=lines, x="frames", y="latency_ms", hue="role", marker="o", ax=axes[2])
        axes[2].set(xlabel="frames per clip", ylabel="latency, batch 1 (ms)", xticks=sorted(set(latency["frames"])))
        axes[2].legend(fontsize=8, frameon=False)
        fig.suptitle(f"{params.dataset}: the backbone swap ({len(params.seeds)} seed(s), {result.base.epochs} "
                     "epoch(s))")
        fig.tight_layout()
    plt.close(fig)  # shown once, as the cell's value
    return fig
