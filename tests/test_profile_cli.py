"""The `profile` command on tiny backbones (model-only and end-to-end), its errors, and compressed-triplet's
registry entry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from actiondistill.cli import main
from actiondistill.data.encode import write_video
from actiondistill.io import read_json
from actiondistill.models import create_backbone, create_model, list_models, visual_parameter_count
from actiondistill.models.compressed_nets import CompressedTriplet
from actiondistill.profiler import sweep

TINY = ["--model", "actionclip-meanp", "--backbone", "embedded-tiny", "embedded-base", "--warmup", "0",
        "--iters", "2", "--no-progress"]
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")


def _profile(tmp_path, *argv: str) -> tuple[dict, dict]:
    """Run the command with --json OUT; return the result and the record it wrote."""
    out = tmp_path / "out.json"
    assert main(["profile", *argv, "--results-dir", str(tmp_path / "records"), "--json", str(out)]) == 0
    result = read_json(out)
    return result, read_json(result["record"])


def test_model_mode_rows_ratios_params_and_record(tmp_path, capsys):
    result, record = _profile(tmp_path, *TINY, "--frames", "2", "4", "--batch", "1")
    rows = result["rows"]
    assert [(r["backbone"], r["frames"], r["batch"]) for r in rows] == [
        ("embedded-tiny", 2, 1), ("embedded-base", 2, 1), ("embedded-tiny", 4, 1), ("embedded-base", 4, 1)]
    by_key = {(r["backbone"], r["frames"]): r for r in rows}
    for t in (2, 4):
        first, other = by_key[("embedded-tiny", t)], by_key[("embedded-base", t)]
        assert first["speedup_vs_first"] == 1.0
        assert other["speedup_vs_first"] == pytest.approx(first["p50_ms"] / other["p50_ms"])
    for r in rows:
        assert r["model"] == "actionclip-meanp" and r["mode"] == "model" and r["device"] == "cpu"
        assert r["image_size"] == "64x64" and r["dtype"] == "fp32"
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
    for name in ("embedded-tiny", "embedded-base"):
        backbone = create_backbone(name)
        image_m = visual_parameter_count(backbone) / 1e6
        total_m = sum(p.numel() for p in backbone.parameters()) / 1e6  # meanP adds no parameters
        assert by_key[(name, 2)]["params_backbone_m"] == pytest.approx(image_m)
        assert by_key[(name, 2)]["params_total_m"] == pytest.approx(total_m)
        # meanP: per-frame image encoder only, so FLOPs double with the frames
        assert by_key[(name, 4)]["gflops"] == pytest.approx(2 * by_key[(name, 2)]["gflops"], rel=1e-3)
    assert by_key[("embedded-base", 2)]["gflops"] > by_key[("embedded-tiny", 2)]["gflops"]
    assert result["environment"]["device_name"] and len(result["environment"]["load_average"]) == 3
    assert "text encoder not timed" in result["note"]

    assert record["kind"] == "profile" and record["metrics"]["rows"] == rows
    assert record["config"]["backbones"] == ["embedded-tiny", "embedded-base"]
    assert record["environment"]["device_name"] == result["environment"]["device_name"]
    assert "git_commit" in record["environment"]
    text = capsys.readouterr().out
    assert "embedded-base" in text and "1.00x" in text and "text encoder not timed" in text


class _Logged(nn.Module):
    """Records each encode_video call under its name, so the order of the timed calls can be checked."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__()
        self.name, self.log, self.image_size = name, log, 4
        self.proj = nn.Linear(3 * 4 * 4, 2)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name)
        return self.proj(frames.flatten(2)).mean(1)


def test_rounds_interleave_the_models_and_pool_their_calls():
    log: list[str] = []
    table = sweep({"a": _Logged("a", log), "b": _Logged("b", log)}, frames=(2,), batches=(1,), warmup=1, iters=2,
                  rounds=3, method="encode_video", progress=False)
    # turn 1: warm-up + 2 timed + 1 FLOP count per model; turns 2-3: 2 timed calls each, taking turns
    assert log == ["a"] * 4 + ["b"] * 4 + ["a", "a", "b", "b"] * 2
    assert table["gflops"].tolist() == pytest.approx([2 * 48 * 2 * 2 / 1e9] * 2)
    assert (table["min_ms"] <= table["p50_ms"]).all()
    with pytest.raises(ValueError, match="rounds"):
        sweep({"a": _Logged("a", log)}, frames=(2,), batches=(1,), rounds=0, progress=False)


