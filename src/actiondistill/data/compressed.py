"""Compressed-domain extraction (CoViAR): per frame the GOP's I-frame, the accumulated motion vectors, the residual.

A video is decoded once with FFmpeg's motion-vector export (see `compressed_codec`), the block vectors of each
P-frame are rasterised to a dense field and accumulated back to the GOP's I-frame (see `compressed_motion` for
the sign conventions). PyAV cannot export the codec's own residuals (FFmpeg has no side data for them), so the
residual here is the *reconstruction residual with respect to the accumulated motion*: the decoded frame minus
the I-frame sampled at each pixel's traced source. CoViAR accumulates the codec's residuals along the same trace,
which sums to this difference up to the codec's sub-pel interpolation and rounding; ours is not the transmitted
DCT residual of one frame.

Extractions are cached per video as a compressed .npz, one member per frame, so a dataset item decompresses only
the two frames and one motion field it needs. Cache files are written atomically: an interrupted run leaves
only hidden temporary files, never a file that counts as done, and re-running resumes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from actiondistill.data.compressed_codec import (
    GOP_SIZE,
    SINGLE_REFERENCE_CODECS,
    codec_name,
    decode_with_vectors,
    reencode_mpeg4,
)
from actiondistill.data.compressed_motion import accumulate_source_maps, compute_residual, rasterise_vectors
from actiondistill.data.video import VideoDecodeError, check_video_file
from actiondistill.io import atomic_save
from actiondistill.parallel import map_jobs

log = logging.getLogger(__name__)

#: Bumped whenever the cache layout or the extraction changes, so old caches are not mistaken for new ones.
CACHE_VERSION = 1


class BFramesError(ValueError):
    """The stream has B-frames, whose vectors cannot be accumulated frame by frame: re-encode it first."""


@dataclass
class CompressedClip:
    """A decoded video in CoViAR's representation.

    Attributes:
        path: the file extracted (the original, also when it was re-encoded on the way).
        frames: decoded RGB, uint8 (T, H, W, 3).
        pict_types: 'I' or 'P' per frame.
        iframe_index: (T,) index of each frame's GOP I-frame.
        gop_positions: (T,) frames since that I-frame (0 at I-frames).
        motion: (T, H, W, 2) float32 per-frame backward fields src - dst (0 at I-frames).
        accumulated: (T, H, W, 2) float32 accumulated MV, position - traced source in the I-frame (0 at I-frames).
        vector_counts: (T,) exported block vectors per frame.
        reencoded: whether the file was re-encoded to MPEG-4 Part 2 before extraction.
    """

    path: str
    frames: np.ndarray
    pict_types: list[str]
    iframe_index: np.ndarray
    gop_positions: np.ndarray
    motion: np.ndarray
    accumulated: np.ndarray
    vector_counts: np.ndarray
    reencoded: bool = False

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def p_frames(self) -> list[int]:
        """Indices of the frames that have an MV and a residual (GOP position > 0)."""
        return [int(t) for t in np.flatnonzero(self.gop_positions > 0)]

    def iframe(self, t: int) -> np.ndarray:
        """The I-frame of frame t's GOP, uint8 (H, W, 3)."""
        return self.frames[self.iframe_index[t]]

    def residual(self, t: int) -> np.ndarray:
        """Frame t minus its I-frame at the traced sources, float32 (H, W, 3); zeros at I-frames."""
        return compute_residual(self.frames[t], self.iframe(t), self.accumulated[t])


