"""A dataset viewed through a subset of its classes, with labels renumbered into that subset.

The synthetic world's manifest lists every class, seen and held-out; a model trained on the seen classes must
be trained and tested against the seen class texts only, and the zero-shot split scored against the held-out
class texts only (its labels renumbered to index them). Wrapping keeps the underlying dataset untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actiondistill.engine.wrapper import DatasetWrapper


class ClassSubset(DatasetWrapper):
    """`dataset` restricted to `class_ids` (indices into `dataset.classes`); item labels index the subset."""

    def __init__(self, dataset: Any, class_ids: Sequence[int], name: str = "dataset"):
        self.dataset = dataset
        self.class_ids = [int(c) for c in class_ids]
        self._remap = {c: i for i, c in enumerate(self.class_ids)}
        if len(self._remap) != len(self.class_ids):
            raise ValueError(f"{name}: class ids {self.class_ids} repeat a class")
        outside = sorted({label for label in getattr(dataset, "labels", []) if label not in self._remap})
        if outside:
            raise ValueError(f"{name}: labels {outside[:10]} are not among the classes {self.class_ids[:10]}...")

    @property
    def classes(self) -> list[str]:
        return [self.dataset.classes[c] for c in self.class_ids]

    @property
    def class_texts(self) -> list[str]:
        texts = getattr(self.dataset, "class_texts", None) or self.dataset.classes
        return [texts[c] for c in self.class_ids]

    @property
    def labels(self) -> list[int]:
        return [self._remap[label] for label in self.dataset.labels]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        label = int(item["label"])
        if label not in self._remap:
            raise ValueError(f"item {index}: label {label} is not among the classes {self.class_ids[:10]}...")
        item["label"] = self._remap[label]
        return item
