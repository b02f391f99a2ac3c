"""One run of a chapter's grid: train a model with one seed, evaluate it, record it, and return one row.

Every chapter that compares models trains them the same way (`train_and_evaluate`: the one Trainer, cached frame
embeddings in place of pixels where the image encoder is frozen, closed-set and zero-shot evaluation, a results
record), so a difference between two rows is the models' and not the harness's. `recorded_row` lets a later chapter
reuse an earlier chapter's run when it is exactly the run it needs, and `run_grid` is every chapter's loop over its
(variant, seed) pairs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from actiondistill.config import TrainConfig, to_dict
from actiondistill.io import read_json

#: The file a run keeps: its final weights.
WEIGHTS_NAME = "model.pt"

V = TypeVar("V")


def frozen_pixel_kwargs(cfg: TrainConfig) -> TrainConfig:
    """Pixels exactly as the cached features see them: full-frame crop, no flip, jitter or grayscale."""
    kwargs = {**cfg.data.kwargs, "train_transform": {"scales": [1.0], "jitter_p": 0.0, "grayscale_p": 0.0}}
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, flip=False, kwargs=kwargs))


def run_datasets(cfg: TrainConfig, features: Any = None) -> dict[str, Any]:
    """Train, test, (with `data.eval_split`) validation and (SynthActions only) zero-shot datasets: cached features
    when given, else pixels.

    Train, test and validation are restricted to the seen classes, zero-shot to the held-out ones (labels
    renumbered).
    """
    from actiondistill.train import _seen_or_heldout, build_dataset

    d = cfg.data
    synthetic = d.dataset not in ("hmdb51", "ucf101")
    splits = {"train": (d.train_split, True), "test": (d.test_split, False)}
    if d.eval_split:
        splits["val"] = (d.eval_split, False)
    if synthetic:
        splits["zeroshot"] = (d.zeroshot_split, False)
    if features is None:
        return {key: build_dataset(cfg, split, train) for key, (split, train) in splits.items()}
    from actiondistill.data.sampling import FrameSampler
    from actiondistill.frame_cache import FrameFeatureDataset, manifest_file
    from actiondistill.paths import data_dir

    manifest = manifest_file(d.manifest if Path(d.manifest).is_absolute() else data_dir() / d.manifest)
    out = {}
    for key, (split, train) in splits.items():
        sampler = FrameSampler(kind=d.sampler, frames=d.num_frames, train=train, **d.kwargs.get("sampler", {}))
        dataset = FrameFeatureDataset(features, manifest, split, sampler=sampler, seed=cfg.seed)
        out[key] = _seen_or_heldout(dataset, manifest, split, zero_shot=split == d.zeroshot_split)
    return out


def train_and_evaluate(cfg: TrainConfig, features: Any = None, freeze_image_encoder: bool = True,
                    freeze_token_embedding: bool = False, progress: bool = True,
                    wrap_train: Callable[[Any], Any] | None = None,
                    measure: Callable[[Any, Mapping[str, Any]], Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Train one model with one seed, evaluate it closed-set and zero-shot, record it, and return one tidy row: what
    every chapter's grid runs (chapter 2's candidates, chapter 3's students, chapter 4's spatial settings...).

    With `freeze_image_encoder`, `features` (a FrameFeatures of the same backbone weights) replaces pixels for the
    models that accept frame embeddings. `freeze_token_embedding` keeps the text tower's token table (most of its
    parameters, of which a label set uses a few dozen rows) fixed: a cheaper step, the text transformer still
    trains. The run folder keeps the final weights (`model.pt`), not the optimiser state; an evaluation record
    `<run_name>-eval` joins the Trainer's record in the results folder.

    Teachers in `cfg.teachers` are built frozen (`build_teacher`) and handed to the Trainer (distillation objectives
    such as `deit_twohead`); on cached features they receive the same frame embeddings as the student. A model with
    selectable heads (`actionclip-twohead`) is scored with its current head (the DeiT average) and the row adds
    `top1_<head>` (and `zs_top1_<head>`) for each of its other heads.

    Two hooks let a later chapter train its own variant without a second copy of this function: `wrap_train`
    replaces the training set by a wrapper of it (e.g. `SpatialTargetDataset`, whose items carry extra targets for
    the objective), and `measure(model, datasets)` returns extra row entries measured on the trained model and the
    unwrapped train / test / zero-shot datasets (its time counts in `eval_s`).
    """
    from actiondistill.engine.records import build_record, count_parameters, write_record
    from actiondistill.engine.seeding import seed_everything
    from actiondistill.evaluate import class_texts_of, evaluate, evaluate_heads, scalar_metrics, zero_shot_eval
    from actiondistill.models.checkpoints import save_weights
    from actiondistill.train import Trainer, build_model, build_teacher

    seed_everything(cfg.seed)
    model = build_model(cfg.model, cfg.data.num_frames)
    use_features = freeze_image_encoder and features is not None and model.accepts_frame_embeddings
    if freeze_image_encoder:
        model.backbone.visual.requires_grad_(False)
        if not use_features:
            cfg = frozen_pixel_kwargs(cfg)
    if freeze_token_embedding:
        model.backbone.token_embedding.requires_grad_(False)
    data = run_datasets(cfg, features if use_features else None)
    teachers = {t.name: build_teacher(cfg, t, class_texts_of(data["train"])) for t in cfg.teachers}
    train_data = wrap_train(data["train"]) if wrap_train is not None else data["train"]
    trainer = Trainer(cfg, model, train_data, val_data=data.get("val"), teachers=teachers, progress=progress,
                      checkpoints=False)  # the run is its final weights; the curve is in `val_curve`
    started = time.perf_counter()
    fit = trainer.fit()
    train_s = time.perf_counter() - started
    model.eval()  # from here on only evaluation: the class texts are encoded once and stay cached
    out_dir = Path(trainer.out_dir)
    save_weights(model, out_dir / WEIGHTS_NAME)

    started = time.perf_counter()
    batch = cfg.eval.batch_size or cfg.data.batch_size
    closed = evaluate(model, data["test"], batch_size=batch, progress=progress, desc="test")
    zero = None
    if "zeroshot" in data:
        zero = zero_shot_eval(model, data["zeroshot"], class_texts=class_texts_of(data["zeroshot"]), batch_size=batch,
                              progress=progress, desc="zero-shot")
    heads: dict[str, float] = {}
    if hasattr(model, "HEADS"):
        others = [h for h in model.HEADS if h != model.head]
        for key, split in (("top1", "test"), ("zs_top1", "zeroshot")):
            if split in data:
                scores = evaluate_heads(model, data[split], class_texts_of(data[split]), heads=others,
                                        batch_size=batch, progress=False)
                heads.update({f"{key}_{h}": r["top1"] for h, r in scores.items()})
    measured = dict(measure(model, data)) if measure is not None else {}
    eval_s = time.perf_counter() - started
    row = {
        "model": cfg.model.name,
        "seed": cfg.seed,
        "top1": closed["top1"],
        "top5": closed["top5"],
        "mean_class_acc": closed["mean_class_acc"],
        "zs_top1": zero["top1"] if zero else math.nan,
        "zs_mean_class_acc": zero["mean_class_acc"] if zero else math.nan,
        "classes": closed["num_classes"],
        "zs_classes": zero["num_classes"] if zero else 0,
        "train_loss": fit["train"]["loss"],
        "train_acc": fit["train"]["acc"],
        "epochs": fit["epoch"],
        "steps": fit["global_step"],
        "train_s": train_s,
        "eval_s": eval_s,
        **run_inputs(use_features, freeze_image_encoder, freeze_token_embedding),
        "trainable_m": count_parameters(model, trainable=True) / 1e6,
        "params_m": count_parameters(model) / 1e6,
        "weights": str(out_dir / WEIGHTS_NAME),
        "reversal_errors": reversal_errors(closed["confusion"], closed["classes"]),
        "val_curve": val_curve(trainer.history),
        **heads,
        **measured,
    }
    metrics = {"test": scalar_metrics(closed), "zeroshot": scalar_metrics(zero) if zero else None, "row": row}
    write_record(build_record("evaluation", f"{trainer.run_name}-eval", metrics, config=to_dict(cfg), seed=cfg.seed,
                              model=model, device=trainer.device), cfg.results_dir)
    return row


