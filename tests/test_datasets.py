"""Video datasets: the synthetic manifest, HMDB51 and UCF101 layouts, reproducibility, and bad input."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from actiondistill.data.datasets import VideoDataset, VideoSample, hmdb51, ucf101
from actiondistill.data.encode import write_video
from actiondistill.data.labels import class_name_to_text
from actiondistill.data.sampling import FrameSampler
from actiondistill.data.transforms import eval_transform, train_transform
from actiondistill.data.video import VideoDecodeError

HMDB_CLASSES = ["ride_bike", "brush_hair", "fall_floor"]  # deliberately unsorted
UCF_CLASSES = ["ApplyEyeMakeup", "BlowDryHair", "YoYo"]
SIZE, FRAMES = 32, 12


def clip_frames(seed: int) -> np.ndarray:
    """A coloured square moving right over a background: frames differ, seeds differ."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    colour = rng.integers(80, 256, 3)
    for t in range(FRAMES):
        frames[t] = rng.integers(0, 40, 3)
        frames[t, 8:18, t * 2:t * 2 + 10] = colour
    return frames


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One encoded clip per container, copied wherever a test needs many files (encoding is the slow part)."""
    root = tmp_path_factory.mktemp("templates")
    return {
        ".avi": write_video(root / "t.avi", clip_frames(0), codec="mpeg4"),
        ".mp4": write_video(root / "t.mp4", clip_frames(1)),
    }


def place(templates: dict[str, Path], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(templates[path.suffix], path)
    return path


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + newline for line in lines))
    return path


# --- class names to text -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "text"), [
    ("brush_hair", "brush hair"), ("ApplyEyeMakeup", "apply eye makeup"), ("YoYo", "yo yo"),
    ("PlayingDaf", "playing daf"), ("Skijet", "skijet"), ("BlowDryHair", "blow dry hair"), ("fall_floor", "fall floor"),
    ("TVShow", "tv show"), ("PlayingTV", "playing tv"), ("Mp3Player", "mp3 player"), ("Top10", "top10"),
    ("3DPrinting", "3d printing"), ("T-shirt_folding", "t-shirt folding"), ("  two__spaces ", "two spaces"),
    ("bouncing to the left", "bouncing to the left"),
])
def test_class_name_to_text(name: str, text: str) -> None:
    assert class_name_to_text(name) == text


def test_class_name_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="class name '__'"):
        class_name_to_text("__")


# --- the synthetic world's manifest -------------------------------------------------------------------------------

MANIFEST_CLASSES = ["moving left", "moving right", "growing", "spinning clockwise"]
ATTRIBUTES = {"shape": ["circle", "star"], "colour": ["red", "blue"], "scene": ["beach", "desert"],
              "size": ["small", "large"]}


def make_manifest(root: Path, templates: dict[str, Path]) -> Path:
    clips = []
    plan = [(0, "train"), (1, "train"), (2, "train"), (0, "val"), (1, "test"), (3, "zeroshot")]
    for number, (label, split) in enumerate(plan):
        rel = f"videos/{number:06d}.mp4"
        place(templates, root / rel)
        clips.append({"path": rel, "label": label, "label_text": MANIFEST_CLASSES[label],
                      "caption": f"a star {MANIFEST_CLASSES[label]}", "split": split, "seed": number,
                      "attributes": {"shape": "star", "colour": ["red", "blue"][number % 2], "scene": "beach",
                                     "size": "small"}})
    manifest = {"version": 1, "classes": MANIFEST_CLASSES, "num_seen_classes": 3,
                "zeroshot_classes": ["spinning clockwise"], "attributes": ATTRIBUTES, "clips": clips, "seed": 0}
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture()
def manifest(tmp_path: Path, templates: dict[str, Path]) -> Path:
    return make_manifest(tmp_path / "world", templates)


def test_from_manifest_items(manifest: Path) -> None:
    ds = VideoDataset.from_manifest(manifest.parent, "train", FrameSampler("tsn", 4), eval_transform(24),
                                    progress=False)
    assert len(ds) == 3 and ds.classes == MANIFEST_CLASSES and ds.class_texts == MANIFEST_CLASSES
    assert ds.samples[0].caption == "a star moving left" and ds.samples[1].split == "train"
    item = ds[1]
    assert set(item) == {"frames", "label", "index", "attributes"}
    assert item["frames"].shape == (4, 3, 24, 24) and item["frames"].dtype == torch.float32
    assert item["label"] == 1 and item["index"] == 1
    assert item["attributes"] == {"shape": 1, "colour": 1, "scene": 0, "size": 0}  # star, blue, beach, small
    several = VideoDataset.from_manifest(manifest, ["val", "zeroshot"], use_attributes=False)
    assert [s.label for s in several.samples] == [0, 3] and "attributes" not in several[0]
    assert several[1]["frames"].shape == (8, 3, SIZE, SIZE)  # defaults: 8 TSN test frames, scaled to [0, 1]


def test_from_manifest_bad_input(manifest: Path) -> None:
    with pytest.raises(ValueError, match=r"no clips in split \['training'\]; the manifest has splits \['test', "):
        VideoDataset.from_manifest(manifest, "training")
    data = json.loads(manifest.read_text())
    data["clips"][2]["label_text"] = "moving left"
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="clip 2 has label 2 but label_text 'moving left'"):
        VideoDataset.from_manifest(manifest, "train")
    del data["clips"][1]["path"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="clip 1 is malformed"):
        VideoDataset.from_manifest(manifest, "train")
    manifest.write_text(json.dumps({"version": 2}))
    with pytest.raises(ValueError, match="version 1"):
        VideoDataset.from_manifest(manifest, "train")
    with pytest.raises(FileNotFoundError, match="nowhere/manifest.json"):
        VideoDataset.from_manifest(manifest.parent / "nowhere" / "manifest.json", "train")


def test_attribute_values_are_checked(manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    data["clips"][0]["attributes"]["colour"] = "green"
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"000000.mp4: attribute colour='green' is not in its vocabulary"):
        VideoDataset.from_manifest(manifest, "train")


def train_dataset(manifest: Path, seed: int = 0) -> VideoDataset:
    return VideoDataset.from_manifest(manifest, "train", FrameSampler("tsn", 4, train=True),
                                      train_transform(24, flip=False), seed=seed)


def test_randomness_follows_seed_epoch_and_index(manifest: Path) -> None:
    ds = train_dataset(manifest)
    first = ds[0]["frames"]
    assert torch.equal(first, ds[0]["frames"])
    assert torch.equal(first, train_dataset(manifest)[0]["frames"])
    assert not torch.equal(first, train_dataset(manifest, seed=1)[0]["frames"])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[0]["frames"])
    ds.set_epoch(0)
    assert torch.equal(first, ds[0]["frames"])


def test_dataloader_workers_give_the_same_batches(manifest: Path) -> None:
    ds = train_dataset(manifest)
    direct = torch.stack([ds[i]["frames"] for i in range(len(ds))])
    batch = next(iter(DataLoader(ds, batch_size=3, num_workers=2)))
    assert batch["frames"].shape == (3, 4, 3, 24, 24)
    assert torch.equal(batch["frames"], direct)
    assert batch["label"].tolist() == [0, 1, 2] and batch["attributes"]["colour"].tolist() == [0, 1, 0]


def test_samples_are_validated(templates: dict[str, Path], tmp_path: Path) -> None:
    path = place(templates, tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="a.mp4: label 3 out of range for 2 classes"):
        VideoDataset([VideoSample(path, 3, "x")], ["x", "y"])
    with pytest.raises(ValueError, match="dataset is empty"):
        VideoDataset([], ["x"])
    with pytest.raises(ValueError, match="on_error='ignore'"):
        VideoDataset([VideoSample(path, 0, "x")], ["x"], on_error="ignore")  # type: ignore[arg-type]


# --- bad videos in a list -----------------------------------------------------------------------------------------

def mixed_samples(templates: dict[str, Path], root: Path) -> list[VideoSample]:
    """good, corrupt (text named .mp4), good, missing."""
    corrupt = root / "corrupt.mp4"
    corrupt.write_text("not a video")
    paths = [place(templates, root / "good0.mp4"), corrupt, place(templates, root / "good2.mp4"),
             root / "missing.mp4"]
    return [VideoSample(p, 0, "x") for p in paths]


def test_missing_video_raises_naming_it(templates: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.mp4: listed video not found"):
        VideoDataset(mixed_samples(templates, tmp_path), ["x"])


def test_corrupt_video_raises_naming_it(templates: dict[str, Path], tmp_path: Path) -> None:
    ds = VideoDataset(mixed_samples(templates, tmp_path)[:3], ["x"])
    assert ds[0]["frames"].shape[0] == 8
    with pytest.raises(VideoDecodeError, match="corrupt.mp4"):
        ds[1]


def test_skip_drops_bad_videos_at_construction(templates: dict[str, Path], tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ds = VideoDataset(mixed_samples(templates, tmp_path), ["x"], on_error="skip", progress=False)
    assert [s.path.name for s in ds.samples] == ["good0.mp4", "good2.mp4"]
    assert "missing.mp4" in caplog.text and "corrupt.mp4" in caplog.text


def test_skip_without_probe_substitutes_the_next_video(templates: dict[str, Path], tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    ds = VideoDataset(mixed_samples(templates, tmp_path), ["x"], on_error="skip", probe=False)
    assert len(ds) == 3  # the missing file is dropped without opening anything
    with caplog.at_level(logging.WARNING):
        item = ds[1]
    assert item["index"] == 2  # says which video it really is
    assert "corrupt.mp4" in caplog.text


def test_skip_everything_leaves_an_empty_dataset(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match="empty after skipping"):
        VideoDataset([VideoSample(bad, 0, "x"), VideoSample(tmp_path / "gone.mp4", 0, "x")], ["x"], on_error="skip",
                     progress=False)


# --- HMDB51 -------------------------------------------------------------------------------------------------------

def make_hmdb(root: Path, templates: dict[str, Path], videos: str = "videos") -> Path:
    """Per class: clip 1 train / clip 2 test / clip 3 unused in split 1; split 2 swaps train and test."""
    for name in HMDB_CLASSES:
        for k in (1, 2, 3):
            place(templates, root / videos / name / f"{name}_{k}.avi")
        for split, ids in ((1, (1, 2, 0)), (2, (2, 1, 0))):
            write_lines(root / "testTrainMulti_7030_splits" / f"{name}_test_split{split}.txt",
                        [f"{name}_{k}.avi {i} " for k, i in zip((1, 2, 3), ids)], newline="\r\n")
    return root


@pytest.mark.parametrize("layout", ["videos", "hmdb51_org", "."])
def test_hmdb51_layouts_and_subsets(templates: dict[str, Path], tmp_path: Path, layout: str) -> None:
    root = make_hmdb(tmp_path / "hmdb51", templates, layout)
    train = hmdb51(root, 1, "train")
    assert train.classes == sorted(HMDB_CLASSES)
    assert train.class_texts == ["brush hair", "fall floor", "ride bike"]
    assert [(s.path.name, s.label, s.label_text) for s in train.samples] == [
        ("brush_hair_1.avi", 0, "brush hair"), ("fall_floor_1.avi", 1, "fall floor"),
        ("ride_bike_1.avi", 2, "ride bike")]
    assert [s.path.name for s in hmdb51(root, 1, "test").samples] == [f"{c}_2.avi" for c in sorted(HMDB_CLASSES)]
    assert [s.path.name for s in hmdb51(root, 2, "train").samples] == [f"{c}_2.avi" for c in sorted(HMDB_CLASSES)]
    item = hmdb51(root, 1, "test", sampler=FrameSampler("uniform", 3), transform=eval_transform(16))[2]
    assert item["frames"].shape == (3, 3, 16, 16) and item["label"] == 2


def test_hmdb51_bad_input(templates: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing: not found"):
        hmdb51(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="testTrainMulti_7030_splits: not found"):
        hmdb51(tmp_path / "empty")
    root = make_hmdb(tmp_path / "hmdb51", templates)
    with pytest.raises(FileNotFoundError, match=r"<class>_test_split3.txt: no split files for split 3"):
        hmdb51(root, 3)
    with pytest.raises(ValueError, match="split 4"):
        hmdb51(root, 4)
    with pytest.raises(ValueError, match="subset 'val'"):
        hmdb51(root, 1, "val")
    split_file = write_lines(root / "testTrainMulti_7030_splits" / "fall_floor_test_split1.txt",
                             ["fall_floor_1.avi 1", "fall_floor_2.avi train"])
    with pytest.raises(ValueError, match=r"fall_floor_test_split1.txt:2: malformed line 'fall_floor_2.avi train'"):
        hmdb51(root, 1)
    split_file.write_text("fall_floor_1.avi 1\n")
    write_lines(root / "testTrainMulti_7030_splits" / "jump_test_split1.txt", ["jump_1.avi 1"])
    with pytest.raises(ValueError, match=r"jump_test_split1.txt: unknown class 'jump': no folder jump/"):
        hmdb51(root, 1)


def test_hmdb51_missing_video(templates: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_hmdb(tmp_path / "hmdb51", templates)
    (root / "videos" / "ride_bike" / "ride_bike_1.avi").unlink()
    with pytest.raises(FileNotFoundError, match="ride_bike_1.avi"):
        hmdb51(root, 1, "train")
    with caplog.at_level(logging.WARNING):
        assert len(hmdb51(root, 1, "train", on_error="skip", progress=False)) == 2
    assert "ride_bike_1.avi" in caplog.text


# --- UCF101 -------------------------------------------------------------------------------------------------------

def make_ucf(root: Path, templates: dict[str, Path]) -> Path:
    """Groups 1-2 train and group 3 test in split 1, with the official CRLF line endings."""
    lists = root / "ucfTrainTestlist"
    write_lines(lists / "classInd.txt", [f"{k} {name}" for k, name in enumerate(UCF_CLASSES, 1)], "\r\n")
    train, test = [], []
    for k, name in enumerate(UCF_CLASSES, 1):
        for group in (1, 2, 3):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            place(templates, root / "UCF-101" / rel)
            (train.append(f"{rel} {k}") if group < 3 else test.append(rel))
    write_lines(lists / "trainlist01.txt", train, "\r\n")
    write_lines(lists / "testlist01.txt", test, "\r\n")
    return root


def test_ucf101_subsets(templates: dict[str, Path], tmp_path: Path) -> None:
    root = make_ucf(tmp_path / "ucf101", templates)
    train = ucf101(root, 1, "train")
    assert train.classes == UCF_CLASSES
    assert train.class_texts == ["apply eye makeup", "blow dry hair", "yo yo"]
    assert [s.label for s in train.samples] == [0, 0, 1, 1, 2, 2]
    test = ucf101(root, 1, "test")
    assert [(s.path.name, s.label, s.label_text) for s in test.samples] == [
        ("v_ApplyEyeMakeup_g03_c01.avi", 0, "apply eye makeup"), ("v_BlowDryHair_g03_c01.avi", 1, "blow dry hair"),
        ("v_YoYo_g03_c01.avi", 2, "yo yo")]
    assert test[1]["label"] == 1


def test_ucf101_bad_input(templates: dict[str, Path], tmp_path: Path) -> None:
    root = make_ucf(tmp_path / "ucf101", templates)
    lists = root / "ucfTrainTestlist"
    with pytest.raises(FileNotFoundError, match="testlist02.txt: not found"):
        ucf101(root, 2, "test")
    with pytest.raises(FileNotFoundError, match="missing: not found"):
        ucf101(tmp_path / "missing")
    write_lines(lists / "testlist01.txt", ["YoYo/v_YoYo_g03_c01.avi", "Surfing/v_Surfing_g03_c01.avi"])
    with pytest.raises(ValueError, match=r"testlist01.txt:2: unknown class 'Surfing' \(not in .*classInd.txt\)"):
        ucf101(root, 1, "test")
    write_lines(lists / "trainlist01.txt", ["YoYo/v_YoYo_g01_c01.avi 3", "YoYo/v_YoYo_g02_c01.avi"])
    with pytest.raises(ValueError, match=r"trainlist01.txt:2: malformed line 'YoYo/v_YoYo_g02_c01.avi'"):
        ucf101(root, 1, "train")
    write_lines(lists / "trainlist01.txt", ["YoYo/v_YoYo_g01_c01.avi 1"])
    with pytest.raises(ValueError, match=r"trainlist01.txt:1: label 1 disagrees with the folder 'YoYo'"):
        ucf101(root, 1, "train")
    shutil.rmtree(root / "UCF-101" / "YoYo")
    write_lines(lists / "trainlist01.txt", ["YoYo/v_YoYo_g01_c01.avi 3"])
    with pytest.raises(ValueError, match="class 'YoYo' has no folder"):
        ucf101(root, 1, "train")
    write_lines(lists / "classInd.txt", ["1 ApplyEyeMakeup", "3 BlowDryHair"])
    with pytest.raises(ValueError, match=r"classInd.txt: class indices must run 1..2"):
        ucf101(root, 1, "train")
    (lists / "classInd.txt").unlink()
    with pytest.raises(FileNotFoundError, match="classInd.txt: not found"):
        ucf101(root, 1, "train")
