"""Per-frame CLIP image embeddings of every clip of a world, computed once and cached on disk.

Why: with the image encoder frozen (how the embedded profile affords comparing many video models over several
seeds on a 2-core CPU), a frame's embedding never changes during training, so running the encoder on every frame
of every step would recompute the same numbers thousands of times. `FrameFeatureCache` runs it once per
(backbone weights, manifest, frame size) on up to `max_frames` evenly spaced frames of every clip (all of them for
clips that short), and `FrameFeatureDataset` then samples among those frames as a `VideoDataset` samples a clip's
frames (the same `FrameSampler`, the same per-item randomness) but returns their cached embeddings. A video
model's `encode_video` accepts those (B, T, D) embeddings in place of pixels, so the Trainer, the objectives and
`evaluate` run unchanged, and the result equals training on pixels with a frozen encoder and no pixel augmentation
(on a world of `max_frames` frames per clip).

Cache files live in data/cache/features/<key>.pt; the key names the backbone and hashes its checkpoint file, the
manifest file and the frame size, so new weights or a regenerated world never reuse stale features.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from actiondistill.data.sampling import FrameSampler
from actiondistill.engine.wrapper import DatasetWrapper
from actiondistill.io import atomic_save, file_sha256, read_json

log = logging.getLogger(__name__)

#: Bump when the way features are computed changes (transform, frame selection), so old files are not reused.
FEATURES_VERSION = 1
MANIFEST_NAME = "manifest.json"
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def manifest_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    p = p / MANIFEST_NAME if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such manifest (expected a SynthActions manifest.json or its folder)")
    return p


@dataclass
class FrameFeatures:
    """Embeddings of all frames of a list of clips, stored back to back.

    Attributes:
        features: (total frames, D) float32.
        offsets: (clips + 1,) int64; clip i owns rows offsets[i]:offsets[i + 1].
        paths: each clip's video path relative to the manifest's folder (the manifest's "path" field).
        meta: what the features were computed from (backbone, checkpoint hash, manifest hash, size, key) and how
            long that took (`compute_s`, so a reused cache still says what it saved).
    """

    features: torch.Tensor
    offsets: torch.Tensor
    paths: list[str]
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        self._row = {path: i for i, path in enumerate(self.paths)}

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def index(self, path: str) -> int:
        """The clip number of a manifest path."""
        if path not in self._row:
            raise KeyError(f"{path}: not in the feature cache {self.meta.get('key')} (was it computed from another "
                           "manifest?)")
        return self._row[path]

    def num_frames(self, clip: int) -> int:
        return int(self.offsets[clip + 1] - self.offsets[clip])

    def frames(self, clip: int, indices: Sequence[int] | None = None) -> torch.Tensor:
        """(T, D) embeddings of the given frame indices of clip `clip` (all frames when None)."""
        rows = self.features[int(self.offsets[clip]) : int(self.offsets[clip + 1])]
        return rows if indices is None else rows[torch.as_tensor(list(indices), dtype=torch.long)]


class FrameFeatureCache:
    """The cached frame embeddings of one (backbone + weights, manifest, frame size).

    Args:
        manifest: a SynthActions manifest.json or its folder; every clip of every split is encoded.
        backbone: a CLIP architecture name (create_backbone).
        pretrained: the backbone's weights: a file or a pretrained tag that resolves to a file. Required:
            features of randomly initialised weights could not be told apart by any key.
        size: frame side; frames go through `eval_transform(size)` (resize, centre crop, CLIP normalisation).
        root: where cache files live (default data/cache/features).
        batch_size: frames per encoder call.
        device: where the encoder runs ("cpu", "cuda", ...).
        dtype: "fp32", or "bf16" / "fp16" autocast (mixed precision, weights in fp32; features are stored as fp32).
            bf16 nearly halves the cost on CPUs with bf16 instructions, for a cosine similarity to fp32 above
            0.9999; it is part of the key.
        max_frames: frames cached per clip, evenly spaced (segment centres); clips with at most that many keep all.
            The default 16 is twice the 8 TSN segments the chapters sample, so training still draws one of several
            frames per segment, for half the encoding cost of a 32-frame world; it is part of the key when it
            drops frames. None caches every frame.
        progress: tqdm bar while computing.
    """

    def __init__(self, manifest: str | os.PathLike, backbone: str, pretrained: str | os.PathLike, size: int,
                 root: str | os.PathLike | None = None, batch_size: int = 256, device: str | torch.device = "cpu",
                 dtype: str = "fp32", max_frames: int | None = 16, progress: bool = True):
        from actiondistill.models.pretrained import resolve_pretrained

        if pretrained is None:
            raise ValueError(f"backbone {backbone!r}: pretrained=None; cached features need weights from a file (a "
                             "random initialisation has no reproducible identity for the cache key)")
        if dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"dtype={dtype!r}: expected one of {sorted(AUTOCAST_DTYPES)}")
        if batch_size < 1 or size < 1:
            raise ValueError(f"batch_size={batch_size}, size={size}: both must be >= 1")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames={max_frames}: expected a positive number of frames per clip, or None")
        self.manifest = manifest_file(manifest)
        self.backbone = backbone
        self.checkpoint = Path(resolve_pretrained(backbone, pretrained)[0])
        self.pretrained = str(pretrained)
        self.size = int(size)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_frames = max_frames
        self.progress = progress
        self.computed = False
        self.checkpoint_sha256 = file_sha256(self.checkpoint)
        self.manifest_sha256 = file_sha256(self.manifest)
        clip_frames = read_json(self.manifest).get("frames")  # a SynthActions world's frames per clip
        self.subsampled = max_frames is not None and (clip_frames is None or int(clip_frames) > max_frames)
        if root is None:
            from actiondistill.paths import data_dir

            root = data_dir() / "cache" / "features"
        self.root = Path(root)

    @property
    def key(self) -> str:
        """`<backbone>-<checkpoint hash>-<manifest hash>-s<size>[-<dtype>][-n<max_frames>]-v<version>`."""
        precision = "" if self.dtype == "fp32" else f"-{self.dtype}"
        frames = f"-n{self.max_frames}" if self.subsampled else ""
        return (f"{self.backbone}-{self.checkpoint_sha256[:12]}-{self.manifest_sha256[:12]}-s{self.size}{precision}"
                f"{frames}-v{FEATURES_VERSION}")

    @property
    def path(self) -> Path:
        return self.root / f"{self.key}.pt"

    def get(self) -> FrameFeatures:
        """Load the cached features, computing and saving them first when absent (`computed` says which)."""
        return get_together([self])[0]

    def load(self) -> FrameFeatures:
        try:
            raw = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several unrelated types for corrupt files
            raise ValueError(f"{self.path}: not a readable feature cache ({type(err).__name__}: {err}); delete it "
                             "to recompute") from err
        if raw.get("meta", {}).get("key") != self.key:
            raise ValueError(f"{self.path}: holds features for {raw.get('meta', {}).get('key')!r}, expected "
                             f"{self.key!r}; delete it to recompute")
        return FrameFeatures(raw["features"], raw["offsets"], list(raw["paths"]), dict(raw["meta"]))

    def decoding(self) -> tuple[Path, int, int | None]:
        """What decoding the clips depends on (manifest, frame size, frames per clip): caches that share it can
        share one decoding pass (`compute_together`)."""
        return self.manifest, self.size, self.max_frames

    @torch.inference_mode()
    def agreement(self, features: FrameFeatures, clips: int = 2) -> float:
        """Lowest cosine similarity between the cached embeddings of the first `clips` clips and a fresh fp32
        encoding of their frames: 1.0 up to float rounding for fp32 caches, the cost of precision for bf16/fp16."""
        from actiondistill.models.backbones import create_backbone

        model = create_backbone(self.backbone, pretrained=self.pretrained, device=self.device).eval()
        lowest = 1.0
        for clip, frames in enumerate(self._decoded(features.paths[:clips])):
            fresh = model.encode_image(frames.to(self.device)).float().cpu()
            lowest = min(lowest, float(torch.nn.functional.cosine_similarity(fresh, features.frames(clip)).min()))
        return lowest

    def _decoded(self, paths: Sequence[str]) -> Iterator[torch.Tensor]:
        """Each clip's cached frames (`frame_indices`) as the eval transform makes them: (n, 3, size, size)."""
        from actiondistill.data.transforms import eval_transform
        from actiondistill.data.video import open_video

        transform = eval_transform(self.size)
        for path in paths:
            with open_video(self.manifest.parent / path) as reader:
                yield transform(reader.read(frame_indices(reader.num_frames, self.max_frames)))


def get_together(caches: Sequence[FrameFeatureCache]) -> list[FrameFeatures]:
    """Every cache's features, those not on disk computed first in one decoding pass (`compute_together`), saved
    atomically, and each cache's `computed` set. Chapter 3's four student initialisations are four caches of one
    world: decoded once, not four times."""
    missing = {cache.path: cache for cache in caches if not cache.path.is_file()}  # one computation per key
    made = dict(zip(missing, compute_together(list(missing.values())), strict=True)) if missing else {}
    for path, features in made.items():
        atomic_save(path, lambda tmp, f=features: torch.save(_to_file(f), tmp))
    for cache in caches:
        cache.computed = cache.path in made
    return [made[cache.path] if cache.path in made else cache.load() for cache in caches]


@torch.inference_mode()
def compute_together(caches: Sequence[FrameFeatureCache]) -> list[FrameFeatures]:
    """Compute the features of caches that decode alike (`FrameFeatureCache.decoding`): each clip is decoded and
    transformed once and encoded by every cache's encoder. A cache's `compute_s` is its own encoding time plus an
    equal share of the decoding, so that summing them over caches gives the wall time."""
    decodings = {cache.decoding() for cache in caches}
    if len(decodings) != 1:
        raise ValueError(f"caches decode differently ({sorted(map(str, decodings))}): expected one manifest, frame "
                         "size and frames per clip")
    first = caches[0]
    clips = read_json(first.manifest)["clips"]
    paths = [str(clip["path"]) for clip in clips]
    encoders = [_BatchedEncoder(cache) for cache in caches]
    names = ", ".join(dict.fromkeys(cache.backbone for cache in caches))
    bar = tqdm(total=len(paths), desc=f"frame features ({names})", unit="clip",
               disable=not any(cache.progress for cache in caches))
    decode_s, decoding = 0.0, time.perf_counter()
    for frames in first._decoded(paths):
        decode_s += time.perf_counter() - decoding
        for encoder in encoders:
            encoder.add(frames)
        bar.update(1)
        decoding = time.perf_counter()
    bar.close()
    return [encoder.finish(paths, decode_s / len(encoders)) for encoder in encoders]


class _BatchedEncoder:
    """One cache's image encoder, fed clip by clip and run on batches of the cache's `batch_size` frames."""

    def __init__(self, cache: FrameFeatureCache):
        from actiondistill.models.backbones import create_backbone

        started = time.perf_counter()
        self.cache = cache
        self.model = create_backbone(cache.backbone, pretrained=cache.pretrained, device=cache.device).eval()
        amp = AUTOCAST_DTYPES[cache.dtype]
        self.autocast = torch.autocast(cache.device.type, dtype=amp, enabled=amp is not None)
        self.counts: list[int] = []
        self.chunks: list[torch.Tensor] = []
        self.pending: list[torch.Tensor] = []
        self.pending_frames = 0
        self.seconds = time.perf_counter() - started

    def add(self, frames: torch.Tensor) -> None:
        started = time.perf_counter()
        self.counts.append(frames.shape[0])
        self.pending.append(frames)
        self.pending_frames += frames.shape[0]
        while self.pending_frames >= self.cache.batch_size:
            batch = torch.cat(self.pending)
            self._encode(batch[: self.cache.batch_size])
            rest = batch[self.cache.batch_size :]
            self.pending, self.pending_frames = ([rest] if len(rest) else []), len(rest)
        self.seconds += time.perf_counter() - started

    def _encode(self, batch: torch.Tensor) -> None:
        with self.autocast:
            self.chunks.append(self.model.encode_image(batch.to(self.cache.device)).float().cpu())

    def finish(self, paths: list[str], decode_share_s: float) -> FrameFeatures:
        started = time.perf_counter()
        if self.pending:
            self._encode(torch.cat(self.pending))
        self.seconds += time.perf_counter() - started
        cache = self.cache
        offsets = torch.zeros(len(self.counts) + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(torch.as_tensor(self.counts, dtype=torch.long), 0)
        meta = {"key": cache.key, "version": FEATURES_VERSION, "backbone": cache.backbone,
                "pretrained": cache.pretrained, "checkpoint_sha256": cache.checkpoint_sha256,
                "manifest": str(cache.manifest), "manifest_sha256": cache.manifest_sha256, "size": cache.size,
                "device": str(cache.device), "dtype": cache.dtype, "max_frames": cache.max_frames,
                "compute_s": round(self.seconds + decode_share_s, 3)}
        return FrameFeatures(torch.cat(self.chunks).clone(), offsets, paths, meta)


def frame_indices(num_frames: int, max_frames: int | None) -> list[int]:
    """All frames of a clip, or `max_frames` segment centres of it when it is longer."""
    if max_frames is None or num_frames <= max_frames:
        return list(range(num_frames))
    return [int((k + 0.5) * num_frames / max_frames) for k in range(max_frames)]


def _to_file(features: FrameFeatures) -> dict[str, Any]:
    return {"features": features.features, "offsets": features.offsets, "paths": features.paths,
            "meta": features.meta}


class FrameFeatureDataset(Dataset):
    """The clips of some splits of a manifest as {"frames": (T, D) cached embeddings, "label", "index"}.

    Frame indices come from `sampler(num_frames, rng)` with the rng a `VideoDataset` would use for the same
    (seed, epoch, index), so a run on features sees the frames a run on pixels would.

    Args:
        features: the cache of the manifest's frames (`FrameFeatureCache.get()`).
        manifest: the manifest the features were computed from.
        split: one split name or several.
        sampler: frame indices (default `FrameSampler()`: 8 TSN test frames).
        seed: base of the per-item randomness.
    """

    def __init__(self, features: FrameFeatures, manifest: str | os.PathLike, split: str | Sequence[str],
                 sampler: FrameSampler | None = None, seed: int = 0):
        path = manifest_file(manifest)
        data = read_json(path)
        splits = {split} if isinstance(split, str) else set(split)
        clips = [clip for clip in data["clips"] if clip["split"] in splits]
        if not clips:
            raise ValueError(f"{path}: no clips in split {sorted(splits)}")
        self.classes = list(data["classes"])
        self.rows = [features.index(str(clip["path"])) for clip in clips]
        self._labels = [int(clip["label"]) for clip in clips]
        self.features = features
        self.sampler = sampler if sampler is not None else FrameSampler()
        self.seed = seed
        self.epoch = 0

    @property
    def class_texts(self) -> list[str]:
        from actiondistill.data.labels import class_name_to_text

        return [class_name_to_text(c) for c in self.classes]

    @property
    def labels(self) -> list[int]:
        return list(self._labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def sample(self, index: int) -> list[int]:
        """The frame indices item `index` takes this epoch: a function of (seed, epoch, index) alone, so another
        encoder's cache of the same frames (`TeacherFrameDataset`) can be read at the very same frames."""
        row = self.rows[index]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))
        return [int(i) for i in self.sampler(self.features.num_frames(row), rng)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} clips")
        index %= len(self)
        frames = self.features.frames(self.rows[index], self.sample(index))
        return {"frames": frames, "label": self._labels[index], "index": index}


class TeacherFrameDataset(DatasetWrapper):
    """`dataset`'s items plus "teacher_frames": a second image encoder's cached embeddings of the very frames whose
    embeddings are in "frames".

    Why: a student on a small CLIP distilled from a teacher on a large one (chapter 7) trains on the small CLIP's
    cached frame embeddings, but the teacher can only read its own encoder's; with random frame sampling its logits
    cannot be cached per clip either. Both caches are of one manifest with one frame layout (the same `max_frames`),
    so the teacher's rows at the frame indices the student's item sampled (`FrameFeatureDataset.sample`) are the
    teacher's view of the student's exact input.

    Args:
        dataset: a `FrameFeatureDataset`, bare or inside wrappers that keep its item indices and expose it as
            `.dataset` (`ClassSubset`, `SpatialTargetDataset`).
        teacher_features: the teacher encoder's cache of the same manifest (`FrameFeatureCache.get()`); check that
            it is the teacher's with `check_encoder`.
    """

    def __init__(self, dataset: Any, teacher_features: FrameFeatures):
        source = dataset
        while not isinstance(source, FrameFeatureDataset):
            source = vars(source).get("dataset") if hasattr(source, "__dict__") else None
            if source is None:
                raise ValueError(f"{type(dataset).__name__}: expected a FrameFeatureDataset (possibly inside wrappers "
                                 "exposing it as `.dataset`): teacher frames are read at the student's cached frames")
        student = source.features
        ours, theirs = student.meta.get("manifest_sha256"), teacher_features.meta.get("manifest_sha256")
        if ours != theirs:
            raise ValueError(f"teacher features {teacher_features.meta.get('key')!r} are of manifest "
                             f"{str(theirs)[:12]}, the student's {student.meta.get('key')!r} of {str(ours)[:12]}: "
                             "cache both encoders' features of the same manifest")
        self.teacher_rows = [teacher_features.index(student.paths[row]) for row in source.rows]
        for row, teacher_row in zip(source.rows, self.teacher_rows, strict=True):
            if student.num_frames(row) != teacher_features.num_frames(teacher_row):
                raise ValueError(f"{student.paths[row]}: {student.num_frames(row)} cached frames for the student, "
                                 f"{teacher_features.num_frames(teacher_row)} for the teacher: the two caches need "
                                 "the same frame layout (the same max_frames)")
        self.dataset = dataset
        self.source = source
        self.teacher_features = teacher_features

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        clip = int(item["index"])  # the FrameFeatureDataset's own index (wrappers keep it)
        item["teacher_frames"] = self.teacher_features.frames(self.teacher_rows[clip], self.source.sample(clip))
        return item


def check_encoder(features: FrameFeatures, backbone: str, pretrained: str | os.PathLike | None, owner: str) -> None:
    """Refuse cached frame embeddings that `owner` (e.g. "the teacher's") image encoder, `backbone` with the weights
    `pretrained`, did not make: the cache key names the backbone and hashes its weight file."""
    from actiondistill.models.pretrained import resolve_pretrained

    if pretrained is None:
        raise ValueError(f"{owner} image encoder ({backbone}) has no pretrained weights; cached features need the "
                         "encoder's weight file")
    sha = file_sha256(resolve_pretrained(backbone, pretrained)[0])
    meta = features.meta
    if meta.get("backbone") != backbone or meta.get("checkpoint_sha256") != sha:
        raise ValueError(f"cached features {meta.get('key')!r} come from {meta.get('backbone')} weights "
                         f"{str(meta.get('checkpoint_sha256'))[:12]}, but {owner} image encoder is {backbone} weights "
                         f"{sha[:12]} ({pretrained}); cache the features of {owner} image encoder")
