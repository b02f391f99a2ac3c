"""Chapter 2's machinery: the Pareto front, the selection rule, the seed summary, the reversal-error share, and one
small end-to-end choice (a cached-feature candidate and X-CLIP on pixels) with its record."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_frame_cache import MICRO, SIZE, cache_root, features, manifest, micro, micro_recipe  # noqa: F401  (fixtures)

from actiondistill import teacher_choice as tc
from actiondistill.engine.checkpoint import CHECKPOINT_NAME
from actiondistill.engine.runs import reversal_errors, summarise
from actiondistill.stats import pareto_front


@pytest.fixture
def table():
    """Five candidates: `slow` is the most accurate but 1.5x the fastest; `a` and `b` tie on top-1."""
    return pd.DataFrame({
        "latency_ms": [100.0, 110.0, 120.0, 150.0, 105.0],
        "top1_mean": [70.0, 75.0, 75.5, 90.0, 60.0],
        "zs_top1_mean": [30.0, 40.0, 20.0, 50.0, 10.0],
    }, index=["fast", "a", "b", "slow", "dominated"])


def test_pareto_front(table):
    front = pareto_front(table)
    assert front.to_dict() == {"fast": True, "a": True, "b": True, "slow": True, "dominated": False}
    same = pd.DataFrame({"latency_ms": [1.0, 1.0], "top1_mean": [5.0, 5.0]}, index=["x", "y"])
    assert pareto_front(same).all()  # equal points do not dominate each other


def test_selection_rule(table):
    decision = tc.select_teacher(table, max_slowdown=1.25, tie_points=1.0)
    assert decision["eligible"] == ["fast", "a", "b", "dominated"]  # slow: 150 > 1.25 * 100
    assert decision["tied"] == ["a", "b"]  # 75 is within 1 point of 75.5
    assert decision["teacher"] == "a"  # the tie goes to zero-shot
    assert decision["fastest_ms"] == 100.0 and "1.25x" in decision["rule"]
    assert tc.select_teacher(table, max_slowdown=1.5)["teacher"] == "slow"
    assert tc.select_teacher(table, tie_points=0.1)["teacher"] == "b"
    closed_only = table.assign(zs_top1_mean=math.nan)
    assert tc.select_teacher(closed_only)["teacher"] == "b"  # no zero-shot: ties fall back to closed-set top-1
    with pytest.raises(ValueError, match="zs_top1_mean"):
        tc.select_teacher(table.drop(columns="zs_top1_mean"))


def test_excluded_candidates_can_neither_win_nor_set_the_latency_limit(table):
    excluded = {"a": "it cannot read cached embeddings", "fast": "likewise"}
    decision = tc.select_teacher(table, max_slowdown=1.25, excluded=excluded)
    assert decision["teacher"] == "b" and "a" not in decision["eligible"] and decision["excluded"] == excluded
    assert decision["fastest_ms"] > 100.0  # the excluded fastest candidate does not set the limit
    assert "not eligible whatever its scores" in decision["rule"] and "cannot read cached" in decision["rule"]
    assert tc.excluded_teachers(True) == {"xclip": tc.CACHED_FEATURE_EXCLUSIONS["xclip"]}
    assert tc.excluded_teachers(False) == {}
    with pytest.raises(ValueError, match="no candidates left"):
        tc.select_teacher(table, excluded={name: "x" for name in table.index})


def test_summarise_over_seeds():
    runs = pd.DataFrame({"model": ["m", "m", "m", "n"], "top1": [10.0, 20.0, 30.0, 50.0],
                         "zs_top1": [1.0, 2.0, 3.0, 4.0], "train_s": [1.0, 1.0, 1.0, 2.0]})
    summary = summarise(runs)
    assert list(summary.index) == ["m", "n"] and summary.loc["m", "seeds"] == 3
    assert summary.loc["m", "top1_mean"] == 20.0 and summary.loc["m", "top1_std"] == pytest.approx(10.0)
    assert (summary.loc["m", "top1_min"], summary.loc["m", "top1_max"]) == (10.0, 30.0)
    assert math.isnan(summary.loc["n", "top1_std"])


def test_reversal_errors():
    classes = ["moving left", "moving right", "growing"]
    confusion = [[5, 3, 1],   # 4 errors, 3 of them the reversal
                 [1, 6, 0],   # 1 error, the reversal
                 [0, 2, 4]]   # 2 errors; growing's reversal (shrinking) is not among the classes
    assert reversal_errors(confusion, classes) == pytest.approx(100 * 4 / 7)
    assert math.isnan(reversal_errors([[1, 0], [0, 1]], ["brush hair", "ride bike"]))


def test_reported_numbers_are_labelled():
    reported = tc.reported_table()
    assert set(reported["source"]) == {"reported"}
    k400 = reported[(reported["model"] == "ActionCLIP") & (reported["benchmark"] == "Kinetics-400")]
    assert list(k400["top1"]) == [81.09, 81.68, 82.32]


def test_choice_end_to_end(features, manifest, micro, tmp_path):  # noqa: F811
    base = micro_recipe(manifest, micro[0], tmp_path)
    runs = tc.run_choice(base, {"actionclip-transf": [0, 1], "xclip": [0]}, features=features,
                         freeze_token_embedding=True, fusion_layers=1, epochs={"xclip": 2}, run_prefix="t",
                         runs_dir=tmp_path / "runs", progress=False)
    assert list(zip(runs["model"], runs["seed"], strict=True)) == [("actionclip-transf", 0), ("actionclip-transf", 1),
                                                                  ("xclip", 0)]
    assert list(runs["input"]) == ["cached frame embeddings"] * 2 + ["pixels"]
    assert list(runs["epochs"]) == [1, 1, 2]
    assert runs["top1"].between(0, 100).all() and runs["zs_top1"].between(0, 100).all()
    assert (runs["zs_classes"] > 0).all() and (runs["classes"] > runs["zs_classes"]).all()
    for weights in runs["weights"]:
        assert Path(weights).is_file() and not (Path(weights).parent / CHECKPOINT_NAME).exists()
    assert (tmp_path / "results" / "t-xclip-seed0-eval.json").is_file()
    state = torch.load(runs["weights"][2], weights_only=True)
    assert any(k.startswith("messages.") for k in state)

    summary = summarise(runs).assign(latency_ms=[10.0, 30.0])
    decision = tc.select_teacher(summary)
    assert decision["teacher"] == "actionclip-transf"  # X-CLIP is 3x slower: outside the 1.25x limit
    path = tc.write_choice(tc.choice_path("unit", tmp_path / "results"), decision, base, runs, summary,
                           fusion_layers=1)
    record = tc.read_choice("unit", tmp_path / "results")
    assert path.is_file() and record["teacher"] == "actionclip-transf"
    assert record["model"]["kwargs"] == {"fusion_layers": 1} and set(record["weights"]) == {"0", "1"}
    with pytest.raises(FileNotFoundError, match="02_teacher"):
        tc.read_choice("nowhere", tmp_path / "results")
