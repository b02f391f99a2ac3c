"""Chapter 5's module: its parameters, checks, selection rules, sentences, tables and figures, on small synthetic
runs (the experiment itself is tests/test_deit_experiment.py's)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from actiondistill.chapters import ch05_deit as ch
from actiondistill.deit import experiment as dx
from actiondistill.stats import paired_by_seed

BOOK = Path(__file__).resolve().parents[1] / "book"


def runs_of(top1: dict[str, list[float]], **extra: dict[str, list[float]]) -> pd.DataFrame:
    """Runs of `top1[variant]` per seed (0, 1, ...); two-headed variants get frame/token heads 1 and 2 points
    apart, the single head none; `extra` sets any other column per variant."""
    rows = []
    for variant, scores in top1.items():
        for seed, score in enumerate(scores):
            single = variant == "single"
            rows.append({"variant": variant, "label": dx.LABELS[variant], "seed": seed, "top1": score,
                         "top1_frame": math.nan if single else score - 1, "zs_top1": 20.0 + seed,
                         "top1_token": math.nan if single else score + 1, "zs_classes": 5, "train_s": 10.0,
                         "reused_from": "", "teacher_seed": seed if variant in dx.TEACHER_VARIANTS else math.nan,
                         **{k: v[variant][seed] for k, v in extra.items()}})
    return pd.DataFrame(rows)


def summary_of(runs: pd.DataFrame) -> pd.DataFrame:
    return dx.summarise(runs, metrics=("top1", "top1_frame", "top1_token", "zs_top1"))


def latency_of() -> pd.DataFrame:
    """A latency table as `dx.latency_table` returns it, on one backbone at 4 frames."""
    rows = []
    for part, single_ms, two_ms, flops in (("whole clip", 100.0, 110.0, 2.0), ("temporal part", 2.0, 2.5, 0.01)):
        for model, ms, gflops, params in (("single head", single_ms, flops, 25.0),
                                          ("two heads", two_ms, flops * 1.01, 25.066)):
            rows.append({"backbone": "b", "part": part, "frames": 4, "model": model, "latency_ms": ms,
                         "speedup_vs_first": single_ms / ms, "gflops": gflops, "params_total_m": params})
    return pd.DataFrame(rows)


def test_params_defaults_are_the_smoke_profile_and_every_profile_key_is_a_field():
    params = ch.Params.from_namespace({"profile": "smoke"})
    assert params.variants == ["single", "gt", "hard"] and params.seeds == [0] and params.latency_calls == 2
    assert params.latency_frames == [4] and params.soft_alpha is None and params.freeze_image_encoder is True
    fields = set(ch.Params.fields())
    for path in BOOK.glob("params/*.yaml"):
        chapter = (yaml.safe_load(path.read_text()).get("chapters") or {}).get("05_deit") or {}
        assert set(chapter) <= fields, path.name
    typed = ch.Params.from_namespace({"latency_frames": [8], "soft_alpha": 1, "seeds": [0, 1, 2]})
    assert typed.soft_alpha == 1.0 and isinstance(typed.soft_alpha, float) and typed.latency_frames == [8]
    with pytest.raises(ValueError, match="latency_calls"):
        ch.Params.from_namespace({"latency_calls": "2"})


def test_check_teacher_clip_compares_resolved_weights(tmp_path):
    (tmp_path / "w").mkdir()
    ch.check_teacher_clip(tmp_path / "w.pt", tmp_path / "w" / ".." / "w.pt")
    with pytest.raises(ValueError, match=r"CLIP \(.*w\.pt\) is not .*\(.*v\.pt\): run chapter 2 with the same "
                                         "parameters"):
        ch.check_teacher_clip(tmp_path / "w.pt", tmp_path / "v.pt")


def test_the_runs_table_leaves_what_a_variant_lacks_blank():
    runs = runs_of({"single": [5.0], "hard": [6.04]}).assign(reused_from=["02_teacher", ""])
    assert ch.runs_table(runs).to_string(delimiter="|").splitlines() == [
        "variant|seed|teacher seed|top-1, average / single|top-1, frame head|top-1, token head|zero-shot top-1|"
        "train (s)|trained",
        f"{dx.LABELS['single']}|0||5.0|||20.0|10.0|chapter 2 (the teacher)",
        f"{dx.LABELS['hard']}|0|0|6.0|5.0|7.0|20.0|10.0|here"]


def test_check_variants_needs_the_ablation():
    ch.check_variants(["single", "gt", "soft"])
    for variants in (["gt", "hard"], ["single", "hard"], ["single", "gt", "none"]):
        with pytest.raises(ValueError, match="the ablation needs"):
            ch.check_variants(variants)


def test_soft_weight_is_the_per_sample_alpha_unless_given():
    assert ch.soft_weight(0.5, None, 22) == pytest.approx(22 / 23)
    assert ch.soft_weight(0.5, 0.3, 22) == 0.3


def test_cost_note_names_reused_runs_and_the_extra_training_time():
    runs = runs_of({"single": [5.0], "gt": [4.0]})
    runs.loc[runs["variant"] == "gt", "train_s"] = 15.0
    assert ch.cost_note(runs, "T") == ("On average a two-headed run's training time differed from a single-head "
                                       "one's by +50% (the teacher's forward pass included, for the distilled ones).")
    runs.loc[runs["variant"] == "single", "reused_from"] = "ch2-run"
    note = ch.cost_note(runs, "ActionCLIP Transf")
    assert note.startswith("The single-head baseline of 1 seed(s) is chapter 2's own run of the teacher "
                           "(ActionCLIP Transf,") and "differed" not in note


def test_best_student_ignores_the_single_head_and_verdicts_are_worded():
    summary = summary_of(runs_of({"single": [90.0], "gt": [50.0], "hard": [60.0], "soft": [60.0]}))
    assert ch.best_student(summary) == "hard"  # the first of a tie, never the (better) single head
    # the best student against the single head, worded by the noise rule (the glued ch5_best_verdict)
    one = paired_by_seed(runs_of({"single": [90.0], "hard": [60.0]}), "variant", "hard", "single")
    assert one.phrase() == "not judged: one seed gives no spread"
    gain = paired_by_seed(runs_of({"single": [10.0, 11.0, 12.0], "hard": [13.0, 13.0, 16.0]}), "variant", "hard",
                          "single")
    assert gain.phrase() == "more than two standard errors (1.2) above zero"


def test_heads_gap_and_max_std():
    one = summary_of(runs_of({"single": [5.0], "gt": [4.0], "hard": [3.0]}))
    assert ch.heads_gap(one) == f"{dx.LABELS['gt']} +2.0, {dx.LABELS['hard']} +2.0"
    assert math.isnan(ch.max_std(one))
    two = summary_of(runs_of({"single": [5.0, 7.0], "gt": [4.0, 4.0], "hard": [3.0, 9.0]}))
    assert ch.max_std(two) == pytest.approx(pd.Series([3.0, 9.0]).std())


def test_comparisons_and_paired_differences():
    assert ch.comparisons(["single", "gt", "hard"]) == [("gt", "single"), ("hard", "gt"), ("hard", "single")]
    assert ch.comparisons(["hard", "soft", "gt", "single"]) == [("gt", "single"), ("soft", "gt"), ("hard", "gt"),
                                                                ("soft", "single"), ("hard", "single")]
    runs = runs_of({"single": [5.0, 7.0], "gt": [6.0, 10.0], "hard": [6.0, 8.0]})
    diffs = ch.paired_differences(runs, [("gt", "single"), ("hard", "gt")])
    assert list(diffs["comparison"]) == ["gt − single"] * 2 + ["hard − gt"] * 2
    assert list(diffs["seed"]) == [0, 1, 0, 1] and list(diffs["difference"]) == [1.0, 3.0, 0.0, -2.0]


def test_summary_table_leaves_missing_heads_empty():
    table = ch.summary_table(summary_of(runs_of({"single": [5.0], "gt": [4.0, 6.0], "hard": [3.0]})))
    single, gt = table.iloc[0], table.iloc[1]
    assert single["top-1, frame head (%)"] == "" and single["top-1, average / single (%)"] == "5.0  (one seed)"
    assert gt["top-1, average / single (%)"] == "5.0 ± 1.4  [4.0, 6.0]" and list(table["seeds"]) == [1, 2, 1]


def test_variants_table_weights_each_token_loss():
    table = ch.variants_table(["single", "none", "gt", "soft", "hard"], alpha=0.5, tau=2.0, soft_alpha=0.95)
    assert list(table["alpha"]) == ["", "", "0.500", "0.950", "0.500"]
    assert list(table["teacher"]) == ["no", "no", "no", "yes", "yes"]
    assert table.loc[3, "token head loss"] == "KL to the teacher, tau 2"
    assert list(table["model"]) == [dx.SINGLE_MODEL] + [dx.STUDENT_MODEL] * 4


def test_published_table_puts_deit_gains_beside_the_measured_ones():
    runs = runs_of({"single": [5.0, 7.0], "gt": [6.0, 10.0], "hard": [6.0, 8.0]})
    table = ch.published_table(runs, [("gt", "single"), ("hard", "gt")], "SynthActions, b")
    reported = table[table["source"] == "reported"]
    assert list(reported["gain (points)"].round(1)) == [2.3, 1.3, 1.6]
    measured = table[table["source"] == "measured here"]
    assert list(measured["gain (points)"]) == [2.0, -1.0] and set(measured["work"]) == {"SynthActions, b"}
    assert ch.world_name(True, "hmdb51") == "SynthActions" and ch.world_name(False, "hmdb51") == "HMDB51"


def test_latency_facts_and_caption():
    side, counts = ch.latency_side_by_side(latency_of())
    facts = ch.latency_facts(side, counts, "b", 4)
    assert facts["ch5_whole_ratio"] == pytest.approx(1.1) and facts["ch5_whole_ms"] == 110.0
    assert facts["ch5_temporal_ratio"] == pytest.approx(1.25) and facts["ch5_flops_extra"] == pytest.approx(1.0)
    assert facts["ch5_temporal_share"] == pytest.approx(100 * 2.5 / 110)
    assert facts["ch5_params_extra_k"] == pytest.approx(66.0)
    caption = ch.latency_caption("a CPU", 3, "No load.", counts)
    assert caption == ("Measured on: a CPU (batch 1, 3 rounds of one call per model in turn). No load. "
                       "Parameters (M): b: single 25.00, two 25.07")


def test_best_table_says_n_a_without_a_token_loss():
    best = {"label": "single head", "model": "m", "head": "single", "distillation": "n/a", "alpha": None,
            "tau": None, "mean": 6.66, "weights": {0: "w"}}
    assert list(ch.best_table(best)["value"]) == ["single head", "m", "single", "n/a", "n/a", "n/a", "6.7%", 1]
    best.update(alpha=0.5, tau=1.0)
    assert list(ch.best_table(best)["value"])[4:6] == ["0.500", "1"]


def test_figures(tmp_path):
    from matplotlib.figure import Figure

    from actiondistill.config import TrainConfig

    runs = runs_of({"single": [5.0, 7.0], "gt": [6.0, 10.0], "hard": [6.0, 8.0]})
    params = ch.Params(seeds=[0, 1], latency_backbones=["b"])
    result = ch.Result(params=params, choice={"label": "T"}, base=TrainConfig(), teacher_row={"top1_mean": 6.0},
                       classes=5, soft_alpha=0.8, runs=runs, summary=summary_of(runs),
                       headline=paired_by_seed(runs, "variant", "gt", "single"), attribution={},
                       differences=ch.paired_differences(runs, ch.comparisons(params.variants)),
                       latency=latency_of(), machine="", best={}, path=tmp_path)
    for figure in (ch.heads_figure, ch.attribution_figure, ch.latency_figure):
        fig = figure(result)
        assert isinstance(fig, Figure) and len(fig.axes) >= 1
    assert [ax.get_title() for ax in ch.heads_figure(result).axes] == ["closed-set (test split)",
                                                                       "zero-shot (held-out classes)"]
