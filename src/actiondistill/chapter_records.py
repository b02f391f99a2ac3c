"""A chapter's outcome record, data/results/<stem>-<key>.json: written by the chapter, read by later chapters.

Chapter 2 records the teacher (`teacher_choice`), 3 the backbone swap, 4 spatial distillation, 5 two-headed DeiT
and 7 the final table; each module keeps its own `results_path` / `read_results` names on top of these two.

The key is the book profile's name when the book runner ran the chapter (it passes the chapter the parameter
`record_key`), so `zeroshot` and the next build find the book's records by profile. A chapter run by hand (papermill,
other parameters) keys its records by the profile and the world it ran on (`record_name`): re-running chapter 2 on
another world seed then writes records of its own, which that run's later chapters read, and never the book's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def record_name(profile: str, given: str | None, dataset: str, world: str = "standard", videos: int = 0,
                size: int = 0, frames: int = 0, seed: int = 0) -> str:
    """The key a chapter's records go under: `given` (the book runner's profile name) when set, else the profile
    and the world: `<profile>-<world>_n<videos>_s<size>_f<frames>_seed<seed>` on SynthActions (the world folder's
    name), `<profile>-<dataset>` on a real dataset."""
    if given:
        return given
    if dataset == "synthactions":
        return f"{profile}-{world}_n{videos}_s{size}_f{frames}_seed{seed}"
    return f"{profile}-{dataset}"


def record_path(stem: str, profile: str, results_dir: str | os.PathLike | None = None) -> Path:
    """`<results_dir>/<stem>-<profile>.json` (default data/results)."""
    from actiondistill.paths import results_dir as default_results

    return Path(results_dir or default_results()) / f"{stem}-{profile}.json"


def read_record(stem: str, profile: str, chapter: str, what: str,
                results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The record, or an error saying which chapter (`chapter`, e.g. "04_spatial") to run first and how."""
    from actiondistill.io import read_json
    from actiondistill.paths import project_root

    path = record_path(stem, profile, results_dir)
    if not path.is_file():
        number = int(chapter.split("_")[0])
        if (project_root() / "book" / "params" / f"{profile}.yaml").is_file():
            how = f"python -m actiondistill book --profile {profile} --only {chapter}"
        else:  # the records key of a chapter run by hand: its profile and world, not a profile name
            how = (f"papermill book/{chapter}.ipynb out.ipynb with this chapter's profile and world parameters, or "
                   f"-p record_key {profile}")
        raise FileNotFoundError(f"{path}: no {what} under the records key {profile!r} yet; run chapter {number} "
                                f"first ({how})")
    return read_json(path)
