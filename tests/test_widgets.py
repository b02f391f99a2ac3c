"""The live zero-shot widget, driven headlessly with step() on a video file, and its background loop."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch

from actiondistill.data.encode import write_video
from actiondistill.data.synthetic import render_clip, sample_spec
from actiondistill.models import create_model
from actiondistill.realtime import iter_source
from actiondistill.widgets import LiveZeroShot

LABELS = ["juggling", "riding a bike", "waving"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    teacher = create_model("actionclip-transf", backbone="embedded-tiny", num_frames=4, fusion_layers=1)
    student = create_model("actionclip-meanp", backbone="embedded-tiny", num_frames=4)
    return {"teacher": teacher, "student": student}


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    write_video(path, render_clip(sample_spec(2), size=64, frames=16), fps=10)
    return path


def wait_until_stopped(live: LiveZeroShot, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while live.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not live.running


def test_steps_update_the_frame_the_bars_and_the_readout(models, clip_file):
    live = LiveZeroShot(models, LABELS, clip_file, num_frames=4, topk=2, display_size=128)
    before = (live.image.value, live.bars.value, live.stats_label.value)
    predictions = [live.step() for _ in range(5)]
    assert predictions[:3] == [None] * 3 and all(p is not None for p in predictions[3:])
    assert bytes(live.image.value) != bytes(before[0]) and bytes(live.image.value).startswith(PNG_MAGIC)
    shown = cv2.imdecode(np.frombuffer(live.image.value, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape == (128, 128, 3)
    assert live.bars.value != before[1] and predictions[-1].label in live.bars.value
    readout = live.stats_label.value
    assert readout != before[2] and "FPS" in readout and "teacher" in readout


def test_the_top_prediction_is_drawn_on_the_frame(models, clip_file):
    live = LiveZeroShot(models, LABELS, clip_file, num_frames=2)
    image = render_clip(sample_spec(2), size=64, frames=2)[0]
    plain = live._render(image)
    while live.step() is None:
        pass
    assert live._render(image) != plain


def test_editing_the_labels_changes_the_predicted_set(models, clip_file):
    live = LiveZeroShot(models, LABELS, clip_file, num_frames=4, topk=3)
    for _ in range(4):
        live.step()
    live.labels_box.value = "swimming,\ncooking"
    prediction = live.step()  # the edit applies at the next step; the buffer stays full
    assert prediction.labels == ["swimming", "cooking"]
    assert {label for label, _ in prediction.topk} == {"swimming", "cooking"}
    assert "swimming" in live.bars.value and "juggling" not in live.bars.value

    live.labels_box.value = "swimming, Swimming"
    assert live.step().labels == ["swimming", "cooking"]  # an invalid list keeps the old one and says why
    assert "labels not changed" in live.status.value and "duplicate" in live.status.value


def test_switching_model_restarts_the_window(models, clip_file):
    live = LiveZeroShot(models, LABELS, clip_file, num_frames=4)
    for _ in range(4):
        live.step()
    live.model_select.value = "student"
    assert [live.step() is None for _ in range(4)] == [True, True, True, False]
    assert "student" in live.stats_label.value


def test_the_background_loop_runs_to_the_end_and_restarts(models, clip_file):
    live = LiveZeroShot(models, LABELS, str(clip_file), num_frames=4)
    live.start()
    wait_until_stopped(live)
    assert live.status.value == "source ended" and bytes(live.image.value).startswith(PNG_MAGIC)
    assert not live.start_button.disabled and live.stop_button.disabled
    assert live._recognizer("teacher").frames == 16
    live.start()  # a file is opened again, as a new stream
    assert live.running or live.status.value == "source ended"
    wait_until_stopped(live)
    assert live.status.value == "source ended" and live._recognizer("teacher").stats()["frames"] == 16


def test_stop_ends_an_endless_source(models):
    frame = np.zeros((32, 32, 3), np.uint8)

    def endless():
        while True:
            yield frame

    live = LiveZeroShot(models["student"], LABELS, iter_source(endless()), num_frames=2)
    live.start()
    deadline = time.monotonic() + 30
    while live._recognizer("model").frames < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    live.stop()
    assert not live.running and live.status.value == "stopped"
    live.close()


def test_models_that_cannot_stream_are_refused_up_front(clip_file):
    torch.manual_seed(0)
    xclip = create_model("xclip", backbone="embedded-tiny", num_frames=4)
    with pytest.raises(ValueError, match="cross-frame attention"):
        LiveZeroShot({"xclip": xclip}, LABELS, clip_file)
    with pytest.raises(ValueError, match="expected a model"):
        LiveZeroShot({}, LABELS, clip_file)


def test_each_model_runs_on_the_chosen_runtime(models, clip_file, tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))  # the ONNX cache
    live = LiveZeroShot(models, LABELS, clip_file, num_frames=4, runtime="onnx")
    assert live._recognizer("teacher").runtime == "onnx" and live._recognizer("teacher").frame_encoder.agreement["ok"]
    while live.step() is None:
        pass
    assert "teacher (onnx)" in live.stats_label.value
    live.model_select.value = "student"
    live.step()
    assert live._recognizer("student").runtime == "onnx"
    with pytest.raises(ValueError, match="runtime 'tensorrt': expected one of eager, compile, onnx, onnx-int8, bf16"):
        LiveZeroShot(models, LABELS, clip_file, runtime="tensorrt")
