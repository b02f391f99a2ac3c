"""Where SynthActions' main object is in each pretraining frame: the targets of the optional state head.

The actions of the world are the main object's motions, so a video model on frozen frame embeddings can only tell
them apart when the embeddings say where the object is, how it is turned, how big it is and whether it shows. A
web-scale CLIP learns such spatial facts from its data; captions of this small world do not carry them, and the
CLIPs it pretrains do not learn them (`benchmarks/bench_world_ceiling.py`). The state head regresses these facts
from the image embedding as a privileged, pretraining-only target (`PretrainConfig.state_weight`), read from the
renderer's ground truth (`frame_ground_truth`), never from the action label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The state of one frame, in this order: centre (frame units), stripe angle as (cos, sin), 8 x radius (about 1 for
#: a large object, so every target is of order 1), and whether the object shows (blinking hides it).
STATE_FIELDS = ("x", "y", "cos", "sin", "radius x8", "visible")


def frame_states(manifest: dict[str, Any], clips: Sequence[int], frames: Sequence[int]) -> np.ndarray:
    """(N, len(STATE_FIELDS)) float32: the state of frame `frames[k]` of manifest clip `clips[k]`.

    `manifest` is a SynthActions manifest (or any dict with its "size", "frames" and "clips", whose entries have
    "seed", "label_text" and "attributes"); each clip's spec is rebuilt from its seed and checked against the
    recorded attributes, so a manifest from another generator version is an error rather than wrong targets.
    """
    if len(clips) != len(frames):
        raise ValueError(f"frame states: {len(clips)} clip indices for {len(frames)} frame indices")
    tracks: dict[int, np.ndarray] = {}
    states = np.empty((len(clips), len(STATE_FIELDS)), np.float32)
    for k, (clip, frame) in enumerate(zip(clips, frames, strict=True)):
        clip = int(clip)
        if clip not in tracks:
            tracks[clip] = state_array(clip_ground_truth(manifest, clip))
        if not 0 <= int(frame) < len(tracks[clip]):
            raise ValueError(f"frame states: frame {int(frame)} of clip {clip}; expected 0..{len(tracks[clip]) - 1}")
        states[k] = tracks[clip][int(frame)]
    return states


def clip_ground_truth(manifest: dict[str, Any], clip: int) -> dict[str, np.ndarray]:
    """`frame_ground_truth` of manifest clip `clip`, its spec rebuilt from its seed and checked against the manifest."""
    from actiondistill.data.synthetic import clip_spec, frame_ground_truth

    entry = manifest["clips"][clip]
    name = entry.get("path", clip)
    if "seed" not in entry:
        raise ValueError(f"clip {name} has no seed; its ground truth needs a SynthActions world (its clips are "
                         "rebuilt from their seeds)")
    spec = clip_spec(manifest, entry)
    if spec.attributes() != entry["attributes"]:
        raise ValueError(f"clip {name}: its seed does not reproduce the recorded attributes (a world made by another "
                         "version of the generator)")
    return frame_ground_truth(spec, manifest["size"], manifest["frames"])


def state_array(truth: dict[str, np.ndarray]) -> np.ndarray:
    """(frames, len(STATE_FIELDS)) float32 state of every frame, from a clip's `frame_ground_truth`."""
    angle = truth["angle"]
    return np.stack([truth["x"], truth["y"], np.cos(angle), np.sin(angle), 8.0 * truth["radius"],
                     truth["visible"].astype(float)], axis=1).astype(np.float32)
