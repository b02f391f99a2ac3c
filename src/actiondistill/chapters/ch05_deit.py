"""Chapter 5, "Two heads: DeiT distillation for video transformers": the two-headed student against its ablations
and the single-head baseline, where its gain comes from, beside the published numbers, and what the extra token
costs at inference.

The experiment itself is `deit.experiment` (its record is what chapter 7 reads); this module runs it with the
chapter's parameters, makes its decisions and tables, and says them in the sentences the chapter's text glues.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from actiondistill.chapters import kit
from actiondistill.chapters.kit import ChapterParams, Facts, Md
from actiondistill.deit import experiment as dx
from actiondistill.stats import PairedDifference, paired_by_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

    from actiondistill.config import TrainConfig

#: The head that inference uses, as the head figure's legend names it.
INFERENCE = "what inference uses (average of the heads; the single head)"


@dataclass
class Params(ChapterParams):
    """Chapter 5's parameters (the smoke profile's defaults). `dataset` must be the data of chapter 2's teacher;
    `device` is where missing frame features would be computed (chapter 2 normally did it)."""

    pretrained: str | None = None  # the teacher's CLIP weights; None: the in-project CLIP pretrained on the world
    pretrain: dict[str, Any] = field(default_factory=kit.smoke_pretrain)  # PretrainConfig overrides, as chapter 2's
    freeze_image_encoder: bool = True  # embedded: frozen CLIP image encoder + cached frame features; real: False
    feature_dtype: str = "bf16"     # precision of the cached frame embeddings (chapter 2's)
    freeze_token_embedding: bool = False  # keep the text tower's token table fixed (a cheaper training step)
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds of every variant
    # of single, none, gt, soft, hard (actiondistill.deit.experiment)
    variants: list[str] = field(default_factory=lambda: ["single", "gt", "hard"])
    epochs: int | None = None       # None: chapter 2's budget (the teacher's), for every variant alike
    fusion_layers: int = 2          # temporal transformer depth of the baseline and the students (chapter 2's)
    alpha: float = 0.5              # weight of the token loss (DeiT: 0.5)
    tau: float = 1.0                # temperature of the soft term (DeiT: 1.0)
    soft_alpha: float | None = None  # the soft variant's weight; None: the per-sample equivalent of alpha
    # CLIPs the two models are timed on (embedded: base and tiny)
    latency_backbones: list[str] = field(default_factory=lambda: ["embedded-base"])
    latency_frames: list[int] = field(default_factory=lambda: [4])  # frame counts timed (batch 1)
    latency_device: str = "cpu"     # where latency is measured
    # rounds of one timed call per model, the models taking turns call by call (1 thread)
    latency_calls: int = 2


@dataclass
class Result:
    """Everything chapter 5 computes: the runs and their summary, the decisions, the tables and figures' data,
    the record it wrote and the facts its text glues."""

    params: Params
    choice: dict[str, Any]            # chapter 2's teacher choice (`kit.read_teacher`)
    base: TrainConfig                 # the recipe every variant trains with
    teacher_row: dict[str, Any]       # chapter 2's summary row of the teacher
    classes: int
    soft_alpha: float                 # the soft variant's weight
    runs: pd.DataFrame                # one row per (variant, seed): `deit.experiment.run_ablation`
    summary: pd.DataFrame             # `deit.experiment.summarise` of the runs
    headline: PairedDifference        # the best student minus the single head, paired by seed
    attribution: dict[str, Any]       # `deit.experiment.attribution`
    differences: pd.DataFrame         # per-seed paired differences of every comparison (the attribution figure)
    latency: pd.DataFrame             # `deit.experiment.latency_table`
    machine: str
    best: dict[str, Any]              # `deit.experiment.best_setting`
    path: Path                        # the record chapter 7 reads
    tables: dict[str, Any] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)
    verdicts: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- checks
def check_teacher_clip(weights: str | Path, teacher_weights: str | Path) -> None:
    """Refuse a CLIP other than the one chapter 2's teacher was trained on (its world: `kit.read_teacher`): the
    students share the teacher's CLIP, so that the two heads are all that differs."""
    mine, theirs = Path(weights).resolve(), Path(teacher_weights).resolve()
    if mine != theirs:
        raise ValueError(f"this chapter's CLIP ({mine}) is not the one chapter 2's teacher was trained on ({theirs}): "
                         "run chapter 2 with the same parameters first")


