"""The compressed track's training: CE and PKD objectives, frozen backbones, cached features, the experiment's
saved logits and WISE on them, on tiny networks and a few generated clips of a square moving left or right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from actiondistill.config import DataConfig, ObjectiveConfig, OptimConfig, TrainConfig
from actiondistill.data.compressed_dataset import CompressedVideoDataset
from actiondistill.data.encode import write_video
from actiondistill.engine.objectives import build_objective
from actiondistill.losses import fit_wise_weights, soft_cross_entropy, wise_predict
from actiondistill.models.compressed_nets import MODALITIES, MODALITY_CHANNELS, CompressedTriplet
from actiondistill.pkd import (
    CompressedCEObjective,
    CompressedExperiment,
    ICHeads,
    PKDObjective,
    ViewBank,
    decoded_views,
    fixed_points,
    freeze_final_classifiers,
    mv_to_rgb,
    run_experiment,
    stage_features,
    triplet_outputs,
    wise_sweep,
)
from actiondistill.train import Trainer

SIDE, FRAMES = 32, 16


def _moving_square_clip(direction: int, seed: int) -> np.ndarray:
    """A textured 10x10 square crossing a smooth background left or right, (FRAMES, SIDE, SIDE, 3) uint8."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIDE, 0:SIDE]
    phase = rng.uniform(0, 2 * np.pi, 3)
    background = np.stack([96 + 60 * np.sin(xs / 5 + p) * np.cos(ys / 7 + p) for p in phase], -1)
    square = rng.integers(40, 255, (10, 10, 3))
    clip = []
    for t in range(FRAMES):
        x = 4 + t if direction > 0 else SIDE - 14 - t
        frame = background.copy()
        frame[11:21, x : x + 10] = square
        clip.append(frame)
    return np.clip(np.stack(clip), 0, 255).astype(np.uint8)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Run records and caches go to a temporary data folder, never the project's."""
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACTIONDISTILL_DATA", str(root))
        yield root


@pytest.fixture(scope="module")
def videos(data_root) -> dict[str, list[tuple[Path, int]]]:
    """Label 0: moving right, label 1: moving left; 8 training and 4 test clips (MPEG-4, GOP 12)."""
    folder = data_root / "videos"
    out: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for i in range(12):
        label = i % 2
        path = write_video(folder / f"clip{i}.mp4", _moving_square_clip(1 if label == 0 else -1, seed=i),
                           codec="mpeg4", gop=12, max_b_frames=0)
        out["train" if i < 8 else "test"].append((path, label))
    return out


def _triplet(freeze: bool = False, seed: int = 0) -> CompressedTriplet:
    torch.manual_seed(seed)
    return CompressedTriplet.build(3, width=4, freeze_backbone=freeze)


