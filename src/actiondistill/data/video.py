"""Reading frames from video files behind one interface: decord (fast random access) with a PyAV fallback.

decord 0.6.0 is unmaintained, and its failures are silent as often as loud. Measured here: its seeks land on
wrong frames for streams with B-frames except H.264 in MP4/MOV/Matroska (MPEG-4 Part 2 with B-frames, as in
XviD AVIs, and H.264 in AVI go wrong); it fails or returns 4-channel frames for some widths (16, 24, 48, 72
pixels); it can deadlock in `get_batch` on containers that over-report their frame count. The guards: every
file is checked before a decoder sees it; one PyAV demux pass (no decoding) counts the packets really present,
spots B-frames and truncation; decord's frame count must not exceed the packets; decord seeks only where that
is safe and otherwise decodes frames 0..max(index) in one pass; its output shape is checked. `open_video(...,
"auto")` falls back to PyAV when decord is missing, refuses the file, or fails on a read.

Truncated files raise `VideoDecodeError` when opened, whenever the damage shows: a missing index, a header
promising more frames than the data holds, frames ending before the declared duration, corrupt packets. This
matters beyond the lost tail: a file cut in decode order loses B-frames out of presentation order, so the
frame at index k could silently come from later in time. The one case left undetectable is a stream that
declares neither a frame count nor a duration (e.g. a live-muxed Matroska file) cut between packets: it reads
as the frames that really decode, and with B-frames the last one or two before the cut may shift by a frame.
Asking for an index outside [0, num_frames) raises `IndexError`; a frame that fails to decode raises
`VideoDecodeError`. No reader ever pads with a repeated or stale frame.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import av
import numpy as np

log = logging.getLogger(__name__)

Backend = Literal["auto", "decord", "pyav"]
BACKENDS = ("auto", "decord", "pyav")
# Demuxers that read still images: FFmpeg happily opens a PNG renamed .mp4 as a one-frame "video".
_IMAGE_FORMAT_SUFFIX = "_pipe"
_IMAGE_FORMATS = {"image2", "apng", "webp_pipe"}


class VideoDecodeError(ValueError):
    """A file that cannot be read as a video; the message names the file and what was wrong."""


class VideoReader(ABC):
    """RGB frames of one video file, by index, in the order asked (repeats allowed).

    Attributes:
        path: the file.
        num_frames: frames the reader can deliver (always >= 1).
        fps: average frame rate from the container, 0.0 when it does not say.
    """

    backend: str
    path: Path
    num_frames: int
    fps: float

    @abstractmethod
    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames `indices` as uint8 RGB of shape (len(indices), H, W, 3)."""

    @abstractmethod
    def close(self) -> None:
        """Release the decoder; reading after close is an error."""

    def __len__(self) -> int:
        return self.num_frames

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        path, frames = getattr(self, "path", None), getattr(self, "num_frames", None)
        return f"{type(self).__name__}({str(path)!r}, num_frames={frames})"

    def _checked(self, indices: Sequence[int]) -> list[int]:
        """Indices as ints, each within [0, num_frames): no negative wrap-around, no reading past the end."""
        out = [int(i) for i in indices]
        if not out:
            raise ValueError(f"{self.path}: no frame indices to read")
        bad = [i for i in out if not 0 <= i < self.num_frames]
        if bad:
            raise IndexError(f"{self.path}: frame index {bad[0]} out of range; the video has {self.num_frames} frames")
        return out


def check_video_file(path: str | os.PathLike) -> Path:
    """Fail early, naming the file, on what no decoder should be handed: missing, directory, empty, unreadable."""
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(f"{p}: no such file")
    if p.is_dir():
        raise VideoDecodeError(f"{p}: is a directory, expected a video file")
    try:
        with p.open("rb") as f:
            head = f.read(1)
    except PermissionError as err:
        raise VideoDecodeError(f"{p}: permission denied ({err.strerror})") from err
    except OSError as err:
        raise VideoDecodeError(f"{p}: cannot be read ({err})") from err
    if not head:
        raise VideoDecodeError(f"{p}: empty file (0 bytes)")
    return p


