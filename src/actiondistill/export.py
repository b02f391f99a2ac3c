"""Faster runtimes for a trained video model: torch.compile and ONNX (onnxruntime), each checked against eager.

A deployed zero-shot classifier needs two encoders: the video encoder (frames -> L2-normalised embedding, run on
every clip) and the text encoder (token ids -> embedding, run once per label list). Every runtime here wraps the
pair behind one interface (`RuntimeVideoModel`: encode_video, encode_text, text_templates, template_probs,
predict_proba), which is also what `ZeroShotClassifier` calls, so the same scoring code (the ActionCLIP test
protocol) runs on eager PyTorch, on `torch.compile`d encoders and on onnxruntime sessions.

A faster runtime is only useful if it computes the same thing: `compile_model` and `export_onnx` compare their
output with eager on probe inputs (`check_agreement`: largest difference of the normalised embeddings, lowest
cosine similarity, agreement of the zero-shot top-1) and raise `AgreementError` when it is outside the tolerance.
When torch.compile cannot compile on a machine (inductor needs a C++ compiler on CPU), `compile_model` falls back to
eager loudly: the returned model says `runtime == "eager"` and why, and a warning is logged; never silently.

Models whose text depends on the video (X-CLIP's video-conditioned prompts) do not fit a two-encoder deployment
and are refused.

Streaming runs only the image encoder per frame, so `frame_runtime` puts that one encoder on a runtime
(FRAME_RUNTIMES: torch.compile, ONNX Runtime fp32, ONNX Runtime int8 after dynamic quantization, bf16, or bf16
compiled with frozen weights) and checks it where streaming uses it: the cosine of the frame embeddings and the
top-1 of sliding-window predictions against eager fp32 (`check_frame_runtime`, limits FRAME_TOLERANCES, since int8
and bf16 cannot match to float rounding).
Its ONNX files are cached under the data folder, keyed by the encoder's weights and every export option
(`cached_frame_onnx`), so a second start skips the export and changed weights never reuse a stale file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from actiondistill.io import atomic_write_json, file_sha256, read_json
from actiondistill.models.base import VideoCLIP
from actiondistill.models.prompts import check_label_list, format_prompts, validate_templates

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "compile", "onnx")
_MAX_CACHED = 8  # label lists whose text embeddings a runtime keeps
VIDEO_FILE = "video_encoder.onnx"
TEXT_FILE = "text_encoder.onnx"
MANIFEST_FILE = "export.json"
EXPORT_VERSION = 1
#: Label texts the agreement check scores probe clips against when the caller gives none.
PROBE_LABELS = ("running", "jumping", "waving a hand", "bouncing to the left", "spinning clockwise", "growing",
                "shrinking", "moving towards the star")


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far a runtime may drift from eager: fp32 re-implementations differ by float rounding (~1e-6)."""

    max_abs_diff: float = 1e-4  # largest |difference| of the L2-normalised embeddings
    min_cosine: float = 0.99999  # lowest cosine similarity between the two embeddings of one input
    min_top1_agreement: float = 1.0  # share of probe clips whose zero-shot top-1 label is the same


class AgreementError(RuntimeError):
    """A faster runtime's output disagrees with eager beyond the tolerance."""


def check_agreement(reference_fn: Callable[[Any], torch.Tensor], candidate_fn: Callable[[Any], torch.Tensor],
                    inputs: Any, *, text: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
                    scale: float = 100.0, tolerance: Tolerance = Tolerance()) -> dict[str, Any]:
    """Compare two implementations of one encoder on the same inputs.

    Args:
        reference_fn, candidate_fn: inputs -> (N, D) embeddings (eager and the runtime under test).
        inputs: what both are called with, e.g. frames (N, T, 3, H, W) or token ids (N, L).
        text: (C, D) class text embeddings, or a (reference, candidate) pair of them: when given, the zero-shot
            logits scale * cos(embedding, text) of both sides are compared by their top-1 class.
        scale: the logit scale of those logits (the models' eval scale is 100).
        tolerance: the limits; NaN anywhere counts as a failure.

    Returns:
        dict with n, max_abs_diff (of the L2-normalised embeddings), min_cosine, top1_agreement and max_logit_diff
        (None without text), tolerance, failures (what exceeded it, in words) and ok.
    """
    with torch.inference_mode():
        ref = reference_fn(inputs).detach().float().cpu()
        cand = candidate_fn(inputs).detach().float().cpu()
    if ref.shape != cand.shape or ref.ndim != 2:
        return {"n": int(ref.shape[0]) if ref.ndim else 0, "max_abs_diff": None, "min_cosine": None,
                "top1_agreement": None, "max_logit_diff": None, "tolerance": dataclasses.asdict(tolerance),
                "failures": [f"output shapes differ: reference {tuple(ref.shape)}, candidate {tuple(cand.shape)} "
                             "(expected equal (N, D))"], "ok": False}
    ref_n, cand_n = F.normalize(ref, dim=-1), F.normalize(cand, dim=-1)
    max_abs = float((ref_n - cand_n).abs().max())
    min_cos = float(F.cosine_similarity(ref, cand, dim=-1).min())
    top1 = max_logit = None
    if text is not None:
        ref_text, cand_text = text if isinstance(text, tuple) else (text, text)
        ref_logits = scale * ref_n @ F.normalize(ref_text.detach().float().cpu(), dim=-1).t()
        cand_logits = scale * cand_n @ F.normalize(cand_text.detach().float().cpu(), dim=-1).t()
        top1 = float((ref_logits.argmax(-1) == cand_logits.argmax(-1)).float().mean())
        max_logit = float((ref_logits - cand_logits).abs().max())
    failures = []
    if not max_abs <= tolerance.max_abs_diff:
        failures.append(f"max |difference| of the normalised embeddings {max_abs:.3g} > {tolerance.max_abs_diff:g}")
    if not min_cos >= tolerance.min_cosine:
        failures.append(f"lowest cosine similarity {min_cos:.7f} < {tolerance.min_cosine}")
    if top1 is not None and not top1 >= tolerance.min_top1_agreement:
        failures.append(f"zero-shot top-1 agreement {top1:.3f} < {tolerance.min_top1_agreement}")
    return {"n": int(ref.shape[0]), "max_abs_diff": max_abs, "min_cosine": min_cos, "top1_agreement": top1,
            "max_logit_diff": max_logit, "tolerance": dataclasses.asdict(tolerance), "failures": failures,
            "ok": not failures}


