"""Chapter 8, "Real time": the three levers that bring a clip model's cost down, measured on one machine in one run
(a smaller image encoder, a streaming engine, faster runtimes), a trained student streamed over a recording, and
the real-size benchmark's result.

`run(params)` measures and trains; every side-by-side latency follows the book's rule: the compared models take
turns round by round in one run (`profiler.sweep` rounds for the dense-sampling and the runtime tables, streaming
rounds for the streaming table), on `threads` threads, and each table names its machine (`kit.machine_label`).
Latency does not depend on the weights' values, so the speed measurements use random weights; only the
demonstration trains a student (one seed of one model).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from actiondistill.chapters import kit
from actiondistill.chapters.kit import ChapterParams, Facts, Md
from actiondistill.teacher_choice import LABELS, model_kwargs

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

#: The frame rate a recognizer must keep up with to be called real time here (frames/s).
CAMERA_FPS = 25
#: Frames of each stream's untimed warm-up pass, in windows.
WARMUP_WINDOWS = 2
#: Emitted windows shown in the strip of the demonstration.
STRIP_WINDOWS = 8


@dataclass
class Params(ChapterParams):
    # dataset: the world the demonstration student trains on (SynthActions only: in-project CLIPs)
    pretrain: dict[str, Any] = field(default_factory=kit.smoke_pretrain)  # as chapter 2 ({}: the recipe's own)
    feature_dtype: str = "bf16"     # precision of the student's cached frame embeddings (fp32, bf16, fp16)
    teacher_backbone: str = "embedded-base"  # the teacher-size CLIP
    student_backbone: str = "embedded-tiny"  # the student-size CLIP
    model: str = "actionclip-transf"  # the video model of every measurement and of the trained student
    fusion_layers: int = 2          # depth of its temporal transformer (6 in the paper)
    threads: int = 1                # CPU threads of torch and ONNX Runtime in every timing
    train_threads: int | None = None  # CPU threads for caching features and training (None: torch's default)
    sweep_frames: list[int] = field(default_factory=lambda: [8])  # dense sampling: frames per clip timed
    sweep_batches: list[int] = field(default_factory=lambda: [1, 2])  # ... and clips per call
    sweep_iters: int = 2            # timed calls per cell (after one warm-up call and one FLOP count)
    sweep_rounds: int = 1           # turns the two backbones take (more on a machine shared with other processes)
    stream_window: int = 8          # frames per streaming window; must be in sweep_frames (the naive cost comes
                                    # from there)
    stream_repeats: int = 1         # end-to-end streaming rounds, the two models taking turns (the median FPS is
                                    # reported)
    recording_clips: int = 3        # test clips (distinct classes) joined into the recording that is streamed
    num_frames: int = 4             # frames per clip the student trains on (TSN segments)
    epochs: int = 1
    batch_size: int = 24
    lr: float = 1e-4                # text encoder
    fusion_lr_mult: float = 10.0    # fusion head
    weight_decay: float = 0.2
    warmup_epochs: float = 0.5
    freeze_token_embedding: bool = False  # keep the text tower's token table fixed (a cheaper training step)
    runtimes: list[str] = field(default_factory=lambda: ["eager", "onnx"])  # runtimes timed ("compile" adds
                                    # torch.compile; its first compilation takes a while)
    runtime_batches: list[int] = field(default_factory=lambda: [1, 4])  # clips per call in the runtime comparison
    runtime_iters: int = 3          # timed calls per runtime and batch, per round
    runtime_rounds: int = 1         # turns the runtimes take
    demo_stride: int = 1            # the recognizer emits a prediction every this many (subsampled) frames
    smoothing: float | None = None  # EMA factor on the streamed probabilities (None: raw)
    live: bool = False              # True in a live kernel: run the webcam/video widget at the end
    live_source: int | str = 0      # the widget's source: a webcam index or a video file path


@dataclass
class Recording:
    """Test clips of distinct classes joined into one H.264 file, and where each clip starts."""

    path: Path
    frames: np.ndarray               # every decoded frame, (N, H, W, 3) uint8
    clip_starts: np.ndarray          # frame index of each clip's first frame, then N
    labels: list[str]                # each clip's class
    fps: int


@dataclass
class Demo:
    """The trained student streamed over the recording: its windows, their probabilities and their hits."""

    predictions: list[Any]           # realtime.Prediction of every emitted window
    over_time: pd.DataFrame          # time (s), class, probability: every window's top-k
    step: int                        # the recognizer takes every step-th frame of the stream
    windows: int                     # emitted windows that lie within one clip
    hits: int                        # ... whose top-1 label is the clip's class


@dataclass
class Result:
    params: Params
    label: str                       # the video model's name in the text ("ActionCLIP Transf")
    machine: Md                      # where every timing was taken (`kit.machine_label`)
    sweep: pd.DataFrame              # dense sampling: `profiler.profile_backbones` rows, with size and ms_per_clip
    streaming: pd.DataFrame          # one row per model (teacher, student): end-to-end streaming figures
    recording: Recording
    training: dict[str, Any]         # the demonstration student's `train_and_evaluate` row
    runs: pd.DataFrame               # the runtime comparison (`export.runtime_table`)
    realsize: dict[str, Any] | None  # benchmarks/results/streaming_realsize.json, None before it was run
    demo: Demo
    classes: list[str]               # the classes seen in training, which the student is streamed against
    student: Any                     # the trained student (for the live widget)
    export_command: Md               # the runtime comparison from the command line
    tables: dict[str, pd.DataFrame | Styler] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)


# ------------------------------------------------------------------------------------------- pure rules
def check_params(params: Params) -> None:
    """Refuse what the chapter cannot run, before anything is measured."""
    if params.dataset != "synthactions":
        raise ValueError(f"dataset={params.dataset!r}: this chapter trains its demonstration student on SynthActions "
                         "with the in-project CLIPs; the live widget at the end takes any video or webcam")
    if params.stream_window not in params.sweep_frames:
        raise ValueError(f"stream_window={params.stream_window} must be one of sweep_frames={params.sweep_frames}: "
                         "the naive re-encoding cost of a window is read from the dense-sampling sweep")
    if 1 not in params.sweep_batches:
        raise ValueError(f"sweep_batches={params.sweep_batches} must hold 1: the naive re-encoding cost of a window "
                         "is the sweep's batch-1 latency")


def scaling_sentences(sweep: pd.DataFrame, frames: Sequence[int], batches: Sequence[int]) -> Md:
    """How the latency grows with the frames (batch min(batches)) and how the throughput changes with the batch
    (at min(frames)), per role, from a sweep with columns size (student/teacher), frames, batch, latency_ms and
    throughput_clips_s. Empty where only one frame count and one batch were timed."""
    one = sweep[sweep["batch"] == min(batches)].set_index(["size", "frames"])
    t_min, t_max = min(frames), max(frames)
    sentences = []
    if len(frames) > 1:
        growth = [f"the {role}'s latency grows "
                  f"{one.loc[(role, t_max), 'latency_ms'] / one.loc[(role, t_min), 'latency_ms']:.1f} times"
                  for role in ("student", "teacher")]
        sentences.append(f"From {t_min} to {t_max} frames ({t_max / t_min:.0f} times as many), "
                         + " and ".join(growth) + ".")
    if len(batches) > 1:
        b_min, b_max = min(batches), max(batches)
        per_batch = sweep[sweep["frames"] == t_min].set_index(["size", "batch"])["throughput_clips_s"]
        gains = [f"{per_batch[(role, b_max)] / per_batch[(role, b_min)]:.2f} times for the {role}"
                 for role in ("student", "teacher")]
        sentences.append(f"Calling with {b_max} clips instead of {b_min} changes the throughput at {t_min} frames by "
                         f"{' and '.join(gains)}: batching pays only where the hardware has idle arithmetic units to "
                         "fill, and a CPU running each model on a few threads has few.")
    return Md(" ".join(sentences))


def pick_recording_clips(clips: Sequence[Mapping[str, Any]], count: int) -> list[Mapping[str, Any]]:
    """The first `count` test clips of distinct classes, in manifest order."""
    picked, seen = [], set()
    for clip in clips:
        if clip["split"] == "test" and clip["label"] not in seen:
            picked.append(clip)
            seen.add(clip["label"])
        if len(picked) == count:
            break
    return picked


def median_run(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The run with the median FPS (the faster middle one of an even count)."""
    return sorted(runs, key=lambda stats: stats["fps"])[len(runs) // 2]


def round_ratio(runs: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]]) -> float:
    """FPS of `runs` over `reference`'s, the median of per-round ratios (the two took turns round by round)."""
    if len(runs) != len(reference) or not runs:
        raise ValueError(f"expected as many rounds of both, got {len(runs)} and {len(reference)}")
    return float(np.median([run["fps"] / ref["fps"] for run, ref in zip(runs, reference, strict=True)]))


