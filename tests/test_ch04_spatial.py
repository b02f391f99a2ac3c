"""Chapter 4's module: its parameters, the pseudo-labels' quality bands and their paragraph, the headline choice,
the ablations in words, the tables and the figures, on small synthetic tables (no training)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml

from actiondistill.chapters import ch04_spatial as ch
from actiondistill.spatial import experiment as sx
from actiondistill.stats import paired_by_seed, paired_difference

matplotlib.use("Agg")
BOOK = Path(__file__).resolve().parents[1] / "book"


# ---------------------------------------------------------------------------------------------- parameters
def test_the_defaults_are_the_smoke_profile_and_every_profile_key_is_a_field():
    params = ch.Params()
    assert params.lambdas == [0.0, 1.0] and params.target_frames == [1, 8] and params.default_target_frames == 8
    assert params.single_objectives == ["shape", "scene"] and params.seeds == [0] and params.num_frames == 4
    assert params.pretrain["base"] == {"epochs": 1, "batch_size": 48} and params.epochs is None
    for profile in sorted((BOOK / "params").glob("*.yaml")):
        own = (yaml.safe_load(profile.read_text()).get("chapters") or {}).get("04_spatial") or {}
        assert set(own) <= set(ch.Params.fields()), profile.name
    typed = ch.Params.from_namespace({"lambdas": [0, 3], "single_objectives": None, "vocabulary_files": ["a.txt"]})
    assert typed.lambdas == [0.0, 3.0] and typed.single_objectives is None
    with pytest.raises(ValueError, match="ablation_lambda"):
        ch.Params.from_namespace({"ablation_lambda": "heavy"})


def test_parameters_that_cannot_run_are_refused():
    ch.check_parameters(ch.Params())
    real = ch.Params(dataset="hmdb51", teacher_pretrained="openai", student_pretrained="yfcc15m")
    with pytest.raises(ValueError, match="vocabulary_files"):
        ch.check_parameters(real)
    ch.check_parameters(ch.Params(dataset="hmdb51", teacher_pretrained="a", student_pretrained="b",
                                  vocabulary_files=["objects.txt"]))
    with pytest.raises(ValueError, match="default_target_frames=4"):
        ch.check_parameters(ch.Params(default_target_frames=4))


# ---------------------------------------------------------------------------------------------- pseudo-labels
def test_quality_bands_split_at_five_points_either_side_of_chance():
    margin = pd.Series({"a": 5.1, "b": 5.0, "c": 0.0, "d": -5.0, "e": -5.1})
    assert ch.quality_bands(margin) == {"above": ["a"], "near": ["b", "c", "d"], "below": ["e"]}
    assert ch.quality_bands(margin, band=1.0) == {"above": ["a", "b"], "near": ["c"], "below": ["d", "e"]}


def quality_rows() -> pd.DataFrame:
    rows = []
    for k, shift in ((1, -2.0), (8, 0.0)):
        for name, top1, chance, ece in (("shape", 30.0, 20.0, 0.10), ("colour", 22.0, 20.0, 0.30),
                                        ("size", 20.0, 33.3, 0.05)):
            rows.append({"K": k, "objective": name, "classes": round(100 / chance), "top1": top1 + shift,
                         "chance": chance, "majority": chance + 1, "true_prob": 0.3, "ece": ece})
    return pd.DataFrame(rows)


def test_the_quality_paragraph_names_each_band_the_mean_margin_calibration_and_k():
    text = ch.quality_paragraph(quality_rows(), [1, 8], 8)
    assert text.startswith("At K = 8 frames the framework's pseudo-labels are clearly above chance (by more than 5 "
                           "points) for shape (30% against 20%); within 5 points of chance for colour; more than 5 "
                           "points below chance for size.")
    assert "0.4 points below chance" in text  # (10 + 2 - 13.3) / 3
    assert "worst calibrated objective is colour (ECE 0.30)" in text
    assert "Going from K = 1 to K = 8 frames raises the mean top-1 by 2.0 points" in text


def test_the_k_sentence_tells_a_small_change_from_a_gain_and_a_loss():
    assert "by only +0.9 points" in ch.k_sentence(0.9)
    assert ch.k_sentence(1.0).startswith("raises the mean top-1 by 1.0") and "averaging to help" in ch.k_sentence(1.0)
    assert ch.k_sentence(-3.0).startswith("lowers the mean top-1 by 3.0") and "sharper" in ch.k_sentence(-3.0)


def test_the_quality_view_shows_the_default_k_with_the_other_ks_top1_beside():
    view = ch.quality_view(quality_rows(), [1, 8], 8)
    assert list(view.columns) == ["concepts", "top-1 at K=8 (%)", "chance (%)", "majority (%)", "true prob.", "ECE",
                                  "top-1 at K=1"]
    assert view.loc["shape", "top-1 at K=8 (%)"] == 30.0 and view.loc["shape", "top-1 at K=1"] == 28.0


def test_without_ground_truth_the_quality_is_not_scored():
    assert ch.no_truth_quality_paragraph("HMDB51").startswith("HMDB51 has no ground truth")


# ---------------------------------------------------------------------------------------------- the choice
def ablation_summary(groups, val: dict[str, float]) -> pd.DataFrame:
    settings = sx.unique_settings(groups)
    return pd.DataFrame({"weight": [s.weight for s in settings], "source": [s.source for s in settings],
                         "val_top1_mean": [val.get(s.name, 10.0) for s in settings],
                         "top1_mean": [50.0] * len(settings)}, index=[s.name for s in settings])


def test_the_headline_takes_the_best_framework_setting_on_validation_or_else_the_protocols_default():
    groups = sx.ablation_settings([0.0, 0.3, 1.0], objectives=["shape", "scene"], frames=[1, 8], weight=1.0,
                                  default_frames=8, ground_truth=True)
    default = sx.SpatialSetting(1.0, frames=8)
    shape = sx.SpatialSetting(1.0, ("shape",), frames=8)
    gt = sx.SpatialSetting(1.0, source=sx.GROUND_TRUTH, frames=8)
    baseline = sx.SpatialSetting(0.0, frames=8)
    summary = ablation_summary(groups, {baseline.name: 90.0, gt.name: 80.0, shape.name: 30.0, default.name: 20.0})
    chosen = ch.headline_setting(groups, summary, "val")
    assert chosen == shape  # not the baseline, not the ground truth: the best framework setting on validation
    assert ch.headline_setting(groups, summary, None) == default  # no validation split: fixed before any result
    with pytest.raises(ValueError, match="val_top1_mean"):
        ch.headline_setting(groups, summary.drop(columns="val_top1_mean"), "val")


def test_the_rule_is_chosen_on_validation_only_where_there_is_one():
    assert ch.selection_split(True) == "val" and ch.selection_split(False) is None
    assert "validation split" in ch.rule_text("val", "SynthActions")
    assert ch.rule_text(None, "HMDB51").startswith("HMDB51 has no validation split, so nothing is chosen on data")


# ---------------------------------------------------------------------------------------------- in words
def runs_of(tops: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"setting": name, "seed": seed, "top1": top1} for name, values in tops.items()
                         for seed, top1 in enumerate(values)])


def test_the_headline_pairs_by_seed_and_records_the_noise_rules_verdict():
    runs = pd.DataFrame({"setting": ["a", "b"] * 3, "seed": [0, 0, 1, 1, 2, 2],
                         "top1": [10.0, 15.0, 20.0, 24.0, 30.0, 36.0]})
    gain = paired_by_seed(runs, "setting", "b", "a")
    assert gain.per_seed == {0: 5.0, 1: 4.0, 2: 6.0}  # paired by seed, not by row order
    helps = ch.gain_record(gain, gain.sentence("spatial distillation"))
    assert set(helps) == {"mean", "std", "se", "seeds", "helps", "hurts", "verdict"}  # what chapter 7 reads
    assert helps["helps"] and not helps["hurts"] and helps["verdict"].endswith(": a measurable gain")
    assert helps["mean"] == pytest.approx(5.0) and helps["se"] == pytest.approx(1 / math.sqrt(3))
    assert ch.capitalised(helps["verdict"]).startswith("Spatial distillation (+5.0 points, paired over 3 seed(s)) "
                                                       "is more than two standard errors (1.2) above zero")
    loss = paired_by_seed(runs, "setting", "a", "b")
    hurts = ch.gain_record(loss, loss.sentence("it"))
    assert hurts["hurts"] and hurts["verdict"].endswith(": a measurable loss")
    noisy = paired_difference(pd.Series([5.0, -4.0, 1.0]))
    flat = ch.gain_record(noisy, noisy.sentence("it"))
    assert not flat["helps"] and not flat["hurts"] and "no measurable difference" in flat["verdict"]
    assert paired_difference(gain.per_seed, points=6.0).verdict == "none"  # a minimum effect size raises the bar
    single = paired_difference(pd.Series([3.0]))
    assert not ch.gain_record(single, "")["helps"]
    assert single.sentence("the method") == ("the method (+3.0 points, paired over 1 seed(s)) is not judged: one "
                                             "seed gives no spread")
    with pytest.raises(ValueError, match="no runs with setting 'missing'"):
        paired_by_seed(runs, "setting", "b", "missing")


def test_an_ablation_is_described_by_its_best_and_worst_setting_and_the_noise_rule():
    runs = runs_of({"a": [50.0, 52.0, 51.0], "b": [40.0, 41.0, 42.0]})
    frame = runs.groupby("setting")["top1"].mean().rename("top1_mean").to_frame()
    text = ch.describe_ablation(runs, frame, ["λ=0", "λ=1"], "λ")
    assert text.startswith("λ: best λ=0 (51.0%), worst λ=1 (41.0%), a gap of 10.0 points, more than two standard")
    flat = pd.DataFrame({"top1_mean": [5.0, 5.0]}, index=["a", "b"])
    assert ch.describe_ablation(runs, flat, ["K=1", "K=8"], "K") == "K: every setting reaches 5.0%"
    one = runs_of({"a": [50.0], "b": [40.0]})
    frame = one.groupby("setting")["top1"].mean().rename("top1_mean").to_frame()
    assert ch.describe_ablation(one, frame, ["x", "y"], "o").endswith("not judged: one seed gives no spread")


def test_the_ground_truth_paragraph_follows_the_noise_rules_verdict():
    one = paired_difference(pd.Series({0: 6.7}))
    assert "with one seed this is only an indication of" in ch.ground_truth_paragraph(one, "SynthActions")
    noisy = paired_difference(pd.Series({0: 5.0, 1: -4.0, 2: 1.0}))
    assert "within noise, so there is no sign of" in ch.ground_truth_paragraph(noisy, "SynthActions")
    clear = paired_difference(pd.Series({0: 5.0, 1: 6.0, 2: 5.5}))
    paragraph = ch.ground_truth_paragraph(clear, "SynthActions")
    assert "changes test top-1 by +5.5 points, beyond noise: a measure of" in paragraph
    assert ch.ground_truth_sentence(clear).startswith("ground-truth targets against the framework's: +5.5 points, ")
    assert ch.ground_truth_paragraph(None, "UCF101").startswith("UCF101 has no ground truth")


def test_the_heads_are_averaged_over_attributes_and_compared_with_their_targets():
    heads = pd.DataFrame({"shape": [20.0, 40.0], "scene": [10.0, 30.0]}, index=["default", "gt"])
    text = ch.heads_paragraph(heads, pd.Series({"shape": 30.0, "scene": 20.0}), "default", "gt", "SynthActions")
    assert "default setting reach 15.0% against the truth, for targets that are themselves right 25.0%" in text
    assert text.endswith("trained on the ground truth, the heads reach 35.0%.")
    assert ch.heads_paragraph(None, None, None, None, "HMDB51").startswith("HMDB51 has no ground truth")


def test_the_headline_sentences():
    assert ch.gain_spread(math.nan) == "one seed, so no standard deviation"
    assert ch.gain_spread(1.234) == "standard deviation 1.2"
    assert ch.capitalised("with 1 seed(s)") == "With 1 seed(s)"
    assert ch.clip_state(True).endswith("reused from the cache") and ch.clip_state(False).endswith("by this run")
    assert ch.clip_state(None, "openai") == "weights `openai`"
    assert "frozen" in ch.encoder_regime(True) and "end to end" in ch.encoder_regime(False)
    assert ch.head_input_text("video").startswith("the fused video embedding")
    assert "cannot reach the action" in ch.head_input_text("frames")


# ---------------------------------------------------------------------------------------------- tables
def test_the_heads_table_keeps_the_multitask_settings_in_the_ablation_order():
    runs = pd.DataFrame({"setting": ["base", "b", "a", "a"], "seed": [0, 0, 0, 1], "weight": [0.0, 1.0, 1.0, 1.0],
                         "head_shape_top1": [math.nan, 10.0, 20.0, 30.0], "head_scene_top1": [math.nan, 1.0, 2.0, 4.0],
                         "top1": [1.0, 2.0, 3.0, 4.0]})
    heads = ch.heads_table(runs, ["base", "a", "b"])
    assert list(heads.index) == ["a", "b"] and list(heads.columns) == ["shape", "scene"]
    assert heads.loc["a", "shape"] == 25.0 and heads.loc["a", "scene"] == 3.0


def test_the_headline_table_puts_the_students_beside_the_teacher_and_the_reported_numbers():
    summary = pd.DataFrame({"seeds": [1, 3], "top1_mean": [13.3, 20.0], "top1_std": [math.nan, 2.0],
                            "top1_min": [13.3, 18.0], "top1_max": [13.3, 22.0], "zs_top1_mean": [5.0, 6.0],
                            "zs_top1_std": [math.nan, 1.0], "zs_top1_min": [5.0, 5.0], "zs_top1_max": [5.0, 7.0]},
                           index=["base", "best"])
    choice = {"teacher": "actionclip-transf", "summary": [
        {"model": "actionclip-meanp", "seeds": 1, "top1_mean": 1.0, "zs_top1_mean": 2.0},
        {"model": "actionclip-transf", "seeds": 3, "top1_mean": 54.5, "zs_top1_mean": 19.6}]}
    table = ch.beside_table(summary, ["base", "best"], choice, "SynthActions")
    assert table.loc[0, "top-1 (%)"] == "13.3  (one seed)" and table.loc[0, "model"] == "student, base"
    assert table.loc[1, "top-1 (%)"] == "20.0 ± 2.0  [18.0, 22.0]" and table.loc[1, "seeds"] == "3"
    assert table.loc[2, "model"] == "teacher, ActionCLIP Transf" and table.loc[2, "top-1 (%)"] == "54.5"
    assert set(table.loc[3:, "source"]) == {"reported"}


# ---------------------------------------------------------------------------------------------- figures
def fake_result(zero_shot: bool = True, ground_truth: bool = True) -> SimpleNamespace:
    """The fields the figures read, for two seeds of every ablation setting."""
    groups = sx.ablation_settings([0.0, 1.0], objectives=["shape"], frames=[1, 8], weight=1.0, default_frames=8,
                                  ground_truth=ground_truth)
    rows = []
    for i, setting in enumerate(sx.unique_settings(groups)):
        for seed in (0, 1):
            rows.append({"setting": setting.name, "seed": seed, "weight": setting.weight,
                         "objectives": setting.objectives_label, "source": setting.source,
                         "target_frames": setting.frames, "top1": 10.0 + i + seed, "val_top1": 12.0 + i,
                         "zs_top1": 5.0 + seed if zero_shot else math.nan, "classes": 20})
    runs = pd.DataFrame(rows)
    table = sx.summarise_settings(runs)
    best, baseline = groups["objectives"][-1], sx.SpatialSetting(0.0, frames=8)
    head = runs[runs["setting"].isin([baseline.name, best.name])]
    params = ch.Params(seeds=[0, 1], ablation_seeds=[0, 1], lambdas=[0.0, 1.0], single_objectives=["shape"])
    return SimpleNamespace(params=params, groups=groups, runs=runs, ablation_runs=runs, ablation_table=table,
                           ablation_baseline_top1=float(table.loc[baseline.name, "top1_mean"]), head=head,
                           best=best, baseline=baseline, reliability=None, at_default=None)


def test_the_headline_figure_has_a_zero_shot_panel_only_where_there_are_held_out_classes():
    fig = ch.headline_figure(fake_result())
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "zero-shot top-1 (%)"
    assert fig.number not in plt.get_fignums()  # let go from pyplot: a notebook shows it once, as the cell's value
    assert len(ch.headline_figure(fake_result(zero_shot=False)).axes) == 1


def test_the_ablation_figure_draws_the_baseline_and_leaves_the_targets_panel_empty_without_ground_truth():
    result = fake_result()
    fig = ch.ablation_figure(result)
    dashed = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert dashed and dashed[0].get_ydata()[0] == pytest.approx(result.ablation_baseline_top1)
    assert fig.axes[2].get_title() == "where the targets come from"
    assert not ch.ablation_figure(fake_result(ground_truth=False)).axes[2].axison


def test_no_quality_figure_without_ground_truth():
    assert ch.quality_figure(fake_result()) is None


def test_the_quality_figure_marks_chance_and_draws_the_reliability_diagonal():
    quality = quality_rows()
    result = SimpleNamespace(params=ch.Params(), quality=quality,
                             at_default=quality[quality["K"] == 8].set_index("objective"),
                             reliability=pd.DataFrame({"objective": ["shape", "shape"], "bin": [2, 8],
                                                       "confidence": [0.25, 0.85], "accuracy": [20.0, 80.0],
                                                       "share": [60.0, 40.0]}))
    fig = ch.quality_figure(result)
    assert fig.axes[1].get_title() == "reliability at K=8"
    assert any(list(line.get_ydata()) == [0, 100] for line in fig.axes[1].get_lines())


def test_the_headline_runs_are_its_two_settings_over_its_seeds_and_a_missing_baseline_is_nan():
    runs = runs_of({"base": [1.0, 2.0, 3.0], "best": [4.0, 5.0, 6.0], "other": [7.0, 8.0, 9.0]})
    head = ch.headline_runs(runs, ["base", "best"], [0, 2])
    assert sorted(zip(head["setting"], head["seed"])) == [("base", 0), ("base", 2), ("best", 0), ("best", 2)]
    table = pd.DataFrame({"top1_mean": [12.5]}, index=["base"])
    assert ch.baseline_top1(table, "base") == 12.5 and math.isnan(ch.baseline_top1(table, "missing"))