# --------------------------------------------------------------------------------------------- the shared interface
class RuntimeVideoModel(nn.Module):
    """Inference interface of a video model on some runtime: two encoders plus the ActionCLIP test protocol.

    Subclasses implement `_video(frames)` ((B, T, 3, H, W) float -> (B, D) normalised) and `encode_tokens`
    ((N, L) int64 token ids -> (N, D) raw text embeddings). Inference only: `train()` is refused.
    """

    runtime = "eager"

    def __init__(self, num_frames: int, image_size: tuple[int, int], templates: Sequence[str],
                 eval_logit_scale: float, tokenizer: Callable[[list[str]], torch.Tensor]):
        super().__init__()
        self.num_frames = int(num_frames)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.templates = validate_templates(templates)
        self.eval_logit_scale = float(eval_logit_scale)
        self.tokenizer = tokenizer
        self._text_cache: dict[tuple, torch.Tensor] = {}
        self.eval()

    def train(self, mode: bool = True) -> RuntimeVideoModel:
        if mode:
            raise RuntimeError(f"{type(self).__name__} is inference only: train the PyTorch model, then compile or "
                               "export it again")
        return super().train(False)

    # ----------------------------------------------------------------- encoders
    def _video(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L) int64 token ids -> (N, D) raw text embeddings."""
        raise NotImplementedError

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) CLIP-normalised float frames -> (B, D) L2-normalised video embeddings."""
        if not isinstance(frames, torch.Tensor) or frames.ndim != 5 or frames.shape[2] != 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames: expected a float tensor (B, T, 3, H, W), got {shape}")
        with torch.inference_mode():
            return self._video(frames)

    def forward(self, frames: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
        """(B, C) logits against the mean template text at the eval scale, as `VideoCLIP.forward` in eval mode."""
        return self.eval_logit_scale * self.encode_video(frames) @ F.normalize(self.encode_text(labels), dim=-1).t()

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(prompts))

    def text_templates(self, labels: Sequence[str], templates: Sequence[str] | None = None) -> torch.Tensor:
        """(K, C, D) normalised text embeddings of every template x label (cached: the weights never change)."""
        labels = check_label_list(labels)
        templates = self.templates if templates is None else validate_templates(templates)
        key = (tuple(labels), templates)
        if key not in self._text_cache:
            if len(self._text_cache) >= _MAX_CACHED:
                self._text_cache.clear()
            with torch.inference_mode():
                text = self.encode_tokens(self.tokenize(format_prompts(labels, templates)))
            self._text_cache[key] = F.normalize(text.float(), dim=-1).view(len(templates), len(labels), -1)
        return self._text_cache[key]

    def encode_text(self, labels: Sequence[str]) -> torch.Tensor:
        """(C,) labels -> (C, D): the mean over templates of the normalised text embeddings (eval-mode VideoCLIP)."""
        return self.text_templates(labels).mean(dim=0)

    def template_probs(self, frames: torch.Tensor, text_templates: torch.Tensor) -> torch.Tensor:
        """The ActionCLIP test protocol on (K, C, D) text embeddings: softmax per template, mean over templates."""
        video = self.encode_video(frames).float()
        text_templates = text_templates.to(video.device)
        probs = sum((self.eval_logit_scale * video @ text.t()).softmax(dim=-1) for text in text_templates)
        return probs / text_templates.shape[0]

    def predict_proba(self, frames: torch.Tensor, labels: Sequence[str],
                      templates: Sequence[str] | None = None) -> torch.Tensor:
        """(B, C) class probabilities, as `VideoCLIP.predict_proba`."""
        return self.template_probs(frames, self.text_templates(labels, templates))

    def extra_repr(self) -> str:
        return f"runtime={self.runtime}, num_frames={self.num_frames}, image_size={self.image_size}"


def _check_exportable(model: nn.Module) -> VideoCLIP:
    if not isinstance(model, VideoCLIP):
        raise ValueError(f"model: expected a VideoCLIP video model (create_model), got {type(model).__name__}")
    cls = type(model)
    if cls.adapt_text is not VideoCLIP.adapt_text or cls.video_context is not VideoCLIP.video_context:
        raise ValueError(f"{cls.__name__}: its text embeddings depend on the video (video-conditioned prompts), so "
                         "it cannot be deployed as a separate video encoder and text encoder; expected an ActionCLIP "
                         "or ViFi-CLIP model")
    return model


def _image_size(model: VideoCLIP, image_size: int | Sequence[int] | None) -> tuple[int, int]:
    if image_size is None:
        from actiondistill.realtime.streaming import model_image_size

        return model_image_size(model)
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


class EagerVideoModel(RuntimeVideoModel):
    """The PyTorch model as written, behind the runtime interface: the reference the other runtimes are checked
    against, and the baseline of their speed-ups."""

    runtime = "eager"

    def __init__(self, model: VideoCLIP, image_size: int | Sequence[int] | None = None):
        model = _check_exportable(model).eval()
        super().__init__(model.num_frames, _image_size(model, image_size), model.templates, model.eval_logit_scale,
                         model.tokenizer)
        self.model = model

    def _video(self, frames: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_video(frames), dim=-1)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.backbone.encode_text(tokens.to(self.model.logit_scale.device))


