"""Chapter 7: the teacher's view of the student's frames, the two-headed student with spatial heads and its combined
loss, the combinations' configs, one small end-to-end run of every combination on cached features (reuse included),
the final table with its latency run and the checks on the chapters' records (the goal's verdict and the figures:
tests/test_ch07_combined.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
import torch
from test_frame_cache import FRAMES, MICRO, SIZE, cache_root, features, manifest, micro, micro_recipe  # noqa: F401  (fixtures)

from actiondistill import combined as cx
from actiondistill.chapters import ch07_combined as ch
from actiondistill.chapters.latency import classifier_latency
from actiondistill.config import TeacherConfig, TrainConfig
from actiondistill.deit import DeiTTwoHeadObjective
from actiondistill.engine.objectives import build_objective
from actiondistill.engine.runs import WEIGHTS_NAME, run_datasets, train_and_evaluate
from actiondistill.engine.teachers import Teacher
from actiondistill.evaluate import class_texts_of
from actiondistill.frame_cache import (
    FrameFeatureCache,
    FrameFeatures,
    TeacherFrameDataset,
    check_encoder,
)
from actiondistill.io import read_json
from actiondistill.models import create_model
from actiondistill.models.spatial import SpatialTwoHeadedActionCLIP
from actiondistill.models.two_headed import HeadLogits
from actiondistill.spatial import SpatialTargetCache, SpatialTargetDataset, ground_truth_targets, manifest_vocabularies
from actiondistill.spatial import experiment as sx

T = 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def student_features(manifest, micro, cache_root):  # noqa: F811
    """The 'student CLIP' (other weights) cached on the same world: `features` is the teacher's."""
    return FrameFeatureCache(manifest, MICRO, micro[1], SIZE, root=cache_root, progress=False).get()


@pytest.fixture(scope="module")
def truth(manifest):  # noqa: F811
    return ground_truth_targets(manifest, ("shape", "scene"))


def base_config(manifest_path, weights, tmp_path, name="actionclip-transf") -> TrainConfig:  # noqa: F811
    return micro_recipe(manifest_path, weights, tmp_path, name=name, kwargs={"fusion_layers": 1})


def collate(items):
    out = {key: torch.stack([torch.as_tensor(i[key]) for i in items]) for key in ("frames", "label", "index")}
    if "teacher_frames" in items[0]:
        out["teacher_frames"] = torch.stack([i["teacher_frames"] for i in items])
    return out


# ---------------------------------------------------------------------------------- the teacher's view of the frames
def test_teacher_frames_are_the_teachers_embeddings_of_the_same_frames(manifest, micro, features, student_features,  # noqa: F811
                                                                        truth, tmp_path):
    cfg = base_config(manifest, micro[1], tmp_path)
    train = run_datasets(cfg, student_features)["train"]  # a ClassSubset around a FrameFeatureDataset
    paired = SpatialTargetDataset(TeacherFrameDataset(train, features), truth)
    twin = run_datasets(replace(cfg, model=replace(cfg.model, pretrained=str(micro[0]))), features)["train"]
    assert len(paired) == len(train) and class_texts_of(paired) == class_texts_of(train)
    changed = False
    for epoch in (0, 1):
        paired.set_epoch(epoch)
        twin.set_epoch(epoch)
        for i in range(0, len(paired), 5):
            item, own, theirs = paired[i], train[i], twin[i]
            assert torch.equal(item["frames"], own["frames"]) and item["label"] == own["label"]
            assert torch.equal(item["teacher_frames"], theirs["frames"])  # the teacher's cache, the same frames
            assert set(item["spatial_targets"]) == {"shape", "scene"}
            if epoch == 1:
                paired.set_epoch(0)
                changed |= not torch.equal(paired[i]["teacher_frames"], item["teacher_frames"])
                paired.set_epoch(1)
    assert changed  # training samples other frames each epoch, and the teacher follows

    other = FrameFeatures(features.features, features.offsets, features.paths,
                          {**features.meta, "manifest_sha256": "0" * 64})
    with pytest.raises(ValueError, match="same manifest"):
        TeacherFrameDataset(train, other)
    fewer = FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=tmp_path / "f", max_frames=FRAMES // 2,
                              progress=False).get()
    with pytest.raises(ValueError, match="same frame layout"):
        TeacherFrameDataset(train, fewer)
    with pytest.raises(ValueError, match="FrameFeatureDataset"):
        TeacherFrameDataset([{"frames": torch.zeros(2, 3), "index": 0}], features)


