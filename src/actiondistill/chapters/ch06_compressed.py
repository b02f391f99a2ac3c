"""Chapter 6, "Compressed video: progressive distillation and early exits": the I-frame, motion-vector and residual
networks of CoViAR with internal classifiers (ICs), the ICs trained by cross-entropy, by PKD and by PKD's controls,
and WISE's early-exit ensemble against compute.

`run(params)` loads the closed-set splits, extracts the example clip's compressed modalities, counts the networks'
cost per exit, runs (or reads from data/cache/pkd/) the experiment of `actiondistill.pkd.experiment`, and compares:
every variant against CE paired by seed (`stats.paired_difference`), then WISE's threshold sweep against the
final classifiers and CoViAR's fusion. The figure functions draw what it computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from actiondistill.chapters import kit
from actiondistill.chapters.kit import ChapterParams, Facts, Md

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

    from actiondistill.pkd import CompressedExperiment, CompressedResults

#: How the text names each network (`MODALITIES` order: residual, MV, I-frame).
NAMES = {"residual": "residual", "mv": "MV", "iframe": "I-frame"}
#: The fixed point that fuses the three final classifiers (`pkd.tradeoff.fixed_points`).
FUSION = "CoViAR 2I+MV+R"
#: The variants every comparison of the chapter needs.
REQUIRED_VARIANTS = ("ce", "pkd")
#: The gains the paper reports (points), beside which the chapter sets its own.
REPORTED = {"UCF-101 (reported)": [5.87, 4.28], "HMDB-51 (reported)": [11.42, 9.30]}
REPORTED_ROWS = ["IC accuracy, PKD over CE-trained ICs: up to (points)", "WISE: up to (points)"]

VideoList = list[tuple[Path, int]]


@dataclass
class Params(ChapterParams):
    data_root: str | None = None   # hmdb51/ucf101: folder under data/ (default: the dataset's name)
    split: int = 1                 # hmdb51/ucf101: official split 1, 2 or 3
    input_size: int = 32           # side of the networks' inputs (I-frame, MV and residual are resized to it)
    segments: int = 3              # TSN segments per clip
    width: int = 8                 # base width of the tiny ResNets
    # tiny | resnet18 | resnet50, or per modality {"iframe": ..., "mv": ..., "residual": ...}
    arch: str | dict[str, str] = "tiny"
    checkpoint: str | dict[str, str] | None = None  # ResNet checkpoint file(s) under data/ to start from: one path,
    #                                                 or per modality
    finetune_backbone: bool = True  # stage 0 trains backbones + final classifiers (True) or the classifiers
    #                                 only (False)
    cache_features: bool = True     # fixed views and stage features in memory (small inputs) or decode every epoch
    #                                 (real data)
    num_workers: int = 0           # decoding processes when cache_features is False
    batch_size: int = 32           # clips per training step
    views: int = 1                 # random training views drawn per clip (cycled over the epochs)
    stage0_epochs: int = 2         # training of backbones + final classifiers (cross-entropy); 0: checkpoints as
    #                                they are
    stage0_lr: float = 3e-3        # its AdamW learning rate
    ic_epochs: int = 3             # training of the ICs on frozen backbones (PKD: one third per teacher)
    ic_lr: float = 3e-3            # their AdamW learning rate
    seeds: list[int] = field(default_factory=lambda: [0])  # seeds of the IC training runs
    variants: list[str] = field(default_factory=lambda: ["ce", "pkd", "pkd_iframe_end", "anti_curriculum",
                                                         "iframe_kd"])
    example_class: str = "moving right"  # the clip shown in the figure of the three modalities
    strip_frames: int = 6          # P-frames shown in that figure


Strip = tuple[str, np.ndarray]


@dataclass
class Result:
    params: Params
    classes: list[str]
    split_videos: dict[str, VideoList]      # closed-set (path, label) pairs: train, test (and val on SynthActions)
    headline: Md                            # "**synthactions**: 22 classes; train 72 clips, ..."
    experiment: CompressedExperiment
    costs: pd.DataFrame                     # per network: MMACs per clip up to each exit, parameters (k)
    wise_mmacs: list[float]                 # cumulative MMACs of the 12 exits in WISE order
    results: CompressedResults              # every run's saved logits (`pkd.run_experiment`)
    run_note: str                           # what this run computed, or where every run was cached
    test_acc: pd.DataFrame                  # `ic_accuracy("test")` with IC and variant name columns
    train_acc: pd.DataFrame
    finals: pd.DataFrame                    # the final classifiers' top-1 (%), modality x (train, test)
    gain: pd.DataFrame                      # per (seed, modality, exit < 4): every variant minus CE
    per_ic: pd.DataFrame                    # `gain` averaged over seeds, per IC
    per_seed: pd.DataFrame                  # `gain` averaged over the nine ICs, per seed
    curve: pd.DataFrame                     # WISE's sweep, mean over seeds, per variant, fit split and threshold
    points: pd.DataFrame                    # the fixed models: each final classifier and CoViAR's fusion
    best_wise: pd.Series                    # WISE's best point over the PKD-trained ICs (fitted on train)
    example: str                            # the example clip's class
    shown_frames: list[int] = field(default_factory=list)
    strips: list[Strip] = field(default_factory=list)  # its compressed modalities, for the figure
    tables: dict[str, pd.DataFrame | Styler] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)  # variant -> its paired verdict against CE
    facts: Facts = field(default_factory=Facts)

    @property
    def chance(self) -> float:
        return 100 / len(self.classes)


# ------------------------------------------------------------------------------------------- pure rules
def check_variants(variants: Sequence[str]) -> None:
    """The chapter compares every variant against CE and WISE over CE- and PKD-trained ICs: both must run."""
    if not set(REQUIRED_VARIANTS) <= set(variants):
        raise ValueError(f"variants={list(variants)}: this chapter compares against 'ce' and 'pkd'; keep both")


def headline(dataset: str, classes: int, split_videos: Mapping[str, Sequence[Any]]) -> Md:
    """'**synthactions**: 22 classes; train 72 clips, val 15 clips, test 15 clips.'"""
    return Md(f"**{dataset}**: {classes} classes; "
              + ", ".join(f"{name} {len(clips)} clips" for name, clips in split_videos.items()) + ".")


def example_clip(videos: Sequence[tuple[Path, int]], classes: Sequence[str], name: str) -> tuple[Path, int]:
    """The first clip of class `name`, or the first clip when no clip has that class."""
    return next(((path, label) for path, label in videos if classes[label] == name), videos[0])


def run_note(seconds: Mapping[str, float], cache_dir: Path | str) -> str:
    """What the experiment computed in this run (its steps' wall time), or where every run was cached."""
    if seconds:
        return "computed in this run: " + ", ".join(f"{step} {s:.0f} s" for step, s in seconds.items())
    return f"every run was cached in {cache_dir}"


def gains_over_ce(test_acc: pd.DataFrame) -> pd.DataFrame:
    """Every variant's IC accuracy minus CE's, paired by (seed, modality, exit), for the nine ICs (exit < 4):
    the same backbones, the same seed. Columns: the variants other than CE."""
    wide = test_acc[test_acc["exit"] < 4].pivot_table(index=["seed", "modality", "exit"], columns="variant",
                                                      values="accuracy")
    return wide.drop(columns="ce").sub(wide["ce"], axis=0)


def final_accuracy(train_acc: pd.DataFrame, test_acc: pd.DataFrame, modalities: Sequence[str]) -> pd.DataFrame:
    """Each network's final classifier (exit 4): its mean top-1 (%) over the runs, per split (they are the same
    in every run: stage 0 is shared)."""
    return pd.DataFrame({split: acc[acc["exit"] == 4].groupby("modality")["accuracy"].mean()
                         for split, acc in (("train", train_acc), ("test", test_acc))}).reindex(list(modalities))


def ic_summary(test_acc: pd.DataFrame, modalities: Sequence[str]) -> pd.DataFrame:
    """Every IC's test top-1, mean ± sd over seeds (`kit.mean_sd_range`), variant x (network, IC)."""
    stats = test_acc.groupby(["variant name", "modality", "IC"])["accuracy"].agg(["mean", "std"])
    text = pd.Series([kit.mean_sd_range(m, s) for m, s in stats.to_numpy()], index=stats.index)
    return text.unstack(["modality", "IC"]).reindex(columns=list(modalities), level=0).rename(columns=NAMES,
                                                                                               level=0)


def best_point(curve: pd.DataFrame, variant: str) -> pd.Series:
    """The most accurate point of a variant's WISE curve; among equally accurate ones, the cheapest."""
    rows = curve[curve["variant"] == variant]
    if rows.empty:
        raise ValueError(f"no WISE curve of variant {variant!r}; have {sorted(set(curve['variant']))}")
    return rows.sort_values(["accuracy", "gmacs"], ascending=[False, True]).iloc[0]


def best_description(best: Mapping[str, float]) -> str:
    """WISE's best point in words: its threshold, its mean cost and how many clips exit before the fallback."""
    text = (f"threshold {best['threshold']:.2f}, {best['MMACs per clip']:.1f} MMACs per clip on average, "
            f"{best['early_exit']:.0f}% of the clips exiting before the fallback")
    if best["threshold"] == 0:
        text += ": every clip leaves at the first IC, the residual network's IC1"
    return text


def fusion_note(fused_accuracy: float, singles: pd.Series) -> str:
    """Whether CoViAR's fixed fusion improves on every single network (`singles`: top-1 by modality)."""
    if fused_accuracy < singles.max():
        return ("CoViAR's fixed weights (2 I + MV + R) carry real data's prior that the I-frame network is the "
                f"strongest; here the fusion falls below the {NAMES[singles.idxmax()]} network alone, and every clip "
                "that reaches WISE's fallback gets the fusion's answer")
    return "The fusion improves on every single network, as it does on real data"


def validation_note(curve: pd.DataFrame) -> str:
    """What WISE fitted on the validation clips reaches (SynthActions), or that there is no validation split."""
    val = curve[(curve["fit"] == "val") & (curve["variant"] == "pkd")]
    if val.empty:
        return "Without a validation split, WISE is fitted on training logits only"
    return (f"Fitted on the held-out validation clips instead, WISE over the PKD-trained ICs peaks at "
            f"{val['accuracy'].max():.1f}%; no fit can repair the fixed fallback")


def reported_table(dataset: str, pkd_gain_max: float, wise_gain: float) -> pd.DataFrame:
    """The paper's gains beside this run's: the largest per-IC gain of PKD over CE and WISE minus the fusion."""
    return pd.DataFrame({**REPORTED, f"{dataset} (measured)": [pkd_gain_max, wise_gain]}, index=REPORTED_ROWS)


# ------------------------------------------------------------------------------------------- the experiment
def closed_set_splits(params: Params, world: kit.World) -> tuple[list[str], dict[str, VideoList]]:
    """The classes and the closed-set (path, label) pairs of every split: on SynthActions the seen classes'
    train/val/test clips (the zero-shot classes play no part), on HMDB51/UCF101 the official split's."""
    from actiondistill.data.datasets import VideoDataset, hmdb51, ucf101
    from actiondistill.pkd import closed_set_videos

    if world.manifest is not None:
        from actiondistill.data import synthetic

        manifest = synthetic.load_manifest(world.manifest)
        seen = manifest["num_seen_classes"]
        return list(manifest["classes"][:seen]), {
            name: closed_set_videos(VideoDataset.from_manifest(world.manifest, name, probe=False), seen)
            for name in ("train", "val", "test")}
    from actiondistill.data.sources import real_dataset_root

    loader = {"hmdb51": hmdb51, "ucf101": ucf101}[params.dataset]
    root = real_dataset_root(params.dataset, params.data_root)
    parts = {name: loader(root, split=params.split, subset=name, probe=False) for name in ("train", "test")}
    return list(parts["train"].classes), {name: closed_set_videos(part) for name, part in parts.items()}


def experiment_of(params: Params) -> CompressedExperiment:
    """The experiment's settings from the chapter's parameters (the device is the experiment's "auto")."""
    from actiondistill.pkd import CompressedExperiment

    return CompressedExperiment(size=params.input_size, segments=params.segments, width=params.width,
                                batch_size=params.batch_size, views=params.views,
                                stage0_epochs=params.stage0_epochs, stage0_lr=params.stage0_lr,
                                ic_epochs=params.ic_epochs, ic_lr=params.ic_lr, arch=params.arch,
                                checkpoint=params.checkpoint, finetune_backbone=params.finetune_backbone,
                                cache_features=params.cache_features, num_workers=params.num_workers)


def network_costs(exp: CompressedExperiment, num_classes: int) -> tuple[pd.DataFrame, list[float]]:
    """Per network the MMACs per clip up to each exit and the parameters of its backbone and ICs, and WISE's
    cumulative MMACs over the 12 exits."""
    from actiondistill.models.compressed_nets import MODALITIES

    triplet = exp.build_triplet(num_classes)
    shapes = exp.input_shapes()
    costs = pd.DataFrame({NAMES[m]: [1000 * g for g in triplet.nets[m].exit_gmacs(shapes[m])] for m in MODALITIES},
                         index=[f"IC{k} (MMACs)" for k in range(1, 5)]).T
    costs["backbone params (k)"] = [sum(p.numel() for p in triplet.nets[m].backbone.parameters()) / 1e3
                                    for m in MODALITIES]
    costs["IC1-3 params (k)"] = [sum(p.numel() for p in triplet.nets[m].ics.parameters()) / 1e3 for m in MODALITIES]
    return costs, [1000 * g for g in triplet.wise_exit_gmacs(shapes)]


def wise_curves(results: CompressedResults) -> tuple[pd.DataFrame, pd.DataFrame]:
    """WISE's sweep over the CE- and PKD-trained ICs, fitted on the training clips (PKD) and, where there is a
    validation split, on it (ours), averaged over seeds; and the fixed models (final classifiers, fusion)."""
    from actiondistill.pkd import fixed_points, wise_tradeoff

    fits = ["train", "val"] if "val" in results.labels else ["train"]
    sweeps = pd.concat([wise_tradeoff(results, variants=list(REQUIRED_VARIANTS), fit_split=f).assign(fit=f)
                        for f in fits])
    curve = sweeps.groupby(["variant", "fit", "threshold"], as_index=False)[["accuracy", "gmacs",
                                                                             "early_exit"]].mean()
    curve["MMACs per clip"] = 1000 * curve["gmacs"]
    curve["ICs trained with"] = curve["variant"].map({"ce": "CE", "pkd": "PKD"})
    curve["WISE fitted on"] = curve["fit"].map({"train": "training clips (PKD)", "val": "validation clips (ours)"})
    first_run = next(iter(results.logits.values()))  # the final classifiers are the same in every run
    points = fixed_points(first_run["test"], results.labels["test"], results.exit_gmacs)
    points["MMACs per clip"] = 1000 * points["gmacs"]
    points["label"] = points["model"].map({**NAMES, FUSION: FUSION})
    return curve, points


def run(params: Params) -> Result:
    """The chapter's experiment, comparisons, tables and facts, in the notebook's order."""
    from actiondistill.data.compressed import CachedClip, cached_extract
    from actiondistill.data.compressed_codec import GOP_SIZE
    from actiondistill.data.compressed_dataset import default_cache_dir
    from actiondistill.models.compressed_nets import MODALITIES
    from actiondistill.pkd import VARIANT_LABELS, compressed_strips, run_experiment
    from actiondistill.stats import paired_difference

    facts = Facts()
    # the data: closed-set splits
    classes, split_videos = closed_set_splits(params, kit.prepare_world(params, clips=False))
    eval_videos = {name: clips for name, clips in split_videos.items() if name != "train"}
    facts.add(ch6_classes=len(classes), ch6_train=len(split_videos["train"]), ch6_test=len(split_videos["test"]),
              ch6_chance=float(100 / len(classes)))

    # the example clip's compressed modalities (extracted and cached before the experiment, as the networks' are)
    path, label = example_clip(split_videos["train"], classes, params.example_class)
    shown, strips = compressed_strips(CachedClip(cached_extract(path, default_cache_dir())),
                                      count=params.strip_frames)
    facts.add(ch6_gop=GOP_SIZE)

    # the networks and their cost per exit
    check_variants(params.variants)
    exp = experiment_of(params)
    costs, wise_mmacs = network_costs(exp, len(classes))
    facts.add(ch6_backbones=exp.describe_backbones(), ch6_stage0=exp.describe_stage0(),
              ch6_feeding=exp.describe_feeding(), ch6_input=params.input_size, ch6_segments=params.segments,
              ch6_ic_epochs=params.ic_epochs, ch6_seeds=len(params.seeds),
              ch6_net_mmacs=float(costs["IC4 (MMACs)"].mean()),
              ch6_ic1_share=float(100 * costs["IC1 (MMACs)"].mean() / costs["IC4 (MMACs)"].mean()),
              ch6_fusion_cost=float(costs["IC4 (MMACs)"].sum()), ch6_wise_first=float(wise_mmacs[0]),
              ch6_wise_all=float(wise_mmacs[-1]))

    # stage 0 and the ICs of every variant x seed
    results = run_experiment(exp, split_videos["train"], eval_videos, classes, seeds=params.seeds,
                             variants=params.variants, progress=False, workers=params.grid_workers)
    test_acc = results.ic_accuracy("test")
    train_acc = results.ic_accuracy("train")
    test_acc["IC"] = "IC" + test_acc["exit"].astype(str)
    test_acc["variant name"] = test_acc["variant"].map(VARIANT_LABELS)

    finals = final_accuracy(train_acc, test_acc, MODALITIES)
    for m in MODALITIES:
        facts.add(**{f"ch6_final_{m}": float(finals.loc[m, "test"]),
                     f"ch6_final_train_{m}": float(finals.loc[m, "train"])})

    # PKD against CE, IC by IC, paired by seed
    gain = gains_over_ce(test_acc)
    per_ic = gain.groupby(["modality", "exit"]).mean()
    per_seed = gain.groupby("seed").mean()  # mean over the nine ICs, one value per seed
    best_ic = per_ic["pkd"].idxmax()
    verdicts = {"pkd": paired_difference(per_seed["pkd"]).sentence("PKD's mean gain over CE")}
    facts.add(ch6_pkd_gain_max=float(per_ic["pkd"].max()), ch6_pkd_gain_max_at=f"{NAMES[best_ic[0]]} IC{best_ic[1]}",
              ch6_pkd_gain_min=float(per_ic["pkd"].min()), ch6_pkd_gain_mean=float(per_seed["pkd"].mean()),
              ch6_pkd_gain_sd=float(per_seed["pkd"].std(ddof=1) if len(per_seed) > 1 else float("nan")),
              ch6_pkd_verdict=verdicts["pkd"])

    # the controls
    control_gain = per_seed.agg(["mean", "std"]).T
    for v in control_gain.index:
        facts.add(**{f"ch6_gain_{v}": float(control_gain.loc[v, "mean"])})
        if v != "pkd":
            verdicts[v] = paired_difference(per_seed[v]).sentence("the mean gain")
            facts.add(**{f"ch6_verdict_{v}": verdicts[v]})

    # WISE against the final classifiers and CoViAR's fusion
    curve, points = wise_curves(results)
    fused = points.set_index("model").loc[FUSION]
    singles = points[points["model"] != FUSION].set_index("model")
    wise = curve[curve["fit"] == "train"]
    best = best_point(wise, "pkd")
    best_single = singles["accuracy"].idxmax()
    facts.add(ch6_fusion_acc=float(fused["accuracy"]), ch6_fusion_mmacs=float(fused["MMACs per clip"]),
              ch6_best_single=NAMES[best_single], ch6_best_single_acc=float(singles["accuracy"].max()),
              ch6_best_single_mmacs=float(singles.loc[best_single, "MMACs per clip"]),
              ch6_wise_best=float(best["accuracy"]), ch6_wise_best_mmacs=float(best["MMACs per clip"]),
              ch6_wise_best_desc=best_description(best),
              ch6_wise_best_ce=float(wise[wise["variant"] == "ce"]["accuracy"].max()),
              ch6_wise_gain=float(best["accuracy"] - fused["accuracy"]),
              ch6_wise_vs_single=float(best["accuracy"] - singles["accuracy"].max()),
              ch6_fusion_note=fusion_note(float(fused["accuracy"]), singles["accuracy"]),
              ch6_val_note=validation_note(curve))

    tables: dict[str, pd.DataFrame | Styler] = {
        "costs": costs.style.format("{:.2f}"),
        "finals": finals.rename(index=NAMES).style.format("{:.1f}").set_caption(
            "Top-1 (%) of each network's final classifier"),
        "ic_accuracy": ic_summary(test_acc, MODALITIES),
        "controls": control_gain.rename(index=VARIANT_LABELS).style.format("{:+.2f}").set_caption(
            "Gain over CE, mean over the nine ICs (points): mean and sd over seeds"),
        "reported": reported_table(params.dataset, float(per_ic["pkd"].max()),
                                   float(best["accuracy"] - fused["accuracy"])).style.format("{:+.2f}"),
    }
    return Result(params=params, classes=classes, split_videos=split_videos,
                  headline=headline(params.dataset, len(classes), split_videos), experiment=exp, costs=costs,
                  wise_mmacs=wise_mmacs, results=results, run_note=run_note(results.seconds, results.cache_dir),
                  test_acc=test_acc, train_acc=train_acc, finals=finals, gain=gain, per_ic=per_ic,
                  per_seed=per_seed, curve=curve, points=points, best_wise=best, example=classes[label],
                  shown_frames=shown, strips=strips, tables=tables, verdicts=verdicts, facts=facts)


# ------------------------------------------------------------------------------------------- figures
@kit.book_figure
def modalities_figure(result: Result) -> Figure:
    """The example clip at a few P-frames: decoded frame, its GOP's I-frame, accumulated MV and residual."""
    from actiondistill.data.compressed_codec import GOP_SIZE
    from actiondistill.viz import frame_strips

    title = f"'{result.example}': frames {', '.join(map(str, result.shown_frames))} (GOP {GOP_SIZE})"
    with kit.figure_style():
        return frame_strips(result.strips, frame_inches=1.2, title=title)


@kit.book_figure
def pkd_ce_figure(result: Result) -> Figure:
    """The ICs' test top-1 trained with CE or PKD, per network, against its final classifier and chance."""
    import seaborn as sns

    from actiondistill.models.compressed_nets import MODALITIES

    acc = result.test_acc
    pair = acc[acc["variant"].isin(REQUIRED_VARIANTS) & (acc["exit"] < 4)]
    with kit.figure_style():
        grid = sns.catplot(data=pair, x="IC", y="accuracy", hue="variant name", col="modality", kind="bar",
                           errorbar="sd", col_order=list(MODALITIES), height=3.2, aspect=0.9, palette="Set2")
        for ax, m in zip(grid.axes.flat, MODALITIES, strict=True):
            ax.axhline(result.finals.loc[m, "test"], color="0.3", linestyle="--", linewidth=1,
                       label="final classifier (IC4)")
            ax.axhline(result.chance, color="0.6", linestyle=":", linewidth=1, label="chance")
            ax.set_title(f"{NAMES[m]} network")
        grid.set_axis_labels("", "test top-1 (%)")
        grid.figure.suptitle(f"ICs trained with CE or PKD: mean and sd over {len(result.params.seeds)} seed(s); "
                             "dashed: the final classifier (IC4), dotted: chance", y=1.04)
    return grid.figure


@kit.book_figure
def controls_figure(result: Result) -> Figure:
    """Every variant's gain over CE, IC by IC, paired by seed (mean and sd over seeds)."""
    import seaborn as sns

    from actiondistill.models.compressed_nets import MODALITIES
    from actiondistill.pkd import VARIANT_LABELS

    long_gain = result.gain.stack().rename("gain").reset_index()
    long_gain["IC"] = "IC" + long_gain["exit"].astype(str)
    long_gain["variant name"] = long_gain["variant"].map(VARIANT_LABELS)
    hue_order = [VARIANT_LABELS[v] for v in result.params.variants if v != "ce"]
    with kit.figure_style():  # one variant beside CE (PKD alone) has nothing to dodge
        grid = sns.catplot(data=long_gain, x="IC", y="gain", hue="variant name", col="modality", kind="point",
                           errorbar="sd", dodge=0.4 if len(hue_order) > 1 else False, col_order=list(MODALITIES),
                           height=3.2, aspect=0.9, hue_order=hue_order, palette="Set1")
        for ax, m in zip(grid.axes.flat, MODALITIES, strict=True):
            ax.axhline(0, color="0.3", linewidth=1)
            ax.set_title(f"{NAMES[m]} network")
        grid.set_axis_labels("", "test top-1 minus CE's (points)")
    return grid.figure


@kit.book_figure
def wise_figure(result: Result) -> Figure:
    """WISE's threshold sweep (accuracy against mean MMACs per clip) over CE- and PKD-trained ICs, beside the
    fixed models: each network's final classifier and CoViAR's fusion."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    points = result.points
    with kit.figure_style():
        fig, ax = plt.subplots(figsize=(7.5, 4.6))
        sns.lineplot(data=result.curve, x="MMACs per clip", y="accuracy", hue="ICs trained with",
                     style="WISE fitted on", markers=True, dashes=True, palette="Set2", ax=ax, sort=True,
                     errorbar=None)
        ax.scatter(points["MMACs per clip"], points["accuracy"], marker="*", s=160, color="0.2", zorder=5,
                   label="final classifiers, CoViAR fusion")
        for _, row in points.iterrows():
            ax.annotate(row["label"], (row["MMACs per clip"], row["accuracy"]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        ax.axhline(result.chance, color="0.6", linestyle=":", linewidth=1)
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(f"WISE's threshold sweep (mean over {len(result.params.seeds)} seed(s)) and fixed models")
        ax.legend(fontsize=8, loc="best")
    return fig