def test_end_to_end_on_a_synthesised_clip(tmp_path):
    result, _ = _profile(tmp_path, "--model", "actionclip-meanp", "--backbone", "embedded-tiny", "--frames", "3",
                         "--batch", "2", "--mode", "end_to_end", "--warmup", "0", "--iters", "1", "--rounds", "2",
                         "--no-progress")
    (row,) = result["rows"]
    assert result["rounds"] == 2
    assert row["mode"] == "end_to_end" and row["batch"] == 2 and row["frames"] == 3
    # 16 frames (>= 2 x the 3 sampled), 4:3 and larger than the 64-pixel input, so resize and crop do work
    assert result["video"] == {"path": None, "synthesised": True, "backend": result["video"]["backend"],
                               "num_frames": 16, "size": "100x74"}
    model_only, _ = _profile(tmp_path, "--model", "actionclip-meanp", "--backbone", "embedded-tiny", "--frames", "3",
                             "--batch", "2", "--warmup", "0", "--iters", "1", "--no-progress")
    # the same encoder FLOPs plus the transforms' (normalisation) ones: end to end counts at least as much
    assert row["gflops"] >= model_only["rows"][0]["gflops"] > 0


def test_end_to_end_on_a_given_video(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (12, 72, 96, 3), dtype=np.uint8)
    video = write_video(tmp_path / "clip.mp4", frames)
    result, _ = _profile(tmp_path, "--model", "actionclip-meanp", "--backbone", "embedded-tiny", "--frames", "4",
                         "--mode", "end_to_end", "--video", str(video), "--warmup", "0", "--iters", "1",
                         "--no-progress")
    assert result["video"]["path"] == str(video) and result["video"]["num_frames"] == 12
    assert result["video"]["size"] == "96x72" and not result["video"]["synthesised"]


def test_streaming_profile_by_runtime_says_where_time_goes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path / "data"))  # the ONNX cache
    result, record = _profile(tmp_path, "--model", "actionclip-meanp", "--backbone", "embedded-tiny", "--frames", "2",
                              "--mode", "end_to_end", "--stream", "--runtime", "eager", "onnx", "--warmup", "1",
                              "--iters", "4", "--rounds", "2", "--no-progress")
    rows = result["rows"]
    assert [(r["backbone"], r["runtime"], r["frames"]) for r in rows] == [("embedded-tiny", "eager", 2),
                                                                         ("embedded-tiny", "onnx", 2)]
    reference_ms = min(rows[0]["round_frame_ms"])  # every row's time per frame rests on the reference's rounds
    for row in rows:
        assert row["fps"] > 0 and row["frame_ms"] == pytest.approx(reference_ms / row["speedup_vs_first"])
        assert len(row["round_frame_ms"]) == 2 and row["image_size"] == "64x64"
        assert all(row[f"{stage}_ms"] > 0 for stage in ("decode", "resize", "encoder", "head"))
        assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"]
    assert rows[0]["speedup_vs_first"] == 1.0 and rows[0]["top1_agreement"] is None
    assert rows[1]["top1_agreement"] == 1.0 and rows[1]["frame_min_cosine"] > 0.9999
    assert result["stream"] and result["runtimes"] == ["eager", "onnx"] and "stream-eager+onnx" in result["record"]
    assert result["video"]["synthesised"] and record["metrics"]["rows"] == rows
    text = capsys.readouterr().out
    assert "encoder" in text and "onnx" in text and "agreement with eager fp32" in text


def test_compressed_triplet_profiles_in_model_mode(tmp_path):
    result, _ = _profile(tmp_path, "--model", "compressed-triplet", "--backbone", "tiny", "--frames", "2",
                         "--num-classes", "7", "--image-size", "32", "--warmup", "0", "--iters", "1", "--no-progress")
    (row,) = result["rows"]
    expected = create_model("compressed-triplet", backbone="tiny", num_classes=7)
    assert row["params_total_m"] == pytest.approx(sum(p.numel() for p in expected.parameters()) / 1e6)
    assert row["params_backbone_m"] is None and row["image_size"] == "32x32" and row["gflops"] > 0


def _error(argv: list[str], capsys) -> str:
    assert main(["profile", *argv, "--no-progress"]) == 2
    return capsys.readouterr().err


