"""Chapter 4, spatial distillation: the CLIP framework's pseudo-labels and how good they are, the multi-task
student, its ablations, the headline against the action-only baseline, and the record chapter 7 reads.

The experiment itself (settings, training, summaries, the record) is
`actiondistill.spatial.experiment`; this module runs it in the chapter's order and turns it into the tables,
figures and sentences of book/04_spatial.ipynb. Its rules, each a small function with a test:

- `quality_bands`: where each objective's pseudo-labels stand against chance (more than 5 points above, within 5,
  more than 5 below), which `quality_paragraph` puts in words;
- `headline_setting`: the setting the headline trains and later chapters use, chosen on the validation split
  (`experiment.select_setting`), or the protocol's default where a dataset has no validation split;
- `describe_ablation`, `ground_truth_paragraph`, `heads_paragraph`: the ablations in words, each difference judged
  by the book's one noise rule (`stats.paired_by_seed`), as is the headline (`PairedDifference.sentence`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from actiondistill.chapters import kit
from actiondistill.chapters.kit import (
    ChapterParams,
    Facts,
    Md,
    frame_features,
    paired_seeds_figure,
    prepare_world,
    read_teacher,
    runs_table,
    smoke_pretrain,
    spread_column,
)
from actiondistill.spatial import experiment as sx
from actiondistill.stats import PairedDifference, paired_by_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

    from actiondistill.config import TrainConfig
    from actiondistill.spatial import SpatialTargets

#: Points from chance within which an objective's pseudo-labels count as "near chance" (`quality_bands`).
QUALITY_BAND = 5.0
#: Points of mean top-1 below which more target frames (K) "change it only a little" (`k_sentence`).
K_GAIN_SMALL = 1.0


@dataclass
class Params(ChapterParams):
    """Chapter 4's parameters; the defaults are the smoke profile's. `dataset` must be the data of chapter 2's
    teacher (its record gives the recipe every run here trains with)."""

    pretrain: dict[str, Any] = field(default_factory=smoke_pretrain)  # PretrainConfig overrides, as chapter 2
    feature_dtype: str = "bf16"     # precision of the cached frame embeddings (shared with chapter 2)
    freeze_token_embedding: bool = False  # keep the text tower's token table fixed (a cheaper training step)
    num_frames: int = 4             # frames per clip the student sees (TSN segments)
    teacher_backbone: str = "embedded-base"  # the frozen CLIP of the spatial framework (the teacher's)
    student_backbone: str = "embedded-tiny"  # the student's CLIP (frozen image encoder, as in chapter 2)
    # the framework CLIP's weights (file or tag); None: the in-project CLIP (SynthActions)
    teacher_pretrained: str | None = None
    # the student CLIP's weights (file or tag); None: the in-project CLIP (SynthActions)
    student_pretrained: str | None = None
    # real data: concept lists under data/ (objects.txt, scenes.txt); None: the world's
    vocabulary_files: list[str] | None = None
    # headline: the chosen multi-task setting and the action-only baseline
    seeds: list[int] = field(default_factory=lambda: [0])
    # every ablation setting (fewer when the budget needs it)
    ablation_seeds: list[int] = field(default_factory=lambda: [0])
    # the lambda sweep (weight of the spatial losses)
    lambdas: list[float] = field(default_factory=lambda: [0.0, 1.0])
    ablation_lambda: float = 1.0    # lambda of the other ablations (objectives, targets, frames)
    # objectives trained alone in the objectives ablation (None: each of them)
    single_objectives: list[str] | None = field(default_factory=lambda: ["shape", "scene"])
    # K, frames per clip the framework scores (the K ablation)
    target_frames: list[int] = field(default_factory=lambda: [1, 8])
    default_target_frames: int = 8  # K of the other ablations
    temperature: float = 0.01       # of the framework's softmax over concepts (CLIP's scale of 100)
    aggregate: str = "mean"         # how the K frames' probabilities become one target: mean | max
    head_input: str = "video"       # what the spatial heads read: the fused video embedding | the mean frame embedding
    fallback_fusion: str = "transf"  # the student's fusion when the teacher's has no parameters (meanP) or none to copy
    fusion_layers: int = 2          # depth of that fallback transformer
    epochs: int | None = None       # None: chapter 2's recipe (epochs, batch size, learning rate) for every run here
    batch_size: int | None = None
    lr: float | None = None


@dataclass
class Result:
    """Everything chapter 4 computes, in the order it computes it."""

    params: Params
    world_name: str                       # "SynthActions", or the real dataset's name
    choice: dict[str, Any]                # chapter 2's record (the teacher and its recipe)
    base: TrainConfig                     # chapter 2's recipe with the student CLIP: what every run trains with
    student: dict[str, Any]               # `experiment.student_model`
    freeze_image_encoder: bool
    vocabularies: dict[str, Any]          # objective -> Vocabulary
    targets: dict[str, SpatialTargets]    # `SpatialSetting.targets_key` -> targets
    truth: SpatialTargets | None          # the world's one-hot attributes (None: a real dataset)
    quality: pd.DataFrame                 # per K and objective: the framework's targets against the truth (train clips)
    at_default: pd.DataFrame | None       # `quality` at the default K, by objective
    reliability: pd.DataFrame | None      # `experiment.reliability` at the default K
    groups: dict[str, list[sx.SpatialSetting]]  # the ablations
    select_split: str | None              # where the headline setting is chosen ("val"; None: nowhere)
    rule: str                             # the selection rule in words
    runs: pd.DataFrame                    # every (setting, seed) run: ablations, then the headline's
    ablation: pd.DataFrame                # summary of the ablation runs per setting (what `headline_setting` reads)
    best: sx.SpatialSetting               # the headline's (and chapter 7's) setting
    baseline: sx.SpatialSetting           # lambda = 0, the action-only student
    summary: pd.DataFrame                 # headline summary (best and baseline over `seeds`)
    outcome: PairedDifference             # best - baseline on test top-1, paired by seed
    zs_outcome: PairedDifference          # the same on the zero-shot split (0 seeds: no held-out classes)
    ablation_table: pd.DataFrame          # summary of every setting over the ablation seeds
    record_path: Path
    facts: Facts
    tables: dict[str, Any]                # name -> DataFrame or Styler, ready to show (None: nothing to show)
    verdicts: dict[str, str]              # the sentences the chapter's text glues, by topic

    @property
    def head(self) -> pd.DataFrame:
        """The headline's runs: the chosen setting and the baseline, over `seeds`."""
        return headline_runs(self.runs, [self.baseline.name, self.best.name], self.params.seeds)

    @property
    def ablation_baseline_top1(self) -> float:
        """The baseline's mean test top-1 over the ablation seeds (NaN when it has no run there)."""
        return baseline_top1(self.ablation_table, self.baseline.name)

    @property
    def ablation_runs(self) -> pd.DataFrame:
        """Every run of the ablation seeds."""
        return self.runs[self.runs["seed"].isin(self.params.ablation_seeds)]


