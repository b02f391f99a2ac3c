"""The codec side of the compressed track: re-encoding to MPEG-4 Part 2 and decoding with motion-vector export.

CoViAR's input is MPEG-4 Part 2 (FFmpeg's "mpeg4" encoder), GOP 12, no B-frames: every P-frame then references
the frame right before it, which is what accumulating vectors back to the I-frame assumes. H.264 files (the
synthetic world's, most phones') carry vectors too, but may reference any of several past frames, so they are
re-encoded first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from actiondistill.data.encode import write_video
from actiondistill.data.video import VideoDecodeError, open_container

GOP_SIZE = 12
#: Codecs whose P-frames always reference the previous I/P frame (one reference), so accumulation is exact.
SINGLE_REFERENCE_CODECS = frozenset({"mpeg4", "mpeg1video", "mpeg2video", "h263"})
# FFmpeg's AV_PICTURE_TYPE_* values; PyAV 18 returns them as an enum, older releases as ints or letters.
_PICTURE_TYPES = {0: "?", 1: "I", 2: "P", 3: "B", 4: "S", 5: "SI", 6: "SP", 7: "BI"}
# A "-q:v"-style fixed quantiser is global_quality = q * FF_QP2LAMBDA with the qscale flag set.
_FF_QP2LAMBDA = 118
_NO_SCENE_CUTS = "1000000000"


@dataclass
class DecodedFrame:
    """One decoded frame: RGB pixels, picture type letter, and the exported block vectors (None when it has none)."""

    rgb: np.ndarray
    pict_type: str
    vectors: np.ndarray | None


def picture_type(frame: av.VideoFrame) -> str:
    """'I', 'P', 'B', ... from PyAV's pict_type, whatever form this PyAV version gives it in."""
    value = frame.pict_type
    if isinstance(value, str):
        return value
    return _PICTURE_TYPES.get(int(value), "?")


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """uint8 RGB (H, W, 3). One swscale thread: a threaded scaler context that ends up in a reference cycle (frames
    and their side data form one) is freed by a later garbage collection, and in a forked worker that joins
    threads which do not exist there and hangs."""
    return frame.to_ndarray(format="rgb24", threads=1)


