"""Chapter 6's module: its parameters, the rules that pick and phrase its results, its splits on real data and
its figures, on small synthetic tables (the experiment itself is tests/test_pkd.py's)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

from actiondistill.chapters import ch06_compressed as ch
from actiondistill.chapters import kit
from actiondistill.config import from_dict
from actiondistill.models.compressed_nets import MODALITIES
from actiondistill.paths import project_root


def ic_table(values: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    """`CompressedResults.ic_accuracy` rows: {(variant, seed): 12 accuracies in MODALITIES x exits 1-4 order}."""
    rows = [{"variant": v, "seed": s, "modality": MODALITIES[i // 4], "exit": i % 4 + 1, "accuracy": a}
            for (v, s), accs in values.items() for i, a in enumerate(accs)]
    table = pd.DataFrame(rows)
    table["IC"] = "IC" + table["exit"].astype(str)
    table["variant name"] = table["variant"].map({"ce": "CE", "pkd": "PKD"})
    return table


def curve_table(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    """WISE curve rows (variant, fit, threshold, accuracy, gmacs)."""
    table = pd.DataFrame(rows, columns=["variant", "fit", "threshold", "accuracy", "gmacs"])
    table["early_exit"] = 100 * (1 - table["threshold"])
    table["MMACs per clip"] = 1000 * table["gmacs"]
    return table


# ------------------------------------------------------------------------------------------- parameters
def test_params_defaults_are_the_smoke_profile_and_real_profiles_parse():
    params = ch.Params()
    assert (params.input_size, params.segments, params.views, params.stage0_epochs, params.ic_epochs) == (32, 3, 1,
                                                                                                          2, 3)
    assert params.seeds == [0] and params.variants[:2] == ["ce", "pkd"] and params.checkpoint is None
    assert ch.Params().variants is not params.variants  # no shared mutable default
    for profile in ("embedded", "hmdb51", "ucf101"):
        loaded = yaml.safe_load((project_root() / "book" / "params" / f"{profile}.yaml").read_text())
        own = loaded["chapters"]["06_compressed"]
        parsed = from_dict(own, source=profile, cls=ch.Params)
        assert all(getattr(parsed, key) == value for key, value in own.items())
    real = from_dict(yaml.safe_load((project_root() / "book" / "params" / "hmdb51.yaml").read_text())
                     ["chapters"]["06_compressed"], source="hmdb51", cls=ch.Params)
    assert real.arch["iframe"] == "resnet50" and set(real.checkpoint) == set(MODALITIES)
    assert isinstance(real.stage0_lr, float) and real.cache_features is False


def test_params_from_namespace_reject_a_wrong_type():
    assert ch.Params.from_namespace({"seeds": [0, 1], "views": 3, "unrelated": 1}).seeds == [0, 1]
    with pytest.raises(ValueError, match="views"):
        ch.Params.from_namespace({"views": "three"})


def test_experiment_takes_the_chapters_settings():
    exp = ch.experiment_of(ch.Params(input_size=16, views=2, ic_epochs=4, stage0_lr=1e-3, arch="resnet18"))
    assert (exp.size, exp.views, exp.ic_epochs, exp.stage0_lr, exp.arch) == (16, 2, 4, 1e-3, "resnet18")
    assert exp.device == "auto" and exp.threads == 1  # as the notebook built it: the experiment's own defaults


def test_variants_must_include_ce_and_pkd():
    ch.check_variants(["pkd", "iframe_kd", "ce"])
    for variants in (["pkd", "iframe_kd"], ["ce"], []):
        with pytest.raises(ValueError, match="keep both"):
            ch.check_variants(variants)


# ------------------------------------------------------------------------------------------- rules and prose
def test_headline_lists_every_split_in_order():
    text = ch.headline("synthactions", 22, {"train": [1] * 72, "val": [1] * 15, "test": [1] * 15})
    assert isinstance(text, kit.Md)
    assert text == "**synthactions**: 22 classes; train 72 clips, val 15 clips, test 15 clips."


def test_example_clip_is_the_first_of_its_class_or_the_first_clip():
    videos = [(Path("a"), 0), (Path("b"), 1), (Path("c"), 1)]
    assert ch.example_clip(videos, ["left", "right"], "right") == (Path("b"), 1)
    assert ch.example_clip(videos, ["left", "right"], "Biking") == (Path("a"), 0)


def test_run_note_names_the_computed_steps_or_the_cache():
    assert ch.run_note({"decoding": 2.4, "ics": 1.0}, "/c") == "computed in this run: decoding 2 s, ics 1 s"
    assert ch.run_note({}, "/c/x") == "every run was cached in /c/x"


def test_gains_over_ce_pair_runs_by_seed_and_ic_and_leave_the_final_classifiers_out():
    ce0, ce1 = [10.0] * 12, [20.0] * 12
    pkd0 = [13.0] * 12
    pkd1 = [21.0, 20.0, 20.0, 99.0] + [20.0] * 8  # seed 1: +1 at residual IC1; its IC4 is not an IC of the gain
    gain = ch.gains_over_ce(ic_table({("ce", 0): ce0, ("ce", 1): ce1, ("pkd", 0): pkd0, ("pkd", 1): pkd1}))
    assert list(gain.columns) == ["pkd"] and len(gain) == 2 * 9
    assert gain.loc[(0, "residual", 1), "pkd"] == 3.0 and gain.loc[(1, "residual", 1), "pkd"] == 1.0
    assert gain.loc[(1, "mv", 3), "pkd"] == 0.0
    per_seed = gain.groupby("seed").mean()["pkd"]
    assert per_seed[0] == pytest.approx(3.0) and per_seed[1] == pytest.approx(1 / 9)


def test_final_accuracy_is_exit_4_per_split_in_modality_order():
    train = ic_table({("ce", 0): [0, 0, 0, 90, 0, 0, 0, 80, 0, 0, 0, 70]})
    test = ic_table({("ce", 0): [0, 0, 0, 30, 0, 0, 0, 20, 0, 0, 0, 10],
                     ("pkd", 0): [0, 0, 0, 30, 0, 0, 0, 20, 0, 0, 0, 10]})
    finals = ch.final_accuracy(train, test, MODALITIES)
    assert list(finals.index) == list(MODALITIES) and list(finals.columns) == ["train", "test"]
    assert finals.loc[MODALITIES[0]].tolist() == [90, 30] and finals.loc[MODALITIES[2]].tolist() == [70, 10]


def test_ic_summary_gives_mean_and_sd_over_seeds_under_the_networks_names():
    table = ic_table({("ce", 0): [10.0] * 12, ("ce", 1): [20.0] * 12, ("pkd", 0): [30.0] * 12})
    summary = ch.ic_summary(table, MODALITIES)
    assert summary.loc["CE", ("residual", "IC1")] == "15.0 ± 7.1"
    assert summary.loc["PKD", ("I-frame", "IC4")] == "30.0  (one seed)"
    assert list(summary.columns.get_level_values(0).unique()) == [ch.NAMES[m] for m in MODALITIES]


def test_best_point_is_the_most_accurate_then_the_cheapest_of_its_variant():
    curve = curve_table([("pkd", "train", 0.0, 40.0, 0.002), ("pkd", "train", 0.5, 50.0, 0.010),
                         ("pkd", "train", 0.9, 50.0, 0.005), ("ce", "train", 0.5, 90.0, 0.001)])
    best = ch.best_point(curve, "pkd")
    assert (best["threshold"], best["accuracy"]) == (0.9, 50.0)
    with pytest.raises(ValueError, match="no WISE curve"):
        ch.best_point(curve, "anti_curriculum")


def test_best_description_says_when_every_clip_leaves_at_the_first_ic():
    first = {"threshold": 0.0, "MMACs per clip": 2.386, "early_exit": 100.0}
    assert ch.best_description(first) == ("threshold 0.00, 2.4 MMACs per clip on average, 100% of the clips exiting "
                                          "before the fallback: every clip leaves at the first IC, the residual "
                                          "network's IC1")
    later = ch.best_description({"threshold": 0.9, "MMACs per clip": 12.0, "early_exit": 40.0})
    assert later.endswith("40% of the clips exiting before the fallback") and "first IC" not in later


def test_fusion_note_names_the_network_the_fusion_falls_below():
    singles = pd.Series({"residual": 30.0, "mv": 45.0, "iframe": 20.0})
    below = ch.fusion_note(40.0, singles)
    assert "falls below the MV network alone" in below
    assert ch.fusion_note(45.0, singles) == "The fusion improves on every single network, as it does on real data"


def test_validation_note_reports_the_val_fit_of_pkd_or_its_absence():
    curve = curve_table([("pkd", "train", 0.0, 40.0, 0.002), ("pkd", "val", 0.0, 6.66, 0.002),
                         ("pkd", "val", 0.5, 3.0, 0.004), ("ce", "val", 0.0, 90.0, 0.002)])
    assert "peaks at 6.7%" in ch.validation_note(curve)
    assert ch.validation_note(curve[curve["fit"] == "train"]) == ("Without a validation split, WISE is fitted on "
                                                                  "training logits only")


def test_reported_table_sets_the_measured_gains_beside_the_papers():
    table = ch.reported_table("hmdb51", 2.5, -1.0)
    assert list(table.columns) == ["UCF-101 (reported)", "HMDB-51 (reported)", "hmdb51 (measured)"]
    assert table["hmdb51 (measured)"].tolist() == [2.5, -1.0]
    assert table.loc[ch.REPORTED_ROWS[0], "HMDB-51 (reported)"] == 11.42


# ------------------------------------------------------------------------------------------- real data, figures
def test_real_data_splits_are_the_official_train_and_test_without_validation(tmp_path, monkeypatch):
    from test_spatial_sources import CLASSES, write_hmdb

    write_hmdb(tmp_path / "hmdb51")
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    classes, splits = ch.closed_set_splits(ch.Params(dataset="hmdb51"), kit.World(None))
    assert classes == list(CLASSES) and list(splits) == ["train", "test"]
    assert [p.name for p, _ in splits["train"]] == ["brush_hair_1.avi", "ride_bike_1.avi"]
    assert [label for _, label in splits["test"]] == [0, 1]


def test_figures_draw_one_panel_per_network_and_the_wise_curves():
    test_acc = ic_table({("ce", 0): [10.0] * 12, ("pkd", 0): [12.0] * 12, ("ce", 1): [11.0] * 12,
                         ("pkd", 1): [9.0] * 12})
    gain = ch.gains_over_ce(test_acc)
    curve = curve_table([(v, f, t, 10 + t, 0.002 + 0.02 * t) for v in ("ce", "pkd") for f in ("train", "val")
                         for t in (0.0, 0.5, 1.0)])
    curve["ICs trained with"] = curve["variant"].str.upper()
    curve["WISE fitted on"] = curve["fit"]
    points = pd.DataFrame({"model": ["residual", "mv", "iframe", ch.FUSION], "accuracy": [5.0, 6.0, 7.0, 8.0],
                           "MMACs per clip": [6.0, 6.0, 7.0, 19.0], "label": ["residual", "MV", "I-frame", ch.FUSION]})
    result = SimpleNamespace(test_acc=test_acc, gain=gain, curve=curve, points=points, chance=4.5,
                             finals=pd.DataFrame({"test": [10.0, 11.0, 12.0]}, index=list(MODALITIES)),
                             params=ch.Params(seeds=[0, 1], variants=["ce", "pkd"]))
    for draw in (ch.pkd_ce_figure, ch.controls_figure):
        fig = draw(result)
        assert isinstance(fig, Figure)
        assert [ax.get_title() for ax in fig.axes[:3]] == ["residual network", "MV network", "I-frame network"]
    fig = ch.wise_figure(result)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) >= 4  # 2 variants x 2 fits, and chance
    assert not math.isnan(fig.axes[0].get_ylim()[1])
    plt.close("all")
