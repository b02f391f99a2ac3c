"""`benchmarks/bench_clip_recipes.py`'s embedding statistics: what its spread columns claim to measure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))  # the benchmark imports bench_world_ceiling as a sibling
    try:
        spec = importlib.util.spec_from_file_location("bench_clip_recipes", BENCHMARKS / "bench_clip_recipes.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_spread_separates_what_moves_within_a_clip_from_what_differs_between_clips(bench):
    torch.manual_seed(0)
    static = torch.randn(50, 1, 16).expand(50, 8, 16)  # every frame of a clip the same: nothing moves
    moving = static + 0.5 * torch.randn(50, 8, 16)
    still, moved = bench.spread(static * 3.0), bench.spread(moving)
    assert still["within_clip_var"] == pytest.approx(0.0, abs=1e-6)  # and the raw norm does not matter
    assert still["between_clip_var"] > 0.5
    assert moved["within_clip_var"] > 0.1


def test_spread_says_when_every_frame_points_the_same_way(bench):
    torch.manual_seed(0)
    shared = torch.randn(16)
    aligned = shared + 0.05 * torch.randn(50, 8, 16)  # anisotropic: one direction dominates every embedding
    isotropic = torch.randn(50, 8, 16)
    assert bench.spread(aligned)["mean_direction_norm"] > 0.95
    assert bench.spread(isotropic)["mean_direction_norm"] < 0.2