def _batch(n: int = 4, segments: int = 2, side: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {m: torch.randn(n, segments, MODALITY_CHANNELS[m], side, side, generator=g) for m in MODALITIES}
    return {**batch, "label": torch.randint(0, 3, (n,), generator=g), "index": torch.arange(n)}


def _config(tmp_path: Path, epochs: int, objective: str, kwargs: dict | None = None, lr: float = 1e-2) -> TrainConfig:
    return TrainConfig(seed=0, run_name="pkd-test", out_dir=str(tmp_path / "run"), results_dir=str(tmp_path / "res"),
                       device="cpu", epochs=epochs, data=DataConfig(batch_size=4, eval_split=None),
                       optim=OptimConfig(lr=lr, weight_decay=0.0, warmup_epochs=0.0, amp=False),
                       objective=ObjectiveConfig(name=objective, kwargs=kwargs or {}))


# ----------------------------------------------------------------------------------------------- objectives


def test_pkd_schedules_switch_teachers_at_their_milestones():
    expected = {
        "progressive": ["mv", "mv", "residual", "residual", "self", "self"],
        "ending_on_iframe": ["mv", "mv", "residual", "residual", "iframe", "iframe"],
        "anti_curriculum": ["self", "self", "residual", "residual", "mv", "mv"],
        "iframe_only": ["iframe"] * 6,
    }
    for name, teachers in expected.items():
        objective = build_objective("pkd", schedule=name, epochs=6)
        seen = []
        for epoch in range(6):
            objective.set_epoch(epoch)
            seen.append(objective.teacher)
        assert seen == teachers, name
    custom = PKDObjective({"milestones": [1], "teachers": ["residual", "self"]})
    assert [custom.schedule.teacher_at(e) for e in range(3)] == ["residual", "self", "self"]


def test_pkd_loss_is_soft_cross_entropy_against_the_active_teacher():
    model = _triplet(freeze=True).eval()
    batch = _batch()
    with torch.no_grad():
        outputs = model(batch["iframe"], batch["mv"], batch["residual"])
    objective = PKDObjective("progressive", epochs=3)
    for epoch, name in enumerate(["mv", "residual", "self"]):
        objective.set_epoch(epoch)
        with torch.no_grad():
            loss, metrics = objective(model, batch, {}, [])
        expected = torch.stack([soft_cross_entropy(outputs[m][k], outputs[m if name == "self" else name][3])
                                for m in MODALITIES for k in range(3)]).mean()
        torch.testing.assert_close(loss, expected)
        assert 0.0 <= float(metrics["teacher_agreement"]) <= 1.0


@pytest.mark.parametrize("schedule", ["progressive", "ending_on_iframe", "anti_curriculum"])
def test_no_gradient_reaches_a_teacher(schedule):
    """Backbones train here, so only detaching keeps stage 4 and the fc (the path to the teacher logits) at rest."""
    model = _triplet().train()
    objective = PKDObjective(schedule, epochs=3)
    for epoch in range(3):
        model.zero_grad(set_to_none=True)
        objective.set_epoch(epoch)
        loss, _ = objective(model, _batch(seed=epoch), {}, [])
        loss.backward()
        for m in MODALITIES:
            backbone = model.nets[m].backbone
            assert all(p.grad is None for p in [*backbone.layer4.parameters(), *backbone.fc.parameters()]), m
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.nets[m].ics.parameters()), m
            assert backbone.layer1[0].conv1.weight.grad.abs().sum() > 0, m


def test_ce_objective_trains_every_ic_and_stage0_only_the_final_classifier():
    model = _triplet().train()
    loss, metrics = CompressedCEObjective()(model, _batch(), {}, [])
    loss.backward()
    assert 0.0 <= float(metrics["acc"]) <= 1.0
    for m in MODALITIES:
        heads = [*model.nets[m].ics.parameters(), *model.nets[m].backbone.fc.parameters()]
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads), m
    model.zero_grad(set_to_none=True)
    loss, _ = CompressedCEObjective(exits=[4])(model, _batch(), {}, [])
    loss.backward()
    for m in MODALITIES:
        assert all(p.grad is None for p in model.nets[m].ics.parameters()), m
        assert model.nets[m].backbone.fc.weight.grad.abs().sum() > 0, m


def test_objectives_reject_bad_arguments_and_batches():
    with pytest.raises(ValueError, match="needs the run's `epochs`"):
        PKDObjective("progressive")
    with pytest.raises(ValueError, match="expected a PKDSchedule"):
        PKDObjective("curriculum", epochs=3)
    with pytest.raises(ValueError, match="teachers"):
        PKDObjective({"milestones": [1], "teachers": ["mv", "optical_flow"]})
    with pytest.raises(ValueError, match="exits"):
        CompressedCEObjective(exits=[0, 5])
    with pytest.raises(ValueError, match="missing"):
        triplet_outputs(_triplet(), {"frames": torch.zeros(1), "label": torch.zeros(1)})


# ------------------------------------------------------------------------------------------ features, views


