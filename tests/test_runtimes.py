"""Per-frame image-encoder runtimes for streaming: the choice, the cache of exported and quantized encoders, the
agreement check that refuses a drifting runtime, the commands' --runtime flags and the real-size benchmark's quick
mode. Everything runs the tiny embedded CLIP at 64 px."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from actiondistill import export as ex
from actiondistill.cli import main
from actiondistill.cli import profile as profile_cli
from actiondistill.cli import zeroshot as zeroshot_cli
from actiondistill.data.encode import write_video
from actiondistill.data.synthetic import generate, render_clip, sample_spec
from actiondistill.models import create_backbone, create_model, save_weights
from actiondistill.realtime import StreamingRecognizer, video_source

LABELS = ["juggling", "riding a bike", "waving", "bouncing to the left"]
LABEL_TEXT = ", ".join(LABELS)


def zeroshot_argv(clip_file, runtime: str, *flags: str) -> list[str]:
    """`zeroshot` on the test clip with a runtime, 4-frame windows, one thread and no bars, plus `flags`."""
    return ["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT, "--runtime", runtime, "--frames", "4",
            *flags, "--threads", "1", "--no-progress"]
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_streaming_realsize.py"

pytestmark = pytest.mark.usefixtures("one_thread")


def build(seed: int = 0, name: str = "actionclip-meanp", **cfg):
    torch.manual_seed(seed)
    return create_model(name, backbone="embedded-tiny", num_frames=4, **cfg)


def micro(name: str = "actionclip-meanp", **cfg):
    """A one-block CLIP: torch.compile's cost grows with the graph, and this checks the path, not speed."""
    torch.manual_seed(0)
    backbone = create_backbone(
        "embedded-tiny",
        embed_dim=32,
        vision_cfg={"layers": 1, "width": 64, "head_width": 32},
        text_cfg={"layers": 1, "width": 64, "heads": 1},
    )
    return create_model(name, backbone=backbone, num_frames=2, **cfg)


@pytest.fixture(scope="module")
def model():
    return build()


@pytest.fixture(scope="module")
def probe(model):
    return ex.probe_stream((64, 64), 4, clips=2)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    write_video(path, render_clip(sample_spec(3), size=64, frames=10), fps=10)
    return path


def eager_embeddings(model, frames):
    with torch.no_grad():
        return model.backbone.encode_image(frames)


# ----------------------------------------------------------------- the runtime choice
@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8", "bf16"])
def test_each_runtime_encodes_like_eager_and_says_what_ran(runtime, model, probe, tmp_path):
    built = ex.frame_runtime(model, runtime, labels=LABELS, cache_dir=tmp_path)
    assert built.runtime == built.requested == runtime and built.image_size == (64, 64)
    check = built.agreement
    assert check["ok"] and check["runtime"] == runtime and check["frames"] == 16 and check["windows"] == 13
    assert check["frame_min_cosine"] > 0.99 and check["top1_agreement"] >= 0.9
    got, expected = built(probe[:3]), eager_embeddings(model, probe[:3])
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(got, expected).min() > 0.99
    assert (built.cache is not None) == runtime.startswith("onnx")
    json.dumps(built.summary(), allow_nan=False)  # what the commands record


def test_eager_is_the_model_itself_and_unknown_runtimes_are_named(model, probe):
    built = ex.frame_runtime(model)
    assert built.runtime == "eager" and built.agreement is None and built.cache is None
    assert torch.equal(built(probe[:2]), eager_embeddings(model, probe[:2]))
    with pytest.raises(ValueError, match="runtime 'tensorrt': expected one of eager, compile, onnx, onnx-int8, bf16, "
                                         "bf16-compile"):
        ex.frame_runtime(model, "tensorrt")


def no_compiler(fn, **options):
    """torch.compile on a machine without a C++ compiler: it fails at the first call."""
    def fails(*args):
        raise RuntimeError("no C++ compiler on this machine")

    return fails


def test_compile_runs_inductor_or_falls_back_loudly(monkeypatch, caplog):
    tiny = micro()
    built = ex.frame_runtime(tiny, "compile")
    if built.runtime == "compile":
        assert built.agreement["ok"] and built.agreement["frame_max_abs_diff"] < 1e-4

    monkeypatch.setattr(torch, "compile", no_compiler)
    with caplog.at_level(logging.WARNING, logger="actiondistill.export"):
        fallen = ex.frame_runtime(tiny, "compile")
    assert fallen.runtime == "eager" and fallen.requested == "compile" and fallen.agreement is None
    assert "no C++ compiler" in fallen.fallback_reason
    assert any("running eager PyTorch instead" in r.getMessage() for r in caplog.records)


