"""Multi-task objectives for spatial distillation: the action loss plus weighted spatial auxiliary losses."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def spatial_kl(pred_logits: Tensor, soft_targets: Tensor) -> Tensor:
    """KL(soft_targets || softmax(pred_logits)) averaged over the batch.

    For single-label spatial objectives whose targets are distributions (e.g. a CLIP-based predictor's softmax over
    scene or shape prompts): matching the distribution passes on the predictor's uncertainty, not just its argmax.
    """
    if pred_logits.shape != soft_targets.shape or pred_logits.dim() != 2:
        raise ValueError(
            f"expected logits and soft targets of the same (B, K) shape, got {tuple(pred_logits.shape)} "
            f"and {tuple(soft_targets.shape)}"
        )
    sums = soft_targets.sum(dim=1)
    if (soft_targets < 0).any() or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise ValueError("soft_targets: expected non-negative rows that sum to 1 (probability distributions)")
    return F.kl_div(F.log_softmax(pred_logits, dim=1), soft_targets.to(pred_logits.dtype), reduction="batchmean")


def spatial_bce(pred_logits: Tensor, targets: Tensor, pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy with logits, mean over all entries: for multi-label spatial objectives.

    Targets in [0, 1] may be soft (predictor probabilities). `pos_weight` (K,) up-weights rare positive attributes.
    """
    if pred_logits.shape != targets.shape:
        raise ValueError(f"expected logits and targets of the same shape, got {tuple(pred_logits.shape)} "
                         f"and {tuple(targets.shape)}")
    return F.binary_cross_entropy_with_logits(pred_logits, targets.to(pred_logits.dtype), pos_weight=pos_weight)


class MultiTaskLoss(nn.Module):
    """total = main + sum_name weights[name] * aux[name]: the action loss keeps weight 1, each auxiliary has lambda.

    Returns (total, terms) where terms holds the detached "main", every auxiliary term (unweighted) and "total",
    ready for logging. The auxiliary names must match the weights exactly, so a misspelt task is an error rather
    than a silently ignored objective.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        for name, weight in weights.items():
            if name in ("main", "total"):
                raise ValueError(f"weights: {name!r} is reserved for the main loss / the total, rename the task")
            if weight < 0:
                raise ValueError(f"weights[{name!r}]: expected a non-negative weight, got {weight}")
        self.weights = dict(weights)

    def forward(self, main: Tensor, aux: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        if set(aux) != set(self.weights):
            raise ValueError(f"auxiliary losses {sorted(aux)} do not match the weighted tasks {sorted(self.weights)}")
        total = main
        terms = {"main": main.detach()}
        for name, value in aux.items():
            total = total + self.weights[name] * value
            terms[name] = value.detach()
        terms["total"] = total.detach()
        return total, terms