def val_curve(history: Sequence[Mapping[str, Any]], metric: str = "top1") -> list[list[float]]:
    """[[epoch, validation `metric`], ...] of a Trainer's history (empty without validation): whether a run had
    flattened before its training stopped, which its final test score alone cannot tell."""
    return [[int(h["epoch"]), float(h[metric])] for h in history if h["split"] == "val" and metric in h]


def run_inputs(cached: bool, freeze_image_encoder: bool, freeze_token_embedding: bool) -> dict[str, str]:
    """How a run's row (`train_and_evaluate`) names its inputs; `recorded_row` matches runs on them."""
    return {"input": "cached frame embeddings" if cached else "pixels",
            "image_encoder": "frozen" if freeze_image_encoder else "fine-tuned",
            "token_embedding": "frozen" if freeze_token_embedding else "trained"}


def recorded_row(cfg: TrainConfig, weights: str | Path, inputs: Mapping[str, str]) -> dict[str, Any] | None:
    """The evaluation row of the run that made `weights` when it is exactly the run `cfg` describes (same config but
    for its name and folder, same `inputs` as `run_inputs` gives), else None: a later chapter's reuse check."""
    from actiondistill.paths import results_dir

    path = Path(cfg.results_dir or results_dir()) / f"{Path(weights).parent.name}-eval.json"
    if not Path(weights).is_file() or not path.is_file():
        return None
    record = read_json(path)
    names = ("run_name", "out_dir")
    same_config = ({k: v for k, v in record.get("config", {}).items() if k not in names}
                   == {k: v for k, v in to_dict(cfg).items() if k not in names})
    row = record.get("metrics", {}).get("row") or {}
    same_inputs = all(row.get(k) == v for k, v in inputs.items())
    return dict(row) if same_config and same_inputs and row.get("weights") == str(weights) else None

