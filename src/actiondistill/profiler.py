"""Latency, throughput, FLOPs, parameters and peak memory, measured one way for every model.

Speed claims ("1.73x faster") only mean something when every model is timed by the same code, on the same machine,
in the same run: `profile_model` measures one model, `sweep` runs several side by side over frame counts and batch
sizes and reports the speed-up against the first one, `environment` records the machine next to the numbers.
On a machine shared with other work, `sweep`'s rounds make its figures robust to other processes' load and flag
the rows that load disturbed (`LOAD_SPREAD`, `load_note`).
A row's `runtime` says what ran the model (eager PyTorch, torch.compile, onnxruntime: actiondistill.export), so
one table holds a model and its faster runtimes side by side.

FLOPs come from torch.utils.flop_counter.FlopCounterMode, which counts a multiply-add as 2 FLOPs: the column is
"GFLOPs (2 x MAC)" and is twice the "GMACs" that fvcore-based papers report.

`profile_backbones` is what the `profile` command runs: one registered video model on several backbones (random
weights), model-only (encode_video on random frames) or end to end (decode + transform + encode_video).
`profile_streaming` (`profile --mode end_to_end --stream`) times the streaming path instead, frame by frame, with
the image encoder on each requested runtime, and says where the time goes (decode, resize, encoder, head).
"""

from __future__ import annotations

import math
import os
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from actiondistill.engine.records import count_parameters, environment
from actiondistill.parallel import torch_threads

if TYPE_CHECKING:
    import pandas as pd

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MODES = ("model", "end_to_end")
#: A row whose middle half of per-round medians spans more than this fraction of its lower quartile
#: ((q75 - q25) / q25) is flagged `under_load`: on an otherwise idle machine repeated timings agree within a few
#: percent, so a wider spread means other processes took the processor during many rounds. Quartiles, not the
#: extremes, so that one hiccup among twenty single-call rounds does not flag a quiet table.
LOAD_SPREAD = 0.2

#: What every column of `sweep`'s table means (also stored in DataFrame.attrs["columns"]).
SWEEP_COLUMNS = {
    "model": "name given in the models mapping",
    "runtime": "what executed the model: eager (PyTorch as written), compile (torch.compile), onnx (onnxruntime on "
               "the exported graphs); see actiondistill.export",
    "frames": "frames per clip (T)",
    "batch": "clips per forward call",
    "image_size": "frame height x width fed to the model",
    "device": "torch device the model ran on",
    "dtype": "fp32, or fp16/bf16 autocast (mixed precision, weights kept in fp32)",
    "mode": "model: the model call on ready input tensors; end_to_end: decode + transform + model",
    "latency_ms": "the headline latency of one call (ms): the first model's fastest round (the lowest of its "
                  "round_medians_ms: load only adds time) divided by this row's speedup_vs_first, so that every row "
                  "rests on the same rounds",
    "p50_ms": "median latency of one call over every round's calls pooled (ms)",
    "p90_ms": "90th percentile latency (ms)",
    "p99_ms": "99th percentile latency (ms)",
    "mean_ms": "mean latency (ms)",
    "min_ms": "fastest call (ms): the one least disturbed by other processes on a shared machine",
    "round_medians_ms": "median latency of each round's calls (ms), one per round",
    "round_spread": "(q75 - q25) / q25 of round_medians_ms: how much the rounds disagree (NaN with one round)",
    "under_load": f"round_spread above LOAD_SPREAD ({LOAD_SPREAD:.0%}): other processes disturbed some rounds (False "
                  "with one round, which cannot tell: see DataFrame.attrs['rounds'])",
    "throughput_clips_s": "clips per second = batch * 1000 / mean_ms",
    "gflops": "GFLOPs (2 x MAC) of one call (whole batch), from FlopCounterMode; counted on eager rows only (NaN "
              "otherwise: the counter sees eager torch operators, not a compiled graph's or onnxruntime's kernels)",
    "params_total_m": "parameters of the whole model (millions)",
    "params_backbone_m": "parameters of the backbone sub-module (millions; NaN when the model has none)",
    "peak_mem_mb": "peak memory (MB): CUDA max_memory_allocated on GPU, peak resident set size of the process on CPU",
    "speedup_vs_first": "the median over rounds of (the first model's round median at the same frames/batch) / (this "
                        "row's round median), each ratio from two measurements taken back to back in one round",
}