def test_check_encoder_reads_the_cache_key(features, micro):  # noqa: F811
    check_encoder(features, MICRO, micro[0], "the teacher's")
    with pytest.raises(ValueError, match="cache the features of the teacher's image encoder"):
        check_encoder(features, MICRO, micro[1], "the teacher's")
    with pytest.raises(ValueError, match="no pretrained weights"):
        check_encoder(features, MICRO, None, "the teacher's")


def test_deit_teacher_reads_teacher_frames(manifest, micro, features, student_features, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    student = create_model("actionclip-twohead", backbone=MICRO, pretrained=micro[1], num_frames=T,
                           fusion_layers=1).train()
    teacher = Teacher("teacher", create_model("actionclip-transf", backbone=MICRO, pretrained=micro[0], num_frames=T,
                                              fusion_layers=1))
    train = TeacherFrameDataset(run_datasets(base_config(manifest, micro[1], tmp_path),
                                                   student_features)["train"], features)
    batch = collate([train[i] for i in range(6)])
    texts = class_texts_of(train)
    objective = DeiTTwoHeadObjective("soft")
    with torch.no_grad():
        expected = teacher.model(batch["teacher_frames"], texts)
    torch.testing.assert_close(objective.teacher_logits(student, batch, {"teacher": teacher}, texts), expected)
    loss, metrics = objective(student, batch, {"teacher": teacher}, texts)
    assert torch.isfinite(loss) and {"teacher_agreement", "loss_token"} <= set(metrics)
    without = {k: v for k, v in batch.items() if k != "teacher_frames"}
    with pytest.raises(ValueError, match="another image encoder than the student"):
        objective(student, without, {"teacher": teacher}, texts)
    with pytest.raises(ValueError, match="disagree"):
        objective(student, {**batch, "teacher_frames": batch["teacher_frames"][:, :1]}, {"teacher": teacher}, texts)


# ---------------------------------------------------------------------------------- two heads with spatial heads
def test_spatial_twohead_model_and_its_combined_loss(micro):  # noqa: F811
    torch.manual_seed(0)
    model = create_model("spatial-twohead", backbone=MICRO, pretrained=micro[1], num_frames=T, fusion_layers=1,
                         templates=("{}",), spatial_heads={"shape": 3, "scene": 2})
    assert isinstance(model, SpatialTwoHeadedActionCLIP) and model.accepts_frame_embeddings
    plain = create_model("actionclip-twohead", backbone=MICRO, pretrained=micro[1], num_frames=T, fusion_layers=1,
                         templates=("{}",))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("spatial_heads.")})
    frames = torch.randn(4, T, 32, generator=torch.Generator().manual_seed(1))
    texts = ["growing", "shrinking", "spinning clockwise"]
    model.eval()
    plain.eval()
    with torch.no_grad():
        logits, heads = model(frames, texts, return_heads=True, heads=True)
        assert isinstance(logits, HeadLogits) and heads["shape"].shape == (4, 3) and heads["scene"].shape == (4, 2)
        for ours, theirs in zip(logits, plain(frames, texts, return_heads=True), strict=True):
            torch.testing.assert_close(ours, theirs)  # the spatial heads change nothing of the two heads
        selected, only = model(frames, texts, heads=["scene"])
        torch.testing.assert_close(selected, logits.both)
        assert list(only) == ["scene"]
        torch.testing.assert_close(model.predict_spatial(frames)["shape"], heads["shape"])
        with model.use_head("frame"):
            assert not torch.allclose(model.predict_spatial(frames)["shape"], heads["shape"])  # they read the head
    with pytest.raises(ValueError, match="spatial heads"):
        model(frames, texts, heads=["colour"])

    model.train()
    batch = {"frames": frames, "label": torch.tensor([0, 1, 2, 0]), "index": torch.arange(4),
             "spatial_targets": {"shape": torch.eye(3)[[0, 1, 2, 0]], "scene": torch.eye(2)[[0, 1, 1, 0]]}}
    action = DeiTTwoHeadObjective("gt")(model, batch, {}, texts)[0]
    alone = build_objective("spatial_multitask", weight=0.0, deit={"distillation": "gt"})
    loss, metrics = alone(model, batch, {}, texts)
    torch.testing.assert_close(loss, action)  # lambda = 0: exactly the two-headed loss
    both = build_objective("spatial_multitask", weight=1.0, deit={"distillation": "gt"})
    loss, metrics = both(model, batch, {}, texts)
    assert float(loss.detach()) > float(action.detach())
    # the spatial losses join at weight * (1 - alpha): against the label loss, as chapter 4 weighed them
    light = build_objective("spatial_multitask", weight=1.0, deit={"distillation": "gt", "alpha": 0.75})
    light_loss, light_metrics = light(model, batch, {}, texts)
    torch.testing.assert_close(light_loss - light_metrics["action_loss"], 0.25 * light_metrics["spatial_loss"])
    assert {"acc", "acc_frame", "acc_token", "loss_token", "action_loss", "spatial/shape", "spatial_acc/scene",
            "spatial_loss"} <= set(metrics) and "loss" in metrics
    loss.backward()
    assert model.spatial_heads["shape"][1].weight.grad is not None and model.distill_token.grad is not None
    with pytest.raises(ValueError, match="no token head"):
        both(create_model("spatial-multitask", backbone=MICRO, pretrained=micro[1], num_frames=T,
                          spatial_heads={"shape": 3, "scene": 2}), batch, {}, texts)