def open_video_stream(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open a file's first video stream (errors name the file: see `data.video.open_container`)."""
    container = open_container(path)
    return container, container.streams.video[0]


def codec_name(path: str | os.PathLike) -> str:
    """FFmpeg's name of the file's video codec, e.g. 'mpeg4' or 'h264'."""
    container, stream = open_video_stream(path)
    with container:
        return stream.codec_context.name


def decode_with_vectors(path: str | os.PathLike, rgb: bool = True) -> Iterator[DecodedFrame]:
    """Decode every frame in display order with FFmpeg's motion-vector export on (`flags2=+export_mvs`).

    Args:
        path: the video file.
        rgb: convert pixels to uint8 RGB (H, W, 3); False skips the conversion (rgb is then an empty array),
            for callers that only want picture types and vectors.
    """
    container, stream = open_video_stream(path)
    path = Path(path)
    stream.codec_context.options = {"flags2": "+export_mvs"}
    stream.thread_type = "NONE"  # parallelism belongs at the level of whole clips (extract_all's workers)
    with container:
        try:
            for frame in container.decode(stream):
                side = frame.side_data.get(av.sidedata.sidedata.Type.MOTION_VECTORS)
                vectors = side.to_ndarray() if side is not None else None
                pixels = _to_rgb(frame) if rgb else np.empty(0, np.uint8)
                yield DecodedFrame(pixels, picture_type(frame), vectors)
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{path}: decoding failed ({err})") from err


def motion_summary(path: str | os.PathLike) -> dict:
    """What the decoder exports for a file, frame by frame: picture type, GOP position, vectors, motion magnitude.

    Magnitudes are |motion / motion_scale| in pixels over all exported vectors of a frame (past and future
    references alike); frames without vectors (I-frames) report 0. The GOP position counts frames since the
    last I-frame.
    """
    frames = []
    position = -1
    for index, decoded in enumerate(decode_with_vectors(path, rgb=False)):
        position = 0 if decoded.pict_type == "I" or position < 0 else position + 1
        count, mean, peak = 0, 0.0, 0.0
        if decoded.vectors is not None and len(decoded.vectors):
            v = decoded.vectors
            scale = np.where(v["motion_scale"] == 0, 1, v["motion_scale"]).astype(np.float64)
            magnitude = np.hypot(v["motion_x"] / scale, v["motion_y"] / scale)
            count, mean, peak = len(v), float(magnitude.mean()), float(magnitude.max())
        frames.append({"index": index, "type": decoded.pict_type, "gop_position": position, "vectors": count,
                       "mean_motion": round(mean, 4), "max_motion": round(peak, 4)})
    if not frames:
        raise VideoDecodeError(f"{path}: no decodable video frames")
    types = [f["type"] for f in frames]
    moving = [f for f in frames if f["vectors"]]
    return {
        "path": str(path),
        "codec": codec_name(path),
        "frames": frames,
        "num_frames": len(frames),
        "picture_types": {t: types.count(t) for t in sorted(set(types))},
        "gops": types.count("I"),
        "vectors": sum(f["vectors"] for f in frames),
        "mean_motion": round(sum(f["mean_motion"] * f["vectors"] for f in moving)
                             / max(1, sum(f["vectors"] for f in moving)), 4),
        "max_motion": max(f["max_motion"] for f in frames),
    }


def decode_rgb(path: str | os.PathLike) -> np.ndarray:
    """All frames as uint8 RGB (T, H, W, 3), without vector export: the baseline that extraction is compared to."""
    container, stream = open_video_stream(path)
    stream.thread_type = "NONE"
    with container:
        try:
            frames = [_to_rgb(frame) for frame in container.decode(stream)]
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{path}: decoding failed ({err})") from err
    if not frames:
        raise VideoDecodeError(f"{path}: no decodable video frames")
    return np.stack(frames)


def reencode_mpeg4(src: str | os.PathLike, dst: str | os.PathLike, gop: int = GOP_SIZE,
                   qscale: int | None = None) -> Path:
    """Re-encode any video to MPEG-4 Part 2 with exactly `gop` frames per GOP and no B-frames, atomically.

    Resolution is kept; an odd width or height loses its last column or row (4:2:0 needs even sizes).

    Args:
        src: any video FFmpeg decodes.
        dst: output file (.mp4, .avi, .mkv, .mov).
        gop: frames from one I-frame to the next (CoViAR: 12).
        qscale: None keeps FFmpeg's default rate control, as CoViAR's reencode script does; 1 (best) to 31
            a fixed quantiser like ffmpeg's `-q:v`.
    """
    if gop < 1:
        raise ValueError(f"gop={gop}: expected >= 1")
    if qscale is not None and not 1 <= qscale <= 31:
        raise ValueError(f"qscale={qscale}: expected 1..31 or None")
    container, stream = open_video_stream(src)
    with container:
        rate = stream.average_rate or stream.guessed_rate
        fps = max(1, round(float(rate))) if rate else 25
    frames = decode_rgb(src)
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    if height == 0 or width == 0:
        raise VideoDecodeError(f"{src}: frames of {frames.shape[2]}x{frames.shape[1]} are too small to encode")
    # Scene-cut detection off: every GOP is exactly `gop` frames (the encoder would otherwise insert I-frames at
    # cuts, and turns every frame of a noisy clip into one).
    options = {"sc_threshold": _NO_SCENE_CUTS}
    if qscale is not None:
        options.update({"flags": "+qscale", "global_quality": str(qscale * _FF_QP2LAMBDA)})
    return write_video(dst, np.ascontiguousarray(frames[:, :height, :width]), fps=fps, codec="mpeg4", gop=gop,
                       max_b_frames=0, options=options)
