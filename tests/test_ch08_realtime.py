"""Chapter 8's rules on small synthetic tables: parameters, the scaling and runtime sentences, the verdicts, the
streaming rounds (models taking turns), and the demonstration's window accounting."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from actiondistill.chapters import ch08_realtime as ch

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_params_defaults_are_the_smoke_profile_and_every_profile_key_is_a_field():
    params = ch.Params()
    assert (params.sweep_frames, params.sweep_batches, params.stream_window, params.runtimes) == \
        ([8], [1, 2], 8, ["eager", "onnx"])
    assert params.pretrain["base"] == {"epochs": 1, "batch_size": 48} and params.smoothing is None
    embedded = yaml.safe_load((BOOK / "params" / "embedded.yaml").read_text())
    assert set(embedded["chapters"]["08_realtime"]) <= set(ch.Params.fields())
    given = ch.Params.from_namespace({"live_source": "clip.mp4", "sweep_frames": [8, 16], "smoothing": 0.5})
    assert (given.live_source, given.sweep_frames, given.smoothing) == ("clip.mp4", [8, 16], 0.5)


@pytest.mark.parametrize(("changes", "message"), [
    ({"dataset": "hmdb51"}, "SynthActions"),
    ({"stream_window": 16}, "stream_window=16"),
    ({"sweep_batches": [2, 4]}, "must hold 1"),
])
def test_check_params_refuses_what_the_chapter_cannot_run(changes, message):
    with pytest.raises(ValueError, match=message):
        ch.check_params(ch.Params(**changes))
    ch.check_params(ch.Params())


def sweep_rows(latency, throughput):
    """A sweep table: (size, frames, batch) -> latency_ms / throughput_clips_s."""
    return pd.DataFrame([{"size": size, "frames": t, "batch": b, "latency_ms": ms,
                          "throughput_clips_s": throughput[(size, t, b)]}
                         for (size, t, b), ms in latency.items()])


def test_scaling_sentences_compare_frames_at_batch_one_and_batches_at_the_fewest_frames():
    latency = {("student", 8, 1): 10.0, ("student", 16, 1): 25.0, ("teacher", 8, 1): 20.0, ("teacher", 16, 1): 40.0,
               ("student", 8, 2): 18.0, ("student", 16, 2): 50.0, ("teacher", 8, 2): 40.0, ("teacher", 16, 2): 80.0}
    throughput = {key: 1000 * key[2] / ms for key, ms in latency.items()}
    text = ch.scaling_sentences(sweep_rows(latency, throughput), [8, 16], [1, 2])
    assert text.startswith("From 8 to 16 frames (2 times as many), the student's latency grows 2.5 times and the "
                           "teacher's latency grows 2.0 times.")
    # throughput at 8 frames: student 100 -> 111.1 (1.11x), teacher 50 -> 50 (1.00x)
    assert "by 1.11 times for the student and 1.00 times for the teacher" in text
    assert isinstance(text, ch.Md)
    one = {("student", 8, 1): 10.0, ("teacher", 8, 1): 20.0}
    assert ch.scaling_sentences(sweep_rows(one, one), [8], [1]) == ""


def test_pick_recording_clips_takes_test_clips_of_distinct_classes_in_order():
    clips = [{"split": "train", "label": 0}, {"split": "test", "label": 1, "n": 1}, {"split": "test", "label": 1},
             {"split": "test", "label": 2, "n": 2}, {"split": "val", "label": 3}, {"split": "test", "label": 3, "n": 3},
             {"split": "test", "label": 4}]
    assert [c["n"] for c in ch.pick_recording_clips(clips, 3)] == [1, 2, 3]
    assert len(ch.pick_recording_clips(clips, 10)) == 4


def test_median_run_and_round_ratio():
    runs = [{"fps": 30.0}, {"fps": 10.0}, {"fps": 20.0}]
    assert ch.median_run(runs)["fps"] == 20.0
    assert ch.median_run(runs[:2])["fps"] == 30.0          # the faster middle one of an even count
    # a burst of load in round 2 slowed only the teacher: the median of per-round ratios discards it
    student = [{"fps": 20.0}, {"fps": 20.0}, {"fps": 22.0}]
    teacher = [{"fps": 10.0}, {"fps": 2.0}, {"fps": 11.0}]
    assert ch.round_ratio(student, teacher) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="as many rounds"):
        ch.round_ratio(student, teacher[:2])


class FakeRecognizer:
    def __init__(self, name, calls):
        self.name, self.calls, self.fps = name, calls, {"teacher": 10.0, "student": 20.0}[name]

    def reset(self):
        self.calls.append((self.name, "reset"))

    def run(self, source, max_frames=None, progress=True):
        source.close()
        self.calls.append((self.name, "warm-up" if max_frames else "run"))
        return type("Streamed", (), {"stats": {"fps": self.fps}})()


def test_stream_rounds_warm_every_model_then_take_turns_round_by_round(tmp_path):
    import numpy as np

    from actiondistill.data.encode import write_video

    video = write_video(tmp_path / "clip.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=25)
    calls = []
    recognizers = {name: FakeRecognizer(name, calls) for name in ("teacher", "student")}
    runs = ch.stream_rounds(recognizers, Path(video), warmup_frames=2, rounds=2)
    assert [c for c in calls if c[1] != "reset"] == [("teacher", "warm-up"), ("student", "warm-up"),
                                                     ("teacher", "run"), ("student", "run"),
                                                     ("teacher", "run"), ("student", "run")]
    assert [len(r) for r in runs.values()] == [2, 2]


def test_streaming_row_saving_is_the_window_cost_over_one_frame():
    stats = {"fps": 50.0, "latency_p50_ms": 5.0, "latency_p90_ms": 7.0, "source_ms": 1.0, "encode_ms": 4.0,
             "fuse_ms": 1.0}
    row = ch.streaming_row("student", "embedded-tiny", stats, naive_ms=20.0)
    assert row["streaming saving"] == pytest.approx(4.0)
    assert row["FPS (end to end)"] == 50.0 and row["naive: re-encode window (ms)"] == 20.0


def test_realtime_verdict():
    assert ch.realtime_verdict(30, 40) == "both keep up with a 25 frames/s camera"
    assert ch.realtime_verdict(20, 40) == "only the student keeps up with a 25 frames/s camera"
    assert ch.realtime_verdict(20, 24).startswith("neither keeps up")
    assert ch.realtime_verdict(25, 25).startswith("both")        # exactly the camera's rate keeps up


def test_runtime_ratios_and_compile_note():
    runs = pd.DataFrame({"runtime": ["eager", "onnx", "eager", "onnx"], "batch": [1, 1, 4, 4],
                         "speedup_vs_first": [1.0, 2.049, 1.0, 1.76]})
    assert ch.runtime_ratios(runs, [1, 4]) == "onnx: 2.05x at batch 1, 1.76x at batch 4"
    assert ch.runtime_ratios(runs[runs["runtime"] == "eager"], [1, 4]) == "no runtime besides eager was timed"
    assert "not part of this run" in ch.compile_note(None)
    assert "fell back to eager: no compiler" in ch.compile_note({"fallback_reason": "no compiler"})
    assert ch.compile_note({"fallback_reason": None, "compile_s": {"video": 20.4, "text": 10.0}}).startswith(
        "compiling took 30 s")


def test_worst_difference_and_export_command():
    agreement = {"onnx": {"video": {"max_abs_diff": 3e-8}}, "compile": {"video": {"max_abs_diff": 1e-6}}}
    assert ch.worst_difference(agreement) == pytest.approx(1e-6)
    assert math.isnan(ch.worst_difference({}))
    command = ch.export_command("actionclip-transf", "embedded-tiny", 4, {"fusion_layers": 2}, "data/m.pt", "out")
    assert "--frames 4 --model-option fusion_layers=2 \\\n    --checkpoint data/m.pt --out out" in command
    assert "--model-option" not in ch.export_command("xclip", "b", 4, {}, "m.pt", "out")


def test_window_hits_count_only_windows_within_one_clip():
    starts = [0, 10, 20]                   # two clips of 10 frames
    truths = ["left", "right"]
    frames = [3, 5, 11, 14, 19]
    labels = ["left", "right", "right", "right", "left"]
    # span 3: frame 3 (0..3) and 5 inside clip 0; 11 (8..11) straddles; 14 and 19 inside clip 1
    assert ch.window_hits(frames, labels, starts, truths, window_span=3) == (4, 2)
    assert ch.window_hits(frames, labels, starts, truths, window_span=0) == (5, 3)


def test_shown_classes_are_the_top_ones_and_the_truths():
    over_time = pd.DataFrame({"time (s)": [0.1, 0.1, 0.2, 0.2], "class": ["a", "b", "a", "b"],
                              "probability": [0.6, 0.4, 0.3, 0.7]})
    assert ch.shown_classes(over_time, ["c"]) == {"a", "b", "c"}
    assert ch.shown_classes(over_time.iloc[:2], []) == {"a"}
