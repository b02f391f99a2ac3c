"""Chapter 1, "The data": the classes, the splits and the clips of the chapter's dataset, and the properties of the
SynthActions world that make every method of the book matter (time reversal, spatial attributes, scene prior).

`run(params)` loads the splits (SynthActions: rendered once under data/synthactions/; HMDB51/UCF101: from their
official split files), tabulates them, checks that time reversal is exact, and decodes the frames the figures
show; the figure functions draw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from actiondistill.chapters import kit
from actiondistill.chapters.kit import ChapterParams, Facts, Md

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

#: The spatial attributes whose balance across the splits the chapter shows.
ATTRIBUTES = ("shape", "colour", "scene", "size")
#: The classes drawn from both world presets, side by side.
PRESET_EXAMPLES = ("moving left", "bouncing right", "circling clockwise")
#: The class of the time-reversal example.
REVERSAL_EXAMPLE = "moving towards the house"
SPLIT_ORDER = ("train", "val", "test", "zeroshot")


@dataclass
class Params(ChapterParams):
    data_root: str | None = None   # hmdb51/ucf101: folder under data/ (default: the dataset's name)
    split: int = 1                 # hmdb51/ucf101: official split 1, 2 or 3
    strip_frames: int = 8          # frames shown per clip in the strips


Strip = tuple[str, np.ndarray]


@dataclass
class Result:
    params: Params
    clips: pd.DataFrame                  # one row per clip of every split (`data.summary.clips_table`, label_text)
    classes: list[str]
    held_out: set[str]
    headline: Md                         # "**synthactions**: 120 clips, 28 classes."
    tables: dict[str, pd.DataFrame | Styler] = field(default_factory=dict)
    strips: dict[str, list[Strip]] = field(default_factory=dict)   # the frames each figure shows
    facts: Facts = field(default_factory=Facts)


# ------------------------------------------------------------------------------------------- pure rules
def headline(dataset: str, clips: int, classes: int) -> Md:
    return Md(f"**{dataset}**: {clips} clips, {classes} classes.")


def split_sizes(clips: pd.DataFrame) -> pd.DataFrame:
    """Clips and classes per split, in the order train, val, test, zeroshot (splits absent are left out)."""
    present = set(clips["split"])
    return (clips.groupby("split", sort=False)
            .agg(clips=("path", "size"), classes=("label", "nunique"))
            .reindex([s for s in SPLIT_ORDER if s in present]))


def class_table(classes: Sequence[str], clips: pd.DataFrame, held_out: set[str], synthetic: bool) -> pd.DataFrame:
    """One row per class: its clips and, for SynthActions, its verb, direction, time-reversal partner and role."""
    from actiondistill.data import synthetic as synth

    counts = clips.groupby("label_text").size()
    table = pd.DataFrame({"class": list(classes), "clips": [int(counts.get(c, 0)) for c in classes]})
    if synthetic:
        parts = [synth.action_parts(c) for c in classes]
        table["verb"] = [verb for verb, _ in parts]
        table["direction or manner"] = [direction or "" for _, direction in parts]
        table["reversed in time"] = [synth.reverse_action(c) or "itself" for c in classes]
        table["role"] = ["zero-shot" if c in held_out else "seen" for c in classes]
    return table


def attribute_imbalance(clips: pd.DataFrame, attributes: Sequence[str] = ATTRIBUTES) -> float:
    """The largest ratio, over the attributes, of the most frequent value's clips to the rarest's."""
    return float(max(clips[a].value_counts().max() / clips[a].value_counts().min() for a in attributes))


def scene_prior_share(clips: pd.DataFrame) -> float:
    """Percent of the clips set in their action's preferred scene (`synth_world.preferred_scene`)."""
    from actiondistill.data.synth_world import preferred_scene

    in_preferred = clips["scene"] == [preferred_scene(label) for label in clips["label_text"]]
    return 100.0 * float(in_preferred.mean())


def exact_reversals(classes: Sequence[str], seed: int, size: int, frames: int) -> tuple[list[str], int]:
    """The classes with a time-reversal partner, and for how many of them one specification's rendering played
    backwards is exactly the rendering of its reversed specification."""
    from actiondistill.data import synthetic as synth

    reversible = [c for c in classes if synth.reverse_action(c)]
    exact = 0
    for i, label in enumerate(reversible):
        spec = synth.sample_spec(seed * 1000 + i, label)
        clip = synth.render_clip(spec, size=size, frames=frames)
        back = synth.render_clip(synth.reversed_spec(spec), size=size, frames=frames)
        exact += bool(np.array_equal(back, clip[::-1]))
    return reversible, exact


# ------------------------------------------------------------------------------------------- the chapter
def load_splits(params: Params) -> tuple[dict[str, Any], list[str], set[str], dict[str, Any] | None]:
    """The splits (name -> VideoDataset), the class texts, the held-out classes and the SynthActions manifest."""
    from actiondistill.data import synthetic as synth
    from actiondistill.data.datasets import VideoDataset, hmdb51, ucf101
    from actiondistill.data.sources import real_dataset_root

    if params.synthetic_world:
        manifest_path = kit.prepare_world(params, clips=False).manifest
        manifest = synth.load_manifest(manifest_path)
        splits = {name: VideoDataset.from_manifest(manifest_path, name, probe=False) for name in synth.SPLITS}
        return splits, list(manifest["classes"]), set(manifest["zeroshot_classes"]), manifest
    loader = {"hmdb51": hmdb51, "ucf101": ucf101}[params.dataset]
    root = real_dataset_root(params.dataset, params.data_root)
    splits = {subset: loader(root, split=params.split, subset=subset, probe=False) for subset in ("train", "test")}
    return splits, list(splits["train"].class_texts), set(), None