def extract(path: str | os.PathLike, reencode: bool | None = None, gop: int = GOP_SIZE) -> CompressedClip:
    """Decode a video into CoViAR's I-frame / accumulated MV / residual representation.

    Args:
        path: the video file.
        reencode: True re-encodes to MPEG-4 Part 2 (GOP `gop`, no B-frames) in a temporary folder first; False
            extracts the file as it is (B-frames raise `BFramesError`); None (default) re-encodes when the codec
            may reference frames other than the previous one (H.264, ...) or when B-frames turn up.
        gop: GOP length of the re-encode.
    """
    path = check_video_file(path)
    if reencode is None:
        reencode = codec_name(path) not in SINGLE_REFERENCE_CODECS
        if not reencode:
            try:
                return _extract_stream(path, path, reencoded=False)
            except BFramesError:
                reencode = True
    if not reencode:
        return _extract_stream(path, path, reencoded=False)
    with tempfile.TemporaryDirectory(prefix="actiondistill-mpeg4-") as tmp:
        mpeg4 = reencode_mpeg4(path, Path(tmp) / "reencoded.mp4", gop=gop)
        return _extract_stream(mpeg4, path, reencoded=True)


def _extract_stream(file: Path, original: Path, reencoded: bool) -> CompressedClip:
    frames, types, fields, counts = [], [], [], []
    for decoded in decode_with_vectors(file):
        if decoded.pict_type not in ("I", "P"):
            raise BFramesError(f"{original}: frame {len(frames)} is a {decoded.pict_type}-frame; only I- and P-frames "
                               "can be accumulated: re-encode with reencode_mpeg4 (or extract(..., reencode=True))")
        if frames and decoded.rgb.shape != frames[0].shape:
            raise VideoDecodeError(f"{original}: frame size changes mid-stream ({frames[0].shape} -> "
                                   f"{decoded.rgb.shape})")
        height, width = decoded.rgb.shape[:2]
        frames.append(decoded.rgb)
        types.append(decoded.pict_type)
        counts.append(0 if decoded.vectors is None else len(decoded.vectors))
        fields.append(rasterise_vectors(decoded.vectors, height, width))
    if not frames:
        raise VideoDecodeError(f"{original}: no decodable video frames")
    # A stream that does not open on an I-frame (a cut file) starts its first GOP at frame 0 anyway.
    starts = [t for t, kind in enumerate(types) if kind == "I" or t == 0]
    iframe_index = np.zeros(len(frames), dtype=np.int64)
    accumulated = np.zeros((len(frames), *frames[0].shape[:2], 2), dtype=np.float32)
    motion = np.stack(fields)
    for start, end in zip(starts, [*starts[1:], len(frames)], strict=True):
        iframe_index[start:end] = start
        motion[start] = 0.0
        for offset, source_map in enumerate(accumulate_source_maps(fields[start + 1 : end]), start=start + 1):
            accumulated[offset] = -source_map
    return CompressedClip(
        path=str(original), frames=np.stack(frames), pict_types=types, iframe_index=iframe_index,
        gop_positions=np.arange(len(frames)) - iframe_index, motion=motion, accumulated=accumulated,
        vector_counts=np.asarray(counts, dtype=np.int64), reencoded=reencoded,
    )


# ----------------------------------------------------------------------------------------------- cache


def file_identity(path: str | os.PathLike) -> tuple[str, int, int]:
    """(absolute path, size, modification time in ns): what tells a video file from one written again under the same
    path, for every cache and run key made from videos."""
    p = Path(path).resolve()
    stat = p.stat()
    return str(p), stat.st_size, stat.st_mtime_ns


def cache_path(path: str | os.PathLike, cache_dir: str | os.PathLike, gop: int = GOP_SIZE) -> Path:
    """Where a video's extraction is cached: its stem plus a hash of its `file_identity` and the settings.

    Changing the file (size or modification time) or the extraction settings gives a new name, so a stale
    cache is never read.
    """
    resolved, size, mtime = file_identity(path)
    key = f"{resolved}|{size}|{mtime}|gop={gop}|v{CACHE_VERSION}"
    return Path(cache_dir) / f"{Path(resolved).stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"


