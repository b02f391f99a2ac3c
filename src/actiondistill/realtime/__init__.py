"""Real-time zero-shot recognition: frame sources (webcam, video file, iterator) and the streaming recognizer
that encodes each frame once and reuses its embedding across overlapping windows."""

from actiondistill.realtime.sources import (
    Frame,
    FrameSource,
    SourceError,
    iter_source,
    video_source,
    webcam_source,
)
from actiondistill.realtime.streaming import (
    Prediction,
    StreamingRecognizer,
    StreamResult,
    frame_fusion,
    model_image_size,
    parse_labels,
)
from actiondistill.realtime.threads import pick_threads, thread_candidates

__all__ = [
    "Frame",
    "FrameSource",
    "Prediction",
    "SourceError",
    "StreamResult",
    "StreamingRecognizer",
    "frame_fusion",
    "iter_source",
    "model_image_size",
    "parse_labels",
    "pick_threads",
    "thread_candidates",
    "video_source",
    "webcam_source",
]
