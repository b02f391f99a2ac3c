"""Chapter 3's module: its parameters against the book's profiles, and the rules and sentences it builds from the
runs (synthetic tables; the experiment itself is tested in test_backbone_swap.py and by the notebook)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from actiondistill import backbone_swap as bs
from actiondistill.chapters import ch03_backbone as ch
from actiondistill.chapters import kit
from actiondistill.chapters.kit import World
from actiondistill.stats import paired_by_seed

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_params_defaults_are_the_smoke_profile():
    p = ch.Params()
    assert (p.profile, p.dataset, p.videos, p.size, p.frames, p.record_key) == ("smoke", "synthactions", 120, 64, 16,
                                                                                 None)
    assert p.pretrain == {"frames_per_clip": 2, "eval_frames_per_clip": 1, "base": {"epochs": 1, "batch_size": 48},
                          "tiny": {"epochs": 1, "batch_size": 48}}
    assert p.inits == list(bs.INITS) and p.seeds == [0] and p.latency_frames == [16] and p.latency_calls == 2
    assert p.student_backbone == "embedded-tiny" and p.student_pretrained is None and p.feature_dtype == "bf16"
    assert ch.Params().inits is not p.inits  # no shared mutable default


def test_every_profile_key_of_the_chapter_is_a_parameter():
    fields = set(ch.Params.fields())
    for path in sorted((BOOK / "params").glob("*.yaml")):
        profile = yaml.safe_load(path.read_text())
        chapter = (profile.get("chapters") or {}).get("03_backbone") or {}
        assert set(chapter) <= fields, (path.name, set(chapter) - fields)
    typed = ch.Params.from_namespace({"seeds": [0, 1, 2], "student_pretrained": "yfcc15m", "latency_calls": 30,
                                      "pretrain": {}, "unrelated": 1})
    assert typed.seeds == [0, 1, 2] and typed.student_pretrained == "yfcc15m" and typed.pretrain == {}
    with pytest.raises(ValueError, match="latency_calls"):
        ch.Params.from_namespace({"latency_calls": "many"})


def test_student_weights(tmp_path):
    base, tiny = tmp_path / "embedded-base.pt", tmp_path / "embedded-tiny.pt"
    world = World(tmp_path / "manifest.json", {"checkpoints": {"embedded-base": base, "embedded-tiny": tiny}})
    assert ch.student_weights(ch.Params(), world, "embedded-base", str(base)) == str(tiny)
    given = ch.Params(student_pretrained="release.pt")
    assert ch.student_weights(given, World(None), "embedded-base", "other.pt") == "release.pt"
    with pytest.raises(ValueError, match="same `pretrain`"):
        ch.student_weights(ch.Params(), world, "embedded-base", str(tmp_path / "another-base.pt"))
    with pytest.raises(ValueError, match="set `student_pretrained`"):
        ch.student_weights(ch.Params(dataset="hmdb51"), World(None), "ViT-B-16", "openai")


def test_regime_and_feature_sentences():
    assert ch.feature_state([]) == "all reused from the cache"
    assert ch.feature_state(["TinyCLIP-distilled", "random init"]) == \
        "computed by this run for TinyCLIP-distilled, random init"
    frozen = ch.regime_sentence(True, 30.6, "all reused from the cache", {"visual": [0, 2], "text": [1]})
    assert frozen.startswith("The image encoder is frozen") and "(31 s in all; all reused from the cache)" in frozen
    assert frozen.endswith("keeps the teacher's image blocks [0, 2] and text blocks [1].")
    pixels = ch.regime_sentence(False)
    assert pixels == "Every initialisation is fine-tuned end to end on pixels, as the teacher was in chapter 2."


@pytest.fixture
def runs():
    # teacher 80/82/84; tinyclip 20-22 below it; inherited close to tinyclip; random one seed far below
    return pd.DataFrame({"init": ["teacher"] * 3 + ["tinyclip"] * 3 + ["inherited"] * 3 + ["random"],
                         "seed": [0, 1, 2] * 3 + [0],
                         "top1": [80, 82, 84, 60, 61, 62, 58, 61, 64, 30],
                         "zs_top1": [40, 41, 42, 30, 30, 30, 20, 20, 20, 10]}).astype({"top1": float, "zs_top1": float})


def test_accuracy_cells_and_table(runs):
    summary = bs.summarise(runs)
    cells = kit.spread_column(summary, "top1")
    assert cells[0] == "82.0 ± 2.0  [80.0, 84.0]" and cells[-1] == "30.0  (one seed)"
    unmeasured = summary.assign(zs_top1_mean=math.nan, zs_top1_std=math.nan)
    assert kit.spread_column(unmeasured, "zs_top1") == [""] * 4  # no held-out classes: blank, not "nan"
    gaps = {n: paired_by_seed(runs, "init", "teacher", n) for n in ("tinyclip", "inherited", "random")}
    table = ch.accuracy_table(summary, gaps, "big", "small").data
    assert list(table["CLIP"]) == ["big", "small", "small", "small"]
    assert list(table["drop beyond noise"]) == ["", "yes", "yes", "one seed"]
    assert math.isnan(table["drop vs teacher (points)"].iloc[0]) and table["drop vs teacher (points)"].iloc[1] == 21.0
    assert [ch.beyond_label(b) for b in (True, False, None)] == ["yes", "no", "one seed"]
    assert ch.chance(22) == pytest.approx(100 / 22) and math.isnan(ch.chance(0))


def test_thesis_sentences(runs):
    assert ch.thesis_student(["random", "tinyclip"]) == "tinyclip" and ch.thesis_student(["random"]) == "random"
    drop = paired_by_seed(runs, "init", "teacher", "tinyclip")
    zs = paired_by_seed(runs, "init", "teacher", "tinyclip", "zs_top1")
    text = ch.thesis_text(2.0, drop, zs, "tinyclip")
    assert text.startswith(bs.thesis_verdict(2.0, drop))
    assert "Zero-shot, the TinyCLIP-distilled student scores -11.0 points against the teacher, beyond noise" in text
    none = ch.thesis_text(2.0, drop, replace(zs, mean=math.nan), "tinyclip")
    assert none == bs.thesis_verdict(2.0, drop)  # zero-shot not measured: no sentence
    assert "scores +0.0 points" in ch.thesis_text(2.0, drop, replace(zs, mean=0.0), "tinyclip")  # never -0.0


def test_mimic_and_ranking_sentences(runs):
    summary = bs.summarise(runs)
    text = ch.mimic_text(runs, summary, ["tinyclip", "inherited", "random"])
    assert text.startswith("Affinity mimicking, the training that turns the inherited CLIP into the TinyCLIP-distilled "
                           "one, is worth +0.0 points closed-set to the student, within noise")
    # tinyclip and inherited tie at 61.0: the first informed init stands against random (one shared seed)
    assert "Inherited knowledge of any kind (TinyCLIP-distilled against random) is worth +30.0 points, with one seed" \
        in text
    alone = ch.mimic_text(runs, summary, ["inherited", "random"])
    assert alone.startswith("Affinity mimicking is not isolated in this run")
    assert "(inherited, no distillation against random)" in alone
    assert "Inherited knowledge" not in ch.mimic_text(runs, summary, ["tinyclip", "inherited"])
    assert ch.ranking_text(summary, ["tinyclip", "random"]) == "TinyCLIP-distilled (61.0) > random init (30.0)"
    assert ch.speedup_range({8: 2.254, 16: 2.3}) == "2.25x at 8, 2.30x at 16"


def test_latency_caption():
    one = pd.DataFrame({"under_load": [False]})
    one.attrs["rounds"] = 1
    assert ch.latency_caption("a CPU", 1, one) == ("Measured on: a CPU (batch 1, 1 rounds of one call per model "
                                                   "in turn). One round per model: whether other processes "
                                                   "disturbed the timing was not checked.")


def test_swap_figure(runs):
    summary = bs.summarise(runs)
    latency = pd.DataFrame({"model": ["teacher", "student"] * 2, "frames": [8, 8, 16, 16],
                            "latency_ms": [100.0, 40.0, 200.0, 80.0]})
    result = SimpleNamespace(params=ch.Params(), summary=summary, latency=latency, rule_frames=16,
                             teacher=pd.DataFrame({"classes": [22], "zs_classes": [0]}), teacher_backbone="big",
                             student_backbone="small", base=SimpleNamespace(epochs=3))
    fig = ch.swap_figure(result)
    closed, zero_shot, lines = fig.axes[:3]
    assert sorted(closed.collections[-1].get_offsets()[:, 0].tolist()) == [80.0, 80.0, 80.0, 200.0]
    assert any(line.get_label() == "chance" for line in closed.lines)
    assert not any(line.get_label() == "chance" for line in zero_shot.lines)  # no held-out classes: no chance line
    assert list(lines.get_xticks()) == [8, 16] and "3 epoch(s)" in fig._suptitle.get_text()
