"""Frozen teachers for distillation, and an optional on-disk cache of their outputs.

A teacher never trains: its parameters have requires_grad False and it stays in eval mode (dropout off, batch
norm statistics fixed) even when a parent module or the Trainer calls `.train()`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from actiondistill.engine.distributed import all_gather_objects
from actiondistill.io import atomic_save

log = logging.getLogger(__name__)


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def freeze(model: nn.Module) -> nn.Module:
    """Make `model` a frozen teacher in place: no gradients, eval mode, and `.train()` keeps it in eval mode."""
    for p in model.parameters():
        p.requires_grad_(False)
    model.train = types.MethodType(_stay_in_eval, model)
    return model.eval()


class TeacherCache:
    """Teacher outputs keyed by dataset index, kept in memory and persisted to one file.

    Valid only when the teacher's input for a given index is the same every epoch, i.e. deterministic
    (eval-style) sampling and transforms: a random crop or a random frame per segment makes the cached output
    belong to another view of the clip. `check_deterministic` refuses datasets whose item changes between epochs.
    The file name is a hash of `fingerprint` (teacher, data, class texts), so runs that share those share the cache.
    """

    def __init__(self, directory: str | Path, fingerprint: dict[str, Any]):
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.path = Path(directory) / f"{digest}.pt"
        self.fingerprint = fingerprint
        self.outputs: dict[int, Tensor] = {}
        self._new: dict[int, Tensor] = {}
        if self.path.is_file():
            stored = torch.load(self.path, map_location="cpu", weights_only=True)
            self.outputs = {int(k): v for k, v in stored["outputs"].items()}
            log.info("teacher cache %s: %d outputs loaded", self.path, len(self.outputs))

    @staticmethod
    def check_deterministic(dataset: Any, name: str = "dataset") -> None:
        """Refuse a dataset whose first item differs between epochs (random sampling or augmentation)."""
        if len(dataset) == 0:
            return
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(0)
            first = dataset[0]["frames"]
            dataset.set_epoch(1)
            second = dataset[0]["frames"]
            dataset.set_epoch(0)
        else:
            first, second = dataset[0]["frames"], dataset[0]["frames"]
        if not torch.equal(torch.as_tensor(first), torch.as_tensor(second)):
            raise ValueError(
                f"{name}: teacher output caching needs deterministic inputs (eval-style frame sampling and "
                "transforms), but item 0 differs between epochs; set cache_outputs: false or use eval sampling"
            )

    def lookup(self, indices: Tensor, compute: Any, device: torch.device) -> Tensor:
        """Cached outputs for `indices`; `compute(mask)` gives the outputs of the rows in `mask` that are missing."""
        keys = [int(i) for i in indices.tolist()]
        missing = torch.tensor([k not in self.outputs for k in keys], dtype=torch.bool)
        if missing.any():
            fresh = compute(missing.to(device)).detach().float().cpu()
            for key, row in zip([k for k, m in zip(keys, missing.tolist()) if m], fresh):
                self.outputs[key] = row.clone()
                self._new[key] = self.outputs[key]
        return torch.stack([self.outputs[k] for k in keys]).to(device)

    def flush(self, write: bool) -> None:
        """Share this epoch's new outputs between ranks and (on the writing rank) persist the cache atomically."""
        parts = all_gather_objects(self._new)
        self._new = {}
        for part in parts:
            self.outputs.update(part)
        if write and any(parts):
            atomic_save(self.path, lambda p: torch.save({"fingerprint": self.fingerprint, "outputs": self.outputs}, p))


class Teacher:
    """A named frozen model an objective can ask for logits, optionally through a `TeacherCache`."""

    def __init__(self, name: str, model: nn.Module, cache: TeacherCache | None = None):
        self.name = name
        self.model = freeze(model)
        self.cache = cache

    def to(self, device: torch.device) -> Teacher:
        self.model.to(device)
        return self

    @torch.no_grad()
    def logits(self, frames: Tensor, class_texts: Sequence[str], index: Tensor | None = None) -> Tensor:
        """Teacher logits (B, C) of `frames` against `class_texts`; cached per dataset `index` when caching.

        With a cache, `class_texts` must be the texts the cache was made for (they are part of its fingerprint).
        """
        if self.cache is None:
            return self.model(frames, list(class_texts))
        if index is None:
            raise ValueError(f"teacher {self.name!r}: a cached teacher needs the batch's dataset indices")
        expected = self.cache.fingerprint.get("class_texts")
        if expected is not None and list(class_texts) != list(expected):
            raise ValueError(f"teacher {self.name!r}: cache made for other class texts than the ones asked for")
        return self.cache.lookup(index, lambda mask: self.model(frames[mask], list(class_texts)), frames.device)

    __call__ = logits
