"""The `deit_twohead` training step: the frame head learns the labels, the token head learns from a teacher.

For a two-headed student (`actionclip-twohead`) and the training set's C class texts, one forward pass gives both
heads' (B, C) logits against one text encoding at the student's logit scale (`HeadLogits`). Then

    frame loss = ActionCLIP's loss on the ground truth (texts="batch": the in-batch (B, B) matrix of the clips
                 against their own labels' texts, the reference recipe; texts="classes": all C class texts)
    token loss = soft:  KL(teacher || token) at temperature tau, times tau^2, divided by B * C (DeiT's per-logit
                        normalisation, so about 1/C of a per-sample KL: weigh it with alpha accordingly)
                 hard:  cross-entropy against the teacher's argmax class
                 gt:    cross-entropy against the true class, no teacher: hard distillation from an oracle that is
                        always right, the ablation separating two-headed training from the teacher's knowledge
                 none:  no token loss (the token still takes part in the attention; it is trained by nothing)
    loss       = (1 - alpha) * frame loss + alpha * token loss       (frame loss alone for "none")

soft / hard / none go through `losses.DistillationLoss`, whose DeiT formulas they are. The single-head baseline is
plain `actionclip-transf` with the `actionclip` objective.

The teacher is `teachers[teacher]` (default name "teacher", TeacherConfig's default), a frozen `Teacher` scored
against the same class texts: its eval-mode logits (all templates averaged, fixed scale 100), i.e. its test-time
probabilities. It sees the batch's "teacher_frames" when there are any: its own image encoder's cached embeddings of
the frames the student sees (`frame_cache.TeacherFrameDataset`, for a student on another CLIP than the teacher's;
`features.check_encoder` checks by the cache key that they are the teacher's). Otherwise it sees the batch's
"frames", so when the student trains on cached frame embeddings the teacher must accept them too (a frame-fusing
model, not X-CLIP) and must have the image encoder those embeddings came from; the first such batch checks that
the teacher's image-encoder weights equal the student's (`same_image_encoder`).

Metrics (averaged over the epoch by the Trainer): loss, loss_frame, loss_token (not for "none"), acc (the DeiT
average of the heads, what inference uses), acc_frame, acc_token, and for soft/hard teacher_acc (the teacher's
accuracy on the batch) and teacher_agreement (token head argmax == teacher argmax). Accuracies are fractions over
all C classes. Under torchrun, distillation "none" leaves the token head without gradients: set
distributed.find_unused_parameters=true.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actiondistill.engine.distributed import unwrap_model
from actiondistill.engine.objectives import register_objective
from actiondistill.engine.teachers import Teacher
from actiondistill.losses import DistillationLoss, actionclip_class_loss, actionclip_loss
from actiondistill.models.two_headed import HeadLogits

DISTILLATION_MODES = ("soft", "hard", "gt", "none")
TEXT_MODES = ("batch", "classes")


def same_image_encoder(a: nn.Module, b: nn.Module) -> bool:
    """Whether two CLIP video models' image encoders (`backbone.visual`) have identical weights, i.e. whether
    frame embeddings cached from one are the other's too."""
    va = getattr(getattr(a, "backbone", None), "visual", None)
    vb = getattr(getattr(b, "backbone", None), "visual", None)
    if va is None or vb is None:
        return False
    if va is vb:
        return True
    sa, sb = va.state_dict(), vb.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k].to(sa[k].device))
        for k in sa)


