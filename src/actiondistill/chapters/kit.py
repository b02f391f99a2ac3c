"""What every chapter module shares: typed parameters, the facts a chapter's text glues, the world and its caches,
chapter 2's teacher as the later chapters read it, the text of a mean over seeds, the runs table, the machine a
latency was measured on, and the accuracy-against-latency figure.

A chapter module (`chNN_<name>.py`) has a `Params` dataclass (a `ChapterParams`), a `run(params) -> Result` that
holds the experiment, its decisions and the sentences its text glues, and its figure functions. Its notebook
narrates and calls: `params = Params.from_namespace(globals())`, `result = run(params)`, `glue_facts(result.facts)`,
then the tables and figures of `result`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from actiondistill.config import from_dict

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

    from actiondistill.config import TrainConfig

P = TypeVar("P", bound="ChapterParams")


class Md(str):
    """Text a chapter glues as Markdown (bold, code, links), not as a plain string."""


def smoke_pretrain() -> dict[str, Any]:
    """The smoke profile's CLIP pretraining (`PretrainConfig` overrides): one short epoch per CLIP, enough to run
    every chapter in seconds. Every chapter that builds the world's CLIPs defaults to it, so that they share one."""
    return {"frames_per_clip": 2, "eval_frames_per_clip": 1, "base": {"epochs": 1, "batch_size": 48},
            "tiny": {"epochs": 1, "batch_size": 48}}


@dataclass
class ChapterParams:
    """Base of every chapter's parameters: the fields shared by all chapters; each chapter adds its own.

    The defaults are the smoke profile's (what nbval runs); book/params/<profile>.yaml overrides them through
    papermill, and `from_namespace` reads them back, typed and checked by the one config system.
    """

    profile: str = "smoke"           # the parameter profile the book runner used (book/params/<profile>.yaml)
    dataset: str = "synthactions"    # synthactions | hmdb51 | ucf101
    videos: int = 120                # SynthActions world (chapter 1): number of clips
    world: str = "standard"          # SynthActions difficulty preset: "standard" or "hard" (the first world)
    size: int = 64                   # frame size in pixels
    frames: int = 16                 # SynthActions: frames per clip of the world
    seed: int = 0                    # SynthActions: the world's seed (and the in-project CLIPs')
    record_key: str | None = None    # the name its records go under; None: the profile and the world
    device: str = "cpu"
    grid_workers: int = 1            # training runs side by side in processes (engine.runs.run_grid), the cores
                                     # shared among them; a run's numbers depend on its thread count

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_namespace(cls: type[P], namespace: Mapping[str, Any]) -> P:
        """The parameters found in a notebook's namespace (its parameters cell and papermill's injected cell);
        fields absent there keep their defaults. Wrong types raise, naming the parameter."""
        given = {name: namespace[name] for name in cls.fields() if name in namespace}
        return from_dict(given, source=f"{cls.__module__} parameters", cls=cls)

    def records_as(self) -> str:
        """The name this chapter's records go under (`chapter_records.record_name`)."""
        from actiondistill.chapter_records import record_name

        return record_name(self.profile, self.record_key, self.dataset, self.world, self.videos, self.size,
                           self.frames, self.seed)

    @property
    def synthetic_world(self) -> bool:
        return self.dataset == "synthactions"


@dataclass
class Facts:
    """Name -> value of everything a chapter's text glues, in the order they were found."""

    values: dict[str, Any] = field(default_factory=dict)

    def add(self, **values: Any) -> None:
        self.values.update(values)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        return name in self.values


def glue_facts(facts: Facts | Mapping[str, Any]) -> None:
    """Glue every fact for the chapter's text (`Md` values as Markdown), displaying nothing."""
    from IPython.display import Markdown
    from myst_nb import glue

    for name, value in (facts.values if isinstance(facts, Facts) else facts).items():
        glue(name, Markdown(value) if isinstance(value, Md) else value, display=False)


