"""Training steps of the compressed track: cross-entropy on internal classifiers (ICs), and PKD.

Both call the model as `model(batch["iframe"], batch["mv"], batch["residual"])` and expect
{modality: [IC1, IC2, IC3, IC4 logits]} back: a `CompressedTriplet` on decoded inputs, or `ICHeads` on cached
stage features (the same outputs without the backbone pass). `exits` name the ICs (1-4, IC4 = the final
classifier) a loss covers; the loss is the mean over the chosen exits of every network, so losses over different
exit sets stay on one scale. Registered with the Trainer's objective registry on import of `actiondistill.pkd`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actiondistill.engine.objectives import register_objective
from actiondistill.engine.teachers import Teacher
from actiondistill.losses import PKDSchedule, soft_cross_entropy
from actiondistill.models.compressed_nets import MODALITIES

ALL_EXITS = (1, 2, 3, 4)
#: The ICs a frozen backbone leaves to train (IC4, the final classifier, is the pretrained network's own fc).
INTERNAL_EXITS = (1, 2, 3)
#: PKD's teacher names: a network's final classifier, or each network's own ("self").
TEACHERS = ("self", *MODALITIES)
SCHEDULE_PRESETS = {
    "progressive": PKDSchedule.progressive,
    "ending_on_iframe": PKDSchedule.ending_on_iframe,
    "anti_curriculum": PKDSchedule.anti_curriculum,
    "iframe_only": PKDSchedule.iframe_only,
}


def triplet_outputs(model: nn.Module, batch: Mapping[str, Any]) -> dict[str, list[Tensor]]:
    """The model's {modality: [IC1..IC4 logits]} for a batch of the three compressed modalities."""
    missing = [m for m in MODALITIES if m not in batch]
    if missing:
        raise ValueError(f"batch: missing {missing}; expected the compressed modalities {list(MODALITIES)} "
                         f"(a CompressedVideoDataset item), got keys {sorted(batch)}")
    return model(batch["iframe"], batch["mv"], batch["residual"])


def _checked_exits(exits: Sequence[int]) -> tuple[int, ...]:
    chosen = tuple(int(e) for e in exits)
    if not chosen or len(set(chosen)) != len(chosen) or any(e not in ALL_EXITS for e in chosen):
        raise ValueError(f"exits={list(exits)}: expected distinct IC numbers among {list(ALL_EXITS)}")
    return chosen


def _checked_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(modalities)
    if not chosen or any(m not in MODALITIES for m in chosen):
        raise ValueError(f"modalities={list(modalities)}: expected a non-empty subset of {list(MODALITIES)}")
    return chosen


@register_objective("compressed_ce")
class CompressedCEObjective:
    """Cross-entropy with the labels on the chosen exits of the chosen networks (default: every IC of all three).

    Stage 0 of chapter 6 (a backbone with its final classifier) uses `exits=(4,)`; the CE baseline of PKD uses
    `exits=(1, 2, 3)` once the final classifiers are frozen.
    """

    def __init__(self, exits: Sequence[int] = ALL_EXITS, modalities: Sequence[str] = MODALITIES,
                 label_smoothing: float = 0.0):
        self.exits = _checked_exits(exits)
        self.modalities = _checked_modalities(modalities)
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, Any]]:
        outputs = triplet_outputs(model, batch)
        labels = batch["label"]
        losses, hits = [], []
        for modality in self.modalities:
            for k in self.exits:
                logits = outputs[modality][k - 1]
                losses.append(F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing))
                hits.append((logits.argmax(1) == labels).float().mean())
        loss = torch.stack(losses).mean()
        return loss, {"loss": loss.detach(), "acc": torch.stack(hits).mean().detach()}


@register_objective("pkd")
class PKDObjective:
    """Progressive Knowledge Distillation: soft cross-entropy of every chosen IC against the epoch's teacher.

    The teacher of epoch e is `schedule.teacher_at(e)`: "mv", "residual" or "iframe" (that network's final
    classifier, one teacher for the ICs of all three networks) or "self" (each network's own final classifier).
    Teacher logits are detached, so no gradient reaches a teacher, and the loss has no true-label term (T = 1 in
    PKD). The Trainer calls `set_epoch` at the start of every epoch.

    Args:
        schedule: a `PKDSchedule`; a preset name ("progressive", "ending_on_iframe", "anti_curriculum",
            "iframe_only"), which needs `epochs`; or a mapping {"milestones": [...], "teachers": [...]}.
        epochs: the run's length, for preset schedules (equal stages).
        temperature: softmax temperature of teacher and student.
        exits: the ICs distilled (default IC1-3: IC4 is the frozen final classifier, itself a teacher).
        modalities: the networks whose ICs are distilled.
    """

    def __init__(self, schedule: PKDSchedule | str | Mapping[str, Any] = "progressive", epochs: int | None = None,
                 temperature: float = 1.0, exits: Sequence[int] = INTERNAL_EXITS,
                 modalities: Sequence[str] = MODALITIES):
        self.schedule = self._schedule(schedule, epochs)
        unknown = sorted(set(self.schedule.teachers) - set(TEACHERS))
        if unknown:
            raise ValueError(f"PKD schedule teachers {unknown}: expected names among {list(TEACHERS)}")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}: expected > 0")
        self.temperature = temperature
        self.exits = _checked_exits(exits)
        self.modalities = _checked_modalities(modalities)
        self.epoch = 0

    @staticmethod
    def _schedule(schedule: PKDSchedule | str | Mapping[str, Any], epochs: int | None) -> PKDSchedule:
        if isinstance(schedule, PKDSchedule):
            return schedule
        if isinstance(schedule, Mapping):
            if set(schedule) != {"milestones", "teachers"}:
                raise ValueError(f"schedule {dict(schedule)}: expected keys 'milestones' and 'teachers'")
            return PKDSchedule(schedule["milestones"], schedule["teachers"])
        if schedule not in SCHEDULE_PRESETS:
            raise ValueError(f"schedule={schedule!r}: expected a PKDSchedule, a {{milestones, teachers}} mapping or "
                             f"one of {sorted(SCHEDULE_PRESETS)}")
        if epochs is None:
            raise ValueError(f"schedule={schedule!r}: a preset schedule needs the run's `epochs`")
        return SCHEDULE_PRESETS[schedule](epochs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def teacher(self) -> str:
        """The teacher active in the current epoch."""
        return self.schedule.teacher_at(self.epoch)

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, Any]]:
        outputs = triplet_outputs(model, batch)
        labels = batch["label"]
        name = self.teacher
        losses, agree, hits = [], [], []
        for modality in self.modalities:
            target = outputs[modality if name == "self" else name][-1].detach()
            for k in self.exits:
                logits = outputs[modality][k - 1]
                losses.append(soft_cross_entropy(logits, target, T=self.temperature))
                agree.append((logits.argmax(1) == target.argmax(1)).float().mean())
                hits.append((logits.argmax(1) == labels).float().mean())
        loss = torch.stack(losses).mean()
        return loss, {"loss": loss.detach(), "acc": torch.stack(hits).mean().detach(),
                      "teacher_agreement": torch.stack(agree).mean().detach()}
