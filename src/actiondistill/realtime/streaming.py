"""Streaming zero-shot recognition: each new frame is encoded once and its embedding reused by every window.

A sliding window of T frames advanced one frame at a time shares T - 1 frames with the previous window. For
models whose image encoder sees one frame at a time (ActionCLIP, ViFi-CLIP), a frame's CLIP embedding does not
depend on its neighbours, so `StreamingRecognizer` keeps a ring buffer of the last T frame embeddings: a new
frame costs one image encoding plus the temporal fusion over T cached embeddings, instead of T encodings.
The result is exactly the full model's prediction on the same T frames (same transform, same fusion, same
ActionCLIP test protocol over the cached text embeddings). X-CLIP's cross-frame attention makes each frame's
embedding depend on the whole window, so it is refused rather than silently re-encoded.

The image encoder, the one per-frame cost, can run on a faster runtime (torch.compile, ONNX Runtime fp32 or int8,
bf16: `actiondistill.export.frame_runtime`), which is checked against eager fp32 before the stream starts. The
statistics say where each frame's time goes (decode, resize, encoder, head) and, for sources that stamp their
frames' arrival (webcams, live replays), how long a frame waited for its prediction.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from actiondistill.data.transforms import eval_transform
from actiondistill.export import frame_runtime
from actiondistill.models.base import VideoCLIP
from actiondistill.models.prompts import validate_labels, validate_templates
from actiondistill.models.xclip import XCLIP
from actiondistill.profiler import resolve_device
from actiondistill.realtime.sources import Frame, SourceError, as_rgb_frame

log = logging.getLogger(__name__)

Fusion = Callable[[torch.Tensor], torch.Tensor]
FrameEncoder = Callable[[torch.Tensor], torch.Tensor]


def parse_labels(text: str) -> list[str]:
    """A label list typed by a user: separated by commas or new lines, '#' comment lines skipped.

    A label holding a comma goes in double quotes (`"pouring, stirring", waving`), as in a CSV row; the quotes are
    not part of the label. Empty fields (a trailing comma, a blank line) are skipped, the rest validated like every
    class list (no duplicates up to case and surrounding spaces).
    """
    import csv

    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    try:
        rows = list(csv.reader(lines, skipinitialspace=True, strict=True))
    except csv.Error as err:
        raise ValueError(f"labels {text!r}: {err}; a label with a comma goes in double quotes") from None
    parts = [part.strip() for row in rows for part in row if part.strip()]
    if not parts:
        raise ValueError(f"labels {text!r}: expected labels separated by commas or new lines, e.g. 'running, jumping'")
    return validate_labels(parts)


def frame_fusion(model: VideoCLIP) -> Fusion:
    """The temporal half of `model.encode_video`: cached (B, T, D) frame embeddings -> (B, D) video embedding.

    Only models whose `encode_video` is exactly "encode each frame, then `fuse_frames`" are accepted
    (`VideoCLIP.accepts_frame_embeddings`); anything else could not reuse frame embeddings exactly.
    """
    if isinstance(model, XCLIP):
        raise ValueError("xclip: X-CLIP's cross-frame attention makes every frame's embedding depend on the other "
                         "frames of its window, so embeddings cannot be reused across windows; stream an ActionCLIP "
                         "or ViFi-CLIP model, or score whole clips with ZeroShotClassifier")
    if not model.accepts_frame_embeddings:
        raise ValueError(f"{type(model).__name__}: its encode_video is not 'encode each frame, then fuse_frames', so "
                         "streaming could not reuse frame embeddings exactly; expected e.g. an ActionCLIP or ViFi-CLIP "
                         "model")
    return model.fuse_frames


def model_image_size(model: VideoCLIP) -> tuple[int, int]:
    """The input resolution of the model's image encoder, which the default transform resizes frames to."""
    size = getattr(model.backbone.visual, "image_size", None)
    if size is None:
        raise ValueError(f"{type(model.backbone.visual).__name__}: no image_size attribute; pass transform=...")
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


@dataclass
class Prediction:
    """One emission: the window ending at `frame` (its index and time), the top-k labels, and what it cost."""

    frame: int
    time_s: float
    labels: list[str]
    probs: np.ndarray
    topk: list[tuple[str, float]]
    encode_ms: float  # transform + image encoder for the newest frame
    fuse_ms: float  # temporal fusion over the window + scoring against the text

    @property
    def label(self) -> str:
        return self.topk[0][0]

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "time_s": round(self.time_s, 4),
                "topk": [[label, round(prob, 6)] for label, prob in self.topk],
                "encode_ms": round(self.encode_ms, 3), "fuse_ms": round(self.fuse_ms, 3)}


