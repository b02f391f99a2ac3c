"""Vocabularies of spatial concepts: what a frozen CLIP is asked about each frame, and how its answers become targets.

A vocabulary is one spatial objective of the multi-task student: a list of concepts (the values of the synthetic
world's shape, colour, scene or size attribute; or, for a real dataset, the lines of objects.txt / scenes.txt), the
prompt templates that write each concept into text (a prompt ensemble: several templates per concept, their text
embeddings averaged), and whether the objective is single-label (one concept per clip: softmax over concepts, KL
loss) or multi-label (any number of concepts per clip: an independent presence probability per concept, BCE loss).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from actiondistill.models.prompts import validate_labels, validate_templates

#: The attributes of the synthetic world that have prompts (`distractors` and `occluded` are not things to name).
MANIFEST_OBJECTIVES = ("shape", "colour", "scene", "size")
#: Prompt ensembles of the world's attributes beyond `actiondistill.pretrain.zeroshot.ZERO_SHOT_PROMPTS` (which
#: covers shape, colour and scene in the phrasing the embedded CLIPs were pretrained on).
EXTRA_ATTRIBUTE_TEMPLATES: dict[str, tuple[str, ...]] = {"size": ("a {} object", "a photo of a {} object")}
#: Defaults for vocabulary files, by file stem: real-data objects co-occur (multi-label), a scene is one place.
FILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "objects": {"templates": ("a photo of a {}.", "a photo of the {}.", "a video frame showing a {}.",
                              "there is a {} in the scene."), "multi_label": True},
    "scenes": {"templates": ("a photo of a {}.", "a photo taken in a {}.", "a video recorded in a {}.",
                             "the background is a {}."), "multi_label": False},
}
GENERIC_TEMPLATES = ("a photo of a {}.", "a photo of the {}.", "a video frame of a {}.")
#: The "absent" side of a multi-label concept: its probability is a two-way softmax of concept vs these prompts.
DEFAULT_NEGATIVES = ("a photo.", "a photo of something.")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Vocabulary:
    """One spatial objective.

    Args:
        name: the objective's name (a letter, then letters, digits or '_': it names a model head and metrics).
        concepts: the classes (blank or duplicate concepts are refused).
        templates: prompt templates with one '{}' each; every concept is written into every template.
        phrases: the text put into the templates per concept (default: the concept itself), e.g. the scene
            "beach" is phrased "on the beach".
        multi_label: True for objectives where several concepts can hold at once (sigmoid-style targets, BCE).
        negatives: multi-label only: prompts of "none of the concepts", the other side of each concept's
            presence probability.
    """

    name: str
    concepts: tuple[str, ...]
    templates: tuple[str, ...]
    phrases: tuple[str, ...] | None = None
    multi_label: bool = False
    negatives: tuple[str, ...] = field(default=DEFAULT_NEGATIVES)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"vocabulary name {self.name!r}: expected a letter followed by letters, digits or '_' "
                             "(it names a model head)")
        object.__setattr__(self, "concepts", tuple(validate_labels(list(self.concepts))))
        object.__setattr__(self, "templates", validate_templates(list(self.templates)))
        if self.phrases is not None:
            phrases = tuple(self.phrases)
            if len(phrases) != len(self.concepts):
                raise ValueError(f"vocabulary {self.name!r}: {len(phrases)} phrases for {len(self.concepts)} concepts")
            object.__setattr__(self, "phrases", phrases)
        negatives = tuple(self.negatives)
        if self.multi_label and (not negatives or not all(isinstance(n, str) and n.strip() for n in negatives)):
            raise ValueError(f"vocabulary {self.name!r}: a multi-label vocabulary needs non-empty negative prompts")
        object.__setattr__(self, "negatives", negatives)

    def __len__(self) -> int:
        return len(self.concepts)

    def prompts(self, index: int) -> list[str]:
        """Every template applied to concept `index` (its prompt ensemble)."""
        phrase = self.phrases[index] if self.phrases is not None else self.concepts[index]
        return [template.format(phrase) for template in self.templates]

    def all_prompts(self) -> list[str]:
        """Concept-major: rows c * len(templates) .. (c + 1) * len(templates) - 1 belong to concept c."""
        return [prompt for c in range(len(self)) for prompt in self.prompts(c)]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def attribute_templates() -> dict[str, tuple[str, ...]]:
    """Prompt ensembles of the synthetic world's attributes: the embedded CLIPs' zero-shot prompts, plus size."""
    from actiondistill.pretrain.zeroshot import ZERO_SHOT_PROMPTS

    return {**ZERO_SHOT_PROMPTS, **EXTRA_ATTRIBUTE_TEMPLATES}


def manifest_vocabularies(manifest: Mapping[str, Any], attributes: Sequence[str] = MANIFEST_OBJECTIVES,
                          templates: Mapping[str, Sequence[str]] | None = None) -> dict[str, Vocabulary]:
    """One single-label vocabulary per attribute of a SynthActions manifest (its `attributes` lists, in order).

    `templates` overrides the prompt ensemble of some attributes. Scenes are phrased as the captions place them
    ("on the beach").
    """
    from actiondistill.data.synth_world import SCENES

    available = manifest.get("attributes") if isinstance(manifest, Mapping) else None
    if not isinstance(available, Mapping):
        raise ValueError("manifest: no 'attributes' vocabularies (expected a SynthActions manifest)")
    prompts = {**attribute_templates(), **{k: tuple(v) for k, v in (templates or {}).items()}}
    out = {}
    for name in attributes:
        if name not in available:
            raise ValueError(f"attribute {name!r}: not in the manifest's attributes {sorted(available)}")
        if name not in prompts:
            raise ValueError(f"attribute {name!r}: no prompt templates; pass templates={{{name!r}: [...]}} or use "
                             f"one of {sorted(prompts)}")
        values = [str(v) for v in available[name]]
        phrases = tuple(SCENES.get(v, v) for v in values) if name == "scene" else None
        out[name] = Vocabulary(name, tuple(values), tuple(prompts[name]), phrases=phrases)
    return out


def read_vocabulary(path: str | os.PathLike, name: str | None = None, templates: Sequence[str] | None = None,
                    multi_label: bool | None = None, negatives: Sequence[str] = DEFAULT_NEGATIVES) -> Vocabulary:
    """A vocabulary from a text file of one concept per line (blank lines and '#' comments are ignored).

    The name defaults to the file's stem; templates and multi-label default by stem (`FILE_DEFAULTS`: objects.txt
    is multi-label, scenes.txt single-label; other files single-label with generic photo prompts).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such vocabulary file (expected a text file with one concept per line, "
                                "e.g. objects.txt or scenes.txt)")
    seen: dict[str, int] = {}
    concepts = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key = text.casefold()
        if key in seen:
            raise ValueError(f"{file}:{number}: concept {text!r} repeats line {seen[key]} (concepts are compared "
                             "case-insensitively; each must appear once)")
        seen[key] = number
        concepts.append(text)
    if not concepts:
        raise ValueError(f"{file}: no concepts (expected one concept per line; blank lines and '#' comments do not "
                         "count)")
    name = name or file.stem
    defaults = FILE_DEFAULTS.get(name, {"templates": GENERIC_TEMPLATES, "multi_label": False})
    return Vocabulary(name, tuple(concepts), tuple(templates or defaults["templates"]),
                      multi_label=defaults["multi_label"] if multi_label is None else multi_label,
                      negatives=tuple(negatives))


def as_vocabularies(vocabularies: Mapping[str, Vocabulary] | Sequence[Vocabulary]) -> dict[str, Vocabulary]:
    """{name: vocabulary}, refusing two vocabularies of one name."""
    items = list(vocabularies.values()) if isinstance(vocabularies, Mapping) else list(vocabularies)
    if not items:
        raise ValueError("vocabularies: expected at least one")
    out: dict[str, Vocabulary] = {}
    for vocab in items:
        if not isinstance(vocab, Vocabulary):
            raise ValueError(f"vocabularies: expected Vocabulary objects, got {type(vocab).__name__}")
        if vocab.name in out:
            raise ValueError(f"vocabularies: two are named {vocab.name!r}")
        out[vocab.name] = vocab
    return out
