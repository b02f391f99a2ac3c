"""Streaming recognition: exact reuse of frame embeddings, emissions, labels, smoothing, stats and frame sources."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from actiondistill.data.encode import write_video
from actiondistill.data.synthetic import render_clip, sample_spec
from actiondistill.data.video import open_video
from actiondistill.models import ActionCLIP, create_backbone, create_model
from actiondistill.models import base as base_module
from actiondistill.realtime import (
    Frame,
    SourceError,
    StreamingRecognizer,
    iter_source,
    parse_labels,
    video_source,
    webcam_source,
)

LABELS = ["juggling", "riding a bike", "waving"]


def build(name: str, **cfg):
    torch.manual_seed(0)
    return create_model(name, backbone="embedded-tiny", num_frames=4, **cfg)


class FakeCapture:
    """OpenCV VideoCapture's interface over RGB frames: BGR reads, False at the end, an optional stall."""

    def __init__(self, frames, opened: bool = True, stall_after: int | None = None):
        self.frames, self.opened, self.stall_after = frames, opened, stall_after
        self.position, self.released = 0, False
        self.unblock = threading.Event()

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self):
        if self.stall_after is not None and self.position >= self.stall_after:
            self.unblock.wait(30)
        if self.position >= len(self.frames):
            return False, None
        self.position += 1
        return True, np.ascontiguousarray(self.frames[self.position - 1][..., ::-1])

    def release(self) -> None:
        self.released = True


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (12, 40, 48, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def meanp():
    return build("actionclip-meanp")


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    write_video(path, render_clip(sample_spec(0), size=64, frames=12), fps=10)
    return path


def emissions(recognizer: StreamingRecognizer, frames) -> list:
    return [p for frame in frames if (p := recognizer.process(frame)) is not None]


# ----------------------------------------------------------------- the engine
@pytest.mark.parametrize(("name", "cfg"), [("actionclip-transf", {"fusion_layers": 1}), ("actionclip-conv1d", {}),
                                           ("vificlip", {})])
def test_streaming_equals_the_full_model_on_every_window(name, cfg, frames):
    model = build(name, **cfg)
    recognizer = StreamingRecognizer(model, LABELS, stride=1, topk=3)
    predictions = emissions(recognizer, frames)
    assert [p.frame for p in predictions] == list(range(3, 12))
    for p in predictions:
        clip = recognizer.transform(frames[p.frame - 3 : p.frame + 1]).unsqueeze(0)
        with torch.no_grad():
            full = model.predict_proba(clip, LABELS)[0].numpy()
        np.testing.assert_allclose(p.probs, full, atol=1e-5)
        assert p.topk[0] == (LABELS[int(full.argmax())], pytest.approx(float(full.max()), abs=1e-5))
    assert predictions[0].probs.max() > 0.5  # the check above is not vacuous: the probabilities are far from uniform


def test_each_frame_is_encoded_once(frames):
    model = build("actionclip-transf", fusion_layers=1)
    batches = []
    handle = model.backbone.visual.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    try:
        predictions = emissions(StreamingRecognizer(model, LABELS, stride=1), frames)
    finally:
        handle.remove()
    assert len(predictions) == 9
    assert batches == [1] * len(frames)  # 12 image encodings for 9 windows of 4 frames, not 36


def test_stride_and_first_window(meanp, frames):
    recognizer = StreamingRecognizer(meanp, LABELS, num_frames=4, stride=3)
    out = [recognizer.process(frame) for frame in frames]
    assert [k for k, p in enumerate(out) if p is not None] == [3, 6, 9]
    recognizer.reset()
    assert recognizer.process(frames[0]) is None  # the buffer starts empty again


def test_xclip_and_other_models_are_refused():
    with pytest.raises(ValueError, match="cross-frame attention"):
        StreamingRecognizer(build("xclip"), LABELS)

    class WholeClip(ActionCLIP):  # an encode_video that is not "encode each frame, then fuse"
        def encode_video(self, frames):
            return super().encode_video(frames) * 2

    with pytest.raises(ValueError, match="WholeClip: its encode_video"):
        StreamingRecognizer(WholeClip(create_backbone("embedded-tiny"), num_frames=4, fusion="meanP"), LABELS)
    with pytest.raises(ValueError, match="expected a VideoCLIP model"):
        StreamingRecognizer(torch.nn.Linear(2, 2), LABELS)


@pytest.mark.parametrize(("option", "value"), [("num_frames", 0), ("stride", 0), ("topk", 0), ("smoothing", 0.0),
                                               ("smoothing", 1.5)])
def test_bad_options_are_named(meanp, option, value):
    with pytest.raises(ValueError, match=f"{option}="):
        StreamingRecognizer(meanp, LABELS, **{option: value})


def test_labels_are_validated_cached_and_changeable(meanp, frames, monkeypatch):
    recognizer = StreamingRecognizer(meanp, LABELS, num_frames=2, templates=["a video of {}"])
    calls = []
    encode_tokens = base_module.encode_tokens
    monkeypatch.setattr(base_module, "encode_tokens", lambda *a, **k: calls.append(1) or encode_tokens(*a, **k))
    assert len(emissions(recognizer, frames[:4])) == 3 and not calls  # text encoded once, at construction
    recognizer.set_labels(["swimming", " Cooking "])
    assert len(calls) == 1
    prediction = recognizer.process(frames[4])
    assert prediction.labels == ["swimming", "Cooking"] and prediction.probs.shape == (2,)
    assert {label for label, _ in prediction.topk} == {"swimming", "Cooking"}
    with pytest.raises(ValueError, match="duplicate"):
        recognizer.set_labels(["swimming", "SWIMMING"])
    assert recognizer.labels == ["swimming", "Cooking"]


def test_ema_smoothing(meanp, frames):
    raw = [p.probs for p in emissions(StreamingRecognizer(meanp, LABELS, num_frames=2), frames)]
    smoothed = [p.probs for p in emissions(StreamingRecognizer(meanp, LABELS, num_frames=2, smoothing=0.3), frames)]
    expected = raw[0]
    np.testing.assert_allclose(smoothed[0], expected, atol=1e-6)
    for new, got in zip(raw[1:], smoothed[1:], strict=True):
        expected = 0.3 * new + 0.7 * expected
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(smoothed[-1], raw[-1])


def test_run_gathers_predictions_and_stats(meanp, frames):
    recognizer = StreamingRecognizer(meanp, LABELS, num_frames=4, stride=2)
    seen = []
    result = recognizer.run(iter_source(list(frames), fps=10), on_prediction=seen.append, progress=False)
    assert [p.frame for p in result.predictions] == [3, 5, 7, 9, 11] and seen == result.predictions
    assert [p.time_s for p in result.predictions] == pytest.approx([0.3, 0.5, 0.7, 0.9, 1.1])
    s = result.stats
    assert s["frames"] == 12 and s["predictions"] == 5 and s["stopped"] == "source ended"
    assert s["fps"] > 0 and 0 < s["latency_p50_ms"] <= s["latency_p90_ms"] and s["encode_ms"] > 0 and s["fuse_ms"] > 0
    row = result.predictions[0].to_dict()
    assert set(row) == {"frame", "time_s", "topk", "encode_ms", "fuse_ms"} and len(row["topk"]) == 3

    recognizer.reset()
    limited = recognizer.run(iter_source(list(frames)), max_frames=5, progress=False)
    assert limited.stats["frames"] == 5 and limited.stats["stopped"] == "max_frames=5 reached"


def test_parse_labels():
    assert parse_labels("juggling, riding a bike,\n# a comment\n  waving ,, cooking\n\n") == [
        "juggling", "riding a bike", "waving", "cooking"]
    with pytest.raises(ValueError, match="expected labels"):
        parse_labels(" ,\n# only a comment")
    with pytest.raises(ValueError, match="duplicate"):
        parse_labels("running, jumping, Running ")


# ----------------------------------------------------------------- sources
@pytest.mark.parametrize("timeout", [None, 2.0])
def test_video_source_yields_every_frame_in_order(clip_file, timeout):
    with open_video(clip_file, "pyav") as reader:
        expected = reader.read(range(reader.num_frames))
    got = list(video_source(clip_file, timeout=timeout))
    assert [f.index for f in got] == list(range(12))
    assert [f.time_s for f in got] == pytest.approx([k / 10 for k in range(12)])
    for frame, image in zip(got, expected, strict=True):
        np.testing.assert_array_equal(frame.image, image)


def test_video_source_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="nothing.mp4: no such file"):
        video_source(tmp_path / "nothing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(ValueError, match="notes.mp4"):
        video_source(text)


def test_webcam_source_converts_bgr_and_releases(frames):
    capture = FakeCapture(frames[:5])
    got = list(webcam_source(2, capture_factory=lambda index: capture, drop_stale=False))
    assert len(got) == 5 and capture.released
    for frame, image in zip(got, frames[:5], strict=True):
        np.testing.assert_array_equal(frame.image, image)
    assert [f.index for f in got] == list(range(5)) and got[0].time_s == 0.0


def test_a_slow_consumer_gets_the_latest_webcam_frame(frames):
    capture = FakeCapture(frames)
    source = webcam_source(0, capture_factory=lambda index: capture, buffer=1)
    deadline = time.monotonic() + 10
    while not capture.released and time.monotonic() < deadline:  # the camera runs ahead of a consumer that waits
        time.sleep(0.01)
    got = list(source)
    assert [f.index for f in got] == [11] and source.dropped == 11


def test_webcam_source_uses_opencv_by_default(monkeypatch, frames):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", lambda index: FakeCapture(frames[:3]))
    assert len(list(webcam_source(0, drop_stale=False))) == 3  # a fake camera outruns any consumer: keep them all


def test_a_webcam_that_cannot_be_opened_is_named():
    capture = FakeCapture([], opened=False)
    with pytest.raises(RuntimeError, match="webcam 7: cannot be opened"):
        webcam_source(7, capture_factory=lambda index: capture)
    assert capture.released


def test_a_stalled_webcam_stops_the_run_cleanly(meanp, frames):
    capture = FakeCapture(frames, stall_after=3)
    source = webcam_source(0, timeout=0.3, capture_factory=lambda index: capture, drop_stale=False)
    result = StreamingRecognizer(meanp, LABELS, num_frames=2).run(source, progress=False)
    assert result.stats["frames"] == 3 and len(result.predictions) == 2
    assert "webcam 0: no frame within 0.3 s" in result.stats["stopped"]
    capture.unblock.set()  # the blocked read returns; the reader thread then releases the camera
    deadline = time.monotonic() + 10
    while not capture.released and time.monotonic() < deadline:
        time.sleep(0.01)
    assert capture.released


def test_a_stalled_iterator_stops_the_run_cleanly(meanp, frames):
    unblock = threading.Event()

    def stalling():
        yield from frames[:3]
        unblock.wait(30)

    result = StreamingRecognizer(meanp, LABELS, num_frames=2).run(iter_source(stalling(), timeout=0.3),
                                                                  progress=False)
    unblock.set()
    assert result.stats["frames"] == 3 and "iterator: no frame within 0.3 s" in result.stats["stopped"]


@pytest.mark.parametrize("timeout", [None, 2.0])
def test_a_failing_iterator_stops_with_its_error(meanp, frames, timeout):
    def failing():
        yield frames[0]
        yield frames[1]
        raise OSError("device unplugged")

    result = StreamingRecognizer(meanp, LABELS, num_frames=2).run(iter_source(failing(), timeout=timeout),
                                                                  progress=False)
    assert result.stats["frames"] == 2 and len(result.predictions) == 1
    assert "iterator" in result.stats["stopped"] and "OSError: device unplugged" in result.stats["stopped"]


def test_bad_frames_are_refused_with_their_shape(meanp, frames):
    result = StreamingRecognizer(meanp, LABELS, num_frames=2).run(
        iter_source([frames[0], np.zeros((4, 4), np.uint8)]), progress=False)
    assert result.stats["frames"] == 1 and "frame 1 is uint8 (4, 4)" in result.stats["stopped"]
    with pytest.raises(SourceError, match=r"float64 \(4, 4, 3\)"):
        StreamingRecognizer(meanp, LABELS).process(np.zeros((4, 4, 3)))


def test_frames_keep_their_own_index_and_time(meanp, frames):
    given = [Frame(image, 100 + k, 7.5 + k) for k, image in enumerate(frames[:3])]
    result = StreamingRecognizer(meanp, LABELS, num_frames=2).run(iter_source(given), progress=False)
    assert [(p.frame, p.time_s) for p in result.predictions] == [(101, 8.5), (102, 9.5)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_streaming_on_cuda_equals_the_full_model(frames):
    model = build("actionclip-transf", fusion_layers=1)
    recognizer = StreamingRecognizer(model, LABELS, device="cuda")
    predictions = emissions(recognizer, frames)
    assert len(predictions) == 9 and predictions[0].encode_ms > 0
    for p in predictions:
        clip = recognizer.transform(frames[p.frame - 3 : p.frame + 1]).unsqueeze(0).cuda()
        with torch.no_grad():
            full = model.predict_proba(clip, LABELS)[0].cpu().numpy()
        np.testing.assert_allclose(p.probs, full, atol=1e-4)


def test_pick_threads_keeps_the_fastest_setting_and_restores_nothing_else(monkeypatch):
    """A fake encoder that is fastest at 2 threads: the start-up test must choose 2 and leave torch set to it."""
    import time as time_module
    from types import SimpleNamespace

    import torch

    from actiondistill.realtime import pick_threads

    clock = {"now": 0.0}
    cost_ms = {1: 9.0, 2: 4.0, 4: 6.0}

    def encode_frame(image):
        clock["now"] += cost_ms[torch.get_num_threads()] / 1e3

    monkeypatch.setattr(time_module, "perf_counter", lambda: clock["now"])
    fake = SimpleNamespace(encode_frame=encode_frame, model=SimpleNamespace(
        backbone=SimpleNamespace(visual=SimpleNamespace(image_size=32))))
    before = torch.get_num_threads()
    try:
        choice = pick_threads(fake, candidates=[1, 2, 4])
        assert choice["threads"] == 2 == torch.get_num_threads() and choice["chosen_by"] == "start-up test"
        assert choice["frame_ms"] == {1: 9.0, 2: 4.0, 4: 6.0}
    finally:
        torch.set_num_threads(before)
