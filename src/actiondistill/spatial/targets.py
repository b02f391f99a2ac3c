"""Soft spatial targets per clip from a frozen CLIP (the spatial prediction framework), cached on disk; and the
ground-truth alternative only the synthetic world allows.

`spatial_targets(clips, vocabularies, backbone, pretrained)` scores K frames of every clip against every vocabulary
(actiondistill.spatial.scoring) and returns a `SpatialTargets`: one (clips, concepts) array per objective. The frame
embeddings are those of the frame-feature cache when the clips come from a manifest (actiondistill.frame_cache: the
same frozen-encoder embeddings the video models of chapter 2 train on, computed once for both), else the K frames
are decoded and encoded directly (real datasets). Each clip contributes the centres of K equal segments, so targets
do not depend on a training run's frame sampling.

Files: data/cache/spatial_targets/<backbone>-<hash>.npz, the hash covering the clips (manifest sha256), the CLIP
checkpoint's sha256, the frame size and feature precision, the vocabularies (concepts, phrases, templates,
negatives, multi-label), K, the temperature and the aggregation; so any change gives a new file and an unchanged
request never touches the encoders.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from actiondistill.frame_cache import AUTOCAST_DTYPES, FrameFeatureCache, FrameFeatures, manifest_file
from actiondistill.io import atomic_save, file_sha256, read_json
from actiondistill.spatial.clips import ClipList
from actiondistill.spatial.scoring import (
    AGGREGATIONS,
    aggregate_frames,
    ensemble_text_embeddings,
    frame_probabilities,
    negative_text_embedding,
)
from actiondistill.spatial.vocab import MANIFEST_OBJECTIVES, Vocabulary, as_vocabularies, manifest_vocabularies

#: Bump when the way targets are computed changes, so old files are not reused.
TARGETS_VERSION = 1
#: CLIP's test-time logit scale (100) as a temperature.
DEFAULT_TEMPERATURE = 0.01
DEFAULT_FRAMES = 8
_TEXT_CHUNK = 256
Vocabularies = Mapping[str, Vocabulary] | Sequence[Vocabulary]


@dataclass
class SpatialTargets:
    """Per-clip targets of several spatial objectives.

    Attributes:
        root: the folder the clip paths are relative to (a manifest's folder).
        paths: the clips' video paths, relative to `root`.
        targets: objective name -> float32 (clips, concepts); rows are distributions for single-label objectives
            and independent presence probabilities for multi-label ones.
        vocabularies: objective name -> its Vocabulary (concept order = column order).
        meta: how the targets were made ("source": "clip" or "ground_truth", the cache key, settings, compute_s).
    """

    root: Path
    paths: list[str]
    targets: dict[str, np.ndarray]
    vocabularies: dict[str, Vocabulary]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if set(self.targets) != set(self.vocabularies):
            raise ValueError(f"targets {sorted(self.targets)} and vocabularies {sorted(self.vocabularies)} differ")
        for name, array in self.targets.items():
            expected = (len(self.paths), len(self.vocabularies[name]))
            if array.shape != expected:
                raise ValueError(f"targets[{name!r}]: shape {array.shape}, expected (clips, concepts) = {expected}")
        self._row: dict[Path, int] | None = None

    @property
    def names(self) -> list[str]:
        return list(self.vocabularies)

    @property
    def multi_label(self) -> list[str]:
        """The objectives with multi-label (BCE) targets."""
        return [name for name, vocab in self.vocabularies.items() if vocab.multi_label]

    def head_sizes(self) -> dict[str, int]:
        """{objective: concepts}: the `spatial_heads` a multi-task student needs for these targets."""
        return {name: len(vocab) for name, vocab in self.vocabularies.items()}

    def select(self, names: Sequence[str]) -> SpatialTargets:
        """The same targets restricted to some objectives (e.g. for an ablation)."""
        unknown = [n for n in names if n not in self.targets]
        if unknown or not names:
            raise ValueError(f"objectives {list(names)}: expected a non-empty subset of {self.names}")
        return SpatialTargets(self.root, list(self.paths), {n: self.targets[n] for n in names},
                              {n: self.vocabularies[n] for n in names}, dict(self.meta))

    def rows(self, files: Sequence[str | os.PathLike]) -> list[int]:
        """The target row of each video file (absolute, or relative to the current directory)."""
        if self._row is None:
            self._row = {(self.root / p).resolve(): i for i, p in enumerate(self.paths)}
        out, missing = [], []
        for file in files:
            row = self._row.get(Path(file).resolve())
            if row is None:
                missing.append(str(file))
            out.append(row)
        if missing:
            raise KeyError(f"{missing[0]}: no spatial targets for this video ({len(missing)} of {len(files)} missing; "
                           f"the targets cover {len(self.paths)} clips under {self.root}, key "
                           f"{self.meta.get('key')!r})")
        return out


def save_targets(path: str | os.PathLike, targets: SpatialTargets) -> Path:
    """Write targets as one .npz (atomically): arrays `target_<name>`, the paths and a JSON `meta`."""
    meta = {**targets.meta, "vocabularies": [v.to_dict() for v in targets.vocabularies.values()]}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to the temporary name
            np.savez(f, paths=np.array(targets.paths, dtype=str), meta=np.array(json.dumps(meta)),
                     **{f"target_{name}": array for name, array in targets.targets.items()})

    return atomic_save(path, write)


def load_targets(path: str | os.PathLike, root: str | os.PathLike) -> SpatialTargets:
    """Read a file of `save_targets`; `root` is where its clip paths live now."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            vocabularies = {v["name"]: Vocabulary.from_dict(v) for v in meta.pop("vocabularies")}
            targets = {name: stored[f"target_{name}"].astype(np.float32) for name in vocabularies}
            paths = [str(p) for p in stored["paths"]]
    except Exception as err:  # numpy, zipfile and json raise several unrelated types for corrupt files
        raise ValueError(f"{path}: not a readable spatial-target file ({type(err).__name__}: {err}); delete it to "
                         "recompute") from err
    return SpatialTargets(Path(root), paths, targets, vocabularies, meta)


class SpatialTargetCache:
    """The CLIP-based spatial targets of one (clips, CLIP weights, vocabularies, settings), computed once.

    Args:
        clips: a SynthActions manifest (or its folder), or a `ClipList` (e.g. `ClipList.from_dataset(hmdb51(...))`).
        vocabularies: the objectives (`manifest_vocabularies`, `read_vocabulary`).
        backbone: the CLIP architecture (`create_backbone` name).
        pretrained: its weights (a file, or a tag that resolves to one); required, as for the feature cache.
        size: frame side of the eval transform (default: the manifest's frame size).
        frames: K, the segment-centre frames scored per clip (fewer when a clip is shorter).
        temperature: of the per-frame softmax / sigmoid over cosine similarities.
        aggregate: "mean" or "max" over the K frames.
        dtype: "fp32", or "bf16" / "fp16" autocast for the image encoder (part of the key).
        features: the manifest's cached frame embeddings (`FrameFeatureCache.get()`) to reuse; they must come from
            the same weights, manifest and size; their precision replaces `dtype`.
        reuse_features: with a manifest and no `features`, take the embeddings from the frame-feature cache (and
            fill it: every frame of every clip is encoded, which chapter 2's video models reuse); False decodes and
            encodes only the K frames per clip.
        root: folder of target files (default data/cache/spatial_targets); `features_root` that of feature files.
        batch_size: frames per image-encoder call; device: where the encoders run; progress: tqdm bars.
    """

    def __init__(self, clips: ClipList | str | os.PathLike, vocabularies: Vocabularies, backbone: str,
                 pretrained: str | os.PathLike, size: int | None = None, frames: int = DEFAULT_FRAMES,
                 temperature: float = DEFAULT_TEMPERATURE, aggregate: str = "mean", dtype: str = "fp32",
                 features: FrameFeatures | None = None, reuse_features: bool = True,
                 root: str | os.PathLike | None = None, features_root: str | os.PathLike | None = None,
                 batch_size: int = 256, device: str | torch.device = "cpu", progress: bool = True):
        from actiondistill.models.pretrained import resolve_pretrained

        self.clips = clips if isinstance(clips, ClipList) else ClipList.from_manifest(clips)
        self.vocabularies = as_vocabularies(vocabularies)
        if pretrained is None:
            raise ValueError(f"backbone {backbone!r}: pretrained=None; spatial targets need CLIP weights from a file")
        checks = [(frames >= 1, f"frames={frames}: expected >= 1"),
                  (temperature > 0, f"temperature={temperature}: expected > 0"),
                  (aggregate in AGGREGATIONS, f"aggregate={aggregate!r}: expected one of {AGGREGATIONS}"),
                  (dtype in AUTOCAST_DTYPES, f"dtype={dtype!r}: expected one of {sorted(AUTOCAST_DTYPES)}"),
                  (batch_size >= 1, f"batch_size={batch_size}: expected >= 1")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if size is None:
            if self.clips.manifest is None:
                raise ValueError("size: required for clips that do not come from a manifest (the eval frame size)")
            size = int(read_json(self.clips.manifest)["size"])
        self.backbone = backbone
        self.pretrained = str(pretrained)
        self.checkpoint_sha256 = file_sha256(resolve_pretrained(backbone, pretrained)[0])
        self.size = int(size)
        self.frames = int(frames)
        self.temperature = float(temperature)
        self.aggregate = aggregate
        self.dtype = dtype
        self.features = features
        if features is not None:
            self._check_features(features)
            self.dtype = str(features.meta.get("dtype", "fp32"))
        self.reuse_features = reuse_features
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.progress = progress
        self.computed = False
        if root is None:
            from actiondistill.paths import data_dir

            root = data_dir() / "cache" / "spatial_targets"
        self.root = Path(root)
        self.features_root = features_root

    def key_fields(self) -> dict[str, Any]:
        """Everything the targets depend on."""
        return {"version": TARGETS_VERSION, "clips": self.clips.fingerprint, "backbone": self.backbone,
                "checkpoint_sha256": self.checkpoint_sha256, "size": self.size, "dtype": self.dtype,
                "frames": self.frames, "temperature": self.temperature, "aggregate": self.aggregate,
                "vocabularies": [v.to_dict() for v in self.vocabularies.values()]}

    @property
    def key(self) -> str:
        digest = hashlib.sha256(json.dumps(self.key_fields(), sort_keys=True).encode()).hexdigest()
        return f"{self.backbone}-{digest[:12]}"

    @property
    def path(self) -> Path:
        return self.root / f"{self.key}.npz"

    def get(self) -> SpatialTargets:
        """Load the cached targets, computing and saving them first when absent (`computed` says which)."""
        self.computed = not self.path.is_file()
        if self.computed:
            targets = self.compute()
            save_targets(self.path, targets)
            return targets
        targets = load_targets(self.path, self.clips.root)
        if targets.meta.get("key") != self.key or len(targets.paths) != len(self.clips):
            raise ValueError(f"{self.path}: holds targets for {targets.meta.get('key')!r}, expected {self.key!r}; "
                             "delete it to recompute")
        return targets

    @torch.inference_mode()
    def compute(self) -> SpatialTargets:
        """Encode the prompts, score K frames of every clip against every vocabulary, aggregate per clip."""
        from actiondistill.models.backbones import create_backbone, get_tokenizer

        started = time.perf_counter()
        model = create_backbone(self.backbone, pretrained=self.pretrained, device=self.device).eval()
        tokenizer = get_tokenizer(model)

        def encode(prompts: list[str]) -> torch.Tensor:
            return torch.cat([model.encode_text(tokenizer(prompts[i:i + _TEXT_CHUNK]).to(self.device)).float().cpu()
                              for i in range(0, len(prompts), _TEXT_CHUNK)])

        text, negative = {}, {}
        for name, vocab in tqdm(self.vocabularies.items(), desc="spatial prompts", unit="vocabulary",
                                disable=not self.progress, leave=False):
            text[name] = ensemble_text_embeddings(encode, vocab)
            negative[name] = negative_text_embedding(encode, vocab.negatives) if vocab.multi_label else None
        out = {name: np.empty((len(self.clips), len(vocab)), dtype=np.float32)
               for name, vocab in self.vocabularies.items()}
        source, embeddings = self._frame_embeddings(model)
        bar = tqdm(total=len(self.clips), desc="spatial targets", unit="clip", disable=not self.progress)
        for clip, frames in enumerate(embeddings):
            for name, vocab in self.vocabularies.items():
                probs = frame_probabilities(frames, text[name], self.temperature, negative[name])
                out[name][clip] = aggregate_frames(probs, self.aggregate, vocab.multi_label).numpy()
            bar.update(1)
        bar.close()
        meta = {"key": self.key, "source": "clip", "pretrained": self.pretrained, "frame_embeddings": source,
                "compute_s": round(time.perf_counter() - started, 3),
                **{k: v for k, v in self.key_fields().items() if k != "vocabularies"}}
        return SpatialTargets(self.clips.root, list(self.clips.paths), out, dict(self.vocabularies), meta)

    # ------------------------------------------------------------------ frame embeddings
    def _check_features(self, features: FrameFeatures) -> None:
        meta = features.meta
        expected = {"checkpoint_sha256": self.checkpoint_sha256, "manifest_sha256": self.clips.fingerprint,
                    "size": self.size}
        found = {k: meta.get(k) for k in expected}
        if found != expected:
            raise ValueError(f"features {meta.get('key')!r}: computed from {found}, but these targets need "
                             f"{expected} (the same CLIP weights, manifest and frame size)")

    def _frame_embeddings(self, model: Any) -> tuple[str, Iterator[torch.Tensor]]:
        """(where they come from, an iterator of each clip's (k, D) frame embeddings in clip order)."""
        features = self.features
        if features is None and self.reuse_features and self.clips.manifest is not None:
            features = FrameFeatureCache(self.clips.manifest, self.backbone, self.pretrained, self.size,
                                         root=self.features_root, batch_size=self.batch_size, device=self.device,
                                         dtype=self.dtype, progress=self.progress).get()
        if features is not None:
            return f"frame features {features.meta.get('key')}", self._cached(features)
        return "encoded directly", self._encoded(model)

    def _cached(self, features: FrameFeatures) -> Iterator[torch.Tensor]:
        from actiondistill.pretrain.frames import frame_indices

        for path in self.clips.paths:
            row = features.index(path)
            count = features.num_frames(row)
            yield features.frames(row, frame_indices(count, min(self.frames, count)))

    def _encoded(self, model: Any) -> Iterator[torch.Tensor]:
        """Decode K frames per clip, encode them in batches of about `batch_size` frames, yield per clip."""
        from actiondistill.data.transforms import eval_transform
        from actiondistill.data.video import open_video
        from actiondistill.pretrain.frames import frame_indices

        transform = eval_transform(self.size)
        amp = AUTOCAST_DTYPES[self.dtype]
        pending: list[torch.Tensor] = []

        def flush() -> list[torch.Tensor]:
            with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
                encoded = model.encode_image(torch.cat(pending).to(self.device)).float().cpu()
            return list(encoded.split([len(p) for p in pending]))

        for file in self.clips.absolute():
            with open_video(file) as reader:
                count = reader.num_frames
                pending.append(transform(reader.read(frame_indices(count, min(self.frames, count)))))
            if sum(len(p) for p in pending) >= self.batch_size:
                yield from flush()
                pending = []
        if pending:
            yield from flush()


def spatial_targets(clips: ClipList | str | os.PathLike, vocabularies: Vocabularies, backbone: str,
                    pretrained: str | os.PathLike, **options: Any) -> SpatialTargets:
    """CLIP-based soft targets of every clip, from the cache when present (options: see `SpatialTargetCache`)."""
    return SpatialTargetCache(clips, vocabularies, backbone, pretrained, **options).get()


def ground_truth_targets(manifest: str | os.PathLike,
                         attributes: Sequence[str] = MANIFEST_OBJECTIVES) -> SpatialTargets:
    """One-hot targets from a SynthActions manifest's attributes: the upper bound of any CLIP's targets.

    Same objectives, concept order and heads as `manifest_vocabularies`, so the two sources are interchangeable.
    A growing or shrinking clip keeps the size it was drawn with, although its object changes size within the clip.
    """
    path = manifest_file(manifest)
    data = read_json(path)
    vocabularies = manifest_vocabularies(data, attributes)
    clips = data["clips"]
    targets = {}
    for name, vocab in vocabularies.items():
        index = {concept: i for i, concept in enumerate(vocab.concepts)}
        onehot = np.zeros((len(clips), len(vocab)), dtype=np.float32)
        for row, clip in enumerate(clips):
            value = clip.get("attributes", {}).get(name)
            if value not in index:
                raise ValueError(f"{path}: clip {row} ({clip.get('path')}): attribute {name}={value!r} is not in the "
                                 f"vocabulary {list(vocab.concepts)}")
            onehot[row, index[value]] = 1.0
        targets[name] = onehot
    sha = file_sha256(path)
    meta = {"key": f"ground-truth-{sha[:12]}", "source": "ground_truth", "clips": sha}
    return SpatialTargets(path.parent, [str(c["path"]) for c in clips], targets, vocabularies, meta)
