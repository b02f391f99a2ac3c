"""Chapter 6's experiment: three compressed-domain networks, their ICs trained with CE or PKD, logits for WISE.

Steps, each cached under data/cache/pkd/ so that a re-run computes only what is missing:

0. Stage 0 gives each network (I-frame, MV, residual) a backbone and a final classifier for this dataset's
   classes, trained with cross-entropy on the training clips: from scratch on the embedded profile (its tiny
   ResNets stand in for PKD's pretrained ones, which cannot be downloaded), or from local ResNet checkpoint files
   (ImageNet / Kinetics, `checkpoint`) on the real profiles, fine-tuning the backbone or only the classifier.
   With `stage0_epochs=0` the checkpoints are used as they are (networks already trained on these classes, as
   PKD's are). There is one stage 0 per experiment, shared by every variant and seed, as PKD's pretrained
   backbones are one checkpoint.
1. Backbones and final classifiers are frozen; the ICs train with one variant's objective (CE, PKD or a control)
   once per seed (the seed sets the ICs' initialisation and the batch order).
2. The logits of all 12 ICs on the training clips (test-style centre view) and on the test clips are saved per
   run: WISE fits its weights on the former and is evaluated on the latter (`actiondistill.pkd.tradeoff`).

Two ways to feed the networks (`cache_features`): the embedded profile decodes a few fixed views per clip once and
trains the ICs on frozen stage features kept in memory (`actiondistill.pkd.features`); real datasets at 224 pixels
would need hundreds of GB for those, so there every epoch decodes fresh frames from the extraction cache in
DataLoader workers and the ICs train behind the frozen backbones.

Every Trainer run also writes its usual record under data/results/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from actiondistill.config import DataConfig, ObjectiveConfig, OptimConfig, TrainConfig
from actiondistill.data.compressed import file_identity
from actiondistill.data.compressed_dataset import CompressedVideoDataset
from actiondistill.engine.distributed import DistEnv, resolve_device
from actiondistill.engine.objectives import build_objective
from actiondistill.engine.seeding import seed_everything
from actiondistill.io import atomic_save, atomic_write_json, file_sha256
from actiondistill.models.compressed_nets import ARCHS, MODALITIES, MODALITY_CHANNELS, CompressedTriplet
from actiondistill.models.resnet_checkpoints import BackboneLoadReport, load_resnet_backbone
from actiondistill.parallel import starmap_closure, torch_threads
from actiondistill.pkd.features import ICHeads, ViewBank, decoded_views, stage_features

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
#: Settings added after cache version 1: left out of the cache key at their defaults, so older caches stay valid.
_LATER_DEFAULTS = {"arch": "tiny", "checkpoint": None, "finetune_backbone": True, "cache_features": True}
ARCH_NAMES = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "tiny": "ResNet-18 layout"}


@dataclass(frozen=True)
class CompressedExperiment:
    """What determines the chapter's networks and runs.

    The cache key is every attribute but `device`, `eval_batch_size`, `threads` and `num_workers`, with the
    checkpoint files by content (a replaced file is a new experiment, a moved one is not).

    Attributes:
        size: side of the (square) inputs the networks see.
        segments: TSN segments per clip.
        width: base width of the tiny ResNets.
        batch_size: clips per training step.
        views: random training views drawn per clip (cycled by epoch), besides the centre view used for testing;
            with `cache_features` only (otherwise every epoch draws new frames).
        stage0_epochs, stage0_lr: training of backbones + final classifiers (cross-entropy); 0 epochs: use the
            checkpoints' backbones and classifiers as they are (they must have this dataset's class count).
        ic_epochs, ic_lr: training of the ICs on frozen backbones (PKD's presets split the epochs into equal stages).
        weight_decay, warmup_epochs: AdamW's decay and the cosine schedule's linear warm-up.
        backbone_seed: seed of stage 0 and of the training views.
        arch: "tiny", "resnet18" or "resnet50" for all three networks, or per modality, e.g. PKD's
            {"iframe": "resnet50", "mv": "resnet18", "residual": "resnet18"}.
        checkpoint: local ResNet checkpoint files to start stage 0 from (`actiondistill.models.resnet_checkpoints`
            lists the formats): one path for all three networks, or per modality (a network left out starts from
            random weights). Relative paths are under data/.
        finetune_backbone: stage 0 trains backbone and final classifier (True), or only the classifier on the
            checkpoint's frozen backbone (False; needs a checkpoint for every network).
        cache_features: decode a few fixed views once and train the ICs on stage features kept in memory
            (True: small inputs, the embedded profile), or decode every epoch from the extraction cache in
            `num_workers` DataLoader processes (False: real datasets).
        device: "auto" (the GPU when there is one), "cpu" or "cuda".
        eval_batch_size: clips per batch when computing features and logits.
        threads: torch intra-op threads while computing (None: torch's setting); see `torch_threads`.
        num_workers: DataLoader processes decoding clips when `cache_features` is False.
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
    arch: str | Mapping[str, str] = "tiny"
    checkpoint: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None
    finetune_backbone: bool = True
    cache_features: bool = True
    device: str = "auto"
    eval_batch_size: int = field(default=64, compare=False)
    threads: int | None = field(default=1, compare=False)
    num_workers: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        for name in ("size", "segments", "width", "batch_size", "views", "ic_epochs", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"CompressedExperiment.{name}={getattr(self, name)}: expected >= 1")
        if self.stage0_epochs < 0 or self.num_workers < 0:
            raise ValueError(f"CompressedExperiment: expected stage0_epochs >= 0 and num_workers >= 0, got "
                             f"{self.stage0_epochs} and {self.num_workers}")
        if self.stage0_lr <= 0 or self.ic_lr <= 0:
            raise ValueError(f"CompressedExperiment: learning rates must be > 0, got stage0_lr={self.stage0_lr}, "
                             f"ic_lr={self.ic_lr}")
        self.archs()
        paths = self.checkpoint_paths()
        needs_all = [reason for reason, on in (("finetune_backbone=False", not self.finetune_backbone),
                                               ("stage0_epochs=0", self.stage0_epochs == 0)) if on]
        if needs_all and set(paths) != set(MODALITIES):
            raise ValueError(f"CompressedExperiment: with {' and '.join(needs_all)} the backbones are the "
                             f"checkpoints' as they are, so every network needs one; checkpoint={self.checkpoint!r} "
                             f"gives {sorted(paths) or 'none'} of {list(MODALITIES)}")

    def archs(self) -> dict[str, str]:
        """The architecture of each modality's network."""
        if isinstance(self.arch, str):
            archs = dict.fromkeys(MODALITIES, self.arch)
        elif isinstance(self.arch, Mapping) and set(self.arch) == set(MODALITIES):
            archs = {m: self.arch[m] for m in MODALITIES}
        else:
            raise ValueError(f"CompressedExperiment.arch={self.arch!r}: expected one of {ARCHS} or a mapping of "
                             f"every modality {list(MODALITIES)} to one")
        wrong = {m: a for m, a in archs.items() if a not in ARCHS}
        if wrong:
            shown = repr(self.arch) if isinstance(self.arch, str) else str(wrong)
            raise ValueError(f"CompressedExperiment.arch={shown}: unknown; expected architectures among {ARCHS}")
        return archs

    def checkpoint_paths(self) -> dict[str, Path]:
        """The checkpoint file of each modality that has one (relative paths resolved under data/)."""
        from actiondistill.paths import data_dir

        if self.checkpoint is None:
            return {}
        if isinstance(self.checkpoint, str | os.PathLike):
            given = dict.fromkeys(MODALITIES, self.checkpoint)
        elif isinstance(self.checkpoint, Mapping):
            unknown = sorted(set(self.checkpoint) - set(MODALITIES))
            if unknown:
                raise ValueError(f"CompressedExperiment.checkpoint: unknown modalities {unknown}; expected keys "
                                 f"among {list(MODALITIES)}")
            given = {m: self.checkpoint[m] for m in MODALITIES if self.checkpoint.get(m) is not None}
        else:
            raise ValueError(f"CompressedExperiment.checkpoint={self.checkpoint!r}: expected a path or a mapping of "
                             f"modalities {list(MODALITIES)} to paths")
        return {m: Path(p) if Path(p).is_absolute() else data_dir() / p for m, p in given.items()}

    def input_shapes(self) -> dict[str, tuple[int, int, int, int]]:
        """(S, C, H, W) of one clip per modality, for the networks' GMACs."""
        return {m: (self.segments, MODALITY_CHANNELS[m], self.size, self.size) for m in MODALITIES}

    def build_triplet(self, num_classes: int, freeze_backbone: bool = False) -> CompressedTriplet:
        """The three networks with random weights (`load_checkpoints` puts the checkpoints in)."""
        archs = self.archs()
        return CompressedTriplet.build(num_classes, iframe_arch=archs["iframe"], mv_arch=archs["mv"],
                                       residual_arch=archs["residual"], width=self.width,
                                       freeze_backbone=freeze_backbone)

    def load_checkpoints(self, triplet: CompressedTriplet) -> dict[str, BackboneLoadReport]:
        """Load each modality's checkpoint file into its network (see `ICNetwork.load_backbone`).

        Raises:
            FileNotFoundError: a checkpoint is not there (the message names the modality and where to place it).
        """
        reports = {}
        for m, path in self.checkpoint_paths().items():
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: the {m} network's checkpoint is not there; place a ResNet checkpoint file there "
                    "(README.md, 'Running the compressed track on HMDB51/UCF101') or change `checkpoint`")
            net = triplet.nets[m]
            reports[m] = load_resnet_backbone(net.backbone, path, description=f"the {m} network's {net.arch} "
                                              f"({net.in_channels} input channels)")
        return reports

    def describe_backbones(self) -> str:
        """The networks in words, e.g. 'ResNet-50 (I-frame), ResNet-18 (MV, residual), from random initialisation'."""
        archs, names = self.archs(), {"iframe": "I-frame", "mv": "MV", "residual": "residual"}
        groups: dict[str, list[str]] = {}
        for m in ("iframe", "mv", "residual"):
            label = ARCH_NAMES[archs[m]] + (f" of base width {self.width}" if archs[m] == "tiny" else "")
            groups.setdefault(label, []).append(names[m])
        if len(groups) == 1:
            text = f"a {next(iter(groups))} for all three networks"
        else:
            text = ", ".join(f"{label} ({', '.join(ms)})" for label, ms in groups.items())
        paths = self.checkpoint_paths()
        if not paths:
            return text + ", from random initialisation"
        started = ", ".join(names[m] for m in names if m in paths)
        return text + f", started from checkpoint files ({started})"

    def describe_stage0(self) -> str:
        """What stage 0 does, in words (for the chapter's prose)."""
        epochs = f"{self.stage0_epochs} epoch{'s' if self.stage0_epochs != 1 else ''}, seed {self.backbone_seed}"
        if self.stage0_epochs == 0:
            return "keeps the checkpoints' backbones and final classifiers as they are (no training)"
        if not self.checkpoint_paths():
            return ("trains each network's backbone and final classifier with cross-entropy on the training clips "
                    f"from random weights ({epochs}): a stand-in for PKD's pretrained backbones")
        if not self.finetune_backbone:
            return ("trains each network's final classifier with cross-entropy on the training clips, on the "
                    f"checkpoint's frozen backbone ({epochs})")
        return ("fine-tunes each network's backbone and trains its final classifier with cross-entropy on the "
                f"training clips, starting from the checkpoint files ({epochs})")

    def describe_feeding(self) -> str:
        """How the ICs see the clips, in words (for the chapter's prose)."""
        if self.cache_features:
            return (f"Because a frozen backbone's features never change, they are computed once for each of "
                    f"{self.views} fixed view(s) per training clip, and the ICs train on them")
        return ("Every epoch decodes new frames of each clip from the extraction cache and the ICs train behind the "
                "frozen backbones (at real-data sizes the stage features of every view would not fit in memory)")


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


def _video_key(videos: VideoList) -> list[tuple[str, int, int, int]]:
    """Each video by its `file_identity` (as the extraction cache keys it) and label: a world rendered again under
    the same paths (a new revision of its preset) must not reuse the old world's runs."""
    key = []
    for p, label in videos:
        path, size, mtime = file_identity(p)
        key.append((path, int(label), size, mtime))
    return key


def _key_settings(exp: CompressedExperiment) -> dict[str, Any]:
    """The settings that determine results: checkpoints by content, later settings only when not at their
    defaults, the tiny width only for tiny networks, the number of fixed views only when they are used."""
    settings = {f.name: getattr(exp, f.name) for f in dataclasses.fields(exp) if f.compare and f.name != "device"}
    settings["arch"] = exp.archs()
    if set(settings["arch"].values()) == {"tiny"}:
        settings["arch"] = "tiny"
    for name, default in _LATER_DEFAULTS.items():
        if settings[name] == default:
            del settings[name]
    paths = exp.checkpoint_paths()
    missing = {m: str(p) for m, p in paths.items() if not p.is_file()}
    if missing:
        raise FileNotFoundError(f"checkpoint files not found: {missing}; place a ResNet checkpoint file at each "
                                "(README.md, 'Running the compressed track on HMDB51/UCF101') or change `checkpoint`")
    if paths:
        settings["checkpoint"] = {m: file_sha256(p) for m, p in sorted(paths.items())}
    if "tiny" not in exp.archs().values():
        del settings["width"]
    if not exp.cache_features:
        del settings["views"]
    return settings


def run_experiment(exp: CompressedExperiment, train_videos: VideoList, eval_videos: dict[str, VideoList],
                   classes: Sequence[str], seeds: Sequence[int] = (0,), variants: Sequence[str] = tuple(VARIANTS),
                   cache_root: str | os.PathLike | None = None, progress: bool = True,
                   workers: int = 1) -> CompressedResults:
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
        workers: IC runs trained side by side in that many processes (`parallel.starmap_closure`), each with
            `exp.threads` threads; the numbers are those of one process.
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

    settings = _key_settings(exp)
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
        atomic_write_json(stage_dir / "experiment.json", {"experiment": settings, "classes": list(classes),
                                                          "checkpoint": {m: str(p) for m, p in
                                                                         exp.checkpoint_paths().items()}})
        runner = _Runner(exp, train_videos, eval_videos, list(classes), stage_dir, runs_dir, progress, seconds)
        with torch_threads(exp.threads):
            runner.prepare()  # here, once: the workers get what it made with the runner
            start = time.perf_counter()
            starmap_closure(runner.train_ics, [(v, s, _logits_path(runs_dir, v, s)) for v, s in missing], workers,
                            threads=exp.threads)
            seconds["ics"] = time.perf_counter() - start
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
    """The steps that need data: decoded views or datasets, stage 0, stage features, IC training; each done once,
    on demand."""

    def __init__(self, exp: CompressedExperiment, train_videos: VideoList, eval_videos: dict[str, VideoList],
                 classes: list[str], stage_dir: Path, runs_dir: Path, progress: bool, seconds: dict[str, float]):
        self.exp, self.classes, self.progress, self.seconds = exp, classes, progress, seconds
        self.stage_dir, self.runs_dir = stage_dir, runs_dir
        self.train_videos = list(train_videos)
        self.eval_videos = {name: list(videos) for name, videos in eval_videos.items()}
        self.device = resolve_device(exp.device, DistEnv.from_env())
        self._features: dict[str, Any] | None = None
        self._streams: tuple[CompressedVideoDataset, dict[str, CompressedVideoDataset]] | None = None
        self._backbones: dict[str, dict[str, Tensor]] | None = None

    def _timed(self, name: str, start: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def _dataset(self, videos: VideoList, train: bool) -> CompressedVideoDataset:
        """Extracts what is not cached yet (at construction)."""
        exp = self.exp
        return CompressedVideoDataset(videos, num_segments=exp.segments, train=train, size=exp.size,
                                      seed=exp.backbone_seed, progress=self.progress)

    def _decoded(self) -> tuple[list[dict[str, Tensor]], dict[str, dict[str, Tensor]], dict[str, Tensor]]:
        """Random training views (epochs 1..V of a training-mode dataset), and the centre view of every split."""
        random_views, _ = decoded_views(self._dataset(self.train_videos, train=True),
                                        list(range(1, self.exp.views + 1)), progress=self.progress,
                                        desc="decoding training views")
        centre, labels = {}, {}
        for name, videos in {"train": self.train_videos, **self.eval_videos}.items():
            (centre[name],), labels[name] = decoded_views(self._dataset(videos, train=False), [0],
                                                          progress=self.progress, desc=f"decoding {name} (centre)")
        return random_views, centre, labels

    def streams(self) -> tuple[CompressedVideoDataset, dict[str, CompressedVideoDataset]]:
        """Without cached features: the training dataset (random frames per epoch) and every split's test-style
        dataset, the training clips' as "train"."""
        if self._streams is None:
            start = time.perf_counter()
            centre = {name: self._dataset(videos, train=False)
                      for name, videos in {"train": self.train_videos, **self.eval_videos}.items()}
            self._streams = (self._dataset(self.train_videos, train=True), centre)
            self._timed("extraction", start)
        return self._streams

    def _train_config(self, folder: Path, run_name: str, seed: int, epochs: int, lr: float, objective: str,
                      kwargs: dict[str, Any]) -> TrainConfig:
        """The Trainer's config; the run folder sits beside the cache it feeds, so it never mixes settings."""
        exp = self.exp
        workers = 0 if exp.cache_features else exp.num_workers
        return TrainConfig(
            seed=seed, run_name=run_name, out_dir=str(folder / "runs" / run_name), device=exp.device,
            epochs=epochs, data=DataConfig(dataset="compressed", batch_size=exp.batch_size, eval_split=None,
                                           num_frames=exp.segments, size=exp.size, flip=False, num_workers=workers),
            optim=OptimConfig(lr=lr, weight_decay=exp.weight_decay, warmup_epochs=exp.warmup_epochs, amp=False),
            objective=ObjectiveConfig(name=objective, kwargs=kwargs))

    def _stage0(self, data: Dataset) -> dict[str, dict[str, Tensor]]:
        """Backbones + final classifiers: trained with cross-entropy on `data`, from the checkpoints when there are
        some, or the checkpoints' own with `stage0_epochs=0` (cached in stage0.pt)."""
        from actiondistill.train import Trainer

        path = self.stage_dir / "stage0.pt"
        if path.is_file():
            return torch.load(path, map_location="cpu", weights_only=True)["backbones"]
        start = time.perf_counter()
        exp = self.exp
        seed_everything(exp.backbone_seed)
        triplet = exp.build_triplet(len(self.classes), freeze_backbone=not exp.finetune_backbone)
        reports = exp.load_checkpoints(triplet)
        history: list[dict[str, Any]] = []
        if exp.stage0_epochs == 0:
            without = {m: r.path for m, r in reports.items() if not r.classifier}
            if without:
                raise ValueError(f"stage0_epochs=0 keeps the checkpoints' classifiers as the final classifiers, but "
                                 f"{without} hold none for {len(self.classes)} classes (a classifier of another "
                                 "shape is skipped); train stage 0 (stage0_epochs >= 1) instead")
        else:
            kwargs = {"exits": [4]}
            cfg = self._train_config(self.stage_dir, f"pkd-stage0-{self.stage_dir.name[:8]}", exp.backbone_seed,
                                     exp.stage0_epochs, exp.stage0_lr, "compressed_ce", kwargs)
            trainer = Trainer(cfg, triplet, data, objective=build_objective("compressed_ce", **kwargs),
                              progress=self.progress)
            trainer.fit(resume=True)
            history = trainer.history
        backbones = {m: {k: v.cpu() for k, v in triplet.nets[m].backbone.state_dict().items()} for m in MODALITIES}
        atomic_save(path, lambda tmp: torch.save({"backbones": backbones, "history": history}, tmp))
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
            backbones = self._stage0(ViewBank(random_views, labels["train"], self.classes))
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

    def backbones(self) -> dict[str, dict[str, Tensor]]:
        """Without cached features: stage 0's backbones, trained on the streamed training clips."""
        if self._backbones is None:
            self._backbones = self._stage0(self.streams()[0])
        return self._backbones

    def prepare(self) -> None:
        """What every IC run reads: the stage features (cached-feature runs) or stage 0's backbones."""
        if self.exp.cache_features:
            self.features()
        else:
            self.backbones()

    def train_ics(self, variant: str, seed: int, target: Path) -> None:
        """Train one variant's ICs with one seed on the frozen backbones, then save all 12 ICs' logits."""
        from actiondistill.train import Trainer

        exp = self.exp
        if exp.cache_features:
            features = self.features()
        else:
            backbones = self.backbones()
        objective, kwargs = VARIANTS[variant]
        kwargs = {**kwargs, "epochs": exp.ic_epochs} if objective == "pkd" else dict(kwargs)
        seed_everything(seed)
        if exp.cache_features:
            model = ICHeads(self._frozen_triplet(features["backbones"]))
            data = ViewBank(features["random"], features["labels"]["train"], self.classes)
            evaluated, labels = features["centre"], features["labels"]
        else:
            model = self._frozen_triplet(backbones)
            data, evaluated = self.streams()
            labels = {name: torch.tensor(dataset.labels) for name, dataset in evaluated.items()}
        cfg = self._train_config(self.runs_dir, f"pkd-{variant}-seed{seed}-{self.runs_dir.name[4:12]}", seed,
                                 exp.ic_epochs, exp.ic_lr, objective, kwargs)
        Trainer(cfg, model, data, objective=build_objective(objective, **kwargs), progress=self.progress).fit(
            resume=True)
        workers = 0 if exp.cache_features else exp.num_workers
        saved = {"logits": {name: ic_logits(model, split, exp.eval_batch_size, workers)
                            for name, split in evaluated.items()},
                 "labels": labels}
        atomic_save(target, lambda tmp: torch.save(saved, tmp))


@torch.no_grad()
def ic_logits(model: torch.nn.Module, data: dict[str, Any] | Dataset, batch_size: int = 64,
              num_workers: int = 0) -> Tensor:
    """(12, N, C) logits in WISE's order of a triplet-like model (eval mode, restored after).

    Args:
        model: a `CompressedTriplet`, or `ICHeads` on stage features.
        data: one view (a dict of tensors whose first dimension is the clip, as `ViewBank` serves them) or a
            dataset of such items (a test-style `CompressedVideoDataset`), read in order.
        batch_size: clips per batch.
        num_workers: DataLoader processes for a dataset.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if isinstance(data, dict):
        data = ViewBank([data], torch.zeros(_num_clips(data), dtype=torch.long))
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    chunks = []
    try:
        for batch in loader:
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
