"""Chapter 3's machinery: the student's initialisations as stable weight files, the seed-spread comparisons and the
sentences chosen from them, TinyCLIP's facts beside ours, and one small end-to-end swap from a recorded teacher
choice (features per initialisation, the teacher's rows reused, the latency table, the results record)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import open_clip
import pandas as pd
import pytest
import torch
from test_frame_cache import MICRO, SIZE, manifest, micro, micro_recipe  # noqa: F401  (fixtures)

from actiondistill import backbone_swap as bs
from actiondistill import teacher_choice as tc
from actiondistill.engine.runs import run_datasets, summarise
from actiondistill.evaluate import class_texts_of
from actiondistill.frame_cache import FrameFeatureCache
from actiondistill.models import create_backbone, make_inherited, read_state_dict, visual_parameter_count
from actiondistill.stats import paired_by_seed

TINY = "test-micro-swap-tiny"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, micro):  # noqa: F811
    """The student architecture (registered with open_clip) and a 'TinyCLIP' weight file of it."""
    folder = tmp_path_factory.mktemp("tiny")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(5)
    path = folder / "tinyclip.pt"
    torch.save(create_backbone(TINY).state_dict(), path)
    return path


def _state(path) -> dict[str, torch.Tensor]:
    return read_state_dict(path)[0]


def test_inits_are_written_once_and_reproducible(micro, tiny, tmp_path, monkeypatch):  # noqa: F811
    inits = bs.prepare_inits(MICRO, micro[0], TINY, tiny, seed=3, root=tmp_path / "a", progress=False)
    assert list(inits) == list(bs.INITS)
    assert inits["tinyclip"].pretrained == str(tiny) and not inits["tinyclip"].computed
    assert inits["inherited"].computed and inits["random"].computed
    expected, _ = make_inherited(create_backbone(MICRO, pretrained=micro[0]), TINY)
    inherited = _state(inits["inherited"].pretrained)
    assert all(torch.equal(inherited[k], v) for k, v in expected.state_dict().items())
    assert inits["inherited"].meta["layer_map"] == {"visual": [1], "text": [0]}
    # the same recipe in another folder gives the same bytes, so feature-cache keys are stable
    again = bs.prepare_inits(MICRO, micro[0], TINY, tiny, seed=3, root=tmp_path / "b", progress=False)
    for name in ("inherited", "random"):
        assert Path(again[name].pretrained).read_bytes() == Path(inits[name].pretrained).read_bytes()
    other = bs.prepare_inits(MICRO, micro[0], TINY, None, inits=["random"], seed=4, root=tmp_path / "a",
                             progress=False)["random"]
    assert other.pretrained != inits["random"].pretrained
    assert not torch.equal(_state(other.pretrained)["visual.conv1.weight"],
                           _state(inits["random"].pretrained)["visual.conv1.weight"])
    # another teacher's weights give another inherited file
    other_teacher = bs.prepare_inits(MICRO, micro[1], TINY, None, inits=["inherited"], root=tmp_path / "a",
                                     progress=False)["inherited"]
    assert other_teacher.pretrained != inits["inherited"].pretrained
    # a second call reuses the files without rebuilding anything
    monkeypatch.setattr("actiondistill.models.make_inherited", lambda *a, **k: pytest.fail("rebuilt"))
    monkeypatch.setattr("actiondistill.models.create_backbone", lambda *a, **k: pytest.fail("rebuilt"))
    reused = bs.prepare_inits(MICRO, micro[0], TINY, tiny, seed=3, root=tmp_path / "a", progress=False)
    assert not reused["inherited"].computed and reused["random"].pretrained == inits["random"].pretrained
    assert reused["random"].meta["seed"] == 3


def test_init_arguments_are_checked(micro, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="expected a non-empty list"):
        bs.prepare_inits(MICRO, micro[0], TINY, None, inits=["imagenet"], root=tmp_path, progress=False)
    with pytest.raises(ValueError, match="needs TinyCLIP weights"):
        bs.prepare_inits(MICRO, micro[0], TINY, None, root=tmp_path, progress=False)


@pytest.fixture
def runs():
    return pd.DataFrame({"init": ["teacher"] * 3 + ["tinyclip"] * 3 + ["inherited"] * 3 + ["random"],
                         "seed": [0, 1, 2] * 3 + [0],
                         "top1": [80, 82, 84, 60, 61, 62, 58, 61, 64, 30],
                         "zs_top1": [40, 41, 42, 30, 30, 30, 20, 20, 20, 10]}).astype({"top1": float, "zs_top1": float})


@pytest.fixture
def summary(runs):
    return bs.summarise(runs)


def test_comparisons_follow_the_paired_noise_rule(summary, runs):
    assert list(summary.index) == ["teacher", "tinyclip", "inherited", "random"]
    drop = paired_by_seed(runs, "init", "teacher", "tinyclip")  # per-seed differences 20, 21, 22: se 0.58
    assert drop.mean == pytest.approx(21.0) and drop.margin == pytest.approx(2 / 3 ** 0.5)
    assert drop.beyond is True and drop.seeds == 3
    close = paired_by_seed(runs, "init", "tinyclip", "inherited")  # 2, 0, -2
    assert close.mean == pytest.approx(0.0) and close.beyond is False
    assert paired_by_seed(runs, "init", "tinyclip", "random").beyond is None  # one shared seed: no spread
    assert "beyond noise (two standard errors of the difference paired over 3 seeds: 1.2 points)" in \
        drop.against_noise()
    assert "within noise" in close.against_noise()
    # seeds that move both inits alike (sd 10 each) hide nothing from the paired rule: every seed shows +3
    alike = pd.DataFrame({"init": ["tinyclip"] * 3 + ["inherited"] * 3, "seed": [0, 1, 2] * 2,
                          "top1": [60.0, 70.0, 80.0, 57.0, 67.0, 77.0]})
    paired = paired_by_seed(alike, "init", "tinyclip", "inherited")
    assert paired.mean == pytest.approx(3.0) and paired.beyond is True


def test_thesis_verdict_follows_the_numbers(runs):
    drop = paired_by_seed(runs, "init", "teacher", "tinyclip")
    assert bs.thesis_verdict(2.0, drop).endswith("so ours reproduces both.")
    assert "not steep" in bs.thesis_verdict(1.2, drop) and "accuracy drop but not the speed-up" in \
        bs.thesis_verdict(1.2, drop)
    same = paired_by_seed(runs, "init", "tinyclip", "inherited")
    assert bs.thesis_verdict(2.0, same).endswith("the speed-up but not the accuracy drop.")
    better = paired_by_seed(runs, "init", "tinyclip", "teacher")  # the 'student' above the 'teacher'
    assert "*more* accurate" in bs.thesis_verdict(2.0, better)
    assert "confirm the speed-up only" in bs.thesis_verdict(2.0, paired_by_seed(runs, "init", "teacher", "random"))


def test_best_init_and_its_margin(summary, runs):
    best = bs.best_init(summary, runs)
    # tinyclip and inherited tie on top-1 (61.0); zero-shot breaks the tie; the teacher is never a candidate
    assert best["init"] == "tinyclip" and best["ranking"] == ["tinyclip", "inherited", "random"]
    assert best["ranking"][1] == "inherited" and best["margin"].beyond is False
    assert "no initialisation clearly wins" in bs.winner_sentence(best)
    lower = runs.assign(top1=runs["top1"] - 11.0 * (runs["init"] == "inherited"))
    clear = bs.best_init(bs.summarise(lower), lower, ["tinyclip", "inherited"])
    assert clear["margin"].mean == pytest.approx(11.0)
    assert bs.winner_sentence(clear).startswith("TinyCLIP-distilled wins: 11.0 points")
    assert "provisional" in bs.winner_sentence(bs.best_init(summary, runs, ["tinyclip", "random"]))  # one seed
    assert bs.best_init(summary, runs, ["random"])["margin"] is None
    with pytest.raises(ValueError, match="no student"):
        bs.best_init(summary, runs, ["teacher"])


def test_tinyclip_facts_beside_ours(tiny):
    table = bs.reported_table(MICRO, TINY)
    reported = table[table["source"] == "reported"].set_index("model")
    assert len(reported) == len(bs.REPORTED)
    # the configs reproduce REFERENCE.md's visual parameter counts (39M/16: 38.6M, ~0.45x ViT-B/16)
    assert reported.loc["TinyCLIP-ViT-39M-16-Text-19M", "image_encoder_m"] == pytest.approx(38.6, abs=0.05)
    assert reported.loc["TinyCLIP-ViT-39M-16-Text-19M", "vs_teacher"] == pytest.approx(0.448, abs=0.005)
    assert reported.loc["TinyCLIP-ViT-8M-16-Text-3M", "gmacs"] == 2.0
    ours = table[table["source"] == "measured here"].iloc[0]
    assert ours["model"] == TINY and math.isnan(ours["imagenet_zs"])
    teacher, student = create_backbone(MICRO), create_backbone(TINY)
    assert ours["vs_teacher"] == pytest.approx(visual_parameter_count(student) / visual_parameter_count(teacher))
    facts = bs.image_encoder_facts(TINY)
    assert facts["gmacs"] > 0 and facts["gmacs"] < bs.image_encoder_facts(MICRO)["gmacs"]


def test_swap_end_to_end(manifest, micro, tiny, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    base = micro_recipe(manifest, micro[0], tmp_path)
    teacher_features = FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=tmp_path / "features",
                                         progress=False).get()
    runs = tc.run_choice(base, {"actionclip-transf": [0, 1]}, features=teacher_features, freeze_token_embedding=True,
                         fusion_layers=1, run_prefix="ch2", runs_dir=tmp_path / "runs", progress=False)
    table = summarise(runs).assign(latency_ms=[1.0])
    tc.write_choice(tc.choice_path("unit", results), tc.select_teacher(table), base, runs, table, fusion_layers=1)
    choice = tc.read_choice("unit", results)

    teacher = bs.teacher_runs(choice, [0, 1])
    assert list(teacher["seed"]) == [0, 1] and list(teacher["top1"]) == list(runs["top1"])
    assert bs.frozen_token_embedding(teacher)
    with pytest.raises(ValueError, match="seeds \\['0', '1'\\]"):
        bs.teacher_runs(choice, [7])

    recipe = bs.recipe(choice)
    assert recipe == base
    inits = bs.prepare_inits(MICRO, choice["model"]["pretrained"], TINY, tiny, root=tmp_path / "backbones",
                             progress=False)
    features = {name: FrameFeatureCache(manifest, TINY, init.pretrained, SIZE, root=tmp_path / "features",
                                        progress=False).get() for name, init in inits.items()}
    assert len({f.meta["key"] for f in features.values()}) == 3  # each initialisation is its own frozen encoder
    student = bs.run_swap(recipe, choice["model"], inits, [0], features=features, freeze_token_embedding=True,
                          run_prefix="ch3", runs_dir=tmp_path / "runs", progress=False)
    assert list(student["init"]) == list(bs.INITS) and set(student["backbone"]) == {TINY}
    assert set(student["model"]) == {"actionclip-transf"} and set(student["input"]) == {"cached frame embeddings"}
    assert (student["params_m"] < teacher["params_m"].iloc[0]).all()
    assert student["top1"].between(0, 100).all() and student["zs_top1"].between(0, 100).all()
    for weights in student["weights"]:
        assert Path(weights).is_file()
    assert (results / "ch3-random-actionclip-transf-seed0-eval.json").is_file()
    record = json.loads((results / "ch3-inherited-actionclip-transf-seed0-eval.json").read_text())
    assert record["config"]["model"]["pretrained"] == inits["inherited"].pretrained
    assert record["config"]["model"]["kwargs"] == {"fusion_layers": 1}

    summary = bs.summarise(pd.concat([teacher, student], ignore_index=True))
    assert list(summary.index) == ["teacher", *bs.INITS] and summary.loc["teacher", "seeds"] == 2
    texts = class_texts_of(run_datasets(recipe, features["tinyclip"])["train"])
    latency = bs.latency_table(choice["model"], MICRO, TINY, texts, frames=(2, 4), warmup=0, calls=1,
                               progress=False)
    assert list(latency["model"]) == ["teacher", "student"] * 2
    by_role = latency[latency["frames"] == 4].set_index("model")
    assert by_role.loc["teacher", "speedup_vs_first"] == 1.0
    assert by_role.loc["student", "params_backbone_m"] < by_role.loc["teacher", "params_backbone_m"]
    assert by_role.loc["student", "gflops"] < by_role.loc["teacher", "gflops"]

    best = bs.best_init(summary, pd.concat([teacher, student], ignore_index=True))
    path = bs.write_results(bs.results_path("unit", results), choice, inits, student, summary, latency, best, recipe,
                            extra={"profile": "unit"})
    saved = bs.read_results("unit", results)
    assert path.is_file() and saved["best"]["init"] == best["init"] and saved["profile"] == "unit"
    assert saved["best"]["model"]["backbone"] == TINY and saved["best"]["model"]["name"] == "actionclip-transf"
    assert saved["best"]["model"]["pretrained"] == inits[best["init"]].pretrained
    assert Path(saved["best"]["weights"]["0"]).is_file()
    margin = saved["best"]["margin"]  # the record's shape: winner a minus runner-up b
    assert set(margin) == {"a", "b", "metric", "gap", "spread", "beyond", "seeds"}
    assert (margin["a"], margin["b"]) == tuple(best["ranking"][:2]) and margin["gap"] == best["margin"].mean
    assert saved["summary"][0]["top1_std"] is not None and saved["summary"][1]["top1_std"] is None  # NaN -> null
    with pytest.raises(FileNotFoundError, match="03_backbone"):
        bs.read_results("nowhere", results)