def mean_sd_range(mean: float, sd: float, low: float | None = None, high: float | None = None) -> str:
    """'54.5 ± 1.1  [53.2, 55.4]' for a mean over seeds; '54.5  (one seed)' when the spread is unknown; '' when
    nothing was measured (a NaN mean: zero-shot on a dataset without held-out classes, a head a variant lacks)."""
    if mean is None or math.isnan(mean):
        return ""
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return f"{mean:.1f}  (one seed)"
    text = f"{mean:.1f} ± {sd:.1f}"
    return text if low is None or high is None else f"{text}  [{low:.1f}, {high:.1f}]"


def spread_column(summary: pd.DataFrame, prefix: str, with_range: bool = True) -> list[str]:
    """`mean_sd_range` of every row of a `engine.runs.summarise` table for metric `prefix` (e.g. "top1")."""
    rows = summary[[f"{prefix}_mean", f"{prefix}_std", f"{prefix}_min", f"{prefix}_max"]].to_numpy()
    return [mean_sd_range(m, s, lo, hi) if with_range else mean_sd_range(m, s) for m, s, lo, hi in rows]


#: The book's names for the per-run columns of every chapter's runs table (`runs_table`).
RUN_COLUMNS = {"trainable_m": "trainable (M)", "top1": "closed-set top-1", "zs_top1": "zero-shot top-1",
               "val_top1": "val top-1", "train_s": "train (s)", "eval_s": "eval (s)"}


def table(frame: pd.DataFrame, precision: int = 1, na_rep: str | None = None) -> Styler:
    """A chapter's table as the book shows it: no index, numbers to `precision` decimals, and a small non-zero
    number (a learning rate) to two significant digits rather than rounded to nothing. Why: pandas' Styler shows
    every float to six decimals ("56.200000") unless told otherwise. `na_rep` is what a missing number shows (None:
    pandas' "nan")."""
    return frame.style.format(functools.partial(_number, precision=precision), na_rep=na_rep).hide(axis="index")


