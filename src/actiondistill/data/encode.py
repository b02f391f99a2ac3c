"""Writing frames to real video files with PyAV: the synthetic world and the tests both need it."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from actiondistill.io import atomic_path


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = 25,
    codec: str = "libx264",
    gop: int | None = None,
    max_b_frames: int | None = None,
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) into a video file, atomically.

    One encoder thread keeps the bytes identical across machines (x264's output depends on its
    thread count); clips are small, parallelism belongs at the level of whole clips. x264's
    macroblock-tree rate control is off: its AVX-512 path made repeated encodes of one clip differ.
    `codec="mpeg4"` with `gop=12, max_b_frames=0` gives CoViAR's MPEG-4 Part 2 input.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to write")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: {pix_fmt} needs even width and height, got {width}x{height}")
    target = Path(path)
    opts = {"crf": "18", "preset": "fast", "x264-params": "mbtree=0"} if codec == "libx264" else {}
    opts.update(options or {})
    with atomic_path(target) as tmp:
        with av.open(str(tmp), mode="w", format=_container_format(target)) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.thread_count = 1
            if gop is not None:
                stream.codec_context.gop_size = gop
            if max_b_frames is not None:
                stream.codec_context.max_b_frames = max_b_frames
            stream.options = opts
            for array in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return target


def _container_format(path: Path) -> str:
    """PyAV guesses the muxer from the extension; the temporary file has none, so name it."""
    formats = {".mp4": "mp4", ".avi": "avi", ".mkv": "matroska", ".m4v": "mp4", ".mov": "mov"}
    try:
        return formats[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path}: unsupported video extension {path.suffix!r}; use one of {sorted(formats)}") from None
