"""Progressive Knowledge Distillation (Soufleri et al., 2024): which teacher is active at each epoch.

PKD trains a network's internal classifiers (ICs) with soft cross-entropy against a sequence of teachers over the
epochs. Teacher names used here: "mv" (the motion-vector network's final output), "residual" (the residual
network's final output), "iframe" (the I-frame network's final output) and "self" (the trained network's own final
classifier).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, init=False)
class PKDSchedule:
    """teachers[j] is active for epochs in [milestones[j-1], milestones[j]) (0-based epochs).

    So len(teachers) == len(milestones) + 1, and the teacher switches exactly at each milestone epoch.
    The presets split the training into equal stages (our choice: the paper gives the order, not the lengths).
    """

    milestones: tuple[int, ...]
    teachers: tuple[str, ...]

    def __init__(self, milestones: Sequence[int], teachers: Sequence[str]) -> None:
        milestones, teachers = tuple(int(m) for m in milestones), tuple(teachers)
        if len(teachers) != len(milestones) + 1:
            raise ValueError(f"expected len(teachers) == len(milestones) + 1, got {len(teachers)} teachers "
                             f"{teachers} and {len(milestones)} milestones {milestones}")
        if any(m <= 0 for m in milestones) or any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"milestones: expected strictly increasing positive epochs, got {milestones}")
        object.__setattr__(self, "milestones", milestones)
        object.__setattr__(self, "teachers", teachers)

    def teacher_at(self, epoch: int) -> str:
        """Name of the teacher active during `epoch` (0-based)."""
        if epoch < 0:
            raise ValueError(f"epoch: expected >= 0, got {epoch}")
        return self.teachers[bisect.bisect_right(self.milestones, epoch)]

    def __call__(self, epoch: int) -> str:
        return self.teacher_at(epoch)

    @classmethod
    def staged(cls, epochs: int, teachers: Sequence[str]) -> PKDSchedule:
        """Equal-length stages, one per teacher, over `epochs` epochs: stage j starts at epoch floor(j * epochs / n)."""
        if epochs < len(teachers):
            raise ValueError(f"epochs: {len(teachers)} teacher stages need at least as many epochs, got {epochs}")
        return cls([epochs * j // len(teachers) for j in range(1, len(teachers))], teachers)

    @classmethod
    def progressive(cls, epochs: int) -> PKDSchedule:
        """PKD: MV network, then residual network, then the network's own final classifier."""
        return cls.staged(epochs, ("mv", "residual", "self"))

    @classmethod
    def ending_on_iframe(cls, epochs: int) -> PKDSchedule:
        """PKD variant: MV, then residual, then the I-frame network instead of the network itself."""
        return cls.staged(epochs, ("mv", "residual", "iframe"))

    @classmethod
    def anti_curriculum(cls, epochs: int) -> PKDSchedule:
        """Baseline: the progressive order reversed (own final classifier, residual, MV)."""
        return cls.staged(epochs, ("self", "residual", "mv"))

    @classmethod
    def iframe_only(cls, epochs: int) -> PKDSchedule:
        """Baseline: ordinary single-teacher KD from the I-frame network for all epochs."""
        return cls.staged(epochs, ("iframe",))
