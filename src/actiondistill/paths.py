"""Where the project keeps its files: one place, so that every module and chapter agrees."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root (holding `_toc.yml`): the package is installed editable from `src/`.

    Falls back to the current directory when the package is installed elsewhere, so that a
    researcher running from a checkout still finds `book/` and `data/`.
    """
    here = Path(__file__).resolve().parents[2]
    if (here / "_toc.yml").exists():
        return here
    return Path.cwd()


def data_dir() -> Path:
    """Root of datasets, caches and results; `ACTIONDISTILL_DATA` moves it (e.g. to a big disk)."""
    env = os.environ.get("ACTIONDISTILL_DATA")
    return Path(env) if env else project_root() / "data"


def display_path(path: str | os.PathLike) -> str:
    """`path` as a reader would type it: relative to the project root when it lies under it, else absolute (the
    data folder can live elsewhere, `ACTIONDISTILL_DATA`)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(project_root().resolve()))
    except ValueError:
        return str(path)


def results_dir() -> Path:
    return data_dir() / "results"