def reversal_errors(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> float:
    """Share (%) of closed-set errors that name the clip's time-reversal partner (SynthActions; NaN elsewhere).

    A model blind to frame order cannot tell a clip from its reversal, so its errors concentrate there.
    """
    from actiondistill.data.synthetic import reverse_action

    index = {c: i for i, c in enumerate(classes)}
    errors = partner = 0
    for true, row in enumerate(confusion):
        errors += sum(row) - row[true]
        try:
            other = reverse_action(classes[true])
        except (KeyError, ValueError):
            return math.nan
        if other in index:
            partner += row[index[other]]
    return 100.0 * partner / errors if errors else math.nan


def summarise(runs: pd.DataFrame, metrics: Sequence[str] = ("top1", "zs_top1", "train_s")) -> pd.DataFrame:
    """Mean, std, min and max over seeds per model (columns `<metric>_<stat>`), plus the seed count."""
    grouped = runs.groupby("model", sort=False)
    table = grouped[list(metrics)].agg(["mean", "std", "min", "max"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table


def grid(variants: Sequence[V], seeds: Sequence[int]) -> list[tuple[V, int]]:
    """Every (variant, seed) pair, variants outer and seeds inner: the order of every chapter's runs."""
    return [(variant, int(seed)) for variant in variants for seed in seeds]


def run_grid(jobs: Sequence[tuple[V, int]], run_one: Callable[[V, int], Mapping[str, Any]], *, what: str,
             name: Callable[[V], str] = str, progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """`run_one(variant, seed)` for every job, one row each in job order, with a progress bar over the runs.

    Every chapter's grid (candidates, initialisations, settings, variants, combinations x seeds) runs through here,
    so they all keep the same order (`grid`), and a chapter skips the pairs it reuses by leaving them out of `jobs`.
    With `workers` > 1 the runs train side by side in that many processes, the cores shared out among them
    (`parallel.starmap_closure`): on a 2-core CPU two single-threaded runs of the book's small models finish
    1.5-2.2x sooner than the same runs one after the other on both threads. A run's numbers depend on its thread
    count (reductions round differently), so a profile fixes `workers`; each run is a function of its config and
    seed alone, never of the runs before it.
    """
    from tqdm.auto import tqdm

    from actiondistill.parallel import starmap_closure

    if workers < 1:
        raise ValueError(f"workers={workers}: expected >= 1 (processes training runs side by side)")
    bar = tqdm(total=len(jobs), desc=f"{what} x seeds", disable=not progress)
    if workers == 1:
        rows = []
        for variant, seed in jobs:
            bar.set_postfix(run=name(variant), seed=seed)
            rows.append(dict(run_one(variant, seed)))
            bar.update()
    else:
        bar.set_postfix(workers=workers)
        rows = [dict(row) for row in starmap_closure(run_one, list(jobs), workers, bar=bar)]
    bar.close()
    return pd.DataFrame(rows)
