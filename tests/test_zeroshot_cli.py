"""`python -m actiondistill zeroshot`: a synthetic clip file, a fake webcam, label input, checkpoints, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actiondistill.cli import main
from actiondistill.data.encode import write_video
from actiondistill.data.synthetic import render_clip, sample_spec
from actiondistill.engine.checkpoint import save_checkpoint
from actiondistill.models import create_model, save_weights
from actiondistill.realtime import StreamingRecognizer, video_source

LABELS = ["juggling", "riding a bike", "waving"]
LABEL_TEXT = "juggling, riding a bike, waving"


class FakeCapture:
    """OpenCV VideoCapture's interface: BGR frames, then (False, None)."""

    def __init__(self, frames, opened: bool = True):
        self.frames, self.opened, self.position = frames, opened, 0

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self):
        if self.position >= len(self.frames):
            return False, None
        self.position += 1
        return True, np.ascontiguousarray(self.frames[self.position - 1][..., ::-1])

    def release(self) -> None:
        self.opened = False


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    write_video(path, render_clip(sample_spec(1), size=64, frames=12), fps=10)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model with non-default weights saved as a plain state dict and as a Trainer checkpoint with its config."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(3)
    model = create_model("actionclip-transf", backbone="embedded-tiny", num_frames=4, fusion_layers=1)
    plain = save_weights(model, folder / "weights.pt")
    config = {"model": {"name": "actionclip-transf", "backbone": "embedded-tiny", "kwargs": {"fusion_layers": 1}},
              "data": {"num_frames": 4}}
    trainer = save_checkpoint(folder / "checkpoint.pt", {"model": model.state_dict(), "config": config, "epoch": 1})
    return model, plain, trainer


def run_json(capsys, *argv: str) -> dict:
    assert main(["zeroshot", *argv, "--no-progress", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_video_file_json(clip_file, capsys):
    out = run_json(capsys, "--video", str(clip_file), "--labels", LABEL_TEXT, "--frames", "4", "--stride", "2",
                   "--topk", "2")
    assert out["labels"] == LABELS and out["num_frames"] == 4 and out["model"] == "actionclip-meanp"
    assert [p["frame"] for p in out["predictions"]] == [3, 5, 7, 9, 11]
    assert [p["time_s"] for p in out["predictions"]] == pytest.approx([0.3, 0.5, 0.7, 0.9, 1.1])
    for p in out["predictions"]:
        assert len(p["topk"]) == 2 and {label for label, _ in p["topk"]} <= set(LABELS)
        assert p["topk"][0][1] >= p["topk"][1][1]
    stats = out["stats"]
    assert stats["frames"] == 12 and stats["predictions"] == 5 and stats["stopped"] == "source ended"
    assert stats["fps"] > 0 and stats["latency_p50_ms"] <= stats["latency_p90_ms"]


def test_text_output_prints_one_line_per_prediction(clip_file, tmp_path, capsys):
    record = tmp_path / "out.json"
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("# my classes\njuggling\nriding a bike\nwaving\n")
    code = main(["zeroshot", "--video", str(clip_file), "--labels-file", str(labels_file), "--frames", "4",
                 "--stride", "4", "--smoothing", "0.5", "--no-progress", "--json", str(record)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    saved = json.loads(record.read_text())
    assert saved["labels"] == LABELS and saved["smoothing"] == 0.5
    assert len(lines) == len(saved["predictions"]) + 1 == 4
    first = saved["predictions"][0]
    assert lines[0].startswith("[") and f"frame {first['frame']:6d}" in lines[0] and first["topk"][0][0] in lines[0]
    assert "FPS" in lines[-1] and "latency p50" in lines[-1] and "stopped: source ended" in lines[-1]


def test_fake_webcam(monkeypatch, capsys):
    import cv2

    frames = np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    monkeypatch.setattr(cv2, "VideoCapture", lambda index: FakeCapture(frames))
    out = run_json(capsys, "--webcam", "0", "--labels", LABEL_TEXT, "--frames", "4", "--stride", "1",
                   "--max-frames", "6")
    assert out["source"] == "webcam 0" and out["stats"]["frames"] == 6
    assert out["stats"]["stopped"] == "max_frames=6 reached" and len(out["predictions"]) == 3


def test_a_camera_that_delivers_nothing_ends_cleanly(monkeypatch, capsys):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", lambda index: FakeCapture([]))
    assert main(["zeroshot", "--webcam", "1", "--labels", LABEL_TEXT, "--no-progress"]) == 0
    assert "webcam 1: no frames processed (source ended)" in capsys.readouterr().out


def test_a_missing_webcam_is_a_clear_error(monkeypatch, capsys):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", lambda index: FakeCapture([], opened=False))
    assert main(["zeroshot", "--webcam", "9", "--labels", LABEL_TEXT]) == 2
    assert "webcam 9: cannot be opened" in capsys.readouterr().err


@pytest.mark.parametrize(("labels", "message"), [(" , ", "expected labels"), ("running, Running", "duplicate")])
def test_bad_labels_are_refused(clip_file, capsys, labels, message):
    assert main(["zeroshot", "--video", str(clip_file), "--labels", labels]) == 2
    assert message in capsys.readouterr().err


def test_bad_model_options_are_named(clip_file, capsys):
    assert main(["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT, "--model-option", "layers"]) == 2
    assert "--model-option 'layers': expected KEY=VALUE" in capsys.readouterr().err


def test_missing_files_are_named(clip_file, tmp_path, capsys):
    assert main(["zeroshot", "--video", str(tmp_path / "gone.mp4"), "--labels", LABEL_TEXT]) == 2
    assert "gone.mp4: no such file" in capsys.readouterr().err
    assert main(["zeroshot", "--video", str(clip_file), "--labels-file", str(tmp_path / "labels.txt")]) == 2
    assert "labels.txt: no such file" in capsys.readouterr().err


def test_checkpoints_plain_and_trainer(clip_file, trained, capsys):
    model, plain, trainer = trained
    expected = StreamingRecognizer(model, LABELS, num_frames=4, stride=2, topk=3).run(video_source(clip_file),
                                                                                      progress=False)
    expected_topk = [p.to_dict()["topk"] for p in expected.predictions]
    from_plain = run_json(capsys, "--video", str(clip_file), "--labels", LABEL_TEXT, "--checkpoint", str(plain),
                          "--model", "actionclip-transf", "--model-option", "fusion_layers=1", "--frames", "4",
                          "--stride", "2")
    # the Trainer checkpoint's config supplies the model, its fusion_layers and the number of frames
    from_trainer = run_json(capsys, "--video", str(clip_file), "--labels", LABEL_TEXT, "--checkpoint", str(trainer),
                            "--stride", "2")
    assert from_trainer["model"] == "actionclip-transf" and from_trainer["num_frames"] == 4
    for out in (from_plain, from_trainer):
        got = [p["topk"] for p in out["predictions"]]
        assert [[label for label, _ in row] for row in got] == [[label for label, _ in row] for row in expected_topk]
        np.testing.assert_allclose([[p for _, p in row] for row in got], [[p for _, p in row] for row in expected_topk],
                                   atol=1e-5)


def test_a_checkpoint_for_another_model_names_the_keys(clip_file, trained, capsys):
    _, plain, _ = trained
    assert main(["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT, "--checkpoint", str(plain)]) == 2
    assert "does not fit" in capsys.readouterr().err  # the default meanP model has no fusion weights


def test_xclip_is_refused(clip_file, capsys):
    assert main(["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT, "--model", "xclip"]) == 2
    assert "cross-frame attention" in capsys.readouterr().err