def probe_frames(batch: int, num_frames: int, image_size: tuple[int, int], seed: int = 0,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """Seeded random (batch, T, 3, H, W) frames: CLIP-normalised pixels are roughly standard normal."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, num_frames, 3, *image_size, generator=gen).to(device)


def verify_runtime(reference: RuntimeVideoModel, candidate: RuntimeVideoModel, frames: torch.Tensor,
                   labels: Sequence[str] = PROBE_LABELS, tolerance: Tolerance = Tolerance(),
                   raise_error: bool = True) -> dict[str, Any]:
    """Check both encoders of `candidate` against `reference`: the text encoder on the prompts of `labels` (every
    template), the video encoder on `frames`, with the zero-shot top-1 against each side's own text embeddings.

    Returns {"video": check_agreement(...), "text": check_agreement(...), "ok": bool}; with `raise_error`, an
    `AgreementError` naming the encoder and the numbers when either is outside `tolerance`.
    """
    tokens = reference.tokenize(format_prompts(check_label_list(labels), reference.templates))
    text = check_agreement(reference.encode_tokens, candidate.encode_tokens, tokens, tolerance=tolerance)
    video = check_agreement(reference.encode_video, candidate.encode_video, frames, scale=reference.eval_logit_scale,
                            text=(reference.encode_text(labels), candidate.encode_text(labels)), tolerance=tolerance)
    result = {"video": video, "text": text, "ok": video["ok"] and text["ok"]}
    if raise_error and not result["ok"]:
        problems = [f"{name} encoder: {'; '.join(check['failures'])}" for name, check in (("video", video),
                    ("text", text)) if not check["ok"]]
        raise AgreementError(f"{candidate.runtime} runtime disagrees with eager PyTorch: {' | '.join(problems)}")
    return result


# --------------------------------------------------------------------------------------------- torch.compile
class CompiledVideoModel(RuntimeVideoModel):
    """Both encoders through torch.compile; `runtime` is "eager" when compilation failed and was fallen back from
    (then `fallback_reason` says why)."""

    def __init__(self, model: VideoCLIP, mode: str = "default", backend: str | Callable = "inductor",
                 dynamic: bool | None = None, image_size: int | Sequence[int] | None = None):
        model = _check_exportable(model).eval()
        super().__init__(model.num_frames, _image_size(model, image_size), model.templates, model.eval_logit_scale,
                         model.tokenizer)
        self.model = model
        self.mode, self.backend, self.dynamic = mode, backend, dynamic
        self.runtime = "compile"
        self.fallback_reason: str | None = None
        self.compile_s: dict[str, float] = {}
        self.agreement: dict[str, Any] | None = None

        def video(frames: torch.Tensor) -> torch.Tensor:
            return F.normalize(model.encode_video(frames), dim=-1)

        options = {"backend": backend, "dynamic": dynamic}
        if backend == "inductor":
            options["mode"] = mode
        self._compiled_video = torch.compile(video, **options)
        self._compiled_text = torch.compile(model.backbone.encode_text, **options)
        self._eager_video, self._eager_text = video, model.backbone.encode_text

    def _video(self, frames: torch.Tensor) -> torch.Tensor:
        return (self._compiled_video if self.runtime == "compile" else self._eager_video)(frames)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            tokens = tokens.to(self.model.logit_scale.device)
            return (self._compiled_text if self.runtime == "compile" else self._eager_text)(tokens)

    def fall_back(self, reason: str) -> None:
        """Run eager from now on, saying so (log warning, `runtime`, `fallback_reason`)."""
        self.runtime, self.fallback_reason = "eager", reason
        log.warning("torch.compile unusable here, running eager PyTorch instead: %s", reason)


def compile_model(model: VideoCLIP, mode: str = "default", *, backend: str | Callable = "inductor",
                  dynamic: bool | None = None, batch: int = 1, image_size: int | Sequence[int] | None = None,
                  labels: Sequence[str] = PROBE_LABELS, fallback: bool = True, tolerance: Tolerance = Tolerance(),
                  seed: int = 0, progress: bool = True) -> CompiledVideoModel:
    """torch.compile the video and text encoders, compile them now on probe inputs, and check them against eager.

    torch.compile is lazy: it compiles on the first call, which is where a missing C++ compiler (inductor on CPU)
    or an unsupported operator surfaces. So both encoders are called here, once, on `batch` probe clips and the
    prompts of `labels`; those calls are also the agreement check (`verify_runtime`).

    Args:
        model: an ActionCLIP or ViFi-CLIP model (eval mode; kept on its device).
        mode: torch.compile mode ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs").
        backend: torch.compile backend ("inductor"; "aot_eager"/"eager" only check that the model traces).
        dynamic: torch.compile's dynamic-shape switch (None: recompile once with dynamic shapes when a second
            batch size arrives).
        batch: probe clips of the first (compiling) call.
        fallback: when compilation fails (and eager succeeds on the same input), return a model running eager
            with `runtime == "eager"` and `fallback_reason` set, and log a warning; False raises RuntimeError.
        tolerance: agreement with eager required of a compiled model (AgreementError otherwise).

    Returns:
        CompiledVideoModel with compile_s ({"video": s, "text": s}, the first calls) and, after a check,
        `agreement` (verify_runtime's result; None after a fallback).
    """
    compiled = CompiledVideoModel(model, mode=mode, backend=backend, dynamic=dynamic, image_size=image_size)
    reference = EagerVideoModel(model, image_size=compiled.image_size)
    device = model.logit_scale.device
    frames = probe_frames(batch, compiled.num_frames, compiled.image_size, seed, device)
    tokens = compiled.tokenize(format_prompts(check_label_list(labels), compiled.templates))
    bar = tqdm(total=2, desc=f"torch.compile ({backend if isinstance(backend, str) else 'custom'})",
               disable=not progress, leave=False)
    try:
        for name, call, probe in (("video", compiled.encode_video, frames), ("text", compiled.encode_tokens, tokens)):
            started = time.perf_counter()
            try:
                call(probe)
            except Exception as err:  # compilation failures come as many types (backend, C++ build, lowering)
                eager_call = reference.encode_video if name == "video" else reference.encode_tokens
                eager_call(probe)  # an error of the model itself is raised as such, not hidden as a fallback
                reason = f"{name} encoder: {type(err).__name__}: {' '.join(str(err).split())[:400]}"
                if not fallback:
                    raise RuntimeError(f"torch.compile(backend={backend!r}, mode={mode!r}) failed on the {reason}; "
                                       "pass fallback=True to run eager PyTorch instead") from err
                compiled.fall_back(reason)
                return compiled
            compiled.compile_s[name] = time.perf_counter() - started
            bar.update(1)
    finally:
        bar.close()
    compiled.agreement = verify_runtime(reference, compiled, frames, labels, tolerance)
    return compiled


# --------------------------------------------------------------------------------------------- ONNX
class _VideoGraph(nn.Module):
    """What the video ONNX graph computes: frames -> L2-normalised video embedding."""

    def __init__(self, model: VideoCLIP):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_video(frames), dim=-1)


class _TextGraph(nn.Module):
    """What the text ONNX graph computes: token ids -> raw CLIP text embedding."""

    def __init__(self, model: VideoCLIP):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.backbone.encode_text(tokens)


def default_providers() -> list[str]:
    """onnxruntime's CUDA provider first when this onnxruntime build has it, the CPU provider always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _ort_session(path: Path, threads: int, providers: Sequence[str], what: str) -> Any:
    """An onnxruntime session on `threads` intra-op threads, with errors naming the file and what it should be."""
    import onnxruntime as ort

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file (expected the {what} of an export)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's problem
    # idle worker threads would spin after each run and take the cores from the stream's decode, resize and head
    # (measured: resize 1.8 -> 8-10 ms per frame at 2 threads); the encoder itself loses nothing by sleeping
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as err:  # onnxruntime raises its own exception types for unreadable graphs
        raise ValueError(f"{path}: onnxruntime cannot load it as the {what} ({type(err).__name__}: {err})") from err


class OnnxVideoModel(RuntimeVideoModel):
    """The exported encoders in onnxruntime sessions (`load(directory)` reads an `export_onnx` folder).

    Args:
        video_path, text_path: the two .onnx files.
        meta: the export manifest (num_frames, image_size, templates, eval_logit_scale, context_length, params).
        providers: onnxruntime execution providers (default `default_providers()`).
        threads: intra-op threads of each session (default torch.get_num_threads(), so eager and ONNX timings
            use the same number of cores).
    """

    runtime = "onnx"

    def __init__(self, video_path: str | os.PathLike, text_path: str | os.PathLike, meta: Mapping[str, Any],
                 providers: Sequence[str] | None = None, threads: int | None = None):
        import open_clip

        super().__init__(meta["num_frames"], meta["image_size"], meta["templates"], meta["eval_logit_scale"],
                         open_clip.SimpleTokenizer(context_length=int(meta["context_length"])))
        self.meta = dict(meta)
        self.external_parameters = int(meta.get("params_total", 0))
        self.threads = torch.get_num_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"threads={threads!r}: expected >= 1")
        self.providers = list(providers) if providers is not None else default_providers()
        self._sessions = {name: _ort_session(Path(path), self.threads, self.providers, f"{name} encoder")
                          for name, path in (("video", video_path), ("text", text_path))}

    @classmethod
    def load(cls, directory: str | os.PathLike, providers: Sequence[str] | None = None, threads: int | None = None,
             check_files: bool = True) -> OnnxVideoModel:
        """Open an `export_onnx` folder; `check_files` compares the files' SHA-256 with the manifest's, so a folder
        mixing two exports (or a file changed since) is refused."""
        directory = Path(directory)
        manifest = directory / MANIFEST_FILE
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest}: no export manifest; {directory} is not a complete export_onnx "
                                    "folder (the manifest is written last)")
        meta = read_json(manifest)
        if meta.get("version") != EXPORT_VERSION:
            raise ValueError(f"{manifest}: export version {meta.get('version')!r}, expected {EXPORT_VERSION}; "
                             "export the model again")
        paths = {name: directory / meta["files"][name]["path"] for name in ("video", "text")}
        if check_files:
            for name, path in paths.items():
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: missing {name} encoder named by {manifest}")
                if file_sha256(path) != meta["files"][name]["sha256"]:
                    raise ValueError(f"{path}: its SHA-256 differs from {manifest}'s: the file changed after the "
                                     "export (or belongs to another one); export again")
        return cls(paths["video"], paths["text"], meta, providers=providers, threads=threads)

    def _video(self, frames: torch.Tensor) -> torch.Tensor:
        expected = (self.num_frames, 3, *self.image_size)
        if tuple(frames.shape[1:]) != expected:
            raise ValueError(f"frames {tuple(frames.shape)}: the exported video encoder takes (B, {expected[0]}, 3, "
                             f"{expected[2]}, {expected[3]}) (frames and image size are fixed at export)")
        array = frames.detach().to("cpu", torch.float32).contiguous().numpy()
        out = self._sessions["video"].run(None, {"frames": array})[0]
        return torch.from_numpy(out).to(frames.device)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        array = tokens.detach().to("cpu", torch.int64).contiguous().numpy()
        return torch.from_numpy(self._sessions["text"].run(None, {"tokens": array})[0])


