"""Frame-caption pairs from a SynthActions world: what the embedded CLIPs are pretrained and tested on.

A single frame shows the main object's shape, colour and size and the scene it is in, but not the action: motion
only exists across frames (and time reversal turns "moving left" into a valid "moving right"). Frame captions
therefore name spatial attributes only and never the action; the action is what the video chapters learn on top
of these CLIPs. The size is left out for growing and shrinking clips, whose object changes size within the clip.

A frame caption may also say where the object is ("a red square at the top left"), as a web caption would: the
actions are the object's motions, so a CLIP whose captions never place the object has no reason to encode where it
is, and its frozen frame embeddings cannot carry the action (`benchmarks/bench_world_ceiling.py`). The position is
read per frame from the renderer's ground truth (`frame_positions`), never from the action label, and is left out
while a blinking object is hidden.

K frames per clip (segment centres) are decoded once into one uint8 array and cached as an .npz file; an item is
one frame with one caption drawn from several phrasings, the phrasing a function of (seed, epoch, index).
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from actiondistill.data.synth_world import SCENES, action_parts
from actiondistill.data.synthetic import load_manifest
from actiondistill.data.transforms import ColorJitter, Normalize
from actiondistill.io import cached_arrays
from actiondistill.parallel import map_jobs

#: The attributes a frame caption may name, in the order of a frame's attribute ids.
CAPTION_ATTRIBUTES = ("shape", "colour", "scene", "size", "position")
#: Where the object's centre is, in thirds of the frame (rows top to bottom, each left to right).
POSITIONS = ("at the top left", "at the top", "at the top right", "on the left", "in the middle", "on the right",
             "at the bottom left", "at the bottom", "at the bottom right")
#: Phrasings of a frame caption; `{scene}` becomes the scene's place phrase ("on the beach").
FRAME_TEMPLATES = (
    "a photo of a {size} {colour} {shape} {scene}",
    "a {size} {colour} {shape} {scene}",
    "a {colour} {shape} {scene}",
    "a {size} {colour} {shape}",
    "a {colour} {shape}",
    "a {shape} {scene}",
    "a {colour} object {scene}",
    "a {size} {shape}",
    "a photo of a {colour} object",
    "a photo of a {shape}",
    "a photo of something {scene}",
    "a {size} object",
    "a {colour} {shape} {position}",
    "a {size} {colour} {shape} {position} {scene}",
    "a {shape} {position}",
    "a {colour} object {position}",
    "a photo of something {position}",
)
#: Actions whose object changes size within the clip: their frames get no size in the caption.
SIZE_CHANGING_VERBS = ("growing", "shrinking")


def template_attributes(template: str) -> tuple[str, ...]:
    """The attributes a phrasing names, e.g. ("colour", "shape") for "a {colour} {shape}"."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def frame_position(x: float, y: float) -> str:
    """The `POSITIONS` phrase of a centre at (x, y) in frame units."""
    column, row = (min(2, max(0, int(3.0 * v))) for v in (x, y))
    return POSITIONS[3 * row + column]


def frame_positions(manifest: dict[str, Any], clips: Sequence[int], frames: Sequence[int]) -> list[str | None]:
    """The position phrase of frame `frames[k]` of manifest clip `clips[k]`, None where the object is hidden."""
    from actiondistill.pretrain.state import STATE_FIELDS, frame_states

    states = frame_states(manifest, clips, frames)
    x, y, visible = (STATE_FIELDS.index(name) for name in ("x", "y", "visible"))
    return [frame_position(row[x], row[y]) if row[visible] > 0.5 else None for row in states]


def fill_template(template: str, attributes: dict[str, str]) -> str:
    """The caption of a frame with `attributes` in this phrasing."""
    values = {key: attributes[key] for key in template_attributes(template)}
    if "scene" in values:
        values["scene"] = SCENES[values["scene"]]
    return template.format(**values)


def frame_indices(num_frames: int, per_clip: int) -> list[int]:
    """Centres of `per_clip` equal segments of a clip: frames spread over the clip, the same on every run."""
    if not 1 <= per_clip <= num_frames:
        raise ValueError(f"frames per clip {per_clip}: expected 1..{num_frames} (the clip length)")
    return [int((k + 0.5) * num_frames / per_clip) for k in range(per_clip)]


def _decode_one(job: tuple[str, list[int]]) -> np.ndarray:
    from actiondistill.data.video import open_video

    path, indices = job
    with open_video(path) as reader:
        return reader.read(indices)