@register_objective("deit_twohead")
class DeiTTwoHeadObjective:
    """Two-headed DeiT training of `actionclip-twohead`; see the module docstring for the losses and metrics.

    Args:
        distillation: "soft", "hard" (DeiT's best variant, the default), "gt" or "none".
        alpha: weight of the token loss (DeiT default 0.5).
        tau: temperature of "soft" (DeiT default 1.0).
        teacher: the name of the teacher in the Trainer's `teachers` (soft / hard only).
        texts: the frame head's ActionCLIP loss over the in-batch texts ("batch") or all class texts ("classes").
        sharpness: ActionCLIP's factor on the ground-truth matrix before its softmax.
    """

    def __init__(self, distillation: str = "hard", alpha: float = 0.5, tau: float = 1.0, teacher: str = "teacher",
                 texts: str = "batch", sharpness: float = 10.0):
        if distillation not in DISTILLATION_MODES:
            raise ValueError(f"deit_twohead: distillation={distillation!r}, expected one of {list(DISTILLATION_MODES)}")
        if texts not in TEXT_MODES:
            raise ValueError(f"deit_twohead: texts={texts!r}, expected one of {list(TEXT_MODES)}")
        self.distillation = distillation
        self.texts = texts
        self.sharpness = sharpness
        self.teacher = teacher
        self.criterion = DistillationLoss(self.frame_loss, distillation_type="none" if distillation == "gt" else
                                          distillation, alpha=alpha, tau=tau)
        self._checked_encoders: set[str] = set()

    @property
    def alpha(self) -> float:
        return self.criterion.alpha

    @property
    def tau(self) -> float:
        return self.criterion.tau

    @property
    def label_weight(self) -> float:
        """The weight of the frame head's ground-truth loss in the total: 1 - alpha, or 1 with no token loss."""
        return 1.0 if self.distillation == "none" else 1.0 - self.alpha

    @property
    def uses_teacher(self) -> bool:
        return self.distillation in ("soft", "hard")

    def frame_loss(self, frame_logits: Tensor, labels: Tensor) -> Tensor:
        """ActionCLIP's loss of the frame head's (B, C) logits on the ground truth."""
        if self.texts == "classes":
            return actionclip_class_loss(frame_logits, labels, sharpness=self.sharpness)
        in_batch = frame_logits[:, labels]  # clip i against the texts of the batch's labels: (B, B)
        return actionclip_loss(in_batch, in_batch.t(), labels, sharpness=self.sharpness)

    def losses(self, frame_logits: Tensor, token_logits: Tensor, labels: Tensor,
               teacher_logits: Tensor | None = None) -> dict[str, Tensor]:
        """{"frame", "token" (absent for "none"), "total"} from both heads' (B, C) logits and the teacher's."""
        if self.distillation == "gt":
            frame = self.frame_loss(frame_logits, labels)
            token = F.cross_entropy(token_logits, labels)
            return {"frame": frame, "token": token, "total": (1.0 - self.alpha) * frame + self.alpha * token}
        if self.uses_teacher and teacher_logits is None:
            raise ValueError(f"deit_twohead: distillation={self.distillation!r} needs teacher logits")
        parts = self.criterion.components(
            (frame_logits, token_logits.float()), labels,
            teacher_logits=None if teacher_logits is None else teacher_logits.float())
        out = {"frame": parts["base"], "total": parts["total"]}
        if "distill" in parts:
            out["token"] = parts["distill"]
        return out

    def teacher_logits(self, student: nn.Module, batch: Mapping[str, Any], teachers: Mapping[str, Teacher],
                       labels_text: Sequence[str]) -> Tensor:
        """The named teacher's (B, C) logits of the batch, after checking it can read the batch's inputs."""
        if self.teacher not in teachers:
            given = sorted(teachers) or "no teachers"
            raise ValueError(
                f"deit_twohead: distillation={self.distillation!r} needs the teacher {self.teacher!r}, but the Trainer "
                f"was given {given}; add a teacher named {self.teacher!r} (config `teachers: [{{name: {self.teacher}, "
                f"model: ...}}]` or Trainer(teachers={{{self.teacher!r}: model}})), set objective.kwargs.teacher to "
                "one of those names, or use distillation: gt (no teacher)")
        teacher = teachers[self.teacher]
        frames = batch.get("teacher_frames")
        if frames is not None:
            if frames.shape[:2] != batch["frames"].shape[:2]:
                raise ValueError(f"deit_twohead: teacher_frames {tuple(frames.shape)} and frames "
                                 f"{tuple(batch['frames'].shape)} disagree on clips or frames per clip; they must be "
                                 "two encoders' views of the same frames (TeacherFrameDataset)")
            return teacher.logits(frames, labels_text, index=batch.get("index"))
        frames = batch["frames"]
        if frames.ndim == 3 and self.teacher not in self._checked_encoders:
            if not same_image_encoder(teacher.model, student):
                raise ValueError(
                    f"deit_twohead: the batch holds cached frame embeddings, but teacher {self.teacher!r} has another "
                    "image encoder than the student (whose frozen encoder made them), so they are not its inputs; "
                    "use a teacher trained with the same frozen image encoder, give the batch the teacher's own "
                    "embeddings of the same frames (TeacherFrameDataset), or train on pixels")
            self._checked_encoders.add(self.teacher)
        return teacher.logits(frames, labels_text, index=batch.get("index"))

    def check(self, model: nn.Module, labels_text: Sequence[str]) -> list[str]:
        """The class texts, after checking the model has a token head and the data has class texts."""
        net = unwrap_model(model)
        if not hasattr(net, "encode_video_heads"):
            raise ValueError(f"deit_twohead: {type(net).__name__} has no token head; train actionclip-twohead (the "
                             "single-head baseline is actionclip-transf with the actionclip objective)")
        texts = list(labels_text)
        if not texts:
            raise ValueError("deit_twohead: the training data has no class texts (expected `classes`)")
        return texts

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, Any]]:
        texts = self.check(model, labels_text)
        logits = model(batch["frames"], texts, return_heads=True)
        return self.step(model, logits, batch, teachers, texts)

    def step(self, model: nn.Module, logits: HeadLogits, batch: Mapping[str, Any], teachers: Mapping[str, Teacher],
             texts: Sequence[str]) -> tuple[Tensor, dict[str, Any]]:
        """The loss and metrics of one batch from the student's `HeadLogits` (after its forward pass), so that an
        objective adding other terms (`spatial_multitask` with `deit=`) reuses them from its own forward pass."""
        labels = batch["label"]
        teacher = self.teacher_logits(unwrap_model(model), batch, teachers, texts) if self.uses_teacher else None
        parts = self.losses(logits.frame, logits.token, labels, teacher)
        metrics: dict[str, Any] = {"loss": parts["total"].detach(), "loss_frame": parts["frame"].detach()}
        if "token" in parts:
            metrics["loss_token"] = parts["token"].detach()
        with torch.no_grad():
            for key, head in (("acc", logits.both), ("acc_frame", logits.frame), ("acc_token", logits.token)):
                metrics[key] = (head.argmax(1) == labels).float().mean()
            if teacher is not None:
                metrics["teacher_acc"] = (teacher.argmax(1) == labels).float().mean()
                metrics["teacher_agreement"] = (logits.token.argmax(1) == teacher.argmax(1)).float().mean()
        return parts["total"], metrics
