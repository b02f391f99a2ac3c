"""Chapter 6's experiment: three compressed-domain networks, their ICs trained with CE or PKD, logits for WISE.

Steps, each cached under data/cache/pkd/ so that a re-run computes only what is missing:

0. Stage 0, the embedded stand-in for PKD's Kinetics-pretrained backbones. No such checkpoint exists offline, so
   each tiny network (I-frame, MV, residual) first trains its backbone and final classifier with cross-entropy on
   the training clips. There is one stage 0 per experiment, shared by every variant and seed, as PKD's pretrained
   backbones are one checkpoint.
1. Backbones and final classifiers are frozen; the ICs train with one variant's objective (CE, PKD or a control)
   once per seed (the seed sets the ICs' initialisation and the batch order), on features computed once
   (`actiondistill.pkd.features`).
2. The logits of all 12 ICs on the training clips (test-style centre view) and on the test clips are saved per
   run: WISE fits its weights on the former and is evaluated on the latter (`actiondistill.pkd.tradeoff`).

Every Trainer run also writes its usual record under data/results/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from actiondistill.config import DataConfig, ObjectiveConfig, OptimConfig, TrainConfig
from actiondistill.data.compressed_dataset import CompressedVideoDataset
from actiondistill.engine.distributed import DistEnv, resolve_device
from actiondistill.engine.objectives import build_objective
from actiondistill.engine.seeding import seed_everything
from actiondistill.io import atomic_save, atomic_write_json
from actiondistill.models.compressed_nets import MODALITIES, MODALITY_CHANNELS, CompressedTriplet
from actiondistill.pkd.features import ICHeads, ViewBank, decoded_views, stage_features, torch_threads

#: Bumped whenever what a cached file holds, or how it is computed, changes.
CACHE_VERSION = 1
#: The IC-training variants: (registered objective, its arguments; preset schedules get the run's epochs).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ce": ("compressed_ce", {"exits": [1, 2, 3]}),
    "pkd": ("pkd", {"schedule": "progressive"}),
    "pkd_iframe_end": ("pkd", {"schedule": "ending_on_iframe"}),
    "anti_curriculum": ("pkd", {"schedule": "anti_curriculum"}),
    "iframe_kd": ("pkd", {"schedule": "iframe_only"}),
}
VARIANT_LABELS = {
    "ce": "CE",
    "pkd": "PKD (MV → R → self)",
    "pkd_iframe_end": "PKD (MV → R → I)",
    "anti_curriculum": "anti-curriculum (self → R → MV)",
    "iframe_kd": "I-frame-only KD",
}
VideoList = Sequence[tuple[str | os.PathLike, int]]


@dataclass(frozen=True)
class CompressedExperiment:
    """What determines the chapter's networks and runs (the cache key: all but `device`, `eval_batch_size`, `threads`).

    Attributes:
        size: side of the (square) inputs the networks see.
        segments: TSN segments per clip.
        width: base width of the tiny ResNets.
        batch_size: clips per training step.
        views: random training views drawn per clip (cycled by epoch), besides the centre view used for testing.
        stage0_epochs, stage0_lr: training of backbones + final classifiers (cross-entropy).
        ic_epochs, ic_lr: training of the ICs on frozen backbones (PKD's presets split the epochs into equal stages).
        weight_decay, warmup_epochs: AdamW's decay and the cosine schedule's linear warm-up.
        backbone_seed: seed of stage 0 and of the training views.
        device: "auto" (the GPU when there is one), "cpu" or "cuda".
        eval_batch_size: clips per batch when computing features and logits.
        threads: torch intra-op threads while computing (None: torch's setting); see `torch_threads`.
    """

    size: int = 32
    segments: int = 3
    width: int = 8
    batch_size: int = 32
    views: int = 3
    stage0_epochs: int = 10
    stage0_lr: float = 3e-3
    ic_epochs: int = 6
    ic_lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    backbone_seed: int = 0
    device: str = "auto"
    eval_batch_size: int = field(default=64, compare=False)
    threads: int | None = field(default=1, compare=False)

    def __post_init__(self) -> None:
        for name in ("size", "segments", "width", "batch_size", "views", "stage0_epochs", "ic_epochs",
                     "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"CompressedExperiment.{name}={getattr(self, name)}: expected >= 1")
        if self.stage0_lr <= 0 or self.ic_lr <= 0:
            raise ValueError(f"CompressedExperiment: learning rates must be > 0, got stage0_lr={self.stage0_lr}, "
                             f"ic_lr={self.ic_lr}")

    def input_shapes(self) -> dict[str, tuple[int, int, int, int]]:
        """(S, C, H, W) of one clip per modality, for the networks' GMACs."""
        return {m: (self.segments, MODALITY_CHANNELS[m], self.size, self.size) for m in MODALITIES}

    def build_triplet(self, num_classes: int, freeze_backbone: bool = False) -> CompressedTriplet:
        return CompressedTriplet.build(num_classes, width=self.width, freeze_backbone=freeze_backbone)


@dataclass
class CompressedResults:
    """Saved logits of every run and what the chapter needs around them.

    Attributes:
        logits: {(variant, seed): {split: (12, N, C)}} in WISE's IC order (residual IC1-4, MV IC1-4, I-frame
            IC1-4), for "train" (the training clips' centre view) and every evaluation split ("test", ...).
        labels: {split: (N,) labels}.
        exit_gmacs: per modality the GMACs of one clip up to each exit (IC1-4), that exit's head only.
        wise_gmacs: cumulative GMACs of the 12 exits in WISE order (earlier networks and heads included).
        seconds: wall time of the steps computed in this call (decoding, stage0, features, ics); empty when every
            run was cached.
    """

    experiment: CompressedExperiment
    classes: list[str]
    logits: dict[tuple[str, int], dict[str, Tensor]]
    labels: dict[str, Tensor]
    exit_gmacs: dict[str, list[float]]
    wise_gmacs: list[float]
    seconds: dict[str, float]
    cache_dir: Path

    def ic_accuracy(self, split: str = "test") -> pd.DataFrame:
        """Top-1 (%) of every IC of every run: columns variant, seed, modality, exit (1-4), accuracy."""
        if split not in self.labels:
            raise ValueError(f"split {split!r}: expected one of {sorted(self.labels)}")
        rows = []
        for (variant, seed), run in self.logits.items():
            correct = (run[split].argmax(2) == self.labels[split]).float().mean(1) * 100
            for i, acc in enumerate(correct.tolist()):
                rows.append({"variant": variant, "seed": seed, "modality": MODALITIES[i // 4], "exit": i % 4 + 1,
                             "accuracy": acc})
        return pd.DataFrame(rows)


def closed_set_videos(dataset: Any, num_classes: int | None = None) -> list[tuple[Path, int]]:
    """(path, label) pairs of a `VideoDataset`, keeping labels below `num_classes` (the synthetic world lists its
    seen classes first: pass its `num_seen_classes` to leave out the zero-shot ones)."""
    limit = len(dataset.classes) if num_classes is None else num_classes
    videos = [(Path(s.path), int(s.label)) for s in dataset.samples if s.label < limit]
    if not videos:
        raise ValueError(f"no clip of the dataset has a label below {limit}")
    return videos


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _video_key(videos: VideoList) -> list[tuple[str, int]]:
    return [(str(Path(p).resolve()), int(label)) for p, label in videos]


def run_experiment(exp: CompressedExperiment, train_videos: VideoList, eval_videos: dict[str, VideoList],
                   classes: Sequence[str], seeds: Sequence[int] = (0,), variants: Sequence[str] = tuple(VARIANTS),
                   cache_root: str | os.PathLike | None = None, progress: bool = True) -> CompressedResults:
    """Train what is not cached yet (stage 0, then the ICs of every variant x seed) and load every run's logits.

    Args:
        exp: the experiment's settings.
        train_videos: (path, label) pairs the networks train on; labels index `classes`.
        eval_videos: named splits to save logits of, e.g. {"test": [...], "val": [...]} ("train" is reserved for
            the training clips' centre view).
        classes: class names.
        seeds: seeds of the IC training runs.
        variants: keys of `VARIANTS`.
        cache_root: where stage 0 and the logits are kept (default data/cache/pkd).
        progress: progress bars.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants={list(variants)}: expected a non-empty list among {list(VARIANTS)}")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    if "train" in eval_videos or not eval_videos:
        raise ValueError(f"eval_videos: expected named splits other than 'train', got {sorted(eval_videos)}")
    empty = [name for name, videos in {"train": train_videos, **eval_videos}.items() if not videos]
    if empty:
        raise ValueError(f"splits {empty}: expected at least one (path, label) pair each")
    labels = [int(label) for videos in (train_videos, *eval_videos.values()) for _, label in videos]
    if min(labels) < 0 or max(labels) >= len(classes):
        raise ValueError(f"labels range over [{min(labels)}, {max(labels)}]: expected indices into the "
                         f"{len(classes)} classes")
    from actiondistill.paths import data_dir

    settings = dataclasses.asdict(exp)
    for key in ("device", "eval_batch_size", "threads"):
        settings.pop(key)
    ic_keys = ("ic_epochs", "ic_lr")
    stage_key = _digest({"version": CACHE_VERSION, "train": _video_key(train_videos),
                         "eval": {name: _video_key(v) for name, v in sorted(eval_videos.items())},
                         "classes": list(classes), **{k: v for k, v in settings.items() if k not in ic_keys}})
    stage_dir = (Path(cache_root) if cache_root is not None else data_dir() / "cache" / "pkd") / stage_key
    runs_dir = stage_dir / f"ics-{_digest({'stage0': stage_key, **{k: settings[k] for k in ic_keys}})}"
    wanted = [(v, s) for v in variants for s in seeds]
    missing = [(v, s) for v, s in wanted if not _logits_path(runs_dir, v, s).is_file()]
    seconds: dict[str, float] = {}
    if missing:
        atomic_write_json(stage_dir / "experiment.json", {"experiment": settings, "classes": list(classes)})
        runner = _Runner(exp, train_videos, eval_videos, list(classes), stage_dir, runs_dir, progress, seconds)
        with torch_threads(exp.threads):
            for variant, seed in missing:
                runner.train_ics(variant, seed, _logits_path(runs_dir, variant, seed))
    logits, split_labels = {}, {}
    for variant, seed in wanted:
        saved = torch.load(_logits_path(runs_dir, variant, seed), map_location="cpu", weights_only=True)
        logits[(variant, seed)] = saved["logits"]
        split_labels = saved["labels"]
    triplet = exp.build_triplet(len(classes))
    shapes = exp.input_shapes()
    exit_gmacs = {m: triplet.nets[m].exit_gmacs(shapes[m]) for m in MODALITIES}
    return CompressedResults(experiment=exp, classes=list(classes), logits=logits, labels=split_labels,
                             exit_gmacs=exit_gmacs, wise_gmacs=triplet.wise_exit_gmacs(shapes), seconds=seconds,
                             cache_dir=stage_dir)


def _logits_path(runs_dir: Path, variant: str, seed: int) -> Path:
    return runs_dir / f"{variant}-seed{seed}.pt"


def freeze_final_classifiers(triplet: CompressedTriplet) -> CompressedTriplet:
    """Freeze each network's fc (IC4) too: in PKD it is the pretrained network's classifier and a teacher."""
    for net in triplet.nets.values():
        for param in net.backbone.fc.parameters():
            param.requires_grad_(False)
    return triplet


class _Runner:
    """The steps that need data: decoded views, stage 0, stage features, IC training; each done once, on demand."""

    def __init__(self, exp: CompressedExperiment, train_videos: VideoList, eval_videos: dict[str, VideoList],
                 classes: list[str], stage_dir: Path, runs_dir: Path, progress: bool, seconds: dict[str, float]):
        self.exp, self.classes, self.progress, self.seconds = exp, classes, progress, seconds
        self.stage_dir, self.runs_dir = stage_dir, runs_dir
        self.train_videos = list(train_videos)
        self.eval_videos = {name: list(videos) for name, videos in eval_videos.items()}
        self.device = resolve_device(exp.device, DistEnv.from_env())
        self._features: dict[str, Any] | None = None

    def _timed(self, name: str, start: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def _decoded(self) -> tuple[list[dict[str, Tensor]], dict[str, dict[str, Tensor]], dict[str, Tensor]]:
        """Random training views (epochs 1..V of a training-mode dataset), and the centre view of every split."""
        exp = self.exp
        common = {"num_segments": exp.segments, "size": exp.size, "seed": exp.backbone_seed, "progress": self.progress}
        random_views, _ = decoded_views(CompressedVideoDataset(self.train_videos, train=True, **common),
                                        list(range(1, exp.views + 1)), progress=self.progress,
                                        desc="decoding training views")
        centre, labels = {}, {}
        for name, videos in {"train": self.train_videos, **self.eval_videos}.items():
            (centre[name],), labels[name] = decoded_views(CompressedVideoDataset(videos, train=False, **common), [0],
                                                          progress=self.progress, desc=f"decoding {name} (centre)")
        return random_views, centre, labels

    def _train_config(self, folder: Path, run_name: str, seed: int, epochs: int, lr: float, objective: str,
                      kwargs: dict[str, Any]) -> TrainConfig:
        """The Trainer's config; the run folder sits beside the cache it feeds, so it never mixes settings."""
        exp = self.exp
        return TrainConfig(
            seed=seed, run_name=run_name, out_dir=str(folder / "runs" / run_name), device=exp.device,
            epochs=epochs, data=DataConfig(dataset="compressed", batch_size=exp.batch_size, eval_split=None,
                                           num_frames=exp.segments, size=exp.size, flip=False),
            optim=OptimConfig(lr=lr, weight_decay=exp.weight_decay, warmup_epochs=exp.warmup_epochs, amp=False),
            objective=ObjectiveConfig(name=objective, kwargs=kwargs))

    def _stage0(self, random_views: list[dict[str, Tensor]], labels: Tensor) -> dict[str, dict[str, Tensor]]:
        """Backbones + final classifiers trained with cross-entropy (cached in stage0.pt)."""
        from actiondistill.train import Trainer

        path = self.stage_dir / "stage0.pt"
        if path.is_file():
            return torch.load(path, map_location="cpu", weights_only=True)["backbones"]
        start = time.perf_counter()
        exp = self.exp
        seed_everything(exp.backbone_seed)
        triplet = exp.build_triplet(len(self.classes))
        kwargs = {"exits": [4]}
        cfg = self._train_config(self.stage_dir, f"pkd-stage0-{self.stage_dir.name[:8]}", exp.backbone_seed,
                                 exp.stage0_epochs, exp.stage0_lr, "compressed_ce", kwargs)
        trainer = Trainer(cfg, triplet, ViewBank(random_views, labels, self.classes),
                          objective=build_objective("compressed_ce", **kwargs), progress=self.progress)
        trainer.fit(resume=True)
        backbones = {m: {k: v.cpu() for k, v in triplet.nets[m].backbone.state_dict().items()} for m in MODALITIES}
        atomic_save(path, lambda tmp: torch.save({"backbones": backbones, "history": trainer.history}, tmp))
        self._timed("stage0", start)
        return backbones

    def _frozen_triplet(self, backbones: dict[str, dict[str, Tensor]]) -> CompressedTriplet:
        triplet = self.exp.build_triplet(len(self.classes), freeze_backbone=True)
        for m in MODALITIES:
            triplet.nets[m].backbone.load_state_dict(backbones[m])
        return freeze_final_classifiers(triplet).to(self.device)

    def features(self) -> dict[str, Any]:
        """Stage features of every view under the frozen stage-0 backbones (computed once per runner)."""
        if self._features is None:
            start = time.perf_counter()
            random_views, centre, labels = self._decoded()
            self._timed("decoding", start)
            backbones = self._stage0(random_views, labels["train"])
            start = time.perf_counter()
            triplet = self._frozen_triplet(backbones)

            def features(view: dict[str, Tensor], desc: str) -> dict[str, list[Tensor]]:
                return stage_features(triplet, view, self.exp.eval_batch_size, progress=self.progress, desc=desc)

            self._features = {
                "random": [features(v, f"features (training view {i + 1})") for i, v in enumerate(random_views)],
                "centre": {name: features(view, f"features ({name})") for name, view in centre.items()},
                "labels": labels, "backbones": backbones,
            }
            self._timed("features", start)
        return self._features

    def train_ics(self, variant: str, seed: int, target: Path) -> None:
        """Train one variant's ICs with one seed on the frozen backbones, then save all 12 ICs' logits."""
        from actiondistill.train import Trainer

        features = self.features()
        start = time.perf_counter()
        exp = self.exp
        objective, kwargs = VARIANTS[variant]
        kwargs = {**kwargs, "epochs": exp.ic_epochs} if objective == "pkd" else dict(kwargs)
        seed_everything(seed)
        heads = ICHeads(self._frozen_triplet(features["backbones"]))
        cfg = self._train_config(self.runs_dir, f"pkd-{variant}-seed{seed}-{self.runs_dir.name[4:12]}", seed,
                                 exp.ic_epochs, exp.ic_lr, objective, kwargs)
        data = ViewBank(features["random"], features["labels"]["train"], self.classes)
        Trainer(cfg, heads, data, objective=build_objective(objective, **kwargs), progress=self.progress).fit(
            resume=True)
        saved = {"logits": {name: ic_logits(heads, view, exp.eval_batch_size)
                            for name, view in features["centre"].items()},
                 "labels": features["labels"]}
        atomic_save(target, lambda tmp: torch.save(saved, tmp))
        self._timed("ics", start)


@torch.no_grad()
def ic_logits(model: torch.nn.Module, view: dict[str, Any], batch_size: int = 64) -> Tensor:
    """(12, N, C) logits in WISE's order of a triplet-like model over one view (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    bank = ViewBank([view], torch.zeros(_num_clips(view), dtype=torch.long))
    chunks = []
    try:
        for start in range(0, len(bank), batch_size):
            items = [bank[i] for i in range(start, min(start + batch_size, len(bank)))]
            batch = torch.utils.data.default_collate(items)
            batch = {m: _to(batch[m], device) for m in MODALITIES}
            outputs = model(batch["iframe"], batch["mv"], batch["residual"])
            chunks.append(torch.stack(CompressedTriplet.ordered_ics(outputs)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks, dim=1)


def _num_clips(view: dict[str, Any]) -> int:
    first = view[MODALITIES[0]]
    return len(first[0] if isinstance(first, list | tuple) else first)


def _to(tree: Any, device: torch.device) -> Any:
    if isinstance(tree, Tensor):
        return tree.to(device)
    return [_to(t, device) for t in tree]