def test_spatial_targets_are_chapter_4s(manifest, micro, features, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))  # the targets' cache folder
    vocabularies = manifest_vocabularies(read_json(manifest), ("shape", "scene"))
    made = SpatialTargetCache(manifest, vocabularies, MICRO, micro[0], frames=2, features=features, progress=False)
    targets = made.get()
    record = {"setting": sx.SpatialSetting(1.0, frames=2),
              "targets": {"backbone": MICRO, "pretrained": str(micro[0]), "temperature": made.temperature,
                          "aggregate": "mean", "objectives": ["shape", "scene"], "key": made.key}}
    again = cx.spatial_targets_of(record, manifest, features, progress=False)
    assert again.names == ["shape", "scene"] and (again.targets["shape"] == targets.targets["shape"]).all()
    with pytest.raises(ValueError, match="rerun chapter 4"):
        cx.spatial_targets_of({**record, "targets": {**record["targets"], "temperature": 0.5}}, manifest, features,
                              progress=False)
    truth = cx.spatial_targets_of({**record, "setting": sx.SpatialSetting(1.0, source=sx.GROUND_TRUTH)}, manifest)
    assert truth.meta["source"] == "ground_truth"


# ---------------------------------------------------------------------------------- configurations
def settings(micro, truth, variant="hard"):  # noqa: F811
    student = sx.student_model({"model": {"name": "actionclip-transf", "kwargs": {"fusion_layers": 1}}}, MICRO,
                               str(micro[1]))
    spatial = {"setting": sx.SpatialSetting(1.0, ("shape",), sx.GROUND_TRUTH), "student": student,
               "targets": {}, "headline": {}, "weights": {}}
    deit = {"variant": variant, "label": variant, "uses_teacher": variant in ("soft", "hard"), "alpha": 0.5,
            "tau": 1.0, "soft_alpha": 0.9, "fusion_layers": 1, "vs_single": None}
    return spatial, deit