def save_clip(clip: CompressedClip, path: str | os.PathLike) -> Path:
    """Write the cache file of a clip (frames and accumulated MVs, one member per frame), atomically."""
    members: dict[str, np.ndarray] = {
        "version": np.asarray(CACHE_VERSION),
        "source": np.asarray(clip.path),
        "pict_types": np.asarray(clip.pict_types),
        "iframe_index": clip.iframe_index,
        "gop_positions": clip.gop_positions,
        "vector_counts": clip.vector_counts,
        "reencoded": np.asarray(clip.reencoded),
    }
    for t in range(clip.num_frames):
        members[f"rgb_{t}"] = clip.frames[t]
        if clip.gop_positions[t] > 0:
            members[f"mv_{t}"] = clip.accumulated[t]

    def write(tmp: Path) -> None:
        # A file object, not a name: np.savez_compressed would append ".npz" to the temporary name.
        with tmp.open("wb") as f:
            np.savez_compressed(f, **members)

    return atomic_save(path, write)


class CachedClip:
    """Read access to one cache file; members are decompressed only when asked for."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                version = int(npz["version"])
                self.pict_types = [str(t) for t in npz["pict_types"]]
                self.iframe_index = npz["iframe_index"]
                self.gop_positions = npz["gop_positions"]
                self.source = str(npz["source"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(f"{self.path}: not a readable compressed-video cache file ({err})") from err
        if version != CACHE_VERSION:
            raise ValueError(f"{self.path}: cache version {version}, expected {CACHE_VERSION}")

    @property
    def num_frames(self) -> int:
        return len(self.pict_types)

    @property
    def p_frames(self) -> np.ndarray:
        return np.flatnonzero(self.gop_positions > 0)

    def load(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(I-frame uint8 (H, W, 3), accumulated MV float32 (H, W, 2), residual float32 (H, W, 3)) of frame t.

        At an I-frame the MV and residual are zeros.
        """
        with np.load(self.path, allow_pickle=False) as npz:
            iframe = npz[f"rgb_{int(self.iframe_index[t])}"]
            if self.gop_positions[t] == 0:
                height, width = iframe.shape[:2]
                return iframe, np.zeros((height, width, 2), np.float32), np.zeros((height, width, 3), np.float32)
            frame, mv = npz[f"rgb_{t}"], npz[f"mv_{t}"]
        return iframe, mv, compute_residual(frame, iframe, mv)


def cached_extract(path: str | os.PathLike, cache_dir: str | os.PathLike, gop: int = GOP_SIZE) -> Path:
    """Extract one video into its cache file unless a readable one is there; returns the cache file."""
    path = check_video_file(path)
    target = cache_path(path, cache_dir, gop)
    return target if _readable(target) else save_clip(extract(path, gop=gop), target)


def extract_all(videos: Sequence[str | os.PathLike | tuple], cache_dir: str | os.PathLike, workers: int | None = None,
                progress: bool = True, gop: int = GOP_SIZE) -> list[Path]:
    """Extract every video into `cache_dir` (resumable: cached videos are skipped); returns the cache files in order.

    Args:
        videos: paths, or (path, label) pairs as the dataset takes them.
        cache_dir: folder of the .npz files.
        workers: extraction processes (default: CPU count); 0 or 1 extracts in this process.
        progress: show a progress bar.
        gop: GOP length for videos that need re-encoding.
    """
    paths = [Path(v[0] if isinstance(v, tuple | list) else v) for v in videos]
    for p in paths:
        check_video_file(p)
    targets = [cache_path(p, cache_dir, gop) for p in paths]
    todo = sorted({p for p, t in zip(paths, targets, strict=True) if not _readable(t)})
    workers = (os.cpu_count() or 1) if workers is None else workers
    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc="compressed extraction", unit="video",
               disable=not progress)
    map_jobs(_extract_job, [(p, Path(cache_dir), gop) for p in todo], workers, bar, max_chunk=8)
    bar.close()
    return targets


def _readable(target: Path) -> bool:
    """Whether a cache file is there and opens; a damaged one is logged and counts as missing."""
    if not target.exists():
        return False
    try:
        CachedClip(target)
    except ValueError as err:
        log.warning("re-extracting: %s", err)
        return False
    return True


def _extract_job(job: tuple[Path, Path, int]) -> Path:
    path, cache_dir, gop = job
    return save_clip(extract(path, gop=gop), cache_path(path, cache_dir, gop))
