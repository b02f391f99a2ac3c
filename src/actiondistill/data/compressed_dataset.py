"""A TSN dataset over compressed-domain extractions: per segment the I-frame, accumulated MV and residual.

Normalisation (documented choices; CoViAR's are noted):
- I-frame: RGB / 255, then ImageNet mean/std, the statistics of the torchvision ResNets these inputs feed.
- MV: clipped to [-MV_BOUND, MV_BOUND] = [-20, 20] px and divided by 20, so [-1, 1] with 0 = no motion. CoViAR
  clips at 20 as well but then maps to uint8 and normalises with mean 0.5 / std 0.226; plain scaling keeps
  half-pel precision and a symmetric zero. When `size` resizes the maps, the vectors are scaled with the image
  (a displacement of 2 px at 64 px wide is 7 px at 224 px), before clipping.
- Residual: divided by 255, so [-1, 1].
No spatial augmentation: flips would swap the meaning of direction-dependent classes (and the sign of MV x)
and the synthetic world is already centred. `train` only randomises which frame of each segment is taken.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from actiondistill.data.compressed import CachedClip, extract_all
from actiondistill.data.compressed_codec import GOP_SIZE
from actiondistill.data.sampling import tsn_indices
from actiondistill.paths import data_dir

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MV_BOUND = 20.0
RESIDUAL_SCALE = 255.0


def default_cache_dir() -> Path:
    return data_dir() / "cache" / "compressed"


def choose_p_frame(t: int, p_frames: np.ndarray) -> int:
    """The P-frame to use for sampled frame t: t itself, else (t an I-frame) the last P-frame before it, as CoViAR
    steps back into the previous GOP, else the first one after it; -1 when the video has no P-frame at all."""
    if len(p_frames) == 0:
        return -1
    if t in p_frames:
        return int(t)
    before = p_frames[p_frames < t]
    return int(before[-1]) if len(before) else int(p_frames[p_frames > t][0])


def normalise(iframe: np.ndarray, mv: np.ndarray, residual: np.ndarray,
              size: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stacked (S, H, W, C) numpy maps -> normalised float tensors (S, C, H', W') at `size` (height, width)."""
    i = torch.from_numpy(np.ascontiguousarray(iframe)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.from_numpy(np.ascontiguousarray(mv)).permute(0, 3, 1, 2).float()
    r = torch.from_numpy(np.ascontiguousarray(residual)).permute(0, 3, 1, 2).float()
    if size is not None and tuple(size) != tuple(i.shape[-2:]):
        height, width = i.shape[-2:]
        i, m, r = (F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
                   for x in (i, m, r))
        m[:, 0] *= size[1] / width
        m[:, 1] *= size[0] / height
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (i - mean) / std, m.clamp_(-MV_BOUND, MV_BOUND).div_(MV_BOUND), r.div_(RESIDUAL_SCALE)


class CompressedVideoDataset(Dataset):
    """Labelled videos -> {"iframe": (S, 3, H, W), "mv": (S, 2, H, W), "residual": (S, 3, H, W), "label": int,
    "index": int, "frame_indices": (S,) P-frame used per segment (-1: the video has none)}.

    Each of the S TSN segments samples a frame (random in training, the centre at test), moves it to a P-frame
    (`choose_p_frame`) and returns that frame's accumulated MV and residual and its GOP's I-frame. A video
    without any P-frame gives zero MV and residual. Extraction runs once, at construction, into `cache_dir`.

    Args:
        videos: (path, label) pairs.
        num_segments: S.
        train: random frame within each segment (True) or its centre (False).
        cache_dir: extraction cache (default: data/cache/compressed).
        size: output (height, width) or side; None keeps the video's size.
        gop: GOP length used when a video has to be re-encoded.
        seed: base of the per-item randomness, which derives from (seed, epoch, index) only.
        workers: extraction processes (see `extract_all`).
        progress: progress bar during extraction.
    """

    def __init__(self, videos: Sequence[tuple[str | os.PathLike, int]], num_segments: int = 3, train: bool = True,
                 cache_dir: str | os.PathLike | None = None, size: int | tuple[int, int] | None = None,
                 gop: int = GOP_SIZE, seed: int = 0, workers: int | None = None, progress: bool = True):
        if not videos:
            raise ValueError("videos: expected at least one (path, label) pair")
        if num_segments < 1:
            raise ValueError(f"num_segments={num_segments}: expected >= 1")
        self.videos = [(Path(p), int(label)) for p, label in videos]
        self.num_segments = num_segments
        self.train = train
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        self.seed = seed
        self.epoch = 0
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache_files = extract_all([p for p, _ in self.videos], self.cache_dir, workers=workers,
                                       progress=progress, gop=gop)
        self._clips: dict[int, CachedClip] = {}

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.videos]

    def set_epoch(self, epoch: int) -> None:
        """Change the per-item randomness; call once per epoch, before iterating."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def _clip(self, index: int) -> CachedClip:
        if index not in self._clips:
            self._clips[index] = CachedClip(self.cache_files[index])
        return self._clips[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} videos")
        index %= len(self)
        clip = self._clip(index)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))
        p_frames = clip.p_frames
        picks = [choose_p_frame(t, p_frames) for t in tsn_indices(clip.num_frames, self.num_segments, self.train, rng)]
        loaded = [clip.load(t if t >= 0 else 0) for t in picks]
        iframe, mv, residual = (np.stack(parts) for parts in zip(*loaded, strict=True))
        i, m, r = normalise(iframe, mv, residual, self.size)
        return {"iframe": i, "mv": m, "residual": r, "label": self.videos[index][1], "index": index,
                "frame_indices": torch.tensor(picks)}