def test_ic_heads_on_cached_stage_features_match_the_triplet():
    model = freeze_final_classifiers(_triplet(freeze=True)).eval()
    batch = _batch(n=5, segments=3)
    view = {m: batch[m] for m in MODALITIES}
    features = stage_features(model, view, batch_size=2, dtype=torch.float32, progress=False)
    heads = ICHeads(model).eval()
    with torch.no_grad():
        expected = model(batch["iframe"], batch["mv"], batch["residual"])
        got = heads(features["iframe"], features["mv"], features["residual"])
    for m in MODALITIES:
        for a, b in zip(got[m], expected[m], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not model.training and not any(p.requires_grad for p in model.nets["mv"].backbone.parameters())


def test_view_bank_cycles_views_by_epoch_and_checks_sizes():
    views = [{"x": torch.full((3, 2), float(v), dtype=torch.float16)} for v in range(2)]
    bank = ViewBank(views, [0, 1, 2], classes=["a", "b", "c"])
    assert bank[1]["x"].dtype == torch.float32 and bank[1]["label"] == 1
    values = []
    for epoch in range(4):
        bank.set_epoch(epoch)
        values.append(float(bank[0]["x"][0]))
    assert values == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="3 clips"):
        ViewBank([{"x": torch.zeros(2, 2)}], [0, 1, 2])