def _onnx_export(module: nn.Module, example: torch.Tensor, path: Path, input_name: str, opset: int) -> None:
    """The TorchScript-based exporter: the torch.export-based one needs onnxscript, which the pinned environment
    lacks. Its warnings are expected here: shape checks are traced as constants (frames and image size are fixed at
    export; the batch axis is dynamic), and the advanced-indexing warning concerns negative indices, while the text
    encoder's pooling indexes with arange and argmax (never negative). The agreement check verifies the result.
    nn.MultiheadAttention's inference fast path (a fused operator without an ONNX symbol) is switched off meanwhile.
    The module is put in eval mode first: the exporter restores the mode it found, and a fresh wrapper module is in
    training mode, so it would leave the wrapped model training (batch norms on batch statistics) afterwards.
    """
    module.eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        _traced_export(module, example, path, input_name, opset)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _traced_export(module: nn.Module, example: torch.Tensor, path: Path, input_name: str, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
        torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=[input_name],
                          output_names=["embedding"], opset_version=opset, do_constant_folding=True,
                          dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}})


def export_onnx(model: VideoCLIP, out_dir: str | os.PathLike, num_frames: int | None = None,
                image_size: int | Sequence[int] | None = None, *, batch: int = 2,
                labels: Sequence[str] = PROBE_LABELS, opset: int = 17, tolerance: Tolerance = Tolerance(),
                providers: Sequence[str] | None = None, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Export the video encoder and the text encoder to ONNX, check them in onnxruntime, then publish them.

    Files in `out_dir`: `video_encoder.onnx` (input "frames" (B, T, 3, H, W) float32 -> "embedding" (B, D),
    L2-normalised), `text_encoder.onnx` (input "tokens" (N, context_length) int64 -> "embedding" (N, D)), both
    with a dynamic batch axis, and `export.json` (the manifest: what `OnnxVideoModel.load` needs, the files'
    SHA-256 and the agreement). Everything is written to a temporary folder inside `out_dir` first; only an export
    that agrees with eager (`verify_runtime` on batch + 1 probe clips, a batch size the export never saw, so the
    dynamic axis is exercised) is moved into place, the manifest last. A failed check raises AgreementError and
    leaves `out_dir` as it was.

    Args:
        model: an ActionCLIP or ViFi-CLIP model.
        out_dir: the export folder (created).
        num_frames: frames per clip of the video graph (default the model's).
        image_size: frame side or (H, W) (default the model's image encoder's).
        batch: the example batch traced.
        labels: label texts of the agreement check's prompts and zero-shot top-1.
        opset: ONNX opset.
        tolerance: see `Tolerance`.
        providers: onnxruntime providers of the check (default `default_providers()`).

    Returns:
        the manifest dict, plus "directory".
    """
    import onnx
    import open_clip

    model = _check_exportable(model).eval()
    num_frames = model.num_frames if num_frames is None else int(num_frames)
    if num_frames < 1 or batch < 1:
        raise ValueError(f"num_frames={num_frames}, batch={batch}: both must be >= 1")
    hw = _image_size(model, image_size)
    tokenizer = model.tokenizer
    if not isinstance(tokenizer, open_clip.SimpleTokenizer):
        raise ValueError(f"{type(tokenizer).__name__}: the ONNX runner re-creates CLIP's BPE tokenizer "
                         "(open_clip.SimpleTokenizer); other tokenizers are not supported")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = model.logit_scale.device
    reference = EagerVideoModel(model, image_size=hw)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    steps = tqdm(total=3, desc="ONNX export", disable=not progress, leave=False)
    try:
        started = time.perf_counter()
        frames = probe_frames(batch, num_frames, hw, seed, device)
        prompts = format_prompts(check_label_list(labels), model.templates)
        tokens = reference.tokenize((prompts * batch)[:batch]).to(device)
        _onnx_export(_VideoGraph(model), frames, tmp / VIDEO_FILE, "frames", opset)
        steps.update(1)
        _onnx_export(_TextGraph(model), tokens, tmp / TEXT_FILE, "tokens", opset)
        steps.update(1)
        for name in (VIDEO_FILE, TEXT_FILE):
            onnx.checker.check_model(str(tmp / name))
        export_s = time.perf_counter() - started
        meta = {
            "version": EXPORT_VERSION,
            "model": dict(getattr(model, "config", {}) or {"name": type(model).__name__}),
            "num_frames": num_frames,
            "image_size": list(hw),
            "embed_dim": model.embed_dim,
            "templates": list(model.templates),
            "eval_logit_scale": model.eval_logit_scale,
            "context_length": int(tokenizer.context_length),
            "params_total": sum(p.numel() for p in model.parameters()),
            "opset": opset,
            "torch": torch.__version__,
            "export_s": round(export_s, 3),
        }
        candidate = OnnxVideoModel(tmp / VIDEO_FILE, tmp / TEXT_FILE, meta, providers=providers)
        check = probe_frames(batch + 1, num_frames, hw, seed + 1, device)
        agreement = verify_runtime(reference, candidate, check, labels, tolerance)
        steps.update(1)
        meta.update(agreement=agreement, providers=candidate.providers,
                    files={name: {"path": file, "sha256": file_sha256(tmp / file), "bytes": (tmp / file).stat().st_size}
                           for name, file in (("video", VIDEO_FILE), ("text", TEXT_FILE))})
        (out_dir / MANIFEST_FILE).unlink(missing_ok=True)  # a crash from here on leaves no manifest, not a stale one
        for name in (VIDEO_FILE, TEXT_FILE):
            os.replace(tmp / name, out_dir / name)
        atomic_write_json(out_dir / MANIFEST_FILE, meta)
    finally:
        steps.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {**meta, "directory": str(out_dir)}


# --------------------------------------------------------------------------------------------- side by side
def runtime_table(model: VideoCLIP, runtimes: Sequence[str] = RUNTIMES, *, out_dir: str | os.PathLike | None = None,
                  batches: Sequence[int] = (1, 8), compile_mode: str = "default",
                  warmup: int = 2, iters: int = 10, rounds: int = 1, device: str | torch.device = "cpu",
                  tolerance: Tolerance = Tolerance(), labels: Sequence[str] = PROBE_LABELS, name: str | None = None,
                  progress: bool = True):
    """Build the requested runtimes of one model and time their video encoders side by side with eager.

    Clips have the model's `num_frames`. Eager is always the first row (the speed-up reference); "compile" comes
    from `compile_model`, "onnx" from `export_onnx` into `out_dir` (a temporary folder, deleted afterwards, when
    None) loaded as OnnxVideoModel. Every runtime passed its agreement check before it is timed. The batches share
    one `profiler.sweep`, so the ratios compare measurements taken in the same run; a second batch size makes
    torch.compile recompile during the warm-up calls (untimed), which is why `warmup` must be >= 1 with "compile".

    Returns:
        the sweep's DataFrame (`runtime` column; `speedup_vs_first`: eager's time over this runtime's, the median
        of per-round ratios) with `sweep`'s attrs and "agreement" (runtime -> verify_runtime result), "compile"
        (mode, backend, compile seconds, runtime actually used, fallback reason) and "export" (the ONNX manifest).
    """
    from actiondistill.profiler import resolve_device, sweep

    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ValueError(f"runtimes: {unknown} unknown; expected some of {list(RUNTIMES)}")
    if "compile" in runtimes and warmup < 1:
        raise ValueError(f"warmup={warmup}: torch.compile recompiles on a new batch size during warm-up; use >= 1")
    dev = resolve_device(device)
    model = _check_exportable(model).eval().to(dev)
    label = name or getattr(model, "config", {}).get("name", type(model).__name__)
    built: dict[str, RuntimeVideoModel] = {"eager": EagerVideoModel(model)}
    attrs: dict[str, Any] = {"agreement": {}, "compile": None, "export": None}
    with tempfile.TemporaryDirectory(prefix="actiondistill-export-") as scratch:
        if "onnx" in runtimes:
            providers = default_providers() if dev.type == "cuda" else ["CPUExecutionProvider"]
            if dev.type == "cuda" and "CUDAExecutionProvider" not in providers:
                raise RuntimeError("device='cuda' but this onnxruntime has no CUDAExecutionProvider (install "
                                   "onnxruntime-gpu), so ONNX would run on the CPU beside eager on the GPU; time the "
                                   "ONNX runtime with device='cpu', or leave it out")
            manifest = export_onnx(model, out_dir if out_dir is not None else scratch, tolerance=tolerance,
                                   labels=labels, providers=providers, progress=progress)
            built["onnx"] = OnnxVideoModel.load(manifest["directory"], providers=providers)
            attrs["export"] = manifest
            attrs["agreement"]["onnx"] = manifest["agreement"]
        if "compile" in runtimes:
            compiled = compile_model(model, compile_mode, batch=batches[0], tolerance=tolerance, labels=labels,
                                     progress=progress)
            built["compile"] = compiled
            attrs["compile"] = {"mode": compile_mode, "backend": "inductor", "runtime": compiled.runtime,
                                "fallback_reason": compiled.fallback_reason, "compile_s": compiled.compile_s}
            if compiled.agreement is not None:
                attrs["agreement"]["compile"] = compiled.agreement
        order = [r for r in RUNTIMES if r in built]
        # a fallen-back compile row is timed too, labelled as what actually ran
        labels_of = {r: r if built[r].runtime == r else f"{built[r].runtime} ({r} fallback)" for r in order}
        table = sweep({r: built[r] for r in order}, frames=(model.num_frames,), batches=batches,
                      image_size=built["eager"].image_size, device=dev, warmup=warmup, iters=iters, rounds=rounds,
                      method="encode_video", backbone="model.backbone.visual", runtimes=labels_of,
                      progress=progress)
    table["model"] = label
    table.attrs.update(attrs)
    return table


# --------------------------------------------------------------------------------------------- per-frame runtimes
#: Runtimes of the image encoder that streaming runs once per frame (`frame_runtime`).
FRAME_RUNTIMES = ("eager", "compile", "onnx", "onnx-int8", "bf16", "bf16-compile")
FRAME_FILE = "image_encoder.onnx"
FRAME_MANIFEST = "frame_export.json"
FRAME_EXPORT_VERSION = 1
#: onnxruntime.quantization.quantize_dynamic's options for "onnx-int8": int8 weights per output channel (as
#: accurate as per tensor here, at the same speed), activations quantized per call from their own range.
INT8_OPTIONS = {"weight_type": "QInt8", "per_channel": True}
#: How far each runtime may drift from eager fp32 before it is refused (`check_frame_runtime`). The fp32 runtimes
#: differ from eager by float rounding only and get the export's limits. int8 weights and bf16 arithmetic keep
#: about three significant digits, so they are held to what a user sees: the cosine of the frame embeddings and the
#: top-1 of the window predictions (a max_abs_diff of 2, the largest possible between unit vectors, sets no limit).
FRAME_TOLERANCES: dict[str, Tolerance] = {
    "compile": Tolerance(),
    "onnx": Tolerance(),
    "onnx-int8": Tolerance(max_abs_diff=2.0, min_cosine=0.99, min_top1_agreement=0.9),
    "bf16": Tolerance(max_abs_diff=2.0, min_cosine=0.99, min_top1_agreement=0.9),
    "bf16-compile": Tolerance(max_abs_diff=2.0, min_cosine=0.99, min_top1_agreement=0.9),
}


@dataclasses.dataclass
class FrameRuntime:
    """The image encoder streaming runs once per frame, on one runtime: (N, 3, H, W) CLIP-normalised frames ->
    (N, D) raw embeddings, what `VideoCLIP.encode_frames` computes for each frame.

    `runtime` is what runs ("eager" when torch.compile failed and was fallen back from, `fallback_reason` saying
    why), `requested` what was asked for, `agreement` the check against eager fp32 (`check_frame_runtime`; None for
    eager itself) and `cache` where an ONNX file came from (`cached_frame_onnx`). `fuse` is the temporal head on the
    same runtime ((B, T, D) -> (B, D), `head` saying how it runs) where that is faster than the model's own fp32
    `fuse_frames`, else None.
    """

    runtime: str
    encode: Callable[[torch.Tensor], torch.Tensor]
    image_size: tuple[int, int]
    requested: str = ""
    fuse: Callable[[torch.Tensor], torch.Tensor] | None = None
    head: str = "fp32"
    agreement: dict[str, Any] | None = None
    cache: dict[str, Any] | None = None
    build_s: float = 0.0
    fallback_reason: str | None = None

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.encode(frames).float()

    def summary(self) -> dict[str, Any]:
        """What a result records about the runtime (JSON-able)."""
        cache = None if self.cache is None else {k: v for k, v in self.cache.items() if k != "options"}
        return {"runtime": self.runtime, "requested": self.requested or self.runtime, "head": self.head,
                "image_size": list(self.image_size), "build_s": round(self.build_s, 3),
                "fallback_reason": self.fallback_reason, "agreement": self.agreement, "cache": cache}


class OnnxFrameEncoder:
    """An image-encoder ONNX file in onnxruntime. Its sessions follow torch's thread count (one per count, opened on
    first use), so `--threads` and the stream's start-up thread test set onnxruntime's threads as they set eager's."""

    def __init__(self, path: str | os.PathLike, providers: Sequence[str] = ("CPUExecutionProvider",)):
        self.path, self.providers = Path(path), list(providers)
        self._sessions: dict[int, Any] = {}

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        if threads not in self._sessions:
            self._sessions[threads] = _ort_session(self.path, threads, self.providers, "image encoder")
        array = frames.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self._sessions[threads].run(None, {"frames": array})[0]).to(frames.device)


