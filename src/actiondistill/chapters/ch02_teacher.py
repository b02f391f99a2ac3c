"""Chapter 2, "Choosing a teacher": seven candidates trained with one recipe, measured the same way, chosen by a
rule stated before the results.

`run(params)` holds the whole chapter: the world and the candidates' CLIP, the cached frame embeddings (frozen
regime), the recipe, the training runs (`teacher_choice.run_choice`), the summary over seeds, the latency table
(`chapters.latency`, through `teacher_choice.latency_table`), the selection rule applied (`teacher_choice.
select_teacher`), the record later chapters read (`teacher_choice.write_choice`), the tables and the facts its text
glues. The sentences (the CLIP report's verdict, the ranking, the headline verdict) are small pure functions below.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from actiondistill import teacher_choice as tc
from actiondistill.chapters import kit
from actiondistill.chapters.kit import ChapterParams, Facts, Md

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from actiondistill.config import TrainConfig

#: The candidates whose video model is the mean over frames: they cannot see the order of frames.
ORDER_BLIND = ("actionclip-meanp", "vificlip")


@dataclass
class Params(ChapterParams):
    """Chapter 2's parameters; the defaults are the smoke profile's."""

    data_root: str | None = None       # hmdb51/ucf101: folder under data/ (default: the dataset's name)
    split: int = 1                     # hmdb51/ucf101: official split 1, 2 or 3
    backbone: str = "embedded-base"    # the CLIP every candidate is built on
    pretrained: str | None = None      # its weights; None: the in-project CLIP pretrained on the world
                                       # (SynthActions only)
    # PretrainConfig overrides ({}: the recipe's own)
    pretrain: dict[str, Any] = field(default_factory=kit.smoke_pretrain)
    freeze_image_encoder: bool = True  # embedded: frozen CLIP image encoder + cached frame features; real
                                       # profiles: False
    feature_dtype: str = "bf16"        # precision of the cached frame embeddings (fp32, bf16, fp16)
    freeze_token_embedding: bool = False   # keep the text tower's token table fixed (a cheaper training step)
    logit_scale_init: float | None = None  # training logit scale to start from (None: the CLIP's own; ActionCLIP's
                                           # CLIP has 100)
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds of every candidate
    xclip_seeds: list[int] | None = None   # X-CLIP's seeds when its cost forces fewer (None: `seeds`)
    xclip_epochs: int | None = None    # X-CLIP's epochs when its cost forces fewer (None: `epochs`)
    num_frames: int = 4                # frames per clip the candidates see (TSN segments)
    epochs: int = 1
    batch_size: int = 24
    lr: float = 1e-4                   # text encoder (and any fine-tuned CLIP weights)
    fusion_lr_mult: float = 10.0       # fusion heads and X-CLIP's modules train this much faster
    weight_decay: float = 0.2
    warmup_epochs: float = 0.5
    amp_dtype: str | None = None       # "bfloat16": train under bf16 autocast, on a CPU too (None: the Trainer's
                                       # default, fp16 autocast on a GPU and fp32 on a CPU)
    time_reversal: float = 0.0         # probability that a training clip plays backwards, its label swapped
                                       # (data.time_reversal; measured not to help the teacher, README)
    val_every: int = 3                 # validation top-1 every this many epochs, on SynthActions' val split (0: none):
                                       # the learning curves of every chapter that trains with this recipe
    fusion_layers: int = 2             # depth of ActionCLIP's transformer heads (6 in the paper)
    latency_frames: list[int] = field(default_factory=lambda: [16])  # frame counts timed (batch 1)
    latency_device: str = "cpu"        # where latency is measured
    latency_calls: int = 2             # rounds of one timed call per model, the models taking turns call by call
                                       # (1 thread)
    rule_frames: int = 16              # the selection rule compares latency at this many frames
    max_slowdown: float = 1.25         # ... and keeps candidates at most this much slower than the fastest
    tie_points: float = 1.0            # closed-set top-1 within this many points of the best counts as a tie


@dataclass
class Result:
    """Everything chapter 2 computes: runs, summary, latency, decision, record, tables, facts and verdicts."""

    params: Params
    world: kit.World
    weights: str                        # the candidates' CLIP weights (a file or a pretrained tag)
    base: TrainConfig                   # the one recipe every candidate trains with
    candidate_seeds: dict[str, list[int]]
    candidate_epochs: dict[str, int]
    runs: pd.DataFrame                  # one row per (candidate, seed)
    summary: pd.DataFrame               # per candidate: means over seeds, latency, GFLOPs, Pareto front
    latency: pd.DataFrame               # the latency table's rows (`profiler.sweep`)
    decision: dict[str, Any]            # `teacher_choice.select_teacher`
    record: Path                        # the teacher's record (`teacher_choice.choice_path`)
    machine: str                        # where the latency was measured
    latency_note: Md                    # the latency table's caption
    classes: int                        # closed-set classes (chance = 100 / classes)
    zs_classes: int                     # held-out classes (0: none)
    tables: dict[str, Any] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)
    verdicts: dict[str, str] = field(default_factory=dict)

    @property
    def teacher(self) -> str:
        return str(self.decision["teacher"])


# ------------------------------------------------------------------------------------------- the candidates' CLIP
def zero_shot_table(report: Mapping[str, Any], backbone: str) -> pd.DataFrame:
    """The in-project CLIPs' zero-shot report: top-1 % per CLIP (rows) and attribute (columns), and a chance row
    (`backbone`'s chance per attribute)."""
    table = pd.DataFrame({name: {attribute: z["top1"] for attribute, z in m["zero_shot"].items()}
                          for name, m in report["models"].items()}).T
    table.loc["chance"] = pd.Series({a: z["chance"] for a, z in report["models"][backbone]["zero_shot"].items()})
    return table


def clip_verdict(table: pd.DataFrame, backbone: str, heldout_frames: int) -> str:
    """What `backbone`'s zero-shot report says: the attributes it names at least twice as often as chance, the
    others, and what that bounds."""
    ours, chance = table.loc[backbone], table.loc["chance"]
    strong = [f"{a} ({ours[a]:.1f}%, chance {chance[a]:.1f}%)" for a in chance.index if ours[a] >= 2 * chance[a]]
    weak = [f"{a} ({ours[a]:.1f}%, chance {chance[a]:.1f}%)" for a in chance.index if ours[a] < 2 * chance[a]]
    verdict = (f"`{backbone}` names {', '.join(strong) or 'none of them'} at least twice as often as chance, "
               f"and {', '.join(weak) or 'nothing'} less often than that.")
    intro = (f"The in-project CLIPs come with a zero-shot report on the {heldout_frames} held-out frames of the "
             "world's val and test clips: each frame is matched to prompts such as \"a photo of a red object\", and "
             "no classifier is trained.")
    bound = ("A single-frame embedding also has to say where the object is, which this report does not test "
             "(README, \"Status and known limitations\"). The actions of this world are motions of that object, so "
             "these embeddings bound what any candidate below can reach; the seed spreads say how much of each "
             "difference is noise.")
    return f"{intro} {verdict} {bound}"


def given_weights_verdict(pretrained: str) -> str:
    return f"The CLIP weights were given (`{pretrained}`): no in-project report."


# ------------------------------------------------------------------------------------------- the recipe
def candidate_budget(seeds: Sequence[int], epochs: int, xclip_seeds: Sequence[int] | None = None,
                     xclip_epochs: int | None = None) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Every candidate's seeds (X-CLIP's own when given) and X-CLIP's epochs (None: everyone's)."""
    candidate_seeds = {name: list(xclip_seeds if name == "xclip" and xclip_seeds is not None else seeds)
                       for name in tc.CANDIDATES}
    candidate_epochs = {"xclip": xclip_epochs if xclip_epochs is not None else epochs}
    if not candidate_seeds["xclip"] or candidate_epochs["xclip"] < 1:
        raise ValueError("xclip_seeds / xclip_epochs: X-CLIP needs at least one seed and one epoch")
    return candidate_seeds, candidate_epochs


def recipe(params: Params, manifest: str | Path | None, weights: str) -> dict[str, Any]:
    """The one training recipe of every candidate, as a TrainConfig mapping."""
    p = params
    synthetic = p.synthetic_world
    return {
        "epochs": p.epochs,
        "device": p.device,
        "data": {"dataset": p.dataset, "manifest": str(manifest) if synthetic else None, "root": p.data_root,
                 "fold": p.split, "train_split": "train", "test_split": "test",
                 "eval_split": "val" if synthetic and p.val_every else None,
                 "num_frames": p.num_frames, "sampler": "tsn", "size": p.size, "batch_size": p.batch_size,
                 "flip": not synthetic, "time_reversal": p.time_reversal},
        "model": {"backbone": p.backbone, "pretrained": str(weights),
                  "kwargs": {} if p.logit_scale_init is None else {"logit_scale_init": p.logit_scale_init}},
        "optim": {"lr": p.lr, "fusion_lr_mult": p.fusion_lr_mult, "weight_decay": p.weight_decay,
                  "warmup_epochs": p.warmup_epochs, "clip_grad": 1.0,
                  **({} if p.amp_dtype is None else {"amp_dtype": p.amp_dtype})},
        "objective": {"name": "actionclip", "kwargs": {"texts": "classes"}},
        "eval": {"every": max(p.val_every, 1)},
    }


def recipe_table(params: Params, candidate_seeds: Mapping[str, Sequence[int]],
                 candidate_epochs: Mapping[str, int]) -> pd.DataFrame:
    """The recipe's settings in words, one row each."""
    p = params
    settings = {
        "frames per clip (TSN)": p.num_frames,
        "epochs": p.epochs,
        "batch size": p.batch_size,
        "text encoder lr": p.lr,
        "fusion / X-CLIP modules lr": p.lr * p.fusion_lr_mult,
        "weight decay": p.weight_decay,
        "warm-up epochs": p.warmup_epochs,
        "training precision": ("fp32 on a CPU, fp16 autocast on a GPU" if p.amp_dtype is None
                               else f"{p.amp_dtype} autocast"),
        "time reversal": f"{p.time_reversal:g} of the clips" if p.time_reversal else "off",
        "validation every (epochs)": p.val_every if p.synthetic_world and p.val_every else "no validation",
        "image encoder": "frozen" if p.freeze_image_encoder else "fine-tuned",
        "token embedding table": "frozen" if p.freeze_token_embedding else "trained",
        "training logit scale": ("the CLIP's own" if p.logit_scale_init is None
                                 else f"{p.logit_scale_init:g} at the start"),
        "transformer head depth": p.fusion_layers,
        "seeds": ", ".join(map(str, p.seeds)),
        "X-CLIP seeds": ", ".join(map(str, candidate_seeds["xclip"])),
        "X-CLIP epochs": candidate_epochs["xclip"],
    }
    return pd.DataFrame({"setting": list(settings), "value": list(settings.values())})


