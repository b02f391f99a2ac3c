"""Where a profile's videos come from: the cached synthetic world, or HMDB51/UCF101 placed under data/.

Chapters ask for data by the profile's `dataset` name; expensive generation happens once and is
shared by every chapter (the cache key is everything that determines the generated clips).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from actiondistill.data.synth_world import DEFAULT_WORLD
from actiondistill.io import read_json
from actiondistill.paths import data_dir

log = logging.getLogger(__name__)

REAL_DATASETS = ("hmdb51", "ucf101")


def synthactions_dir(videos: int, size: int, frames: int, seed: int = 0, root: Path | None = None,
                     world: str = DEFAULT_WORLD) -> Path:
    """The cache folder of one generated world; its name records the generation parameters and the preset."""
    return (root or data_dir() / "synthactions") / f"{world}_n{videos}_s{size}_f{frames}_seed{seed}"


def synthactions_manifest(videos: int, size: int = 64, frames: int = 32, seed: int = 0, progress: bool = True,
                          root: Path | None = None, world: str = DEFAULT_WORLD) -> Path:
    """Generate the synthetic world of preset `world` once (resuming an interrupted one); return its manifest path.

    A cached world rendered by an older revision of its preset (`WorldPreset.revision`) is rendered again, and one
    split by an older plan (`SPLIT_PLAN`) is split again over the same clip files: this folder is the project's own
    cache, and every cache keyed by the manifest follows the new one's bytes.
    """
    from actiondistill.data.synthetic import MANIFEST, PARAMS, SPLIT_PLAN, generate, manifest_revision, world_preset

    revision = world_preset(world).revision
    out = synthactions_dir(videos, size, frames, seed, root, world)
    manifest = out / MANIFEST
    cached = read_json(manifest) if manifest.is_file() else None
    if cached is not None and manifest_revision(cached) != revision:
        log.warning("%s: rendered by an older revision of the %r world; rendering revision %d", out, world, revision)
        shutil.rmtree(out)
    elif cached is not None and cached.get("split_plan", 1) != SPLIT_PLAN:
        log.warning("%s: split by an older plan; splitting it again (the clips are kept)", out)
        manifest.unlink()
        (out / PARAMS).unlink(missing_ok=True)
    if not manifest.is_file():
        generate(out, videos=videos, size=size, frames=frames, seed=seed, progress=progress, world=world)
    return manifest


def real_dataset_root(dataset: str, data_root: str | Path | None = None) -> Path:
    """Resolve a real dataset's folder (relative paths are under data/) and say what to place if it is missing."""
    if dataset not in REAL_DATASETS:
        raise ValueError(f"dataset {dataset!r}: expected one of {REAL_DATASETS} or 'synthactions'")
    root = Path(data_root or dataset)
    if not root.is_absolute():
        root = data_dir() / root
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: {dataset} is not there; place it as README.md ('Real datasets') and data/README.md describe"
        )
    return root
