"""Video datasets: a list of labelled video files read through the sampler and transform of the caller's choice.

One `VideoDataset` serves the synthetic world (`from_manifest`), HMDB51 (`hmdb51`) and UCF101 (`ucf101`).
Randomness of an item (frame sampling, augmentation) derives from (seed, epoch, index) only, so a run is
reproducible whatever the number of DataLoader workers; call `set_epoch` at the start of every epoch.

Bad videos: with on_error="raise" (default) a missing listed file fails construction and an unreadable one
fails `__getitem__`, naming the file. With on_error="skip", construction drops missing files and, when
`probe` is on, files that fail to open or to decode their last frame (each logged as a warning); a file that
still fails in `__getitem__` is logged and replaced by the next index (the returned "index" says which sample
it really is, so a frame is never passed off under another sample's label). Nothing left -> ValueError.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from actiondistill.data.labels import class_name_to_text
from actiondistill.data.sampling import FrameSampler
from actiondistill.data.transforms import to_clip_tensor
from actiondistill.data.video import Backend, VideoDecodeError, open_video
from actiondistill.io import read_json

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
Sampler = Callable[[int, np.random.Generator], Sequence[int]]
Transform = Callable[[np.ndarray, torch.Generator], torch.Tensor]
MANIFEST_NAME = "manifest.json"
HMDB51_SPLITS = "testTrainMulti_7030_splits"
HMDB51_VIDEO_DIRS = ("videos", "hmdb51_org", ".")
UCF101_VIDEOS = "UCF-101"
UCF101_LISTS = "ucfTrainTestlist"
SUBSETS = ("train", "test")
# Consecutive unreadable files tolerated in one __getitem__ with on_error="skip" before giving up.
MAX_SUBSTITUTIONS = 10


@dataclass
class VideoSample:
    """One labelled video file; `attributes` maps attribute names (shape, colour...) to values."""

    path: Path
    label: int
    label_text: str
    caption: str | None = None
    attributes: dict[str, str] | None = None
    split: str = ""


class VideoDataset(Dataset):
    """Labelled videos -> {"frames": float (T, 3, H, W), "label": int, "index": int[, "attributes": {name: int}]}.

    Args:
        samples: the videos.
        classes: class names; a sample's label indexes this list.
        sampler: frame indices from (num_frames, numpy Generator); default `FrameSampler()` (8 TSN test frames).
        transform: (uint8 frames (T, H, W, 3), torch Generator) -> float (T, 3, H, W); default: scale to [0, 1].
        backend: video reader backend, see `open_video`.
        on_error: "raise" or "skip" bad videos (see the module docstring).
        attributes: attribute vocabularies; when given every sample must carry every attribute, and items gain
            "attributes": {name: index into its vocabulary}.
        seed: base of the per-item randomness.
        probe: with on_error="skip", check at construction that each video opens and decodes its last frame.
        progress: show a progress bar while probing.
    """

    def __init__(self, samples: Sequence[VideoSample], classes: Sequence[str], sampler: Sampler | None = None,
                 transform: Transform | None = None, backend: Backend = "auto", on_error: OnError = "raise",
                 attributes: dict[str, list[str]] | None = None, seed: int = 0, probe: bool = True,
                 progress: bool = True):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
        self.classes = list(classes)
        self.sampler: Sampler = sampler if sampler is not None else FrameSampler()
        self.transform = transform
        self.backend: Backend = backend
        self.on_error: OnError = on_error
        self.attributes = {name: list(values) for name, values in attributes.items()} if attributes else None
        self.seed = seed
        self.epoch = 0
        samples = [self._validated(s) for s in samples]
        samples = self._present(samples)
        if on_error == "skip" and probe:
            samples = [s for s in tqdm(samples, desc="probing videos", disable=not progress) if self._probe(s)]
        if not samples:
            raise ValueError("dataset is empty" + (" after skipping unreadable videos" if on_error == "skip" else ""))
        self.samples = samples

    @property
    def class_texts(self) -> list[str]:
        """Class names as words for the text encoder."""
        return [class_name_to_text(c) for c in self.classes]

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def set_epoch(self, epoch: int) -> None:
        """Change the per-item randomness; call once per epoch, before iterating."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} videos")
        index %= len(self)
        if self.on_error == "raise":
            return self._load(index)
        for attempt in range(MAX_SUBSTITUTIONS):
            candidate = (index + attempt) % len(self)
            try:
                return self._load(candidate)
            except VideoDecodeError as err:
                log.warning("skipping unreadable video, using the next sample instead: %s", err)
        raise VideoDecodeError(
            f"{MAX_SUBSTITUTIONS} consecutive videos from index {index} ({self.samples[index].path}) are unreadable"
        )

    def _load(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        sequence = np.random.SeedSequence([self.seed, self.epoch, index])
        rng = np.random.default_rng(sequence)
        generator = torch.Generator().manual_seed(int(sequence.generate_state(1, np.uint64)[0] >> 1))
        with open_video(sample.path, self.backend) as reader:
            frames = reader.read(self.sampler(reader.num_frames, rng))
        clip = self.transform(frames, generator) if self.transform is not None else to_clip_tensor(frames)
        item: dict[str, Any] = {"frames": clip, "label": sample.label, "index": index}
        if self.attributes is not None:
            item["attributes"] = {n: vocab.index(sample.attributes[n]) for n, vocab in self.attributes.items()}
        return item

    def _validated(self, sample: VideoSample) -> VideoSample:
        """Catch label and attribute mistakes at construction, naming the video."""
        if not 0 <= sample.label < len(self.classes):
            raise ValueError(f"{sample.path}: label {sample.label} out of range for {len(self.classes)} classes")
        if self.attributes is not None:
            for name, vocab in self.attributes.items():
                value = (sample.attributes or {}).get(name)
                if value not in vocab:
                    raise ValueError(f"{sample.path}: attribute {name}={value!r} is not in its vocabulary {vocab}")
        return sample

    def _present(self, samples: list[VideoSample]) -> list[VideoSample]:
        missing = [s for s in samples if not s.path.is_file()]
        if missing and self.on_error == "raise":
            raise FileNotFoundError(f"{missing[0].path}: listed video not found ({len(missing)} missing in all)")
        for s in missing:
            log.warning("skipping missing video %s", s.path)
        return [s for s in samples if s.path.is_file()] if missing else samples

    def _probe(self, sample: VideoSample) -> bool:
        try:
            with open_video(sample.path, self.backend) as reader:
                reader.read([reader.num_frames - 1])
        except VideoDecodeError as err:
            log.warning("skipping unreadable video: %s", err)
            return False
        return True

    @classmethod
    def from_manifest(cls, path_or_dir: str | os.PathLike, split: str | Sequence[str], sampler: Sampler | None = None,
                      transform: Transform | None = None, use_attributes: bool = True,
                      **kwargs: Any) -> VideoDataset:
        """The clips of the synthetic world's manifest in `split` (one name or several); paths are relative to
        the manifest's folder. `use_attributes` passes the manifest's attribute vocabularies on."""
        path = Path(path_or_dir)
        if path.is_dir():
            path = path / MANIFEST_NAME
        manifest = read_json(path)
        if not isinstance(manifest, dict) or manifest.get("version") != 1:
            raise ValueError(f"{path}: expected a version 1 manifest, got version {_get(manifest, 'version')!r}")
        for key in ("classes", "clips"):
            if not isinstance(manifest.get(key), list):
                raise ValueError(f"{path}: manifest has no '{key}' list")
        splits = {split} if isinstance(split, str) else set(split)
        classes = manifest["classes"]
        samples = []
        for number, clip in enumerate(manifest["clips"]):
            try:
                if clip["split"] not in splits:
                    continue
                sample = VideoSample(path.parent / clip["path"], int(clip["label"]), clip["label_text"],
                                     clip.get("caption"), clip.get("attributes"), clip["split"])
            except (AttributeError, KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}: clip {number} is malformed ({type(err).__name__}: {err})") from err
            if not 0 <= sample.label < len(classes) or classes[sample.label] != sample.label_text:
                raise ValueError(f"{path}: clip {number} has label {sample.label} but label_text "
                                 f"{sample.label_text!r}, which the class list does not put there")
            samples.append(sample)
        if not samples:
            present = sorted({str(_get(c, "split")) for c in manifest["clips"]})
            raise ValueError(f"{path}: no clips in split {sorted(splits)}; the manifest has splits {present}")
        attributes = manifest.get("attributes") if use_attributes else None
        return cls(samples, classes, sampler, transform, attributes=attributes, **kwargs)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _check_split(split: int, subset: str) -> None:
    if split not in (1, 2, 3):
        raise ValueError(f"split {split!r}: expected 1, 2 or 3")
    if subset not in SUBSETS:
        raise ValueError(f"subset {subset!r}: expected one of {SUBSETS}")


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (expected {what})")
    return path


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank lines of a split file as (1-based line number, tokens); official files have CRLF endings."""
    return [(n, line.split()) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]


def hmdb51(root: str | os.PathLike, split: int = 1, subset: str = "train", **dataset_kwargs: Any) -> VideoDataset:
    """HMDB51 split `split` (1-3), `subset` "train" (id 1) or "test" (id 2) of the official 70/30 split files.

    `root` holds testTrainMulti_7030_splits/<class>_test_split<N>.txt (lines "<file> <0|1|2>") and the class
    folders of .avi files under videos/, hmdb51_org/ or root itself (the first that has the class).
    """
    _check_split(split, subset)
    root = _require(Path(root), "the HMDB51 root folder")
    splits_dir = _require(root / HMDB51_SPLITS, "HMDB51's split files")
    suffix = f"_test_split{split}.txt"
    split_files = {p.name[: -len(suffix)]: p for p in sorted(splits_dir.glob(f"*{suffix}"))}
    if not split_files:
        raise FileNotFoundError(f"{splits_dir / ('<class>' + suffix)}: no split files for split {split}")
    classes = sorted(split_files)
    wanted = "1" if subset == "train" else "2"
    samples = []
    for label, name in enumerate(classes):
        split_file = split_files[name]
        folders = [root / d / name for d in HMDB51_VIDEO_DIRS]
        folder = next((f for f in folders if f.is_dir()), None)
        if folder is None:
            raise ValueError(f"{split_file}: unknown class {name!r}: no folder {name}/ under "
                             f"{', '.join(str((root / d).resolve()) for d in HMDB51_VIDEO_DIRS)}")
        for number, tokens in _lines(split_file):
            if len(tokens) != 2 or tokens[1] not in ("0", "1", "2"):
                raise ValueError(f"{split_file}:{number}: malformed line {' '.join(tokens)!r}; "
                                 "expected '<video file> <0|1|2>'")
            if tokens[1] == wanted:
                samples.append(VideoSample(folder / tokens[0], label, class_name_to_text(name), split=subset))
    return VideoDataset(samples, classes, **dataset_kwargs)


def _ucf_classes(path: Path) -> list[str]:
    """classInd.txt: "<1-based index> <Class>" per line, indices 1..N each once."""
    by_index: dict[int, str] = {}
    for number, tokens in _lines(path):
        if len(tokens) != 2 or not tokens[0].isdigit() or int(tokens[0]) in by_index:
            raise ValueError(f"{path}:{number}: malformed line {' '.join(tokens)!r}; expected '<index> <Class>' "
                             "with a new index")
        by_index[int(tokens[0])] = tokens[1]
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise ValueError(f"{path}: class indices must run 1..{len(by_index)}, got {sorted(by_index)}")
    return [by_index[i] for i in range(1, len(by_index) + 1)]


def ucf101(root: str | os.PathLike, split: int = 1, subset: str = "train", **dataset_kwargs: Any) -> VideoDataset:
    """UCF101 split `split` (1-3), `subset` "train" or "test" of the official lists.

    `root` holds UCF-101/<Class>/v_<Class>_gXX_cYY.avi and ucfTrainTestlist/ with classInd.txt
    ("1 ApplyEyeMakeup"), trainlist0N.txt ("ApplyEyeMakeup/v_...avi 1") and testlist0N.txt ("ApplyEyeMakeup/v_...avi",
    labelled through the folder name and classInd).
    """
    _check_split(split, subset)
    root = _require(Path(root), "the UCF101 root folder")
    lists = _require(root / UCF101_LISTS, "UCF101's train/test lists")
    classes = _ucf_classes(_require(lists / "classInd.txt", "UCF101's class index"))
    list_file = _require(lists / f"{subset}list0{split}.txt", f"UCF101's {subset} list for split {split}")
    videos = _require(root / UCF101_VIDEOS, "UCF101's class folders of .avi files")
    label_of = {name: k for k, name in enumerate(classes)}
    samples = []
    for number, tokens in _lines(list_file):
        parts = tokens[0].split("/")
        expected = "'<Class>/<file>.avi <label>'" if subset == "train" else "'<Class>/<file>.avi'"
        if len(tokens) != (2 if subset == "train" else 1) or len(parts) != 2 or (
                subset == "train" and not tokens[1].isdigit()):
            raise ValueError(f"{list_file}:{number}: malformed line {' '.join(tokens)!r}; expected {expected}")
        name = parts[0]
        if name not in label_of:
            raise ValueError(f"{list_file}:{number}: unknown class {name!r} (not in {lists / 'classInd.txt'})")
        if subset == "train" and int(tokens[1]) != label_of[name] + 1:
            raise ValueError(f"{list_file}:{number}: label {tokens[1]} disagrees with the folder {name!r}, "
                             f"which classInd.txt numbers {label_of[name] + 1}")
        if not (videos / name).is_dir():
            raise ValueError(f"{list_file}:{number}: class {name!r} has no folder {videos / name}")
        samples.append(VideoSample(videos / tokens[0], label_of[name], class_name_to_text(name), split=subset))
    return VideoDataset(samples, classes, **dataset_kwargs)