@dataclass
class StreamResult:
    """What `StreamingRecognizer.run` returns: every emission and the run's statistics."""

    predictions: list[Prediction] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


class StreamingRecognizer:
    """Zero-shot recognition over a stream of frames with a ring buffer of frame embeddings.

    Args:
        model: an ActionCLIP or ViFi-CLIP model (put in eval mode and moved to `device`).
        labels: free-text class names, validated as in ZeroShotClassifier; change them with `set_labels`.
        num_frames: window length T (default the model's `num_frames`).
        stride: emit a prediction every `stride` frames once the first window is full.
        smoothing: EMA factor alpha in (0, 1] on the probabilities (p = alpha * new + (1 - alpha) * previous);
            None for raw per-window probabilities.
        templates: prompt templates (default the model's own).
        transform: uint8 (1, H, W, 3) -> CLIP-normalised (1, 3, h, w); default `eval_transform` at the
            model's input size, as a clip-level evaluation would use.
        device: "cpu" or "cuda[:i]".
        topk: labels reported per emission.
        stats_window: frames the statistics cover (the most recent ones); None for every frame since `reset`.
        runtime: where the image encoder runs: a name of `export.FRAME_RUNTIMES` (built by `export.frame_runtime`
            and checked against eager fp32 with these labels, so a runtime that changes the predictions is refused
            with an AgreementError), or a ready frame encoder ((N, 3, h, w) -> (N, D), e.g. a `FrameRuntime`). A
            runtime with a `fuse` (the bf16 runtimes' bf16 temporal head) fuses the windows too.
    """

    def __init__(self, model: VideoCLIP, labels: Sequence[str], num_frames: int | None = None, stride: int = 1,
                 smoothing: float | None = None, templates: Sequence[str] | None = None,
                 transform: Callable[[np.ndarray], torch.Tensor] | None = None, device: str | torch.device = "cpu",
                 topk: int = 5, stats_window: int | None = None, runtime: str | FrameEncoder = "eager"):
        if not isinstance(model, VideoCLIP):
            raise ValueError(f"model: expected a VideoCLIP model, got {type(model).__name__}")
        self.fuse = frame_fusion(model)
        num_frames = model.num_frames if num_frames is None else num_frames
        for name, value in (("num_frames", num_frames), ("stride", stride), ("topk", topk)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: expected an integer >= 1")
        if smoothing is not None and not 0 < smoothing <= 1:
            raise ValueError(f"smoothing={smoothing!r}: expected an EMA factor in (0, 1], or None for no smoothing")
        if stats_window is not None and stats_window < 1:
            raise ValueError(f"stats_window={stats_window!r}: expected >= 1 or None")
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.num_frames, self.stride, self.smoothing, self.topk = num_frames, stride, smoothing, topk
        self.templates = model.templates if templates is None else validate_templates(templates)
        self.transform = transform if transform is not None else eval_transform(model_image_size(model))
        self.stats_window = stats_window
        self._text: tuple[list[str], torch.Tensor] = ([], torch.empty(0))
        self.set_labels(labels)
        self.frame_encoder = (frame_runtime(self.model, runtime, labels=self.labels, templates=self.templates,
                                            num_frames=num_frames) if isinstance(runtime, str) else runtime)
        # a runtime may bring the temporal head on the same runtime (the bf16 ones do); it was checked with it
        self.fuse = getattr(self.frame_encoder, "fuse", None) or self.fuse
        self.reset()

    @property
    def runtime(self) -> str:
        """What runs the image encoder ("eager" unless a faster runtime was given and not fallen back from)."""
        return getattr(self.frame_encoder, "runtime", "custom")

    # ----------------------------------------------------------------- labels
    @property
    def labels(self) -> list[str]:
        return self._text[0]

    def set_labels(self, labels: Sequence[str]) -> None:
        """Validate and encode a new label list; safe while another thread runs `process` (applies to its next
        frame, and restarts the smoothing, whose history belongs to the old labels)."""
        labels = validate_labels(labels)
        with torch.no_grad():
            text = self.model.text_templates(labels, self.templates)
            # as the logits see them, normalised once per label list rather than once per frame and template
            text = F.normalize(torch.stack([self.model.adapt_text(template, None) for template in text]), dim=-1)
        self._text = (labels, text)  # one assignment: a concurrent `process` sees the old pair or the new one

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the buffered frames, the smoothing history and the statistics (e.g. a new stream)."""
        self._buffer: deque[torch.Tensor] = deque(maxlen=self.num_frames)
        self._ema: tuple[list[str], torch.Tensor] | None = None
        self.frames = 0
        self.reset_stats()

    def reset_stats(self) -> None:
        """Restart the statistics only (e.g. after a pause, so idle time does not count against the FPS)."""
        # per frame: start, end, resize ms, encoder ms, head ms (NaN without a window), arrival-to-prediction ms
        self._timing: deque[tuple[float, ...]] = deque(maxlen=self.stats_window)
        self._clock0: float | None = None

    # ----------------------------------------------------------------- processing
    @torch.no_grad()
    def process(self, frame: Frame | np.ndarray) -> Prediction | None:
        """Add one RGB uint8 frame (H, W, 3); returns a Prediction when a window ends here, else None."""
        start = time.perf_counter()
        self._clock0 = start if self._clock0 is None else self._clock0
        arrival = frame.arrival if isinstance(frame, Frame) else None
        if isinstance(frame, Frame):
            image, index, time_s = frame.image, frame.index, frame.time_s
        else:
            image, index, time_s = frame, self.frames, start - self._clock0
        image = as_rgb_frame(image, "process", index)
        labels, text = self._text
        clip = self._resize(image)
        resized = time.perf_counter()
        self._buffer.append(self._encode(clip))
        encoded = time.perf_counter()
        position = self.frames
        self.frames += 1
        encode_ms, fuse_ms, prediction = (encoded - start) * 1e3, float("nan"), None
        if len(self._buffer) == self.num_frames and (position - self.num_frames + 1) % self.stride == 0:
            video = self.fuse(torch.stack(tuple(self._buffer)).unsqueeze(0))
            probs = self._smooth(labels, self.window_probs(video, text)[0]).cpu()
            fuse_ms = (time.perf_counter() - encoded) * 1e3
            prediction = self._prediction(index, time_s, labels, probs, encode_ms, fuse_ms)
        end = time.perf_counter()
        waited_ms = (end - (start if arrival is None else arrival)) * 1e3 if prediction is not None else float("nan")
        self._timing.append((start, end, (resized - start) * 1e3, (encoded - resized) * 1e3, fuse_ms, waited_ms))
        return prediction

    @torch.no_grad()
    def encode_frame(self, image: np.ndarray) -> torch.Tensor:
        """One RGB uint8 frame (H, W, 3) -> its (D,) CLIP embedding: the per-frame cost of streaming."""
        return self._encode(self._resize(image))

    def _resize(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, h, w) CLIP-normalised on the device: resize, crop, normalise."""
        return self.transform(image[None]).to(self.device)

    def _encode(self, clip: torch.Tensor) -> torch.Tensor:
        embedding = self.frame_encoder(clip)[0]
        self._sync()
        return embedding

    def window_probs(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, D) video embeddings x (K, C, D) normalised template text -> (B, C): the ActionCLIP test protocol as
        `VideoCLIP.template_probs` applies it (softmax per template, mean over templates), in one product for every
        template: a loop over ActionCLIP's 16 templates cost about 1.3 ms per frame in small-op overhead."""
        logits = self.model.eval_logit_scale * torch.einsum("bd,kcd->bkc", F.normalize(video, dim=-1), text)
        return logits.softmax(dim=-1).mean(dim=1)

    def _smooth(self, labels: list[str], probs: torch.Tensor) -> torch.Tensor:
        if self.smoothing is None:
            return probs
        if self._ema is not None and self._ema[0] is labels:
            probs = self.smoothing * probs + (1 - self.smoothing) * self._ema[1]
        self._ema = (labels, probs)
        return probs

    def _prediction(self, index: int, time_s: float, labels: list[str], probs: torch.Tensor, encode_ms: float,
                    fuse_ms: float) -> Prediction:
        top = probs.topk(min(self.topk, len(labels)))
        topk = [(labels[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
        return Prediction(index, float(time_s), labels, probs.float().numpy(), topk, encode_ms, fuse_ms)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ----------------------------------------------------------------- running and statistics
    def run(self, source: Iterable[Frame], max_frames: int | None = None,
            on_prediction: Callable[[Prediction], None] | None = None, progress: bool = True) -> StreamResult:
        """Process a source until it ends, stalls, fails, or `max_frames` frames; always returns what was gathered.

        A source that stalls or fails mid-way (`SourceError`) ends the run with its message in `stats["stopped"]`
        and `stats["error"]`; Ctrl-C (KeyboardInterrupt) ends it with `stats["interrupted"]`, so a live stream's
        summary survives the only way to stop it. The source is closed in every case. `stats["source_ms"]` is the
        mean time spent waiting for the source (decoding, camera), which the FPS includes; `stats["dropped"]` the
        frames a live source skipped because the model was slower than it (the newest frame wins);
        `stats["stages_ms"]` the mean time per frame of each stage: decode (waiting for the source), resize
        (resize, crop, normalise), encoder (the image encoder on its runtime) and head (temporal fusion over the
        window and scoring against the cached label embeddings, per window).
        """
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames={max_frames!r}: expected >= 1 or None")
        result = StreamResult()
        stopped, error, interrupted = "source ended", None, False
        count, waited = 0, 0.0
        frames = iter(source)
        bar = tqdm(total=max_frames, desc="streaming", unit="frame", disable=not progress, leave=False)
        try:
            while True:
                if max_frames is not None and count >= max_frames:
                    stopped = f"max_frames={max_frames} reached"
                    break
                asked = time.perf_counter()
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                waited += time.perf_counter() - asked
                prediction = self.process(frame)
                count += 1
                bar.update()
                if prediction is not None:
                    result.predictions.append(prediction)
                    if on_prediction is not None:
                        on_prediction(prediction)
        except SourceError as err:
            stopped = error = str(err)
            log.warning("stream stopped: %s", err)
        except KeyboardInterrupt:
            stopped, interrupted = "interrupted (Ctrl-C)", True
        finally:
            bar.close()
            close = getattr(source, "close", None)
            if close is not None:
                close()
        stats = self.stats()
        source_ms = round(waited * 1e3 / count, 3) if count else None
        stages = {"decode": source_ms, "resize": stats["resize_ms"], "encoder": stats["encoder_ms"],
                  "head": stats["fuse_ms"]}
        result.stats = {**stats, "predictions": len(result.predictions), "stopped": stopped, "source_ms": source_ms,
                        "dropped": int(getattr(source, "dropped", 0)), "stages_ms": stages, "error": error,
                        "interrupted": interrupted}
        return result

    def stats(self) -> dict[str, Any]:
        """FPS (frames processed per second of wall time, waiting for frames included), per-frame latency
        percentiles (resize + encode + fuse of that frame), mean times of resize, encoder, encode (both) and fuse,
        and the latency from a frame's arrival (when its source delivered it; when processing began for frames
        without an arrival time) to its prediction, over the frames that ended a window."""
        if not self._timing:
            return {"frames": 0, "fps": None, "wall_s": 0.0, "runtime": self.runtime, "latency_p50_ms": None,
                    "latency_p90_ms": None, "latency_p99_ms": None, "resize_ms": None, "encoder_ms": None,
                    "encode_ms": None, "fuse_ms": None, "arrival_latency_p50_ms": None,
                    "arrival_latency_p99_ms": None}
        timing = np.array(self._timing)
        wall = float(timing[-1, 1] - timing[0, 0])
        latency = (timing[:, 1] - timing[:, 0]) * 1e3
        return {
            "frames": len(timing),
            "fps": round(len(timing) / wall, 3) if wall > 0 else None,
            "wall_s": round(wall, 4),
            "runtime": self.runtime,
            "latency_p50_ms": _percentile(latency, 50),
            "latency_p90_ms": _percentile(latency, 90),
            "latency_p99_ms": _percentile(latency, 99),
            "resize_ms": _mean(timing[:, 2]),
            "encoder_ms": _mean(timing[:, 3]),
            "encode_ms": _mean(timing[:, 2] + timing[:, 3]),
            "fuse_ms": _mean(timing[:, 4]),
            "arrival_latency_p50_ms": _percentile(timing[:, 5], 50),
            "arrival_latency_p99_ms": _percentile(timing[:, 5], 99),
        }


def _percentile(values: np.ndarray, q: float) -> float | None:
    """The q-th percentile of the values that are not NaN (rounded to the microsecond), None when there are none."""
    kept = values[~np.isnan(values)]
    return round(float(np.percentile(kept, q)), 3) if kept.size else None


def _mean(values: np.ndarray) -> float | None:
    kept = values[~np.isnan(values)]
    return round(float(kept.mean()), 3) if kept.size else None