class _FrameGraph(nn.Module):
    """What the image-encoder ONNX graph computes: frames (N, 3, H, W) -> raw CLIP image embeddings (N, D)."""

    def __init__(self, model: VideoCLIP):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.backbone.encode_image(frames)


def frame_cache_dir() -> Path:
    """Where exported and quantized image encoders are kept: the project's data folder (`ACTIONDISTILL_DATA`)."""
    from actiondistill.paths import data_dir

    return data_dir() / "cache" / "runtimes"


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, dtypes, shapes, bytes): the weights an export was made
    from, whether they came from a file, a tag or a seed, and blind to parts of a checkpoint it does not contain."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().view(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def frame_export_options(runtime: str, image_size: tuple[int, int], weights: str, opset: int) -> dict[str, Any]:
    """Everything an ONNX image encoder depends on; its cache key is their digest, so any change makes a new file."""
    import onnxruntime as ort

    if runtime not in ("onnx", "onnx-int8"):
        raise ValueError(f"runtime {runtime!r}: only 'onnx' and 'onnx-int8' are exported to files")
    options = {"version": FRAME_EXPORT_VERSION, "runtime": runtime, "image_size": list(image_size), "opset": opset,
               "weights_sha256": weights, "torch": torch.__version__, "onnxruntime": ort.__version__}
    if runtime == "onnx-int8":
        options["quantization"] = dict(INT8_OPTIONS)
    return options