def test_errors_name_the_bad_value(tmp_path, capsys):
    err = _error(["--model", "actionclip-nope", "--backbone", "embedded-tiny"], capsys)
    assert "actionclip-nope" in err and "actionclip-transf" in err and "compressed-triplet" in err
    err = _error(["--model", "actionclip-meanp", "--backbone", "embedded-tiny", "ViT-Q-99"], capsys)
    assert "ViT-Q-99" in err and "embedded-base" in err and "ViT-B-16" in err
    err = _error(["--model", "compressed-triplet", "--backbone", "resnet34"], capsys)
    assert "resnet34" in err and "pkd" in err
    err = _error(["--model", "compressed-triplet", "--backbone", "tiny", "--mode", "end_to_end"], capsys)
    assert "mode='model'" in err
    err = _error([*TINY, "--frames", "0"], capsys)
    assert "frames" in err and "[0]" in err
    err = _error(["--model", "actionclip-meanp", "--backbone", "embedded-tiny", "embedded-tiny"], capsys)
    assert "more than once" in err
    err = _error([*TINY, "--video", str(tmp_path / "clip.mp4")], capsys)
    assert "end_to_end" in err
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    err = _error([*TINY, "--mode", "end_to_end", "--video", str(empty)], capsys)
    assert str(empty) in err and "empty" in err
    err = _error([*TINY, "--stream"], capsys)
    assert "--stream: streams a video end to end; add --mode end_to_end" in err
    err = _error([*TINY, "--runtime", "onnx"], capsys)
    assert "--runtime onnx: runtimes apply to the streaming path; add --mode end_to_end --stream" in err
    err = _error([*TINY, "--mode", "end_to_end", "--stream", "--runtime", "tensorrt"], capsys)
    assert "--runtime tensorrt: expected some of eager, compile, onnx, onnx-int8, bf16" in err
    err = _error([*TINY, "--mode", "end_to_end", "--stream", "--batch", "2"], capsys)
    assert "--batch 2: the streaming path encodes one frame at a time" in err
    assert not (tmp_path / "records").exists()


@needs_no_cuda
def test_cuda_without_cuda_is_a_clear_error(capsys):
    err = _error([*TINY, "--device", "cuda"], capsys)
    assert "CUDA is not available" in err


def test_compressed_triplet_is_registered():
    assert "compressed-triplet" in list_models()
    torch.manual_seed(0)
    model = create_model("compressed-triplet", num_classes=5, width=4)
    assert isinstance(model, CompressedTriplet) and not model.training
    assert model.config["name"] == "compressed-triplet" and model.config["num_classes"] == 5
    assert {name: net.arch for name, net in model.nets.items()} == {"iframe": "tiny", "mv": "tiny", "residual": "tiny"}
    out = model(torch.randn(1, 2, 3, 32, 32), torch.randn(1, 2, 2, 32, 32), torch.randn(1, 2, 3, 32, 32))
    assert len(CompressedTriplet.ordered_ics(out)) == 12 and CompressedTriplet.fuse(out).shape == (1, 5)
    with torch.device("meta"):  # shapes only: the ResNet-50 is built without allocating its weights
        pkd = create_model("compressed-triplet", backbone="pkd", num_classes=51)
    assert {name: net.arch for name, net in pkd.nets.items()} == {
        "iframe": "resnet50", "mv": "resnet18", "residual": "resnet18"}
    with pytest.raises(ValueError, match="num_classes"):
        create_model("compressed-triplet")
    with pytest.raises(ValueError, match="'resnet34' unknown.*pkd"):
        create_model("compressed-triplet", backbone="resnet34", num_classes=5)
    with pytest.raises(ValueError, match="already sets the architectures"):
        create_model("compressed-triplet", backbone="tiny", iframe_arch="resnet18", num_classes=5)
    with pytest.raises(ValueError, match="mapping of modality"):
        create_model("compressed-triplet", num_classes=5, pretrained="resnet18.pth")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["model", "end_to_end"])
def test_cuda_path(tmp_path, mode):
    result, _ = _profile(tmp_path, *TINY, "--frames", "4", "--batch", "1", "2", "--device", "cuda", "--dtype", "fp16",
                         "--mode", mode)
    assert len(result["rows"]) == 4
    assert all(r["device"].startswith("cuda") and r["dtype"] == "fp16" for r in result["rows"])
    assert result["environment"]["device_name"] == torch.cuda.get_device_name()
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN, no tensors
