"""Chapter 2's module: its parameters, the CLIP report's verdict, the recipe and budget, the training costs, the
accuracy and latency tables, the published numbers beside ours, the headline verdict and the figure, on small
synthetic tables (the experiment itself runs under nbval and in test_teacher_choice)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest
import yaml

from actiondistill.chapters import ch02_teacher as ch
from actiondistill.config import from_dict

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
ALL = ["actionclip-meanp", "actionclip-conv1d", "actionclip-lstm", "actionclip-transf", "actionclip-transf_cls",
       "xclip", "vificlip"]


@pytest.fixture
def summary():
    """Seven candidates: Conv1D best closed-set, X-CLIP slowest; meanP/ViFi-CLIP make more reversal errors."""
    return pd.DataFrame({
        "seeds": [3, 3, 3, 3, 3, 1, 3],
        "top1_mean": [40.0, 55.0, 50.0, 54.5, 30.0, 52.0, 39.0],
        "top1_std": [1.0, 2.0, 1.5, 1.0, 3.0, math.nan, 1.0],
        "top1_min": [39.0, 53.0, 48.5, 53.5, 27.0, 52.0, 38.0],
        "top1_max": [41.0, 57.0, 51.5, 55.5, 33.0, 52.0, 40.0],
        "zs_top1_mean": [20.0, 25.0, 22.0, 30.0, 18.0, 21.0, math.nan],
        "zs_top1_std": [1.0] * 7, "zs_top1_min": [0.0] * 7, "zs_top1_max": [50.0] * 7,
        "reversal_errors_mean": [80.0, 20.0, 30.0, 10.0, 40.0, 50.0, 60.0],
        "latency_ms": [100.0, 102.0, 110.0, 101.0, 103.0, 180.0, 99.0],
        "pareto": [False, True, False, False, False, False, True],
    }, index=pd.Index(ALL, name="model"))


def test_the_defaults_are_the_smoke_notebooks_and_every_profile_key_is_a_field():
    params = ch.Params()
    assert (params.profile, params.seeds, params.epochs, params.num_frames) == ("smoke", [0], 1, 4)
    assert params.batch_size == 24 and params.xclip_seeds is None and params.xclip_epochs is None
    assert (params.latency_frames, params.latency_calls, params.rule_frames) == ([16], 2, 16)
    assert (params.max_slowdown, params.tie_points, params.fusion_layers, params.lr) == (1.25, 1.0, 2, 1e-4)
    assert params.pretrain["base"] == {"epochs": 1, "batch_size": 48} and params.freeze_image_encoder
    assert ch.Params().pretrain is not params.pretrain  # no shared mutable default
    fields = set(ch.Params.fields())
    for profile in ("embedded", "hmdb51", "ucf101", "smoke"):
        loaded = yaml.safe_load((ROOT / "book" / "params" / f"{profile}.yaml").read_text())
        own = (loaded.get("chapters") or {}).get("02_teacher") or {}
        assert set(own) <= fields, profile
        typed = ch.Params.from_namespace({**(loaded.get("defaults") or {}), **own})
        assert typed.latency_calls == own.get("latency_calls", 2)
    with pytest.raises(ValueError, match="latency_calls"):
        ch.Params.from_namespace({"latency_calls": "many"})


def test_the_clip_verdict_names_what_beats_twice_chance_and_what_does_not():
    report = {"models": {"embedded-base": {"zero_shot": {"colour": {"top1": 40.0, "chance": 12.5},
                                                         "shape": {"top1": 20.0, "chance": 14.3}}},
                         "embedded-tiny": {"zero_shot": {"colour": {"top1": 30.0, "chance": 12.5},
                                                         "shape": {"top1": 15.0, "chance": 14.3}}}}}
    table = ch.zero_shot_table(report, "embedded-base")
    assert list(table.index) == ["embedded-base", "embedded-tiny", "chance"]
    assert table.loc["chance", "colour"] == 12.5
    verdict = ch.clip_verdict(table, "embedded-base", 30)
    assert "on the 30 held-out frames" in verdict
    assert "names colour (40.0%, chance 12.5%) at least twice" in verdict
    assert "and shape (20.0%, chance 14.3%) less often than that" in verdict
    weak = ch.clip_verdict(table, "embedded-tiny", 30)
    assert "names colour (30.0%" in weak  # 30.0 >= 2 x 12.5
    table.loc["embedded-base", "colour"] = 20.0
    assert "names none of them at least twice" in ch.clip_verdict(table, "embedded-base", 30)
    assert "`openai`" in ch.given_weights_verdict("openai")


def test_the_budget_gives_xclip_its_own_seeds_and_epochs_when_asked():
    seeds, epochs = ch.candidate_budget([0, 1, 2], 30)
    assert set(seeds) == set(ALL) and seeds["xclip"] == [0, 1, 2] and epochs == {"xclip": 30}
    seeds, epochs = ch.candidate_budget([0, 1, 2], 30, xclip_seeds=[0], xclip_epochs=1)
    assert seeds["xclip"] == [0] and seeds["actionclip-transf"] == [0, 1, 2] and epochs == {"xclip": 1}
    with pytest.raises(ValueError, match="X-CLIP needs"):
        ch.candidate_budget([0], 1, xclip_seeds=[])
    with pytest.raises(ValueError, match="X-CLIP needs"):
        ch.candidate_budget([0], 1, xclip_epochs=0)


def test_the_recipe_validates_on_synthactions_and_on_real_data():
    synthetic = from_dict(ch.recipe(ch.Params(), "/w/manifest.json", "/w/base.pt"))
    assert synthetic.data.manifest == "/w/manifest.json" and synthetic.data.eval_split == "val"
    assert not synthetic.data.flip and synthetic.model.kwargs == {} and synthetic.eval.every == 3
    real = ch.Params(dataset="hmdb51", val_every=0, logit_scale_init=100.0, pretrained="openai")
    cfg = from_dict(ch.recipe(real, None, "openai"))
    assert cfg.data.manifest is None and cfg.data.eval_split is None and cfg.data.flip
    assert cfg.model.kwargs == {"logit_scale_init": 100.0} and cfg.eval.every == 1
    seeds, epochs = ch.candidate_budget(real.seeds, real.epochs)
    table = ch.recipe_table(real, seeds, epochs).set_index("setting")["value"]
    assert table["validation every (epochs)"] == "no validation" and table["training logit scale"] == "100 at the start"
    assert table["fusion / X-CLIP modules lr"] == pytest.approx(1e-3) and table["image encoder"] == "frozen"
    assert synthetic.optim.amp_dtype == "float16" and table["training precision"].startswith("fp32 on a CPU")
    bf16 = from_dict(ch.recipe(ch.Params(amp_dtype="bfloat16"), "/w/manifest.json", "/w/base.pt"))
    assert bf16.optim.amp_dtype == "bfloat16"


def test_training_costs_compare_xclips_epoch_on_pixels_with_the_cached_ones():
    runs = pd.DataFrame({"model": ["a", "a", "b", "xclip"], "input": ["cached", "cached", "cached", "pixels"],
                         "train_s": [10.0, 14.0, 8.0, 60.0], "eval_s": [1.0] * 4, "epochs": [2, 2, 2, 1]})
    costs = ch.training_costs(runs)
    assert costs["epoch_cached_s"] == pytest.approx((6.0 + 4.0) / 2)  # a: 12 s / 2 epochs; b: 8 s / 2
    assert costs["epoch_xclip_s"] == 60.0 and costs["xclip_ratio"] == pytest.approx(12.0)
    assert costs["xclip_share"] == pytest.approx(100 * 60 / 92)


def test_the_accuracy_table_reversal_shares_and_ranking(summary):
    table = ch.accuracy_table(summary)
    assert table["candidate"].iloc[0] == "ActionCLIP meanP"
    assert table["closed-set top-1 (%)"].iloc[5] == "52.0  (one seed)"
    blind, ordered = ch.reversal_shares(summary)
    assert blind == pytest.approx((80.0 + 60.0) / 2)  # meanP and ViFi-CLIP
    assert ordered == pytest.approx((20.0 + 30.0 + 10.0 + 40.0) / 4)  # X-CLIP counted in neither
    assert ch.ranking_text(summary).startswith("ActionCLIP Conv1D (55.0) > ActionCLIP Transf (54.5) > X-CLIP (52.0)")


def test_latency_view_and_the_rule_frames_check():
    latency = pd.DataFrame({"model": ["b", "a", "b", "a"], "frames": [8, 8, 16, 16],
                            "latency_ms": [5.0, 4.0, 9.0, 8.0], "gflops": [1.0, 1.5, 2.0, 3.0],
                            "params_total_m": [10.0, 12.0, 10.0, 12.0]})
    latency["model"] = latency["model"].map({"a": "actionclip-meanp", "b": "xclip"})
    view = ch.latency_view(latency, ["xclip", "actionclip-meanp"], 16)
    assert list(view.columns) == ["candidate", "8 frames (ms)", "16 frames (ms)", "GFLOPs at 16 frames", "params (M)"]
    assert list(view["candidate"]) == ["X-CLIP", "ActionCLIP meanP"] and view.loc["xclip", "16 frames (ms)"] == 9.0
    assert view.loc["actionclip-meanp", "GFLOPs at 16 frames"] == 3.0
    ch.check_rule_frames(16, [8, 16])
    with pytest.raises(ValueError, match="rule_frames=32"):
        ch.check_rule_frames(32, [8, 16])


def test_beside_the_published_numbers_says_which_is_which(summary):
    gflops = pd.DataFrame({4: [float(i) for i in range(7)]}, index=ALL)
    beside = ch.beside_table(summary, gflops, 4, "synthactions")
    ours = beside[beside["source"] == "measured here"]
    assert set(beside["source"]) == {"reported", "measured here"}
    assert len(ours) == 13  # ViFi-CLIP's zero-shot is missing: no row
    assert set(ours["benchmark"]) == {"SynthActions closed-set", "SynthActions zero-shot"}
    assert ours.loc[ours["model"] == "X-CLIP", "GFLOPs"].tolist() == [5.0, 5.0]
    untimed = ch.beside_table(summary, pd.DataFrame({16: [1.0] * 7}, index=ALL), 4, "hmdb51")
    assert untimed.loc[untimed["source"] == "measured here", "GFLOPs"].isna().all()
    assert "HMDB51 closed-set" in set(untimed["benchmark"])


def test_the_headline_verdict_follows_the_teacher_and_xclips_place(summary):
    ranking = list(summary.sort_values("top1_mean", ascending=False).index)
    excluded = {"teacher": "actionclip-transf", "eligible": ["actionclip-transf"], "excluded": {"xclip": "why"}}
    verdict = ch.choice_verdict("actionclip-transf", ranking, excluded, 1.8)
    assert verdict.startswith("This agrees with the thesis, which chose ActionCLIP; here the rule picks its Transf "
                              "head.")
    assert "X-CLIP ranks 3 of 7" in verdict
    assert "ViFi-CLIP, reduced to mean pooling by the frozen encoder, 6 of 7" in verdict
    assert verdict.endswith("X-CLIP could not be chosen in this regime, whatever its scores (see the rule).")
    other = ch.choice_verdict("vificlip", ranking, {"eligible": ["vificlip"], "excluded": {}}, 1.8)
    assert other.startswith("This differs from the thesis") and "ViFi-CLIP wins" in other
    assert other.endswith("outside the latency limit (1.80x the fastest), so its smaller training budget does not "
                          "decide the choice.")
    inside = ch.choice_verdict("vificlip", ranking, {"eligible": ["vificlip", "xclip"], "excluded": {}}, 1.1)
    assert "within the latency limit" in inside and "lower bound" in inside
    fine_tuned = ch.choice_verdict("vificlip", ranking, {"eligible": ["vificlip"], "excluded": {}}, 1.8, frozen=False)
    assert "ViFi-CLIP, fine-tuned end to end, 6 of 7" in fine_tuned and "frozen encoder" not in fine_tuned


def test_the_choice_table_marks_each_step_of_the_rule(summary):
    decision = {"teacher": "actionclip-transf", "eligible": ["actionclip-conv1d", "actionclip-transf"],
                "tied": ["actionclip-conv1d", "actionclip-transf"]}
    table = ch.choice_table(summary, decision, 16).set_index("candidate")
    assert table["chosen"].sum() == 1 and table.loc["ActionCLIP Transf", "chosen"]
    assert table.loc["ActionCLIP Conv1D", "tied for best"] and not table.loc["X-CLIP", "within the latency limit"]
    assert table.loc["ViFi-CLIP", "Pareto front"] and "latency at 16 frames (ms)" in table.columns
    assert ch.label_list(["xclip", "vificlip"]) == "X-CLIP, ViFi-CLIP"


def test_the_figure_draws_both_metrics_the_limit_and_chance(summary):
    result = SimpleNamespace(params=ch.Params(), summary=summary, classes=22, zs_classes=0)
    fig = ch.accuracy_latency_figure(result)
    closed, zero_shot = fig.axes[:2]
    labels = {line.get_label() for line in closed.get_lines()}
    assert {"Pareto front", "1.25x the fastest", "chance"} <= labels
    assert "chance" not in {line.get_label() for line in zero_shot.get_lines()}  # no held-out classes
    limit = next(line for line in closed.get_lines() if line.get_label() == "1.25x the fastest")
    assert limit.get_xdata()[0] == pytest.approx(1.25 * 99.0)
