"""Chapter 4's sources on real data: vocabulary files instead of a manifest, and the clips of a run's splits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from actiondistill.config import DataConfig, TrainConfig
from actiondistill.data.encode import write_video
from actiondistill.data.synthetic import generate
from actiondistill.spatial.sources import chapter_vocabularies, dataset_clips

CLASSES = ("brush_hair", "ride_bike")


def write_hmdb(root: Path) -> Path:
    """Two classes, three clips each; split 1: clip 1 train, clip 2 test, clip 3 unused."""
    rng = np.random.default_rng(0)
    for name in CLASSES:
        for k in (1, 2, 3):
            path = root / "videos" / name / f"{name}_{k}.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8), codec="mpeg4")
        split_file = root / "testTrainMulti_7030_splits" / f"{name}_test_split1.txt"
        split_file.parent.mkdir(parents=True, exist_ok=True)
        split_file.write_text("".join(f"{name}_{k}.avi {i}\n" for k, i in zip((1, 2, 3), (1, 2, 0))))
    return root


def test_vocabulary_files_are_found_under_data_and_kept_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "objects.txt").write_text("bicycle\n# a comment\nhair brush\n")
    (tmp_path / "vocab" / "scenes.txt").write_text("gym\nstreet\n")
    found = chapter_vocabularies(["vocab/scenes.txt", "vocab/objects.txt"])
    assert list(found) == ["scenes", "objects"]
    assert found["objects"].concepts == ("bicycle", "hair brush") and found["objects"].multi_label
    assert not found["scenes"].multi_label
    assert list(chapter_vocabularies(["vocab/scenes.txt", "vocab/objects.txt"], objectives=["objects"])) == ["objects"]
    with pytest.raises(ValueError, match=r"objectives \['colour'\]"):
        chapter_vocabularies(["vocab/objects.txt"], objectives=["colour"])
    with pytest.raises(FileNotFoundError, match="no such vocabulary file"):
        chapter_vocabularies(["vocab/actions.txt"])
    with pytest.raises(ValueError, match="share a file stem"):
        chapter_vocabularies(["vocab/objects.txt", str(tmp_path / "vocab" / "objects.txt")])
    with pytest.raises(ValueError, match="needs vocabulary files"):
        chapter_vocabularies()


def test_a_manifest_brings_its_own_vocabularies(tmp_path):
    generate(tmp_path / "world", 4, size=16, frames=2, workers=1, progress=False)
    found = chapter_vocabularies(manifest=tmp_path / "world", objectives=["colour", "shape"])
    assert list(found) == ["colour", "shape"] and "red" in found["colour"].concepts


def test_dataset_clips_cover_the_train_and_test_videos_of_a_real_run(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    write_hmdb(tmp_path / "hmdb51")
    cfg = TrainConfig(data=DataConfig(dataset="hmdb51", eval_split=None, num_frames=2, size=16))
    clips = dataset_clips(cfg)
    assert sorted(Path(p).name for p in clips.paths) == sorted(f"{c}_{k}.avi" for c in CLASSES for k in (1, 2))
    assert clips.manifest is None and len(clips.fingerprint) == 64
    assert dataset_clips(cfg, ["test"]).paths != clips.paths
    world = generate(tmp_path / "world", 4, size=16, frames=2, workers=1, progress=False)
    synthetic = dataclasses.replace(cfg, data=DataConfig(manifest=str(tmp_path / "world")))
    assert len(dataset_clips(synthetic)) == len(world["clips"])


def test_shipped_starter_vocabularies_are_found_unless_data_has_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    shipped = chapter_vocabularies(["configs/vocab/objects.txt", "configs/vocab/scenes.txt"])
    assert "bicycle" in shipped["objects"].concepts and "gym" in shipped["scenes"].concepts
    assert shipped["objects"].multi_label and not shipped["scenes"].multi_label
    (tmp_path / "configs" / "vocab").mkdir(parents=True)
    (tmp_path / "configs" / "vocab" / "objects.txt").write_text("kettle\n")
    assert chapter_vocabularies(["configs/vocab/objects.txt"])["objects"].concepts == ("kettle",)