def frame_cache_key(options: Mapping[str, Any]) -> str:
    """The cache folder's name for `frame_export_options`: the runtime and a digest of every option."""
    digest = hashlib.sha256(json.dumps(dict(options), sort_keys=True).encode()).hexdigest()
    return f"{options['runtime']}-{digest[:24]}"


def cached_frame_onnx(model: VideoCLIP, runtime: str, image_size: int | Sequence[int] | None = None, *,
                      opset: int = 17, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ONNX image encoder of `runtime` ("onnx" or "onnx-int8") for `model`: from the cache when one was made
    from the same weights with the same options, else exported (and quantized) now and published atomically (a
    temporary folder renamed into place, so an interrupted export never looks complete).

    Returns {"path", "key", "directory", "reused", "build_s", "options"}; a cached file whose SHA-256 no longer
    matches its manifest is made again.
    """
    hw = _image_size(model, image_size)
    root = Path(cache_dir) if cache_dir is not None else frame_cache_dir()
    return _cached_onnx(model, runtime, hw, weights_sha256(model.backbone.visual), opset, root)


def _cached_onnx(model: VideoCLIP, runtime: str, hw: tuple[int, int], weights: str, opset: int,
                 root: Path) -> dict[str, Any]:
    options = frame_export_options(runtime, hw, weights, opset)
    key = frame_cache_key(options)
    folder = root / key
    found = _read_cached(folder, options)
    if found is not None:
        return found
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        target = tmp / FRAME_FILE
        if runtime == "onnx":
            example = torch.zeros(2, 3, *hw, device=model.logit_scale.device)
            _onnx_export(_FrameGraph(model), example, target, "frames", opset)
        else:
            _quantize(Path(_cached_onnx(model, "onnx", hw, weights, opset, root)["path"]), target)
        manifest = {"options": options, "file": FRAME_FILE, "sha256": file_sha256(target),
                    "bytes": target.stat().st_size, "build_s": round(time.perf_counter() - started, 3)}
        atomic_write_json(tmp / FRAME_MANIFEST, manifest)
        shutil.rmtree(folder, ignore_errors=True)  # a damaged entry of the same key
        try:
            os.replace(tmp, folder)
        except OSError:  # another process published the same key meanwhile: theirs is as good
            if _read_cached(folder, options) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"path": str(folder / FRAME_FILE), "key": key, "directory": str(folder), "reused": False,
            "build_s": manifest["build_s"], "options": options}


def _read_cached(folder: Path, options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cache entry in `folder` when it is complete and intact, else None (a damaged one is logged)."""
    manifest_path = folder / FRAME_MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = read_json(manifest_path)
    path = folder / manifest.get("file", FRAME_FILE)
    if manifest.get("options") != dict(options) or not path.is_file() or file_sha256(path) != manifest.get("sha256"):
        log.warning("%s: damaged or foreign cache entry, making it again", folder)
        return None
    return {"path": str(path), "key": folder.name, "directory": str(folder), "reused": True,
            "build_s": manifest.get("build_s"), "options": dict(options)}


class _QuietPreprocessingAdvice(logging.Filter):
    """quantize_dynamic advises pre-processing on the root logger; its shape inference fails on open_clip's ViTs
    (a Reshape of symbolic rank), and quantizing without it agrees with eager to a cosine of 0.9999."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def _quantize(source: Path, target: Path) -> None:
    """int8 dynamic quantization of an fp32 ONNX file (INT8_OPTIONS)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _QuietPreprocessingAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType[INT8_OPTIONS["weight_type"]],
                         per_channel=INT8_OPTIONS["per_channel"])
    finally:
        logging.getLogger().removeFilter(quiet)


