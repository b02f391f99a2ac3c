"""Frame sources for real-time recognition: a webcam, a video file, or any iterator, behind one interface.

Every source yields `Frame`s (RGB uint8 (H, W, 3), index, timestamp) and stops cleanly: the end of the stream
ends the iteration, and a source that stalls (no frame within `timeout` seconds) or fails mid-way raises
`SourceError` with a message naming it, never hangs. Stall detection needs the reads off the caller's thread:
with a `timeout`, a daemon reader thread fills a small queue and the consumer waits on the queue with that
timeout. A reader stuck inside a blocking call cannot be interrupted from Python, so closing the source only
asks it to stop; being a daemon, it never keeps the process alive, and it releases its device when the call
returns. Live sources (a webcam, a video file replayed with `live=True`) keep only the newest frame when the
consumer falls behind: predictions follow the live scene instead of a growing backlog, the frames skipped are
counted (`FrameSource.dropped`), and each frame carries its arrival time, so the latency from arrival to
prediction can be measured.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_END = object()


class SourceError(RuntimeError):
    """A frame source stalled or failed mid-stream; the message names the source and what happened."""


@dataclass(frozen=True)
class Frame:
    """One RGB uint8 frame (H, W, 3), its position in the stream, its time in seconds from the stream's start and,
    from live sources (a webcam, a live replay), when it arrived (`time.perf_counter()`), from which the latency to
    its prediction is measured; None where the time it waited is not a live delay (a file decoded ahead)."""

    image: np.ndarray
    index: int
    time_s: float
    arrival: float | None = None


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class _Reader:
    """A daemon thread moving items from an iterator into a bounded queue, so the consumer can wait with a timeout."""

    def __init__(self, frames: Iterator[Frame], name: str, size: int, drop_stale: bool):
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._drop_stale = drop_stale
        self._thread = threading.Thread(target=self._run, args=(frames,), name=f"frames: {name}", daemon=True)
        self._thread.start()

    def _run(self, frames: Iterator[Frame]) -> None:
        try:
            for frame in frames:
                self._put(frame, drop=self._drop_stale)
                if self._stop.is_set():
                    return
            self._put(_END)
        except Exception as err:  # any failure of the producer is handed to the consumer, with its type
            self._put(_Failure(err))
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # a generator's cleanup (releasing a camera) runs here, in the thread that drove it

    def _put(self, item: Any, drop: bool = False) -> None:
        """Queue `item`; with `drop`, at once, discarding the oldest queued frame when full (the newest frame wins),
        since waiting for room would hand the consumer a stale frame."""
        while not self._stop.is_set():
            try:
                if drop:
                    self._queue.put_nowait(item)
                else:
                    self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                if drop:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def get(self, timeout: float, name: str) -> Frame:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise SourceError(f"{name}: no frame within {timeout:g} s (stalled or disconnected)") from None
        if item is _END:
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.error
        return item

    def stop(self, wait: float) -> None:
        self._stop.set()
        self._thread.join(timeout=wait)


class FrameSource:
    """An iterator of `Frame`s with `close()`; iterate it once.

    Args:
        name: how messages name the source (a file path, "webcam 0").
        frames: the producer; a generator's cleanup runs when the source ends or is closed.
        timeout: None to read in the caller's thread; seconds to read in a background thread and raise
            `SourceError` when no frame arrives in time.
        drop_stale: with a reader thread, drop the oldest queued frame when the queue is full (live sources; with
            `buffer=1` the consumer always gets the newest frame).
        buffer: frames the reader thread may queue ahead.
    """

    def __init__(self, name: str, frames: Iterator[Frame], timeout: float | None = None, drop_stale: bool = False,
                 buffer: int = 4):
        if timeout is not None and not timeout > 0:
            raise ValueError(f"{name}: timeout={timeout!r}, expected a positive number of seconds or None")
        if buffer < 1:
            raise ValueError(f"{name}: buffer={buffer}, expected >= 1")
        self.name = name
        self.timeout = timeout
        self.frames_read = 0
        self._frames = frames
        self._reader = _Reader(frames, name, buffer, drop_stale) if timeout is not None else None
        self._closed = False

    @property
    def dropped(self) -> int:
        """Frames a live source discarded because the consumer was slower than the stream."""
        return self._reader.dropped if self._reader is not None else 0

    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        try:
            frame = next(self._frames) if self._reader is None else self._reader.get(self.timeout, self.name)
        except StopIteration:
            self.close()
            raise
        except SourceError:
            self.close()
            raise
        except Exception as err:  # a producer's own error, reported with the source's name and position
            self.close()
            raise SourceError(f"{self.name}: failed after {self.frames_read} frames ({type(err).__name__}: {err})"
                              ) from err
        self.frames_read += 1
        return frame

    def close(self) -> None:
        """Stop reading and release the device (a stalled reader thread releases it when its call returns)."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.stop(wait=0.5)
        else:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FrameSource({self.name!r}, timeout={self.timeout})"


