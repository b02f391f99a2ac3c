"""Pluggable training steps: an objective turns (model, batch, teachers, class texts) into a loss and metrics.

One Trainer serves every chapter because the chapter-specific part of a training step lives here: ActionCLIP's
contrastive loss, plain cross-entropy, and, registered by later chapters in their own modules, DeiT two-headed
distillation, spatial multi-task learning and PKD. An objective is any callable

    objective(model, batch, teachers, labels_text) -> (loss, metrics)

where `model` is what the Trainer trains (a DistributedDataParallel wrapper under torchrun: call it for the
forward pass so gradients are synchronised, and use `unwrap_model(model)` to read attributes), `batch` is the
collated dataset dict on the training device ("frames" (B, T, 3, H, W), "label" (B,), "index" (B,), ...),
`teachers` maps names to frozen `Teacher`s, and `labels_text` lists the training set's class texts (label i is
`labels_text[i]`). `loss` is a scalar tensor; `metrics` maps names to floats (or 0-dim tensors), averaged over
the epoch weighted by batch size. An objective that changes with the epoch (PKD's teacher schedule) may define
`set_epoch(epoch)`, which the Trainer calls at the start of each epoch. Learnable weights belong in the model,
not in the objective: only the model's parameters are optimised and checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actiondistill.engine.teachers import Teacher


class Objective(Protocol):
    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, float]]: ...


_OBJECTIVES: dict[str, Callable[..., Objective]] = {}


def register_objective(name: str) -> Callable[[Callable[..., Objective]], Callable[..., Objective]]:
    """Decorator: register a factory (usually a class) so configs can say `objective: {name: NAME, kwargs: ...}`."""
    def decorator(factory: Callable[..., Objective]) -> Callable[..., Objective]:
        _OBJECTIVES[name] = factory
        return factory
    return decorator


def list_objectives() -> list[str]:
    """The objectives registered so far: the engine's own, and those of every package imported (an objective
    registers where it is defined, so the engine never imports the chapters; `actiondistill.cli.train` imports
    them all for config-driven runs)."""
    return sorted(_OBJECTIVES)


def build_objective(name: str, **kwargs: Any) -> Objective:
    if name not in _OBJECTIVES:
        raise ValueError(f"objective {name!r}: unknown; registered objectives are {', '.join(list_objectives())} "
                         "(an objective registers when the module defining it is imported, e.g. actiondistill.spatial "
                         "for spatial_multitask)")
    try:
        return _OBJECTIVES[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"objective {name!r}: bad arguments {kwargs} ({err})") from None


@register_objective("actionclip")
class ActionCLIPObjective:
    """ActionCLIP's training step.

    `texts="batch"` (default, the reference implementation): each clip is paired with the text of its own label,
    the model scores the B clips against those B texts, and ActionCLIP's symmetric KL loss is applied to the
    (B, B) matrix with soft targets over texts of the same class (`actionclip_loss`). The reported accuracy is the
    fraction of clips whose best-scoring text names their class.
    `texts="classes"`: the clips are scored against every training class text, (B, C), with ActionCLIP's target
    construction over classes (`actionclip_class_loss`: cross-entropy with a tiny label smoothing); more negatives
    per step and an exact accuracy, at the cost of encoding all C texts each step.
    """

    def __init__(self, texts: str = "batch", sharpness: float = 10.0):
        if texts not in ("batch", "classes"):
            raise ValueError(f"actionclip objective: texts={texts!r}, expected 'batch' or 'classes'")
        self.texts = texts
        self.sharpness = sharpness

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, float]]:
        from actiondistill.losses import actionclip_class_loss, actionclip_loss

        labels = batch["label"]
        if self.texts == "batch":
            logits = model(batch["frames"], [labels_text[i] for i in labels.tolist()])
            loss = actionclip_loss(logits, logits.t(), labels, sharpness=self.sharpness)
            correct = labels[logits.argmax(1)] == labels
        else:
            logits = model(batch["frames"], list(labels_text))
            loss = actionclip_class_loss(logits, labels, sharpness=self.sharpness)
            correct = logits.argmax(1) == labels
        return loss, {"loss": loss.detach(), "acc": correct.float().mean()}


@register_objective("cross_entropy")
class CrossEntropyObjective:
    """Cross-entropy of the clips' logits over all training class texts (optionally label-smoothed)."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, float]]:
        labels = batch["label"]
        logits = model(batch["frames"], list(labels_text))
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        return loss, {"loss": loss.detach(), "acc": (logits.argmax(1) == labels).float().mean()}


def metric_value(value: float | Tensor) -> float:
    """Objectives may return 0-dim tensors (no host sync inside the step); the Trainer converts them here."""
    return float(value.detach().float().item()) if isinstance(value, torch.Tensor) else float(value)