InputSpec = Sequence[int] | Callable[[int], Any] | Tensor
ImageSize = int | Sequence[int] | Mapping[str, Any] | None


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device, with a clear error when CUDA is asked for but absent."""
    dev = torch.device(device)
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda[:index]', got {str(device)!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={str(device)!r} requested but CUDA is not available (torch.cuda.is_available() is "
                           "False): use device='cpu' or run on a machine with a CUDA GPU")
    return dev


def _autocast(dtype: str, device: torch.device):
    """Mixed precision for fp16/bf16 (weights stay fp32, so the caller's model is never altered); none for fp32."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")
    if dtype == "fp32":
        return nullcontext()
    if device.type == "cuda" and dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"dtype='bf16' requested but {torch.cuda.get_device_name(device)} does not support bf16")
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def _to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor inside tuples, lists and dicts to `device`; leave anything else (label strings) as is."""
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _call(fn: Callable[..., Any], inputs: Any) -> Any:
    """A tuple is positional arguments, a dict keyword arguments, anything else the single argument."""
    if isinstance(inputs, tuple):
        return fn(*inputs)
    if isinstance(inputs, dict):
        return fn(**inputs)
    return fn(inputs)


def _make_inputs(inputs: InputSpec, batch: int | None, seed: int) -> tuple[Any, int]:
    """Build the model input and the batch size it holds from a shape, an input function or a ready tensor."""
    if isinstance(inputs, Tensor):
        if inputs.dim() == 0:
            raise ValueError("inputs: a ready input tensor needs a batch dimension")
        if batch is not None and batch != inputs.shape[0]:
            raise ValueError(f"batch={batch} disagrees with the input tensor's batch dimension {inputs.shape[0]}")
        return inputs, inputs.shape[0]
    batch = 1 if batch is None else batch
    if batch < 1:
        raise ValueError(f"batch: expected >= 1, got {batch}")
    if callable(inputs):
        return inputs(batch), batch
    if isinstance(inputs, Sequence) and inputs and all(isinstance(s, int) and s > 0 for s in inputs):
        gen = torch.Generator().manual_seed(seed)
        return torch.randn((batch, *inputs), generator=gen), batch
    raise ValueError(f"inputs: expected a per-sample shape of positive ints, a callable input_fn(batch) or a tensor, "
                     f"got {inputs!r}")


def _resolve_group(model: nn.Module, group: nn.Module | str) -> nn.Module:
    if isinstance(group, nn.Module):
        return group
    try:
        return model.get_submodule(group)
    except AttributeError as err:
        raise ValueError(f"param_groups: {type(model).__name__} has no sub-module {group!r}") from err


class _PeakMemory:
    """Peak memory over a measurement window.

    CUDA: max_memory_allocated after a reset (weights + activations of this device). CPU: the process's peak
    resident set size (VmHWM), reset at the start of the window through /proc/self/clear_refs where Linux allows it
    (then kind "rss_peak_window"); otherwise the lifetime peak from getrusage (kind "rss_peak_process", which only
    grows across a sweep). Both CPU kinds include the interpreter, libraries and weights, not just activations.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "rss_peak_process"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            if _vm_hwm_kb() is not None:
                self.kind = "rss_peak_window"
        except OSError:
            self.kind = "rss_peak_process"

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind == "rss_peak_window":
            return _vm_hwm_kb() / 1024
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def _vm_hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(r"^VmHWM:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _time_calls(fn: Callable[[], Any], device: torch.device, warmup: int, iters: int, progress: bool) -> list[float]:
    """Per-call latencies in ms after `warmup` untimed calls.

    GPU: CUDA events around each call and a synchronize after it, so each sample is one call's full latency (not
    overlapped with the next launch). CPU: time.perf_counter.
    """
    for _ in range(warmup):
        fn()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    latencies = []
    for _ in tqdm(range(iters), desc="timing", disable=not progress, leave=False):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            latencies.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            latencies.append((time.perf_counter() - t0) * 1000.0)
    return latencies


def _count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def profile_model(
    model: nn.Module,
    inputs: InputSpec | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    warmup: int = 5,
    iters: int = 20,
    batch: int | None = None,
    mode: str = "model",
    end_to_end_fn: Callable[[], Any] | None = None,
    method: str | None = None,
    param_groups: Mapping[str, nn.Module | str] | None = None,
    count_flops: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure one model's latency distribution, throughput, FLOPs, parameters and peak memory.

    Runs under torch.inference_mode with model.eval() (the training flag is restored afterwards); the model is
    moved to `device` and left there.

    Args:
        model: the network; its parameters are counted in both modes.
        inputs: mode "model": a per-sample shape (random normal input of shape (batch, *shape)), a callable
            input_fn(batch) returning the input, or a ready tensor whose dim 0 is the batch. An input that is a
            tuple is passed as positional arguments, a dict as keyword arguments (e.g. (frames, label_list)).
        device: "cpu" or "cuda[:i]"; CUDA without a GPU raises RuntimeError.
        dtype: "fp32", or "fp16"/"bf16" run as autocast mixed precision.
        warmup: untimed calls first (allocator, cudnn autotuning, lazy init).
        iters: timed calls.
        batch: clips per call (default 1, or the ready tensor's dim 0); in end_to_end mode the clips that one
            end_to_end_fn() call processes.
        mode: "model" times the model call on prepared inputs; "end_to_end" times end_to_end_fn(), a zero-argument
            callable that the caller writes to decode + transform + run the model (FLOPs then count every torch op
            inside it, transforms included).
        method: name of the model method to time instead of forward, e.g. "encode_video".
        param_groups: extra parameter counts, name -> sub-module or dotted sub-module name, e.g.
            {"backbone": model.backbone}; reported as params_<name>_m.
        count_flops: run one extra call under FlopCounterMode.
        seed: seed of the random input built from a shape.
        progress: show a progress bar over the timed calls.

    Returns:
        dict with mode, device, dtype, batch, warmup, iters, threads, latencies_ms (list), p50_ms, p90_ms, p99_ms,
        mean_ms, std_ms, min_ms, throughput_clips_s, gflops (GFLOPs (2 x MAC) per call, None if not counted),
        params_total, params_total_m, params_<group>_m, peak_mem_mb and peak_mem_kind.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if warmup < 0 or iters < 1:
        raise ValueError(f"expected warmup >= 0 and iters >= 1, got warmup={warmup}, iters={iters}")
    dev = resolve_device(device)
    amp = _autocast(dtype, dev)
    groups = {name: _resolve_group(model, g) for name, g in (param_groups or {}).items()}

    if mode == "model":
        if inputs is None:
            raise ValueError("mode='model' needs inputs: a per-sample shape, an input_fn(batch) or a tensor")
        if end_to_end_fn is not None:
            raise ValueError("end_to_end_fn is only used with mode='end_to_end'")
        example, batch = _make_inputs(inputs, batch, seed)
        example = _to_device(example, dev)
        target = getattr(model, method) if method else model
        if not callable(target):
            raise ValueError(f"method: {type(model).__name__}.{method} is not callable")

        def fn() -> Any:
            return _call(target, example)
    else:
        if end_to_end_fn is None:
            raise ValueError("mode='end_to_end' needs end_to_end_fn: a callable doing decode + transform + model")
        if inputs is not None:
            raise ValueError("mode='end_to_end' takes no inputs: end_to_end_fn prepares its own")
        batch = 1 if batch is None else batch
        fn = end_to_end_fn

    was_training = model.training
    model.to(dev).eval()
    memory = _PeakMemory(dev)
    try:
        with torch.inference_mode():
            memory.start()
            with amp:
                try:
                    latencies = _time_calls(fn, dev, warmup, iters, progress)
                except torch.cuda.OutOfMemoryError:
                    raise
                except RuntimeError as err:
                    where = f"{type(model).__name__} on device={dev}, dtype={dtype!r}"
                    raise RuntimeError(f"{where} failed: {err}") from err
            peak_mb = memory.peak_mb()
            flops = _count_flops(fn) if count_flops else None
    finally:
        model.train(was_training)

    total = count_parameters(model)
    result: dict[str, Any] = {
        "mode": mode,
        "device": str(dev),
        "dtype": dtype,
        "batch": batch,
        "warmup": warmup,
        "iters": iters,
        "threads": torch.get_num_threads(),
        **_latency_stats(latencies, batch),
        "gflops": None if flops is None else flops / 1e9,
        "params_total": total,
        "params_total_m": total / 1e6,
    }
    for name, module in groups.items():
        result[f"params_{name}_m"] = count_parameters(module) / 1e6
    result["peak_mem_mb"] = peak_mb
    result["peak_mem_kind"] = memory.kind
    return result


def _latency_stats(latencies: Sequence[float], batch: int) -> dict[str, Any]:
    lat = np.asarray(latencies, dtype=np.float64)
    p50, p90, p99 = (float(v) for v in np.percentile(lat, [50, 90, 99]))
    return {
        "latencies_ms": lat.tolist(),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "mean_ms": float(lat.mean()),
        "std_ms": float(lat.std()),
        "min_ms": float(lat.min()),
        "throughput_clips_s": batch * 1000.0 / float(lat.mean()),
    }


def _pooled(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result from several `profile_model` runs of the same model: latencies pooled, the highest peak memory;
    FLOPs and parameters from the first run (the only one that counts FLOPs)."""
    first = runs[0]
    latencies = [ms for run in runs for ms in run["latencies_ms"]]
    return {**first, **_latency_stats(latencies, first["batch"]), "iters": len(latencies),
            "peak_mem_mb": max(run["peak_mem_mb"] for run in runs)}


def _round_figures(medians: Sequence[float], reference: Sequence[float]) -> dict[str, Any]:
    """A row's load-robust figures from its per-round medians and the reference model's of the same rounds.

    A ratio is taken within a round, where both models ran back to back under the same conditions, and the median
    over rounds discards the rounds in which load struck one of the two. The latency is the reference's fastest
    round (load only ever adds time) divided by that ratio: every row then rests on the same rounds and on one
    shared extreme, whereas each row's own fastest round is an extreme of its own, which load moves by tens of
    percent from one model to the next (benchmarks/results/latency_under_load.json). For the reference row it is
    its fastest round.
    """
    own, ref = np.asarray(medians, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    speedup = float(np.median(ref / own))
    low, high = np.quantile(own, [0.25, 0.75])
    spread = float((high - low) / low) if len(own) > 1 else math.nan
    return {
        "latency_ms": float(ref.min()) / speedup,
        "round_medians_ms": own.tolist(),
        "round_spread": spread,
        "under_load": spread > LOAD_SPREAD,  # False for NaN: one round cannot tell
        "speedup_vs_first": speedup,
    }


def load_note(table: pd.DataFrame) -> str:
    """One sentence for a reader of `sweep`'s table: whether other processes disturbed its timing."""
    rounds = table.attrs.get("rounds", 1)
    if rounds < 2:
        return "One round per model: whether other processes disturbed the timing was not checked."
    loaded = int(table["under_load"].sum())
    if not loaded:
        return f"The {rounds} rounds agree within {LOAD_SPREAD:.0%} on every row: no sign of other processes' load."
    return (f"Under load: on {loaded} of {len(table)} rows the {rounds} rounds' medians differ by more than "
            f"{LOAD_SPREAD:.0%}, so other processes took the machine during some rounds; each latency is the fastest "
            "round's median and each speed-up the median of per-round ratios, which such load moves least.")


def _image_hw(name: str, model: nn.Module, image_size: ImageSize) -> tuple[int, int]:
    """(H, W) for a model: from the argument (one size, or per model name) or the model's `image_size` attribute."""
    size = image_size.get(name) if isinstance(image_size, Mapping) else image_size
    if size is None:
        size = getattr(model, "image_size", None)
    if size is None:
        raise ValueError(f"model {name!r}: no image size: pass image_size= (an int, (H, W) or a dict per model name) "
                         "or give the model an `image_size` attribute")
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def sweep(
    models: Mapping[str, nn.Module | Callable[[int], nn.Module]],
    frames: Sequence[int] = (8, 16, 32),
    batches: Sequence[int] = (1, 8),
    *,
    image_size: ImageSize = None,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    warmup: int = 3,
    iters: int = 10,
    method: str | None = None,
    make_inputs: Callable[[int, int, tuple[int, int]], Any] | None = None,
    end_to_end: Callable[[nn.Module, int, int, tuple[int, int]], Callable[[], Any]] | None = None,
    backbone: str | None = "backbone",
    count_flops: bool = True,
    rounds: int = 1,
    runtimes: Mapping[str, str] | None = None,
    threads: int | None = None,
    seed: int = 0,
    progress: bool = True,
):
    """Profile every model at every (frames, batch) in one run and return a tidy pandas DataFrame.

    For each frame count the models are built (a factory is called as factory(frames); a ready nn.Module is used
    for every frame count), then for each batch every model is timed back to back, so the `speedup_vs_first`
    ratios compare measurements taken under the same machine conditions. With rounds > 1 the models take turns
    `rounds` times (`iters` calls each per turn, warm-up and FLOP count in the first turn only). Load from other
    processes that comes and goes then lands on some rounds, not on whichever model happened to run at the time,
    and each row's figures discount it: `speedup_vs_first` is the median over rounds of the reference's round
    median over this row's, and `latency_ms` the reference's fastest round median (load only adds time) over that
    speed-up. Rows whose round medians spread more than LOAD_SPREAD are flagged `under_load`. With `iters=1` the
    models take turns call by call, which is what the chapters do (`chapters.latency`). The pooled statistics
    (p50_ms, p90_ms, ...) still cover every round's calls.

    Args:
        models: name -> model or factory(frames) -> model; the first entry is the speed-up reference.
        frames: frame counts T.
        batches: clips per call.
        image_size: frame size: an int, (H, W), or a dict name -> size; default: each model's `image_size` attribute.
        device, dtype, warmup, iters, method, count_flops, seed: as in `profile_model`.
        make_inputs: make_inputs(batch, frames, (H, W)) -> model input; default a random (batch, frames, 3, H, W)
            video tensor.
        end_to_end: end_to_end(model, batch, frames, (H, W)) -> a zero-argument callable that decodes, transforms
            and runs the model on `batch` clips; when given, every row is timed in mode "end_to_end" (see
            `profile_model`) and make_inputs/method must be left out.
        backbone: dotted name of the sub-module counted as params_backbone_m (NaN where a model lacks it); None to
            skip.
        rounds: turns of timed calls per model (see above); every row then holds rounds * iters latencies. One
            round cannot tell load from the model's own cost: use 3 or more on a shared machine.
        runtimes: name -> the `runtime` column of its rows ("eager", "compile", "onnx"; default "eager" for every
            model). FLOPs are counted on eager rows only.
        threads: torch intra-op threads during the sweep (restored afterwards; None keeps the process's setting).
            On a machine shared with other work 1 thread gives the figure that survives: a second thread waits at
            every operator for whichever thread the other processes delayed, so multi-thread latencies measure the
            load as much as the model (benchmarks/bench_latency_under_load.py).
        progress: progress bar over the sweep.

    Returns:
        One row per (model, frames, batch) with the columns of SWEEP_COLUMNS; DataFrame.attrs holds "columns"
        (their meaning), "environment" (see `environment`), "rounds", "load_spread" (LOAD_SPREAD) and
        "under_load" (True when any row is; never True with one round, so read it with "rounds").
    """
    import pandas as pd

    if not models:
        raise ValueError("models: expected at least one model")
    if end_to_end is not None and (make_inputs is not None or method is not None):
        raise ValueError("end_to_end builds its own pipeline: leave make_inputs and method out")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds: expected an integer >= 1, got {rounds!r}")
    dev = resolve_device(device)
    names = list(models)
    runtime = _runtimes(names, runtimes)
    with torch_threads(threads):
        rows: list[dict[str, Any]] = []
        bar = tqdm(total=len(frames) * len(batches) * len(names) * rounds, desc="profile sweep", disable=not progress)
        for t in frames:
            built = {name: m if isinstance(m, nn.Module) else m(t) for name, m in models.items()}
            calls: dict[str, dict[str, Any]] = {}  # the timed calls hold the models: released with `built`
            for b in batches:
                calls = {}
                sizes: dict[str, tuple[int, int]] = {}
                for name in names:
                    model = built[name]
                    hw = sizes[name] = _image_hw(name, model, image_size)
                    if end_to_end is not None:
                        timed: dict[str, Any] = {"mode": "end_to_end", "end_to_end_fn": end_to_end(model, b, t, hw)}
                    else:
                        if make_inputs is None:
                            gen = torch.Generator().manual_seed(seed)
                            example = torch.randn(b, t, 3, *hw, generator=gen)
                        else:
                            example = make_inputs(b, t, hw)
                        timed = {"inputs": (lambda _b, x=example: x), "method": method}
                    has_backbone = backbone is not None and _has_submodule(model, backbone)
                    calls[name] = {"model": model, "device": dev, "dtype": dtype, "iters": iters, "batch": b,
                                   "param_groups": {"backbone": backbone} if has_backbone else None, "seed": seed,
                                   "progress": False, **timed}
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
                for turn in range(rounds):
                    for name in names:
                        bar.set_postfix(model=name, frames=t, batch=b)
                        runs[name].append(profile_model(**calls[name], warmup=warmup if turn == 0 else 0,
                                                        count_flops=count_flops and turn == 0
                                                        and runtime[name] == "eager"))
                        bar.update(1)
                reference = [run["p50_ms"] for run in runs[names[0]]]
                for name in names:
                    res = _pooled(runs[name])
                    hw = sizes[name]
                    row = {"model": name, "runtime": runtime[name], "frames": t, "batch": b,
                           "image_size": f"{hw[0]}x{hw[1]}"}
                    row.update({k: res[k] for k in SWEEP_COLUMNS if k in res})
                    row.update(_round_figures([run["p50_ms"] for run in runs[name]], reference))
                    row["gflops"] = math.nan if res["gflops"] is None else res["gflops"]
                    row["params_backbone_m"] = res.get("params_backbone_m", math.nan)
                    rows.append(row)
            del built, calls
        bar.close()
        table = pd.DataFrame(rows)[list(SWEEP_COLUMNS)]
        table.attrs.update(columns=dict(SWEEP_COLUMNS), environment=environment(), rounds=rounds,
                           load_spread=LOAD_SPREAD, under_load=bool(table["under_load"].any()))
        return table


def _runtimes(names: Sequence[str], runtimes: Mapping[str, str] | None) -> dict[str, str]:
    """The runtime label of every model name: given ones checked against the names, "eager" for the rest."""
    runtimes = dict(runtimes or {})
    unknown = sorted(set(runtimes) - set(names))
    if unknown:
        raise ValueError(f"runtimes: {unknown} name no model; the models are {list(names)}")
    bad = {name: label for name, label in runtimes.items() if not isinstance(label, str) or not label}
    if bad:
        raise ValueError(f"runtimes: expected a non-empty label per model (eager, compile, onnx), got {bad}")
    return {name: runtimes.get(name, "eager") for name in names}


def _has_submodule(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


#: Frame side of compressed-triplet backbones when none is given: the embedded world's 64 for the tiny ResNet;
#: otherwise CoViAR's and PKD's 224 (torchvision ResNets).
COMPRESSED_IMAGE_SIZE = {"tiny": 64}
TEXT_ENCODER_NOTE = ("text encoder not timed: in deployment the label embeddings are computed once and cached, so "
                     "a clip costs only its video encoder (encode_video)")

#: The columns of `profile_backbones`' table.
PROFILE_COLUMNS = {
    "model": "registered model name (create_model)",
    "backbone": "backbone architecture, random weights",
    **{key: text for key, text in SWEEP_COLUMNS.items() if key != "model"},
    "params_backbone_m": "parameters of the CLIP image encoder (backbone.visual), the part run on every frame "
                         "(millions; NaN for models without one)",
    "speedup_vs_first": SWEEP_COLUMNS["speedup_vs_first"].replace("first model", "first backbone"),
}


def _check_counts(name: str, values: Sequence[int]) -> list[int]:
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name}: expected one or more integers >= 1, got {list(values)!r}")
    return list(values)


def _synthesise_clip(path: Path, num_frames: int, side: int, seed: int) -> Path:
    """A 4:3 H.264 clip somewhat larger than `side` (so resize and crop do real work) of drifting noise under a
    moving square: detailed, moving content, so decoding costs what a real clip of that size costs."""
    from actiondistill.data.encode import write_video

    height = 2 * math.ceil(side * 8 / 7 / 2)
    width = 2 * math.ceil(height * 4 / 3 / 2)
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 110, (height + num_frames, width + 2 * num_frames, 3), dtype=np.uint8)
    square = max(height // 4, 2)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for k in range(num_frames):
        frames[k] = texture[k:k + height, 2 * k:2 * k + width]
        y, x = (3 * k) % (height - square), (5 * k) % (width - square)
        frames[k, y:y + square, x:x + square] = (230, 120, 40)
    return write_video(path, frames)


def _decode_pipeline(path: Path, device: torch.device) -> Callable[[nn.Module, int, int, tuple[int, int]],
                                                                   Callable[[], Tensor]]:
    """sweep's end_to_end factory: per call, `batch` times open the file, pick TSN test indices, decode them and
    apply the eval transform (on the CPU, as a data loader does), then encode_video the stacked batch."""
    from actiondistill.data.sampling import tsn_indices
    from actiondistill.data.transforms import eval_transform
    from actiondistill.data.video import open_video

    def make(model: nn.Module, batch: int, frames: int, hw: tuple[int, int]) -> Callable[[], Tensor]:
        transform = eval_transform(hw)

        def run() -> Tensor:
            clips = []
            for _ in range(batch):
                with open_video(path) as reader:
                    clips.append(transform(reader.read(tsn_indices(reader.num_frames, frames, train=False))))
            return model.encode_video(torch.stack(clips).to(device))

        return run

    return make


def _video_facts(path: Path, synthesised: bool) -> dict[str, Any]:
    """Open the clip once before any model is built, so a bad file fails fast, and describe it for the record."""
    from actiondistill.data.video import open_video

    with open_video(path) as reader:
        first = reader.read([0])[0]
        return {"path": None if synthesised else str(path), "synthesised": synthesised, "backend": reader.backend,
                "num_frames": reader.num_frames, "size": f"{first.shape[1]}x{first.shape[0]}"}


def profile_backbones(
    model: str,
    backbones: Sequence[str],
    frames: Sequence[int] = (8, 16, 32),
    batches: Sequence[int] = (1,),
    *,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    mode: str = "model",
    video: str | os.PathLike | None = None,
    image_size: int | None = None,
    model_cfg: Mapping[str, Any] | None = None,
    warmup: int = 3,
    iters: int = 10,
    rounds: int = 1,
    count_flops: bool = True,
    seed: int = 0,
    progress: bool = True,
):
    """Profile one registered video model on each of several backbones, side by side in one run.

    Weights are random (pretrained=None): latency does not depend on their values. CLIP models are timed on
    `encode_video` (TEXT_ENCODER_NOTE); compressed-triplet on its forward over random I-frame, motion-vector and
    residual segments. End-to-end mode (CLIP models) times, per call of `batch` clips: opening `video`, TSN
    test-time indices, decoding those frames, the eval transform and encode_video; without `video` a short clip
    is synthesised into a temporary folder and deleted afterwards.

    Args:
        model: a name in list_models().
        backbones: CLIP architecture names (list_backbones()), or COMPRESSED_BACKBONES names for compressed-triplet;
            the first is the speed-up reference.
        frames: frames per clip T (segments for compressed-triplet).
        batches: clips per call.
        device, dtype, warmup, iters, count_flops, seed: as in `profile_model`.
        rounds: turns the backbones take (see `sweep`); more than 1 on a machine shared with other processes.
        mode: "model" or "end_to_end".
        video: the clip decoded in end-to-end mode.
        image_size: frame side for every backbone; default each backbone's own (its CLIP config, or
            COMPRESSED_IMAGE_SIZE).
        model_cfg: extra create_model options, e.g. fusion_layers, or num_classes for compressed-triplet.
        progress: progress bar over the runs.

    Returns:
        pandas DataFrame with the columns of PROFILE_COLUMNS, one row per (backbone, frames, batch); attrs hold
        "columns" (their meaning), "environment", "rounds", "load_spread" and "under_load" (see `sweep`), "video"
        (the decoded clip's facts, None in model mode) and "note" (what was and was not timed).
    """
    from actiondistill.models.backbones import backbone_config, list_backbones
    from actiondistill.models.compressed_nets import MODALITY_CHANNELS
    from actiondistill.models.registry import COMPRESSED_BACKBONES, create_model, list_models, uses_clip_backbone

    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    frames, batches = _check_counts("frames", frames), _check_counts("batches", batches)
    backbones = list(backbones)
    if not backbones:
        raise ValueError("backbones: expected at least one backbone name")
    repeated = sorted({b for b in backbones if backbones.count(b) > 1})
    if repeated:
        raise ValueError(f"backbones: {repeated} listed more than once")
    if model not in list_models():
        raise ValueError(f"model {model!r}: unknown; expected one of {list_models()}")
    clip = uses_clip_backbone(model)
    known = list_backbones() if clip else sorted(COMPRESSED_BACKBONES)
    unknown = [b for b in backbones if b not in known]
    if unknown:
        raise ValueError(f"backbone(s) {unknown} unknown for model {model!r}; expected one of {known}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"image_size: expected an integer >= 1 or None, got {image_size!r}")
    if video is not None and mode != "end_to_end":
        raise ValueError(f"video={str(video)!r} is only decoded with mode='end_to_end'")
    if mode == "end_to_end" and not clip:
        raise ValueError(f"model {model!r}: end-to-end mode decodes RGB frames for CLIP models; the compressed "
                         "networks' I-frame/motion-vector/residual input comes from the compressed-domain "
                         "extraction, so profile them with mode='model'")
    dev = resolve_device(device)
    _autocast(dtype, dev)  # a bad dtype fails now, not after the models are built

    def side(name: str) -> int | Sequence[int]:
        if image_size is not None:
            return image_size
        return backbone_config(name)["vision_cfg"]["image_size"] if clip else COMPRESSED_IMAGE_SIZE.get(name, 224)

    sizes = {name: side(name) for name in backbones}
    cfg = dict(model_cfg or {})

    def factory(name: str) -> Callable[[int], nn.Module]:
        return lambda t: create_model(model, backbone=name, num_frames=t, **cfg)

    def modality_inputs(batch: int, t: int, hw: tuple[int, int]) -> tuple[Tensor, ...]:
        """Positional arguments of CompressedTriplet.forward(iframe, mv, residual)."""
        gen = torch.Generator().manual_seed(seed)
        return tuple(torch.randn(batch, t, MODALITY_CHANNELS[m], *hw, generator=gen)
                     for m in ("iframe", "mv", "residual"))

    timing: dict[str, Any] = {"method": "encode_video"} if clip else {"make_inputs": modality_inputs}
    facts = None
    with ExitStack() as stack:
        if mode == "end_to_end":
            synthesised = video is None
            if synthesised:
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="actiondistill-profile-")))
                largest = max(max(s) if isinstance(s, Sequence) else s for s in sizes.values())
                video = _synthesise_clip(folder / "clip.mp4", max(2 * max(frames), 16), largest, seed)
            facts = _video_facts(Path(video), synthesised)
            timing = {"end_to_end": _decode_pipeline(Path(video), dev)}
        table = sweep(
            {name: factory(name) for name in backbones}, frames, batches, image_size=sizes, device=dev, dtype=dtype,
            warmup=warmup, iters=iters, backbone="backbone.visual", count_flops=count_flops, rounds=rounds, seed=seed,
            progress=progress, **timing,
        )
    attrs = dict(table.attrs)
    table = table.rename(columns={"model": "backbone"})
    table.insert(0, "model", model)
    table.attrs.update(attrs, columns=dict(PROFILE_COLUMNS), video=facts,
                       note=TEXT_ENCODER_NOTE if clip else "timed: the forward of the I-frame, motion-vector and "
                       "residual networks with all 12 internal classifiers, on random segments")
    return table


#: Labels the streaming profile scores every window against (their text embeddings are computed once, as deployed).
STREAM_LABELS = ("waving", "clapping", "juggling", "running", "drinking")
#: The columns of `profile_streaming`'s table.
STREAM_COLUMNS = {
    "model": "registered model name (create_model)",
    "backbone": "backbone architecture, random weights",
    "runtime": "what ran the per-frame image encoder (actiondistill.export.FRAME_RUNTIMES; eager after a "
               "torch.compile fallback)",
    "frames": "window length T: frame embeddings fused per prediction",
    "image_size": "frame height x width fed to the image encoder",
    "threads": "torch (and onnxruntime) CPU threads",
    "fps": "frames per second end to end (decode + resize + encoder + head, a prediction at every frame) in the "
           "fastest round",
    "frame_ms": "wall time per frame in the fastest round (1000 / fps)",
    "round_frame_ms": "wall time per frame of each round",
    "round_spread": SWEEP_COLUMNS["round_spread"].replace("round_medians_ms", "round_frame_ms"),
    "under_load": SWEEP_COLUMNS["under_load"],
    "latency_p50_ms": "median processing time of one frame (resize + encoder + head; decoding excluded), fastest "
                      "round",
    "latency_p99_ms": "99th percentile of that processing time, fastest round",
    "decode_ms": "mean time per frame spent waiting for the decoder (PyAV, frame by frame), fastest round",
    "resize_ms": "mean time per frame of resize, centre crop and normalisation, fastest round",
    "encoder_ms": "mean time per frame of the image encoder on its runtime, fastest round",
    "head_ms": "mean time per window of the temporal head and the scoring against the cached label embeddings",
    "speedup_vs_first": "the median over rounds of (the first row's frame_ms at the same T) / (this row's), each "
                        "ratio from two runs taken in the same round",
    "frame_min_cosine": "agreement with eager fp32 on probe frames: lowest cosine of the frame embeddings (NaN for "
                        "eager itself)",
    "top1_agreement": "agreement with eager fp32: share of probe windows with the same top-1 label (NaN for eager)",
    "params_total_m": "parameters of the whole model (millions)",
    "params_backbone_m": "parameters of the CLIP image encoder, the part run on every frame (millions)",
}


def _stream_row(name: tuple[str, str], t: int, recognizer: Any, runs: Sequence[dict[str, Any]],
                reference: Sequence[float]) -> dict[str, Any]:
    """One table row from a recognizer's per-round stream statistics; the fastest round's figures."""
    from actiondistill.models import visual_parameter_count

    best = max(runs, key=lambda stats: stats["fps"])
    figures = _round_figures([1e3 / stats["fps"] for stats in runs], reference)
    check = recognizer.frame_encoder.agreement or {}
    hw = recognizer.frame_encoder.image_size
    return {
        "backbone": name[0], "runtime": recognizer.runtime, "frames": t, "image_size": f"{hw[0]}x{hw[1]}",
        "threads": torch.get_num_threads(), "fps": best["fps"], "frame_ms": figures["latency_ms"],
        "round_frame_ms": figures["round_medians_ms"], "round_spread": figures["round_spread"],
        "under_load": figures["under_load"], "latency_p50_ms": best["latency_p50_ms"],
        "latency_p99_ms": best["latency_p99_ms"], "decode_ms": best["stages_ms"]["decode"],
        "resize_ms": best["stages_ms"]["resize"], "encoder_ms": best["stages_ms"]["encoder"],
        "head_ms": best["stages_ms"]["head"], "speedup_vs_first": figures["speedup_vs_first"],
        "frame_min_cosine": check.get("frame_min_cosine", math.nan),
        "top1_agreement": check.get("top1_agreement", math.nan),
        "params_total_m": count_parameters(recognizer.model) / 1e6,
        "params_backbone_m": visual_parameter_count(recognizer.model.backbone) / 1e6,
    }


def profile_streaming(
    model: str,
    backbones: Sequence[str],
    runtimes: Sequence[str] = ("eager",),
    frames: Sequence[int] = (8,),
    *,
    video: str | os.PathLike | None = None,
    model_cfg: Mapping[str, Any] | None = None,
    warmup: int = 4,
    iters: int = 32,
    rounds: int = 1,
    labels: Sequence[str] = STREAM_LABELS,
    seed: int = 0,
    progress: bool = True,
):
    """End-to-end streaming as `zeroshot` runs it, for one model on several backbones and runtimes side by side.

    Per frame: PyAV decodes the next frame of `video`, the eval transform resizes it, the image encoder runs once
    on its runtime, the temporal head fuses the window of the last T frame embeddings and the result is scored
    against the cached label embeddings (a prediction at every frame). Each (backbone, runtime) streams `iters`
    frames per round after an untimed turn of max(`warmup`, T) frames (so the head is warm too), taking turns round
    by round as `sweep`'s models do, so that load from other processes lands on every row alike; each row reports
    its fastest round and the spread.
    Every runtime but eager passed its agreement check against eager fp32 (`export.frame_runtime`) first.

    Args:
        model: a CLIP video model that streams (ActionCLIP, ViFi-CLIP).
        backbones: CLIP architectures (random weights), each at its own input size; the first row of each window
            length is the speed-up reference.
        runtimes: `export.FRAME_RUNTIMES` names.
        frames: window lengths T.
        video: the file streamed; default a synthesised clip long enough for `warmup + iters` frames.
        model_cfg: extra create_model options.

    Returns:
        DataFrame with the columns of STREAM_COLUMNS; attrs hold "columns", "environment", "rounds", "load_spread",
        "under_load", "video" (the streamed file's facts) and "note".
    """
    import pandas as pd

    from actiondistill.export import FRAME_RUNTIMES
    from actiondistill.models.backbones import backbone_config, list_backbones
    from actiondistill.models.registry import create_model, list_models, uses_clip_backbone
    from actiondistill.realtime import StreamingRecognizer, video_source

    frames = _check_counts("frames", frames)
    if model not in list_models() or not uses_clip_backbone(model):
        raise ValueError(f"model {model!r}: expected a CLIP video model of {list_models()} (not compressed-triplet)")
    unknown = [name for name in backbones if name not in list_backbones()]
    if not backbones or unknown:
        raise ValueError(f"backbones {unknown or list(backbones)}: expected one or more of list_backbones(), e.g. "
                         "TinyCLIP-ViT-8M-16-Text-3M")
    unknown = [name for name in runtimes if name not in FRAME_RUNTIMES]
    if not runtimes or unknown:
        raise ValueError(f"runtimes {unknown or list(runtimes)}: expected one or more of {list(FRAME_RUNTIMES)}")
    if isinstance(rounds, bool) or rounds < 1 or iters < 1 or warmup < 0:
        raise ValueError(f"rounds={rounds}, iters={iters}, warmup={warmup}: expected rounds, iters >= 1, warmup >= 0")
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        synthesised = video is None
        if synthesised:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="actiondistill-stream-")))
            side = max(backbone_config(name)["vision_cfg"]["image_size"] for name in backbones)
            video = _synthesise_clip(folder / "stream.mp4", max(warmup, iters, *frames, 16), side, seed)
        facts = {**_video_facts(Path(video), synthesised), "backend": "pyav (frame by frame, as streamed)"}
        bar = tqdm(total=len(frames) * len(backbones) * len(runtimes) * (rounds + 1), desc="streaming profile",
                   disable=not progress)
        for t in frames:
            recognizers = {}
            for backbone in backbones:
                torch.manual_seed(seed)
                built = create_model(model, backbone=backbone, num_frames=t, **dict(model_cfg or {}))
                for runtime in runtimes:
                    recognizers[backbone, runtime] = StreamingRecognizer(built, labels, num_frames=t, runtime=runtime)
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {name: [] for name in recognizers}
            for turn in range(rounds + 1):  # the first turn warms every row up, its head included, uncounted
                for name, recognizer in recognizers.items():
                    bar.set_postfix(backbone=name[0], runtime=name[1], frames=t)
                    recognizer.reset()
                    stats = recognizer.run(video_source(video), max_frames=iters if turn else max(warmup, t),
                                           progress=False).stats
                    if turn:
                        runs[name].append(stats)
                    bar.update(1)
            reference = [1e3 / stats["fps"] for stats in runs[next(iter(runs))]]
            rows += [_stream_row(name, t, recognizers[name], runs[name], reference) for name in recognizers]
        bar.close()
    table = pd.DataFrame([{"model": model, **row} for row in rows])[list(STREAM_COLUMNS)]
    table.attrs.update(columns=dict(STREAM_COLUMNS), environment=environment(), rounds=rounds,
                       load_spread=LOAD_SPREAD, under_load=bool(table["under_load"].any()), video=facts,
                       note="streamed at stride 1 (a prediction at every frame) with random weights: speed only; "
                            f"{len(labels)} labels, their text embeddings computed once")
    return table
