"""Chapter 5's experiment: soft-term weighting, variant configs, the teacher per seed, the seed-paired attribution,
the best setting, one small end-to-end ablation on cached features with its results record, and the latency table.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pandas as pd
import pytest
from test_frame_cache import MICRO, MICRO_CFG, SIZE, cache_root, features, manifest, micro, micro_recipe  # noqa: F401  (fixtures)

from actiondistill import teacher_choice as tc
from actiondistill.config import ObjectiveConfig, TrainConfig, to_dict
from actiondistill.deit import experiment as dx
from actiondistill.engine.runs import train_and_evaluate
from actiondistill.stats import paired_by_seed

pytestmark = pytest.mark.usefixtures("one_thread")


def base_config(manifest_path, weights, tmp_path) -> TrainConfig:  # noqa: F811
    return micro_recipe(manifest_path, weights, tmp_path, name="actionclip-meanp")


def choice_of(base: TrainConfig, weights: dict[int, str], name: str = "actionclip-transf") -> dict:
    """What tc.read_choice returns, for a teacher trained with `base`."""
    return {"teacher": name, "weights": {str(s): w for s, w in weights.items()}, "config": to_dict(base),
            "model": {"name": name, "backbone": base.model.backbone, "pretrained": base.model.pretrained,
                      "num_frames": base.data.num_frames, "kwargs": {"fusion_layers": 1}}}


def test_per_sample_alpha_matches_the_per_logit_normalisation():
    for alpha, classes in ((0.5, 22), (0.3, 5), (0.9, 400)):
        a = dx.per_sample_alpha(alpha, classes)
        assert 0 < a < 1
        # the soft term is a per-sample KL / C: its weight relative to the base loss equals alpha's
        assert (a / classes) / (1 - a) == pytest.approx(alpha / (1 - alpha))
    assert dx.per_sample_alpha(0.5, 22) == pytest.approx(22 / 23)
    assert dx.per_sample_alpha(0.5, 1) == 0.5 and dx.per_sample_alpha(0.0, 10) == 0.0
    with pytest.raises(ValueError, match="alpha"):
        dx.per_sample_alpha(1.5, 10)
    with pytest.raises(ValueError, match="classes"):
        dx.per_sample_alpha(0.5, 0)


def test_variant_configs(tmp_path):
    base = base_config("m.json", "w.pt", tmp_path)
    base = replace(base, objective=ObjectiveConfig("actionclip", {"texts": "classes", "sharpness": 5.0}))
    choice = choice_of(base, {0: "t0.pt", 2: "t2.pt"})
    teacher, teacher_seed = dx.teacher_config(choice, 2)
    assert teacher_seed == 2 and teacher.model.checkpoint == "t2.pt" and teacher.name == "teacher"
    assert dx.teacher_config(choice, 1)[1] == 0  # no teacher of seed 1: the first one
    assert teacher.model.kwargs == {"fusion_layers": 1} and teacher.model.name == "actionclip-transf"

    common = {"fusion_layers": 3, "run_prefix": "ch5", "runs_dir": tmp_path / "runs"}
    single = dx.variant_config(base, "single", 4, **common)
    assert (single.model.name, single.objective, single.teachers, single.seed) == \
        ("actionclip-transf", base.objective, [], 4)
    assert single.model.kwargs == {"fusion_layers": 3} and single.run_name == "ch5-single-seed4"
    assert single.out_dir == str(tmp_path / "runs" / "ch5-single-seed4")
    gt = dx.variant_config(base, "gt", 0, **common)
    assert gt.model.name == "actionclip-twohead" and gt.teachers == []
    assert gt.objective == ObjectiveConfig("deit_twohead", {"distillation": "gt", "alpha": 0.5, "tau": 1.0,
                                                            "texts": "classes", "sharpness": 5.0})
    soft = dx.variant_config(base, "soft", 0, teacher, alpha=0.4, tau=2.0, soft_alpha=0.9, **common)
    assert soft.objective.kwargs["alpha"] == 0.9 and soft.objective.kwargs["tau"] == 2.0
    assert soft.teachers == [teacher]
    hard = dx.variant_config(base, "hard", 0, teacher, alpha=0.4, soft_alpha=0.9, **common)
    assert hard.objective.kwargs["alpha"] == 0.4  # soft_alpha is the soft variant's only
    with pytest.raises(ValueError, match="teacher"):
        dx.variant_config(base, "hard", 0, None)
    with pytest.raises(ValueError, match="variant 'cls'"):
        dx.variant_config(base, "cls", 0)

    assert dx.recipe(choice).epochs == 1 and dx.recipe(choice, epochs=3).epochs == 3
    with pytest.raises(ValueError, match="objective"):
        dx.recipe({**choice, "config": to_dict(replace(base, objective=ObjectiveConfig("clip")))})


def runs_of(values: dict[str, list[float]]) -> pd.DataFrame:
    """A runs table with top1 per variant and seed (seeds 0..n-1)."""
    rows = [{"variant": v, "seed": s, "top1": x, "zs_top1": x / 2, "model": "m", "distillation": v, "alpha": 0.5,
             "tau": 1.0, "weights": f"{v}{s}.pt"} for v, xs in values.items() for s, x in enumerate(xs)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("values", "source"), [
    ({"single": [10, 11, 12], "gt": [15, 16, 17], "soft": [15, 17, 16], "hard": [14, 16, 17]}, "heads"),
    ({"single": [10, 11, 12], "gt": [10, 12, 11], "soft": [15, 16, 17], "hard": [12, 12, 12]}, "teacher"),
    ({"single": [10, 11, 12], "gt": [15, 16, 17], "soft": [20, 21, 22]}, "both"),
    ({"single": [10, 11, 12], "gt": [12, 9, 12], "hard": [9, 12, 12]}, "neither"),
])
def test_attribution_decides_from_paired_differences(values, source):
    result = dx.attribution(runs_of(values))
    assert result["source"] == source
    assert result["agrees_with_thesis"] == (source == "heads")
    assert ("agrees with the thesis" in result["sentence"]) == (source == "heads")
    assert result["conclusion"] in result["sentence"]


def test_paired_differences_of_variants_and_their_verdicts():
    runs = runs_of({"single": [10, 11, 12], "gt": [13, 13, 16]})
    effect = paired_by_seed(runs, "variant", "gt", "single")
    assert effect.per_seed == {0: 3.0, 1: 2.0, 2: 4.0} and effect.mean == pytest.approx(3.0)
    assert effect.std == pytest.approx(1.0) and effect.verdict == "gain"  # 3 > 2 * 1 / sqrt(3)
    assert paired_by_seed(runs, "variant", "single", "gt").verdict == "loss"
    one = paired_by_seed(runs_of({"single": [10], "gt": [20]}), "variant", "gt", "single")
    assert one.verdict == "unknown" and math.isnan(one.std)
    single_seed = dx.attribution(runs_of({"single": [10], "gt": [20], "hard": [20]}))
    assert single_seed["source"] == "undetermined" and "one seed" in single_seed["sentence"]
    with pytest.raises(ValueError, match="'soft'"):
        paired_by_seed(runs, "variant", "soft", "single")
    with pytest.raises(ValueError, match="teacher variant"):
        dx.attribution(runs)


def test_best_setting_and_head_scores():
    runs = runs_of({"single": [10, 12], "gt": [15, 15], "hard": [15, 15]})
    best = dx.best_setting(runs)
    assert best["variant"] == "gt"  # tied with hard: the simpler variant, without a teacher, wins
    assert best["weights"] == {0: "gt0.pt", 1: "gt1.pt"} and best["mean"] == 15.0 and best["head"] == "both"
    assert dx.best_setting(runs_of({"single": [30], "gt": [15]}))["head"] == "single"

    runs = runs.assign(top1_frame=[math.nan, math.nan, 1, 2, 3, 4], top1_token=[math.nan, math.nan, 5, 6, 7, 8],
                       zs_top1_frame=0.0, zs_top1_token=0.0)
    long = dx.head_scores(runs)
    assert len(long) == 2 + 4 * 3  # the single head once, each two-headed run with its average and both heads
    assert set(long.loc[long["variant"] == "single", "head"]) == {"single"}
    token = long[(long["variant"] == "hard") & (long["head"] == "token")]
    assert list(token["top1"]) == [7, 8]


def test_ablation_end_to_end(features, manifest, micro, tmp_path):  # noqa: F811
    """A chapter-2 teacher, then every variant with two seeds on the same cached features, and the record."""
    base = base_config(manifest, micro[0], tmp_path)
    teacher_cfg = tc.candidate_config(base, "actionclip-transf", 0, "t", 1, tmp_path / "runs")
    teacher = train_and_evaluate(teacher_cfg, features, freeze_token_embedding=True, progress=False)
    choice = choice_of(base, {0: teacher["weights"]})
    variants = ["single", "gt", "soft"]
    runs = dx.run_ablation(base, choice, variants, [0, 1], features, alpha=0.5, soft_alpha=0.9, fusion_layers=1,
                           freeze_token_embedding=True, run_prefix="ch5", runs_dir=tmp_path / "runs",
                           progress=False)
    assert list(zip(runs["variant"], runs["seed"], strict=True)) == [(v, s) for v in variants for s in (0, 1)]
    assert (runs["input"] == "cached frame embeddings").all()
    # the teacher is this very single-head run for seed 0 (chapter 2's, same recipe): read back, not retrained
    single = runs[runs["variant"] == "single"].set_index("seed")
    assert single.loc[0, "reused_from"] == "t-actionclip-transf-seed0" and single.loc[1, "reused_from"] == ""
    assert single.loc[0, "top1"] == teacher["top1"] and single.loc[0, "weights"] == teacher["weights"]
    cfg = dx.variant_config(base, "single", 0, fusion_layers=1, run_prefix="ch5", runs_dir=tmp_path / "runs")
    assert dx.teacher_run(cfg, choice, True, True, True) is not None
    assert dx.teacher_run(replace(cfg, epochs=2), choice, True, True, True) is None  # another budget
    assert dx.teacher_run(cfg, choice, True, True, False) is None  # the token table trained
    assert dx.teacher_run(replace(cfg, seed=1), choice, True, True, True) is None  # no teacher of seed 1
    two = runs[runs["variant"] != "single"]
    for key in ("top1", "top1_frame", "top1_token", "zs_top1", "zs_top1_token"):
        assert two[key].between(0, 100).all(), key
    assert runs.loc[runs["variant"] == "single", "top1_frame"].isna().all()
    soft = runs[runs["variant"] == "soft"]
    assert (soft["alpha"] == 0.9).all() and (soft["teacher_seed"] == 0).all()  # seed 1 falls back to teacher 0
    taught = runs["variant"] == "soft"
    assert runs.loc[taught, "train_teacher_agreement"].between(0, 1).all()
    assert runs.loc[~taught, "train_teacher_agreement"].isna().all()
    assert runs.loc[runs["variant"] == "gt", "train_acc_token"].between(0, 1).all()

    summary = dx.summarise(runs)
    assert list(summary.index) == variants and (summary["seeds"] == 2).all()
    path = dx.write_results(dx.results_path("unit", tmp_path / "results"), runs, base, choice,
                            extra={"profile": "unit"})
    text = path.read_text()
    assert "NaN" not in text  # standard JSON
    record = dx.read_results("unit", tmp_path / "results")
    assert record["best"]["variant"] in dx.VARIANTS and record["profile"] == "unit"
    assert record["attribution"]["source"] in ("heads", "teacher", "both", "neither")  # two seeds: decided
    heads = record["attribution"]["heads"]  # the record's shape: the comparison named, `as_dict`, its phrase
    assert (heads["variant"], heads["reference"], heads["metric"], heads["seeds"]) == ("gt", "single", "top1", 2)
    assert {"mean", "std", "se", "verdict", "min", "max", "per_seed", "phrase"} <= set(heads)
    assert record["attribution"]["teacher"]["reference"] == "gt"
    assert len(record["runs"]) == 6 and json.loads(text)["teacher"]["model"]["name"] == "actionclip-transf"
    with pytest.raises(FileNotFoundError, match="05_deit"):
        dx.read_results("nowhere", tmp_path / "results")


def test_features_and_teacher_must_share_the_students_encoder(features, manifest, micro, tmp_path):  # noqa: F811
    base = base_config(manifest, micro[1], tmp_path)  # the features come from micro[0]
    choice = choice_of(base, {0: "unused.pt"})
    with pytest.raises(ValueError, match="cache the features of the students' image encoder"):
        dx.run_ablation(base, choice, ["gt"], [0], features, progress=False)
    base = base_config(manifest, micro[0], tmp_path)
    other = {**choice, "model": {**choice["model"], "pretrained": str(micro[1])}}
    with pytest.raises(ValueError, match="teacher's image encoder"):
        dx.run_ablation(base, other, ["hard"], [0], features, progress=False)
    xclip = {**choice_of(base, {0: "unused.pt"}, name="xclip")}
    with pytest.raises(ValueError, match="X-CLIP"):
        dx.run_ablation(base, xclip, ["soft"], [0], features, progress=False)
    with pytest.raises(ValueError, match="variants"):
        dx.run_ablation(base, choice, ["cls"], [0], features, progress=False)


def test_latency_table_side_by_side(micro):  # noqa: F811  (registers the micro architecture)
    table = dx.latency_table([MICRO], frames=(2,), fusion_layers=1, warmup=0, calls=1, progress=False)
    assert len(table) == 4 and set(table["part"]) == {"whole clip", "temporal part"}
    assert set(table["model"]) == {"single head", "two heads"} and (table["backbone"] == MICRO).all()
    assert (table["p50_ms"] > 0).all() and (table["gflops"] > 0).all()
    whole = table[table["part"] == "whole clip"].set_index("model")
    d = MICRO_CFG["embed_dim"]
    extra = whole.loc["two heads", "params_total_m"] - whole.loc["single head", "params_total_m"]
    assert extra * 1e6 == pytest.approx(d * d + d + 2 * d)  # token head (D x D + bias), token and its position
    temporal = table[table["part"] == "temporal part"].set_index("model")
    assert temporal.loc["two heads", "gflops"] > temporal.loc["single head", "gflops"]
    assert temporal.loc["single head", "gflops"] < whole.loc["single head", "gflops"]
    with pytest.raises(ValueError, match="backbones"):
        dx.latency_table([])


def test_reported_numbers_are_labelled():
    reported = dx.reported_table()
    assert set(reported["source"]) == {"reported"}
    base = reported[reported["model"] == "DeiT-B"].set_index("setting")["top1"]
    assert (base["no distillation"], base["distillation token, hard"]) == (81.8, 83.4)