def test_mv_colours_encode_direction_and_length():
    mv = np.zeros((2, 2, 2), np.float32)
    mv[0, 0] = (4.0, 0.0)  # rightwards: hue 0 (red), full length
    rgb = mv_to_rgb(mv)
    np.testing.assert_allclose(rgb[0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(rgb[1, 1], [0.0, 0.0, 0.0])


# ---------------------------------------------------------------------------------- the Trainer on real items


def test_trainer_steps_on_a_compressed_dataset_reduce_the_loss(videos, tmp_path):
    dataset = CompressedVideoDataset(videos["train"], num_segments=2, size=SIDE, progress=False, workers=0)
    model = _triplet()
    trainer = Trainer(_config(tmp_path, 3, "compressed_ce"), model, dataset,
                      objective=build_objective("compressed_ce"), progress=False)
    trainer.fit()
    losses = [h["loss"] for h in trainer.history if h["split"] == "train"]
    assert losses[-1] < losses[0]


def test_frozen_backbones_stay_unchanged_while_the_ics_train(videos, tmp_path):
    views, labels = decoded_views(CompressedVideoDataset(videos["train"], num_segments=2, size=SIDE, progress=False,
                                                         workers=0), [1, 2], progress=False)
    model = freeze_final_classifiers(_triplet(freeze=True))
    before = {m: {k: v.clone() for k, v in model.nets[m].backbone.state_dict().items()} for m in MODALITIES}
    heads_before = [p.detach().clone() for p in model.nets["residual"].ics.parameters()]
    trainer = Trainer(_config(tmp_path, 3, "pkd", {"schedule": "progressive", "epochs": 3}), model,
                      ViewBank(views, labels), objective=PKDObjective("progressive", epochs=3), progress=False)
    trainer.fit()
    for m in MODALITIES:  # weights and batch-norm statistics alike
        for key, value in model.nets[m].backbone.state_dict().items():
            assert torch.equal(value, before[m][key]), f"{m} {key}"
    assert any(not torch.equal(a, b) for a, b in zip(model.nets["residual"].ics.parameters(), heads_before))


# ----------------------------------------------------------------------------------- experiment and WISE


@pytest.fixture(scope="module")
def results(videos, data_root):
    exp = CompressedExperiment(size=SIDE, segments=2, width=4, batch_size=4, views=1, stage0_epochs=2, ic_epochs=3,
                               stage0_lr=1e-2, ic_lr=1e-2, device="cpu")
    run = run_experiment(exp, videos["train"], {"test": videos["test"]}, ["right", "left"], seeds=[0],
                         variants=["ce", "pkd"], cache_root=data_root / "pkd", progress=False)
    return exp, run


def test_experiment_saves_logits_of_all_ics_and_reuses_them(results, videos, data_root):
    exp, first = results
    assert set(first.logits) == {("ce", 0), ("pkd", 0)}
    assert first.logits[("pkd", 0)]["test"].shape == (12, 4, 2)
    assert first.logits[("ce", 0)]["train"].shape == (12, 8, 2)
    assert {"decoding", "stage0", "features", "ics"} <= set(first.seconds)
    # Frozen final classifiers: IC4 of every network is the same in both variants; the ICs differ.
    ce, pkd = first.logits[("ce", 0)]["test"], first.logits[("pkd", 0)]["test"]
    torch.testing.assert_close(ce[[3, 7, 11]], pkd[[3, 7, 11]])
    assert not torch.equal(ce[0], pkd[0])
    again = run_experiment(exp, videos["train"], {"test": videos["test"]}, ["right", "left"], seeds=[0],
                           variants=["ce", "pkd"], cache_root=data_root / "pkd", progress=False)
    assert again.seconds == {}
    torch.testing.assert_close(again.logits[("pkd", 0)]["test"], pkd)
    table = first.ic_accuracy()
    assert len(table) == 24 and table["accuracy"].between(0, 100).all()



def test_ics_trained_side_by_side_give_the_logits_of_one_process(results, videos, data_root):
    import shutil

    exp, first = results
    for folder in first.cache_dir.glob("ics-*"):  # stage 0 stays: only the IC runs train again
        shutil.rmtree(folder)
    apart = run_experiment(exp, videos["train"], {"test": videos["test"]}, ["right", "left"], seeds=[0],
                           variants=["ce", "pkd"], cache_root=data_root / "pkd", progress=False, workers=2)
    assert set(apart.seconds) == {"decoding", "features", "ics"}  # stage 0 was reused
    for run, logits in first.logits.items():
        for split, values in logits.items():
            torch.testing.assert_close(apart.logits[run][split], values, rtol=0, atol=0)

def test_a_video_rendered_again_under_the_same_path_is_not_the_same_run(tmp_path):
    import os

    from actiondistill.pkd.experiment import _video_key

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"first rendering")
    before = _video_key([(clip, 1)])
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new revision of the world, same path
    assert _video_key([(clip, 1)]) != before and _video_key([(clip, 0)]) != _video_key([(clip, 1)])


def test_wise_on_saved_logits(results):
    _, run = results
    gmacs = run.wise_gmacs
    assert len(gmacs) == 12 and all(b > a for a, b in zip(gmacs, gmacs[1:]))
    for m in MODALITIES:
        assert all(b > a for a, b in zip(run.exit_gmacs[m], run.exit_gmacs[m][1:]))
    logits, labels = run.logits[("pkd", 0)], run.labels
    weights = fit_wise_weights(list(logits["train"]), labels["train"], iterations=50, progress=False)
    pred, exits = wise_predict(list(logits["test"]), weights, threshold=1.0)
    fused = CompressedTriplet.fuse({m: list(logits["test"][4 * i : 4 * i + 4]) for i, m in enumerate(MODALITIES)})
    assert torch.equal(pred, fused.argmax(1)) and bool((exits == 12).all())
    sweep = wise_sweep(logits["train"], labels["train"], logits["test"], labels["test"], gmacs,
                       thresholds=[0.0, 1.0], iterations=50)
    never, first = sweep.set_index("threshold").loc[1.0], sweep.set_index("threshold").loc[0.0]
    assert never["gmacs"] == pytest.approx(gmacs[-1]) and never["early_exit"] == 0.0
    assert first["gmacs"] == pytest.approx(gmacs[0]) and first["early_exit"] == 100.0
    points = fixed_points(logits["test"], labels["test"], run.exit_gmacs).set_index("model")
    assert never["accuracy"] == pytest.approx(points.loc["CoViAR 2I+MV+R", "accuracy"])
    assert points.loc["CoViAR 2I+MV+R", "gmacs"] == pytest.approx(sum(run.exit_gmacs[m][-1] for m in MODALITIES))
    with pytest.raises(ValueError, match="non-decreasing"):
        wise_sweep(logits["train"], labels["train"], logits["test"], labels["test"], gmacs[::-1])
