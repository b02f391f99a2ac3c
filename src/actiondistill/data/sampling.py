"""Which frames of a video a model sees: TSN segments, dense clips (mmaction2 vocabulary), uniform spacing.

Samplers return plain lists of frame indices, always within [0, num_frames). Videos shorter than a sampler
needs are handled by the `short` policy, deterministically, whatever the `train` flag:
- "clamp" (default): indices past the last frame repeat the last frame. Temporal order is kept, which matters
  here: the synthetic world has direction-dependent classes ("moving to the left"), and looping would show the
  motion jumping back to its start.
- "loop": indices wrap around to the start (mmaction2's default for dense clips).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Short = Literal["clamp", "loop"]
SHORT_POLICIES = ("clamp", "loop")
KINDS = ("tsn", "dense", "uniform")


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _fit(indices: np.ndarray, num_frames: int, short: Short) -> list[int]:
    """Bring indices past the end back into the video by the short-video policy."""
    if short not in SHORT_POLICIES:
        raise ValueError(f"short={short!r}: expected one of {SHORT_POLICIES}")
    fitted = indices % num_frames if short == "loop" else np.minimum(indices, num_frames - 1)
    return [int(i) for i in fitted]


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


def tsn_indices(num_frames: int, num_segments: int, train: bool, rng: np.random.Generator | None = None,
                short: Short = "clamp") -> list[int]:
    """One frame per equal segment (TSN): a random frame of each segment in training, its centre at test.

    A video with fewer frames than segments gets frames 0, 1, 2, ... completed by the `short` policy.
    """
    num_frames = _positive("num_frames", num_frames)
    num_segments = _positive("num_segments", num_segments)
    if num_frames < num_segments:
        return _fit(np.arange(num_segments), num_frames, short)
    # Integer segment bounds cover every frame; with num_frames >= num_segments no segment is empty.
    bounds = (np.arange(num_segments + 1) * num_frames) // num_segments
    if train:
        picks = _rng(rng).integers(bounds[:-1], bounds[1:])
    else:
        picks = np.floor((np.arange(num_segments) + 0.5) * num_frames / num_segments).astype(np.int64)
    return [int(i) for i in picks]


def dense_indices(num_frames: int, clip_len: int, frame_interval: int, num_clips: int, train: bool,
                  rng: np.random.Generator | None = None, short: Short = "clamp") -> list[int]:
    """`num_clips` clips of `clip_len` frames taken every `frame_interval` frames; num_clips * clip_len indices.

    The valid clip starts [0, num_frames - span] are cut into num_clips equal ranges: training takes a random
    start in each range (one random start for one clip), test takes each range's centre (evenly spaced clips).
    A video shorter than one clip's span starts every clip at 0 and completes it by the `short` policy.
    """
    num_frames = _positive("num_frames", num_frames)
    clip_len = _positive("clip_len", clip_len)
    frame_interval = _positive("frame_interval", frame_interval)
    num_clips = _positive("num_clips", num_clips)
    span = (clip_len - 1) * frame_interval + 1
    starts_available = num_frames - span + 1
    if starts_available <= 0:
        starts = np.zeros(num_clips, dtype=np.int64)
    else:
        width = starts_available / num_clips
        base = np.arange(num_clips) * width
        offsets = _rng(rng).random(num_clips) * width if train else np.full(num_clips, width / 2)
        starts = np.minimum(np.floor(base + offsets).astype(np.int64), starts_available - 1)
    indices = starts[:, None] + np.arange(clip_len)[None, :] * frame_interval
    return _fit(indices.reshape(-1), num_frames, short)


def uniform_indices(num_frames: int, n: int, short: Short = "clamp") -> list[int]:
    """`n` evenly spaced frames from the first to the last (a single frame: the middle one)."""
    num_frames = _positive("num_frames", num_frames)
    n = _positive("n", n)
    if num_frames < n:
        return _fit(np.arange(n), num_frames, short)
    if n == 1:
        return [(num_frames - 1) // 2]
    return [int(i) for i in np.round(np.linspace(0, num_frames - 1, n)).astype(np.int64)]


@dataclass(frozen=True)
class FrameSampler:
    """A dataset's frame sampling, as a value: `sampler(num_frames, rng) -> indices`.

    Attributes:
        kind: "tsn", "dense" or "uniform".
        frames: frames per clip: TSN segments, dense clip length, or uniform count.
        frame_interval: dense only: step between a clip's frames.
        num_clips: dense only: clips per video (the output holds num_clips * frames indices).
        train: random sampling (TSN, dense) when True, deterministic test sampling when False.
        short: policy for videos shorter than needed, "clamp" or "loop" (see the module docstring).
    """

    kind: Literal["tsn", "dense", "uniform"] = "tsn"
    frames: int = 8
    frame_interval: int = 1
    num_clips: int = 1
    train: bool = False
    short: Short = "clamp"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"FrameSampler kind={self.kind!r}: expected one of {KINDS}")
        if self.short not in SHORT_POLICIES:
            raise ValueError(f"FrameSampler short={self.short!r}: expected one of {SHORT_POLICIES}")
        for name in ("frames", "frame_interval", "num_clips"):
            _positive(f"FrameSampler {name}", getattr(self, name))
        if self.kind != "dense" and (self.num_clips != 1 or self.frame_interval != 1):
            raise ValueError(f"FrameSampler kind={self.kind!r}: num_clips and frame_interval apply to 'dense' only")

    @property
    def length(self) -> int:
        """Indices per call."""
        return self.frames * self.num_clips

    def __call__(self, num_frames: int, rng: np.random.Generator | None = None) -> list[int]:
        if self.kind == "tsn":
            return tsn_indices(num_frames, self.frames, self.train, rng, self.short)
        if self.kind == "dense":
            return dense_indices(num_frames, self.frames, self.frame_interval, self.num_clips, self.train, rng,
                                 self.short)
        return uniform_indices(num_frames, self.frames, self.short)