def headline_runs(runs: pd.DataFrame, names: Sequence[str], seeds: Sequence[int]) -> pd.DataFrame:
    """The runs of the settings `names` over the headline's `seeds`."""
    return runs[runs["setting"].isin(list(names)) & runs["seed"].isin(list(seeds))]


def baseline_top1(table: pd.DataFrame, name: str) -> float:
    """The baseline's mean test top-1 in a summary table; NaN when it has no row there."""
    return float(table.loc[name, "top1_mean"]) if name in table.index else np.nan


# ------------------------------------------------------------------------------------------- rules and prose
def quality_bands(margin: pd.Series, band: float = QUALITY_BAND) -> dict[str, list[str]]:
    """Objectives by where their pseudo-labels' top-1 stands against chance (`margin`: top-1 minus chance, points):
    "above" (by more than `band`), "near" (within `band`, either way) and "below" (by more than `band`)."""
    return {"above": [n for n in margin.index if margin[n] > band],
            "near": [n for n in margin.index if abs(margin[n]) <= band],
            "below": [n for n in margin.index if margin[n] < -band]}


def k_sentence(k_gain: float) -> str:
    """What going from the fewest to the most target frames did to the mean top-1 (`k_gain`, points)."""
    if abs(k_gain) < K_GAIN_SMALL:
        return (f"changes the mean top-1 by only {k_gain:+.1f} points: shape, colour and scene do not change within "
                "a clip, so one frame already shows them and more frames mostly average noise away")
    return (f"{'raises' if k_gain > 0 else 'lowers'} the mean top-1 by {abs(k_gain):.1f} points: although the "
            "attributes do not change within a clip, single frames are " +
            ("noisy enough for averaging to help" if k_gain > 0 else "sharper than their average"))


def quality_paragraph(quality: pd.DataFrame, target_frames: Sequence[int], default_k: int) -> str:
    """The pseudo-labels' quality in words: each objective's band against chance (`quality_bands`) at the default
    K, the mean margin, the worst calibrated objective and what more frames changed. `quality` has one row per K and
    objective (columns K, objective, top1, chance, ece)."""
    at_default = quality[quality["K"] == default_k].set_index("objective")
    margin = at_default["top1"] - at_default["chance"]
    bands = quality_bands(margin)
    parts = []
    if bands["above"]:
        parts.append(f"clearly above chance (by more than {QUALITY_BAND:g} points) for " + ", ".join(
            f"{n} ({at_default.loc[n, 'top1']:.0f}% against {at_default.loc[n, 'chance']:.0f}%)"
            for n in bands["above"]))
    if bands["near"]:
        parts.append(f"within {QUALITY_BAND:g} points of chance for " + ", ".join(bands["near"]))
    if bands["below"]:
        parts.append(f"more than {QUALITY_BAND:g} points below chance for " + ", ".join(bands["below"]))
    mean_margin = float(margin.mean())
    by_k = quality.groupby("K")["top1"].mean()
    k_gain = float(by_k.loc[max(target_frames)] - by_k.loc[min(target_frames)])
    return (
        f"At K = {default_k} frames the framework's pseudo-labels are {'; '.join(parts)}. On average over "
        f"the objectives they are {abs(mean_margin):.1f} points {'above' if mean_margin >= 0 else 'below'} chance; the "
        f"worst calibrated objective is {at_default['ece'].idxmax()} (ECE {at_default['ece'].max():.2f}). Going from "
        f"K = {min(target_frames)} to K = {max(target_frames)} frames {k_sentence(k_gain)}. On the left, top-1 per "
        "objective and K against chance (black marks); on the right, the reliability diagram at the default K (a "
        "calibrated framework lies on the diagonal; the dot size is the share of clips).")


