"""Profiler on tiny CPU models: sane latency statistics, exact FLOP and parameter counts, sweep table shape."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from actiondistill import profiler
from actiondistill.profiler import LOAD_SPREAD, SWEEP_COLUMNS, environment, load_note, profile_model, sweep

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")


class TinyVideo(nn.Module):
    """(B, T, 3, H, W) -> (B, classes): a per-frame conv backbone, mean over time, a linear head."""

    def __init__(self, frames: int = 2, width: int = 4, image_size: int = 8) -> None:
        super().__init__()
        self.frames = frames
        self.image_size = image_size
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, 3)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        return self.backbone(frames.flatten(0, 1)).view(b, t, -1).mean(1)

    def forward(self, frames: torch.Tensor, labels: list[str] | None = None) -> torch.Tensor:
        logits = self.head(self.encode_video(frames))
        return logits if labels is None else logits[:, : len(labels)]


def _check_latency_stats(res: dict, iters: int) -> None:
    assert len(res["latencies_ms"]) == iters
    assert 0 < res["min_ms"] <= res["p50_ms"] <= res["p90_ms"] <= res["p99_ms"] <= max(res["latencies_ms"])
    assert res["throughput_clips_s"] == pytest.approx(res["batch"] * 1000.0 / res["mean_ms"])
    assert res["peak_mem_mb"] > 0


def test_linear_profile_counts_flops_and_params_exactly():
    model = nn.Linear(16, 8).train()
    res = profile_model(model, (16,), batch=4, warmup=1, iters=7, progress=False)
    _check_latency_stats(res, 7)
    assert res["gflops"] == pytest.approx(2 * 16 * 8 * 4 / 1e9)  # a multiply-add is 2 FLOPs
    assert res["params_total"] == 16 * 8 + 8
    assert res["params_total_m"] == pytest.approx((16 * 8 + 8) / 1e6)
    assert (res["device"], res["dtype"], res["batch"], res["mode"]) == ("cpu", "fp32", 4, "model")
    assert model.training  # the training flag is restored


def test_param_groups_method_and_tuple_inputs():
    model = TinyVideo(width=5)
    backbone_params = 3 * 5 * 9 + 5
    res = profile_model(
        model, lambda b: (torch.randn(b, 2, 3, 8, 8), ["a", "b"]), batch=3, iters=3, warmup=0,
        param_groups={"backbone": model.backbone, "head": "head"}, progress=False,
    )
    assert res["params_backbone_m"] == pytest.approx(backbone_params / 1e6)
    assert res["params_head_m"] == pytest.approx((5 * 3 + 3) / 1e6)
    # conv FLOPs: 2 * (out * in * k*k) per output pixel, 8x8 pixels, 3 clips x 2 frames; + the head's 2 * 5 * 3 * 3
    conv = 2 * 5 * 3 * 9 * 64 * 6
    assert res["gflops"] == pytest.approx((conv + 2 * 5 * 3 * 3) / 1e9)
    enc = profile_model(model, (2, 3, 8, 8), batch=3, iters=2, method="encode_video", progress=False)
    assert enc["gflops"] == pytest.approx(conv / 1e9)  # the head is not run
    with pytest.raises(ValueError, match="no sub-module 'neck'"):
        profile_model(model, (2, 3, 8, 8), iters=1, param_groups={"neck": "neck"}, progress=False)


def test_ready_tensor_sets_batch():
    res = profile_model(nn.Linear(4, 2), torch.randn(5, 4), iters=2, progress=False)
    assert res["batch"] == 5 and res["gflops"] == pytest.approx(2 * 4 * 2 * 5 / 1e9)
    with pytest.raises(ValueError, match="batch=2 disagrees"):
        profile_model(nn.Linear(4, 2), torch.randn(5, 4), batch=2, progress=False)


def test_end_to_end_mode_times_the_callable():
    model = nn.Linear(6, 2)
    calls = []

    def pipeline() -> torch.Tensor:
        calls.append(1)
        clip = torch.ones(2, 6) * 0.5  # stands in for decode + transform
        return model(clip * 2.0)

    res = profile_model(model, mode="end_to_end", end_to_end_fn=pipeline, batch=2, warmup=2, iters=4, progress=False)
    _check_latency_stats(res, 4)
    assert len(calls) == 2 + 4 + 1  # warm-up, timed, one FLOP-counting call
    assert res["gflops"] == pytest.approx(2 * 6 * 2 * 2 / 1e9)
    assert res["params_total"] == 14 and res["mode"] == "end_to_end"
    with pytest.raises(ValueError, match="needs end_to_end_fn"):
        profile_model(model, mode="end_to_end")


def test_bf16_on_cpu_runs_or_fails_clearly():
    try:
        res = profile_model(TinyVideo(), (2, 3, 8, 8), dtype="bf16", iters=2, progress=False)
    except RuntimeError as err:
        assert "bf16" in str(err)
    else:
        assert res["dtype"] == "bf16" and res["p50_ms"] > 0
    with pytest.raises(ValueError, match="dtype"):
        profile_model(TinyVideo(), (2, 3, 8, 8), dtype="int8", progress=False)


@needs_no_cuda
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        profile_model(nn.Linear(2, 2), (2,), device="cuda", progress=False)


def test_bad_arguments_and_model_failure():
    with pytest.raises(ValueError, match="mode"):
        profile_model(nn.Linear(2, 2), (2,), mode="fast")
    with pytest.raises(ValueError, match="needs inputs"):
        profile_model(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="per-sample shape"):
        profile_model(nn.Linear(2, 2), (2, -1))
    with pytest.raises(RuntimeError, match="Linear on device=cpu, dtype='fp32' failed"):
        profile_model(nn.Linear(2, 2), (3,), progress=False)


def test_sweep_table_rows_columns_and_speedup():
    built = []

    def factory(frames: int) -> TinyVideo:
        built.append(frames)
        return TinyVideo(frames, width=8)

    models = {"big": factory, "small": TinyVideo(width=2)}
    table = sweep(models, frames=(1, 2), batches=(1, 3), warmup=0, iters=3, progress=False)
    assert list(table.columns) == list(SWEEP_COLUMNS)
    assert len(table) == 2 * 2 * 2
    assert set(zip(table["model"], table["frames"], table["batch"])) == {
        (m, t, b) for m in models for t in (1, 2) for b in (1, 3)
    }
    assert built == [1, 2]  # one build per frame count, reused across batch sizes
    first = table[table["model"] == "big"]
    assert (first["speedup_vs_first"] == 1.0).all()
    for _, row in table[table["model"] == "small"].iterrows():
        ref = first[(first["frames"] == row["frames"]) & (first["batch"] == row["batch"])]["p50_ms"].item()
        assert row["speedup_vs_first"] == pytest.approx(ref / row["p50_ms"])
    assert (table["image_size"] == "8x8").all()
    assert table["params_backbone_m"].notna().all()
    assert (table["p50_ms"] <= table["p99_ms"]).all()
    # one round: its median is the pooled one (up to the last bit of ref / (ref / own) for the second model)
    assert table["latency_ms"].to_numpy() == pytest.approx(table["p50_ms"].to_numpy(), rel=1e-12, abs=0)
    assert table["round_medians_ms"].map(len).eq(1).all() and table["round_spread"].isna().all()
    # hand count for "small" (width 2, 8x8): conv 2*2*3*9 FLOPs per pixel per frame, head 2*2*3 per clip
    small = table[table["model"] == "small"].set_index(["frames", "batch"])["gflops"]
    for t, b in [(1, 1), (2, 3)]:
        assert small[(t, b)] == pytest.approx((2 * 2 * 3 * 9 * 64 * t * b + 2 * 2 * 3 * b) / 1e9)
    assert table.attrs["environment"]["torch"] == torch.__version__
    assert "2 x MAC" in table.attrs["columns"]["gflops"]

    plain = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 6, 3))  # no backbone
    no_backbone = sweep({"plain": plain}, frames=(1,), batches=(1,), image_size=(4, 6), iters=1, progress=False)
    assert math.isnan(no_backbone["params_backbone_m"].item())
    assert no_backbone["image_size"].item() == "4x6" and no_backbone["gflops"].item() == pytest.approx(
        2 * 3 * 4 * 6 * 3 / 1e9
    )


class _Clock:
    """A fake time.perf_counter that only moves when a _Timed model runs: deterministic, and nothing sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def _steady(call: int) -> float:
    return 1.0