def streaming_row(role: str, backbone: str, stats: Mapping[str, Any], naive_ms: float) -> dict[str, Any]:
    """One row of the streaming table: end-to-end figures of a stream, and the saving against re-encoding the
    whole window at every frame (`naive_ms`, the sweep's model-only latency of one window)."""
    engine = stats["encode_ms"] + stats["fuse_ms"]
    return {"model": role, "backbone": backbone, "FPS (end to end)": stats["fps"],
            "frame latency p50 (ms)": stats["latency_p50_ms"], "frame latency p90 (ms)": stats["latency_p90_ms"],
            "decode (ms)": stats["source_ms"], "encode 1 frame (ms)": stats["encode_ms"],
            "fuse + score (ms)": stats["fuse_ms"], "naive: re-encode window (ms)": naive_ms,
            "streaming saving": naive_ms / engine}


def realtime_verdict(fps_teacher: float, fps_student: float, camera: float = CAMERA_FPS) -> Md:
    """Which of the two keeps up with the camera."""
    if min(fps_teacher, fps_student) >= camera:
        return Md(f"both keep up with a {camera:g} frames/s camera")
    if fps_student >= camera:
        return Md(f"only the student keeps up with a {camera:g} frames/s camera")
    return Md(f"neither keeps up with a {camera:g} frames/s camera on this machine and thread count")