def check_variants(variants: Sequence[str]) -> None:
    """The ablation needs the single head, labels on both heads and at least one distilled variant."""
    missing = {"single", "gt"} - set(variants)
    if missing or not {"soft", "hard"} & set(variants):
        raise ValueError(f"variants={list(variants)}: the ablation needs 'single', 'gt' and at least one of 'soft', "
                         "'hard'")


# --------------------------------------------------------------------------------------- rules and sentences
def soft_weight(alpha: float, soft_alpha: float | None, classes: int) -> float:
    """The soft variant's weight: `soft_alpha` when given, else the per-sample equivalent of `alpha`."""
    return soft_alpha if soft_alpha is not None else dx.per_sample_alpha(alpha, classes)


def cost_note(runs: pd.DataFrame, teacher_label: str) -> str:
    """What the training times say: which single-head runs are chapter 2's own, and how much longer a two-headed
    run trained than a single-head one (when a single-head run was trained here)."""
    reused = runs["reused_from"] != ""
    notes = []
    if reused.any():
        notes.append(f"The single-head baseline of {int(reused.sum())} seed(s) is chapter 2's own run of the teacher "
                     f"({teacher_label}, same recipe and seed), read back from its records rather than trained "
                     "again.")
    trained_here = runs[~reused]
    if (trained_here["variant"] == "single").any():
        per_run = trained_here.groupby("variant", sort=False)["train_s"].mean()
        notes.append(f"On average a two-headed run's training time differed from a single-head one's by "
                     f"{100 * (per_run.drop('single').mean() / per_run['single'] - 1):+.0f}% (the teacher's forward "
                     "pass included, for the distilled ones).")
    return " ".join(notes)


def best_student(summary: pd.DataFrame) -> str:
    """The two-headed variant with the highest mean closed-set top-1 (the first of a tie)."""
    return str(summary.drop(index="single")["top1_mean"].idxmax())


def heads_gap(summary: pd.DataFrame) -> str:
    """Token head minus frame head of every two-headed variant, in points ("label +1.2, ...")."""
    students = summary.drop(index="single")
    gap = (students["top1_token_mean"] - students["top1_frame_mean"]).dropna()
    return ", ".join(f"{dx.LABELS[v]} {g:+.1f}" for v, g in gap.items())


def max_std(summary: pd.DataFrame) -> float:
    """The largest standard deviation over seeds of any variant's top-1 (NaN with one seed)."""
    return float(summary["top1_std"].max()) if summary["top1_std"].notna().any() else float("nan")


def comparisons(variants: Sequence[str]) -> list[tuple[str, str]]:
    """The paired comparisons the chapter shows: labels on both heads against the single head, then each
    distilled variant against labels on both heads, then against the single head."""
    taught = [v for v in dx.TEACHER_VARIANTS if v in variants]
    return [("gt", "single")] + [(v, "gt") for v in taught] + [(v, "single") for v in taught]


