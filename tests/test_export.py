"""Faster runtimes: ONNX round trip and torch.compile agree with eager, disagreement is caught, fallback is explicit,
the profiler tags runtimes, and the `export` command."""

from __future__ import annotations

import logging
import math

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from actiondistill import export as ex
from actiondistill.cli import main
from actiondistill.io import read_json
from actiondistill.models import ZeroShotClassifier, create_backbone, create_model
from actiondistill.profiler import SWEEP_COLUMNS, sweep

LABELS = ["bouncing to the left", "spinning clockwise", "growing", "juggling"]
T = 4


pytestmark = pytest.mark.usefixtures("one_thread")


def build(name: str, **cfg):
    if name == "actionclip-transf":
        cfg.setdefault("fusion_layers", 2)
    torch.manual_seed(0)
    return create_model(name, backbone="embedded-tiny", num_frames=T, **cfg)


@pytest.fixture(scope="module")
def meanp():
    return build("actionclip-meanp")


@pytest.fixture(scope="module")
def meanp_export(meanp, tmp_path_factory):
    out = tmp_path_factory.mktemp("meanp-onnx")
    return ex.export_onnx(meanp, out, progress=False)


def clips(batch: int, seed: int = 7) -> torch.Tensor:
    return ex.probe_frames(batch, T, (64, 64), seed)


def corrupt(path, scale: float = 0.5) -> None:
    """Perturb the largest float weight of an ONNX file in place (what a bad conversion would do to the model)."""
    graph = onnx.load(str(path))
    weights = [w for w in graph.graph.initializer if w.data_type == onnx.TensorProto.FLOAT]
    target = max(weights, key=lambda w: int(np.prod(w.dims)))
    array = numpy_helper.to_array(target).copy()
    array += scale * np.random.default_rng(0).standard_normal(array.shape).astype(np.float32)
    target.CopyFrom(numpy_helper.from_array(array, target.name))
    onnx.save(graph, str(path))


@pytest.mark.parametrize("name", ["actionclip-meanp", "actionclip-transf"])
def test_onnx_round_trip_agrees_with_eager(name, meanp, meanp_export, tmp_path):
    model = meanp if name == "actionclip-meanp" else build(name)
    manifest = meanp_export if name == "actionclip-meanp" else ex.export_onnx(model, tmp_path, progress=False)
    out = manifest["directory"]
    assert manifest["agreement"]["ok"] and manifest["num_frames"] == T and manifest["image_size"] == [64, 64]
    assert manifest["files"]["video"]["path"] == ex.VIDEO_FILE and manifest["model"]["name"] == name
    assert read_json(f"{out}/{ex.MANIFEST_FILE}")["files"] == manifest["files"]
    runner = ex.OnnxVideoModel.load(out)
    assert runner.external_parameters == sum(p.numel() for p in model.parameters())

    frames = clips(5)  # a batch size the export never saw: the batch axis is dynamic
    with torch.no_grad():
        reference = torch.nn.functional.normalize(model.encode_video(frames), dim=-1)
    got = runner.encode_video(frames)
    assert got.shape == reference.shape == (5, model.embed_dim)
    assert (got - reference).abs().max() < 1e-4
    with torch.no_grad():
        text = model.text_templates(LABELS)
    assert (runner.text_templates(LABELS) - text).abs().max() < 1e-4
    # the same scoring code runs on either: ZeroShotClassifier duck-types the runtime
    onnx_probs = ZeroShotClassifier(runner, LABELS).probs(frames)
    assert torch.allclose(onnx_probs, ZeroShotClassifier(model, LABELS).probs(frames), atol=1e-5)
    assert torch.allclose(runner.predict_proba(frames, LABELS), model.predict_proba(frames, LABELS), atol=1e-5)
    with pytest.raises(ValueError, match=r"takes \(B, 4, 3, 64, 64\)"):
        runner.encode_video(ex.probe_frames(1, T + 1, (64, 64)))
    with pytest.raises(RuntimeError, match="inference only"):
        runner.train()