def runtime_ratios(runs: pd.DataFrame, batches: Sequence[int]) -> Md:
    """'onnx: 2.05x at batch 1, 1.76x at batch 4' for every runtime but eager, from `runtime_table`'s rows."""
    by_runtime = runs.set_index(["runtime", "batch"])
    sentences = []
    for name in runs["runtime"].unique():
        if name == "eager":
            continue
        ratios = ", ".join(f"{by_runtime.loc[(name, b), 'speedup_vs_first']:.2f}x at batch {b}" for b in batches)
        sentences.append(f"{name}: {ratios}")
    return Md("; ".join(sentences) if sentences else "no runtime besides eager was timed")


def compile_note(compiled: Mapping[str, Any] | None) -> Md:
    """What became of torch.compile (`runtime_table`'s attrs["compile"])."""
    if compiled is None:
        return Md("torch.compile was not part of this run (the smoke profile skips its first compilation)")
    if compiled["fallback_reason"]:
        return Md(f"torch.compile could not compile here and fell back to eager: {compiled['fallback_reason']}")
    return Md(f"compiling took {sum(compiled['compile_s'].values()):.0f} s the first time (inductor caches the "
              "result on disk for later runs)")


def worst_difference(agreement: Mapping[str, Mapping[str, Any]]) -> float:
    """The largest difference of the normalised video embeddings over the checked runtimes (NaN: none checked)."""
    return max(check["video"]["max_abs_diff"] for check in agreement.values()) if agreement else math.nan


def export_command(model: str, backbone: str, frames: int, options: Mapping[str, Any], checkpoint: str,
                   out: str) -> Md:
    """The `export` command that writes, checks and times the same runtimes for this student."""
    flags = "".join(f" --model-option {key}={value}" for key, value in options.items())
    return Md(f"The same comparison from the command line, for this student:\n\n```bash\npython -m actiondistill "
              f"export --model {model} --backbone {backbone} --frames {frames}{flags} \\\n"
              f"    --checkpoint {checkpoint} --out {out}\n```")


