"""Logit distillation: Hinton KD, PKD's soft cross-entropy and DeiT's distillation loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DISTILLATION_TYPES = ("none", "soft", "hard")


def _check_pair(student: Tensor, teacher: Tensor) -> None:
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(
            f"expected student and teacher logits of the same (B, C) shape, got {tuple(student.shape)} "
            f"and {tuple(teacher.shape)}"
        )


def kd_soft(student_logits: Tensor, teacher_logits: Tensor, T: float = 1.0) -> Tensor:
    """Hinton KD: KL(softmax(t/T) || softmax(s/T)), averaged over the batch, times T^2.

    The T^2 factor keeps the gradient magnitude comparable across temperatures (Hinton et al., 2015).
    The teacher is detached.
    """
    _check_pair(student_logits, teacher_logits)
    log_p_student = F.log_softmax(student_logits / T, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / T, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * T * T


def kd_hard(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Hard-label KD: cross-entropy of the student against the teacher's argmax class."""
    _check_pair(student_logits, teacher_logits)
    return F.cross_entropy(student_logits, teacher_logits.detach().argmax(dim=1))


def soft_cross_entropy(student_logits: Tensor, teacher_logits: Tensor, T: float = 1.0) -> Tensor:
    """PKD's distillation loss (Soufleri et al.): mean_b -sum_c softmax(t/T)_bc * log_softmax(s/T)_bc.

    It equals KL plus the teacher's entropy, a constant for the student, so its gradient matches kd_soft / T^2.
    PKD uses T = 1 and no true-label term. The teacher is detached.
    """
    _check_pair(student_logits, teacher_logits)
    p_teacher = torch.softmax(teacher_logits.detach() / T, dim=1)
    return -(p_teacher * F.log_softmax(student_logits / T, dim=1)).sum(dim=1).mean()


class DistillationLoss(nn.Module):
    """DeiT's distillation criterion: (1 - alpha) * base(student, labels) + alpha * distill(student, teacher).

    soft: KL(log_softmax(s/tau) || log_softmax(t/tau)) summed, times tau^2, divided by s.numel() (DeiT's
    normalisation: per logit, not per sample). hard: cross-entropy against teacher.argmax(1).
    A student that returns (cls_logits, dist_logits) (DeiT's two heads) gets the base loss on the cls head and the
    distillation loss on the distillation head; a single tensor gets both losses. The teacher runs under no_grad.

    Args:
        base_criterion: loss on (student logits, labels), e.g. nn.CrossEntropyLoss().
        teacher: callable on the inputs returning teacher logits; may be None when teacher logits are precomputed
            and passed to forward (teacher_logits=...).
        distillation_type: "none", "soft" or "hard".
        alpha: weight of the distillation term (DeiT default 0.5).
        tau: temperature of the soft variant (DeiT default 1.0).
    """

    def __init__(
        self,
        base_criterion: Callable[[Tensor, Any], Tensor],
        teacher: Callable[[Any], Tensor] | None = None,
        distillation_type: str = "none",
        alpha: float = 0.5,
        tau: float = 1.0,
    ) -> None:
        super().__init__()
        if distillation_type not in DISTILLATION_TYPES:
            raise ValueError(f"distillation_type: expected one of {DISTILLATION_TYPES}, got {distillation_type!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
        if tau <= 0:
            raise ValueError(f"tau: expected a positive temperature, got {tau}")
        self.base_criterion = base_criterion
        self.teacher = teacher
        self.distillation_type = distillation_type
        self.alpha = alpha
        self.tau = tau

    def components(
        self,
        outputs: Tensor | tuple[Tensor, Tensor],
        labels: Any,
        inputs: Any = None,
        teacher_logits: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Return {"base", "distill", "total"}; distill is absent for type "none" (then total == base)."""
        if isinstance(outputs, Tensor):
            cls_logits = dist_logits = outputs
        else:
            cls_logits, dist_logits = outputs
        base = self.base_criterion(cls_logits, labels)
        if self.distillation_type == "none":
            return {"base": base, "total": base}
        teacher_out = self._teacher_logits(inputs, teacher_logits)
        _check_pair(dist_logits, teacher_out)
        if self.distillation_type == "soft":
            distill = F.kl_div(
                F.log_softmax(dist_logits / self.tau, dim=1),
                F.log_softmax(teacher_out / self.tau, dim=1),
                reduction="sum",
                log_target=True,
            ) * (self.tau * self.tau) / dist_logits.numel()
        else:
            distill = F.cross_entropy(dist_logits, teacher_out.argmax(dim=1))
        return {"base": base, "distill": distill, "total": (1.0 - self.alpha) * base + self.alpha * distill}

    def forward(
        self,
        outputs: Tensor | tuple[Tensor, Tensor],
        labels: Any,
        inputs: Any = None,
        teacher_logits: Tensor | None = None,
    ) -> Tensor:
        """Total loss; see `components` for the individual terms."""
        return self.components(outputs, labels, inputs=inputs, teacher_logits=teacher_logits)["total"]

    def _teacher_logits(self, inputs: Any, teacher_logits: Tensor | None) -> Tensor:
        if teacher_logits is not None:
            return teacher_logits.detach()
        if self.teacher is None:
            raise ValueError(
                f"distillation_type={self.distillation_type!r} needs a teacher: pass teacher= to DistillationLoss "
                "or teacher_logits= to forward"
            )
        if inputs is None:
            raise ValueError("the teacher needs the inputs: call forward(outputs, labels, inputs=...)")
        with torch.no_grad():
            out = self.teacher(inputs)
        if not isinstance(out, Tensor):
            raise TypeError(f"teacher must return a (B, C) logits tensor, got {type(out).__name__}")
        return out