def test_combination_configs(manifest, micro, truth, tmp_path):  # noqa: F811
    base = base_config(manifest, micro[1], tmp_path)
    spatial, deit = settings(micro, truth)
    teacher = TeacherConfig(name="teacher", model=replace(base.model, pretrained=str(micro[0]), checkpoint="t.pt"))
    common = {"spatial": spatial, "targets": truth, "deit": deit, "teacher": teacher, "run_prefix": "c",
              "runs_dir": tmp_path / "runs"}
    swap_spatial = cx.combination_config(base, "swap+spatial", 3, **common)
    assert swap_spatial.model.name == "spatial-multitask" and swap_spatial.teachers == []
    assert swap_spatial.model.kwargs["spatial_heads"] == {"shape": truth.head_sizes()["shape"]}
    assert swap_spatial.objective.kwargs["objectives"] == ["shape"] and swap_spatial.seed == 3
    swap_deit = cx.combination_config(base, "swap+deit", 3, **common)
    assert (swap_deit.model.name, swap_deit.objective.name) == ("actionclip-twohead", "deit_twohead")
    assert swap_deit.objective.kwargs["distillation"] == "hard" and swap_deit.teachers == [teacher]
    assert swap_deit.model.pretrained == str(micro[1])  # the student's CLIP, the teacher's only in the teacher
    everything = cx.combination_config(base, "swap+spatial+deit", 3, **common)
    assert everything.model.name == "spatial-twohead" and everything.teachers == [teacher]
    assert everything.model.kwargs == {"fusion_layers": 1, "spatial_heads": {"shape": truth.head_sizes()["shape"]},
                                       "head_input": "video"}
    assert everything.objective.name == "spatial_multitask" and everything.objective.kwargs["weight"] == 1.0
    assert everything.objective.kwargs["deit"] == swap_deit.objective.kwargs
    assert everything.run_name == "c-swap-spatial-deit-seed3"
    assert everything.out_dir == str(tmp_path / "runs" / "c-swap-spatial-deit-seed3")
    soft = cx.combination_config(base, "swap+deit", 0, **{**common, "deit": {**deit, "variant": "soft"}})
    assert soft.objective.kwargs["alpha"] == 0.9  # the soft variant's own weight, as chapter 5 trained it
    with pytest.raises(ValueError, match="spatial="):
        cx.combination_config(base, "swap+spatial", 0)
    with pytest.raises(ValueError, match="deit="):
        cx.combination_config(base, "swap+deit", 0)
    with pytest.raises(ValueError, match="combination 'spatial'"):
        cx.combination_config(base, "spatial", 0)


