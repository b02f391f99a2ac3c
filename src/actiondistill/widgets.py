"""The live zero-shot widget: a notebook front end for `StreamingRecognizer` on a webcam or a video file.

`LiveZeroShot` shows the current frame with the top prediction drawn on it, the top-k probabilities as bars,
an FPS/latency readout, an editable label list and a teacher/student selector. Start runs the loop in a
background thread (the kernel stays responsive, so labels and the model can change mid-stream: edits apply
at the next frame); `step()` processes one frame synchronously, which is how tests drive it without a kernel.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from actiondistill.models.prompts import validate_labels
from actiondistill.realtime.sources import Frame, FrameSource, SourceError, iter_source, video_source, webcam_source
from actiondistill.realtime.streaming import Prediction, StreamingRecognizer, parse_labels

log = logging.getLogger(__name__)

SourceSpec = str | os.PathLike | int | FrameSource | Iterable[Any]


class LiveZeroShot:
    """Live zero-shot recognition in a notebook.

    Args:
        models: one model, or {"teacher": model, "student": model, ...} for the selector.
        labels: the initial label list (a list, or text separated by commas / new lines).
        source: a video file path (re-opened when started again after it ended), a webcam index, a
            FrameSource, or any iterable of RGB uint8 frames.
        num_frames, stride, topk, smoothing, templates, device: as for StreamingRecognizer.
        display_size: the longer side of the displayed frame, in pixels.
        stats_window: frames the FPS/latency readout averages over.
        timeout: seconds without a frame before a webcam or iterator counts as stalled.
        runtime: where each model's image encoder runs (`export.FRAME_RUNTIMES`: eager, compile, onnx, onnx-int8,
            bf16, bf16-compile); any but eager is checked against eager fp32 when the model is first selected and
            refused (AgreementError) if it changes the predictions.
    """

    def __init__(self, models: Mapping[str, nn.Module] | nn.Module, labels: Sequence[str] | str, source: SourceSpec,
                 *, num_frames: int | None = None, stride: int = 1, topk: int = 5, smoothing: float | None = None,
                 templates: Sequence[str] | None = None, device: str = "cpu", display_size: int = 256,
                 stats_window: int = 60, timeout: float = 5.0, runtime: str = "eager"):
        import ipywidgets as w

        self.models = {"model": models} if isinstance(models, nn.Module) else dict(models)
        if not self.models or not all(isinstance(m, nn.Module) for m in self.models.values()):
            raise ValueError(f"models: expected a model or a non-empty dict of models, got {models!r}")
        self.labels = parse_labels(labels) if isinstance(labels, str) else validate_labels(labels)
        self.options = {"num_frames": num_frames, "stride": stride, "topk": topk, "smoothing": smoothing,
                        "templates": templates, "device": device, "stats_window": stats_window, "runtime": runtime}
        self.display_size, self.timeout = display_size, timeout
        self._source_spec = source
        self._source: FrameSource | None = None
        self._ended = False
        self._recognizers: dict[str, StreamingRecognizer] = {}
        self._pending_labels: str | None = None
        self._last: Prediction | None = None
        self._active: str | None = None
        self._step_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

        first = next(iter(self.models))
        self._recognizer(first)  # fail here, not in the loop, on a model that cannot stream
        self.labels_box = w.Textarea(value=", ".join(self.labels), description="labels", continuous_update=False,
                                     layout=w.Layout(width="100%"))
        self.model_select = w.Dropdown(options=list(self.models), value=first, description="model")
        self.start_button = w.Button(description="Start", icon="play", button_style="success")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.image = w.Image(format="png", width=display_size)
        self.bars = w.HTML(value="<i>waiting for the first window</i>")
        self.stats_label = w.HTML(value="-- FPS")
        self.status = w.Label(value="ready")
        self.labels_box.observe(self._labels_edited, names="value")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        controls = w.HBox([self.start_button, self.stop_button, self.model_select])
        self.widget = w.VBox([controls, self.labels_box, w.HBox([self.image, self.bars]), self.stats_label,
                              self.status])

    # ----------------------------------------------------------------- driving
    def step(self) -> Prediction | None:
        """Read and process one frame and refresh the display; None when no window ended or the source ended."""
        with self._step_lock:
            self._apply_labels()
            recognizer = self._switch(self.model_select.value)
            frame = self._next_frame()
            if frame is None:
                return None
            prediction = recognizer.process(frame)
            if prediction is not None:
                self._last = prediction
                self.bars.value = bars_html(prediction)
            self.image.value = self._render(frame.image)
            self.stats_label.value = self._stats_html(recognizer)
            return prediction

    def start(self) -> None:
        """Run the loop in a background thread until Stop, the end of the source, or an error."""
        if self._thread is not None and self._thread.is_alive():
            return
        recognizer = self._switch(self.model_select.value)
        if self._ended and isinstance(self._source_spec, (str, os.PathLike, int)):
            self._ended = False  # a file or a camera can be opened again: a new stream, so a fresh window
            recognizer.reset()
        recognizer.reset_stats()  # paused time is not processing time
        self._stop.clear()
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "running"
        self._thread = threading.Thread(target=self._loop, name="LiveZeroShot", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        """Ask the loop to stop after the current frame and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=wait)

    def close(self) -> None:
        """Stop the loop and release the source (the camera)."""
        self.stop()
        if self._source is not None:
            self._source.close()
            self._source = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set() and not self._ended:
                self.step()
            if not self._ended:
                self.status.value = "stopped"
        except Exception as err:  # the thread has no caller: show any failure in the widget instead of losing it
            log.exception("live zero-shot loop failed")
            self.status.value = f"error: {type(err).__name__}: {err}"
        finally:
            self.start_button.disabled, self.stop_button.disabled = False, True

    # ----------------------------------------------------------------- state
    def _recognizer(self, name: str) -> StreamingRecognizer:
        """One recognizer per model (each keeps its own frame buffer), created on first use."""
        if name not in self._recognizers:
            self._recognizers[name] = StreamingRecognizer(self.models[name], self.labels, **self.options)
        recognizer = self._recognizers[name]
        if recognizer.labels != self.labels:
            recognizer.set_labels(self.labels)
        return recognizer

    def _switch(self, name: str) -> StreamingRecognizer:
        """The selected model's recognizer; on a change of model its buffer restarts (it holds older frames)."""
        recognizer = self._recognizer(name)
        if name != self._active:
            recognizer.reset()
            self._active, self._last = name, None
        return recognizer

    def _labels_edited(self, change: dict) -> None:
        self._pending_labels = change["new"]

    def _apply_labels(self) -> None:
        text, self._pending_labels = self._pending_labels, None
        if text is None:
            return
        try:
            self.labels = parse_labels(text)
        except ValueError as err:
            self.status.value = f"labels not changed: {err}"
            return
        self.status.value = f"labels: {len(self.labels)}"

    def _next_frame(self) -> Frame | None:
        if self._ended:
            return None
        try:
            if self._source is None:
                self._source = self._open_source()
            return next(self._source)
        except StopIteration:
            self.status.value = "source ended"
        except SourceError as err:
            self.status.value = f"source stopped: {err}"
        self._ended = True
        self._source = None
        return None

    def _open_source(self) -> FrameSource:
        spec = self._source_spec
        if isinstance(spec, FrameSource):
            return spec
        if isinstance(spec, bool):
            raise ValueError(f"source={spec!r}: expected a video path, a webcam index or an iterable of frames")
        if isinstance(spec, int):
            return webcam_source(spec, timeout=self.timeout)
        if isinstance(spec, (str, os.PathLike)):
            return video_source(Path(spec), timeout=self.timeout)
        return iter_source(spec, timeout=self.timeout)

    # ----------------------------------------------------------------- display
    def _render(self, image: np.ndarray) -> bytes:
        """The frame scaled to `display_size` with the top prediction written on it, as PNG bytes."""
        import cv2

        height, width = image.shape[:2]
        scale = self.display_size / max(height, width)
        shown = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA)
        if self._last is not None:
            label, prob = self._last.topk[0]
            text, origin = f"{label} {prob:.2f}", (6, 22)
            cv2.putText(shown, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(shown, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        ok, png = cv2.imencode(".png", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode a {shown.shape} frame as PNG")
        return png.tobytes()

    def _stats_html(self, recognizer: StreamingRecognizer) -> str:
        s = recognizer.stats()
        if not s["frames"] or s["fps"] is None:
            return "-- FPS"
        fuse = f"{s['fuse_ms']:.1f} ms" if s["fuse_ms"] is not None else "--"
        return (f"<b>{s['fps']:.1f} FPS</b> &middot; latency p50 {s['latency_p50_ms']:.1f} ms, p90 "
                f"{s['latency_p90_ms']:.1f} ms &middot; encode {s['encode_ms']:.1f} ms, fuse {fuse} &middot; "
                f"{html.escape(str(self.model_select.value))} ({recognizer.runtime}), {recognizer.num_frames}-frame "
                "windows")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def bars_html(prediction: Prediction) -> str:
    """The top-k labels as an HTML table of horizontal bars, most likely first."""
    rows = "".join(
        f"<tr><td style='padding-right:8px'>{html.escape(label)}</td><td style='width:160px'>"
        f"<div style='background:#4c78a8;height:12px;width:{100 * prob:.1f}%'></div></td>"
        f"<td style='padding-left:8px'>{prob:.2f}</td></tr>"
        for label, prob in prediction.topk
    )
    return f"<table>{rows}</table>"