def test_bf16_compile_freezes_the_weights_or_falls_back_to_bf16(monkeypatch):
    from torch._inductor import config as inductor_config

    tiny = micro()
    seen = []
    monkeypatch.setattr(ex, "_bf16_encoder", lambda m: lambda frames: seen.append(inductor_config.freezing)
                        or m.backbone.encode_image(frames.float()))
    built = ex.frame_runtime(tiny, "bf16-compile", labels=LABELS)
    assert built.requested == "bf16-compile"
    if built.runtime == "bf16-compile":
        assert built.agreement["ok"] and seen and all(seen)  # traced under inductor's freezing
        assert not inductor_config.freezing  # the setting is the call's, not left behind

    monkeypatch.setattr(torch, "compile", no_compiler)
    fallen = ex.frame_runtime(tiny, "bf16-compile", labels=LABELS)
    assert fallen.runtime == "bf16" and fallen.requested == "bf16-compile"
    assert "no C++ compiler" in fallen.fallback_reason



@pytest.mark.parametrize(("runtime", "freezing"), [("compile", False), ("bf16-compile", True)])
def test_compiled_encoders_keep_compiling_past_dynamos_default_limit(runtime, freezing, monkeypatch):
    """Every model and thread count a session builds shares the encoder's code object; past dynamo's default of 8
    compiled variants it would run eager without a word (the book's runtime table did)."""
    from torch._dynamo import config as dynamo_config
    from torch._inductor import config as inductor_config

    seen, default = [], dynamo_config.recompile_limit

    def recording_compiler(fn, **options):
        def call(frames):
            seen.append((dynamo_config.recompile_limit, inductor_config.freezing))
            return fn(frames)

        return call

    monkeypatch.setattr(torch, "compile", recording_compiler)
    built = ex.frame_runtime(micro(), runtime, labels=LABELS)
    assert built.runtime == runtime and seen
    assert set(seen) == {(ex.RECOMPILE_LIMIT, freezing)}
    assert dynamo_config.recompile_limit == default and not inductor_config.freezing  # the call's settings only


def test_compiled_kernels_are_cached_under_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert ex.inductor_cache_dir() == tmp_path / "cache" / "inductor"
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing inductor writes there
    assert ex.inductor_cache_dir() == tmp_path / "cache" / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert ex.inductor_cache_dir() == tmp_path / "mine"  # a folder of the user's choice wins

def test_bf16_runtimes_bring_a_bf16_head_that_the_check_and_the_stream_use(clip_file):
    transf = build(name="actionclip-transf", fusion_layers=1)
    built = ex.frame_runtime(transf, "bf16", labels=LABELS)
    assert built.head == built.summary()["head"] == "bf16" and built.agreement["ok"]
    window = torch.randn(3, 4, transf.embed_dim)
    with torch.no_grad():
        fused, exact = built.fuse(window), transf.fuse_frames(window)
    assert fused.dtype == torch.float32 and not torch.equal(fused, exact)  # really bf16 arithmetic ...
    assert torch.nn.functional.cosine_similarity(fused, exact).min() > 0.999  # ... close to fp32
    assert next(transf.fusion.parameters()).dtype == torch.float32  # a copy: the model keeps its weights

    calls, bf16_head = [], built.fuse

    def counted(embeddings):
        calls.append(embeddings.shape)
        return bf16_head(embeddings)

    built.fuse = counted
    result = StreamingRecognizer(transf, LABELS, runtime=built).run(video_source(clip_file), progress=False)
    assert len(calls) == len(result.predictions) == 7 and set(calls) == {(1, 4, transf.embed_dim)}

    meanp = ex.frame_runtime(build(), "bf16", labels=LABELS)  # no weights in mean pooling: nothing to gain
    assert meanp.fuse is None and meanp.head == "fp32"


def test_the_check_scores_windows_through_the_candidates_head(model, probe):
    """A head that breaks the predictions is refused even when every frame embedding is exact."""
    encode = model.backbone.encode_image
    negated = lambda video: -model.fuse_frames(video)  # noqa: E731  (every top-1 becomes the bottom-1)
    with pytest.raises(ex.AgreementError, match="window predictions: zero-shot top-1 agreement 0.000"):
        ex.check_frame_runtime(encode, encode, model, probe, 4, LABELS, runtime="bf16", candidate_fuse=negated)
    same = ex.check_frame_runtime(encode, encode, model, probe, 4, LABELS, candidate_fuse=model.fuse_frames)
    assert same["ok"] and same["top1_agreement"] == 1.0


