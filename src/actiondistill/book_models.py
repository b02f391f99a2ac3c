"""The weights a user runs: the book's trained models, found through the chapter records, or any weight file.

`zeroshot`, `export` and the live widget must never run random weights without saying so. By default they use a
model the book trained: the student of chapter 3 (the teacher's head on the TinyCLIP-distilled CLIP) or, on
request, chapter 2's teacher. Both were trained on the embedded synthetic world, so they know its labels, not real
actions; `WeightsChoice.knows` says that in one line. A run folder, a chapter record or a weight file beside its
run's `config.yaml` brings its own model, backbone and options, so no `--backbone` has to be guessed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actiondistill.io import file_sha256

#: role -> (the stem of the chapter record that names its weights, the chapter that writes it)
ROLES: dict[str, tuple[str, str]] = {
    "student": ("backbone_swap", "03_backbone"),
    "teacher": ("teacher_choice", "02_teacher"),
}
SYNTHETIC_KNOWLEDGE = "trained on the synthetic world: its labels, not real actions"
RUN_CONFIG = "config.yaml"
RUN_WEIGHTS = ("model.pt", "checkpoint.pt")


@dataclass
class WeightsChoice:
    """Which weights a model is built with, and what a user should expect of them."""

    source: str  # "book student", "book teacher", "checkpoint", "pretrained backbone", "random"
    file: Path | None = None
    stored: dict[str, Any] = field(default_factory=dict)  # the run's config: model name, backbone, options, frames
    knows: str = ""
    detail: str = ""  # e.g. "chapter 3, profile embedded, seed 0"

    def summary(self) -> dict[str, Any]:
        """What the CLI's JSON records: the file and its SHA-256, so a result can be traced to its weights."""
        return {"source": self.source, "file": None if self.file is None else str(self.file),
                "sha256": None if self.file is None else file_sha256(self.file), "knows": self.knows,
                "detail": self.detail}

    def line(self) -> str:
        """One line for a human: which weights, from where, and what they know."""
        where = f" ({self.detail})" if self.detail else ""
        name = f" {self.file}" if self.file is not None else ""
        return f"weights: {self.source}{where}{name}; {self.knows}"


def book_weights(role: str = "student", profile: str = "embedded", seed: int = 0,
                 results_dir: str | os.PathLike | None = None) -> WeightsChoice:
    """The book's trained `role` ("student" or "teacher") of `profile`, from its chapter record.

    Raises FileNotFoundError naming the chapter to run when the book has not been built for this profile.
    """
    from actiondistill.chapter_records import read_record

    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {sorted(ROLES)}")
    stem, chapter = ROLES[role]
    record = read_record(stem, profile, chapter, f"trained {role}", results_dir)
    weights = _record_weights(record, seed, f"{stem}-{profile}.json")
    choice = weights_file_choice(weights)
    choice.source = f"book {role}"
    choice.detail = f"chapter {int(chapter[:2])}, profile {profile}, seed {seed}"
    return choice


def checkpoint_choice(path: str | os.PathLike) -> WeightsChoice:
    """What `--checkpoint PATH` names: a run folder, a chapter record (.json), or a weight file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--checkpoint {path}: no such file or folder")
    if path.is_dir():
        found = [path / name for name in RUN_WEIGHTS if (path / name).is_file()]
        if not found:
            raise FileNotFoundError(f"--checkpoint {path}: a folder without {' or '.join(RUN_WEIGHTS)}; expected a "
                                    "Trainer run folder")
        return weights_file_choice(found[0])
    if path.suffix == ".json":
        from actiondistill.io import read_json

        record = read_json(path)
        if not isinstance(record, Mapping):
            raise ValueError(f"--checkpoint {path}: expected a chapter record (a JSON object with weights)")
        choice = weights_file_choice(_record_weights(record, 0, str(path)))
        choice.detail = f"from {path.name}, seed 0"
        return choice
    return weights_file_choice(path)


def weights_file_choice(path: str | os.PathLike) -> WeightsChoice:
    """A weight file, with its run's config.yaml when it sits in a run folder (the Trainer writes both)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the weight file is missing (was its run folder deleted? re-run its "
                                "chapter)")
    stored: dict[str, Any] = {}
    config = path.parent / RUN_CONFIG
    if config.is_file():
        import yaml

        loaded = yaml.safe_load(config.read_text(encoding="utf-8"))
        stored = loaded if isinstance(loaded, dict) else {}
    return WeightsChoice("checkpoint", path, stored, knows=knowledge_of(stored))


def _record_weights(record: Mapping[str, Any], seed: int, name: str) -> Path:
    """The weight file of `seed` in a chapter record: the teacher's (`weights`) or the chosen student's
    (`best.weights`), keyed by seed."""
    holder = record.get("best") if isinstance(record.get("best"), Mapping) else record
    weights = holder.get("weights") if isinstance(holder, Mapping) else None
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"{name}: no weights recorded; expected a chapter 2 or 3 record")
    key = str(seed) if str(seed) in weights else sorted(weights)[0]
    return Path(weights[key])


def knowledge_of(stored: Mapping[str, Any]) -> str:
    """What a run's weights know, from its config's dataset."""
    data = stored.get("data") if isinstance(stored.get("data"), Mapping) else {}
    dataset = data.get("dataset")
    if dataset == "synthactions":
        return SYNTHETIC_KNOWLEDGE
    return f"trained on {dataset}" if dataset else "trained weights of unknown origin"