# ---------------------------------------------------------------------------------- end to end
def test_combinations_end_to_end(manifest, micro, features, student_features, truth, tmp_path,  # noqa: F811
                                 monkeypatch):
    teacher_base = base_config(manifest, micro[0], tmp_path)
    teacher_row = train_and_evaluate(replace(teacher_base, run_name="teacher", out_dir=str(tmp_path / "teacher")),
                                     features, freeze_token_embedding=True, progress=False)
    choice = {"teacher": "actionclip-transf", "label": "ActionCLIP Transf", "weights": {"0": teacher_row["weights"]},
              "model": {"name": "actionclip-transf", "backbone": MICRO, "pretrained": str(micro[0]),
                        "num_frames": T, "kwargs": {"fusion_layers": 1}}}
    base = base_config(manifest, micro[1], tmp_path)
    swap_row = train_and_evaluate(replace(base, run_name="swap", out_dir=str(tmp_path / "swap")), student_features,
                                  freeze_token_embedding=True, progress=False)
    swap = {"best": {"init": "tinyclip"}, "runs": [{**swap_row, "init": "tinyclip"}]}
    spatial, deit = settings(micro, truth, variant="soft")
    common = {"swap": swap, "spatial": spatial, "targets": truth, "deit": deit, "choice": choice,
              "features": student_features, "teacher_features": features, "freeze_token_embedding": True,
              "run_prefix": "c", "runs_dir": tmp_path / "runs", "progress": False}
    runs = cx.run_combinations(base, [0], **common)
    assert list(runs["combination"]) == list(cx.COMBINATIONS)
    assert list(runs["reused_from"]) == ["chapter 3", "", "", ""]
    assert runs["top1"].between(0, 100).all() and runs["zs_top1"].between(0, 100).all()
    assert list(runs["model"]) == ["actionclip-transf", "spatial-multitask", "actionclip-twohead", "spatial-twohead"]
    assert runs.set_index("combination").loc["swap+spatial+deit", "top1_token"] >= 0
    for name in ("c-swap-deit-seed0", "c-swap-spatial-deit-seed0"):  # the teachers read their own embeddings
        train = read_json(tmp_path / "results" / f"{name}.json")["metrics"]["train"]
        assert 0 <= train["teacher_agreement"] <= 1 and "loss_token" in train
    assert "spatial_loss" in read_json(tmp_path / "results" / "c-swap-spatial-deit-seed0.json")["metrics"]["train"]

    # chapter 4's run of this very configuration is read back, not trained again
    first = runs.set_index("combination").loc["swap+spatial"]
    monkeypatch.setattr(cx, "train_combination", lambda *a, **k: pytest.fail("a recorded run was trained again"))
    again = cx.run_combinations(base, [0], ["swap+spatial"], **{**common, "spatial": {**spatial,
                                                                                      "weights": {0: first.weights}}})
    assert again.loc[0, "reused_from"] == "chapter 4" and again.loc[0, "top1"] == first.top1
    monkeypatch.undo()

    cfg = cx.combination_config(base, "swap+deit", 0, deit=deit, teacher=TeacherConfig(
        name="teacher", model=replace(teacher_base.model, checkpoint=teacher_row["weights"])))
    with pytest.raises(ValueError, match="teacher_features="):
        cx.train_combination(cfg, student_features, None, progress=False)
    with pytest.raises(ValueError, match="teacher 'teacher''s image encoder"):
        cx.train_combination(cfg, student_features, student_features, progress=False)

    summary = cx.summarise(runs)
    assert list(summary.index) == list(cx.COMBINATIONS) and summary["seeds"].eq(1).all()
    added = cx.added_value(runs)
    assert list(added.index) == list(cx.COMBINATIONS[1:]) and (added["verdict"] == "unknown").all()
    assert "one seed" in added.loc["swap+deit", "sentence"]

    # every model of the book from its records: the teacher first, one model per set of weights
    entries = [("chapter 2", "teacher", {0: teacher_row["weights"]}),
               ("chapter 3", "swap, TinyCLIP", {0: swap_row["weights"], 1: "unused.pt"})]
    entries += [("chapter 7", cx.LABELS[c], {0: w}) for c, w in zip(runs["combination"], runs["weights"],
                                                                     strict=True)]
    models = cx.collect(entries, [0], tmp_path / "results")
    assert list(models["model"])[:2] == ["teacher", "swap, TinyCLIP = swap"] and len(models) == 5
    specs = cx.architectures(models)
    assert list(specs)[0] == f"actionclip-transf on {MICRO}" and len(specs) == 4
    assert models["arch_name"].iloc[1] == models["arch_name"].iloc[0]  # teacher and swap: one architecture here
    assert "init_from" not in json.dumps(specs)
    latency = classifier_latency(specs, class_texts_of(run_datasets(base, student_features)["train"]),
                                 frames=(T,), batches=(1, 2), warmup=1, calls=1, progress=False)
    assert set(latency["model"]) == set(specs) and set(latency["batch"]) == {1, 2}
    table = cx.final_table(models, latency, frames=T, throughput_batch=2)
    assert table.index[0] == "teacher" and table["speedup"].iloc[0] == 1.0 and table["drop"].iloc[0] == 0.0
    assert (table["params_total_m"] > 0).all() and (table["throughput_clips_s"] > 0).all()
    assert table.loc["swap + spatial", "params_total_m"] > table.loc["swap, TinyCLIP = swap", "params_total_m"]
    with pytest.raises(ValueError, match="no rows at 4 frames"):
        cx.final_table(models, latency, frames=4)
    outcome = ch.goal(table)
    assert outcome["sentence"].startswith(("The goal", "No student")) and isinstance(outcome["reached"], list)
    path = cx.write_results(cx.results_path("unit", tmp_path / "results"), runs, table, outcome)
    assert json.loads(path.read_text())["table"][0]["model"] == "teacher"
    with pytest.raises(ValueError, match="no weights for the seeds"):
        cx.collect([("chapter 2", "teacher", {5: "x.pt"})], [0], tmp_path / "results")
    with pytest.raises(FileNotFoundError, match="evaluation record"):
        cx.collect([("chapter 2", "teacher", {0: str(tmp_path / "nowhere" / "model.pt")})], [0],
                   tmp_path / "results")