def decode_strip(path: str, frames: int) -> np.ndarray:
    """`frames` frames sampled uniformly over the clip at `path`, decoded as the models read them."""
    from actiondistill.data.sampling import uniform_indices
    from actiondistill.data.video import open_video

    with open_video(path) as reader:
        return reader.read(uniform_indices(reader.num_frames, frames))


def run(params: Params) -> Result:
    from actiondistill.data import synthetic as synth
    from actiondistill.data.sampling import uniform_indices
    from actiondistill.data.summary import clips_table

    splits, classes, held_out, manifest = load_splits(params)
    clips = clips_table(splits)
    clips["label_text"] = [classes[label] for label in clips["label"]]
    result = Result(params, clips, classes, held_out, headline(params.dataset, len(clips), len(classes)))
    facts = result.facts
    facts.add(ch1_clips=len(clips), ch1_classes=len(classes), ch1_heldout=len(held_out),
              ch1_seen=len(classes) - len(held_out))

    sizes = split_sizes(clips)
    facts.add(**{f"ch1_split_{name}": int(row["clips"]) for name, row in sizes.iterrows()})
    result.tables["splits"] = sizes
    result.tables["classes"] = class_table(classes, clips, held_out, params.synthetic_world).pipe(kit.table)

    examples = clips.drop_duplicates("label_text").set_index("label_text")
    result.strips["classes"] = [(c + (" (zero-shot)" if c in held_out else ""),
                                 decode_strip(examples.loc[c, "path"], params.strip_frames))
                                for c in classes if c in examples.index]
    if not params.synthetic_world:
        facts.add(ch1_attr_imbalance=float("nan"), ch1_world="none", ch1_scene_prior=float("nan"),
                  ch1_scene_chance=float("nan"))
        return result

    reversible, exact = exact_reversals(classes, params.seed, params.size, params.frames)
    if exact != len(reversible):
        raise AssertionError(f"time reversal must be exact: {exact} of {len(reversible)} classes are")
    facts.add(ch1_reversible=len(reversible), ch1_reversible_share=100 * len(reversible) / len(classes))
    spec = synth.sample_spec(params.seed, REVERSAL_EXAMPLE)
    back_spec = synth.reversed_spec(spec)
    idx = uniform_indices(params.frames, params.strip_frames)
    result.strips["reversal"] = [
        (spec.label, synth.render_clip(spec, size=params.size, frames=params.frames)[idx]),
        (back_spec.label, synth.render_clip(back_spec, size=params.size, frames=params.frames)[idx])]

    facts.add(ch1_attr_imbalance=attribute_imbalance(clips))
    step = max(1, params.frames // 8)
    result.strips["presets"] = [
        (f"{label} ({preset})", synth.render_clip(synth.sample_spec(params.seed + i, label, preset),
                                                  size=params.size, frames=params.frames)[::step])
        for i, label in enumerate(PRESET_EXAMPLES) for preset in ("standard", "hard")]
    facts.add(ch1_world=synth.manifest_world(manifest), ch1_scene_prior=scene_prior_share(clips),
              ch1_scene_chance=100.0 / len(synth.ATTRIBUTES["scene"]))
    return result


# ------------------------------------------------------------------------------------------- figures
@kit.book_figure
def class_strips_figure(result: Result) -> Figure:
    """One clip per class (the first of its split), frames sampled uniformly over time."""
    from actiondistill.viz import frame_strips

    with kit.figure_style():
        return frame_strips(result.strips["classes"])


@kit.book_figure
def reversal_figure(result: Result) -> Figure:
    """A clip and its time reversal, which carries the partner label."""
    from actiondistill.viz import frame_strips

    if "reversal" not in result.strips:
        return kit.note_figure("Real datasets: no rendering specification to reverse.")
    with kit.figure_style():
        return frame_strips(result.strips["reversal"], frame_inches=1.1,
                            title="A clip and its time reversal carry different labels")


@kit.book_figure
def attributes_figure(result: Result) -> Figure:
    """Counts of each spatial attribute's values, per split."""
    import seaborn as sns

    if not result.params.synthetic_world:
        return kit.note_figure("Real datasets: no rendered spatial attributes.")
    long = result.clips.melt(id_vars=["split"], value_vars=list(ATTRIBUTES), var_name="attribute",
                             value_name="value")
    with kit.figure_style():
        grid = sns.catplot(data=long, x="value", hue="split", col="attribute", kind="count", col_wrap=2,
                           sharex=False, sharey=False, height=2.6, aspect=1.6)
        grid.set_xticklabels(rotation=30)
        grid.set_titles("{col_name}")
        grid.figure.subplots_adjust(hspace=0.55)
    return grid.figure


@kit.book_figure
def presets_figure(result: Result) -> Figure:
    """The same clip specifications drawn from the `standard` and the `hard` preset."""
    from actiondistill.viz import frame_strips

    if "presets" not in result.strips:
        return kit.note_figure("Real datasets: no world preset.")
    with kit.figure_style():
        return frame_strips(result.strips["presets"])
