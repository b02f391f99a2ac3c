"""Each loss against hand-computed values or an explicit-loop reference, plus the properties the methods rely on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actiondistill.losses import (
    DistillationLoss,
    MultiTaskLoss,
    PKDSchedule,
    actionclip_class_loss,
    actionclip_loss,
    affinity_mimicking_loss,
    clip_infonce,
    fit_wise_weights,
    kd_hard,
    kd_soft,
    soft_cross_entropy,
    spatial_bce,
    spatial_kl,
    tinyclip_loss,
    wise_predict,
)


def _softmax(row: list[float]) -> list[float]:
    exps = [math.exp(x) for x in row]
    return [e / sum(exps) for e in exps]


def _rows(t: torch.Tensor) -> list[list[float]]:
    return t.double().tolist()


def _kl_rows(target: list[list[float]], logits: list[list[float]]) -> float:
    """mean_i sum_j t_ij (log t_ij - log softmax(logits)_ij), loop by loop."""
    total = 0.0
    for t_row, l_row in zip(target, logits):
        q = _softmax(l_row)
        total += sum(t * (math.log(t) - math.log(qj)) for t, qj in zip(t_row, q) if t > 0)
    return total / len(target)


def _soft_ce_loop(student: list[list[float]], teacher: list[list[float]], T: float = 1.0) -> float:
    total = 0.0
    for s_row, t_row in zip(student, teacher):
        p = _softmax([x / T for x in t_row])
        q = _softmax([x / T for x in s_row])
        total += -sum(pj * math.log(qj) for pj, qj in zip(p, q))
    return total / len(student)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# --- ActionCLIP -------------------------------------------------------------------------------------------------


def test_actionclip_loss_matches_loop_with_repeated_labels(gen):
    logits = torch.randn(4, 4, generator=gen) * 3
    labels = ["run", "jump", "run", "sit"]
    target = []
    for i in range(4):
        row = [10.0 if labels[i] == labels[k] else 0.0 for k in range(4)]
        target.append(_softmax(row))
    expected = (_kl_rows(target, _rows(logits)) + _kl_rows(target, _rows(logits.T))) / 2
    assert actionclip_loss(logits, logits.T, labels).item() == pytest.approx(expected, rel=1e-5)
    # integer tensor labels give the same ground truth as strings
    ids = torch.tensor([0, 1, 0, 2])
    assert actionclip_loss(logits, logits.T, ids).item() == pytest.approx(expected, rel=1e-5)


def test_actionclip_loss_hand_value_uniform_logits():
    # b = 2, distinct labels, all logits equal: target row = (e^10, 1) / (e^10 + 1), prediction (1/2, 1/2).
    # KL = t log t + (1 - t) log(1 - t) + log 2, identical for every row and both directions.
    t = math.exp(10) / (math.exp(10) + 1)
    expected = t * math.log(t) + (1 - t) * math.log(1 - t) + math.log(2)
    zeros = torch.zeros(2, 2)
    assert actionclip_loss(zeros, zeros, ["a", "b"]).item() == pytest.approx(expected, rel=1e-5)


def test_actionclip_loss_rejects_wrong_shape():
    with pytest.raises(ValueError, match="3 labels"):
        actionclip_loss(torch.zeros(2, 2), torch.zeros(2, 2), ["a", "b", "c"])


def test_actionclip_class_loss_is_kl_to_sharpened_one_hot(gen):
    logits = torch.randn(3, 5, generator=gen)
    labels = torch.tensor([4, 0, 2])
    target = [_softmax([10.0 if c == int(y) else 0.0 for c in range(5)]) for y in labels]
    assert actionclip_class_loss(logits, labels).item() == pytest.approx(_kl_rows(target, _rows(logits)), rel=1e-5)
    # a huge sharpness makes it plain cross-entropy
    ce = F.cross_entropy(logits, labels).item()
    assert actionclip_class_loss(logits, labels, sharpness=100.0).item() == pytest.approx(ce, rel=1e-5)


# --- CLIP / TinyCLIP --------------------------------------------------------------------------------------------


def test_clip_infonce_matches_loop(gen):
    img, txt = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    scale = 5.0
    ni = [[x / math.sqrt(sum(v * v for v in r)) for x in r] for r in _rows(img)]
    nt = [[x / math.sqrt(sum(v * v for v in r)) for x in r] for r in _rows(txt)]
    logits = [[scale * sum(a * b for a, b in zip(ri, rt)) for rt in nt] for ri in ni]
    i2t = -sum(math.log(_softmax(logits[i])[i]) for i in range(3)) / 3
    t2i = -sum(math.log(_softmax([logits[j][i] for j in range(3)])[i]) for i in range(3)) / 3
    assert clip_infonce(img, txt, scale).item() == pytest.approx((i2t + t2i) / 2, rel=1e-5)


def test_clip_infonce_hand_value_identical_embeddings():
    # all embeddings equal -> all logits equal -> loss = log N
    emb = torch.ones(4, 3)
    assert clip_infonce(emb, emb, torch.tensor(10.0)).item() == pytest.approx(math.log(4), rel=1e-6)


def test_affinity_mimicking_matches_loop_and_blend(gen):
    si, st = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    ti, tt = torch.randn(3, 6, generator=gen), torch.randn(3, 6, generator=gen)
    s_logits = 4.0 * F.normalize(si, dim=1) @ F.normalize(st, dim=1).T
    t_logits = 7.0 * F.normalize(ti, dim=1) @ F.normalize(tt, dim=1).T
    i2t = _soft_ce_loop(_rows(s_logits), _rows(t_logits))
    expected = (i2t + _soft_ce_loop(_rows(s_logits.T), _rows(t_logits.T))) / 2
    mimic = affinity_mimicking_loss(si, st, ti, tt, 4.0, 7.0)
    assert mimic.item() == pytest.approx(expected, rel=1e-5)
    clip = clip_infonce(si, st, 4.0).item()
    assert tinyclip_loss(si, st, ti, tt, 4.0, 7.0, blend=1.0).item() == pytest.approx(expected, rel=1e-5)
    assert tinyclip_loss(si, st, ti, tt, 4.0, 7.0, blend=0.0).item() == pytest.approx(clip, rel=1e-5)
    assert tinyclip_loss(si, st, ti, tt, 4.0, 7.0, blend=0.25).item() == pytest.approx(
        0.25 * expected + 0.75 * clip, rel=1e-5
    )


def test_affinity_mimicking_gradient_only_reaches_student(gen):
    si, st = torch.randn(3, 4, generator=gen, requires_grad=True), torch.randn(3, 4, generator=gen)
    ti = torch.randn(3, 4, generator=gen, requires_grad=True)
    affinity_mimicking_loss(si, st, ti, torch.randn(3, 4, generator=gen), 3.0, 3.0).backward()
    assert si.grad is not None and si.grad.abs().sum() > 0
    assert ti.grad is None


# --- KD / PKD / DeiT --------------------------------------------------------------------------------------------


def test_kd_soft_matches_loop_and_is_zero_for_equal_logits(gen):
    s, t = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    T = 2.0
    target = [_softmax([x / T for x in row]) for row in _rows(t)]
    expected = _kl_rows(target, [[x / T for x in row] for row in _rows(s)]) * T * T
    assert kd_soft(s, t, T).item() == pytest.approx(expected, rel=1e-5)
    assert kd_soft(t, t, T).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_hard_is_ce_against_teacher_argmax():
    s = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    t = torch.tensor([[0.0, 5.0, 1.0], [1.0, 0.0, 9.0]])
    # row 0: -log softmax(s0)[1] = log(e^2 + 2) ; row 1: -log(1/3) = log 3
    expected = (math.log(math.exp(2) + 2) + math.log(3)) / 2
    assert kd_hard(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_soft_cross_entropy_matches_loop_and_relation_to_kl(gen):
    s, t = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    assert soft_cross_entropy(s, t).item() == pytest.approx(_soft_ce_loop(_rows(s), _rows(t)), rel=1e-5)
    assert soft_cross_entropy(s, t, T=3.0).item() == pytest.approx(_soft_ce_loop(_rows(s), _rows(t), 3.0), rel=1e-5)
    # soft CE = KL + teacher entropy: at s == t it is the entropy of softmax(t)
    entropy = sum(-sum(p * math.log(p) for p in _softmax(row)) for row in _rows(t)) / 4
    assert soft_cross_entropy(t, t).item() == pytest.approx(entropy, rel=1e-5)


def test_kd_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same"):
        kd_soft(torch.zeros(2, 3), torch.zeros(2, 4))


def _deit_soft_loop(s: torch.Tensor, t: torch.Tensor, tau: float) -> float:
    total = 0.0
    for s_row, t_row in zip(_rows(s), _rows(t)):
        p = _softmax([x / tau for x in t_row])
        q = _softmax([x / tau for x in s_row])
        total += sum(pj * (math.log(pj) - math.log(qj)) for pj, qj in zip(p, q))
    return total * tau * tau / s.numel()


def test_deit_soft_hard_and_alpha_extremes(gen):
    cls_logits, dist_logits = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    teacher_logits = torch.randn(3, 4, generator=gen)
    labels = torch.tensor([0, 3, 1])
    base = F.cross_entropy(cls_logits, labels).item()
    soft = _deit_soft_loop(dist_logits, teacher_logits, 2.0)
    hard = F.cross_entropy(dist_logits, teacher_logits.argmax(1)).item()
    ce = nn.CrossEntropyLoss()
    out = (cls_logits, dist_logits)
    for alpha in (0.0, 0.3, 1.0):
        loss = DistillationLoss(ce, distillation_type="soft", alpha=alpha, tau=2.0)
        got = loss(out, labels, teacher_logits=teacher_logits).item()
        assert got == pytest.approx((1 - alpha) * base + alpha * soft, rel=1e-5)
    hard_loss = DistillationLoss(ce, distillation_type="hard", alpha=0.5)
    assert hard_loss(out, labels, teacher_logits=teacher_logits).item() == pytest.approx((base + hard) / 2, rel=1e-5)
    terms = hard_loss.components(out, labels, teacher_logits=teacher_logits)
    assert terms["base"].item() == pytest.approx(base) and terms["distill"].item() == pytest.approx(hard)
    none_loss = DistillationLoss(ce, distillation_type="none")
    assert none_loss(out, labels).item() == pytest.approx(base, rel=1e-6)


def test_deit_teacher_callable_runs_without_grad_and_single_head_student(gen):
    teacher = nn.Linear(5, 3)
    student = nn.Linear(5, 3)
    x = torch.randn(4, 5, generator=gen)
    labels = torch.tensor([0, 1, 2, 0])
    loss_fn = DistillationLoss(nn.CrossEntropyLoss(), teacher=teacher, distillation_type="soft", alpha=1.0)
    s_out = student(x)
    loss = loss_fn(s_out, labels, inputs=x)
    assert loss.item() == pytest.approx(_deit_soft_loop(s_out.detach(), teacher(x).detach(), 1.0), rel=1e-5)
    loss.backward()
    assert student.weight.grad is not None and teacher.weight.grad is None
    # student == teacher: the distillation term vanishes
    assert loss_fn(teacher(x), labels, inputs=x).item() == pytest.approx(0.0, abs=1e-6)


def test_deit_errors():
    with pytest.raises(ValueError, match="distillation_type"):
        DistillationLoss(nn.CrossEntropyLoss(), distillation_type="medium")
    loss_fn = DistillationLoss(nn.CrossEntropyLoss(), distillation_type="soft")
    with pytest.raises(ValueError, match="needs a teacher"):
        loss_fn(torch.zeros(2, 3), torch.tensor([0, 1]))


# --- spatial multi-task -----------------------------------------------------------------------------------------


def test_spatial_kl_matches_loop_with_zero_targets():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.2, 0.6]])
    assert spatial_kl(logits, targets).item() == pytest.approx(_kl_rows(_rows(targets), _rows(logits)), rel=1e-5)
    with pytest.raises(ValueError, match="sum to 1"):
        spatial_kl(logits, torch.ones(2, 3))


def test_spatial_bce_hand_value():
    # logits 0 -> p = 1/2 -> BCE = log 2 for any target; logit log(3) with target 1 -> -log(3/4)
    got = spatial_bce(torch.tensor([[0.0, math.log(3)]]), torch.tensor([[1.0, 1.0]])).item()
    assert got == pytest.approx((math.log(2) - math.log(0.75)) / 2, rel=1e-6)


def test_multitask_loss_weights_terms_and_errors():
    mtl = MultiTaskLoss({"scene": 0.5, "shape": 2.0})
    main = torch.tensor(1.0, requires_grad=True)
    total, terms = mtl(main, {"scene": torch.tensor(4.0), "shape": torch.tensor(0.25)})
    assert total.item() == pytest.approx(1.0 + 0.5 * 4.0 + 2.0 * 0.25)
    assert {k: v.item() for k, v in terms.items()} == {"main": 1.0, "scene": 4.0, "shape": 0.25, "total": 3.5}
    total.backward()
    assert main.grad.item() == 1.0
    with pytest.raises(ValueError, match="do not match"):
        mtl(main, {"scene": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="reserved"):
        MultiTaskLoss({"main": 1.0})


# --- PKD schedule -----------------------------------------------------------------------------------------------


def test_pkd_schedule_switches_exactly_at_milestones():
    sched = PKDSchedule([3, 7], ["mv", "residual", "self"])
    assert [sched.teacher_at(e) for e in range(9)] == ["mv"] * 3 + ["residual"] * 4 + ["self"] * 2
    assert sched(6) == "residual" and sched(7) == "self"


def test_pkd_presets():
    assert PKDSchedule.progressive(9) == PKDSchedule([3, 6], ["mv", "residual", "self"])
    assert PKDSchedule.anti_curriculum(9).teachers == ("self", "residual", "mv")
    assert PKDSchedule.ending_on_iframe(9).teachers == ("mv", "residual", "iframe")
    only = PKDSchedule.iframe_only(5)
    assert {only.teacher_at(e) for e in range(5)} == {"iframe"}
    assert PKDSchedule.progressive(10).milestones == (3, 6)
    assert PKDSchedule.progressive(3).milestones == (1, 2)


def test_pkd_schedule_errors():
    with pytest.raises(ValueError, match="len\\(teachers\\)"):
        PKDSchedule([3], ["mv"])
    with pytest.raises(ValueError, match="strictly increasing"):
        PKDSchedule([5, 5], ["mv", "residual", "self"])
    with pytest.raises(ValueError, match="epochs"):
        PKDSchedule.progressive(2)


# --- WISE -------------------------------------------------------------------------------------------------------


def _toy_ics(gen: torch.Generator, n: int = 200, c: int = 4):
    """Three ICs: a noisy one first, then two informative ones (a good ensemble must down-weight the first)."""
    labels = torch.randint(0, c, (n,), generator=gen)
    signal = F.one_hot(labels, c).float()
    ic1 = 4.0 * torch.randn(n, c, generator=gen)
    ic2 = 1.5 * signal + torch.randn(n, c, generator=gen)
    ic3 = 1.5 * signal + torch.randn(n, c, generator=gen)
    return [ic1, ic2, ic3], labels


def _prefix_z(logits_list, w):
    return sum(w[i] * logits_list[i] for i in range(len(w))) / len(w)


def test_wise_fit_improves_training_accuracy(gen):
    ics, labels = _toy_ics(gen)
    weights = fit_wise_weights(ics, labels, iterations=200, lr=0.1, progress=False)
    assert [tuple(w.shape) for w in weights] == [(1,), (2,), (3,)]
    for k in (2, 3):
        acc_init = (_prefix_z(ics, torch.ones(k)).argmax(1) == labels).float().mean()
        acc_fit = (_prefix_z(ics, weights[k - 1]).argmax(1) == labels).float().mean()
        assert acc_fit > acc_init + 0.05
    assert weights[2][0].abs() < weights[2][1]  # the noisy IC lost weight


def test_wise_fit_equals_separate_per_prefix_sgd(gen):
    ics, labels = _toy_ics(gen, n=50)
    weights = fit_wise_weights(ics, labels, iterations=20, lr=0.1, progress=False)
    w = torch.ones(2, requires_grad=True)
    for _ in range(20):
        loss = F.cross_entropy(_prefix_z(ics, w), labels)
        (grad,) = torch.autograd.grad(loss, w)
        w = (w - 0.1 * grad).detach().requires_grad_(True)
    torch.testing.assert_close(weights[1], w.detach(), rtol=1e-5, atol=1e-6)


def test_wise_predict_exits_and_fallback():
    # sample 0: IC1 alone is confident; sample 1: confident only once IC2 joins; sample 2: never confident
    ic1 = torch.tensor([[9.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.3]])
    ic2 = torch.tensor([[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.2, 0.0, 0.0]])
    ic3 = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    weights = [torch.ones(1), torch.ones(2), torch.ones(3)]
    pred, exits = wise_predict([ic1, ic2, ic3], weights, threshold=0.9, fallback_weights=[1.0, 3.0],
                               fallback_indices=[0, 2])
    # fallback for sample 2: 1 * ic1 + 3 * ic3 = (1.5, 0, 0.3) -> class 0
    assert pred.tolist() == [0, 1, 0]
    assert exits.tolist() == [0, 1, 3]
    # explicit per-sample loop as the reference
    for n in range(3):
        for k in range(1, 4):
            p = torch.softmax(_prefix_z([ic1[n:n + 1], ic2[n:n + 1], ic3[n:n + 1]], weights[k - 1]), 1)
            if p.max() > 0.9:
                assert (exits[n].item(), pred[n].item()) == (k - 1, p.argmax().item())
                break
        else:
            assert exits[n].item() == 3


def test_wise_predict_validates_inputs():
    ics = [torch.zeros(2, 3)] * 3
    with pytest.raises(ValueError, match="out of range"):
        wise_predict(ics, [torch.ones(1), torch.ones(2), torch.ones(3)], 0.5)  # PKD default indices need 12 ICs
    with pytest.raises(ValueError, match="weights"):
        wise_predict(ics, [torch.ones(1), torch.ones(2)], 0.5, [1.0], [2])
