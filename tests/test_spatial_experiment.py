"""Chapter 4's experiment: settings and ablations, the student's architecture, the selection rule, the reliability
table, one small end-to-end run of settings x seeds on cached features, and the results record."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_frame_cache import MICRO, SIZE, cache_root, features, manifest, micro, micro_recipe  # noqa: F401  (fixtures)

from actiondistill.io import read_json
from actiondistill.spatial import SpatialTargetCache, SpatialTargets, Vocabulary, ground_truth_targets
from actiondistill.spatial import experiment as sx
from actiondistill.spatial.vocab import manifest_vocabularies


# ---------------------------------------------------------------------------------------------- settings
def test_settings_names_keys_and_validation():
    default = sx.SpatialSetting(1.0)
    assert default.name == "λ=1, all, CLIP, K=8" and default.targets_key == "clip-K8"
    gt = sx.SpatialSetting(0.3, ("shape", "scene"), sx.GROUND_TRUTH, frames=4)
    assert gt.name == "λ=0.3, shape+scene, ground truth" and gt.targets_key == "ground_truth"
    assert gt.slug == "lambda0.3-shape+scene-gt"
    # every lambda = 0 setting is the one baseline, whatever its other fields
    assert sx.SpatialSetting(0, ("shape",), sx.GROUND_TRUTH).name == sx.SpatialSetting(0.0).name
    assert sx.SpatialSetting.from_dict(gt.to_dict()) == gt
    for bad in ({"weight": -1.0}, {"weight": 1.0, "objectives": "shape"}, {"weight": 1.0, "objectives": ()},
                {"weight": 1.0, "source": "labels"}, {"weight": 1.0, "frames": 0}):
        with pytest.raises(ValueError):
            sx.SpatialSetting(**bad)


def test_ablations_vary_one_thing_each():
    groups = sx.ablation_settings(lambdas=(0, 0.3, 1, 3), objectives=("shape", "colour", "scene", "size"),
                                  frames=(1, 4, 8), weight=1.0, default_frames=8)
    default = sx.SpatialSetting(1.0, None, sx.FRAMEWORK, 8)
    assert set(groups) == {"lambda", "objectives", "targets", "frames"}
    assert all(default in settings for settings in groups.values())
    assert [s.weight for s in groups["lambda"]] == [0.0, 0.3, 1.0, 3.0]
    assert [s.objectives for s in groups["objectives"]] == [("shape",), ("colour",), ("scene",), ("size",), None]
    assert [s.source for s in groups["targets"]] == [sx.FRAMEWORK, sx.GROUND_TRUTH]
    assert [s.frames for s in groups["frames"]] == [1, 4, 8]
    assert len(sx.unique_settings(groups)) == 4 + 4 + 1 + 2  # lambdas, single objectives, ground truth, K=1 and 4
    assert "targets" not in sx.ablation_settings(ground_truth=False)
    with pytest.raises(ValueError, match="lambda > 0"):
        sx.ablation_settings(weight=0.0)


def test_student_keeps_a_trainable_fusion_else_falls_back():
    def choice(name, kwargs=None):
        return {"model": {"name": name, "kwargs": kwargs or {}}}

    lstm = sx.student_model(choice("actionclip-lstm"), "embedded-tiny", "w.pt")
    assert lstm["fusion"] == "lstm" and lstm["kwargs"] == {"fusion": "lstm", "head_input": "video"}
    assert lstm["name"] == "spatial-multitask" and lstm["backbone"] == "embedded-tiny"
    transf = sx.student_model(choice("actionclip-transf", {"fusion_layers": 3}), "embedded-tiny", None)
    assert transf["kwargs"] == {"fusion": "transf", "fusion_layers": 3, "head_input": "video"}
    for teacher in ("actionclip-meanp", "vificlip", "xclip"):
        fallback = sx.student_model(choice(teacher), "embedded-tiny", None, fallback="conv1d", fusion_layers=1)
        assert fallback["fusion"] == "conv1d" and teacher in fallback["reason"]
    with pytest.raises(ValueError, match="head_input"):
        sx.student_model(choice("actionclip-lstm"), "embedded-tiny", None, head_input="pixels")


# ---------------------------------------------------------------------------------------------- judging results
def test_selection_uses_validation_and_only_framework_multitask_settings():
    table = pd.DataFrame({"weight": [0.0, 1.0, 3.0, 1.0], "source": ["clip", "clip", "clip", "ground_truth"],
                          "val_top1_mean": [90.0, 40.0, 50.0, 99.0], "top1_mean": [0.0, 99.0, 1.0, 0.0]},
                         index=["baseline", "l1", "l3", "gt"])
    assert sx.select_setting(table) == "l3"  # not the baseline, not the ground truth, not by test top-1
    assert sx.select_setting(table, "top1") == "l1"
    assert "validation" in sx.selection_rule("val_top1")
    with pytest.raises(ValueError, match="no multi-task"):
        sx.select_setting(table.loc[["baseline", "gt"]])
    with pytest.raises(ValueError, match="zs_top1_mean"):
        sx.select_setting(table, "zs_top1")


def test_reliability_bins(tmp_path):
    vocab = {"shape": Vocabulary("shape", ("a", "b"), ("{}",))}
    paths = ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"]
    probs = np.array([[0.95, 0.05], [0.92, 0.08], [0.42, 0.58], [0.45, 0.55]], dtype=np.float32)
    truth = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], dtype=np.float32)
    curve = sx.reliability(SpatialTargets(tmp_path, paths, {"shape": probs}, vocab),
                           SpatialTargets(tmp_path, paths, {"shape": truth}, vocab), bins=10)
    assert list(curve["bin"]) == [5, 9]
    assert curve["accuracy"].tolist() == [50.0, 50.0] and curve["share"].tolist() == [50.0, 50.0]
    assert curve["confidence"].tolist() == pytest.approx([0.565, 0.935])


def test_reported_numbers_are_labelled():
    reported = sx.reported_table()
    assert set(reported["source"]) == {"reported"} and 66.5 in set(reported["top1"])


# ---------------------------------------------------------------------------------------------- end to end
def test_settings_by_seeds_end_to_end(features, manifest, micro, tmp_path):  # noqa: F811
    vocabularies = manifest_vocabularies(read_json(manifest), ("shape", "scene"))
    clip = SpatialTargetCache(manifest, vocabularies, MICRO, micro[0], frames=2, features=features,
                              root=tmp_path / "targets", progress=False).get()
    truth = ground_truth_targets(manifest, ("shape", "scene"))
    targets = {"clip-K2": clip, sx.GROUND_TRUTH: truth}
    base = micro_recipe(manifest, micro[0], tmp_path)
    student = sx.student_model({"model": {"name": "actionclip-transf", "kwargs": {"fusion_layers": 1}}}, MICRO,
                               str(micro[0]))
    baseline = sx.SpatialSetting(0.0, frames=2)
    shape = sx.SpatialSetting(1.0, ("shape",), frames=2)
    common = {"features": features, "head_truth": truth, "run_prefix": "t", "runs_dir": tmp_path / "runs",
              "freeze_token_embedding": True, "progress": False}
    runs = sx.run_spatial(base, student, [baseline, shape], [0], targets, **common)
    assert list(runs["setting"]) == [baseline.name, shape.name]
    assert runs["val_top1"].between(0, 100).all() and runs["top1"].between(0, 100).all()
    assert math.isnan(runs.loc[0, "head_shape_top1"])  # lambda = 0: the heads never trained
    assert 0 <= runs.loc[1, "head_shape_top1"] <= 100 and math.isnan(runs.loc[1, "head_scene_top1"])
    state = torch.load(runs.loc[1, "weights"], weights_only=True)
    assert {k.split(".")[1] for k in state if k.startswith("spatial_heads.")} == {"shape"}  # one head per objective

    more = sx.run_spatial(base, student, [baseline, sx.SpatialSetting(1.0, source=sx.GROUND_TRUTH)], [0],
                          targets, previous=runs, **common)
    assert len(more) == 3 and more.loc[2, "source"] == sx.GROUND_TRUTH  # the baseline's seed 0 was reused
    assert more.loc[2, "head_scene_top1"] >= 0
    with pytest.raises(ValueError, match="clip-K8"):
        sx.run_spatial(base, student, [sx.SpatialSetting(1.0)], [0], targets, **common)

    summary = sx.summarise_settings(more)
    assert list(summary["seeds"]) == [1, 1, 1] and summary.loc[shape.name, "weight"] == 1.0
    assert summary.loc[shape.name, "objectives"] == "shape"
    path = sx.write_results(sx.results_path("unit", tmp_path / "results"), shape, student, base, more, summary,
                            headline={"helps": False}, targets={"frames": 2})
    record = sx.read_results("unit", tmp_path / "results")
    assert path.is_file() and sx.SpatialSetting.from_dict(record["best"]) == shape
    assert set(record["weights"]) == {"0"} and record["student"]["fusion"] == "transf"
    with pytest.raises(FileNotFoundError, match="04_spatial"):
        sx.read_results("nowhere", tmp_path / "results")
