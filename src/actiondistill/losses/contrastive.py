"""Video-text and image-text contrastive losses: ActionCLIP, CLIP InfoNCE and TinyCLIP affinity mimicking.

All functions take batched tensors and return a scalar mean loss, so they drop into any training loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: ActionCLIP sharpens its 0/1 ground-truth matrix with this factor before the softmax.
ACTIONCLIP_SHARPNESS = 10.0


def _label_ids(labels: Tensor | Sequence, device: torch.device) -> Tensor:
    """Map labels (a 1-D tensor, or a sequence of strings or ints) to an int64 tensor of ids."""
    if isinstance(labels, Tensor):
        if labels.dim() != 1:
            raise ValueError(f"labels: expected a 1-D tensor, got shape {tuple(labels.shape)}")
        return labels.to(device)
    index: dict = {}
    return torch.tensor([index.setdefault(label, len(index)) for label in labels], dtype=torch.long, device=device)


def same_label_matrix(labels: Tensor | Sequence, device: torch.device | None = None) -> Tensor:
    """GT[i, k] = 1.0 where sample i and sample k share a label: the targets of a batch that repeats classes."""
    ids = _label_ids(labels, device or torch.device("cpu"))
    return (ids[:, None] == ids[None, :]).float()


def _check_square(name: str, logits: Tensor, batch: int) -> None:
    if logits.dim() != 2 or logits.shape != (batch, batch):
        raise ValueError(f"{name}: expected a ({batch}, {batch}) matrix for {batch} labels, got {tuple(logits.shape)}")


def actionclip_loss(
    logits_per_video: Tensor,
    logits_per_text: Tensor,
    labels: Tensor | Sequence,
    sharpness: float = ACTIONCLIP_SHARPNESS,
) -> Tensor:
    """ActionCLIP's symmetric KL loss over the in-batch (video, text) similarity matrix.

    Formula (ActionCLIP reference): GT[i,k] = [label_i == label_k]; target = softmax(sharpness * GT, dim=1);
    per direction L = KL(target || softmax(logits)) with mean reduction times the batch size, i.e.
    L = (1/b) sum_i sum_k target_ik (log target_ik - log_softmax(logits)_ik); total = (L_v2t + L_t2v) / 2.
    Unlike CLIP's arange targets this stays correct when a class appears twice in a batch: the mass is split
    over all texts of the same class instead of penalising a "wrong" text that is in fact right.

    Args:
        logits_per_video: (b, b) scale * video @ text.T.
        logits_per_text: (b, b) scale * text @ video.T (usually the transpose of the first).
        labels: b labels (tensor of class ids, or strings).
        sharpness: factor on GT before the softmax (10 in the reference).
    """
    batch = len(labels)
    _check_square("logits_per_video", logits_per_video, batch)
    _check_square("logits_per_text", logits_per_text, batch)
    target = torch.softmax(sharpness * same_label_matrix(labels, logits_per_video.device), dim=1)
    target = target.to(logits_per_video.dtype)
    # reduction "mean" over the b x b entries times b is exactly "batchmean" (which avoids torch's warning)
    loss_v = F.kl_div(F.log_softmax(logits_per_video, dim=1), target, reduction="batchmean")
    loss_t = F.kl_div(F.log_softmax(logits_per_text, dim=1), target, reduction="batchmean")
    return (loss_v + loss_t) / 2


def actionclip_class_loss(logits: Tensor, labels: Tensor, sharpness: float = ACTIONCLIP_SHARPNESS) -> Tensor:
    """ActionCLIP's target construction applied to logits against the texts of all C classes.

    When the "batch" of texts is the full class list every class appears exactly once, so ActionCLIP's target row
    becomes softmax(sharpness * one_hot(label)): probability e^s / (e^s + C - 1) on the true class and
    1 / (e^s + C - 1) elsewhere (a tiny label smoothing, about 4.5e-5 per wrong class for s = 10). The loss is
    KL(target || softmax(logits)) averaged over the batch, which differs from cross-entropy only by that smoothing.

    Args:
        logits: (B, C) video-to-class-text logits.
        labels: (B,) class indices.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits: expected (B, C), got shape {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels: expected shape ({logits.shape[0]},) of class indices, got {tuple(labels.shape)}")
    one_hot = F.one_hot(labels.long(), num_classes=logits.shape[1]).to(logits.dtype)
    target = torch.softmax(sharpness * one_hot, dim=1)
    return F.kl_div(F.log_softmax(logits, dim=1), target, reduction="batchmean")


def clip_logits(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor | float) -> Tensor:
    """scale * cos(image_i, text_j): the (N, N) image-to-text logits; embeddings are L2-normalised here."""
    if image_emb.shape != text_emb.shape or image_emb.dim() != 2:
        raise ValueError(
            f"expected image and text embeddings of the same (N, D) shape, got {tuple(image_emb.shape)} "
            f"and {tuple(text_emb.shape)}"
        )
    return logit_scale * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T


def clip_infonce(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor | float) -> Tensor:
    """CLIP's symmetric InfoNCE: (CE(logits, arange) + CE(logits.T, arange)) / 2 with logits = scale * cos.

    `logit_scale` is the multiplier itself (CLIP stores its log and uses exp(): pass `model.logit_scale.exp()`).
    Pair i of the batch is the only positive of row i, so this assumes captions are distinct within a batch.
    """
    logits = clip_logits(image_emb, text_emb, logit_scale)
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _soft_ce_rows(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """mean_i -sum_j softmax(teacher)_ij * log_softmax(student)_ij."""
    return -(torch.softmax(teacher_logits, dim=1) * F.log_softmax(student_logits, dim=1)).sum(dim=1).mean()


def affinity_mimicking_loss(
    student_img: Tensor,
    student_txt: Tensor,
    teacher_img: Tensor,
    teacher_txt: Tensor,
    student_scale: Tensor | float,
    teacher_scale: Tensor | float,
) -> Tensor:
    """TinyCLIP affinity mimicking: the student copies the teacher's image-text affinities.

    With S = s_scale * cos(student_img, student_txt) and T = t_scale * cos(teacher_img, teacher_txt) (N x N),
    L = ( softCE(S, T) + softCE(S.T, T.T) ) / 2, softCE(A, B) = mean_i -sum_j softmax(B)_ij log_softmax(A)_ij:
    image-to-text and text-to-image directions averaged. The teacher side carries no gradient.
    The scales are multipliers (already exp()'d).
    """
    s_logits = clip_logits(student_img, student_txt, student_scale)
    with torch.no_grad():
        t_logits = clip_logits(teacher_img, teacher_txt, teacher_scale)
    if s_logits.shape != t_logits.shape:
        raise ValueError(f"student and teacher batches differ: {tuple(s_logits.shape)} vs {tuple(t_logits.shape)}")
    return (_soft_ce_rows(s_logits, t_logits) + _soft_ce_rows(s_logits.T, t_logits.T)) / 2


def tinyclip_loss(
    student_img: Tensor,
    student_txt: Tensor,
    teacher_img: Tensor,
    teacher_txt: Tensor,
    student_scale: Tensor | float,
    teacher_scale: Tensor | float,
    blend: float = 0.5,
) -> Tensor:
    """TinyCLIP-style distillation objective: blend * affinity mimicking + (1 - blend) * CLIP InfoNCE (student).

    blend = 1 is pure mimicking (TinyCLIP's distillation term alone), blend = 0 is ordinary CLIP training of the
    student; the default 0.5 weighs the teacher's soft affinities and the hard pair labels equally (our choice).
    """
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"blend: expected a value in [0, 1], got {blend}")
    mimic = affinity_mimicking_loss(student_img, student_txt, teacher_img, teacher_txt, student_scale, teacher_scale)
    return blend * mimic + (1.0 - blend) * clip_infonce(student_img, student_txt, student_scale)