def test_bf16_compile_compiles_the_head_too_or_keeps_it_uncompiled(monkeypatch):
    compiled = []

    def recording_compiler(fn, **options):
        compiled.append(fn)
        return fn

    tiny = micro("actionclip-transf", fusion_layers=1)
    monkeypatch.setattr(torch, "compile", recording_compiler)
    built = ex.frame_runtime(tiny, "bf16-compile", labels=LABELS)
    assert built.runtime == "bf16-compile" and built.head == "bf16-compile" and len(compiled) == 2
    monkeypatch.setattr(torch, "compile", no_compiler)
    fallen = ex.frame_runtime(tiny, "bf16-compile", labels=LABELS)
    assert fallen.runtime == "bf16" and fallen.head == "bf16" and fallen.fuse is not None


def test_the_recognizer_streams_on_a_runtime(model, clip_file, tmp_path):
    onnx = ex.frame_runtime(model, "onnx", labels=LABELS, cache_dir=tmp_path)
    fast = StreamingRecognizer(model, LABELS, runtime=onnx).run(video_source(clip_file), progress=False)
    eager = StreamingRecognizer(model, LABELS).run(video_source(clip_file), progress=False)
    assert fast.stats["runtime"] == "onnx" and eager.stats["runtime"] == "eager"
    for a, b in zip(fast.predictions, eager.predictions, strict=True):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
    stages = fast.stats["stages_ms"]
    assert set(stages) == {"decode", "resize", "encoder", "head"} and all(v > 0 for v in stages.values())


def test_onnx_sessions_follow_torchs_thread_count(model, probe, tmp_path):
    encoder = ex.frame_runtime(model, "onnx", cache_dir=tmp_path).encode
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            encoder(probe[:1])
    finally:
        torch.set_num_threads(before)
    assert sorted(encoder._sessions) == [1, 2]


# ----------------------------------------------------------------- the cache
def test_the_cache_key_follows_the_weights_and_every_option(model):
    weights = ex.weights_sha256(model.backbone.visual)
    assert weights == ex.weights_sha256(build().backbone.visual)  # same seed, same weights
    assert weights != ex.weights_sha256(build(seed=1).backbone.visual)
    base = ex.frame_cache_key(ex.frame_export_options("onnx", (64, 64), weights, 17))
    assert base.startswith("onnx-")
    variants = [
        ("onnx-int8", (64, 64), weights, 17),
        ("onnx", (32, 32), weights, 17),
        ("onnx", (64, 64), "0" * 64, 17),
        ("onnx", (64, 64), weights, 18),
    ]
    keys = {ex.frame_cache_key(ex.frame_export_options(*options)) for options in variants}
    assert len(keys) == len(variants) and base not in keys
    with pytest.raises(ValueError, match="only 'onnx' and 'onnx-int8'"):
        ex.frame_export_options("bf16", (64, 64), weights, 17)


def test_a_second_start_reuses_the_export_and_new_weights_never_do(model, tmp_path, monkeypatch):
    first = ex.cached_frame_onnx(model, "onnx-int8", cache_dir=tmp_path)
    assert not first["reused"] and Path(first["path"]).is_file()
    names = sorted(p.name for p in tmp_path.iterdir())  # the int8 file and the fp32 one it was quantized from
    assert len(names) == 2 and first["key"] in names and any(n.startswith("onnx-") and "int8" not in n for n in names)

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds this encoder")

    monkeypatch.setattr(ex, "_onnx_export", no_export)
    monkeypatch.setattr(ex, "_quantize", no_export)
    second = ex.cached_frame_onnx(model, "onnx-int8", cache_dir=tmp_path)
    assert second["reused"] and second["key"] == first["key"] and second["path"] == first["path"]
    with pytest.raises(AssertionError, match="exported again"):  # other weights: a new key, never the stale file
        ex.cached_frame_onnx(build(seed=1), "onnx-int8", cache_dir=tmp_path)


def test_a_damaged_or_interrupted_export_is_never_used(model, tmp_path, monkeypatch):
    first = ex.cached_frame_onnx(model, "onnx", cache_dir=tmp_path)
    Path(first["path"]).write_bytes(b"truncated")
    again = ex.cached_frame_onnx(model, "onnx", cache_dir=tmp_path)
    assert not again["reused"] and ex.OnnxFrameEncoder(again["path"])(torch.zeros(1, 3, 64, 64)).shape[0] == 1

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "_onnx_export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ex.cached_frame_onnx(build(seed=2), "onnx", cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [first["key"]]  # nothing half-written published or left over


def test_the_default_cache_is_under_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    assert ex.frame_cache_dir() == tmp_path / "cache" / "runtimes"