# ------------------------------------------------------------------------------------------- training
def training_costs(runs: pd.DataFrame) -> dict[str, float]:
    """Per-epoch cost of the cached-embedding candidates (mean) and of X-CLIP on pixels, their ratio, and X-CLIP's
    share (%) of all training time."""
    cost = runs.groupby("model", sort=False)[["train_s", "eval_s"]].mean()
    cost["per_epoch_s"] = cost["train_s"] / runs.groupby("model", sort=False)["epochs"].first()
    cached = runs.loc[runs["input"] != "pixels", "model"].unique()
    cached_s = float(cost.loc[cached, "per_epoch_s"].mean())
    xclip_s = float(cost.loc["xclip", "per_epoch_s"])
    xclip_train_s = runs.loc[runs["model"] == "xclip", "train_s"].sum()
    return {"epoch_cached_s": cached_s, "epoch_xclip_s": xclip_s,
            "xclip_ratio": float(cost.loc["xclip", "per_epoch_s"] / cost.loc[cached, "per_epoch_s"].mean()),
            "xclip_share": float(100 * xclip_train_s / runs["train_s"].sum())}


# ------------------------------------------------------------------------------------------- accuracy
def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd [range] over seeds, closed-set and zero-shot, and the share of errors naming the reversed class."""
    return pd.DataFrame({"candidate": summary.index.map(tc.LABELS), "seeds": summary["seeds"].to_numpy(),
                         "closed-set top-1 (%)": kit.spread_column(summary, "top1"),
                         "zero-shot top-1 (%)": kit.spread_column(summary, "zs_top1"),
                         "errors naming the reversed class (%)":
                             summary["reversal_errors_mean"].round(0).to_numpy()})


def reversal_shares(summary: pd.DataFrame) -> tuple[float, float]:
    """Mean share (%) of closed-set errors naming the reversed class: the order-blind candidates (mean pooling),
    and the ActionCLIP heads that see the order (X-CLIP counted in neither)."""
    blind = [n for n in ORDER_BLIND if n in summary.index]
    ordered = [n for n in summary.index if n not in ORDER_BLIND and n != "xclip"]
    return (float(summary.loc[blind, "reversal_errors_mean"].mean()),
            float(summary.loc[ordered, "reversal_errors_mean"].mean()))


def ranking_text(summary: pd.DataFrame) -> str:
    """'ActionCLIP Conv1D (6.7) > X-CLIP (6.7) > ...': the closed-set ranking by mean top-1."""
    ranking = summary.sort_values("top1_mean", ascending=False)
    return " > ".join(f"{tc.LABELS[n]} ({v:.1f})" for n, v in ranking["top1_mean"].items())


# ------------------------------------------------------------------------------------------- latency
def check_rule_frames(rule_frames: int, latency_frames: Sequence[int]) -> None:
    if rule_frames not in latency_frames:
        raise ValueError(f"rule_frames={rule_frames} must be one of latency_frames={list(latency_frames)}")


def latency_view(latency: pd.DataFrame, order: Sequence[str], rule_frames: int) -> pd.DataFrame:
    """ms per frame count, GFLOPs at the rule's frames and parameters, one row per candidate in `order`."""
    ms = latency.pivot(index="model", columns="frames", values="latency_ms")
    gflops = latency.pivot(index="model", columns="frames", values="gflops")
    view = ms.rename(columns=lambda t: f"{t} frames (ms)")
    view.insert(0, "candidate", view.index.map(tc.LABELS))
    view[f"GFLOPs at {rule_frames} frames"] = gflops[rule_frames]
    view["params (M)"] = latency.drop_duplicates("model").set_index("model")["params_total_m"]
    return view.loc[list(order)]