# ---------------------------------------------------------------------------------- settings and records
def test_deit_setting_findings_and_reported():
    runs = [{"variant": v, "seed": s, "top1": x, "weights": f"{v}{s}.pt"}
            for v, xs in {"single": [20, 21, 22], "gt": [15, 16, 17], "hard": [18, 19, 20]}.items()
            for s, x in enumerate(xs)]
    record = {"runs": runs, "alpha": 0.5, "tau": 1.0, "soft_alpha": 0.9, "fusion_layers": 2}
    setting = cx.deit_setting(record)
    assert setting["variant"] == "hard" and setting["uses_teacher"] and setting["vs_single"].verdict == "loss"
    assert setting["top1_mean"] == pytest.approx(19.0) and setting["soft_alpha"] == 0.9
    with pytest.raises(ValueError, match="no two-headed variant"):
        cx.deit_setting({**record, "runs": [r for r in runs if r["variant"] == "single"]})

    one_seed = {"headline": {"helps": False, "gain": {"seeds": 1, "mean": -2.0}}}
    text = cx.earlier_findings(one_seed, setting)
    assert text.startswith("Chapter 4 ran one seed") and "fell below the single head" in text
    assert "regardless" in text
    helped = {"headline": {"helps": True, "gain": {"seeds": 3, "mean": 2.0, "hurts": False}}}
    gain = {**setting, "vs_single": replace(setting["vs_single"], verdict="gain", mean=1.5)}
    text = cx.earlier_findings(helped, gain)
    assert "helped (+2.0 points" in text and text.endswith("Both are combined with the swap.")

    reported = cx.reported_table()
    assert (reported["source"] == "reported").all() and reported["drop"].iloc[1] == pytest.approx(2.3)
    assert reported["speedup"].iloc[1] == 1.73


