"""Time reversal as a training augmentation: a clip played backwards, labelled with the action it then shows.

Why: a label set closed under playing backwards (every SynthActions action has a reversal: "moving left" backwards is
"moving right", "growing" is "shrinking", "blinking" is itself) gets a second, genuine training clip out of every
clip. The world renders reversals constructively (`synth_world.reversed_spec`: a reversed clip is, bit for bit,
another valid clip of the reversed action), so this adds data, not noise; it is the temporal counterpart of the
horizontal flip with left/right labels swapped that Something-Something models use. Real datasets' actions mostly
have no reversal ("eat" backwards is no HMDB51 class), so the option names the classes it cannot map.

The wrapper is the Trainer's outermost one: every per-frame tensor of an item ("frames", and the teacher's
"teacher_frames" of a distillation run) is reversed together, so a student and its teacher see the same clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from actiondistill.engine.wrapper import DatasetWrapper

#: The items' per-frame entries (time is their first axis), reversed together.
FRAME_KEYS = ("frames", "teacher_frames")
_STREAM = 0x7E5  # keeps the reversal draws apart from the frame sampler's, which use (seed, epoch, index)


def reversal_map(classes: Sequence[str]) -> list[int]:
    """For each class, the index of the class it shows when played backwards (itself when symmetric in time).

    Known for SynthActions' actions (`synth_world.reverse_action`); any other class, or a reversal outside
    `classes`, is an error naming it.
    """
    from actiondistill.data.synth_world import action_classes, reverse_action

    known = set(action_classes())
    index = {name: i for i, name in enumerate(classes)}
    out = []
    for name in classes:
        if name not in known:
            raise ValueError(f"data.time_reversal: class {name!r} has no known reversal (only SynthActions' actions "
                             "have one); set data.time_reversal: 0")
        reverse = reverse_action(name) or name
        if reverse not in index:
            raise ValueError(f"data.time_reversal: class {name!r} plays backwards as {reverse!r}, which is not among "
                             "the training classes")
        out.append(index[reverse])
    return out


class TimeReversed(DatasetWrapper):
    """`dataset`'s items, each played backwards with probability `probability` (drawn from (seed, epoch, index)),
    its label then swapped for its reversal's.

    Args:
        dataset: a training dataset whose items' "frames" have time first and whose `classes` all have reversals.
        probability: the chance that an item is reversed, in (0, 1].
        seed: base of the per-item draws (the run's seed).
    """

    def __init__(self, dataset: Any, probability: float, seed: int = 0):
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"data.time_reversal={probability!r}: expected a probability in (0, 1] (0 turns it off)")
        self.dataset = dataset
        self.probability = float(probability)
        self.seed = int(seed)
        self.epoch = 0
        self.label_map = reversal_map(list(dataset.classes))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        super().set_epoch(epoch)

    def reversed(self, index: int) -> bool:
        """Whether item `index` plays backwards this epoch."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index), _STREAM]))
        return bool(rng.random() < self.probability)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        if not self.reversed(index):
            return item
        for key in FRAME_KEYS:
            if key in item:
                item[key] = torch.flip(item[key], dims=(0,))
        item["label"] = self.label_map[int(item["label"])]
        return item


def check_teachers(probability: float, cached: Sequence[str]) -> None:
    """Refuse reversal with teachers whose logits are cached per clip: a cached logit is the forward clip's."""
    if probability and cached:
        raise ValueError(f"data.time_reversal={probability!r} with teacher(s) {list(cached)} caching their outputs "
                         "(cache_outputs: true): a cached logit is of the clip played forwards; turn one of them off")
