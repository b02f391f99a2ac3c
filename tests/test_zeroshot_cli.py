"""`python -m actiondistill zeroshot`: a synthetic clip file, a fake webcam, label input, checkpoints, errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from actiondistill.cli import main
from actiondistill.cli._model_args import RANDOM_WARNING
from actiondistill.data.encode import write_video
from actiondistill.data.synthetic import render_clip, sample_spec
from actiondistill.engine.checkpoint import save_checkpoint
from actiondistill.models import create_model, save_weights
from actiondistill.realtime import StreamingRecognizer, video_source

LABELS = ["juggling", "riding a bike", "waving"]
LABEL_TEXT = "juggling, riding a bike, waving"


class FakeCapture:
    """OpenCV VideoCapture's interface: BGR frames `interval` seconds apart, as a camera delivers them (a live source
    keeps only the newest frame, so an instant fake camera would outrun any model), then (False, None)."""

    def __init__(self, frames, opened: bool = True, interval: float = 0.05):
        self.frames, self.opened, self.position, self.interval = frames, opened, 0, interval

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self):
        if self.position >= len(self.frames):
            return False, None
        time.sleep(self.interval)
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
    """The JSON of a zeroshot run; random weights unless the arguments name other weights."""
    weights = [] if {"--checkpoint", "--pretrained", "--book-model"} & set(argv) else ["--random-weights"]
    assert main(["zeroshot", *argv, *weights, "--no-progress", "--json"]) == 0
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
                 "--stride", "4", "--smoothing", "0.5", "--no-progress", "--random-weights", "--threads", "1",
                 "--json", str(record)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    saved = json.loads(record.read_text())
    assert saved["labels"] == LABELS and saved["smoothing"] == 0.5
    assert len(lines) == len(saved["predictions"]) + 2 == 5  # the predictions, the summary, its warning
    first = saved["predictions"][0]
    assert lines[0].startswith("[") and f"frame {first['frame']:6d}" in lines[0] and first["topk"][0][0] in lines[0]
    summary = lines[-2]
    assert "FPS" in summary and "latency p50" in summary and "stopped: source ended" in summary
    assert "threads 1 (--threads)" in summary and "load average" in summary
    assert lines[-1] == f"warning: {RANDOM_WARNING}"


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
    assert main(["zeroshot", "--webcam", "1", "--labels", LABEL_TEXT, "--no-progress", "--random-weights"]) == 0
    assert "webcam 1: no frames processed (source ended)" in capsys.readouterr().out


def test_a_missing_webcam_is_a_clear_error(monkeypatch, capsys):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", lambda index: FakeCapture([], opened=False))
    assert main(["zeroshot", "--webcam", "9", "--labels", LABEL_TEXT, "--random-weights"]) == 2
    assert "webcam 9: cannot be opened" in capsys.readouterr().err


@pytest.mark.parametrize(("labels", "message"), [(" , ", "expected labels"), ("running, Running", "duplicate")])
def test_bad_labels_are_refused(clip_file, capsys, labels, message):
    assert main(["zeroshot", "--video", str(clip_file), "--labels", labels]) == 2
    assert message in capsys.readouterr().err


def test_bad_model_options_are_named(clip_file, capsys):
    assert main(["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT, "--model-option", "layers",
                 "--random-weights"]) == 2
    assert "--model-option 'layers': expected KEY=VALUE" in capsys.readouterr().err


def test_missing_files_are_named(clip_file, tmp_path, capsys):
    assert main(["zeroshot", "--video", str(tmp_path / "gone.mp4"), "--labels", LABEL_TEXT, "--random-weights"]) == 2
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
    assert main(["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT, "--model", "xclip",
                 "--random-weights"]) == 2
    assert "cross-frame attention" in capsys.readouterr().err


@pytest.fixture
def book_data(tmp_path, monkeypatch, trained):
    """A data folder where chapters 2 and 3 have recorded their models: run folders with config.yaml and weights."""
    import yaml

    model, _, _ = trained
    runs = {}
    for role, stem in (("student", "backbone_swap"), ("teacher", "teacher_choice")):
        run = tmp_path / "runs" / f"{role}-seed0"
        run.mkdir(parents=True)
        torch.manual_seed(7 if role == "teacher" else 3)
        built = create_model("actionclip-transf", backbone="embedded-tiny", num_frames=4, fusion_layers=1)
        save_weights(built if role == "teacher" else model, run / "model.pt")
        (run / "config.yaml").write_text(yaml.safe_dump({
            "model": {"name": "actionclip-transf", "backbone": "embedded-tiny", "kwargs": {"fusion_layers": 1}},
            "data": {"dataset": "synthactions", "num_frames": 4}}))
        weights = {"0": str(run / "model.pt")}
        record = {"best": {"weights": weights}} if role == "student" else {"weights": weights}
        (tmp_path / "results").mkdir(exist_ok=True)
        (tmp_path / "results" / f"{stem}-embedded.json").write_text(json.dumps(record))
        runs[role] = run
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    return runs


def test_no_options_use_the_book_student_and_say_so(clip_file, book_data, trained, capsys):
    from actiondistill.io import file_sha256

    argv = ["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT, "--stride", "2", "--no-progress",
            "--threads", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "weights: book student (chapter 3, profile embedded, seed 0)" in captured.err
    assert "trained on the synthetic world: its labels, not real actions" in captured.err
    first = run_json(capsys, *argv[1:-2], "--book-model", "student")
    second = run_json(capsys, *argv[1:-2], "--book-model", "student")
    assert first["model"] == "actionclip-transf" and first["num_frames"] == 4  # from the run's config.yaml
    assert first["weights"]["source"] == "book student"
    assert first["weights"]["sha256"] == file_sha256(book_data["student"] / "model.pt")
    assert [p["topk"] for p in first["predictions"]] == [p["topk"] for p in second["predictions"]]
    expected = StreamingRecognizer(trained[0], LABELS, num_frames=4, stride=2, topk=3).run(video_source(clip_file),
                                                                                           progress=False)
    assert [row[0][0] for row in (p["topk"] for p in first["predictions"])] == [p.label for p in expected.predictions]
    teacher = run_json(capsys, *argv[1:-2], "--book-model", "teacher")
    assert teacher["weights"]["source"] == "book teacher"
    assert teacher["weights"]["sha256"] == file_sha256(book_data["teacher"] / "model.pt")


def test_a_run_folder_or_a_record_brings_its_config(clip_file, book_data, tmp_path, capsys):
    common = ("--video", str(clip_file), "--labels", LABEL_TEXT, "--threads", "1")  # one thread: the same sums
    from_folder = run_json(capsys, *common, "--checkpoint", str(book_data["teacher"]))
    from_record = run_json(capsys, *common, "--checkpoint", str(tmp_path / "results" / "teacher_choice-embedded.json"))
    for out in (from_folder, from_record):
        assert out["model"] == "actionclip-transf" and out["backbone"] == "embedded-tiny" and out["num_frames"] == 4
        assert out["weights"]["file"] == str(book_data["teacher"] / "model.pt")
    assert [p["topk"] for p in from_folder["predictions"]] == [p["topk"] for p in from_record["predictions"]]


def test_without_a_built_book_the_error_says_what_to_pass(clip_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    assert main(["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--book-model student --profile embedded: no trained model yet" in err
    assert "run chapter 3" in err and "--random-weights" in err


def test_random_weights_only_with_their_flag_and_a_warning(clip_file, capsys):
    out = run_json(capsys, "--video", str(clip_file), "--labels", LABEL_TEXT)
    assert out["weights"]["source"] == "random" and out["weights"]["sha256"] is None
    assert RANDOM_WARNING in out["warnings"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--webcam", "-1"], "--webcam -1: expected a camera index >= 0"),
    (["--video", ""], "--video '': expected the path of a video file"),
    (["--stride", "0"], "--stride 0: expected an integer >= 1"),
    (["--frames", "0"], "--frames 0: expected an integer >= 1"),
    (["--smoothing", "1.5"], "--smoothing 1.5: expected an EMA factor in (0, 1]"),
    (["--model-option", "no_such_option=1"], "--model-option no_such_option=1: not accepted by actionclip-meanp"),
    (["--model", "actionclip-transf", "--model-option", "fusion_layers=two"],
     "--model-option fusion_layers=two: not accepted by actionclip-transf"),
])
def test_bad_values_name_the_flag_in_one_line(clip_file, capsys, argv, message):
    source = [] if "--webcam" in argv or "--video" in argv else ["--video", str(clip_file)]
    assert main(["zeroshot", *source, *argv, "--labels", LABEL_TEXT, "--random-weights"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_labels_files_that_are_folders_or_binary_are_named(clip_file, tmp_path, capsys):
    assert main(["zeroshot", "--video", str(clip_file), "--labels-file", str(tmp_path)]) == 2
    assert f"--labels-file {tmp_path}: is a folder" in capsys.readouterr().err
    binary = tmp_path / "labels.bin"
    binary.write_bytes(b"\xff\xfe\x00jump")
    assert main(["zeroshot", "--video", str(clip_file), "--labels-file", str(binary)]) == 2
    assert f"--labels-file {binary}: not UTF-8 text" in capsys.readouterr().err


def test_a_quoted_label_keeps_its_comma_and_one_label_is_warned(clip_file, capsys):
    out = run_json(capsys, "--video", str(clip_file), "--labels", '"pouring, stirring", waving')
    assert out["labels"] == ["pouring, stirring", "waving"]
    single = run_json(capsys, "--video", str(clip_file), "--labels", "waving")
    assert any("one label ('waving'): its probability is always 1.00" in w for w in single["warnings"])


def test_a_video_shorter_than_the_window_says_why(clip_file, capsys):
    out = run_json(capsys, "--video", str(clip_file), "--labels", LABEL_TEXT, "--frames", "16")
    assert out["predictions"] == []
    assert any("the source gave 12 frames, fewer than the 16-frame window" in w for w in out["warnings"])


def test_a_file_corrupt_mid_stream_exits_2_naming_file_and_frame(tmp_path, capsys):
    frames = np.random.default_rng(0).integers(0, 256, (120, 64, 64, 3), dtype=np.uint8)
    good = write_video(tmp_path / "good.mp4", frames, fps=25) or tmp_path / "good.mp4"
    data = bytearray(good.read_bytes())
    data[int(len(data) * 0.35):int(len(data) * 0.6)] = bytes(int(len(data) * 0.6) - int(len(data) * 0.35))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    record = tmp_path / "out.json"
    code = main(["zeroshot", "--video", str(corrupt), "--labels", LABEL_TEXT, "--random-weights", "--no-progress",
                 "--threads", "1", "--json", str(record)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {corrupt}: decoding" in err and "frame" in err
    saved = json.loads(record.read_text())
    assert 0 < saved["stats"]["frames"] < 120 and saved["error"] == saved["stats"]["error"]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """A 60 s clip at 25 FPS (a square crossing the frame): long enough to still be streaming when a test stops it."""
    frames = np.zeros((1500, 32, 32, 3), dtype=np.uint8)
    for t in range(len(frames)):
        x = t % 24
        frames[t, 8:16, x:x + 8] = 255
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_video(path, frames, fps=25)
    return path


def zeroshot_process(*argv: str, **kwargs):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A shell's background job (make test &) ignores SIGINT, and a child inherits that: Python then never raises
    # KeyboardInterrupt. Restore the default so the child stops on Ctrl-C as it does in a terminal.
    return subprocess.Popen([sys.executable, "-m", "actiondistill", "zeroshot", *argv, "--labels", LABEL_TEXT,
                             "--random-weights", "--threads", "1", "--no-progress"], env=env, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def test_ctrl_c_ends_a_stream_with_its_summary_and_json(long_clip, tmp_path):
    import signal
    import subprocess

    record = tmp_path / "out.json"
    process = zeroshot_process("--video", str(long_clip), "--stride", "1", "--json", str(record),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()  # the first prediction: the stream is running
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert first.startswith("[") and process.returncode == 130
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err
    assert "predictions over" in out  # the summary
    saved = json.loads(record.read_text())
    assert saved["stats"]["interrupted"] and 0 < saved["stats"]["frames"] < 1500 and saved["predictions"]


def test_a_closed_pipe_ends_quietly(long_clip):
    import subprocess

    process = zeroshot_process("--video", str(long_clip), "--stride", "1", stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()  # what `| head -1` does after its line
    _, err = process.communicate(timeout=60)
    assert process.returncode == 141 and "Traceback" not in err and "BrokenPipe" not in err
