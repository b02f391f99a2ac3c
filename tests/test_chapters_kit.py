"""The chapter kit: typed parameters from a notebook's namespace, the facts' Markdown marking, the seed-spread text,
the machine label, the world guard, chapter 2's teacher as later chapters read it, the runs table and the shared
accuracy-against-latency figure."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from actiondistill.chapters import kit
from actiondistill.chapters.kit import (
    ChapterParams,
    Facts,
    Md,
    World,
    accuracy_latency_figure,
    machine_label,
    mean_sd_range,
    read_teacher,
    runs_table,
    same_world,
    spread_column,
)
from actiondistill.config import TrainConfig, to_dict

matplotlib.use("Agg")


@dataclass
class Params(ChapterParams):
    seeds: list[int] | None = None
    lr: float = 1e-4


def test_parameters_come_from_the_namespace_typed_and_the_rest_keep_their_defaults():
    params = Params.from_namespace({"seeds": [0, 1, 2], "lr": 4e-4, "videos": 2400, "unrelated": object()})
    assert params.seeds == [0, 1, 2] and params.lr == 4e-4 and params.videos == 2400
    assert params.profile == "smoke" and params.world == "standard"
    assert params.synthetic_world
    with pytest.raises(ValueError, match="lr"):
        Params.from_namespace({"lr": "fast"})


def test_records_are_keyed_by_the_profile_when_the_runner_sets_it_and_by_the_world_otherwise():
    assert Params(profile="embedded", record_key="embedded").records_as() == "embedded"
    assert Params(profile="embedded", videos=2400, size=64, frames=32, seed=3).records_as() == \
        "embedded-standard_n2400_s64_f32_seed3"


def test_facts_keep_their_order_and_mark_markdown():
    facts = Facts()
    facts.add(ch9_a=1.5, ch9_b=Md("**bold**"))
    assert list(facts.values) == ["ch9_a", "ch9_b"] and "ch9_b" in facts
    assert isinstance(facts["ch9_b"], Md) and facts["ch9_b"] == "**bold**"


def test_a_mean_over_seeds_reads_with_its_spread_or_says_one_seed():
    assert mean_sd_range(54.5, 1.1, 53.2, 55.4) == "54.5 ± 1.1  [53.2, 55.4]"
    assert mean_sd_range(54.5, math.nan) == "54.5  (one seed)"
    assert mean_sd_range(math.nan, math.nan) == ""  # nothing measured: an empty cell, not "nan"
    summary = pd.DataFrame({"top1_mean": [50.0, 40.0], "top1_std": [2.0, math.nan], "top1_min": [48.0, 40.0],
                            "top1_max": [52.0, 40.0]})
    assert spread_column(summary, "top1") == ["50.0 ± 2.0  [48.0, 52.0]", "40.0  (one seed)"]
    assert spread_column(summary, "top1", with_range=False)[0] == "50.0 ± 2.0"


def test_the_machine_label_names_the_gpu_or_the_cpu_and_its_threads():
    env = {"cpu_model": "Xeon", "threads": 1, "torch": "2.14.1", "device_name": "H100", "cuda": "13.0"}
    assert machine_label(env) == "Xeon CPU, 1 thread(s), torch 2.14.1"
    assert machine_label(env, "cuda:0") == "H100 (CUDA 13.0), torch 2.14.1"


def test_a_chapter_refuses_an_earlier_chapter_trained_on_another_world(tmp_path):
    world = World(tmp_path / "a" / "manifest.json")
    same_world(Params(), tmp_path / "a" / "manifest.json", world, "chapter 2's teacher")
    with pytest.raises(ValueError, match="chapter 2's teacher was trained on"):
        same_world(Params(), tmp_path / "b" / "manifest.json", world, "chapter 2's teacher")
    same_world(Params(), None, World(None), "anything")  # real datasets: nothing to compare
    with pytest.raises(ValueError, match="no in-project CLIP"):
        World(Path("m.json")).checkpoint("embedded-base")


def write_teacher(results: Path, key: str, dataset: str, manifest: Path | None) -> tuple[Path, TrainConfig]:
    """A chapter-2 record under `key` whose recipe trained on `dataset` (and `manifest`)."""
    base = TrainConfig()
    config = dataclasses.replace(base, data=dataclasses.replace(base.data, dataset=dataset,
                                                                manifest=str(manifest) if manifest else None))
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"teacher_choice-{key}.json"
    path.write_text(json.dumps({"teacher": "actionclip-transf", "config": to_dict(config)}))
    return path, config


def test_a_later_chapter_reads_chapter_twos_teacher_with_its_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    params = Params(record_key="unit")
    with pytest.raises(FileNotFoundError, match=r"teacher_choice-unit\.json: no teacher chosen .*run chapter 2 .*"
                                                r"papermill book/02_teacher\.ipynb .*-p record_key unit"):
        read_teacher(params)  # a records key of a hand run is not a profile: no --profile to suggest
    with pytest.raises(FileNotFoundError, match=r"run chapter 2 first \(python -m actiondistill book --profile "
                                                r"embedded --only 02_teacher\)"):
        read_teacher(Params(record_key="embedded"))
    path, config = write_teacher(tmp_path / "results", "unit", "synthactions", tmp_path / "a" / "manifest.json")
    teacher = read_teacher(params, World(tmp_path / "a" / ".." / "a" / "manifest.json"))  # the same file, resolved
    assert teacher.path == path and teacher.config == config and teacher.choice["teacher"] == "actionclip-transf"
    assert read_teacher(params).config == config  # no world given (chapter 7): nothing to compare


def test_a_later_chapter_refuses_chapter_twos_teacher_of_another_dataset_or_world(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    path, _ = write_teacher(tmp_path / "results", "unit", "synthactions", tmp_path / "a" / "manifest.json")
    with pytest.raises(ValueError) as refused:
        read_teacher(Params(record_key="unit", dataset="hmdb51"), World(None))
    assert str(refused.value) == (f"dataset='hmdb51', but chapter 2's teacher for profile 'smoke' ({path}) was "
                                  "trained on 'synthactions'")
    with pytest.raises(ValueError, match=r"chapter 2's teacher \(.*teacher_choice-unit\.json\) was trained on .*a/"
                                         r"manifest\.json, this chapter's world is .*b/manifest\.json"):
        read_teacher(Params(record_key="unit"), World(tmp_path / "b" / "manifest.json"))
    write_teacher(tmp_path / "results", "real", "hmdb51", None)
    assert read_teacher(Params(record_key="real", dataset="hmdb51"), World(None)).config.data.dataset == "hmdb51"


def test_the_runs_table_shows_the_chosen_columns_in_order_under_the_books_names():
    runs = pd.DataFrame({"setting": ["a", "b"], "seed": [0, 1], "top1": [50.04, 61.26], "zs_top1": [math.nan, 20.0],
                         "trainable_m": [1.234, 2.0], "train_s": [12.0, 3.45], "eval_s": [1.0, 2.0],
                         "unshown": ["x", "y"]})
    table = runs_table(runs, ["setting", "seed", "trainable_m", "top1", "zs_top1", "train_s", "eval_s"])
    assert table.to_string(delimiter="|").splitlines() == [
        "setting|seed|trainable (M)|closed-set top-1|zero-shot top-1|train (s)|eval (s)",
        "a|0|1.2|50.0|nan|12.0|1.0",
        "b|1|2.0|61.3|20.0|3.5|2.0"]
    renamed = runs_table(runs, ["seed", "setting", "top1", "zs_top1"], {"top1": "test top-1", "setting": "λ"},
                         na_rep="")
    assert renamed.to_string(delimiter="|").splitlines() == ["seed|λ|test top-1|zero-shot top-1", "0|a|50.0|",
                                                             "1|b|61.3|20.0"]
    assert list(runs.columns) == ["setting", "seed", "top1", "zs_top1", "trainable_m", "train_s", "eval_s",
                                  "unshown"]  # the runs themselves untouched


def test_the_accuracy_latency_figure_draws_every_point_and_the_pareto_front():
    points = pd.DataFrame({"name": ["a", "b", "c"], "latency_ms": [10.0, 20.0, 30.0],
                           "top1_mean": [50.0, 60.0, 55.0], "top1_std": [1.0, 2.0, math.nan]})
    fig = accuracy_latency_figure(points, "name", chance={"top1": 4.5}, limit=(25.0, "limit"), title="t")
    ax = fig.axes[0]
    front = next(line for line in ax.get_lines() if line.get_label() == "Pareto front")
    assert list(front.get_xdata()) == [10.0, 20.0]  # c is slower and less accurate than b
    labels = {line.get_label() for line in ax.get_lines()}
    assert {"chance", "limit"} <= labels


def test_every_chapter_grid_runs_variants_outer_and_seeds_inner_and_skips_what_it_leaves_out():
    from actiondistill.engine.runs import grid, run_grid

    assert grid(["a", "b"], [0, 1]) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    calls = []

    def run_one(variant: str, seed: int) -> dict:
        calls.append((variant, seed))
        return {"variant": variant, "seed": seed, "top1": 10.0 * seed}

    jobs = [job for job in grid(["a", "b"], [0, 1]) if job != ("a", 1)]  # ("a", 1) recorded by an earlier run
    rows = run_grid(jobs, run_one, what="variants", progress=False)
    assert calls == jobs and rows[["variant", "seed"]].values.tolist() == [["a", 0], ["b", 0], ["b", 1]]
    assert run_grid([], run_one, what="variants", progress=False).empty



def test_a_grid_trained_side_by_side_in_two_processes_gives_the_rows_of_one_process_at_one_thread():
    import torch

    from actiondistill.engine.runs import run_grid
    from actiondistill.parallel import torch_threads

    data = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))  # captured: travels with the closure

    def run_one(variant: str, seed: int) -> dict:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1 if variant == "fast" else 0.01)
        for _ in range(20):
            loss = model(data).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {"variant": variant, "seed": seed, "loss": float(loss.detach()), "threads": torch.get_num_threads()}

    jobs = [("fast", 0), ("fast", 1), ("slow", 0)]
    apart = run_grid(jobs, run_one, what="variants", progress=False, workers=2)
    with torch_threads(1):
        along = run_grid(jobs, run_one, what="variants", progress=False)
    assert apart.to_dict("records") == along.to_dict("records")  # same numbers, job order, one thread each
    assert list(apart["threads"]) == [1, 1, 1] and apart["loss"].nunique() == 3
    alone = run_grid(jobs[:1], run_one, what="variants", progress=False, workers=2)  # in this process, 1 thread
    assert alone.to_dict("records") == along[:1].to_dict("records")
    with pytest.raises(ValueError, match="workers=0"):
        run_grid(jobs, run_one, what="variants", progress=False, workers=0)

def test_a_book_figure_is_returned_closed_once_whatever_the_function_drew():
    import matplotlib.pyplot as plt

    from actiondistill.chapters.kit import book_figure

    @book_figure
    def axes_only():
        return plt.subplots()[1]  # an Axes, as seaborn functions return

    before = len(plt.get_fignums())
    fig = axes_only()
    assert hasattr(fig, "savefig") and len(plt.get_fignums()) == before  # a Figure, already closed


def test_a_table_shows_numbers_to_one_decimal_and_small_ones_to_two_digits():
    frame = pd.DataFrame({"top-1": [56.2, 21.0], "lr": [0.0004, 0.0], "seeds": [3, 1], "chosen": [True, False],
                          "name": ["a", "b"], "spread": [float("nan"), 1.25]})
    cells = re.findall(r">([^<>]*)</td>", kit.table(frame).to_html())
    assert cells == ["56.2", "0.0004", "3", "True", "a", "nan", "21.0", "0.0", "1", "False", "b", "1.2"]
    assert re.findall(r">([^<>]*)</td>", kit.table(frame, na_rep="").to_html())[5] == ""
    assert "row_heading" not in kit.table(frame).to_html()  # no index
