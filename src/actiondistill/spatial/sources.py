"""Where chapter 4's spatial targets come from: the clips the framework scores and the concepts it scores them for.

SynthActions names its own concepts (the manifest's shape, colour, scene and size lists) and its clips (the
manifest). A real dataset has neither: its clips are the videos of the splits a run trains and tests on, and its
concepts are vocabulary text files (objects.txt, scenes.txt, one concept per line) that the user writes for it.
Chapters 4 and 7 both go through these two functions, so the targets chapter 7 reloads are the ones chapter 4
trained on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from actiondistill.config import TrainConfig
from actiondistill.spatial.clips import ClipList, dataset_clip_paths
from actiondistill.spatial.vocab import MANIFEST_OBJECTIVES, Vocabulary, manifest_vocabularies, read_vocabulary


def chapter_vocabularies(files: Sequence[str | os.PathLike] | None = None, manifest: str | os.PathLike | None = None,
                         objectives: Sequence[str] | None = None) -> dict[str, Vocabulary]:
    """The vocabularies of text files, or else of a SynthActions manifest.

    A relative path is looked up under data/ (your own lists), then under the project root (where
    configs/vocab/objects.txt and scenes.txt ship as starting points). `objectives` keeps only those names (all when
    None), in the given order; a name with no vocabulary is an error.
    """
    from actiondistill.frame_cache import manifest_file
    from actiondistill.io import read_json

    if files:
        paths = [vocabulary_path(f) for f in files]
        found = {v.name: v for v in map(read_vocabulary, paths)}
        if len(found) != len(paths):
            raise ValueError(f"vocabulary files {[str(p) for p in paths]}: two share a file stem, which names the "
                             "objective; rename one")
    elif manifest is not None:
        found = manifest_vocabularies(read_json(manifest_file(manifest)), objectives or MANIFEST_OBJECTIVES)
    else:
        raise ValueError("vocabularies: a real dataset needs vocabulary files (e.g. data/vocab/hmdb51/objects.txt "
                         "and scenes.txt, one concept per line); only a SynthActions manifest brings its own")
    names = list(objectives) if objectives is not None else list(found)
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"objectives {missing}: no vocabulary of that name (have {sorted(found)})")
    return {n: found[n] for n in names}


def vocabulary_path(file: str | os.PathLike) -> Path:
    """An absolute path as given; a relative one under data/ when it is there, else under the project root."""
    from actiondistill.paths import data_dir, project_root

    path = Path(file)
    if path.is_absolute():
        return path
    mine = data_dir() / path
    return mine if mine.exists() or not (project_root() / path).exists() else project_root() / path


def dataset_clips(cfg: TrainConfig, splits: Sequence[str] | None = None) -> ClipList:
    """Every video of a real-data run's train and test splits (or `splits`): what the framework scores.

    A SynthActions config gives its manifest's clips (every split), as the frame-feature cache keys them.
    """
    from actiondistill.paths import data_dir
    from actiondistill.train import build_dataset

    if cfg.data.dataset not in ("hmdb51", "ucf101"):
        manifest = Path(cfg.data.manifest)
        return ClipList.from_manifest(manifest if manifest.is_absolute() else data_dir() / manifest)
    wanted = list(splits or dict.fromkeys([cfg.data.train_split, cfg.data.test_split]))
    paths = [p for split in wanted for p in dataset_clip_paths(build_dataset(cfg, split, train=False))]
    return ClipList.from_paths(paths)