def window_hits(frames: Sequence[int], labels: Sequence[str], clip_starts: Sequence[int], truths: Sequence[str],
                window_span: int) -> tuple[int, int]:
    """Of the windows ending at `frames` (top-1 `labels`), those lying within one clip of the recording (clips
    starting at `clip_starts`, their classes `truths`), and how many of those name the clip's class."""
    starts = np.asarray(clip_starts)
    inside = hits = 0
    for frame, label in zip(frames, labels, strict=True):
        clip = int(np.searchsorted(starts, frame, side="right")) - 1
        if frame - window_span >= starts[clip]:
            inside += 1
            hits += label == truths[clip]
    return inside, hits


def shown_classes(over_time: pd.DataFrame, truths: Sequence[str]) -> set[str]:
    """The classes drawn over time: every window's top-1, and the recording's true classes."""
    top = over_time.loc[over_time.groupby("time (s)")["probability"].idxmax(), "class"]
    return set(top) | set(truths)


# ------------------------------------------------------------------------------------------- the chapter
def dense_sweep(params: Params) -> pd.DataFrame:
    """The teacher-size and the student-size model timed side by side (`encode_video`), per frames and batch."""
    from actiondistill.profiler import profile_backbones

    p = params
    sweep = profile_backbones(p.model, [p.teacher_backbone, p.student_backbone], frames=p.sweep_frames,
                              batches=p.sweep_batches, model_cfg=model_kwargs(p.model, p.fusion_layers), warmup=1,
                              iters=p.sweep_iters, rounds=p.sweep_rounds, progress=False)
    sweep["size"] = sweep["backbone"].map({p.teacher_backbone: "teacher", p.student_backbone: "student"})
    sweep["ms_per_clip"] = sweep["latency_ms"] / sweep["batch"]
    return sweep


def sweep_facts(sweep: pd.DataFrame, params: Params) -> dict[str, Any]:
    student_rows = sweep[sweep["size"] == "student"]
    teacher_rows = sweep[sweep["size"] == "teacher"]
    one = sweep[sweep["batch"] == min(params.sweep_batches)].set_index(["size", "frames"])
    t_max = max(params.sweep_frames)
    return {
        "ch8_speedup_min": float(student_rows["speedup_vs_first"].min()),
        "ch8_speedup_max": float(student_rows["speedup_vs_first"].max()),
        "ch8_tmax": t_max,
        "ch8_teacher_tmax_ms": float(one.loc[("teacher", t_max), "latency_ms"]),
        "ch8_student_tmax_ms": float(one.loc[("student", t_max), "latency_ms"]),
        "ch8_gflops_ratio": float(one.loc[("teacher", t_max), "gflops"] / one.loc[("student", t_max), "gflops"]),
        "ch8_params_teacher": float(teacher_rows["params_total_m"].iloc[0]),
        "ch8_params_student": float(student_rows["params_total_m"].iloc[0]),
        "ch8_image_teacher": float(teacher_rows["params_backbone_m"].iloc[0]),
        "ch8_image_student": float(student_rows["params_backbone_m"].iloc[0]),
        "ch8_scaling": scaling_sentences(sweep, params.sweep_frames, params.sweep_batches),
    }


def make_recording(manifest_path: Path, count: int, folder: Path) -> Recording:
    """`count` test clips of distinct classes decoded, joined and written as one H.264 file under `folder`."""
    from actiondistill.data import synthetic
    from actiondistill.data.encode import write_video
    from actiondistill.data.video import open_video

    manifest = synthetic.load_manifest(manifest_path)
    picked = pick_recording_clips(manifest["clips"], count)
    decoded = []
    for clip in picked:
        with open_video(Path(manifest_path).parent / clip["path"]) as reader:
            decoded.append(reader.read(range(reader.num_frames)))
    frames = np.concatenate(decoded)
    path = write_video(folder / "recording.mp4", frames, fps=manifest["fps"])
    return Recording(Path(path), frames, np.cumsum([0] + [len(d) for d in decoded]),
                     [clip["label_text"] for clip in picked], manifest["fps"])


