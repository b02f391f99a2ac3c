"""A chapter's outcome record, data/results/<stem>-<profile>.json: written by the chapter, read by later chapters.

Chapter 2 records the teacher (`teacher_choice`), 3 the backbone swap, 4 spatial distillation, 5 two-headed DeiT
and 7 the final table; each module keeps its own `results_path` / `read_results` names on top of these two.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def record_path(stem: str, profile: str, results_dir: str | os.PathLike | None = None) -> Path:
    """`<results_dir>/<stem>-<profile>.json` (default data/results)."""
    from actiondistill.paths import results_dir as default_results

    return Path(results_dir or default_results()) / f"{stem}-{profile}.json"


def read_record(stem: str, profile: str, chapter: str, what: str,
                results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The record, or an error saying which chapter (`chapter`, e.g. "04_spatial") to run first and how."""
    from actiondistill.io import read_json

    path = record_path(stem, profile, results_dir)
    if not path.is_file():
        number = int(chapter.split("_")[0])
        raise FileNotFoundError(f"{path}: no {what} for profile {profile!r} yet; run chapter {number} "
                                f"(python -m actiondistill book --profile {profile} --only {chapter})")
    return read_json(path)
