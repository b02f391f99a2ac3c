"""Which videos spatial targets are computed for, and how a training dataset's items find their clip's targets.

Targets are computed once per clip of a world (every split), keyed by the clip's file; a dataset of any kind
(pixels: `VideoDataset`; cached embeddings: `FrameFeatureDataset`; either behind a `ClassSubset`) then looks its
items' rows up by file, so one target file serves every split, sampler and model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actiondistill.frame_cache import manifest_file
from actiondistill.io import file_sha256, read_json


@dataclass(frozen=True)
class ClipList:
    """Video files under `root` (`paths` relative to it), and a `fingerprint` that changes when they do.

    From a SynthActions manifest the fingerprint is the manifest file's sha256 (as the frame-feature cache keys
    it); from another dataset (HMDB51, UCF101) it hashes every file's relative path and size.
    """

    root: Path
    paths: tuple[str, ...]
    fingerprint: str
    manifest: Path | None = None

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError(f"{self.root}: no clips")

    def __len__(self) -> int:
        return len(self.paths)

    def absolute(self) -> list[Path]:
        return [self.root / p for p in self.paths]

    @classmethod
    def from_manifest(cls, manifest: str | os.PathLike) -> ClipList:
        """Every clip of every split of a SynthActions manifest (a manifest.json or its folder)."""
        path = manifest_file(manifest)
        clips = read_json(path).get("clips")
        if not isinstance(clips, list) or not all(isinstance(c, dict) and "path" in c for c in clips):
            raise ValueError(f"{path}: expected a 'clips' list of objects with a 'path' (a SynthActions manifest)")
        return cls(path.parent, tuple(str(c["path"]) for c in clips), file_sha256(path), path)

    @classmethod
    def from_dataset(cls, dataset: Any) -> ClipList:
        """The videos of one dataset (`dataset_clip_paths`); for several splits, give all their paths to
        `from_paths` at once."""
        return cls.from_paths(dataset_clip_paths(dataset))

    @classmethod
    def from_paths(cls, paths: Sequence[str | os.PathLike]) -> ClipList:
        files = list(dict.fromkeys(Path(p).resolve() for p in paths))
        if not files:
            raise ValueError("paths: expected at least one video file")
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: no such video ({len(missing)} missing in all)")
        root = Path(os.path.commonpath([f.parent for f in files]))
        relative = tuple(str(f.relative_to(root)) for f in files)
        digest = hashlib.sha256()
        for rel, file in zip(relative, files, strict=True):
            digest.update(f"{rel}\t{file.stat().st_size}\n".encode())
        return cls(root, relative, digest.hexdigest())


def dataset_clip_paths(dataset: Any) -> list[Path]:
    """The video file of each item of a dataset, in item order.

    Understands `FrameFeatureDataset` (its feature rows name manifest paths), `VideoDataset` (its samples) and
    wrappers that forward attributes (`ClassSubset`).
    """
    rows, features = getattr(dataset, "rows", None), getattr(dataset, "features", None)
    if rows is not None and features is not None and hasattr(features, "paths"):
        manifest = features.meta.get("manifest")
        if not manifest:
            raise ValueError("frame features: their meta names no manifest, so their paths cannot be located")
        root = Path(manifest).parent
        return [root / features.paths[r] for r in rows]
    samples = getattr(dataset, "samples", None)
    if samples is not None and all(hasattr(s, "path") for s in samples):
        return [Path(s.path) for s in samples]
    raise ValueError(f"{type(dataset).__name__}: cannot tell which video each item comes from (expected a "
                     "VideoDataset or a FrameFeatureDataset, possibly inside a ClassSubset)")