def test_check_agreement_measures_and_flags():
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(6, 16, generator=gen)
    text = torch.randn(5, 16, generator=gen)
    same = ex.check_agreement(lambda x: x, lambda x: x.clone(), ref, text=text)
    assert same["ok"] and same["max_abs_diff"] == 0 and same["top1_agreement"] == 1.0 and same["n"] == 6
    assert ex.check_agreement(lambda x: x, lambda x: 3 * x, ref)["ok"]  # the norm does not change any score
    noisy = ex.check_agreement(lambda x: x, lambda x: x + 0.3 * torch.randn(x.shape, generator=gen), ref, text=text)
    assert not noisy["ok"] and noisy["max_abs_diff"] > 1e-2 and noisy["min_cosine"] < 0.999
    assert any("max |difference|" in f for f in noisy["failures"])
    flipped = ex.check_agreement(lambda x: x, lambda x: x, ref, text=(text, -text))  # every top-1 changes
    assert not flipped["ok"] and flipped["top1_agreement"] < 1 and "top-1 agreement" in flipped["failures"][0]
    nan = ex.check_agreement(lambda x: x, lambda x: x * float("nan"), ref)
    assert not nan["ok"] and len(nan["failures"]) == 2
    shape = ex.check_agreement(lambda x: x, lambda x: x[:, :8], ref)
    assert not shape["ok"] and "shapes differ" in shape["failures"][0]
    loose = ex.Tolerance(max_abs_diff=1.0, min_cosine=0.0, min_top1_agreement=0.0)
    assert ex.check_agreement(lambda x: x, lambda x: x + 0.3, ref, tolerance=loose)["ok"]


def test_corrupted_export_is_detected(meanp, meanp_export, tmp_path):
    import shutil

    for name in (ex.VIDEO_FILE, ex.TEXT_FILE, ex.MANIFEST_FILE):
        shutil.copy(f"{meanp_export['directory']}/{name}", tmp_path / name)
    corrupt(tmp_path / ex.VIDEO_FILE)
    with pytest.raises(ValueError, match="SHA-256 differs"):
        ex.OnnxVideoModel.load(tmp_path)
    broken = ex.OnnxVideoModel.load(tmp_path, check_files=False)
    eager = ex.EagerVideoModel(meanp)
    frames = clips(4)
    check = ex.check_agreement(eager.encode_video, broken.encode_video, frames, text=eager.encode_text(LABELS))
    assert not check["ok"] and check["max_abs_diff"] > 1e-3
    with pytest.raises(ex.AgreementError, match="onnx runtime disagrees.*video encoder"):
        ex.verify_runtime(eager, broken, frames, LABELS)
    report = ex.verify_runtime(eager, broken, frames, LABELS, raise_error=False)
    assert report["text"]["ok"] and not report["video"]["ok"] and not report["ok"]


def test_disagreeing_export_raises_and_publishes_nothing(meanp, monkeypatch, tmp_path):
    traced = ex._traced_export

    def corrupting(module, example, path, input_name, opset):
        traced(module, example, path, input_name, opset)
        if input_name == "tokens":
            corrupt(path, scale=0.2)

    monkeypatch.setattr(ex, "_traced_export", corrupting)
    out = tmp_path / "out"
    with pytest.raises(ex.AgreementError, match="text encoder"):
        ex.export_onnx(meanp, out, progress=False)
    assert list(out.iterdir()) == []  # no .onnx, no manifest, no temporary folder


def test_unexportable_models_and_bad_folders(tmp_path):
    torch.manual_seed(0)
    xclip = create_model("xclip", backbone="embedded-tiny", num_frames=2)
    with pytest.raises(ValueError, match="depend on the video"):
        ex.export_onnx(xclip, tmp_path, progress=False)
    with pytest.raises(ValueError, match="expected a VideoCLIP"):
        ex.compile_model(torch.nn.Linear(2, 2), progress=False)
    with pytest.raises(FileNotFoundError, match="no export manifest"):
        ex.OnnxVideoModel.load(tmp_path)


def micro_model():
    """A one-block CLIP: torch.compile's cost grows with the graph, and this test checks the path, not speed."""
    torch.manual_seed(0)
    backbone = create_backbone("embedded-tiny", embed_dim=32, vision_cfg={"layers": 1, "width": 64, "head_width": 32},
                               text_cfg={"layers": 1, "width": 64, "heads": 1})
    return create_model("actionclip-meanp", backbone=backbone, num_frames=2)


def test_compile_failure_falls_back_explicitly(caplog):
    model = micro_model()

    def broken_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    with caplog.at_level(logging.WARNING, logger="actiondistill.export"):
        compiled = ex.compile_model(model, backend=broken_backend, progress=False)
    assert compiled.runtime == "eager" and "no C++ compiler" in compiled.fallback_reason
    assert compiled.agreement is None
    assert any("running eager PyTorch instead" in r.getMessage() for r in caplog.records)
    frames = ex.probe_frames(2, 2, (64, 64))
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_video(frames), dim=-1)
    assert torch.equal(compiled.encode_video(frames), expected)  # it really runs eager now
    with pytest.raises(RuntimeError, match="torch.compile.*failed on the video encoder.*no C\\+\\+ compiler"):
        ex.compile_model(model, backend=broken_backend, fallback=False, progress=False)


