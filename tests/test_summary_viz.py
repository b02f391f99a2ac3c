"""The chapters' shared table and figure helpers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from actiondistill.data.datasets import VideoDataset, VideoSample  # noqa: E402
from actiondistill.data.summary import clips_table  # noqa: E402
from actiondistill.viz import frame_strips  # noqa: E402


def dataset(folder, split: str, labels: list[int]) -> VideoDataset:
    for i in range(len(labels)):
        (folder / f"{split}{i}.mp4").touch()
    samples = [VideoSample(path=folder / f"{split}{i}.mp4", label=label, label_text=f"c{label}",
                           attributes={"shape": "star"}, split=split) for i, label in enumerate(labels)]
    return VideoDataset(samples, ["c0", "c1"], probe=False, progress=False)


def test_clips_table_has_a_row_per_clip_with_attributes(tmp_path):
    table = clips_table({"train": dataset(tmp_path, "train", [0, 1, 1]), "test": dataset(tmp_path, "test", [0])})
    assert list(table["split"]) == ["train"] * 3 + ["test"]
    assert list(table["label"]) == [0, 1, 1, 0]
    assert set(table["shape"]) == {"star"}


def test_clips_table_refuses_nothing():
    with pytest.raises(ValueError, match="no clips"):
        clips_table({})


def test_frame_strips_lays_out_one_row_per_clip():
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    fig = frame_strips([("a", frames), ("b", frames[:3])])
    assert len(fig.axes) == 2 * 5
    assert fig.axes[0].get_ylabel() == "a" and fig.axes[5].get_ylabel() == "b"
    assert len(fig.axes[4].images) == 1 and len(fig.axes[9].images) == 0  # the shorter clip leaves blanks


def test_frame_strips_needs_a_clip():
    with pytest.raises(ValueError):
        frame_strips([])