# ------------------------------------------------------------------------------------------- beside the papers
def beside_table(summary: pd.DataFrame, gflops: pd.DataFrame, num_frames: int, dataset: str) -> pd.DataFrame:
    """The published numbers (`teacher_choice.reported_table`) above ours, each row saying which it is; our GFLOPs
    at the candidates' training frames when that frame count was timed."""
    world = "SynthActions" if dataset == "synthactions" else dataset.upper()
    measured = []
    for name, row in summary.iterrows():
        for metric, bench in (("top1", f"{world} closed-set"), ("zs_top1", f"{world} zero-shot")):
            if not math.isnan(row[f"{metric}_mean"]):
                measured.append({"source": "measured here", "model": tc.LABELS[name], "benchmark": bench,
                                 "frames": num_frames, "top1": row[f"{metric}_mean"],
                                 "gflops": gflops[num_frames][name] if num_frames in gflops else math.nan})
    beside = pd.concat([tc.reported_table(), pd.DataFrame(measured)], ignore_index=True)
    return beside.rename(columns={"top1": "top-1 (%)", "gflops": "GFLOPs"})


# ------------------------------------------------------------------------------------------- the choice
def choice_verdict(teacher: str, ranking: Sequence[str], decision: Mapping[str, Any], xclip_ratio: float,
                   frozen: bool = True) -> str:
    """The headline verdict: against the thesis (ActionCLIP) and the published ranking, and whether X-CLIP's smaller
    budget could have decided the choice. `ranking`: candidates by mean closed-set top-1, best first; `frozen`: the
    image encoder was frozen (ViFi-CLIP is then mean pooling over frozen frame embeddings)."""
    label = tc.LABELS[teacher]
    if teacher.startswith("actionclip"):
        verdict = (f"This agrees with the thesis, which chose ActionCLIP; here the rule picks its "
                   f"{label.removeprefix('ActionCLIP ')} head.")
    else:
        verdict = (f"This differs from the thesis, which chose ActionCLIP: on this data and budget {label} wins by "
                   "the same criteria.")
    ranking = list(ranking)
    verdict += (f" The published Kinetics-400 numbers put X-CLIP and ViFi-CLIP above ActionCLIP in accuracy; here "
                f"X-CLIP ranks {ranking.index('xclip') + 1} of {len(ranking)} and ViFi-CLIP, "
                f"{'reduced to mean pooling by the frozen encoder' if frozen else 'fine-tuned end to end'}, "
                f"{ranking.index('vificlip') + 1} of {len(ranking)}.")
    if "xclip" in decision["excluded"]:
        verdict += " X-CLIP could not be chosen in this regime, whatever its scores (see the rule)."
    elif "xclip" in decision["eligible"]:
        verdict += (" X-CLIP is within the latency limit, so its smaller training budget could matter here: read its "
                    "rank as a lower bound.")
    else:
        verdict += (f" X-CLIP is outside the latency limit ({xclip_ratio:.2f}x the fastest), so its smaller training "
                    "budget does not decide the choice.")
    return verdict


