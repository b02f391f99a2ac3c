"""The training step of spatial distillation: ActionCLIP's loss plus weighted spatial losses (`spatial_multitask`).

    loss = action loss + weight * sum_objectives weights[objective] * spatial loss[objective]   (ActionCLIP's loss)

The action loss is ActionCLIP's (`texts="batch"` or `"classes"`, as the `actionclip` objective), or, with `deit`
(the options of `deit_twohead`), the two-headed DeiT loss of a two-headed student with spatial heads
(`spatial-twohead`): frame head on the labels, token head on a teacher or the labels, from the same forward pass
as the spatial heads. The DeiT loss weighs the frame head's label loss by 1 - alpha, so with `deit` the spatial
losses are weighed by `weight * (1 - alpha)` (`DeiTTwoHeadObjective.label_weight`): `weight` keeps its meaning,
the spatial losses against the label loss, as chapter 4 chose it. Unscaled, chapter 5's alpha of C/(C+1) made
them about 20 times heavier against the labels than in chapter 4, and the combined student under-fit (training
accuracy 0.40 against 0.58 without spatial heads, chapter 7 of 2026-12-07).

Each spatial loss compares a head of the model (`SpatialActionCLIP`,
`SpatialTwoHeadedActionCLIP`) with the batch's "spatial_targets" (`SpatialTargetDataset`): KL(target ||
softmax(head)) for single-label objectives, BCE with logits for the multi-label ones named in `multi_label`
(`SpatialTargets.multi_label`). `objectives` picks which objectives are on (default every head of the model), for
the "which objectives help" ablation; `weight=0` gives exactly the action loss.

Metrics: loss (the total), action_loss, acc (as the actionclip objective; with `deit`, the DeiT average of the
heads, plus every metric of `deit_twohead` but its loss), spatial_loss (sum over the objectives of
weights[objective] * loss, before `weight`), and per objective `spatial/<name>` (its loss) and, for single-label
objectives, `spatial_acc/<name>` (the fraction of clips whose head argmax is the target's argmax).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from actiondistill.deit.objectives import DeiTTwoHeadObjective
from actiondistill.engine.distributed import unwrap_model
from actiondistill.engine.objectives import register_objective
from actiondistill.engine.teachers import Teacher
from actiondistill.losses import MultiTaskLoss, actionclip_class_loss, actionclip_loss, spatial_bce, spatial_kl


@register_objective("spatial_multitask")
class SpatialMultiTaskObjective:
    """See the module docstring.

    Args:
        weight: lambda, the weight of the spatial part against the action loss (>= 0).
        objectives: the objectives trained (default: all the model's heads).
        weights: per-objective weights inside the spatial sum (default 1 each).
        multi_label: objectives with multi-label targets (BCE); the others use KL.
        texts, sharpness: the action loss, as the `actionclip` objective (not used with `deit`).
        deit: None for ActionCLIP's action loss; else the `deit_twohead` objective's options (distillation, alpha,
            tau, teacher, texts, sharpness), whose loss is then the action loss of a two-headed student.
    """

    def __init__(self, weight: float = 1.0, objectives: Sequence[str] | None = None,
                 weights: Mapping[str, float] | None = None, multi_label: Sequence[str] = (), texts: str = "batch",
                 sharpness: float = 10.0, deit: Mapping[str, Any] | None = None):
        if weight < 0:
            raise ValueError(f"spatial_multitask: weight={weight}, expected >= 0")
        if texts not in ("batch", "classes"):
            raise ValueError(f"spatial_multitask: texts={texts!r}, expected 'batch' or 'classes'")
        if objectives is not None and (isinstance(objectives, str) or not objectives):
            raise ValueError(f"spatial_multitask: objectives={objectives!r}, expected a non-empty list of names")
        self.weight = float(weight)
        self.objectives = None if objectives is None else list(objectives)
        self.weights = dict(weights or {})
        self.multi_label = set(multi_label)
        self.texts = texts
        self.sharpness = sharpness
        self.deit = None if deit is None else DeiTTwoHeadObjective(**deit)

    def names(self, model: nn.Module) -> list[str]:
        """The objectives trained with `model` (checked against its heads)."""
        heads = getattr(unwrap_model(model), "spatial_heads", None)
        if heads is None:
            raise ValueError(f"spatial_multitask: {type(unwrap_model(model)).__name__} has no spatial heads; build the "
                             "model as 'spatial-multitask' (or 'spatial-twohead') with "
                             "spatial_heads={objective: concepts}")
        names = self.objectives if self.objectives is not None else list(heads)
        missing = [n for n in names if n not in heads]
        if missing:
            raise ValueError(f"spatial_multitask: objectives {missing} have no head; the model's heads are "
                             f"{list(heads)}")
        stray = sorted((set(self.weights) | self.multi_label) - set(names))
        if stray:
            raise ValueError(f"spatial_multitask: weights / multi_label name {stray}, not among the objectives {names}")
        return names

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, Any]]:
        names = self.names(model)
        targets = batch.get("spatial_targets")
        absent = [n for n in names if not isinstance(targets, Mapping) or n not in targets]
        if absent:
            raise ValueError(f"spatial_multitask: the batch has no spatial targets for {absent}; wrap the dataset in "
                             "SpatialTargetDataset(dataset, targets)")
        labels = batch["label"]
        metrics: dict[str, Any] = {}
        if self.deit is not None:
            texts = self.deit.check(model, labels_text)
            logits, heads = model(batch["frames"], texts, return_heads=True, heads=names)
            main, metrics = self.deit.step(model, logits, batch, teachers, texts)
            metrics = {k: v for k, v in metrics.items() if k != "loss"}
            correct = logits.both.argmax(1) == labels
        elif self.texts == "batch":
            logits, heads = model(batch["frames"], [labels_text[i] for i in labels.tolist()], heads=names)
            main = actionclip_loss(logits, logits.t(), labels, sharpness=self.sharpness)
            correct = labels[logits.argmax(1)] == labels
        else:
            logits, heads = model(batch["frames"], list(labels_text), heads=names)
            main = actionclip_class_loss(logits, labels, sharpness=self.sharpness)
            correct = logits.argmax(1) == labels
        aux = {}
        for name in names:
            pred, target = heads[name].float(), targets[name].float()
            if name in self.multi_label:
                aux[name] = spatial_bce(pred, target)
            else:
                aux[name] = spatial_kl(pred, target)
                metrics[f"spatial_acc/{name}"] = (pred.argmax(1) == target.argmax(1)).float().mean()
            metrics[f"spatial/{name}"] = aux[name].detach()
        spatial = sum(self.weights.get(n, 1.0) * aux[n] for n in names)
        weight = self.weight * (self.deit.label_weight if self.deit is not None else 1.0)
        total, _ = MultiTaskLoss({n: weight * self.weights.get(n, 1.0) for n in names})(main, aux)
        metrics.update({"loss": total.detach(), "action_loss": main.detach(), "acc": correct.float().mean(),
                        "spatial_loss": spatial.detach()})
        return total, metrics