def decode_frames(manifest_path: str | os.PathLike, splits: Sequence[str], per_clip: int, workers: int | None = None,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Decode `per_clip` frames of every clip in `splits`.

    Returns {"frames": uint8 (N, H, W, 3), "clip": (N,) manifest clip index, "frame": (N,) frame index}, clips in
    manifest order and frames in time order.
    """
    manifest = load_manifest(manifest_path)
    root = Path(manifest_path)
    root = root if root.is_dir() else root.parent
    clips = [i for i, clip in enumerate(manifest["clips"]) if clip["split"] in splits]
    if not clips:
        raise ValueError(f"{manifest_path}: no clips in splits {list(splits)}")
    indices = frame_indices(manifest["frames"], per_clip)
    jobs = [(str(root / manifest["clips"][i]["path"]), indices) for i in clips]
    bar = tqdm(total=len(jobs), desc="decode frames", unit="clip", disable=not progress)
    parts = map_jobs(_decode_one, jobs, workers or os.cpu_count() or 1, bar)
    bar.close()
    return {"frames": np.concatenate(parts), "clip": np.repeat(np.array(clips, dtype=np.int64), per_clip),
            "frame": np.tile(np.array(indices, dtype=np.int64), len(clips))}


def cached_frames(cache: str | os.PathLike, manifest_path: str | os.PathLike, splits: Sequence[str], per_clip: int,
                  workers: int | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """`decode_frames`, read from the .npz file `cache` when it exists, else decoded and written there atomically.

    The file records its manifest path, splits and frames per clip; a file made for other ones is an error rather
    than silently the wrong frames.
    """
    stamp = {"manifest": str(Path(manifest_path).resolve()), "splits": list(splits), "per_clip": per_clip}
    return cached_arrays(cache, stamp, lambda: decode_frames(manifest_path, splits, per_clip, workers=workers,
                                                             progress=progress), "frames cached")


def frames_to_images(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) frames to the CLIP input: float (N, 3, H, W), CLIP mean/std normalised."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    return Normalize()(images)


class FrameCaptionDataset(torch.utils.data.Dataset):
    """One decoded frame and one caption per item, for CLIP training and zero-shot testing.

    Items: {"image": float (3, H, W) CLIP-normalised, "caption": str, "attributes": (A,) ids of `CAPTION_ATTRIBUTES` in
    the manifest's vocabularies (and `POSITIONS`; -1 where the frame has no position), "mentions": (A,) bool, which of
    them the caption names, "known": (A,) bool, which of them the frame has a value of (not the size while growing or
    shrinking, no position without `positions` or while hidden), "index": int}, and "state" (S,) float when `states` (N,
    S) are given (`pretrain.state.frame_states`). The phrasing is drawn from the templates that fit the frame, seeded by
    (seed, epoch, index), so an epoch's captions are reproducible and differ between epochs. `jitter` > 0 scales
    brightness, contrast and saturation by up to that fraction (p 0.8, seeded the same way); never hue, because colour
    is a label.
    """

    def __init__(self, frames: np.ndarray, clips: Sequence[int], manifest: dict[str, Any], seed: int = 0,
                 jitter: float = 0.0, states: np.ndarray | None = None,
                 positions: Sequence[str | None] | None = None):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames: expected uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        if len(clips) != len(frames):
            raise ValueError(f"clips: {len(clips)} clip indices for {len(frames)} frames")
        if positions is not None and len(positions) != len(frames):
            raise ValueError(f"positions: {len(positions)} for {len(frames)} frames")
        if states is not None and (states.ndim != 2 or len(states) != len(frames)):
            raise ValueError(f"states: expected ({len(frames)}, S), one row per frame, got {states.shape}")
        self.frames = frames
        self.states = None if states is None else torch.as_tensor(states, dtype=torch.float32)
        self.seed = seed
        self.epoch = 0
        self.vocab = {key: list(manifest["attributes"][key]) for key in CAPTION_ATTRIBUTES if key != "position"}
        self.vocab["position"] = list(POSITIONS)
        positions = [None] * len(frames) if positions is None else list(positions)
        self.frame_attributes = [{**manifest["clips"][int(c)]["attributes"], "position": p}
                                 for c, p in zip(clips, positions, strict=True)]
        with_size = [action_parts(manifest["clips"][int(c)]["label_text"])[0] not in SIZE_CHANGING_VERBS
                     for c in clips]
        # Every attribute has a value in every frame except the size of an object that grows or shrinks and the
        # position of a hidden one.
        self.known = torch.tensor([[(key != "size" or ok) and (key != "position" or p is not None)
                                    for key in CAPTION_ATTRIBUTES] for ok, p in zip(with_size, positions, strict=True)],
                                  dtype=torch.bool).reshape(-1, len(CAPTION_ATTRIBUTES))
        self.attributes = torch.tensor([[self.vocab[key].index(attrs[key]) if attrs[key] is not None else -1
                                         for key in CAPTION_ATTRIBUTES] for attrs in self.frame_attributes],
                                       dtype=torch.long).reshape(-1, len(CAPTION_ATTRIBUTES))
        fitting: dict[tuple[bool, ...], list[str]] = {}
        self.templates = []
        for row in self.known.tolist():
            names = {key for key, ok in zip(CAPTION_ATTRIBUTES, row, strict=True) if ok}
            key = tuple(row)
            if key not in fitting:
                fitting[key] = [t for t in FRAME_TEMPLATES if set(template_attributes(t)) <= names]
            self.templates.append(fitting[key])
        self.normalize = Normalize()
        self.jitter = ColorJitter(jitter, jitter, jitter, hue=0.0) if jitter > 0 else None

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def caption(self, index: int) -> tuple[str, str]:
        """(caption, template) of item `index` in the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        choices = self.templates[index]
        template = choices[int(rng.integers(len(choices)))]
        return fill_template(template, self.frame_attributes[index]), template

    def __getitem__(self, index: int) -> dict[str, Any]:
        text, template = self.caption(index)
        image = torch.from_numpy(self.frames[index]).permute(2, 0, 1).float().div_(255.0)
        if self.jitter is not None:
            generator = torch.Generator().manual_seed(int(np.random.SeedSequence(
                [self.seed, self.epoch, index, 1]).generate_state(1)[0]))
            image = self.jitter(image, generator)
        named = template_attributes(template)
        item = {"image": self.normalize(image), "caption": text, "attributes": self.attributes[index],
                "mentions": torch.tensor([key in named for key in CAPTION_ATTRIBUTES]),
                "known": self.known[index], "index": index}
        if self.states is not None:
            item["state"] = self.states[index]
        return item
