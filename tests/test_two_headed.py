"""Two-headed DeiT students: the model's heads and weights, the `deit_twohead` losses, teachers, Trainer, evaluation.

Tiny random `embedded-tiny` backbones; the videos are cached frame embeddings (B, T, D), the input the chapter's
students train on.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from test_frame_cache import MICRO, SIZE, cache_root, features, manifest, micro, micro_recipe  # noqa: F401  (fixtures)

from actiondistill.config import (
    ObjectiveConfig,
    TeacherConfig,
    apply_override,
    load_config,
)
from actiondistill.deit import DeiTTwoHeadObjective, same_image_encoder
from actiondistill.engine.objectives import build_objective, list_objectives
from actiondistill.engine.runs import train_and_evaluate
from actiondistill.engine.teachers import Teacher
from actiondistill.evaluate import evaluate, evaluate_heads
from actiondistill.models import create_backbone, create_model, list_models, save_weights
from actiondistill.models.two_headed import NEW_KEYS, HeadLogits, TwoHeadedActionCLIP
from actiondistill.train import Trainer

LABELS = ["bouncing to the left", "spinning clockwise", "growing"]
B, T, D = 6, 4, 256


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return create_backbone("embedded-tiny")


def twohead(backbone, **cfg):
    torch.manual_seed(3)
    return create_model("actionclip-twohead", backbone=copy.deepcopy(backbone), num_frames=T, fusion_layers=1, **cfg)


def embeddings(n=B, seed=1):
    return torch.randn(n, T, D, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- the model
def test_registered_and_builds_from_config():
    assert "actionclip-twohead" in list_models()
    assert "deit_twohead" in list_objectives()
    objective = build_objective("deit_twohead", distillation="soft", alpha=0.3, tau=2.0)
    assert isinstance(objective, DeiTTwoHeadObjective) and (objective.alpha, objective.tau) == (0.3, 2.0)
    with pytest.raises(ValueError, match="distillation='medium'"):
        build_objective("deit_twohead", distillation="medium")


def test_shapes_pixels_and_embeddings(backbone):
    model = twohead(backbone)
    assert isinstance(model, TwoHeadedActionCLIP) and model.accepts_frame_embeddings and model.head == "both"
    pixels = torch.randn(2, T, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    frame, token = model.encode_video_heads(pixels)
    assert frame.shape == token.shape == (2, D)
    assert model.encode_video(embeddings()).shape == (B, D)
    out = model(embeddings(), LABELS, return_heads=True)
    assert isinstance(out, HeadLogits) and all(o.shape == (B, len(LABELS)) for o in out)
    assert model(embeddings(), LABELS).shape == (B, len(LABELS))


def grads_after(model, loss_of):
    model.train()
    model.zero_grad(set_to_none=True)
    loss_of(model(embeddings(), LABELS, return_heads=True)).backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_gradients_reach_both_heads_and_the_token(backbone):
    model = twohead(backbone)
    token = grads_after(model, lambda out: out.token.logsumexp(1).sum() - out.token[:, 0].sum())
    assert set(NEW_KEYS) <= token
    assert any(n.startswith("fusion.transformer.") for n in token) and "fusion.frame_position" in token
    frame = grads_after(model, lambda out: out.frame.logsumexp(1).sum() - out.frame[:, 0].sum())
    assert {"fusion.frame_position", "distill_token", "distill_position"} <= frame  # frames attend to the token
    assert not {"token_head.weight", "token_head.bias"} & frame
    assert any(n.startswith("backbone.transformer.") for n in frame)  # the text tower trains too


def test_average_is_mean_of_normalised_heads_and_head_switch(backbone):
    model = twohead(backbone)
    x = embeddings()
    with torch.no_grad():
        frame, token = model.encode_video_heads(x)
        expected = (F.normalize(frame, dim=-1) + F.normalize(token, dim=-1)) / 2
        torch.testing.assert_close(model.encode_video(x), expected)
        assert not torch.allclose(frame, token, atol=1e-3)
        with model.use_head("frame"):
            torch.testing.assert_close(model.encode_video(x), frame)
        with model.use_head("token"):
            torch.testing.assert_close(model.encode_video(x), token)
        assert model.head == "both"
        out = model(x, LABELS, return_heads=True)
        with model.use_head("token"):
            torch.testing.assert_close(out.token, model(x, LABELS))
        torch.testing.assert_close(out.both, model(x, LABELS))
    assert twohead(backbone, head="frame").head == "frame"
    with pytest.raises(ValueError, match="head='cls'"):
        model.head = "cls"


def test_loads_frame_path_from_actionclip_transf(backbone, tmp_path):
    torch.manual_seed(11)
    single = create_model("actionclip-transf", backbone=copy.deepcopy(backbone), num_frames=T, fusion_layers=1)
    with torch.no_grad():
        for p in single.parameters():
            p.add_(0.01)  # unlike the two-headed model's own initialisation anywhere
    path = save_weights(single, tmp_path / "transf.pt")
    fresh = twohead(backbone)
    model = twohead(backbone, init_from=str(path))
    state, reference = model.state_dict(), single.state_dict()
    assert set(state) - set(reference) == set(NEW_KEYS)
    for key, value in reference.items():
        assert torch.equal(state[key], value), key
    for key in NEW_KEYS:
        assert torch.equal(state[key], fresh.state_dict()[key]), key
    assert sorted(twohead(backbone).load_single_head(single.state_dict())) == sorted(NEW_KEYS)

    deeper = create_model("actionclip-transf", backbone=copy.deepcopy(backbone), num_frames=T, fusion_layers=2)
    target = twohead(backbone)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError, match=r"unexpected \['fusion.transformer.resblocks.1"):
        target.load_single_head(deeper.state_dict())
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # nothing half-loaded


# ---------------------------------------------------------------------- the losses
@pytest.fixture()
def fixed_logits():
    g = torch.Generator().manual_seed(5)
    frame, token, teacher = (torch.randn(4, 3, generator=g) * 3 for _ in range(3))
    labels = torch.tensor([0, 2, 0, 1])
    return frame, token, teacher, labels


def actionclip_by_hand(frame, labels, sharpness=10.0):
    logits = frame[:, labels]
    target = torch.softmax(sharpness * (labels[:, None] == labels[None, :]).float(), dim=1)

    def direction(lg):
        return sum(float(target[i, k] * (math.log(target[i, k]) - lg.log_softmax(1)[i, k]))
                   for i in range(len(labels)) for k in range(len(labels))) / len(labels)

    return (direction(logits) + direction(logits.t())) / 2


def test_soft_is_tau_squared_kl_per_logit(fixed_logits):
    frame, token, teacher, labels = fixed_logits
    tau, alpha = 2.0, 0.3
    out = DeiTTwoHeadObjective("soft", alpha=alpha, tau=tau).losses(frame, token, labels, teacher)
    p_t, log_p_s = (teacher / tau).softmax(1), (token / tau).log_softmax(1)
    kl = float((p_t * (p_t.log() - log_p_s)).sum())
    assert out["token"].item() == pytest.approx(kl * tau**2 / token.numel(), rel=1e-5)
    assert out["frame"].item() == pytest.approx(actionclip_by_hand(frame, labels), rel=1e-5)
    assert out["total"].item() == pytest.approx((1 - alpha) * out["frame"].item() + alpha * out["token"].item())


def test_hard_uses_teacher_argmax(fixed_logits):
    frame, token, teacher, labels = fixed_logits
    assert not torch.equal(teacher.argmax(1), labels)
    out = DeiTTwoHeadObjective("hard").losses(frame, token, labels, teacher)
    by_hand = -sum(float(token.log_softmax(1)[i, teacher.argmax(1)[i]]) for i in range(4)) / 4
    assert out["token"].item() == pytest.approx(by_hand, rel=1e-5)
    assert out["total"].item() == pytest.approx(0.5 * out["frame"].item() + 0.5 * by_hand)


def test_gt_ignores_the_teacher_and_none_has_no_token_loss(fixed_logits):
    frame, token, teacher, labels = fixed_logits
    gt = DeiTTwoHeadObjective("gt", alpha=0.25)
    out = gt.losses(frame, token, labels, teacher)
    by_hand = -sum(float(token.log_softmax(1)[i, labels[i]]) for i in range(4)) / 4
    assert out["token"].item() == pytest.approx(by_hand, rel=1e-5)
    assert out["total"].item() == pytest.approx(0.75 * out["frame"].item() + 0.25 * by_hand)
    assert gt.losses(frame, token, labels, -teacher)["total"].item() == out["total"].item()
    assert gt.losses(frame, token, labels)["total"].item() == out["total"].item()
    none = DeiTTwoHeadObjective("none").losses(frame, token, labels, teacher)
    assert "token" not in none and none["total"].item() == pytest.approx(actionclip_by_hand(frame, labels), rel=1e-5)
    classes = DeiTTwoHeadObjective("none", texts="classes").losses(frame, token, labels)["total"]
    target = torch.softmax(10.0 * F.one_hot(labels, 3).float(), dim=1)
    by_hand = float((target * (target.log() - frame.log_softmax(1))).sum(1).mean())
    assert classes.item() == pytest.approx(by_hand, rel=1e-5)


# ---------------------------------------------------------------------- teachers, training, evaluation
class FeatureClips:
    """Cached-feature clips: a class direction per frame plus noise, time-ordered so the transformer can help."""

    def __init__(self, n=18, seed=0, noise=0.8):
        self.classes = ["left", "right", "grow"]
        g = torch.Generator().manual_seed(seed)
        base = torch.randn(len(self.classes), T, D, generator=torch.Generator().manual_seed(42))
        self.labels = [i % len(self.classes) for i in range(n)]
        self.frames = torch.stack([base[c] + noise * torch.randn(T, D, generator=g) for c in self.labels])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"frames": self.frames[index], "label": self.labels[index], "index": index}


def teacher_for(student):
    torch.manual_seed(7)
    model = create_model("actionclip-transf", backbone=copy.deepcopy(student.backbone), num_frames=T, fusion_layers=1)
    return Teacher("teacher", model)


def batch_of(data, n=B):
    items = [data[i] for i in range(n)]
    return {"frames": torch.stack([x["frames"] for x in items]), "label": torch.tensor([x["label"] for x in items]),
            "index": torch.tensor([x["index"] for x in items])}


def test_missing_teacher_is_a_clear_error_and_gt_needs_none(backbone):
    model = twohead(backbone).train()
    data = FeatureClips()
    batch = batch_of(data)
    with pytest.raises(ValueError, match=r"needs the teacher 'teacher', but the Trainer was given no teachers"):
        DeiTTwoHeadObjective("soft")(model, batch, {}, data.classes)
    with pytest.raises(ValueError, match=r"needs the teacher 'big'.*\['teacher'\]"):
        DeiTTwoHeadObjective("hard", teacher="big")(model, batch, {"teacher": teacher_for(model)},
                                                    data.classes)
    loss, metrics = DeiTTwoHeadObjective("gt")(model, batch, {}, data.classes)
    assert loss.ndim == 0 and {"acc", "acc_frame", "acc_token", "loss_frame", "loss_token"} <= set(metrics)
    single = create_model("actionclip-transf", backbone=copy.deepcopy(backbone), num_frames=T, fusion_layers=1)
    with pytest.raises(ValueError, match="has no token head"):
        DeiTTwoHeadObjective("gt")(single.train(), batch, {}, data.classes)


def test_teacher_on_cached_embeddings_needs_the_students_image_encoder(backbone):
    model = twohead(backbone).train()
    data = FeatureClips()
    batch = batch_of(data)
    teacher = teacher_for(model)
    assert same_image_encoder(teacher.model, model)
    objective = DeiTTwoHeadObjective("soft")
    expected = teacher.model(batch["frames"], data.classes)
    torch.testing.assert_close(objective.teacher_logits(model, batch, {"teacher": teacher}, data.classes), expected)
    _, metrics = objective(model, batch, {"teacher": teacher}, data.classes)
    assert {"teacher_acc", "teacher_agreement", "loss_token"} <= set(metrics)

    other = teacher_for(model)
    with torch.no_grad():
        other.model.backbone.visual.proj.add_(0.01)
    assert not same_image_encoder(other.model, model)
    with pytest.raises(ValueError, match="another image encoder than the student"):
        DeiTTwoHeadObjective("hard")(model, batch, {"teacher": other}, data.classes)


def test_trainer_run_reduces_the_loss(backbone, tmp_path):
    model = twohead(backbone)
    model.backbone.visual.requires_grad_(False)
    model.backbone.token_embedding.requires_grad_(False)
    teacher = teacher_for(model)
    cfg = load_config(None, [f"out_dir={tmp_path / 'run'}", f"results_dir={tmp_path / 'results'}", "run_name=twohead",
                             "epochs=4", "seed=0", "device=cpu", "data.batch_size=6", "optim.lr=3e-4",
                             "optim.warmup_epochs=0", "optim.weight_decay=0.0", "objective.name=deit_twohead"])
    cfg = apply_override(cfg, "objective.kwargs=" + json.dumps({"distillation": "soft", "alpha": 0.5, "tau": 1.0}))
    frozen = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    trainer = Trainer(cfg, model, FeatureClips(), teachers={"teacher": teacher}, progress=False)
    result = trainer.fit()
    train = [h for h in trainer.history if h["split"] == "train"]
    assert train[-1]["loss"] < 0.6 * train[0]["loss"]
    assert {"acc", "acc_frame", "acc_token", "loss_frame", "loss_token", "teacher_acc",
            "teacher_agreement"} <= set(result["train"])
    assert all(torch.equal(frozen[k], v) for k, v in teacher.model.state_dict().items())


def test_evaluate_reports_each_head(backbone):
    model = twohead(backbone, templates=("{}",))
    data = FeatureClips(n=9, seed=3)
    results = evaluate_heads(model, data, batch_size=4, progress=False)
    assert list(results) == ["both", "frame", "token"] and model.head == "both"
    for head, result in results.items():
        with model.use_head(head):
            assert result["top1"] == evaluate(model, data, batch_size=4, progress=False)["top1"]
    probs = {head: None for head in results}
    for head in probs:
        with model.use_head(head), torch.no_grad():
            probs[head] = model.predict_proba(data.frames, data.classes)
    assert not torch.allclose(probs["frame"], probs["token"])
    assert list(evaluate_heads(model, data, heads=["token"], batch_size=4, progress=False)) == ["token"]
    with pytest.raises(ValueError, match="heads="):
        evaluate_heads(model, data, heads=["cls"], progress=False)
    single = create_model("actionclip-transf", backbone=copy.deepcopy(backbone), num_frames=T, fusion_layers=1)
    with pytest.raises(ValueError, match="no selectable heads"):
        evaluate_heads(single, data, progress=False)


def test_chapter_flow_on_cached_features(features, manifest, micro, tmp_path):  # noqa: F811
    """Chapter 2's trained actionclip-transf becomes the teacher and the student's starting point; the student trains
    on the same cached frame embeddings with the teacher built from the config, and reports every head."""
    base = micro_recipe(manifest, micro[0], tmp_path, name="actionclip-transf", kwargs={"fusion_layers": 1})
    teacher = train_and_evaluate(replace(base, run_name="teacher", out_dir=str(tmp_path / "teacher")), features,
                                 freeze_token_embedding=True, progress=False)
    teacher_model = replace(base.model, checkpoint=teacher["weights"])
    student_model = replace(base.model, name="actionclip-twohead",
                            kwargs={"fusion_layers": 1, "init_from": teacher["weights"]})
    student = replace(
        base, run_name="student", out_dir=str(tmp_path / "student"), model=student_model,
        objective=ObjectiveConfig("deit_twohead", {"distillation": "soft", "alpha": 0.5, "tau": 1.0}),
        teachers=[TeacherConfig(name="teacher", model=teacher_model)])
    row = train_and_evaluate(student, features, freeze_token_embedding=True, progress=False)
    assert row["input"] == "cached frame embeddings" and row["model"] == "actionclip-twohead"
    for key in ("top1", "top1_frame", "top1_token", "zs_top1", "zs_top1_frame", "zs_top1_token"):
        assert 0 <= row[key] <= 100, key
    record = json.loads((tmp_path / "results" / "student.json").read_text())
    assert {"loss_token", "teacher_agreement", "acc_frame", "acc_token"} <= set(record["metrics"]["train"])