def as_rgb_frame(image: Any, name: str, index: int) -> np.ndarray:
    """Check one frame: RGB uint8 (H, W, 3); anything else is refused with the source, index and what came."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise SourceError(f"{name}: frame {index} is {got}, expected an RGB uint8 array (H, W, 3)")
    return image


def webcam_source(index: int = 0, timeout: float = 5.0, capture_factory: Callable[[int], Any] | None = None,
                  buffer: int = 1, drop_stale: bool = True) -> FrameSource:
    """Frames from an OpenCV camera (BGR converted to RGB), timestamped by the wall clock from the first frame.

    Args:
        index: the camera index `cv2.VideoCapture` takes.
        timeout: seconds without a frame after which the camera counts as stalled (include the warm-up).
        capture_factory: builds the capture object (default `cv2.VideoCapture`); anything with its
            `isOpened()`, `read()` and `release()` works, which is how tests stand in for a camera.
        buffer: frames queued ahead (1: the consumer gets the newest frame).
        drop_stale: drop the oldest queued frame when the consumer is slower than the camera (live use);
            False keeps every frame, delaying the predictions instead.
    """
    if capture_factory is None:
        import cv2

        capture_factory = cv2.VideoCapture
    capture = capture_factory(index)
    if not capture.isOpened():
        capture.release()
        raise RuntimeError(f"webcam {index}: cannot be opened (no camera at this index, in use by another program, "
                           "or no permission to use it)")
    name = f"webcam {index}"
    return FrameSource(name, _capture_frames(capture, name), timeout=timeout, drop_stale=drop_stale, buffer=buffer)


def _capture_frames(capture: Any, name: str) -> Iterator[Frame]:
    import cv2

    start = None
    count = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                log.info("%s: no more frames after %d", name, count)
                return
            now = time.perf_counter()
            start = now if start is None else start
            if isinstance(image, np.ndarray) and image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
            else:
                image = cv2.cvtColor(as_rgb_frame(image, name, count), cv2.COLOR_BGR2RGB)
            yield Frame(image, count, now - start, arrival=now)
            count += 1
    finally:
        capture.release()


#: Seconds without a frame before a live replay counts as stalled, when no timeout is given.
LIVE_TIMEOUT = 10.0


def video_source(path: str | os.PathLike, timeout: float | None = None, live: bool = False) -> FrameSource:
    """Every frame of a video file in order, decoded once with PyAV, timestamped by its presentation time.

    Sequential decoding is the streaming access pattern; the random-access readers of `data.video` would
    decode from the start for each frame. With a `timeout`, decoding runs ahead in a reader thread.
    With `live`, the file plays like a camera: a reader thread releases each frame at its presentation time on the
    wall clock, and a consumer slower than the file's frame rate gets the newest frame while the ones it missed are
    dropped (and counted), which is how a live stream stays current instead of falling behind.
    """
    from actiondistill.data.video import open_container

    p = Path(path)
    container = open_container(p)
    frames = _decoded_frames(container, p)
    if live:
        return FrameSource(str(p), _paced(frames), timeout=timeout or LIVE_TIMEOUT, drop_stale=True, buffer=1)
    return FrameSource(str(p), frames, timeout=timeout)


def _decoded_frames(container: Any, path: Path) -> Generator[Frame, None, None]:
    import av

    stream = container.streams.video[0]
    stream.thread_count = 1
    rate = float(stream.average_rate or stream.guessed_rate or 0) or None
    count = 0
    try:
        for frame in container.decode(stream):
            time_s = frame.time if frame.time is not None else (count / rate if rate else float(count))
            yield Frame(frame.to_ndarray(format="rgb24"), count, float(time_s))
            count += 1
        if stream.frames and count < stream.frames:  # the decoder skipped corrupt packets without raising
            raise SourceError(f"{path}: decoding stopped at frame {count} of the {stream.frames} the file declares "
                              "(corrupt or truncated)")
    except av.error.FFmpegError as err:
        raise SourceError(f"{path}: decoding failed after frame {count} ({err})") from err
    finally:
        container.close()


def _paced(frames: Generator[Frame, None, None]) -> Iterator[Frame]:
    """Each frame released at its presentation time after the first one's, stamped with that arrival time."""
    start = None
    try:
        for frame in frames:
            now = time.perf_counter()
            start = now - frame.time_s if start is None else start
            delay = start + frame.time_s - now
            if delay > 0:
                time.sleep(delay)
            yield replace(frame, arrival=time.perf_counter())
    finally:
        frames.close()


def iter_source(frames: Iterable[Any], fps: float | None = None, timeout: float | None = 10.0,
                name: str = "iterator") -> FrameSource:
    """Any iterable of RGB uint8 arrays (H, W, 3) or `Frame`s, e.g. a generator rendering or receiving frames.

    Arrays are numbered in order and timestamped `index / fps`, or by the wall clock without `fps`. The
    iterable is read in a reader thread (so a stall is detected) unless `timeout` is None.
    """
    if fps is not None and not fps > 0:
        raise ValueError(f"{name}: fps={fps!r}, expected a positive frame rate or None")
    return FrameSource(name, _iterated_frames(iter(frames), fps, name), timeout=timeout)


def _iterated_frames(items: Iterator[Any], fps: float | None, name: str) -> Iterator[Frame]:
    start = time.perf_counter()
    try:
        for index, item in enumerate(items):
            if isinstance(item, Frame):
                yield Frame(as_rgb_frame(item.image, name, item.index), item.index, item.time_s, item.arrival)
            else:
                time_s = index / fps if fps else time.perf_counter() - start
                yield Frame(as_rgb_frame(item, name, index), index, time_s)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