def _bf16_encoder(model: VideoCLIP) -> Callable[[torch.Tensor], torch.Tensor]:
    """A bf16 copy of the image encoder (the model keeps its fp32 weights): on CPUs with AVX512-BF16 or AMX its
    matrix products run on bf16 units, and weights cast once beat autocast, which casts them on every call."""
    import copy

    visual = copy.deepcopy(model.backbone.visual).to(torch.bfloat16).eval()

    def encode(frames: torch.Tensor) -> torch.Tensor:
        return visual(frames.to(torch.bfloat16)).float()

    return encode


def _bf16_head(model: VideoCLIP) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A bf16 copy of the model's temporal head ((B, T, D) -> (B, D) `fuse_frames`), None when it has no weights.

    Streaming runs the head once per frame on a single window, so it reads all its weights to do little arithmetic:
    memory-bound, as the 224 px students' 6.3M-parameter fusion transformer is (3.7 ms per frame in fp32 at one
    thread, 2.8 in bf16, 1.7 compiled with frozen weights). A parameter-free head (mean pooling) gains nothing and
    would only lose digits.
    """
    import copy

    # everything but the image and text towers (the backbone) and the text cache: the head and its settings
    head = copy.deepcopy(model, memo={id(model.backbone): None, id(getattr(model, "_text_cache", None)): {}})
    if not any(p.numel() > 1 for p in head.parameters()):
        return None
    head = head.to(torch.bfloat16).eval()

    def fuse(frame_embeddings: torch.Tensor) -> torch.Tensor:
        return head.fuse_frames(frame_embeddings.to(torch.bfloat16)).float()

    return fuse


#: Compiled variants dynamo keeps per code object before it silently runs eager. The encoders of every model and
#: thread count a session builds share one code object (`encode_image`, or `_bf16_encoder`'s `encode`): the book's
#: runtime table alone needs more than dynamo's default of 8.
RECOMPILE_LIMIT = 64


def inductor_cache_dir() -> Path:
    """Where inductor keeps its compiled kernels: under data/ (cache/inductor) unless TORCHINDUCTOR_CACHE_DIR names
    another folder than inductor's default (which importing inductor writes into the variable), so a second start
    with the same encoder and options loads them instead of building them again in C++ (a third of a start's
    30-45 s here) and moving data/ moves them too."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from actiondistill.paths import data_dir

    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if given and os.path.abspath(given) != os.path.abspath(default_cache_dir()):
        return Path(given)
    return data_dir() / "cache" / "inductor"


def _compiled(encode: Callable[[torch.Tensor], torch.Tensor], probe: torch.Tensor, freezing: bool = False,
              what: str = "image encoder") -> tuple[Callable[[torch.Tensor], torch.Tensor], str | None]:
    """torch.compile of a per-frame function, the image encoder or the temporal head (`what`), compiled now on
    `probe` (one frame, or one window: batch 1, as streamed); when compilation fails (and eager does not), the
    uncompiled function and the reason, as `compile_model` falls back.

    `freezing`: inductor treats the weights as constants, folding them and packing them once for oneDNN's matrix
    kernels; on this project's CPU that made the bf16 encoder 10-15% faster, where plain compilation gained 3%. Every
    call runs under the settings (`freezing`, `RECOMPILE_LIMIT`), since torch.compile recompiles when the thread
    count changes. Kernels are cached in `inductor_cache_dir()`.
    """
    from torch._dynamo import config as dynamo_config
    from torch._inductor import config as inductor_config

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(inductor_cache_dir())
    compiled = torch.compile(encode)
    # made once, entered on every frame: the settings must hold whenever dynamo may recompile
    recompiles = dynamo_config.patch(recompile_limit=max(dynamo_config.recompile_limit, RECOMPILE_LIMIT))
    frozen = inductor_config.patch(freezing=True) if freezing else contextlib.nullcontext()

    def call(frames: torch.Tensor) -> torch.Tensor:
        with recompiles, frozen:
            return compiled(frames)

    try:
        with torch.inference_mode():
            call(probe)
    except Exception as err:  # compilation failures come as many types (backend, C++ build, lowering)
        with torch.inference_mode():
            encode(probe)  # an error of the model itself is raised as such, not hidden as a fallback
        reason = f"{what}: {type(err).__name__}: {' '.join(str(err).split())[:400]}"
        log.warning("torch.compile unusable here, running eager PyTorch instead: %s", reason)
        return encode, reason
    return call, None


def probe_stream(image_size: tuple[int, int], clip_frames: int, clips: int = 4, seed: int = 0) -> torch.Tensor:
    """`clips` clips of the synthetic world, `clip_frames` each, rendered at the image size, joined and
    CLIP-normalised: (clips * clip_frames, 3, H, W). Rendered scenes rather than noise, so that a quantized encoder
    is probed on the kind of image it will see."""
    import numpy as np

    from actiondistill.data.synthetic import render_clip, sample_spec
    from actiondistill.data.transforms import eval_transform

    frames = np.concatenate([render_clip(sample_spec(seed + k), size=max(image_size), frames=clip_frames)
                             for k in range(clips)])
    return eval_transform(image_size)(frames)


def _given(tensor: torch.Tensor) -> Callable[[Any], torch.Tensor]:
    return lambda _: tensor