def no_truth_quality_paragraph(world_name: str) -> str:
    return (f"{world_name} has no ground truth for these concepts, so the pseudo-labels cannot be scored here; only "
            "the ablations below say whether they help.")


def selection_split(synthetic_world: bool) -> str | None:
    """Where the headline setting is chosen: SynthActions' validation split; HMDB51 and UCF101 have train and test
    splits only, so nowhere (None)."""
    return "val" if synthetic_world else None


def rule_text(select_split: str | None, world_name: str) -> str:
    """The selection rule in words, stated before any result."""
    if select_split:
        return sx.selection_rule(f"{select_split}_top1")
    return (f"{world_name} has no validation split, so nothing is chosen on data: the headline takes the "
            "protocol's default setting, fixed before any result")


def headline_setting(groups: Mapping[str, Sequence[sx.SpatialSetting]], ablation: pd.DataFrame,
                     select_split: str | None) -> sx.SpatialSetting:
    """The setting the headline trains against the baseline and later chapters use: the best multi-task setting
    with framework targets by mean top-1 on `select_split` (`experiment.select_setting` on the ablation summary),
    never on the test split the headline reports; with no selection split, the protocol's default setting (all
    objectives, the ablation lambda, the default K: the last of the objectives ablation), fixed before any result."""
    if not select_split:
        return groups["objectives"][-1]
    name = sx.select_setting(ablation, f"{select_split}_top1")
    return next(s for s in sx.unique_settings(groups) if s.name == name)


def describe_ablation(runs: pd.DataFrame, frame: pd.DataFrame, names: Sequence[str], label: str) -> str:
    """One ablation in words: its best and worst setting by mean test top-1 (`frame`: their summary rows, `names`:
    how the text names them) and the gap between them, paired by seed over `runs` and judged by the noise rule."""
    top = frame["top1_mean"].rename(index=dict(zip(frame.index, names, strict=True)))
    if top.max() == top.min():
        return f"{label}: every setting reaches {top.max():.1f}%"
    gap = paired_by_seed(runs, "setting", frame["top1_mean"].idxmax(), frame["top1_mean"].idxmin())
    text = f"{label}: best {top.idxmax()} ({top.max():.1f}%), worst {top.idxmin()} ({top.min():.1f}%)"
    return text + f", a gap of {gap.mean:.1f} points, {gap.phrase()}"


def ground_truth_sentence(gt: PairedDifference) -> str:
    """Ground-truth targets against the framework's, for the list of ablation sentences."""
    return f"ground-truth targets against the framework's: {gt.mean:+.1f} points, {gt.phrase()}"


def ground_truth_paragraph(gt: PairedDifference | None, world_name: str) -> str:
    """What perfect targets add over the framework's (`gt`: ground truth minus framework, paired by seed), as the
    noise rule judges it; None: the dataset has no ground truth."""
    if gt is None:
        return (f"{world_name} has no ground truth, so the framework's targets cannot be compared with perfect "
                "ones here.")
    reading = {"unknown": "with one seed this is only an indication of",
               "none": "within noise, so there is no sign of"}.get(gt.verdict, "beyond noise: a measure of")
    return ("Ground-truth targets are the best any framework could produce. Training on them instead of the "
            f"framework's targets changes test top-1 by {gt.mean:+.1f} points, {reading} what better "
            "pseudo-labels could add in this setting.")


def heads_paragraph(heads: pd.DataFrame | None, framework_top1: pd.Series | None, default_name: str | None,
                    gt_name: str | None, world_name: str) -> str:
    """The spatial heads against the truth: the default setting's mean over attributes beside its targets' own
    top-1, and the ground-truth-trained heads'; None: the dataset has no ground truth to score them against."""
    if heads is None or framework_top1 is None:
        return f"{world_name} has no ground truth to score the spatial heads against."
    return (f"Averaged over the attributes, the heads of the default setting reach "
            f"{heads.loc[default_name].mean():.1f}% against the truth, for targets that are themselves right "
            f"{framework_top1.mean():.1f}% of the time; trained on the ground truth, the heads reach "
            f"{heads.loc[gt_name].mean():.1f}%.")


def gain_record(diff: PairedDifference, verdict: str) -> dict[str, Any]:
    """A headline difference as chapter 4's record keeps it: chapter 7 reads its mean, seeds, helps and hurts;
    `verdict` is the sentence the chapter printed."""
    return {"mean": diff.mean, "std": diff.std, "se": diff.se, "seeds": diff.seeds, "helps": diff.verdict == "gain",
            "hurts": diff.verdict == "loss", "verdict": verdict}


