"""Every training objective of the project: contrastive, distillation, multi-task, PKD and WISE.

One module per family; everything is importable from `actiondistill.losses`.
"""

from actiondistill.losses.contrastive import (
    ACTIONCLIP_SHARPNESS,
    actionclip_class_loss,
    actionclip_loss,
    affinity_mimicking_loss,
    clip_infonce,
    clip_logits,
    same_label_matrix,
    tinyclip_loss,
)
from actiondistill.losses.distillation import (
    DISTILLATION_TYPES,
    DistillationLoss,
    kd_hard,
    kd_soft,
    soft_cross_entropy,
)
from actiondistill.losses.multitask import MultiTaskLoss, spatial_bce, spatial_kl
from actiondistill.losses.pkd import PKDSchedule
from actiondistill.losses.wise import PKD_FALLBACK_WEIGHTS, PKD_FINAL_INDICES, fit_wise_weights, wise_predict

__all__ = [
    "ACTIONCLIP_SHARPNESS",
    "DISTILLATION_TYPES",
    "PKD_FALLBACK_WEIGHTS",
    "PKD_FINAL_INDICES",
    "DistillationLoss",
    "MultiTaskLoss",
    "PKDSchedule",
    "actionclip_class_loss",
    "actionclip_loss",
    "affinity_mimicking_loss",
    "clip_infonce",
    "clip_logits",
    "fit_wise_weights",
    "kd_hard",
    "kd_soft",
    "same_label_matrix",
    "soft_cross_entropy",
    "spatial_bce",
    "spatial_kl",
    "tinyclip_loss",
    "wise_predict",
]
