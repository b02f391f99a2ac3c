"""A training dataset whose items also carry their clip's spatial targets, for the multi-task objective."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from actiondistill.engine.wrapper import DatasetWrapper
from actiondistill.spatial.clips import dataset_clip_paths
from actiondistill.spatial.targets import SpatialTargets


class SpatialTargetDataset(DatasetWrapper):
    """`dataset`'s items plus "spatial_targets": {objective: float (concepts,)} of the item's clip.

    Works over pixels (`VideoDataset`) and cached frame embeddings (`FrameFeatureDataset`), bare or inside a
    `ClassSubset`: items are matched to target rows by video file, so targets computed for a whole world serve any
    split. Everything else (classes, class_texts, labels, set_epoch) is the wrapped dataset's.

    Args:
        dataset: the training (or evaluation) dataset.
        targets: CLIP-based (`spatial_targets`) or ground-truth (`ground_truth_targets`) targets covering its clips.
        objectives: the objectives to carry (default all of `targets`).
    """

    def __init__(self, dataset: Any, targets: SpatialTargets, objectives: Sequence[str] | None = None):
        if objectives is not None:
            targets = targets.select(list(objectives))
        self.dataset = dataset
        self.targets = targets
        self.rows = targets.rows(dataset_clip_paths(dataset))
        self.tensors = {name: torch.from_numpy(array) for name, array in targets.targets.items()}

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        row = self.rows[int(item["index"])]  # the sample actually returned (a skipping VideoDataset may substitute)
        item["spatial_targets"] = {name: values[row] for name, values in self.tensors.items()}
        return item