def check_frame_runtime(reference: Callable[[torch.Tensor], torch.Tensor],
                        candidate: Callable[[torch.Tensor], torch.Tensor], model: VideoCLIP, frames: torch.Tensor,
                        window: int, labels: Sequence[str] = PROBE_LABELS, templates: Sequence[str] | None = None,
                        tolerance: Tolerance = Tolerance(), *, runtime: str = "candidate",
                        candidate_fuse: Callable[[torch.Tensor], torch.Tensor] | None = None,
                        raise_error: bool = True) -> dict[str, Any]:
    """Compare a frame encoder (and its temporal head, `candidate_fuse`) with eager fp32 where streaming uses it.

    The candidate encodes each of `frames` alone (batch 1, as streamed); `check_agreement` then compares the frame
    embeddings (cosine, largest difference once normalised) and the predictions of every sliding window of
    `window` frames against the text of `labels` (zero-shot top-1): the reference's windows through the model's
    fp32 temporal head, the candidate's through `candidate_fuse` one window at a time where given, else the same.

    Returns {"runtime", "frames", "windows", "frame_min_cosine", "frame_mean_cosine", "frame_max_abs_diff",
    "top1_agreement", "max_logit_diff", "tolerance", "failures", "ok"}; with `raise_error`, an AgreementError in one
    line naming the runtime, each measured value and its threshold.
    """
    if not 1 <= window <= len(frames):
        raise ValueError(f"window={window}: expected 1 to the {len(frames)} probe frames")
    with torch.inference_mode():
        ref = reference(frames).float()
        cand = torch.cat([candidate(frame[None]) for frame in frames]).float()
        windows = [e.unfold(0, window, 1).permute(0, 2, 1) for e in (ref, cand)]
        videos = [model.fuse_frames(windows[0]),
                  model.fuse_frames(windows[1]) if candidate_fuse is None
                  else torch.cat([candidate_fuse(w[None]) for w in windows[1]]).float()]
        text = model.text_templates(check_label_list(labels), templates).mean(dim=0)
    frame_limits = dataclasses.replace(tolerance, min_top1_agreement=0.0)
    frame = check_agreement(_given(ref), _given(cand), None, tolerance=frame_limits)
    top1_limits = Tolerance(max_abs_diff=2.0, min_cosine=-1.0, min_top1_agreement=tolerance.min_top1_agreement)
    video = check_agreement(_given(videos[0]), _given(videos[1]), None, text=text, scale=model.eval_logit_scale,
                            tolerance=top1_limits)
    failures = ([f"frame embeddings: {f}" for f in frame["failures"]]
                + [f"window predictions: {f}" for f in video["failures"]])
    result = {"runtime": runtime, "frames": len(frames), "windows": int(videos[0].shape[0]),
              "frame_min_cosine": frame["min_cosine"],
              "frame_mean_cosine": float(F.cosine_similarity(ref, cand, dim=-1).mean()),
              "frame_max_abs_diff": frame["max_abs_diff"], "top1_agreement": video["top1_agreement"],
              "max_logit_diff": video["max_logit_diff"], "tolerance": dataclasses.asdict(tolerance),
              "failures": failures, "ok": not failures}
    if failures and raise_error:
        raise AgreementError(f"runtime {runtime!r} refused: {'; '.join(failures)} (against eager fp32 on "
                             f"{result['frames']} probe frames and {result['windows']} windows of {window})")
    return result


def frame_runtime(model: VideoCLIP, runtime: str = "eager", *, labels: Sequence[str] = PROBE_LABELS,
                  templates: Sequence[str] | None = None, num_frames: int | None = None,
                  image_size: int | Sequence[int] | None = None, tolerance: Tolerance | None = None,
                  cache_dir: str | os.PathLike | None = None, opset: int = 17, probe_clips: int = 4, seed: int = 0,
                  raise_error: bool = True) -> FrameRuntime:
    """The model's per-frame image encoder on `runtime`, checked against eager fp32 before it is used.

    "compile" is torch.compile (inductor; eager with a warning where it cannot compile), "onnx" the exported graph
    in onnxruntime, "onnx-int8" that graph with int8 dynamic quantization, "bf16" a bf16 copy of the encoder and
    "bf16-compile" that copy through torch.compile with frozen weights (the bf16 copy, uncompiled, where it cannot
    compile). The bf16 runtimes bring a bf16 copy of the temporal head too (`_bf16_head`; compiled with frozen
    weights for "bf16-compile"), which the agreement check includes.
    ONNX files come from the cache (`cached_frame_onnx`), so a second start skips the export. Every runtime but
    eager is compared with eager fp32 on `probe_clips` rendered clips of `num_frames` frames (default the model's)
    with `labels` (`check_frame_runtime`, limits `tolerance`, default FRAME_TOLERANCES[runtime]) and refused with
    an AgreementError when it drifts further (with `raise_error`; else the failed check is recorded and logged).
    """
    if runtime not in FRAME_RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: expected one of {', '.join(FRAME_RUNTIMES)}")
    model = model.eval()
    hw = _image_size(model, image_size)
    eager = model.backbone.encode_image
    built = FrameRuntime(runtime, eager, hw, requested=runtime)
    if runtime == "eager":
        return built
    device = model.logit_scale.device
    if runtime.startswith("onnx") and device.type != "cpu":
        raise ValueError(f"runtime {runtime!r}: onnxruntime runs on the CPU here, but the model is on {device}; "
                         "use the CPU, or runtime eager, compile or bf16")
    started = time.perf_counter()
    window = model.num_frames if num_frames is None else int(num_frames)
    frames = probe_stream(hw, window, probe_clips, seed).to(device)
    if runtime == "compile":
        built.encode, built.fallback_reason = _compiled(eager, frames[:1])
        built.runtime = "eager" if built.fallback_reason else "compile"
    elif runtime.startswith("bf16"):
        built.encode = _bf16_encoder(model)
        if runtime == "bf16-compile":
            built.encode, built.fallback_reason = _compiled(built.encode, frames[:1], freezing=True)
            built.runtime = "bf16" if built.fallback_reason else "bf16-compile"
        built.fuse = _bf16_head(model)
        if built.fuse is not None:
            built.head = "bf16"
            if built.runtime == "bf16-compile":
                window_probe = torch.zeros(1, window, model.embed_dim, device=device)
                built.fuse, head_failed = _compiled(built.fuse, window_probe, freezing=True, what="temporal head")
                built.head = "bf16" if head_failed else "bf16-compile"
    else:
        built.cache = cached_frame_onnx(model, runtime, hw, opset=opset, cache_dir=cache_dir)
        built.encode = OnnxFrameEncoder(built.cache["path"])
    if built.fallback_reason is None:
        built.agreement = check_frame_runtime(eager, built, model, frames, window, labels, templates,
                                              tolerance or FRAME_TOLERANCES[runtime], runtime=runtime,
                                              candidate_fuse=built.fuse, raise_error=raise_error)
        if not built.agreement["ok"]:
            log.warning("runtime %r disagrees with eager fp32: %s", runtime, "; ".join(built.agreement["failures"]))
    built.build_s = time.perf_counter() - started
    return built