def _number(value: Any, precision: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value  # text, flags and missing values as they are
    if isinstance(value, numbers.Integral):
        return str(value)
    if math.isnan(value) or value == 0 or abs(value) >= 0.5 * 10 ** -precision:
        return value if math.isnan(value) else f"{value:.{precision}f}"
    return f"{value:.2g}"


def runs_table(runs: pd.DataFrame, columns: Sequence[str], names: Mapping[str, str] | None = None,
               na_rep: str | None = None) -> Styler:
    """One row per run: the `columns` of `runs`, in that order, under the book's names (`RUN_COLUMNS`, then the
    chapter's own `names`), so that every chapter's runs read alike (`table`'s format)."""
    return table(runs[list(columns)].rename(columns={**RUN_COLUMNS, **(names or {})}), na_rep=na_rep)


def machine_label(environment: Mapping[str, Any], device: str = "cpu") -> str:
    """Where a latency was measured, for a table's caption: the GPU, or the CPU model and its threads."""
    if str(device).startswith("cuda"):
        return f"{environment['device_name']} (CUDA {environment['cuda']}), torch {environment['torch']}"
    return f"{environment['cpu_model']} CPU, {environment['threads']} thread(s), torch {environment['torch']}"


# ------------------------------------------------------------------------------------------- world and caches
@dataclass
class World:
    """A chapter's data: the SynthActions manifest (None for real datasets) and the embedded CLIPs' record."""

    manifest: Path | None
    clips: dict[str, Any] | None = None

    def checkpoint(self, backbone: str) -> str:
        if self.clips is None:
            raise ValueError(f"no in-project CLIP for {backbone!r}: pass its weights (real datasets have none)")
        return str(self.clips["checkpoints"][backbone])

    def provenance(self) -> Md:
        """Where the CLIPs' weights came from, for the text (`pretrain.provenance`)."""
        from actiondistill.pretrain import provenance

        return Md(provenance(self.clips) if self.clips is not None else "given as weights")


def prepare_world(params: ChapterParams, pretrain: Mapping[str, Any] | None = None, clips: bool = True) -> World:
    """The world every chapter of a profile shares: the manifest (rendered once, then reused) and, with `clips`,
    the embedded CLIPs pretrained on it (`pretrain.ensure_embedded_clips`, shipped or cached). Real datasets
    have neither."""
    if not params.synthetic_world:
        return World(None)
    from actiondistill.data.sources import synthactions_manifest

    manifest = synthactions_manifest(videos=params.videos, size=params.size, frames=params.frames, seed=params.seed,
                                     world=params.world, progress=False)
    if not clips:
        return World(manifest)
    from actiondistill.pretrain import PretrainConfig, ensure_embedded_clips

    cfg = from_dict({"seed": params.seed, **dict(pretrain or {})}, source="pretrain", cls=PretrainConfig)
    return World(manifest, ensure_embedded_clips(manifest, cfg, progress=False))


def frame_cache(world: World, backbone: str, weights: str | Path, size: int, device: str = "cpu",
                dtype: str = "bf16") -> Any:
    """The `frame_cache.FrameFeatureCache` of every clip of the world under one CLIP image encoder."""
    from actiondistill.frame_cache import FrameFeatureCache

    if world.manifest is None:
        raise ValueError("frame features are cached for a SynthActions manifest; the real-data profiles fine-tune "
                         "end to end (freeze_image_encoder=False)")
    return FrameFeatureCache(world.manifest, backbone, weights, size, device=device, dtype=dtype, progress=False)


def frame_features(world: World, backbone: str, weights: str | Path, size: int, device: str = "cpu",
                   dtype: str = "bf16") -> tuple[Any, bool]:
    """The cached frame embeddings (`frame_cache`), and whether this call computed them (False: reused from an
    earlier chapter or run)."""
    features, computed = frame_features_together(world, backbone, [weights], size, device, dtype)
    return features[0], computed[0]


def frame_features_together(world: World, backbone: str, weights: Sequence[str | Path], size: int,
                            device: str = "cpu", dtype: str = "bf16") -> tuple[list[Any], list[bool]]:
    """`frame_features` of several weights of one backbone, the missing ones computed in one pass over the world
    (each clip decoded once: `frame_cache.get_together`)."""
    from actiondistill.frame_cache import get_together

    caches = [frame_cache(world, backbone, w, size, device, dtype) for w in weights]
    return get_together(caches), [cache.computed for cache in caches]


def same_world(params: ChapterParams, recorded_manifest: str | Path | None, world: World, what: str) -> None:
    """Refuse to mix worlds: `recorded_manifest` (an earlier chapter's) must be this chapter's world."""
    if world.manifest is None or recorded_manifest is None:
        return
    if Path(recorded_manifest).resolve() != Path(world.manifest).resolve():
        raise ValueError(f"{what} was trained on {recorded_manifest}, this chapter's world is {world.manifest}: run "
                         f"both with the same videos/size/frames/seed/world (profile {params.profile!r})")


# ------------------------------------------------------------------------------------------- chapter 2's teacher
@dataclass(frozen=True)
class TeacherRecord:
    """Chapter 2's record of the chosen teacher (`teacher_choice.write_choice`), as the later chapters read it."""

    choice: dict[str, Any]   # the record itself: teacher, model, weights per seed, decision, summary, config
    config: TrainConfig      # its recipe (`choice["config"]`), which the later chapters train with
    path: Path               # where it was read


def read_teacher(params: ChapterParams, world: World | None = None) -> TeacherRecord:
    """Chapter 2's teacher for this chapter's records (`records_as`), refused unless it was trained on this
    chapter's dataset and, given `world` (this chapter's, `prepare_world`), on its SynthActions world: a chapter
    never silently builds on another data's teacher. `world` None: the chapter trains on chapter 2's own world (its
    recipe's manifest), so there is no other world to compare. A missing record says how to run chapter 2."""
    from actiondistill import teacher_choice as tc

    key = params.records_as()
    path = tc.choice_path(key)
    choice = tc.read_choice(key)
    config = from_dict(choice["config"], source=f"{path}: config")
    if config.data.dataset != params.dataset:
        raise ValueError(f"dataset={params.dataset!r}, but chapter 2's teacher for profile {params.profile!r} ({path}) "
                         f"was trained on {config.data.dataset!r}")
    if world is not None:
        same_world(params, config.data.manifest, world, f"chapter 2's teacher ({path})")
    return TeacherRecord(choice, config, path)


# ------------------------------------------------------------------------------------------- figures
@contextmanager
def figure_style() -> Iterator[None]:
    """The book's one look for figures (seaborn whitegrid, notebook context), scoped to the figure being drawn."""
    import seaborn as sns

    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        yield


def book_figure(draw: Callable[..., Any]) -> Callable[..., Figure]:
    """A chapter's figure function: drawn in the book's style and closed before it is returned, so that a notebook
    shows it exactly once, as the cell's value (a figure left open would show a second time). A FacetGrid or Axes
    that `draw` returns is turned into its Figure."""

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> Figure:
        import matplotlib.pyplot as plt

        with figure_style():
            made = draw(*args, **kwargs)
        fig = made if hasattr(made, "savefig") else made.figure
        plt.close(fig)
        return fig

    return drawn


def note_figure(text: str) -> Figure:
    """A one-line figure that says why there is nothing to draw (e.g. a real dataset has no rendering
    specification), so that a captioned figure cell is never empty."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.6))
    ax.set_axis_off()
    ax.text(0.0, 0.5, text, va="center")
    plt.close(fig)
    return fig


def paired_seeds_figure(runs: pd.DataFrame, x: str, panels: Sequence[tuple[str, str]], order: Sequence[str],
                        title: str, rotation: float = 0.0) -> Figure:
    """Settings side by side, seed by seed: one panel per (metric, axis title), a dot per run coloured by its
    seed, a grey line joining one seed's runs across the settings, and the mean ± sd over seeds in red. The book's
    noise rule pairs runs by seed; this is how a reader sees that pairing."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with figure_style():
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
        axes = axes[0]
        for ax, (metric, axis_title) in zip(axes, panels, strict=True):
            sns.lineplot(data=runs, x=x, y=metric, units="seed", estimator=None, color="0.7", lw=1, ax=ax,
                         sort=False)
            sns.pointplot(data=runs, x=x, y=metric, order=order, errorbar="sd", capsize=0.1, color="C3",
                          linestyles="none", ax=ax)
            sns.stripplot(data=runs, x=x, y=metric, order=order, hue="seed", palette="tab10", size=7, jitter=False,
                          ax=ax, legend=ax is axes[-1], zorder=3)
            ax.set(xlabel="", ylabel=axis_title)
            if rotation:
                ax.tick_params(axis="x", rotation=rotation)
        axes[-1].legend(title="seed", loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
        fig.suptitle(title)
        fig.tight_layout()
    plt.close(fig)  # returned, not left open: a notebook shows it once, as the cell's value
    return fig


def accuracy_latency_figure(points: pd.DataFrame, label: str, latency: str = "latency_ms",
                            metrics: Sequence[tuple[str, str]] = (("top1", "closed-set top-1 (%)"),),
                            chance: Mapping[str, float] | None = None, xlabel: str = "latency (ms)",
                            title: str = "", limit: tuple[float, str] | None = None) -> Figure:
    """Accuracy against latency, one panel per metric: each row of `points` a point (its `<metric>_mean`, with a
    bar of `<metric>_std`), the Pareto front dashed, chance dash-dotted, and an optional vertical `limit`
    (x, legend text). `label` is the column that names the points."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from actiondistill.stats import pareto_front

    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.4), sharex=True, squeeze=False)
    palette = dict(zip(points[label], sns.color_palette("tab10", len(points)), strict=True))
    for ax, (metric, title_y) in zip(axes[0], metrics, strict=True):
        mean, sd = f"{metric}_mean", f"{metric}_std"
        ax.errorbar(points[latency], points[mean], yerr=points[sd].fillna(0) if sd in points else None, fmt="none",
                    ecolor="0.6", capsize=3, zorder=1)
        sns.scatterplot(data=points, x=latency, y=mean, hue=label, palette=palette, s=90, ax=ax, zorder=2,
                        legend=ax is axes[0][-1])
        front = points[pareto_front(points, latency=latency, accuracy=mean)].sort_values(latency)
        ax.plot(front[latency], front[mean], ls="--", color="0.3", lw=1, zorder=0, label="Pareto front")
        if limit is not None:
            ax.axvline(limit[0], ls=":", color="0.5", label=limit[1])
        if chance and chance.get(metric):
            ax.axhline(chance[metric], ls="-.", color="0.75", lw=1, label="chance")
        ax.set(xlabel=xlabel, ylabel=title_y)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)  # returned, not left open: a notebook shows it once, as the cell's value
    return fig