def test_read_chapters_refuses_stale_records(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    model = {"name": "actionclip-transf", "backbone": "b", "pretrained": "p", "kwargs": {}}
    weights = {"0": "w0.pt"}

    def write(name, record):
        (folder / f"{name}-unit.json").write_text(json.dumps(record))

    choice = {"teacher": "actionclip-transf", "model": model, "weights": weights}  # kit.read_teacher's
    write("backbone_swap", {"teacher": {"model": model, "weights": weights}})
    write("spatial", {"teacher": "actionclip-transf"})
    write("deit", {"teacher": {"model": model, "weights": weights}})
    records = cx.read_chapters(choice, "unit", folder)
    assert set(records) == {"choice", "swap", "spatial", "deit"} and records["choice"] == choice
    write("spatial", {"teacher": "actionclip-lstm"})
    with pytest.raises(ValueError, match="rerun chapter 4 .*04_spatial"):
        cx.read_chapters(choice, "unit", folder)
    write("spatial", {"teacher": "actionclip-transf"})
    write("deit", {"teacher": {"model": model, "weights": {"0": "other.pt"}}})
    with pytest.raises(ValueError, match="05_deit"):
        cx.read_chapters(choice, "unit", folder)
    with pytest.raises(FileNotFoundError, match="03_backbone"):
        cx.read_chapters(choice, "nowhere", folder)


def test_book_entries_lists_every_chapter():
    records = {
        "choice": {"label": "ActionCLIP Transf", "weights": {"0": "t0.pt"}},
        "swap": {"runs": [{"init": i, "seed": 0, "weights": f"{i}.pt"} for i in ("tinyclip", "random")]},
        "spatial": {"best": sx.SpatialSetting(1.0).to_dict(), "weights": {"0": "s.pt"}},
        "deit": {"runs": [{"variant": v, "seed": 0, "weights": f"{v}.pt"} for v in ("single", "hard")]},
    }
    combos = pd.DataFrame({"combination": ["swap", "swap+deit"], "seed": [0, 0], "weights": ["tinyclip.pt", "c.pt"]})
    entries = cx.book_entries(records, combos)
    assert [e[0] for e in entries] == ["chapter 2", "chapter 3", "chapter 3", "chapter 4", "chapter 5", "chapter 5",
                                       "chapter 7", "chapter 7"]
    assert entries[0] == ("chapter 2", "teacher (ActionCLIP Transf)", {0: "t0.pt"})
    assert entries[3][1] == "spatial (λ=1, all, CLIP, K=8)" and entries[1][1] == "swap (TinyCLIP-distilled)"
    assert entries[-1] == ("chapter 7", "swap + two heads", {0: "c.pt"})


# ---------------------------------------------------------------------------------- learning curves
def test_a_run_with_a_validation_split_records_its_curve_and_keeps_only_its_weights(manifest, micro, features,  # noqa: F811
                                                                                  tmp_path):
    cfg = base_config(manifest, micro[0], tmp_path)
    cfg = replace(cfg, epochs=2, run_name="curve", out_dir=str(tmp_path / "curve"),
                  data=replace(cfg.data, eval_split="val"))
    row = train_and_evaluate(cfg, features, freeze_token_embedding=True, progress=False)
    assert [epoch for epoch, _ in row["val_curve"]] == [1, 2]
    assert all(0 <= top1 <= 100 for _, top1 in row["val_curve"])
    assert sorted(p.name for p in (tmp_path / "curve").glob("*.pt")) == [WEIGHTS_NAME]
    without = replace(cfg, run_name="flat", out_dir=str(tmp_path / "flat"), data=replace(cfg.data, eval_split=None))
    assert train_and_evaluate(without, features, freeze_token_embedding=True, progress=False)["val_curve"] == []


def curves_of(per_combination):
    """Runs rows as run_combinations gives them, from {combination: {seed: [(epoch, top1), ...]}}."""
    return pd.DataFrame([{"combination": c, "label": cx.LABELS[c], "seed": s, "val_curve": [list(p) for p in curve]}
                         for c, seeds in per_combination.items() for s, curve in seeds.items()])


def test_flattening_tells_a_curve_still_rising_from_a_flat_one():
    rising = {s: [(10, 30.0 + s), (20, 40.0 + s), (30, 50.0 + 2 * s)] for s in range(3)}
    flat = {s: [(10, 30.0), (20, 50.0 + s), (30, 50.5 - s)] for s in range(3)}
    runs = curves_of({"swap": flat, "swap+deit": rising, "swap+spatial": {0: [(10, 1.0), (30, 9.0)]}})
    curves = cx.learning_curves(runs)
    assert len(curves) == 3 * 3 + 3 * 3 + 2 and set(curves.columns) >= {"label", "seed", "epoch", "top1"}
    verdicts = cx.flattening(curves)
    assert verdicts.loc["swap", "flattened"] is True and verdicts.loc["swap", "from_epoch"] == 20
    assert verdicts.loc["swap+deit", "flattened"] is False and verdicts.loc["swap+deit", "gain"] == pytest.approx(11)
    assert "still rising" in verdicts.loc["swap+deit", "sentence"]
    one_seed = verdicts.loc["swap+spatial"]
    assert one_seed["flattened"] is None and "not judged" in one_seed["sentence"]
    assert cx.flattening_text(verdicts).startswith("swap: ") and cx.flattening_text(verdicts).endswith(".")
    assert cx.flattening(cx.learning_curves(curves_of({"swap": {0: []}}))).empty  # runs without validation
    once = cx.flattening(cx.learning_curves(curves_of({"swap": {0: [(1, 5.0)]}})))  # validated only at the end
    assert once.empty and cx.flattening_text(once).startswith("no curve can be judged")
    with pytest.raises(ValueError, match="tail=1"):
        cx.flattening(curves, tail=1)
