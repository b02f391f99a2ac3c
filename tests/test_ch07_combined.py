"""Chapter 7's module: its parameters, the goal's verdict, the sentences its text glues, its tables and figures, on
small synthetic tables (the experiment itself: tests/test_combined.py)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml

from actiondistill import combined as cx
from actiondistill.chapters import ch07_combined as ch
from actiondistill.chapters import kit

matplotlib.use("Agg")

PARAMS = Path(__file__).resolve().parents[1] / "book" / "params"


# ---------------------------------------------------------------------------------- parameters
def test_params_defaults_are_the_smoke_profile_and_every_profile_key_is_a_field():
    p = ch.Params()
    assert (p.seeds, p.combinations, p.latency_frames, p.throughput_batch, p.latency_calls) == (
        [0], list(cx.COMBINATIONS), None, 2, 2)
    assert (p.goal_speedup, p.goal_points, p.feature_dtype, p.latency_device) == (2.5, 1.0, "bf16", "cpu")
    assert p.records_as() == "smoke-standard_n120_s64_f16_seed0"
    assert ch.Params(record_key="smoke").records_as() == "smoke"
    for path in PARAMS.glob("*.yaml"):
        own = (yaml.safe_load(path.read_text()).get("chapters") or {}).get("07_combined") or {}
        assert set(own) <= set(ch.Params.fields()), f"{path.name}: {sorted(set(own) - set(ch.Params.fields()))}"
    given = ch.Params.from_namespace({"latency_frames": 2, "goal_speedup": 3, "seeds": [0, 1], "other": 1})
    assert given.latency_frames == 2 and given.goal_speedup == 3.0 and given.seeds == [0, 1]
    with pytest.raises(ValueError, match="throughput_batch"):
        ch.Params.from_namespace({"throughput_batch": "two"})


def test_combinations_need_the_swap_and_known_names():
    ch.check_combinations(["swap", "swap+deit"])
    with pytest.raises(ValueError, match="'swap' \\(the reference\\)"):
        ch.check_combinations(["swap+deit"])
    with pytest.raises(ValueError, match="expected 'swap'"):
        ch.check_combinations(["swap", "swap+nothing"])


# ---------------------------------------------------------------------------------- the goal
def table_of(rows):
    return pd.DataFrame(rows, columns=["model", "speedup", "drop", "top1_mean"]).set_index("model")


def test_goal_says_which_student_reaches_it():
    teacher = ("teacher", 1.0, 0.0, 50.0)
    reached = ch.goal(table_of([teacher, ("a", 3.0, 0.5, 49.5), ("b", 2.6, -0.2, 50.2), ("c", 4.0, 5.0, 45.0)]))
    assert reached["reached"] == ["a", "b"] and "reached by **a**" in reached["sentence"]
    assert "1 other" in reached["sentence"] and "0.5 points below" in reached["sentence"]
    missed = ch.goal(table_of([teacher, ("fast", 3.0, 4.0, 46.0), ("close", 1.5, -0.5, 50.5)]))
    assert missed["reached"] == [] and missed["sentence"].startswith("No student reaches the goal")
    assert "**fast** (3.00x), is 4.0 points below" in missed["sentence"]
    assert "**close**, runs at 1.50x" in missed["sentence"]
    slow = ch.goal(table_of([teacher, ("s", 1.2, 3.0, 47.0)]))
    assert "no student runs 2.5x" in slow["sentence"] and "no student is within 1 point of" in slow["sentence"]
    strict = ch.goal(table_of([teacher, ("a", 3.0, 0.5, 49.5)]), min_speedup=4.0, max_drop=0.1)
    assert strict["reached"] == []
    assert strict["rule"] == "at least 4x the teacher's speed within 0.1 points of its top-1"
    # the teacher itself never reaches it, however fast the table says it is
    assert ch.goal(table_of([("teacher", 9.0, 0.0, 50.0), ("s", 1.0, 0.0, 50.0)]))["reached"] == []


def test_goal_judges_the_reached_student_against_the_teacher_seed_by_seed():
    table = table_of([("teacher", 1.0, 0.0, 50.0), ("a", 3.0, 0.5, 49.5), ("fast", 3.0, 4.0, 46.0)])
    models = pd.DataFrame([("teacher", 0, 52.0), ("teacher", 1, 48.0), ("teacher", 2, 50.0),
                           ("a", 0, 50.0), ("a", 1, 49.0), ("a", 2, 49.5),
                           ("fast", 0, 47.0), ("fast", 1, 45.0), ("fast", 2, 46.0)], columns=["model", "seed", "top1"])
    reached = ch.goal(table, models=models)["sentence"]
    assert "against the teacher seed by seed, -0.5 points (paired over 3 seed(s), sd 1.5)" in reached
    assert reached.endswith("within two standard errors (1.7) of zero: no measurable difference.")
    missed = ch.goal(table.drop(index="a"), models=models)["sentence"]
    assert "**fast** (3.00x), is 4.0 points below the teacher's; against the teacher seed by seed, -4.0" in missed
    assert "a measurable loss" in missed
    assert "seed by seed" not in ch.goal(table)["sentence"]  # without the runs, the means alone


def test_change_never_says_minus_zero():
    assert ch.change(0.04) == "level with the teacher's" and ch.change(-0.04) == "level with the teacher's"
    assert ch.change(1.25) == "1.2 points below the teacher's" and ch.change(-2.0) == "2.0 points above the teacher's"


# ---------------------------------------------------------------------------------- sentences
def runs_of(rows):
    """Runs rows as combined.run_combinations gives them: (combination, seed, top1, zs_top1, reused_from)."""
    frame = pd.DataFrame(rows, columns=["combination", "seed", "top1", "zs_top1", "reused_from"])
    return frame.assign(label=[cx.LABELS[c] for c in frame["combination"]], variant=frame["combination"])


def test_features_and_reuse_sentences():
    assert ch.features_text(None).startswith("not needed in this profile")
    assert ch.features_text([]) == "both reused from chapters 2 and 3"
    assert ch.features_text(["student", "teacher"]) == "computed by this run for the student and teacher"
    assert isinstance(ch.features_text(["teacher"]), ch.Md)
    runs = runs_of([("swap", 0, 10.0, 5.0, "chapter 3"), ("swap+spatial", 0, 11.0, 5.0, "chapter 4"),
                    ("swap+deit", 0, 12.0, 5.0, "")])
    assert ch.reused_text(runs) == "swap from chapter 3; swap + spatial from chapter 4"
    assert ch.reused_text(runs.assign(reused_from="")) == "none"


def test_zero_shot_sentence_pairs_by_seed_or_says_why_not():
    runs = runs_of([("swap", 0, 10.0, 5.0, ""), ("swap", 1, 12.0, 7.0, ""),
                    ("swap+deit", 0, 11.0, 8.0, ""), ("swap+deit", 1, 13.0, 9.0, "")])
    assert ch.zero_shot_text(runs, "SynthActions") == "swap + two heads +2.5"
    real = runs.assign(zs_top1=math.nan)
    assert ch.zero_shot_text(real, "HMDB51") == "not measured: HMDB51 has no held-out classes"


def test_curves_sentence():
    empty = cx.learning_curves(pd.DataFrame({"combination": ["swap"], "label": ["swap"], "seed": [0],
                                             "val_curve": [[]]}))
    assert "without a validation split" in ch.curves_text(empty)
    once = cx.learning_curves(pd.DataFrame({"combination": ["swap"], "label": ["swap"], "seed": [0],
                                            "val_curve": [[[1, 5.0]]]}))
    assert ch.curves_text(once).startswith("no curve can be judged")


def final_of(rows, seeds_std=(1.0,)):
    """A final table: (model, top1_mean, speedup, params_backbone_m), the teacher first."""
    table = pd.DataFrame(rows, columns=["model", "top1_mean", "speedup", "params_backbone_m"]).set_index("model")
    table["top1_std"] = list(seeds_std) + [math.nan] * (len(table) - len(seeds_std))
    table["drop"] = table["top1_mean"].iloc[0] - table["top1_mean"]
    return table


def test_thesis_sentence_and_its_caveat():
    reported = cx.reported_table()
    full = f"x = {cx.LABELS['swap+spatial+deit']}"
    table = final_of([("teacher", 50.0, 1.0, 10.0), ("swap", 48.0, 2.0, 5.0), (full, 47.0, 1.8, 4.0)])
    assert ch.full_combination(table.index) == full
    text = ch.thesis_text(table, reported, chance=10.0)
    assert "ours (swap + spatial + two heads) loses 3.0 points for 1.80x, with 0.40 of the teacher's" in text
    assert "gave up 2.3 points of top-1 for 1.73x" in text
    assert text.endswith("The largest standard deviation over seeds of any model is 1.0 points: smaller "
                         "differences in the table are within the noise.")
    better = final_of([("teacher", 50.0, 1.0, 10.0), (full, 51.0, 1.8, 4.0)])
    assert "gains 1.0 points" in ch.thesis_text(better, reported, chance=10.0)
    missing = final_of([("teacher", 50.0, 1.0, 10.0), ("swap", 48.0, 2.0, 5.0)])
    assert ch.full_combination(missing.index) is None
    assert ch.thesis_text(missing, reported, 10.0).startswith("The full combination (swap + spatial + two heads) "
                                                              "was not trained")
    assert "within 5 points of chance (14.0% against 10.0%)" in ch.caveat(14.0, 10.0, 1.0)
    assert ch.caveat(16.0, 10.0, math.nan).startswith(" With one seed per model")
    assert "is 2.5 points" in ch.caveat(16.0, 10.0, 2.5)


def summary_of():
    return pd.DataFrame({"label": ["swap", "swap + two heads"], "seeds": [3, 1],
                         "top1_mean": [50.0, 40.0], "top1_std": [1.0, math.nan], "top1_min": [49.0, 40.0],
                         "top1_max": [51.0, 40.0], "zs_top1_mean": [math.nan, math.nan],
                         "zs_top1_std": [math.nan, math.nan], "zs_top1_min": [math.nan, math.nan],
                         "zs_top1_max": [math.nan, math.nan]}, index=["swap", "swap+deit"])


def test_spread_blank_where_not_measured():
    summary = summary_of()
    assert kit.spread_column(summary, "top1") == ["50.0 ± 1.0  [49.0, 51.0]", "40.0  (one seed)"]
    assert kit.spread_column(summary, "zs_top1") == ["", ""]
    html = ch.summary_table(summary).to_html()
    assert "50.0 ± 1.0  [49.0, 51.0]" in html and "nan" not in html


# ---------------------------------------------------------------------------------- tables
def book_table():
    table = final_of([("teacher", 50.0, 1.0, 10.0), ("swap", 48.0, 2.0, 5.0),
                      (f"s = {cx.LABELS['swap+spatial+deit']}", 49.5, 2.6, 4.0)])
    table["top1_std"] = [1.0, 0.5, 2.0]
    return table.assign(chapter=["chapter 2", "chapter 3", "chapter 7"], CLIP=["base", "tiny", "tiny"],
                        number=[1, 2, 3], seeds=3, zs_top1_mean=math.nan, zs_top1_std=math.nan, params_total_m=20.0,
                        gflops=1.0, latency_ms=[10.0, 5.0, 3.85], throughput_clips_s=100.0)


def test_models_and_thesis_tables():
    table = book_table()
    html = ch.models_table(table, 4, caption="Measured on: here").to_html()
    assert "clips/s (batch 4)" in html and "Measured on: here" in html and "2.60x" in html and "+0.5" in html
    assert "50.0 ± 1.0" in html and "nan" not in html
    thesis = ch.thesis_table(cx.reported_table(), table, "SynthActions").data
    assert list(thesis["source"]) == ["reported", "reported", "measured here", "measured here"]
    assert thesis["image encoder, x teacher's"].iloc[-1] == pytest.approx(0.4)
    assert thesis["benchmark"].iloc[-1] == "SynthActions"


# ---------------------------------------------------------------------------------- figures
def test_number_groups_joins_points_that_would_overlap():
    groups = ch.number_groups([10.0, 10.1, 50.0, 90.0], [40.0, 40.2, 60.0, math.nan])
    assert groups == [[0, 1], [2]]
    assert ch.number_groups([1.0, 1.0], [5.0, 5.0]) == [[0, 1]]  # no spread at all: one label
    assert ch.number_groups([1.0, 2.0], [math.nan, math.nan]) == []


def test_accuracy_latency_figure_shades_the_goal_and_numbers_the_points():
    table = book_table()
    params = ch.Params(goal_speedup=2.5, goal_points=1.0, seeds=[0, 1, 2])
    result = SimpleNamespace(params=params, table=table, zero_shot=False, frames_timed=16)
    fig = ch.accuracy_latency_figure(result)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "3"]
    corner = [c for c in ax.collections if c.get_label() == "goal"]
    assert len(corner) == 1
    xs = corner[0].get_paths()[0].vertices[:, 0]
    assert xs.max() == pytest.approx(10.0 / 2.5)  # the teacher's latency over the goal speed-up
    assert "16 frames" in ax.get_xlabel() and "3 seed(s)" in fig._suptitle.get_text()
    two = ch.accuracy_latency_figure(SimpleNamespace(**{**vars(result), "zero_shot": True,
                                                        "table": table.assign(zs_top1_mean=[5.0, 6.0, 7.0],
                                                                              zs_top1_std=0.0)}))
    assert len(two.axes) == 2


def curve_runs():
    rows = [{"combination": c, "label": cx.LABELS[c], "seed": s, "val_curve": [[e, 10.0 * e + s] for e in (1, 2, 3)],
             "steps": 33, "epochs": 3} for c in ("swap", "swap+deit", "swap+spatial") for s in (0, 1)]
    return pd.DataFrame(rows)


def test_validation_curves_figure():
    runs = curve_runs()
    result = SimpleNamespace(runs=runs, curves=cx.learning_curves(runs), steps_per_epoch=11)
    ax = ch.validation_curves_figure(result).axes[0]
    assert len(ax.get_legend().get_texts()) == 3 and "11 optimizer steps" in ax.get_xlabel()
    empty = SimpleNamespace(runs=runs, curves=cx.learning_curves(runs.assign(val_curve=[[]] * len(runs))),
                            steps_per_epoch=11)
    ax = ch.validation_curves_figure(empty).axes[0]
    assert any("without a validation split" in t.get_text() for t in ax.texts)


def test_combinations_figure_has_a_zero_shot_panel_only_where_measured():
    runs = runs_of([("swap", 0, 10.0, 5.0, ""), ("swap", 1, 12.0, 7.0, ""),
                    ("swap+deit", 0, 11.0, 8.0, ""), ("swap+deit", 1, 13.0, 9.0, "")])
    params = ch.Params(seeds=[0, 1], combinations=["swap", "swap+deit"])
    fig = ch.combinations_figure(SimpleNamespace(runs=runs, params=params, zero_shot=True))
    assert [a.get_ylabel() for a in fig.axes] == ["closed-set top-1 (%)", "zero-shot top-1 (%)"]
    real = runs.assign(zs_top1=np.nan)
    fig = ch.combinations_figure(SimpleNamespace(runs=real, params=params, zero_shot=False))
    assert len(fig.axes) == 1