def stream_rounds(recognizers: Mapping[str, Any], video: Path, warmup_frames: int,
                  rounds: int) -> dict[str, list[dict[str, Any]]]:
    """End-to-end streaming of `video` at stride 1 by each recognizer, the recognizers taking turns round by round
    after an untimed warm-up pass each: every round's statistics, per recognizer."""
    from actiondistill.realtime import video_source

    for recognizer in recognizers.values():
        recognizer.run(video_source(video), max_frames=warmup_frames, progress=False)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in recognizers}
    for _ in range(rounds):
        for name, recognizer in recognizers.items():
            recognizer.reset()
            runs[name].append(recognizer.run(video_source(video), progress=False).stats)
    return runs


def streaming_table(params: Params, sweep: pd.DataFrame, recording: Recording,
                    classes: Sequence[str]) -> tuple[pd.DataFrame, float]:
    """The teacher-size and student-size model streamed over the recording (random weights): one row each, and the
    student's FPS over the teacher's (median of per-round ratios)."""
    import torch

    from actiondistill.models import create_model
    from actiondistill.realtime import StreamingRecognizer

    p = params
    roles = {"teacher": p.teacher_backbone, "student": p.student_backbone}
    recognizers = {}
    for role, backbone in roles.items():
        torch.manual_seed(0)
        built = create_model(p.model, backbone=backbone, num_frames=p.stream_window,
                             **model_kwargs(p.model, p.fusion_layers))
        recognizers[role] = StreamingRecognizer(built, classes, num_frames=p.stream_window, stride=1)
    runs = stream_rounds(recognizers, recording.path, WARMUP_WINDOWS * p.stream_window, p.stream_repeats)
    rows = []
    for role, backbone in roles.items():
        naive = float(sweep[(sweep["backbone"] == backbone) & (sweep["frames"] == p.stream_window)
                            & (sweep["batch"] == 1)]["latency_ms"].iloc[0])
        rows.append(streaming_row(role, backbone, median_run(runs[role]), naive))
    return pd.DataFrame(rows).set_index("model"), round_ratio(runs["student"], runs["teacher"])


def train_student(params: Params, world: kit.World, features: Any) -> dict[str, Any]:
    """The demonstration student: frozen image encoder on cached embeddings, ActionCLIP objective, one seed."""
    from actiondistill import teacher_choice as tc
    from actiondistill.config import from_dict
    from actiondistill.engine.runs import train_and_evaluate

    p = params
    recipe = {
        "epochs": p.epochs,
        "device": p.device,  # training only: the streams and the sweep measure this CPU, the chapter's subject
        "data": {"dataset": p.dataset, "manifest": str(world.manifest), "num_frames": p.num_frames,
                 "sampler": "tsn", "size": p.size, "batch_size": p.batch_size, "flip": False, "train_split": "train",
                 "test_split": "test", "eval_split": None},
        "model": {"backbone": p.student_backbone, "pretrained": world.checkpoint(p.student_backbone)},
        "optim": {"lr": p.lr, "fusion_lr_mult": p.fusion_lr_mult, "weight_decay": p.weight_decay,
                  "warmup_epochs": p.warmup_epochs, "clip_grad": 1.0},
        "objective": {"name": "actionclip", "kwargs": {"texts": "classes"}},
    }
    cfg = tc.candidate_config(from_dict(recipe), p.model, p.seed, f"ch8-{p.profile}", p.fusion_layers)
    return train_and_evaluate(cfg, features=features, freeze_image_encoder=True,
                              freeze_token_embedding=p.freeze_token_embedding, progress=False)


