"""Chapter 1's rules on small synthetic tables: split sizes, the class table, attribute balance, the scene prior,
exact time reversal, and the parameters the profiles pass."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from actiondistill.chapters import ch01_data as ch

matplotlib.use("Agg")


def clips(rows):
    return pd.DataFrame(rows, columns=["path", "label", "label_text", "split", "scene", "shape"])


def test_params_defaults_are_the_smoke_profile_and_profiles_keys_are_fields():
    params = ch.Params()
    assert (params.profile, params.dataset, params.videos, params.size, params.frames) == \
        ("smoke", "synthactions", 120, 64, 16)
    assert (params.data_root, params.split, params.strip_frames) == (None, 1, 8)
    # hmdb51/ucf101 pass these by `defaults`; chapter 1 reads them
    assert {"data_root", "split", "dataset", "size", "profile"} <= set(ch.Params.fields())
    given = ch.Params.from_namespace({"split": 2, "data_root": "hmdb51", "unrelated": 1})
    assert (given.split, given.data_root) == (2, "hmdb51")


def test_split_sizes_orders_splits_and_counts_classes():
    table = clips([("a", 0, "x", "test", "", ""), ("b", 1, "y", "train", "", ""), ("c", 1, "y", "train", "", ""),
                   ("d", 0, "x", "train", "", "")])
    sizes = ch.split_sizes(table)
    assert list(sizes.index) == ["train", "test"]          # the book's order, not the order of appearance
    assert sizes.loc["train", "clips"] == 3 and sizes.loc["train", "classes"] == 2
    assert sizes.loc["test", "clips"] == 1 and sizes.loc["test", "classes"] == 1


def test_class_table_counts_clips_and_marks_partners_and_roles():
    classes = ["moving left", "moving right", "blinking"]
    table = clips([("a", 0, "moving left", "train", "", ""), ("b", 0, "moving left", "val", "", ""),
                   ("c", 2, "blinking", "zeroshot", "", "")])
    out = ch.class_table(classes, table, {"blinking"}, synthetic=True).set_index("class")
    assert out.loc["moving left", "clips"] == 2 and out.loc["moving right", "clips"] == 0
    assert out.loc["moving left", "reversed in time"] == "moving right"
    assert out.loc["blinking", "reversed in time"] == "itself"
    assert out.loc["blinking", "direction or manner"] == ""
    assert out.loc["blinking", "role"] == "zero-shot" and out.loc["moving left", "role"] == "seen"
    real = ch.class_table(["brush hair"], clips([("a", 0, "brush hair", "train", "", "")]), set(), synthetic=False)
    assert list(real.columns) == ["class", "clips"]


def test_attribute_imbalance_is_the_worst_attribute_ratio():
    pairs = [("snow", "star")] * 3 + [("beach", "star"), ("beach", "cross")]
    table = clips([(str(i), 0, "x", "train", scene, shape) for i, (scene, shape) in enumerate(pairs)])
    # scene: snow 3, beach 2 -> 1.5; shape: star 4, cross 1 -> 4
    assert ch.attribute_imbalance(table, ("scene", "shape")) == pytest.approx(4.0)
    assert ch.attribute_imbalance(table, ("scene",)) == pytest.approx(1.5)


def test_scene_prior_share_counts_clips_in_their_preferred_scene():
    from actiondistill.data.synth_world import preferred_scene

    home = preferred_scene("moving left")
    other = next(s for s in ("snow", "beach", "forest") if s != home)
    table = clips([("a", 0, "moving left", "train", home, ""), ("b", 0, "moving left", "train", other, ""),
                   ("c", 0, "moving left", "train", other, ""), ("d", 0, "moving left", "train", home, "")])
    assert ch.scene_prior_share(table) == pytest.approx(50.0)


def test_exact_reversals_renders_each_reversible_class():
    reversible, exact = ch.exact_reversals(["moving left", "blinking", "growing"], seed=0, size=32, frames=6)
    assert reversible == ["moving left", "growing"]            # blinking is its own reversal
    assert exact == 2


def test_headline():
    assert ch.headline("hmdb51", 10, 3) == "**hmdb51**: 10 clips, 3 classes."
    assert isinstance(ch.headline("hmdb51", 10, 3), ch.Md)


def test_real_data_figures_say_why_they_are_empty():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    result = ch.Result(ch.Params(dataset="hmdb51"), clips([]), ["a"], set(), ch.headline("hmdb51", 1, 1),
                       strips={"classes": [("a", frames)]})
    assert len(ch.class_strips_figure(result).axes) == 2
    for figure in (ch.reversal_figure, ch.attributes_figure, ch.presets_figure):
        fig = figure(result)
        assert "Real datasets" in fig.axes[0].texts[0].get_text()


def test_run_on_an_hmdb51_format_dataset(tmp_path, monkeypatch):
    from test_spatial_sources import write_hmdb

    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    write_hmdb(tmp_path / "hmdb51")
    result = ch.run(ch.Params(dataset="hmdb51", strip_frames=2))
    facts = result.facts
    assert (facts["ch1_clips"], facts["ch1_classes"], facts["ch1_heldout"], facts["ch1_seen"]) == (4, 2, 0, 2)
    assert (facts["ch1_split_train"], facts["ch1_split_test"]) == (2, 2)
    assert facts["ch1_world"] == "none" and "ch1_reversible" not in facts
    assert np.isnan(facts["ch1_attr_imbalance"]) and np.isnan(facts["ch1_scene_prior"])
    assert [title for title, _ in result.strips["classes"]] == result.classes
    assert result.strips["classes"][0][1].shape[0] == 2
    assert list(result.tables["splits"].index) == ["train", "test"]