# ----------------------------------------------------------------- the agreement check
def test_a_broken_candidate_is_refused_naming_runtime_value_and_threshold(model, probe):
    def broken(frames):
        noise = torch.randn(frames.shape[0], model.embed_dim, generator=torch.Generator().manual_seed(0))
        return model.backbone.encode_image(frames) + 3 * noise

    with pytest.raises(ex.AgreementError) as caught:
        ex.check_frame_runtime(
            model.backbone.encode_image,
            broken,
            model,
            probe,
            4,
            LABELS,
            tolerance=ex.FRAME_TOLERANCES["onnx-int8"],
            runtime="onnx-int8",
        )
    message = str(caught.value)
    assert "\n" not in message and message.startswith("runtime 'onnx-int8' refused: frame embeddings: lowest cosine")
    assert "< 0.99" in message and "against eager fp32 on 8 probe frames and 5 windows of 4" in message
    result = ex.check_frame_runtime(model.backbone.encode_image, broken, model, probe, 4, LABELS, raise_error=False)
    assert not result["ok"] and result["frame_min_cosine"] < 0.99 and result["failures"]


def test_a_runtime_that_drifts_is_refused_at_build_time(model, monkeypatch):
    monkeypatch.setattr(ex, "_bf16_encoder", lambda m: lambda frames: -m.backbone.encode_image(frames))
    with pytest.raises(
        ex.AgreementError,
        match=r"runtime 'bf16' refused: .*cosine similarity -1\.0\d* < 0\.99; .*top-1 agreement 0\.000 < 0\.9",
    ):
        ex.frame_runtime(model, "bf16", labels=LABELS)
    recorded = ex.frame_runtime(model, "bf16", labels=LABELS, raise_error=False)
    assert recorded.runtime == "bf16" and not recorded.agreement["ok"]
    with pytest.raises(ex.AgreementError):
        StreamingRecognizer(model, LABELS, runtime="bf16")


# ----------------------------------------------------------------- the commands
def test_the_commands_offer_the_library_runtimes():
    assert zeroshot_cli.RUNTIMES == profile_cli.RUNTIMES == ex.FRAME_RUNTIMES


def test_zeroshot_refuses_a_bad_runtime_in_one_line(clip_file, capsys):
    assert main(["zeroshot", "--video", str(clip_file), "--labels", LABEL_TEXT, "--runtime", "tensorrt"]) == 2
    assert (
        capsys.readouterr().err
        == "error: --runtime tensorrt: expected one of eager, compile, onnx, onnx-int8, bf16, bf16-compile\n"
    )