def paired_differences(runs: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """One row per (comparison, seed): the paired top-1 difference ("gt − single", seed, difference)."""
    rows = []
    for variant, reference in pairs:
        per_seed = paired_by_seed(runs, "variant", variant, reference).per_seed
        rows += [{"comparison": f"{variant} − {reference}", "seed": s, "difference": d} for s, d in per_seed.items()]
    return pd.DataFrame(rows, columns=["comparison", "seed", "difference"])


def world_name(synthetic: bool, dataset: str) -> str:
    return "SynthActions" if synthetic else dataset.upper()


# --------------------------------------------------------------------------------------- tables
def setup_table(choice: Mapping[str, Any], teacher_row: Mapping[str, Any], base: TrainConfig, classes: int,
                image_encoder: str) -> pd.DataFrame:
    """The teacher and the recipe every variant trains with."""
    return pd.DataFrame({
        "setting": ["teacher", "teacher's closed-set top-1 (chapter 2, mean over seeds)", "teacher seeds",
                    "CLIP (teacher and students)", "image encoder", "frames per clip (TSN)", "epochs",
                    "batch size", "text encoder lr", "temporal modules lr", "training classes"],
        "value": [choice["label"], f"{teacher_row['top1_mean']:.1f}%", len(choice["weights"]),
                  choice["model"]["backbone"], image_encoder, base.data.num_frames, base.epochs,
                  base.data.batch_size, base.optim.lr, base.optim.lr * base.optim.fusion_lr_mult, classes]})


def image_encoder_setup(cached: bool, freeze_image_encoder: bool) -> str:
    return ("frozen, cached frame embeddings" if cached else
            "fine-tuned on pixels" if not freeze_image_encoder else "frozen, pixels")


def variants_table(variants: Sequence[str], alpha: float, tau: float, soft_alpha: float) -> pd.DataFrame:
    """Each variant's model, the loss of each head, its token-loss weight and whether it has a teacher."""
    token_loss = {"single": "(no token)", "none": "none", "gt": "cross-entropy, true class",
                  "soft": f"KL to the teacher, tau {tau:g}", "hard": "cross-entropy, teacher's class"}
    return pd.DataFrame({
        "variant": [dx.LABELS[v] for v in variants],
        "model": [dx.SINGLE_MODEL if v == "single" else dx.STUDENT_MODEL for v in variants],
        "frame head loss": ["ActionCLIP, labels"] * len(variants),
        "token head loss": [token_loss[v] for v in variants],
        "alpha": ["" if v in ("single", "none") else f"{soft_alpha if v == 'soft' else alpha:.3f}" for v in variants],
        "teacher": ["yes" if v in dx.TEACHER_VARIANTS else "no" for v in variants]})


def runs_table(runs: pd.DataFrame) -> Styler:
    """Every run: its variant, seeds, the heads' scores, training time and where it was trained (`kit.runs_table`);
    a head the single head lacks and the teacher seed of a variant without a teacher are blank, not "nan"."""
    reused = runs["reused_from"] != ""
    return (kit.runs_table(runs.assign(trained=np.where(reused, "chapter 2 (the teacher)", "here")),
                           ["label", "seed", "teacher_seed", "top1", "top1_frame", "top1_token", "zs_top1", "train_s",
                            "trained"],
                           {"label": "variant", "teacher_seed": "teacher seed", "top1": "top-1, average / single",
                            "top1_frame": "top-1, frame head", "top1_token": "top-1, token head"}, na_rep="")
            .format("{:.0f}", subset=["teacher seed"], na_rep=""))


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd [min, max] over seeds of every variant, head by head."""
    return pd.DataFrame({"variant": summary["label"], "seeds": summary["seeds"],
                         "top-1, average / single (%)": kit.spread_column(summary, "top1"),
                         "top-1, frame head (%)": kit.spread_column(summary, "top1_frame"),
                         "top-1, token head (%)": kit.spread_column(summary, "top1_token"),
                         "zero-shot top-1 (%)": kit.spread_column(summary, "zs_top1")})


def published_table(runs: pd.DataFrame, pairs: Sequence[tuple[str, str]], work: str) -> pd.DataFrame:
    """DeiT's reported gains of distillation beside the paired gains measured here (`work`: world and CLIP)."""
    reported = dx.reported_table()
    gains = reported.pivot_table(index="model", columns="setting", values="top1", sort=False)
    reported_gains = pd.DataFrame({
        "source": "reported", "work": "DeiT (ImageNet, 224 px)",
        "comparison": [f"{m}: distillation token (hard) − no distillation" for m in gains.index],
        "gain (points)": (gains["distillation token, hard"] - gains["no distillation"]).values})
    measured = [{"source": "measured here", "work": work, "comparison": f"{dx.LABELS[a]} − {dx.LABELS[b]}",
                 "gain (points)": paired_by_seed(runs, "variant", a, b).mean} for a, b in pairs]
    return pd.concat([reported_gains, pd.DataFrame(measured)], ignore_index=True)


def finding_table(conclusion: str) -> pd.DataFrame:
    return pd.DataFrame({"source": ["reported (thesis)", "measured here"],
                         "where the gain comes from": [dx.THESIS_FINDING, conclusion]})


def latency_side_by_side(latency: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latency table as single head against two heads per (backbone, part, frames), and the parameter counts
    (M) of the whole model per backbone."""
    side = latency.pivot_table(index=["backbone", "part", "frames"], columns="model",
                               values=["latency_ms", "speedup_vs_first", "gflops"], sort=False)
    table = pd.DataFrame({"single head (ms)": side[("latency_ms", "single head")],
                          "two heads (ms)": side[("latency_ms", "two heads")],
                          "two / single": 1 / side[("speedup_vs_first", "two heads")],  # per-round ratios
                          "GFLOPs, single head": side[("gflops", "single head")],
                          "GFLOPs, two heads": side[("gflops", "two heads")]})
    params = latency[latency["part"] == "whole clip"].pivot_table(index="backbone", columns="model",
                                                                  values="params_total_m", sort=False)
    return table, params


def latency_facts(table: pd.DataFrame, params: pd.DataFrame, backbone: str, frames: int) -> dict[str, float]:
    """The ratios the text quotes, on one backbone at one frame count."""
    whole, temporal = table.loc[(backbone, "whole clip", frames)], table.loc[(backbone, "temporal part", frames)]
    return {"ch5_whole_ratio": float(whole["two / single"]), "ch5_whole_ms": float(whole["two heads (ms)"]),
            "ch5_temporal_ratio": float(temporal["two / single"]),
            "ch5_flops_extra": float(100 * (whole["GFLOPs, two heads"] / whole["GFLOPs, single head"] - 1)),
            "ch5_temporal_share": float(100 * temporal["two heads (ms)"] / whole["two heads (ms)"]),
            "ch5_params_extra_k": float(1000 * (params.loc[backbone, "two heads"]
                                                - params.loc[backbone, "single head"]))}


def latency_caption(machine: str, calls: int, load_note: str, params: pd.DataFrame) -> str:
    """Where and how the latency was measured, and the models' parameter counts."""
    counts = "; ".join(f"{b}: single {params.loc[b, 'single head']:.2f}, two {params.loc[b, 'two heads']:.2f}"
                       for b in params.index)
    return (f"Measured on: {machine} (batch 1, {calls} rounds of one call per model in turn). {load_note} "
            f"Parameters (M): {counts}")


def best_table(best: Mapping[str, Any]) -> pd.DataFrame:
    """The best setting, as chapter 7 rebuilds it."""
    return pd.DataFrame({
        "": ["best setting (highest mean closed-set top-1)", "model", "head at inference", "token loss", "alpha",
             "tau", "closed-set top-1 (mean)", "seeds"],
        "value": [best["label"], best["model"], best["head"], best["distillation"],
                  "n/a" if best["alpha"] is None else f"{best['alpha']:.3f}",
                  "n/a" if best["tau"] is None else f"{best['tau']:g}", f"{best['mean']:.1f}%",
                  len(best["weights"])]})


# --------------------------------------------------------------------------------------- the chapter
def run(params: Params) -> Result:
    """Chapter 5 end to end: the teacher and its world, the ablation, the attribution, the published numbers, the
    latency, and the record for chapter 7."""
    from actiondistill.engine.runs import run_datasets
    from actiondistill.evaluate import class_texts_of
    from actiondistill.profiler import load_note
    started = time.perf_counter()
    facts = Facts()
    records_as = params.records_as()

    # the teacher, and what the student sees
    choice = kit.read_teacher(params, kit.prepare_world(params, clips=False)).choice
    base = dx.recipe(choice, params.epochs)
    teacher_model = choice["model"]
    synthetic = params.synthetic_world
    world = kit.prepare_world(params, params.pretrain, clips=params.pretrained is None)  # World(None): real data
    if synthetic:
        weights = params.pretrained if params.pretrained is not None else world.checkpoint(teacher_model["backbone"])
        check_teacher_clip(weights, teacher_model["pretrained"])
    features = None
    if params.freeze_image_encoder:
        if not synthetic:
            raise ValueError("freeze_image_encoder=True trains on cached features of a SynthActions manifest; the "
                             "real-data profiles train on pixels (freeze_image_encoder=False)")
        features, computed = kit.frame_features(world, teacher_model["backbone"], teacher_model["pretrained"],
                                                base.data.size, device=params.device, dtype=params.feature_dtype)
        facts.add(ch5_features_reused=Md("reused from chapter 2" if not computed else "computed by this run"))
    else:
        facts.add(ch5_features_reused=Md("not used: every variant trains on pixels"))
    teacher_row = next(r for r in choice["summary"] if r["model"] == choice["teacher"])
    class_texts = class_texts_of(run_datasets(base, features)["train"])
    classes = len(class_texts)
    facts.add(ch5_teacher=Md(f"**{choice['label']}**"), ch5_teacher_top1=float(teacher_row["top1_mean"]),
              ch5_teacher_seeds=len(choice["weights"]), ch5_backbone=Md(f"`{teacher_model['backbone']}`"),
              ch5_classes=classes, ch5_chance=100 / classes, ch5_epochs=base.epochs,
              ch5_frames=base.data.num_frames)
    tables: dict[str, Any] = {"setup": setup_table(
        choice, teacher_row, base, classes,
        image_encoder_setup(features is not None, params.freeze_image_encoder)).pipe(kit.table)}

    # the two heads and the variants
    check_variants(params.variants)
    soft = soft_weight(params.alpha, params.soft_alpha, classes)
    facts.add(ch5_soft_alpha=float(soft), ch5_alpha=float(params.alpha), ch5_seeds=len(params.seeds))
    tables["variants"] = variants_table(params.variants, params.alpha, params.tau, soft).pipe(kit.table)

    # training
    training_started = time.perf_counter()
    runs = dx.run_ablation(base, choice, params.variants, params.seeds, features, alpha=params.alpha, tau=params.tau,
                           soft_alpha=soft, fusion_layers=params.fusion_layers,
                           freeze_image_encoder=params.freeze_image_encoder,
                           freeze_token_embedding=params.freeze_token_embedding, run_prefix=f"ch5-{records_as}",
                           progress=False, workers=params.grid_workers)
    facts.add(ch5_runs=len(runs), ch5_training_s=time.perf_counter() - training_started,
              ch5_cost_note=Md(cost_note(runs, choice["label"])))
    tables["runs"] = runs_table(runs)

    # accuracy, head by head
    summary = dx.summarise(runs, metrics=("top1", "top1_frame", "top1_token", "zs_top1"))
    facts.add(**{f"ch5_top1_{v}": float(row["top1_mean"]) for v, row in summary.iterrows()})
    facts.add(ch5_max_std=max_std(summary))
    tables["summary"] = summary_table(summary).pipe(kit.table)
    best_two = best_student(summary)
    headline = paired_by_seed(runs, "variant", best_two, "single")
    verdicts = {"best_vs_single": headline.phrase()}
    taught = runs[runs["variant"].isin(dx.TEACHER_VARIANTS)]
    facts.add(ch5_best_student=Md(f"**{dx.LABELS[best_two]}**"),
              ch5_best_student_top1=float(summary.loc[best_two, "top1_mean"]), ch5_best_vs_single=headline.mean,
              ch5_best_verdict=Md(verdicts["best_vs_single"]), ch5_heads_gap=Md(heads_gap(summary)),
              ch5_agreement=float(100 * taught["train_teacher_agreement"].mean()),
              ch5_teacher_train_acc=float(100 * taught["train_teacher_acc"].mean()),
              ch5_token_train_acc=float(100 * taught["train_acc_token"].mean()))

    # where the gain comes from
    attr = dx.attribution(runs)
    verdicts.update(attribution=attr["sentence"], conclusion=attr["conclusion"])
    facts.add(ch5_attribution=Md(attr["sentence"]), ch5_conclusion=Md(attr["conclusion"]))
    pairs = comparisons(params.variants)
    differences = paired_differences(runs, pairs)

    # beside the published numbers
    work = f"{world_name(synthetic, base.data.dataset)}, {teacher_model['backbone']}"
    tables["published"] = published_table(runs, pairs, work).style.format({"gain (points)": "{:+.1f}"}) \
        .hide(axis="index")
    tables["finding"] = finding_table(attr["conclusion"]).pipe(kit.table)

    # what the extra token costs
    latency = dx.latency_table(params.latency_backbones, params.latency_frames, fusion_layers=params.fusion_layers,
                               device=params.latency_device, calls=params.latency_calls, progress=False)
    machine = kit.machine_label(latency.attrs["environment"], params.latency_device)
    facts.add(ch5_machine=Md(machine))
    side, counts = latency_side_by_side(latency)
    first, frames0 = params.latency_backbones[0], params.latency_frames[0]
    facts.add(ch5_latency_backbone=Md(f"`{first}`"), ch5_latency_frames=frames0)
    facts.add(**latency_facts(side, counts, first, frames0))
    tables["latency"] = side.reset_index().style.format(precision=2).hide(axis="index").set_caption(
        latency_caption(machine, params.latency_calls, load_note(latency), counts))

    # the result, for chapter 7
    best = dx.best_setting(runs)
    path = dx.write_results(
        dx.results_path(records_as), runs, base, choice,
        extra={"profile": params.profile, "alpha": params.alpha, "tau": params.tau, "soft_alpha": soft,
               "classes": classes, "fusion_layers": params.fusion_layers, "feature_dtype": params.feature_dtype,
               "freeze_image_encoder": params.freeze_image_encoder,
               "freeze_token_embedding": params.freeze_token_embedding,
               "student_setup": "the teacher's CLIP and frozen image encoder (cached frame embeddings)"
               if features is not None else "the teacher's CLIP, trained on pixels",
               "latency": latency.to_dict(orient="records"), "machine": machine})
    facts.add(ch5_best=Md(f"**{best['label']}**"), ch5_best_top1=best["mean"],
              ch5_results_path=Md(f"`{path.relative_to(path.parents[2])}`"))
    tables["best"] = best_table(best).pipe(kit.table)
    facts.add(ch5_chapter_s=time.perf_counter() - started)
    return Result(params=params, choice=dict(choice), base=base, teacher_row=dict(teacher_row), classes=classes,
                  soft_alpha=float(soft), runs=runs, summary=summary, headline=headline, attribution=attr,
                  differences=differences, latency=latency, machine=machine, best=best, path=path, tables=tables,
                  facts=facts, verdicts=verdicts)


# --------------------------------------------------------------------------------------- figures
def heads_figure(result: Result) -> Figure:
    """Closed-set and zero-shot top-1 of every variant: the heads' average (what inference uses) and each head
    alone, bars the mean ± sd over seeds, dots single seeds; the teacher dashed and chance dotted."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    runs, variants = result.runs, result.params.variants
    long = dx.head_scores(runs)
    long["head shown"] = long["head"].map({"both": INFERENCE, "single": INFERENCE, "frame": "frame head alone",
                                           "token": "token head alone"})
    tidy = long.melt(id_vars=["variant_label", "seed", "head shown"], value_vars=["top1", "zs_top1"],
                     var_name="split", value_name="top-1 (%)")
    tidy["split"] = tidy["split"].map({"top1": "closed-set (test split)", "zs_top1": "zero-shot (held-out classes)"})
    hue_order = [INFERENCE, "frame head alone", "token head alone"]
    order = [dx.LABELS[v] for v in variants]
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        grid = sns.catplot(data=tidy, kind="bar", x="top-1 (%)", y="variant_label", hue="head shown", col="split",
                           order=order, hue_order=hue_order, errorbar="sd", palette="Set2", sharex=False,
                           height=3.2 + 0.35 * len(variants), aspect=1.25, alpha=0.9)
        for ax, split_name in zip(grid.axes.flat, grid.col_names, strict=True):
            sns.stripplot(data=tidy[tidy["split"] == split_name], x="top-1 (%)", y="variant_label", hue="head shown",
                          order=order, hue_order=hue_order, dodge=True, palette=["0.2"] * len(hue_order), size=4,
                          ax=ax, legend=False)
            if split_name.startswith("closed"):
                ax.axvline(result.teacher_row["top1_mean"], ls="--", color="0.3", lw=1)
                ax.axvline(100 / result.classes, ls=":", color="0.5", lw=1)
            elif int(runs["zs_classes"].iloc[0]):
                ax.axvline(100 / int(runs["zs_classes"].iloc[0]), ls=":", color="0.5", lw=1)
            ax.set_title(split_name)
        grid.set_axis_labels("top-1 (%)", "")
        sns.move_legend(grid, "lower center", bbox_to_anchor=(0.45, -0.08), ncol=3, title=None, frameon=False)
        grid.figure.suptitle(f"{result.base.data.dataset}: mean ± sd over {len(result.params.seeds)} seed(s), dots "
                             f"single seeds\ndashed: the teacher ({result.choice['label']}), dotted: chance", y=1.1)
    plt.close(grid.figure)
    return grid.figure


def attribution_figure(result: Result) -> Figure:
    """Each comparison's paired top-1 difference: mean ± sd over seeds (diamonds) and each seed (dots)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    diffs = result.differences
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig, ax = plt.subplots(figsize=(8, 3.6))
        sns.pointplot(data=diffs, x="comparison", y="difference", errorbar="sd", linestyle="none", color="0.2",
                      markers="D", capsize=0.15, ax=ax)
        sns.stripplot(data=diffs, x="comparison", y="difference", hue="seed", palette="Set1", size=6, ax=ax)
        ax.axhline(0, color="0.4", lw=1)
        ax.set(xlabel="", ylabel="closed-set top-1 difference (points)",
               title="Paired by seed: mean ± sd (diamonds) and each seed (dots)")
        ax.legend(title="seed", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        fig.tight_layout()
    plt.close(fig)
    return fig


def latency_figure(result: Result) -> Figure:
    """Latency (batch 1) of the single head against two heads on each CLIP: the whole clip and the temporal part."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    p = result.params
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        grid = sns.catplot(data=result.latency, x="backbone", y="latency_ms", hue="model", col="part", kind="bar",
                           sharey=False, order=p.latency_backbones, col_order=["whole clip", "temporal part"],
                           palette="Set2", height=3.4, aspect=1.2)
        grid.set_axis_labels("", f"latency, batch 1 (ms, {p.latency_device})")
        grid.set_titles("{col_name}")
        grid.figure.suptitle(f"single head against two heads, {p.latency_frames[0]} frames", y=1.04)
    plt.close(grid.figure)
    return grid.figure