def capitalised(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def gain_spread(std: float) -> str:
    """The paired gains' spread in words, for the headline."""
    return "one seed, so no standard deviation" if np.isnan(std) else f"standard deviation {std:.1f}"


def clip_state(reused: bool | None, weights: str | None = None) -> str:
    """Where the framework's CLIP came from: in-project (reused or trained now), or the given weights."""
    if reused is None:
        return f"weights `{weights}`"
    return ("pretrained in-project on the world's frames and captions, "
            f"{'reused from the cache' if reused else 'trained by this run'}")


def encoder_regime(freeze_image_encoder: bool) -> str:
    return ("with its image encoder frozen and its frame embeddings cached, as in chapter 2" if freeze_image_encoder
            else "fine-tuned end to end on pixels, as chapter 2 trained its teacher")


def head_input_text(head_input: str) -> str:
    return ("the fused video embedding, the same vector the action logits come from" if head_input == "video" else
            "the mean of the frame embeddings before the fusion (so, with a frozen image encoder, the spatial losses "
            "cannot reach the action)")


# ------------------------------------------------------------------------------------------- tables
def vocabulary_table(vocabularies: Mapping[str, Any]) -> Styler:
    return pd.DataFrame({"objective": list(vocabularies),
                         "concepts": [", ".join(v.concepts) for v in vocabularies.values()],
                         "prompt templates": [" | ".join(v.templates) for v in vocabularies.values()]
                         }).pipe(kit.table)


def quality_view(quality: pd.DataFrame, target_frames: Sequence[int], default_k: int) -> pd.DataFrame:
    """The quality at the default K per objective, with top-1 at every other K beside it."""
    at_default = quality[quality["K"] == default_k].set_index("objective")
    view = at_default[["classes", "top1", "chance", "majority", "true_prob", "ece"]].copy()
    for k in target_frames:
        if k != default_k:
            view[f"top-1 at K={k}"] = quality[quality["K"] == k].set_index("objective")["top1"]
    return view.rename(columns={"classes": "concepts", "top1": f"top-1 at K={default_k} (%)", "chance": "chance (%)",
                                "majority": "majority (%)", "true_prob": "true prob.", "ece": "ECE"})


def recipe_table(choice: Mapping[str, Any], student: Mapping[str, Any], base: TrainConfig, params: Params,
                 freeze_image_encoder: bool) -> Styler:
    values = [choice["teacher"], params.student_backbone, student["fusion"], params.head_input, params.num_frames,
              base.epochs, base.data.batch_size, base.optim.lr, base.optim.lr * base.optim.fusion_lr_mult,
              base.optim.weight_decay, "frozen" if freeze_image_encoder else "fine-tuned",
              "frozen" if params.freeze_token_embedding else "trained", params.temperature, params.aggregate]
    return pd.DataFrame({"setting": ["chapter-2 teacher", "student CLIP", "student fusion", "heads read",
                                     "frames per clip", "epochs", "batch size", "text encoder lr",
                                     "fusion and heads lr", "weight decay", "image encoder", "token embedding table",
                                     "targets' temperature", "frame aggregation"],
                         "value": [str(v) if isinstance(v, str) else f"{v:g}" for v in values]}
                        ).pipe(kit.table)


def beside_table(summary: pd.DataFrame, names: Sequence[str], choice: Mapping[str, Any],
                 world_name: str) -> pd.DataFrame:
    """The headline's settings (`names`, rows of `summary`) beside chapter 2's teacher and the reported numbers."""
    from actiondistill import teacher_choice as tc

    rows = summary.loc[list(names)]
    measured = [{"source": "measured here", "model": f"student, {name}", "benchmark": world_name,
                 "seeds": str(int(seeds)), "top-1 (%)": top1, "zero-shot top-1 (%)": zs}
                for name, seeds, top1, zs in zip(rows.index, rows["seeds"], spread_column(rows, "top1"),
                                                 spread_column(rows, "zs_top1"), strict=True)]
    teacher_row = next(r for r in choice["summary"] if r["model"] == choice["teacher"])
    measured.append({"source": "measured here (chapter 2)", "model": f"teacher, {tc.LABELS.get(choice['teacher'])}",
                     "benchmark": world_name, "seeds": str(int(teacher_row["seeds"])),
                     "top-1 (%)": f"{teacher_row['top1_mean']:.1f}",
                     "zero-shot top-1 (%)": f"{teacher_row['zs_top1_mean']:.1f}"})
    measured += [{"source": r["source"], "model": r["model"], "benchmark": r["benchmark"], "seeds": "",
                  "top-1 (%)": f"{r['top1']:.1f}", "zero-shot top-1 (%)": ""}
                 for r in sx.reported_table().to_dict(orient="records")]
    return pd.DataFrame(measured)


def heads_table(runs: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """The trained heads' test top-1 per attribute (columns) and multi-task setting (rows, in `order`), mean over
    seeds."""
    head_cols = {c: c.removeprefix("head_").removesuffix("_top1") for c in runs.columns
                 if c.startswith("head_") and c.endswith("_top1")}
    heads = runs[runs["weight"] > 0].groupby("setting", sort=False)[list(head_cols)].mean().rename(columns=head_cols)
    return heads.loc[[n for n in order if n in heads.index]]


def settings_table(runs: pd.DataFrame) -> Styler:
    everything = sx.summarise_settings(runs, metrics=("top1", "zs_top1", "val_top1"))
    cols = ["seeds", "top1_mean", "top1_std", "zs_top1_mean", "val_top1_mean"]
    return (everything[cols].rename(columns={"top1_mean": "test top-1", "top1_std": "sd",
                                             "zs_top1_mean": "zero-shot top-1", "val_top1_mean": "val top-1"})
            .style.format(precision=1, na_rep="").highlight_max(subset=["val top-1"], color="#dde8f6"))


def ablation_rows(table: pd.DataFrame, groups: Mapping[str, Sequence[sx.SpatialSetting]], group: str) -> pd.DataFrame:
    """The summary rows of one ablation's settings, in its order."""
    rows = table.loc[[s.name for s in groups[group]]].assign(group=group)
    if group == "objectives":
        rows["objectives"] = rows["objectives"].replace({"all": "all objectives"})
    return rows


# ------------------------------------------------------------------------------------------- the experiment
def check_parameters(params: Params) -> None:
    """Refuse parameters that cannot run: a real dataset without its CLIP weights and vocabularies, a default K that
    the K ablation does not compute (chapter 2's teacher on another dataset: `kit.read_teacher`)."""
    if not params.synthetic_world and (params.teacher_pretrained is None or params.student_pretrained is None
                                       or not params.vocabulary_files):
        raise ValueError(f"dataset={params.dataset!r}: set teacher_pretrained, student_pretrained (CLIP weights: files "
                         "or tags) and vocabulary_files (concept lists under data/); only SynthActions has "
                         "in-project ones")
    if params.default_target_frames not in params.target_frames:
        raise ValueError(f"default_target_frames={params.default_target_frames} must be one of "
                         f"target_frames={params.target_frames}")


def run(params: Params) -> Result:
    """The chapter: targets and their quality, the student, the ablations, the headline and the record."""
    from actiondistill import teacher_choice as tc
    from actiondistill.spatial import ClipList, SpatialTargetCache, ground_truth_targets, target_quality
    from actiondistill.spatial.sources import chapter_vocabularies, dataset_clips
    chapter_started = time.perf_counter()
    p = params
    synthetic = p.synthetic_world
    world_name = "SynthActions" if synthetic else p.dataset.upper()
    records_as = p.records_as()
    check_parameters(p)
    chosen = read_teacher(p, prepare_world(p, clips=False))
    choice, base = chosen.choice, chosen.config
    freeze_image_encoder = bool(choice.get("freeze_image_encoder", True))
    facts, tables, verdicts = Facts(), {}, {}

    # the framework's targets
    world = prepare_world(p, p.pretrain)
    manifest_path, teacher_features, truth = world.manifest, None, None
    if synthetic:
        teacher_weights = p.teacher_pretrained or world.checkpoint(p.teacher_backbone)
        student_weights = p.student_pretrained or world.checkpoint(p.student_backbone)
        state = clip_state(bool(world.clips["reused"]))
        clip_list = ClipList.from_manifest(manifest_path)
        target_size = p.size
        teacher_features, _ = frame_features(world, p.teacher_backbone, teacher_weights, p.size, p.device,
                                             p.feature_dtype)
    else:
        teacher_weights, student_weights = p.teacher_pretrained, p.student_pretrained
        state = clip_state(None, teacher_weights)
        clip_list = dataset_clips(base)
        target_size = base.data.size
    facts.add(ch4_clip_reused=Md(state), ch4_teacher_backbone=Md(f"`{p.teacher_backbone}`"))

    vocabularies = chapter_vocabularies(p.vocabulary_files, manifest_path)
    targets, caches = {}, {}
    started = time.perf_counter()
    for k in p.target_frames:
        cache = SpatialTargetCache(clip_list, vocabularies, p.teacher_backbone, teacher_weights, size=target_size,
                                   frames=k, temperature=p.temperature, aggregate=p.aggregate, dtype=p.feature_dtype,
                                   features=teacher_features, device=p.device, progress=False)
        targets[sx.targets_key(sx.FRAMEWORK, k)] = cache.get()
        caches[k] = cache
    if synthetic:
        truth = ground_truth_targets(manifest_path)
        targets[sx.GROUND_TRUTH] = truth
    facts.add(ch4_targets_s=time.perf_counter() - started,
              ch4_targets_reused=Md("all reused from the cache" if not any(c.computed for c in caches.values())
                                    else "computed by this run"),
              ch4_default_k=p.default_target_frames, ch4_k_list=Md(", ".join(map(str, p.target_frames))),
              ch4_clips=len(clip_list))
    tables["vocabularies"] = vocabulary_table(vocabularies)

    # how good they are
    quality, at_default, curve, tables["quality"] = pd.DataFrame(), None, None, None
    if synthetic:
        rows = []
        for k in p.target_frames:
            scored = target_quality(targets[sx.targets_key(sx.FRAMEWORK, k)], manifest_path, splits=["train"])
            rows += [{"K": k, "objective": name, **q} for name, q in scored.items()]
        quality = pd.DataFrame(rows)
        at_default = quality[quality["K"] == p.default_target_frames].set_index("objective")
        view = quality_view(quality, p.target_frames, p.default_target_frames)
        tables["quality"] = view.style.format({c: "{:.1f}" if "%" in c or "top-1" in c else "{:.2f}"
                                               for c in view.columns if c != "concepts"})
        verdicts["quality"] = quality_paragraph(quality, p.target_frames, p.default_target_frames)
        curve = sx.reliability(targets[sx.targets_key(sx.FRAMEWORK, p.default_target_frames)], truth)
    else:
        verdicts["quality"] = no_truth_quality_paragraph(world_name)
    facts.add(ch4_quality_paragraph=Md(verdicts["quality"]))

    # the student and its recipe
    base = dataclasses.replace(
        base, device=p.device, epochs=p.epochs or base.epochs,
        data=dataclasses.replace(base.data, manifest=str(manifest_path) if synthetic else base.data.manifest,
                                 num_frames=p.num_frames, batch_size=p.batch_size or base.data.batch_size),
        optim=dataclasses.replace(base.optim, lr=p.lr or base.optim.lr),
        model=dataclasses.replace(base.model, backbone=p.student_backbone, pretrained=str(student_weights)))
    student = sx.student_model(choice, p.student_backbone, str(student_weights), fallback=p.fallback_fusion,
                               fusion_layers=p.fusion_layers, head_input=p.head_input)
    student_features = None
    if freeze_image_encoder:
        if not synthetic:
            raise ValueError("chapter 2 froze the image encoder on a dataset without a SynthActions manifest; the "
                             "real-data profiles fine-tune end to end (freeze_image_encoder=False)")
        student_features, _ = frame_features(world, p.student_backbone, student_weights, p.size, p.device,
                                             p.feature_dtype)
    facts.add(ch4_encoder_regime=Md(encoder_regime(freeze_image_encoder)),
              ch4_student_backbone=Md(f"`{p.student_backbone}`"), ch4_head_input=Md(head_input_text(p.head_input)),
              ch4_fusion_reason=Md(student["reason"]),
              ch4_teacher=Md(tc.LABELS.get(choice["teacher"], choice["teacher"])))
    tables["recipe"] = recipe_table(choice, student, base, p, freeze_image_encoder)

    # the ablations, the choice and the headline's runs
    groups = sx.ablation_settings(p.lambdas, objectives=list(p.single_objectives or vocabularies),
                                  frames=p.target_frames, weight=p.ablation_lambda,
                                  default_frames=p.default_target_frames, ground_truth=synthetic)
    settings = sx.unique_settings(groups)
    split = selection_split(synthetic)
    rule = rule_text(split, world_name)
    facts.add(ch4_ablation_lambda=float(p.ablation_lambda),
              ch4_single_objectives=Md("each objective" if p.single_objectives is None
                                       else ", ".join(p.single_objectives)),
              ch4_ablation_seed_count=len(p.ablation_seeds), ch4_seed_count=len(p.seeds), ch4_rule=Md(rule))
    common = {"features": student_features, "head_truth": truth, "select_split": split,
              "freeze_image_encoder": freeze_image_encoder, "freeze_token_embedding": p.freeze_token_embedding,
              "run_prefix": f"ch4-{records_as}", "progress": False, "workers": p.grid_workers}
    started = time.perf_counter()
    runs = sx.run_spatial(base, student, settings, p.ablation_seeds, targets, **common)
    ablation_s = time.perf_counter() - started
    ablation = sx.summarise_settings(runs, metrics=("top1", "zs_top1", "val_top1"))
    best = headline_setting(groups, ablation, split)
    baseline = sx.SpatialSetting(0.0, frames=p.default_target_frames)  # action only: its K is only a key
    started = time.perf_counter()
    runs = sx.run_spatial(base, student, [baseline, best], p.seeds, targets, previous=runs, **common)
    headline_s = time.perf_counter() - started
    facts.add(ch4_runs=len(runs), ch4_training_s=ablation_s + headline_s,
              ch4_run_s=float((runs["train_s"] + runs["eval_s"]).mean()), ch4_best=Md(f"**{best.name}**"))
    tables["runs"] = runs_table(runs, ["setting", "seed", "top1", "zs_top1", "val_top1", "train_s", "eval_s"],
                                {"top1": "test top-1"})

    # the headline
    head = headline_runs(runs, [baseline.name, best.name], p.seeds)
    summary = sx.summarise_settings(head, metrics=("top1", "zs_top1"))
    outcome = paired_by_seed(head, "setting", best.name, baseline.name)
    zs_outcome = paired_by_seed(head, "setting", best.name, baseline.name, "zs_top1")  # 0 seeds: no held-out classes
    sentence = outcome.sentence("spatial distillation")
    zs_sentence = (zs_outcome.sentence("it") if zs_outcome.seeds else
                   f"nothing is measured: {world_name} has no held-out classes")
    tables["headline"] = beside_table(summary, [baseline.name, best.name], choice, world_name
                                      ).pipe(kit.table)
    teacher_row = next(r for r in choice["summary"] if r["model"] == choice["teacher"])
    verdicts["headline"] = capitalised(sentence)
    verdicts["zero_shot"] = zs_sentence
    facts.add(ch4_base_top1=float(summary.loc[baseline.name, "top1_mean"]),
              ch4_best_top1=float(summary.loc[best.name, "top1_mean"]), ch4_gain=outcome.mean,
              ch4_gain_sd=Md(gain_spread(outcome.std)), ch4_verdict=Md(verdicts["headline"]),
              ch4_zs_verdict=Md(verdicts["zero_shot"]), ch4_teacher_top1=float(teacher_row["top1_mean"]),
              ch4_chance=100 / int(head["classes"].iloc[0]))

    # the ablations in words
    abl = runs[runs["seed"].isin(p.ablation_seeds)]
    table = sx.summarise_settings(abl, metrics=("top1", "zs_top1", "val_top1"))
    base_top1 = baseline_top1(table, baseline.name)
    lam, objs, ks = (ablation_rows(table, groups, g) for g in ("lambda", "objectives", "frames"))
    sentences = [describe_ablation(abl, lam, [f"λ={w:g}" for w in lam["weight"]], "λ"),
                 describe_ablation(abl, objs, list(objs["objectives"]), "objectives"),
                 describe_ablation(abl, ks, [f"K={k}" for k in ks["target_frames"]], "K")]
    gt = None
    if "targets" in groups:
        src = ablation_rows(table, groups, "targets")
        gt = paired_by_seed(abl, "setting", src.index[src["source"] == sx.GROUND_TRUTH][0],
                            src.index[src["source"] == sx.FRAMEWORK][0])
        sentences.append(ground_truth_sentence(gt))
    verdicts["ablations"] = "; ".join(sentences) + "."
    verdicts["ground_truth"] = ground_truth_paragraph(gt, world_name)
    facts.add(ch4_gt_paragraph=Md(verdicts["ground_truth"]), ch4_ablation_sentences=Md(verdicts["ablations"]),
              ch4_base_top1_abl=base_top1)

    # what the heads learned
    tables["heads"] = None
    if synthetic:
        heads = heads_table(abl, table.index)
        framework_top1 = at_default["top1"]
        reference = pd.DataFrame([framework_top1.rename(f"framework targets, K={p.default_target_frames} "
                                                        "(train clips)"), at_default["chance"].rename("chance")])
        tables["heads"] = (pd.concat([heads, reference]).style.format("{:.1f}", na_rep="")
                           .set_caption("spatial heads' test top-1 per attribute (%)"))
        verdicts["heads"] = heads_paragraph(heads, framework_top1, groups["objectives"][-1].name,
                                            groups["targets"][-1].name, world_name)
    else:
        verdicts["heads"] = heads_paragraph(None, None, None, None, world_name)
    facts.add(ch4_heads_paragraph=Md(verdicts["heads"]))

    # the record
    record_path = sx.write_results(
        sx.results_path(records_as), best, student, base, runs, sx.summarise_settings(runs),
        headline={"baseline": baseline.name, "setting": best.name, "seeds": list(p.seeds),
                  "baseline_top1_mean": float(summary.loc[baseline.name, "top1_mean"]),
                  "baseline_top1_std": float(summary.loc[baseline.name, "top1_std"]),
                  "top1_mean": float(summary.loc[best.name, "top1_mean"]),
                  "top1_std": float(summary.loc[best.name, "top1_std"]),
                  "gain": gain_record(outcome, sentence),
                  "zero_shot_gain": gain_record(zs_outcome, zs_sentence) if zs_outcome.seeds else
                  {"verdict": zs_sentence},
                  "helps": outcome.verdict == "gain"},
        targets={"backbone": p.teacher_backbone, "pretrained": str(teacher_weights), "frames": best.frames,
                 "temperature": p.temperature, "aggregate": p.aggregate, "objectives": list(vocabularies),
                 "vocabulary_files": list(p.vocabulary_files) if p.vocabulary_files else None, "size": target_size,
                 "dtype": p.feature_dtype, "key": caches[best.frames].key if best.source == sx.FRAMEWORK else None},
        extra={"profile": p.profile, "rule": rule, "ablation_seeds": list(p.ablation_seeds),
               "teacher": choice["teacher"], "quality": quality.to_dict(orient="records")})
    facts.add(ch4_results_path=Md(f"`{record_path.relative_to(record_path.parents[2])}`"),
              ch4_chapter_s=time.perf_counter() - chapter_started)
    tables["settings"] = settings_table(runs)

    return Result(params=p, world_name=world_name, choice=choice, base=base, student=student,
                  freeze_image_encoder=freeze_image_encoder, vocabularies=vocabularies, targets=targets, truth=truth,
                  quality=quality, at_default=at_default, reliability=curve, groups=groups, select_split=split,
                  rule=rule, runs=runs, ablation=ablation, best=best, baseline=baseline, summary=summary,
                  outcome=outcome, zs_outcome=zs_outcome, ablation_table=table, record_path=record_path,
                  facts=facts, tables=tables, verdicts=verdicts)


# ------------------------------------------------------------------------------------------- figures
def _theme() -> None:
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")


def _done(fig: Figure) -> Figure:
    """Lay the figure out and let it go from pyplot, so that a notebook shows it once: as the cell's value."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    plt.close(fig)
    return fig


def quality_figure(result: Result) -> Figure | None:
    """Left: the pseudo-labels' top-1 per objective and K against chance (black marks); right: the reliability
    diagram at the default K. None where the dataset has no ground truth to score them against."""
    if result.reliability is None or result.at_default is None:
        return None
    import matplotlib.pyplot as plt
    import seaborn as sns

    _theme()
    quality, at_default, curve = result.quality, result.at_default, result.reliability
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    sns.barplot(data=quality.assign(K=quality["K"].map("K={}".format)), x="objective", y="top1", hue="K",
                palette="crest", ax=axes[0])
    axes[0].scatter(range(len(at_default)), at_default["chance"], marker="_", s=900, color="black", zorder=5,
                    label="chance")
    axes[0].set(ylabel="pseudo-label top-1 (%)", xlabel="", title="framework against the ground truth (train clips)")
    axes[0].legend(fontsize=8)
    sns.scatterplot(data=curve, x="confidence", y="accuracy", hue="objective", size="share", sizes=(20, 200),
                    ax=axes[1], legend="brief")
    sns.lineplot(data=curve, x="confidence", y="accuracy", hue="objective", ax=axes[1], legend=False)
    axes[1].plot([0, 1], [0, 100], ls="--", color="0.5", lw=1)
    axes[1].set(xlim=(0, 1), ylim=(0, 100), xlabel="target confidence (max probability)", ylabel="accuracy (%)",
                title=f"reliability at K={result.params.default_target_frames}")
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=8)
    return _done(fig)


def headline_figure(result: Result) -> Figure:
    """The chosen setting against the baseline, seed by seed (grey lines join the two runs of one seed), with the
    mean and standard deviation in red; test top-1, and zero-shot top-1 where the dataset has held-out classes."""
    head, baseline, best = result.head, result.baseline, result.best
    labels = {baseline.name: "λ=0 (action only)", best.name: f"chosen: {best.name}"}
    paired = head.assign(setting=head["setting"].map(labels))
    panels = [("top1", "test top-1 (%)")] + ([("zs_top1", "zero-shot top-1 (%)")] if paired["zs_top1"].notna().any()
                                             else [])  # real datasets have no held-out classes
    return paired_seeds_figure(paired, "setting", panels, list(labels.values()),
                               f"multi-task student against its λ = 0 baseline ({len(result.params.seeds)} "
                               "seed(s); red: mean ± sd)")


def ablation_figure(result: Result) -> Figure:
    """Test top-1 per ablation (lambda with validation beside it, objectives, target source, K), mean and standard
    deviation over the ablation seeds; dashed: the lambda = 0 baseline, dotted: chance."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    _theme()
    p, abl, table, groups = result.params, result.ablation_runs, result.ablation_table, result.groups
    base_top1 = result.ablation_baseline_top1
    lam, objs, ks = (ablation_rows(table, groups, g) for g in ("lambda", "objectives", "frames"))
    src = ablation_rows(table, groups, "targets") if "targets" in groups else None
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), sharey=True)
    sub = abl[abl["setting"].isin(lam.index)].sort_values("weight")
    sub = pd.concat([sub.assign(split="test", acc=sub["top1"]), sub.assign(split="validation", acc=sub["val_top1"])])
    sns.pointplot(data=sub.assign(lam=sub["weight"].map("{:g}".format)), x="lam", y="acc", hue="split",
                  errorbar="sd", dodge=0.2, palette=["C0", "C1"], ax=axes[0])
    axes[0].set(xlabel="λ", ylabel="top-1 (%)", title="weight of the spatial losses")
    axes[0].legend(fontsize=8)
    sub = abl[abl["setting"].isin(objs.index)].replace({"objectives": {"all": "all objectives"}})
    sns.barplot(data=sub, x="objectives", y="top1", errorbar="sd", color="C2", ax=axes[1])
    axes[1].set(xlabel="", title=f"objectives (λ={p.ablation_lambda:g})")
    axes[1].tick_params(axis="x", rotation=30)
    if src is not None:
        sub = abl[abl["setting"].isin(src.index)].assign(targets=lambda d: d["source"].map(
            {sx.FRAMEWORK: f"CLIP framework (K={p.default_target_frames})", sx.GROUND_TRUTH: "ground truth"}))
        sns.barplot(data=sub, x="targets", y="top1", errorbar="sd", color="C4", ax=axes[2])
        axes[2].set(xlabel="", title="where the targets come from")
    else:
        axes[2].set_axis_off()  # real data: no ground truth to compare the framework's targets with
    sub = abl[abl["setting"].isin(ks.index)]
    sns.pointplot(data=sub, x="target_frames", y="top1", errorbar="sd", color="C1", ax=axes[3])
    axes[3].set(xlabel="K (frames scored per clip)", title="frames the framework uses")
    for ax in axes:
        ax.axhline(base_top1, ls="--", color="0.3", lw=1)
        ax.axhline(100 / int(result.runs["classes"].iloc[0]), ls=":", color="0.6", lw=1)
    fig.suptitle(f"test top-1 per ablation ({len(p.ablation_seeds)} seed(s)); dashed: λ = 0, dotted: chance", y=1.03)
    return _done(fig)
