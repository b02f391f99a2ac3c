"""Extra frame-caption pairs for CLIP pretraining: clips rendered only for it, never part of the world's splits.

The embedded world has a few hundred training clips, i.e. a few thousand distinct frames, which a ViT memorises
long before it learns where the small main object is. Because the world is procedural, more pairs cost only
rendering: a pool clip is drawn from a seed stream disjoint from the world's clips (`pool_seed`), from the seen
classes only (frame captions never name the action, but held-out compositions stay unseen all the same), then
H.264-encoded and decoded exactly like the world's clips, so pool frames carry the same codec artefacts as the
frames the CLIPs are tested on.

`render_pool` returns what `decode_frames` returns plus manifest-style clip entries; `with_pool` appends them to a
manifest so `FrameCaptionDataset` reads world and pool frames alike.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from actiondistill.io import cached_arrays
from actiondistill.parallel import map_jobs

#: The split name pool clips carry in their manifest-style entries.
POOL_SPLIT = "pretrain-pool"
# SeedSequence reads its entropy list as one integer, so trailing zero words vanish ([s, j, 0] == [s, j]). A nonzero
# last word makes SeedSequence([s, j, _POOL_STREAM]) differ from every world clip's SeedSequence([s, i]).
_POOL_STREAM = 0x706F6F6C  # "pool"


def pool_seed(world_seed: int, index: int) -> int:
    """The seed of pool clip `index` of a world: independent of every world clip and every other pool clip."""
    return int(np.random.SeedSequence([world_seed, index, _POOL_STREAM]).generate_state(1)[0])


def pool_clips(manifest: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Manifest-style entries of `count` pool clips, labels cycling over the seen classes."""
    from actiondistill.data.synthetic import caption, manifest_world, sample_spec

    seen = manifest["classes"][: manifest["num_seen_classes"]]
    entries = []
    for j in range(count):
        spec = sample_spec(pool_seed(manifest["seed"], j), seen[j % len(seen)], manifest_world(manifest))
        entries.append({"label": j % len(seen), "label_text": spec.label, "caption": caption(spec),
                        "attributes": spec.attributes(), "split": POOL_SPLIT, "seed": spec.seed})
    return entries


def _render_decode(job: tuple[dict[str, Any], dict[str, Any], list[int]]) -> np.ndarray:
    """Frames `indices` of one pool clip after an H.264 round trip with the world's encoder options."""
    from actiondistill.data.encode import write_video
    from actiondistill.data.synthetic import ENCODER_OPTIONS, clip_spec, render_clip
    from actiondistill.data.video import open_video

    manifest, entry, indices = job
    video = render_clip(clip_spec(manifest, entry), manifest["size"], manifest["frames"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_video(path, video, fps=manifest["fps"], options=ENCODER_OPTIONS)
        with open_video(path) as reader:
            return reader.read(indices)


def render_pool(manifest: dict[str, Any], count: int, per_clip: int, workers: int | None = None,
                progress: bool = True) -> dict[str, Any]:
    """`per_clip` frames (segment centres) of `count` pool clips at the world's size and length.

    Returns {"frames": uint8 (N, H, W, 3), "pool_clip": (N,) index into "clips", "frame": (N,) frame index,
    "clips": the manifest-style entries}.
    """
    from actiondistill.data.synthetic import manifest_world
    from actiondistill.pretrain.frames import frame_indices

    if count < 1:
        raise ValueError(f"pool clips: {count}; expected at least 1")
    clips = pool_clips(manifest, count)
    indices = frame_indices(manifest["frames"], per_clip)
    header = {key: manifest[key] for key in ("size", "frames", "fps")} | {"world": manifest_world(manifest)}
    jobs = [(header, entry, indices) for entry in clips]
    bar = tqdm(total=len(jobs), desc="render pool", unit="clip", disable=not progress)
    parts = map_jobs(_render_decode, jobs, workers or os.cpu_count() or 1, bar)
    bar.close()
    return {"frames": np.concatenate(parts), "pool_clip": np.repeat(np.arange(count, dtype=np.int64), per_clip),
            "frame": np.tile(np.array(indices, dtype=np.int64), count), "clips": clips}


def cached_pool(cache: str | os.PathLike, manifest: dict[str, Any], count: int, per_clip: int,
                workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """`render_pool`, read from the .npz file `cache` when it was made for the same world, count and frames."""
    from actiondistill.data.synthetic import manifest_world

    stamp = {"world_seed": manifest["seed"], "world": manifest_world(manifest), "size": manifest["size"],
             "frames": manifest["frames"],
             "count": count, "per_clip": per_clip}

    def render() -> dict[str, np.ndarray]:
        pool = render_pool(manifest, count, per_clip, workers, progress)
        return {key: pool[key] for key in ("frames", "pool_clip", "frame")}

    return {**cached_arrays(cache, stamp, render, "pool made"), "clips": pool_clips(manifest, count)}


def with_pool(manifest: dict[str, Any], pool: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    """(manifest with the pool's entries appended to its clips, the pool frames' clip indices in it)."""
    merged = {**manifest, "clips": list(manifest["clips"]) + list(pool["clips"])}
    return merged, pool["pool_clip"] + len(manifest["clips"])