class _Timed(nn.Module):
    """A model whose every call takes `ms` on the fake clock, times `load(call)` for its 0-based call number."""

    def __init__(self, clock: _Clock, ms: float, load: Callable[[int], float] = _steady) -> None:
        super().__init__()
        self.clock, self.ms, self.load, self.calls, self.image_size = clock, ms, load, 0, 2

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        self.clock.now += self.ms * self.load(self.calls) / 1000.0
        self.calls += 1
        return frames.mean()


ITERS = 4


def _timed_sweep(monkeypatch, loads: dict[str, Callable[[int], float]], rounds: int = 3):
    """"slow" (20 ms, the reference) and "fast" (10 ms), slowed by `loads` (name -> load), taking `rounds` turns of
    ITERS calls on the fake clock; no warm-up and no FLOP count, so call k of a model falls in round k // ITERS."""
    clock = _Clock()
    monkeypatch.setattr(profiler, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    models = {name: _Timed(clock, ms, loads.get(name, _steady)) for name, ms in (("slow", 20.0), ("fast", 10.0))}
    return sweep(models, frames=(1,), batches=(1,), warmup=0, iters=ITERS, rounds=rounds, method="encode_video",
                 count_flops=False, progress=False)


def _in_round(r: int, factor: float) -> Callable[[int], float]:
    return lambda call: factor if call // ITERS == r else 1.0


@pytest.mark.parametrize("struck", [["slow", "fast"], ["fast"], ["slow"]])
def test_a_loaded_round_moves_neither_the_latency_nor_the_ratio_and_is_flagged(monkeypatch, struck):
    # round 1 takes 10x longer for whichever model(s) the load struck
    table = _timed_sweep(monkeypatch, {name: _in_round(1, 10.0) for name in struck}).set_index("model")
    assert table.loc["slow", "latency_ms"] == pytest.approx(20.0)
    assert table.loc["fast", "latency_ms"] == pytest.approx(10.0)
    assert table.loc["slow", "speedup_vs_first"] == 1.0
    assert table.loc["fast", "speedup_vs_first"] == pytest.approx(2.0)
    for name in struck:
        true_ms = table.loc[name, "latency_ms"]
        assert table.loc[name, "round_medians_ms"] == pytest.approx([true_ms, 10 * true_ms, true_ms])
        assert table.loc[name, "round_spread"] == pytest.approx(4.5)  # quartiles of [1, 10, 1] x true: 1 and 5.5
    assert table["under_load"].to_dict() == {name: name in struck for name in ("slow", "fast")}
    assert table.attrs["under_load"] is True and table.attrs["rounds"] == 3
    assert "Under load" in load_note(table)


def test_load_over_two_rounds_moves_the_pooled_p50_but_not_the_figures(monkeypatch):
    # round 1 is 10x slower for both models, round 2 1.5x slower for the fast one alone
    table = _timed_sweep(monkeypatch, {"slow": _in_round(1, 10.0),
                                       "fast": lambda call: {1: 10.0, 2: 1.5}.get(call // ITERS, 1.0)})
    table = table.set_index("model")
    assert table.loc["slow", "p50_ms"] / table.loc["fast", "p50_ms"] == pytest.approx(20 / 15)  # pooled: misled
    assert table.loc["fast", "speedup_vs_first"] == pytest.approx(2.0)  # per-round ratios 2, 2, 1.33
    assert table["latency_ms"].tolist() == pytest.approx([20.0, 10.0])
    assert table["under_load"].all()


def test_undisturbed_rounds_are_not_flagged(monkeypatch):
    table = _timed_sweep(monkeypatch, {"fast": _in_round(2, 1 + LOAD_SPREAD)})  # slower, within the threshold
    assert not table["under_load"].any() and table.attrs["under_load"] is False
    assert table["round_spread"].tolist() == pytest.approx([0.0, LOAD_SPREAD / 2])  # quartiles 1 and 1 + spread/2
    assert table["latency_ms"].tolist() == pytest.approx([20.0, 10.0])
    assert table["speedup_vs_first"].tolist() == pytest.approx([1.0, 2.0])
    assert "agree within" in load_note(table)


def test_one_round_cannot_claim_to_be_clean(monkeypatch):
    table = _timed_sweep(monkeypatch, {"fast": lambda call: 10.0 if call == 3 else 1.0}, rounds=1)
    assert table.attrs["rounds"] == 1 and table.attrs["under_load"] is False
    assert table["round_spread"].isna().all() and not table["under_load"].any()
    assert table["latency_ms"].tolist() == pytest.approx([20.0, 10.0])  # the median shrugs off one slow call
    assert table["speedup_vs_first"].tolist() == pytest.approx([1.0, 2.0])
    assert "not checked" in load_note(table)


def test_sweep_needs_an_image_size():
    with pytest.raises(ValueError, match="no image size"):
        sweep({"plain": nn.Flatten()}, frames=(1,), batches=(1,), progress=False)


def test_environment_fields():
    env = environment()
    assert env["torch"] == torch.__version__
    assert env["cpu_count"] >= 1 and env["threads"] >= 1
    assert isinstance(env["device_name"], str) and env["device_name"]
    assert env["cuda_available"] == torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_cuda_profile(dtype):
    model = TinyVideo(width=16)
    res = profile_model(model, (4, 3, 32, 32), device="cuda", dtype=dtype, batch=2, iters=5, progress=False)
    _check_latency_stats(res, 5)
    assert res["peak_mem_kind"] == "cuda_max_allocated"
    assert res["device"].startswith("cuda")
    table = sweep({"a": model}, frames=(2,), batches=(1,), device="cuda", dtype=dtype, iters=2, progress=False)
    assert table["device"].item().startswith("cuda") and table["speedup_vs_first"].item() == 1.0


def test_one_hiccup_among_many_single_call_rounds_neither_flags_nor_moves_the_table(monkeypatch):
    # the chapters' many short rounds: round 7 of 15 is 10x slower for the fast model only
    table = _timed_sweep(monkeypatch, {"fast": _in_round(7, 10.0)}, rounds=15)
    table = table.set_index("model")
    assert not table["under_load"].any()
    assert table["latency_ms"].tolist() == pytest.approx([20.0, 10.0])
    assert table["speedup_vs_first"].tolist() == pytest.approx([1.0, 2.0])


def test_sweep_times_with_the_threads_asked_for_and_restores_the_setting():
    before = torch.get_num_threads()
    table = sweep({"plain": nn.Flatten()}, frames=(1,), batches=(1,), image_size=2, iters=1, threads=1,
                  count_flops=False, progress=False)
    assert table.attrs["environment"]["threads"] == 1 and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        sweep({"plain": nn.Flatten()}, frames=(1,), batches=(1,), image_size=2, threads=0, progress=False)