def choice_table(summary: pd.DataFrame, decision: Mapping[str, Any], rule_frames: int) -> pd.DataFrame:
    """The rule applied, one row per candidate: scores, latency, and each step's outcome."""
    teacher = decision["teacher"]
    return pd.DataFrame({"candidate": summary.index.map(tc.LABELS),
                         "closed-set top-1": summary["top1_mean"].round(1).to_numpy(),
                         "zero-shot top-1": summary["zs_top1_mean"].round(1).to_numpy(),
                         f"latency at {rule_frames} frames (ms)": summary["latency_ms"].round(0).to_numpy(),
                         "within the latency limit": [n in decision["eligible"] for n in summary.index],
                         "tied for best": [n in decision["tied"] for n in summary.index],
                         "Pareto front": summary["pareto"].to_numpy(),
                         "chosen": [n == teacher for n in summary.index]})


def label_list(candidates: Sequence[str]) -> Md:
    return Md(", ".join(tc.LABELS[n] for n in candidates))


# ------------------------------------------------------------------------------------------- the chapter
def _clip_weights(params: Params, world: kit.World) -> str:
    if params.pretrained is not None:
        return params.pretrained
    if not params.synthetic_world:
        raise ValueError(f"dataset={params.dataset!r}: set `pretrained` (e.g. 'openai'); the in-project CLIP is "
                         "trained on SynthActions only")
    return world.checkpoint(params.backbone)


