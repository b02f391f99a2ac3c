"""A live stream that cannot keep up drops frames on purpose: the newest frame wins, the drops are counted, and the
latency from a frame's arrival to its prediction stays bounded instead of growing with a backlog."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from actiondistill.cli import main
from actiondistill.data.encode import write_video
from actiondistill.data.synthetic import render_clip, sample_spec
from actiondistill.export import FrameRuntime
from actiondistill.models import create_model
from actiondistill.realtime import Frame, FrameSource, StreamingRecognizer, video_source, webcam_source
from actiondistill.realtime import streaming as streaming_module

LABELS = ["juggling", "riding a bike", "waving"]
SLOW_S = 0.1  # the fake model's time per frame: three frames of a 30 FPS source

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("actionclip-meanp", backbone="embedded-tiny", num_frames=2)


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory):
    """24 frames at 30 FPS: 0.8 s of a camera."""
    path = tmp_path_factory.mktemp("clips") / "camera.mp4"
    write_video(path, render_clip(sample_spec(4), size=64, frames=24), fps=30)
    return path


def slow(model) -> FrameRuntime:
    """A fake slow model: the real image encoder, then a wait, as a model three times slower than the camera."""

    def encode(frames: torch.Tensor) -> torch.Tensor:
        time.sleep(SLOW_S)
        return model.backbone.encode_image(frames)

    return FrameRuntime("slow", encode, (64, 64))


def test_the_newest_frame_wins_and_the_rest_are_counted():
    image = np.zeros((8, 8, 3), np.uint8)
    released, resume = threading.Event(), threading.Event()

    def camera():
        for index in range(10):  # ten frames while the consumer is busy elsewhere
            yield Frame(image, index, index / 30)
        released.set()
        resume.wait(10)
        yield Frame(image, 10, 10 / 30)

    source = FrameSource("camera", camera(), timeout=5, drop_stale=True, buffer=1)
    assert released.wait(10)
    first = next(source)
    resume.set()
    assert [first.index, *(frame.index for frame in source)] == [9, 10]
    assert source.dropped == 9


def test_a_slow_model_on_a_live_replay_drops_frames_and_keeps_up(model, camera_file):
    recognizer = StreamingRecognizer(model, LABELS, runtime=slow(model))
    processed = []
    source = video_source(camera_file, live=True)
    started = time.perf_counter()
    result = recognizer.run((processed.append(frame.index) or frame for frame in source), progress=False)
    wall = time.perf_counter() - started
    stats = result.stats
    assert stats["runtime"] == "slow" and source.dropped > 0
    assert len(processed) + source.dropped == 24 and processed[-1] == 23  # the last frame is never lost
    assert processed == sorted(processed) and len(processed) < 24
    assert wall < 24 * SLOW_S  # a stream that kept every frame would take 2.4 s; this one ends with the camera
    assert SLOW_S * 1e3 <= stats["arrival_latency_p50_ms"] <= stats["arrival_latency_p99_ms"]
    assert stats["arrival_latency_p99_ms"] < 1000  # bounded by about two frames' work, not by a growing backlog


def test_the_summary_reports_drops_and_arrival_latency(camera_file, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(streaming_module, "frame_runtime", lambda model, runtime, **options: slow(model))
    record = tmp_path / "out.json"
    argv = [
        "zeroshot",
        "--video",
        str(camera_file),
        "--live",
        "--labels",
        ", ".join(LABELS),
        "--frames",
        "2",
        "--stride",
        "1",
        "--random-weights",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main([*argv, "--json", str(record)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-2]
    saved = json.loads(record.read_text())
    stats = saved["stats"]
    assert saved["live"] and stats["dropped"] > 0 and stats["frames"] + stats["dropped"] == 24
    assert f"{stats['dropped']} frames dropped (the model was slower than the source: the newest frame wins)" in summary
    assert "arrival to prediction p50" in summary and "/ p99" in summary
    assert stats["arrival_latency_p99_ms"] >= stats["arrival_latency_p50_ms"] >= SLOW_S * 1e3
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["dropped"] > 0


def test_live_needs_a_video_file(capsys):
    assert main(["zeroshot", "--webcam", "0", "--live", "--labels", "a, b"]) == 2
    assert (
        capsys.readouterr().err == "error: --live: replays a --video file at its frame rate; a webcam is live already\n"
    )


def test_live_sources_stamp_arrival_and_files_play_at_their_rate(camera_file, model):
    assert all(frame.arrival is None for frame in video_source(camera_file))  # decoded ahead: no live delay
    started = time.perf_counter()
    frames = list(video_source(camera_file, live=True))
    assert time.perf_counter() - started >= 23 / 30 - 0.02  # released at the file's 30 FPS, not decoded at once
    arrivals = np.array([frame.arrival for frame in frames])
    assert len(frames) == 24 and np.all(np.diff(arrivals) > 0)
    assert np.median(np.diff(arrivals)) == pytest.approx(1 / 30, abs=0.01)

    class Camera:
        def __init__(self):
            self.left = 3

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return True

        def read(self):
            self.left -= 1
            return (self.left >= 0), (np.zeros((8, 8, 3), np.uint8) if self.left >= 0 else None)

        def release(self) -> None:
            pass

    camera = list(webcam_source(0, capture_factory=lambda index: Camera(), drop_stale=False))
    assert len(camera) == 3 and all(frame.arrival is not None for frame in camera)


def test_a_frame_without_arrival_counts_from_its_processing(model):
    recognizer = StreamingRecognizer(model, LABELS)
    image = np.zeros((64, 64, 3), np.uint8)
    for _ in range(3):
        recognizer.process(image)
    stats = recognizer.stats()
    assert 0 < stats["arrival_latency_p50_ms"] <= stats["arrival_latency_p99_ms"]
    assert stats["arrival_latency_p50_ms"] <= max(stats["latency_p50_ms"], stats["latency_p99_ms"]) + 1