def test_compile_with_inductor_agrees_with_eager():
    model = micro_model()
    compiled = ex.compile_model(model, progress=False)
    if compiled.runtime != "compile":
        pytest.skip(f"inductor cannot compile on this machine (fallback asserted above): {compiled.fallback_reason}")
    assert compiled.agreement["ok"] and compiled.agreement["video"]["max_abs_diff"] < 1e-4
    assert set(compiled.compile_s) == {"video", "text"}
    frames = ex.probe_frames(1, 2, (64, 64), seed=3)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_video(frames), dim=-1)
    assert (compiled.encode_video(frames) - expected).abs().max() < 1e-4


def test_runtime_table_tags_rows(meanp, tmp_path):
    table = ex.runtime_table(meanp, ("eager", "onnx"), out_dir=tmp_path, batches=(1, 2), warmup=0, iters=2,
                             progress=False)
    assert list(table.columns) == list(SWEEP_COLUMNS)
    assert list(zip(table["runtime"], table["batch"])) == [("eager", 1), ("onnx", 1), ("eager", 2), ("onnx", 2)]
    assert (table["model"] == "actionclip-meanp").all()
    eager, onnx_rows = table[table["runtime"] == "eager"], table[table["runtime"] == "onnx"]
    assert (eager["speedup_vs_first"] == 1.0).all() and eager["gflops"].gt(0).all()
    assert onnx_rows["gflops"].isna().all()  # FlopCounterMode cannot see onnxruntime's kernels
    assert onnx_rows["params_total_m"].tolist() == pytest.approx(eager["params_total_m"].tolist())
    assert table.attrs["agreement"]["onnx"]["ok"] and table.attrs["compile"] is None
    with pytest.raises(ValueError, match="unknown"):
        ex.runtime_table(meanp, ("eager", "tensorrt"), progress=False)
    with pytest.raises(ValueError, match="warmup"):
        ex.runtime_table(meanp, ("eager", "compile"), warmup=0, progress=False)


def test_sweep_runtime_labels():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    table = sweep({"a": model, "b": model}, frames=(1,), batches=(1,), image_size=4, iters=1, warmup=0,
                  runtimes={"b": "onnx"}, progress=False)
    assert table["runtime"].tolist() == ["eager", "onnx"]
    assert not math.isnan(table["gflops"][0]) and math.isnan(table["gflops"][1])
    with pytest.raises(ValueError, match="name no model"):
        sweep({"a": model}, frames=(1,), batches=(1,), image_size=4, runtimes={"z": "onnx"}, progress=False)


def test_export_command_json(tmp_path, capsys):
    out = tmp_path / "onnx"
    result_path = tmp_path / "result.json"
    argv = ["export", "--model", "actionclip-meanp", "--backbone", "embedded-tiny", "--frames", "2", "--out",
            str(out), "--runtimes", "onnx", "--batch", "1", "--warmup", "0", "--iters", "1", "--no-progress",
            "--random-weights"]
    assert main([*argv, "--json", str(result_path)]) == 0
    result = read_json(result_path)
    assert result["num_frames"] == 2 and result["runtimes"] == ["eager", "onnx"]
    assert [row["runtime"] for row in result["rows"]] == ["eager", "onnx"]
    assert result["agreement"]["onnx"]["ok"] and result["compile"] is None
    assert {"runtime", "speedup_vs_first"} <= set(result["columns"])
    assert ex.OnnxVideoModel.load(out).num_frames == 2
    text = capsys.readouterr().out
    assert "agreement with eager PyTorch" in text and "vs eager" in text

    assert main(["export", "--model", "xclip", "--backbone", "embedded-tiny", "--out", str(tmp_path / "x"),
                 "--no-progress", "--random-weights"]) == 2
    assert "depend on the video" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_compile_and_export(tmp_path):
    model = micro_model().cuda()
    compiled = ex.compile_model(model, progress=False)
    assert compiled.runtime == "compile" and compiled.agreement["ok"]
    manifest = ex.export_onnx(model, tmp_path, providers=["CPUExecutionProvider"], progress=False)
    assert manifest["agreement"]["ok"]
    frames = ex.probe_frames(2, 2, (64, 64), device="cuda")
    assert ex.OnnxVideoModel.load(tmp_path, providers=["CPUExecutionProvider"]).encode_video(frames).is_cuda