def open_container(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a video with PyAV, naming the file in every error: missing, empty, not a container, a still image, or
    no video stream (every module that demuxes with PyAV opens files here)."""
    path = check_video_file(path)
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as err:
        raise VideoDecodeError(f"{path}: not a readable video container ({err})") from err
    name = container.format.name
    if name in _IMAGE_FORMATS or name.endswith(_IMAGE_FORMAT_SUFFIX):
        container.close()
        raise VideoDecodeError(f"{path}: is a still image ({name}), not a video")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoDecodeError(f"{path}: has no video stream (streams: {', '.join(kinds)}): audio-only or truncated?")
    return container


@dataclass(frozen=True)
class _Facts:
    """What one demux pass (no decoding) learns about a video stream."""

    header: int  # frames the container declares; 0 when it does not say (e.g. Matroska)
    packets: int  # non-empty video packets really present: an upper bound on decodable frames
    fps: float
    seek_safe: bool  # whether decord's random access returns the right frames


# decord 0.6 identifies the frame it seeked to by timestamp; with B-frames that works only where the container
# stores real presentation timestamps for a codec decord handles (H.264 in MP4/MOV/Matroska, tested). It returns
# wrong frames for MPEG-4 Part 2 with B-frames in every container and for H.264 in AVI.
_SEEK_SAFE_WITH_B_FRAMES = {("h264", "mov,mp4,m4a,3gp,3g2,mj2"), ("h264", "matroska,webm")}


def _inspect(path: Path) -> _Facts:
    """Demux the video stream once and reject files whose declared length the data does not reach.

    A file cut in decode order loses frames out of presentation order (B-frames), so frame indices past the
    cut would silently shift; the only safe answer is to refuse the file.
    """
    with open_container(path) as container:
        stream = container.streams.video[0]
        fps, header, base = _fps(stream), stream.frames, stream.time_base
        reordered = bool(stream.codec_context.has_b_frames)
        present = packets = 0
        end: int | None = None
        try:
            for packet in container.demux(stream):
                if packet.pts is None and packet.dts is None:  # the demuxer's final flush packet
                    continue
                present += 1
                packets += packet.size > 0
                if packet.pts is not None:
                    stop = packet.pts + (packet.duration or 0)
                    reordered = reordered or (end is not None and stop < end)  # B-frames: pts out of order
                    end = stop if end is None else max(end, stop)
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{path}: container is corrupt or truncated ({err})") from err
        if stream.duration:
            declared = float((stream.duration + (stream.start_time or 0)) * base)
        elif container.duration and len(container.streams) == 1:  # with audio, the container may outlast video
            declared = (container.duration + (container.start_time or 0)) / av.time_base
        else:
            declared = 0.0
        seek_safe = not reordered or (stream.codec_context.name, container.format.name) in _SEEK_SAFE_WITH_B_FRAMES
    if packets == 0:
        raise VideoDecodeError(f"{path}: video stream holds no frames (truncated or empty?)")
    if header > present:
        raise VideoDecodeError(f"{path}: declares {header} frames but holds {present} (truncated?)")
    tolerance = 1.5 / fps if fps else 0.05 * declared
    if end is not None and declared and float(end * base) < declared - tolerance:
        raise VideoDecodeError(f"{path}: declares {declared:.3f} s but its frames end at {float(end * base):.3f} s "
                               "(truncated?)")
    return _Facts(header, packets, fps, seek_safe)


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


class PyAVReader(VideoReader):
    """PyAV (FFmpeg) decoder: slow random access, but robust, and the reference for what a file holds.

    Reads decode sequentially from the start up to the largest index asked, once per `read` call: clips here
    are short, and sequential decoding is exact where seeking is not. The frame count is the container's
    when the header and the demuxed packets agree, otherwise the number of frames that decode.
    """

    backend = "pyav"

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        self.path = check_video_file(path)
        self.num_threads = num_threads
        self._closed = False
        facts = _inspect(self.path)
        self.fps = facts.fps
        if facts.header == facts.packets:
            self.num_frames = facts.header
        else:
            log.debug("%s: header says %d frames, %d packets: counting decoded frames", self.path, facts.header,
                      facts.packets)
            self.num_frames = self._decode_count()
        if self.num_frames == 0:
            raise VideoDecodeError(f"{self.path}: video stream holds no decodable frames")

    def _decode_count(self) -> int:
        count = 0
        with open_container(self.path) as container:
            container.streams.video[0].thread_count = self.num_threads
            try:
                for _ in container.decode(video=0):
                    count += 1
            except av.error.FFmpegError as err:
                raise VideoDecodeError(f"{self.path}: corrupt or truncated after frame {count} ({err})") from err
        return count

    def read(self, indices: Sequence[int]) -> np.ndarray:
        if self._closed:
            raise ValueError(f"{self.path}: reader is closed")
        wanted = self._checked(indices)
        needed = set(wanted)
        last = max(wanted)
        frames: dict[int, np.ndarray] = {}
        position = -1
        with open_container(self.path) as container:
            container.streams.video[0].thread_count = self.num_threads
            try:
                for position, frame in enumerate(container.decode(video=0)):
                    if position in needed:
                        frames[position] = frame.to_ndarray(format="rgb24")
                    if position >= last:
                        break
            except av.error.FFmpegError as err:
                raise VideoDecodeError(f"{self.path}: decoding failed after frame {position} ({err})") from err
        if last not in frames:
            raise VideoDecodeError(
                f"{self.path}: only {position + 1} frames decode, frame {last} was asked (truncated or corrupt?)"
            )
        return np.stack([frames[i] for i in wanted])

    def close(self) -> None:
        # No file stays open between reads: each read opens its own container.
        self._closed = True


class DecordReader(VideoReader):
    """decord decoder: fast random access on well-formed files; guarded against its known failure modes.

    Random access (`get_batch` on the indices asked, sorted) is used only where it returns the right frames:
    streams without B-frames, and H.264 in MP4/MOV/Matroska. Elsewhere (e.g. XviD AVI with B-frames, as in
    HMDB51/UCF101) decord's seeks land on wrong frames, so reads decode frames 0..max(index) in one pass.
    """

    backend = "decord"

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        import decord

        self.path = check_video_file(path)
        facts = _inspect(self.path)  # first, so that a truncated file never reaches decord
        try:
            self._vr = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=num_threads)
        except (decord.DECORDError, RuntimeError) as err:
            raise VideoDecodeError(f"{self.path}: decord cannot open it ({_last_line(err)})") from err
        reported, packets = len(self._vr), facts.packets
        if not 0 < reported <= packets:
            self._vr = None
            raise VideoDecodeError(
                f"{self.path}: decord reports {reported} frames but the container holds {packets} video packets; "
                "refusing (decord 0.6 can deadlock reading past the real end)"
            )
        self.num_frames = reported
        self.fps = float(self._vr.get_avg_fps())
        self.seek_safe = facts.seek_safe

    def read(self, indices: Sequence[int]) -> np.ndarray:
        import decord

        if self._vr is None:
            raise ValueError(f"{self.path}: reader is closed")
        wanted = self._checked(indices)
        # Where seeking is unsafe, decode every frame from the start (exact) and keep the ones asked.
        unique = sorted(set(wanted)) if self.seek_safe else list(range(max(wanted) + 1))
        try:
            batch = self._vr.get_batch(unique).asnumpy()
        except (decord.DECORDError, RuntimeError) as err:
            raise VideoDecodeError(f"{self.path}: decord failed to decode frames ({_last_line(err)})") from err
        if batch.ndim != 4 or batch.shape[0] != len(unique) or batch.shape[-1] != 3 or batch.dtype != np.uint8:
            raise VideoDecodeError(f"{self.path}: decord returned {batch.dtype} {batch.shape}, expected RGB frames")
        position = {index: k for k, index in enumerate(unique)}
        return batch[[position[i] for i in wanted]]

    def close(self) -> None:
        # decord 0.6 frees its decoder only when the VideoReader is collected; drop the only reference.
        self._vr = None


class _FallbackReader(VideoReader):
    """decord while it works; PyAV for the rest of the file's life once decord fails on a read."""

    def __init__(self, primary: DecordReader, num_threads: int):
        self._reader: VideoReader = primary
        self._num_threads = num_threads
        self.path, self.num_frames, self.fps = primary.path, primary.num_frames, primary.fps

    @property
    def backend(self) -> str:  # type: ignore[override]
        return self._reader.backend

    def read(self, indices: Sequence[int]) -> np.ndarray:
        if self._reader.backend == "pyav":
            return self._reader.read(indices)
        try:
            return self._reader.read(indices)
        except VideoDecodeError as err:
            log.info("%s; falling back to PyAV", err)
            self._reader.close()
            self._reader = PyAVReader(self.path, self._num_threads)
            self.num_frames = self._reader.num_frames
            return self._reader.read(indices)

    def close(self) -> None:
        self._reader.close()


def open_video(path: str | os.PathLike, backend: Backend = "auto", num_threads: int = 1) -> VideoReader:
    """Open a video for reading frames.

    Args:
        path: the video file.
        backend: "decord", "pyav", or "auto": decord, falling back to PyAV (logged) when decord is not installed,
            refuses the file, or fails on a read.
        num_threads: decoder threads per file; 1 by default because parallelism belongs to DataLoader workers.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {BACKENDS}")
    if backend == "pyav":
        return PyAVReader(path, num_threads)
    if backend == "decord":
        return DecordReader(path, num_threads)
    check_video_file(path)
    try:
        return _FallbackReader(DecordReader(path, num_threads), num_threads)
    except ImportError:
        log.info("decord is not installed; reading %s with PyAV", path)
    except VideoDecodeError as err:
        log.info("%s; falling back to PyAV", err)
    return PyAVReader(path, num_threads)


def _last_line(err: BaseException) -> str:
    """decord's messages carry a C++ stack trace; the last non-empty line is the reason."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