def run(params: Params) -> Result:
    """Chapter 2 end to end, in the notebook's order of computation (and thus its random streams)."""
    from actiondistill.config import from_dict
    from actiondistill.engine.runs import run_datasets, summarise
    from actiondistill.evaluate import class_texts_of
    from actiondistill.profiler import load_note
    from actiondistill.stats import pareto_front

    p = params
    started = time.perf_counter()
    facts = Facts()
    tables: dict[str, Any] = {}
    verdicts: dict[str, str] = {}

    # the world, the candidates' CLIP and (frozen) the cached frame embeddings
    world = kit.prepare_world(p, p.pretrain, clips=p.pretrained is None)
    weights = _clip_weights(p, world)
    facts.add(ch2_clip_reused=world.provenance() if p.pretrained is None else Md(f"given as `{p.pretrained}`"))
    features = None
    if p.freeze_image_encoder:
        cache = kit.frame_cache(world, p.backbone, weights, p.size, p.device, p.feature_dtype)
        features, computed = cache.get(), cache.computed
        agreement = cache.agreement(features)
        facts.add(ch2_feature_dtype=Md(p.feature_dtype), ch2_feature_agreement=agreement,
                  ch2_feature_frames=int(features.features.shape[0]), ch2_feature_clips=len(features.paths),
                  ch2_feature_mb=features.features.numel() * 4 / 2**20,
                  ch2_feature_s=float(features.meta["compute_s"]),
                  ch2_feature_reused=Md("reused from the cache" if not computed else "computed by this run"))

    if world.clips is not None:
        report = world.clips["report"]
        zero_shot = zero_shot_table(report, p.backbone)
        verdicts["clip"] = clip_verdict(zero_shot, p.backbone, report["heldout"]["frames"])
        tables["zero_shot"] = zero_shot.round(1).rename_axis("zero-shot top-1 %")
    else:
        verdicts["clip"] = given_weights_verdict(str(p.pretrained))
    facts.add(ch2_clip_verdict=Md(verdicts["clip"]))

    # the recipe and the rule
    base = from_dict(recipe(p, world.manifest, weights))
    candidate_seeds, candidate_epochs = candidate_budget(p.seeds, p.epochs, p.xclip_seeds, p.xclip_epochs)
    tables["recipe"] = recipe_table(p, candidate_seeds, candidate_epochs).pipe(kit.table)
    excluded = tc.excluded_teachers(p.freeze_image_encoder)  # who cannot teach chapters that use cached embeddings
    rule = tc.selection_rule(p.max_slowdown, p.tie_points, p.rule_frames, excluded=excluded)
    facts.add(ch2_rule=Md(rule), ch2_rule_frames=p.rule_frames, ch2_seeds=len(p.seeds))

    # training
    records_as = p.records_as()
    training_started = time.perf_counter()
    runs = tc.run_choice(base, candidate_seeds, features=features, freeze_image_encoder=p.freeze_image_encoder,
                         freeze_token_embedding=p.freeze_token_embedding, fusion_layers=p.fusion_layers,
                         epochs=candidate_epochs, run_prefix=f"ch2-{records_as}", progress=False,
                         workers=p.grid_workers)
    training_s = time.perf_counter() - training_started
    runs["candidate"] = runs["model"].map(tc.LABELS)
    costs = training_costs(runs)
    facts.add(ch2_training_s=training_s, ch2_runs=len(runs), ch2_epoch_cached_s=costs["epoch_cached_s"],
              ch2_epoch_xclip_s=costs["epoch_xclip_s"], ch2_xclip_ratio=costs["xclip_ratio"],
              ch2_xclip_seeds=len(candidate_seeds["xclip"]), ch2_xclip_epochs=candidate_epochs["xclip"],
              ch2_epochs=p.epochs, ch2_xclip_share=costs["xclip_share"])
    tables["runs"] = kit.runs_table(runs, ["candidate", "seed", "input", "trainable_m", "top1", "zs_top1", "train_s",
                                           "eval_s"])

    # accuracy
    summary = summarise(runs, metrics=("top1", "zs_top1", "reversal_errors"))
    summary.index.name = "model"
    tables["accuracy"] = accuracy_table(summary).pipe(kit.table)
    for name, row in summary.iterrows():
        facts.add(**{f"ch2_top1_{name}": float(row["top1_mean"]), f"ch2_zs_{name}": float(row["zs_top1_mean"])})
    classes, zs_classes = int(runs["classes"].iloc[0]), int(runs["zs_classes"].iloc[0])
    best = summary["top1_mean"].idxmax()
    blind, ordered = reversal_shares(summary)
    facts.add(ch2_chance=100 / classes, ch2_zs_chance=100 / zs_classes if zs_classes else float("nan"),
              ch2_best=Md(tc.LABELS[best]), ch2_best_top1=float(summary.loc[best, "top1_mean"]),
              ch2_worst_top1=float(summary["top1_mean"].min()),
              ch2_max_std=float(summary["top1_std"].max()) if summary["top1_std"].notna().any() else float("nan"),
              ch2_blind_reversal=blind, ch2_ordered_reversal=ordered)

    # latency
    check_rule_frames(p.rule_frames, p.latency_frames)
    class_texts = class_texts_of(run_datasets(base, features)["train"])
    latency = tc.latency_table(list(summary.index), p.backbone, class_texts, frames=p.latency_frames,
                               fusion_layers=p.fusion_layers, device=p.latency_device, calls=p.latency_calls,
                               progress=False)
    machine = kit.machine_label(latency.attrs["environment"], p.latency_device)
    facts.add(ch2_machine=Md(machine))
    speedup = latency.pivot(index="model", columns="frames", values="speedup_vs_first")[p.rule_frames]
    gflops = latency.pivot(index="model", columns="frames", values="gflops")
    summary["latency_ms"] = latency.pivot(index="model", columns="frames", values="latency_ms")[p.rule_frames]
    summary["gflops"] = gflops[p.rule_frames]
    summary["pareto"] = pareto_front(summary)
    fastest = summary["latency_ms"].idxmin()
    xclip_ratio = float(speedup[fastest] / speedup["xclip"])  # from the same rounds' ratios
    facts.add(ch2_fastest=Md(tc.LABELS[fastest]), ch2_fastest_ms=float(summary.loc[fastest, "latency_ms"]),
              ch2_xclip_latency_ratio=xclip_ratio)
    latency_note = Md(f"Measured on: **{machine}** (batch 1, {p.latency_calls} rounds of one call per model "
                      f"in turn). " + load_note(latency))
    tables["latency"] = (latency_view(latency, summary.index, p.rule_frames).style.format(precision=1)
                         .hide(axis="index"))
    tables["beside"] = (beside_table(summary, gflops, p.num_frames, p.dataset)
                        .style.format({"top-1 (%)": "{:.1f}", "GFLOPs": "{:.1f}", "frames": "{:.0f}"}, na_rep="")
                        .hide(axis="index"))

    # the choice
    decision = tc.select_teacher(summary, max_slowdown=p.max_slowdown, tie_points=p.tie_points, excluded=excluded)
    teacher = decision["teacher"]
    path = tc.write_choice(tc.choice_path(records_as), decision, base, runs, summary, p.fusion_layers,
                           extra={"profile": p.profile, "machine": machine, "latency_frames": p.rule_frames,
                                  "freeze_image_encoder": p.freeze_image_encoder})
    ranking = list(summary.sort_values("top1_mean", ascending=False).index)
    verdicts["choice"] = choice_verdict(teacher, ranking, decision, xclip_ratio, p.freeze_image_encoder)
    facts.add(ch2_teacher=Md(f"**{tc.LABELS[teacher]}**"), ch2_teacher_top1=float(summary.loc[teacher, "top1_mean"]),
              ch2_teacher_zs=float(summary.loc[teacher, "zs_top1_mean"]),
              ch2_teacher_ms=float(summary.loc[teacher, "latency_ms"]), ch2_eligible=label_list(decision["eligible"]),
              ch2_tied=label_list(decision["tied"]), ch2_ranking=Md(ranking_text(summary)),
              ch2_verdict=Md(verdicts["choice"]), ch2_choice_path=Md(f"`{path.relative_to(path.parents[2])}`"))
    tables["choice"] = choice_table(summary, decision, p.rule_frames).pipe(kit.table)
    facts.add(ch2_chapter_s=time.perf_counter() - started)
    return Result(params=p, world=world, weights=str(weights), base=base, candidate_seeds=candidate_seeds,
                  candidate_epochs=candidate_epochs, runs=runs, summary=summary, latency=latency, decision=decision,
                  record=path, machine=machine, latency_note=latency_note, classes=classes, zs_classes=zs_classes,
                  tables=tables, facts=facts, verdicts=verdicts)


# ------------------------------------------------------------------------------------------- figures
def accuracy_latency_figure(result: Result) -> Figure:
    """Closed-set and zero-shot top-1 against latency at the rule's frames: every candidate's mean over seeds with a
    bar of one sd, the Pareto front, the rule's latency limit and chance."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    p = result.params
    points = result.summary.assign(candidate=result.summary.index.map(tc.LABELS))
    limit = p.max_slowdown * points["latency_ms"].min()
    chance = {"top1": 100 / result.classes if result.classes else None,
              "zs_top1": 100 / result.zs_classes if result.zs_classes else None}
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig = kit.accuracy_latency_figure(
            points, "candidate", metrics=(("top1", "closed-set top-1 (%)"), ("zs_top1", "zero-shot top-1 (%)")),
            chance=chance, xlabel=f"latency at {p.rule_frames} frames, batch 1 (ms, {p.latency_device})",
            title=f"{p.dataset}: accuracy against latency ({len(p.seeds)} seed(s), {p.epochs} epoch(s))",
            limit=(limit, f"{p.max_slowdown:g}x the fastest"))
    plt.close(fig)  # shown once, as the cell's value
    return fig