def test_zeroshot_refuses_a_drifting_runtime_in_one_line(clip_file, monkeypatch, capsys):
    monkeypatch.setattr(ex, "_bf16_encoder", lambda m: lambda frames: -m.backbone.encode_image(frames))
    code = main(zeroshot_argv(clip_file, "bf16", "--random-weights"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: runtime 'bf16' refused: frame embeddings: lowest cosine similarity -1")


def test_zeroshot_runtime_json_and_the_cache_on_a_second_start(clip_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path / "data"))
    weights = save_weights(build(seed=5), tmp_path / "weights.pt")
    argv = [*zeroshot_argv(clip_file, "onnx-int8", "--checkpoint", str(weights)), "--json"]
    runs = []
    for _ in range(2):
        assert main(argv) == 0
        runs.append(json.loads(capsys.readouterr().out))
    first, second = (run["runtime"] for run in runs)
    assert first["runtime"] == "onnx-int8" and first["agreement"]["ok"] and not first["cache"]["reused"]
    assert second["cache"]["reused"] and second["cache"]["key"] == first["cache"]["key"]
    assert Path(first["cache"]["directory"]).parent == tmp_path / "data" / "cache" / "runtimes"
    assert runs[0]["stats"]["runtime"] == "onnx-int8" and runs[0]["stats"]["stages_ms"]["encoder"] > 0


def test_zeroshot_prints_the_runtime_and_its_agreement(clip_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    assert main(zeroshot_argv(clip_file, "onnx", "--random-weights")) == 0
    captured = capsys.readouterr()
    assert re.search(
        r"runtime onnx \(agrees with eager fp32: frame cosine >= (0\.99|1\.00)\d*, top-1 100%", captured.err
    )
    assert "ONNX exported to" in captured.err
    assert "runtime onnx): " in captured.out and "encoder" in captured.out and "head" in captured.out


# ----------------------------------------------------------------- the real-size benchmark
@pytest.fixture
def book_student(tmp_path, monkeypatch):
    """A data folder where chapter 3 recorded a student trained on a tiny world of test clips."""
    world = tmp_path / "world"
    generate(world, videos=20, size=64, frames=8, workers=1, progress=False)
    run = tmp_path / "runs" / "student-seed0"
    run.mkdir(parents=True)
    save_weights(build(seed=4, name="actionclip-transf", fusion_layers=1), run / "model.pt")
    config = {
        "model": {"name": "actionclip-transf", "backbone": "embedded-tiny", "kwargs": {"fusion_layers": 1}},
        "data": {"dataset": "synthactions", "num_frames": 4, "manifest": str(world / "manifest.json")},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "results").mkdir()
    record = {"best": {"weights": {"0": str(run / "model.pt")}}}
    (tmp_path / "results" / "backbone_swap-embedded.json").write_text(json.dumps(record))
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    return tmp_path


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_streaming_realsize", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_quick_mode_writes_valid_json(book_student, tmp_path):
    """One runtime besides eager keeps the test short; every runtime's own path is tested above."""
    out = tmp_path / "realsize.json"
    load_benchmark().main(["--quick", "--runtimes", "onnx-int8", "--rounds", "1", "--out", str(out), "--no-progress"])
    result = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in strict JSON"))
    assert result["quick"] and result["weights"] == "random" and "speed only" in result["note"]
    machine = result["machine"]
    assert machine["platform"] and machine["cpu_count"] >= 1 and machine["torch"] == torch.__version__
    assert len(machine["load_average"]) == 3 and len(machine["load_average_after"]) == 3
    settings = {(row["runtime"], row["threads_setting"]) for row in result["rows"]}
    assert settings == {(r, s) for r in ("eager", "onnx-int8") for s in ("1 thread", "2 threads", "start-up test")}
    for row in result["rows"]:
        assert len(row["fps"]["rounds"]) == result["rounds"] == 1 and row["fps"]["best"] == max(row["fps"]["rounds"])
        assert set(row["stages_ms"]) == {"decode", "resize", "encoder", "head"}
        live = row["live"]
        assert 0 <= live["dropped"]["best"] <= live["frames"] and live["source_fps"] == 30
        if live["arrival_latency_p50_ms"]["best"] is not None:  # None when every round dropped below one window
            assert live["arrival_latency_p99_ms"]["best"] >= live["arrival_latency_p50_ms"]["best"] > 0
    assert {b["runtime"] for b in result["builds"]} == {"eager", "onnx-int8"}
    assert all(b["agreement"]["frame_min_cosine"] > 0.9 for b in result["builds"] if b["runtime"] != "eager")
    (target,) = result["targets"]
    assert target["backbone"] == "embedded-tiny" and target["target_fps"] == 60 and target["verdict"]
    book = result["book_agreement"]
    assert 1 <= book["clips"] <= 4 and book["model"] == "actionclip-transf"  # the tiny world has few test clips
    rows = {row["requested"]: row for row in book["rows"]}
    assert rows["eager"]["top1_agreement_with_eager"] == 1.0 and set(rows) == {"eager", "onnx-int8"}
    assert all(0 <= row["top1_agreement_with_eager"] <= 1 for row in rows.values())
    assert set(machine["openmp"]) == {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"}

    # what chapter 8 shows of it
    from actiondistill.realtime import realsize

    table = realsize.realsize_table(result)
    assert len(table) == len(result["rows"]) and set(table["runtime"]) == {"eager", "onnx-int8"}
    summary = realsize.realsize_summary(result)
    assert "**embedded-tiny** (target 60 FPS)" in summary and "met: met" not in summary
    spun = {**result, "machine": {**machine, "openmp": {"GOMP_SPINCOUNT": "30000", "OMP_WAIT_POLICY": None}}}
    assert "GOMP_SPINCOUNT 30000" in realsize.machine_label(spun)
    assert "GOMP_SPINCOUNT" not in realsize.machine_label({**result, "machine": {**machine, "openmp": {}}})


def test_the_benchmark_skips_the_book_row_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    assert "no book student" in load_benchmark().book_agreement(["eager"], 2, progress=False)["skipped"]


def test_the_runtime_line_names_the_head_and_what_a_fallback_ran():
    summary = {"runtime": "bf16", "head": "bf16", "fallback_reason": "image encoder: no C++ compiler",
               "agreement": None, "cache": None, "build_s": 1.0}
    assert zeroshot_cli.runtime_text(summary) == ("runtime bf16, head bf16 (torch.compile fell back: image encoder: "
                                                  "no C++ compiler)")
    assert zeroshot_cli.runtime_text({**summary, "runtime": "eager", "head": "fp32", "fallback_reason": None}) == \
        "runtime eager"
