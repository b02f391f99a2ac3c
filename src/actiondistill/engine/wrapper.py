"""The base of datasets that wrap another one and change its items (a class subset, extra targets, teacher inputs).

A wrapper must stay transparent to the Trainer and the evaluation: the same length, `set_epoch` passed down (the
per-epoch frame sampling lives in the wrapped dataset), and every attribute it does not define (`classes`,
`class_texts`, `labels`, ...) read from the wrapped dataset. Subclasses set `self.dataset` and define `__getitem__`.
"""

from __future__ import annotations

from typing import Any


class DatasetWrapper:
    """Length, `set_epoch` and unknown attributes delegated to `self.dataset`."""

    dataset: Any

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (e.g. during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)