def stream_student(params: Params, student: Any, classes: Sequence[str], recording: Recording) -> Demo:
    """The trained student over the recording, one frame in `step` (the rate its training clips were sampled at)."""
    from actiondistill.realtime import StreamingRecognizer, video_source

    p = params
    step = max(1, p.frames // p.num_frames)
    recognizer = StreamingRecognizer(student, classes, num_frames=p.num_frames, stride=p.demo_stride,
                                     smoothing=p.smoothing)
    with video_source(recording.path) as source:
        streamed = recognizer.run((frame for frame in source if frame.index % step == 0), progress=False)
    predictions = streamed.predictions
    windows, hits = window_hits([q.frame for q in predictions], [q.label for q in predictions],
                                recording.clip_starts, recording.labels, (p.num_frames - 1) * step)
    over_time = pd.DataFrame([{"time (s)": q.time_s, "class": label, "probability": float(prob)}
                              for q in predictions for label, prob in zip(q.labels, q.probs, strict=True)])
    return Demo(predictions, over_time, step, windows, hits)


def _styled(table: pd.DataFrame, **fmt: Any) -> Styler:
    return table.style.format(**fmt).hide(axis="index")


def run(params: Params) -> Result:
    from actiondistill.data import synthetic
    from actiondistill.export import runtime_table
    from actiondistill.models import create_model, load_weights
    from actiondistill.parallel import torch_threads
    from actiondistill.paths import data_dir, display_path
    from actiondistill.profiler import environment
    from actiondistill.realtime.realsize import machine_label, read_realsize, realsize_summary, realsize_table

    check_params(params)
    p = params
    started = time.perf_counter()
    facts = Facts()
    label = LABELS.get(p.model, p.model)
    workdir = Path(tempfile.mkdtemp(prefix="ch8-"))  # the recording is written for this chapter only
    try:
        with torch_threads(p.threads):
            env = environment()
            machine = Md(kit.machine_label(env))
            facts.add(ch8_machine=machine, ch8_threads=p.threads,
                      ch8_load=float(env["load_average"][0]) if env["load_average"] else float("nan"),
                      ch8_model=Md(label))
            sweep = dense_sweep(p)
            facts.add(**sweep_facts(sweep, p))

            manifest_path = kit.prepare_world(p, clips=False).manifest
            manifest = synthetic.load_manifest(manifest_path)
            classes = manifest["classes"][:manifest["num_seen_classes"]]
            recording = make_recording(manifest_path, p.recording_clips, workdir)
            facts.add(ch8_recording_clips=len(recording.labels), ch8_recording_frames=len(recording.frames),
                      ch8_fps=recording.fps, ch8_window=p.stream_window)
            streaming, fps_ratio = streaming_table(p, sweep, recording, classes)
            for role, r in streaming.iterrows():
                facts.add(**{f"ch8_fps_{role}": float(r["FPS (end to end)"]),
                             f"ch8_saving_{role}": float(r["streaming saving"]),
                             f"ch8_naive_{role}": float(r["naive: re-encode window (ms)"]),
                             f"ch8_engine_{role}": float(r["encode 1 frame (ms)"] + r["fuse + score (ms)"]),
                             f"ch8_p90_{role}": float(r["frame latency p90 (ms)"])})
            fps = streaming["FPS (end to end)"]
            facts.add(ch8_fps_ratio=fps_ratio, ch8_realtime_verdict=realtime_verdict(fps["teacher"], fps["student"]))

        with torch_threads(p.train_threads):
            world = kit.prepare_world(p, p.pretrain)
            facts.add(ch8_clip_reused=Md("reused from the cache" if world.clips["reused"] else "trained by this run"))
            features, computed = kit.frame_features(world, p.student_backbone, world.checkpoint(p.student_backbone),
                                                    p.size, dtype=p.feature_dtype)
            facts.add(ch8_feature_reused=Md(f"computed by this run in {features.meta['compute_s']:.0f} s" if computed
                                            else "reused from the cache"))
            row = train_student(p, world, features)

        with torch_threads(p.threads):
            options = model_kwargs(p.model, p.fusion_layers)
            student = create_model(p.model, backbone=p.student_backbone, num_frames=p.num_frames, **options)
            load_weights(student, row["weights"])
            facts.add(**{f"ch8_student_{key}": float(row[key]) for key in ("top1", "zs_top1", "train_s")})
            facts.add(ch8_student_chance=100 / row["classes"],
                      ch8_student_zs_chance=100 / row["zs_classes"] if row["zs_classes"] else float("nan"),
                      ch8_epochs=p.epochs, ch8_num_frames=p.num_frames)

            export_dir = data_dir() / "exports" / f"ch8-{p.profile}-{p.model}-{p.student_backbone}"
            runs = runtime_table(student, p.runtimes, out_dir=export_dir if "onnx" in p.runtimes else None,
                                 batches=p.runtime_batches, warmup=2, iters=p.runtime_iters, rounds=p.runtime_rounds,
                                 progress=False)
            facts.add(ch8_runtime_ratios=runtime_ratios(runs, p.runtime_batches),
                      ch8_compile_note=compile_note(runs.attrs["compile"]),
                      ch8_worst_diff=worst_difference(runs.attrs["agreement"]))

            realsize = read_realsize()
            facts.add(ch8_realsize_machine=Md(machine_label(realsize)),
                      ch8_realsize_summary=Md(realsize_summary(realsize)))

            demo = stream_student(p, student, classes, recording)
            facts.add(ch8_step=demo.step, ch8_classes=len(classes), ch8_demo_windows=demo.windows,
                      ch8_demo_hits=demo.hits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = Result(p, label, machine, sweep, streaming, recording, row, runs, realsize, demo, classes, student,
                    export_command(p.model, p.student_backbone, p.num_frames, options, display_path(row["weights"]),
                                   display_path(export_dir)), facts=facts)
    result.tables.update(
        sweep=_sweep_table(sweep),
        streaming=streaming.style.format(precision=1),
        trained=_styled(pd.DataFrame({
            "closed-set top-1 (%)": [row["top1"]], "zero-shot top-1 (%)": [row["zs_top1"]],
            "classes (seen / held out)": [f"{row['classes']} / {row['zs_classes']}"], "epochs": [p.epochs],
            "frames per clip": [p.num_frames], "training (s)": [row["train_s"]]}), precision=1),
        agreement=_agreement_table(runs.attrs["agreement"]),
        runtimes=_styled(runs[["runtime", "batch", "latency_ms", "p90_ms", "throughput_clips_s", "speedup_vs_first"]]
                         .rename(columns={"latency_ms": "latency (ms)", "p90_ms": "p90 (ms)",
                                          "throughput_clips_s": "clips/s", "speedup_vs_first": "speed-up vs eager"}),
                         precision=2),
        realsize=_styled(realsize_table(realsize), precision=2, na_rep="-"),
    )
    facts.add(ch8_chapter_s=time.perf_counter() - started)
    return result


def _sweep_table(sweep: pd.DataFrame) -> Styler:
    return _styled(sweep[["size", "backbone", "frames", "batch", "latency_ms", "p90_ms", "throughput_clips_s",
                          "gflops", "speedup_vs_first"]]
                   .rename(columns={"latency_ms": "latency (ms)", "p90_ms": "p90 (ms)", "throughput_clips_s": "clips/s",
                                    "gflops": "GFLOPs", "speedup_vs_first": "student speed-up"}), precision=2)


def _agreement_table(agreement: Mapping[str, Mapping[str, Any]]) -> Styler:
    table = pd.DataFrame([{"runtime": name, "encoder": side, "max |diff|": check[side]["max_abs_diff"],
                           "min cosine": check[side]["min_cosine"], "top-1 agreement": check[side]["top1_agreement"]}
                          for name, check in agreement.items() for side in ("video", "text")])
    return table.style.format({"max |diff|": "{:.1e}", "min cosine": "{:.7f}", "top-1 agreement": "{:.0%}"},
                              na_rep="-").hide(axis="index")


# ------------------------------------------------------------------------------------------- figures
@kit.book_figure
def sweep_figure(result: Result) -> Figure:
    """Latency against frames (the smallest batch) and throughput against batch, teacher and student."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    p, sweep = result.params, result.sweep
    with kit.figure_style():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        first_batch = sweep[sweep["batch"] == min(p.sweep_batches)]
        sns.lineplot(data=first_batch, x="frames", y="latency_ms", hue="size", style="size", markers=True,
                     dashes=False, ax=axes[0])
        axes[0].axhline(1000 / CAMERA_FPS, ls=":", color="0.5", label=f"{1000 / CAMERA_FPS:.0f} ms "
                        f"({CAMERA_FPS} frames/s)")
        axes[0].set(xticks=p.sweep_frames, xlabel="frames per clip", title="latency against frames",
                    ylabel=f"latency, batch {min(p.sweep_batches)} (ms)")
        axes[0].legend(frameon=False)
        sns.lineplot(data=sweep, x="batch", y="throughput_clips_s", hue="size", style="frames", markers=True,
                     ax=axes[1])
        axes[1].set(xticks=p.sweep_batches, xlabel="clips per call (batch)", ylabel="throughput (clips/s)",
                    title="throughput against batch")
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
        fig.suptitle(f"{result.label}: teacher ({p.teacher_backbone}) and student ({p.student_backbone}), "
                     "random weights")
        fig.tight_layout()
    return fig


@kit.book_figure
def runtime_figure(result: Result) -> Figure:
    """Throughput of the student's video encoder per runtime and batch."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with kit.figure_style():
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        sns.barplot(data=result.runs, x="batch", y="throughput_clips_s", hue="runtime", ax=ax)
        ax.set(xlabel="clips per call (batch)", ylabel="throughput (clips/s)",
               title=f"student video encoder ({result.params.num_frames} frames) by runtime")
        ax.legend(frameon=False)
        fig.tight_layout()
    return fig


@kit.book_figure
def realsize_figure(result: Result) -> Figure:
    """The real-size benchmark's FPS per runtime and thread setting (`realsize.plot_realsize_fps`)."""

    from actiondistill.realtime.realsize import plot_realsize_fps

    with kit.figure_style():
        return plot_realsize_fps(result.realsize)


@kit.book_figure
def over_time_figure(result: Result) -> Figure:
    """The student's probabilities over the recording, a dashed line at each clip's start with its true class."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    demo, recording = result.demo, result.recording
    over_time = demo.over_time
    with kit.figure_style():
        fig, ax = plt.subplots(figsize=(11, 4))
        sns.lineplot(data=over_time[over_time["class"].isin(shown_classes(over_time, recording.labels))],
                     x="time (s)", y="probability", hue="class", ax=ax)
        for k, (start, truth) in enumerate(zip(recording.clip_starts[:-1], recording.labels, strict=True)):
            ax.axvline(start / recording.fps, color="0.4", lw=1, ls="--")
            ax.text(start / recording.fps + 0.02, 0.97 - 0.07 * (k % 2), f"true: {truth}", fontsize=8, va="top")
        ax.set(ylim=(0, 1), title=f"student probabilities over time ({result.params.num_frames}-frame windows, one "
               f"frame in {demo.step})")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
        fig.tight_layout()
    return fig


@kit.book_figure
def stream_strip_figure(result: Result) -> Figure:
    """The newest frame of some emitted windows, titled with the time and the top-1 label (green: right)."""
    from actiondistill.viz import frame_strips

    recording, predictions = result.recording, result.demo.predictions
    emitted = predictions[:: max(1, len(predictions) // STRIP_WINDOWS)][:STRIP_WINDOWS]
    fig = frame_strips([("stream", np.stack([recording.frames[q.frame] for q in emitted]))], frame_inches=1.3)
    starts = np.asarray(recording.clip_starts)
    for ax, q in zip(fig.axes, emitted, strict=False):
        truth = recording.labels[int(np.searchsorted(starts, q.frame, side="right")) - 1]
        ax.set_title(f"{q.time_s:.2f} s\n{q.label}", fontsize=7, color="green" if q.label == truth else "red")
    return fig


def live_widget(result: Result) -> Any:
    """The webcam/video widget on the trained student (a live kernel), on the chapter's `threads`."""
    import torch

    from actiondistill.widgets import LiveZeroShot

    torch.set_num_threads(result.params.threads)
    return LiveZeroShot({"student": result.student}, result.classes, source=result.params.live_source,
                        num_frames=result.params.num_frames, stride=2, smoothing=0.5)
