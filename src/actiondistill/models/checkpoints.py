"""Reading and writing weight files in the formats CLIP weights are published in.

Supported inputs, detected from the file itself (not its name, except `.safetensors`):
- `state_dict`: an open_clip / PyTorch state dict saved with `torch.save` (.pt, .pth, .bin);
- `tinyclip`: a TinyCLIP release checkpoint, `{"state_dict": {...}}` with a `module.` prefix on keys
  (any dict with a `state_dict` entry is unwrapped the same way; a `module.` prefix is always dropped);
- `openai-jit`: an OpenAI CLIP TorchScript archive; the state dict is read from the scripted module and
  its metadata entries (input_resolution, context_length, vocab_size) are dropped;
- `safetensors`: a `.safetensors` file.

Loading is strict by default and every missing, unexpected or wrongly shaped key is named in the error,
because a silently half-loaded backbone is the most expensive bug in this project.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from actiondistill.io import atomic_save

OPENAI_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")
_MAX_NAMED = 20


class CheckpointMismatchError(ValueError):
    """The weights do not fit the model; the message lists the offending keys by name."""


@dataclass
class LoadReport:
    """What a load did: the format read and the keys that did not fit (empty lists after a strict load)."""

    path: str
    format: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def checkpoint_format(path: str | os.PathLike) -> str:
    """Name the format of a weight file: 'safetensors', 'openai-jit', 'tinyclip' or 'state_dict'."""
    path = _existing(path)
    if path.suffix == ".safetensors":
        return "safetensors"
    if _is_torchscript(path):
        return "openai-jit"
    raw = _torch_load(path)
    return "tinyclip" if _is_wrapped(raw) else "state_dict"


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read any supported weight file into a flat state dict; returns (state_dict, format name)."""
    path = _existing(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu")), "safetensors"
    if _is_torchscript(path):
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format OpenAI published
            warnings.simplefilter("ignore", FutureWarning)
            state_dict = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        for key in OPENAI_METADATA_KEYS:
            state_dict.pop(key, None)
        return state_dict, "openai-jit"
    raw = _torch_load(path)
    fmt = "trainer" if _is_trainer(raw) else "tinyclip" if _is_wrapped(raw) else "state_dict"
    state_dict = model_state(raw)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (or a dict with a 'model' or 'state_dict' "
                         "entry)")
    return state_dict, fmt


def model_state(raw: Mapping) -> dict[str, torch.Tensor]:
    """The model's state dict inside a Trainer checkpoint (its "model"), a `{"state_dict": ...}` wrapper (TinyCLIP's)
    or a bare state dict; a DistributedDataParallel "module." prefix is removed."""
    for key in ("model", "state_dict"):
        if isinstance(raw, Mapping) and isinstance(raw.get(key), Mapping):
            raw = raw[key]
            break
    return {_strip_module(k): v for k, v in raw.items()} if isinstance(raw, Mapping) else raw


def load_weights(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    strict: bool = True,
    *,
    origin: str = "<state dict>",
    fmt: str = "state_dict",
) -> LoadReport:
    """Load a weight file (or a state dict) into `model`, naming every key that does not fit.

    Differences that are conventions rather than errors are absorbed: the model's non-persistent buffers
    (e.g. a scripted archive's attention mask), scalar vs 1-element logit scales, dtype (OpenAI archives
    are fp16), and a visual position-embedding grid of another size (interpolated, as open_clip does).
    With `strict=False` the keys that fit are loaded and the rest are only reported. `origin` and `fmt`
    describe an already read state dict in reports and errors (a file path fills them in itself).
    """
    if isinstance(source, Mapping):
        state_dict = {_strip_module(k): v for k, v in source.items()}
    else:
        state_dict, fmt = read_state_dict(source)
        origin = str(source)
    expected = model.state_dict()
    for buffer_name in _non_persistent_buffers(model):
        state_dict.pop(buffer_name, None)
    _adapt_conventions(state_dict, expected, model)

    report = LoadReport(path=origin, format=fmt, loaded=0)
    report.missing = sorted(k for k in expected if k not in state_dict)
    report.unexpected = sorted(k for k in state_dict if k not in expected)
    report.mismatched = {
        k: (tuple(v.shape), tuple(expected[k].shape))
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    }
    if strict and not report.ok:
        raise CheckpointMismatchError(_describe(report, type(model).__name__))
    fitting = {k: v for k, v in state_dict.items() if k in expected and k not in report.mismatched}
    model.load_state_dict(fitting, strict=False)
    report.loaded = len(fitting)
    return report


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the model's state dict atomically: safetensors for a `.safetensors` name, torch.save otherwise."""
    path = Path(path)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        return atomic_save(path, lambda tmp: save_file(state_dict, str(tmp)))
    return atomic_save(path, lambda tmp: torch.save(state_dict, tmp))


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    return path


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with compiled code; torch.save zips carry only data.pkl."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/__torch__/" in n for n in archive.namelist())


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        raise ValueError(
            f"{path}: could not be read as a PyTorch weight file with weights_only=True ({type(err).__name__}: "
            f"{err}). Expected an open_clip state dict, a TinyCLIP checkpoint, an OpenAI JIT archive or "
            ".safetensors; a checkpoint that pickles Python objects must be re-saved as a plain state dict."
        ) from err


def _is_wrapped(raw) -> bool:
    return isinstance(raw, Mapping) and "state_dict" in raw


def _is_trainer(raw) -> bool:
    return isinstance(raw, Mapping) and isinstance(raw.get("model"), Mapping)


def _strip_module(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def _non_persistent_buffers(model: nn.Module) -> set[str]:
    names = set()
    for prefix, module in model.named_modules():
        for buffer_name in module._non_persistent_buffers_set:
            names.add(f"{prefix}.{buffer_name}" if prefix else buffer_name)
    return names


def _adapt_conventions(state_dict: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor], model) -> None:
    for key in ("logit_scale", "logit_bias"):
        if key in state_dict and key in expected and state_dict[key].numel() == expected[key].numel() == 1:
            state_dict[key] = state_dict[key].reshape(expected[key].shape)
    key = "visual.positional_embedding"
    if key in state_dict and key in expected and _is_square_grid(state_dict[key]) and _is_square_grid(expected[key]):
        from open_clip.model import resize_pos_embed

        resize_pos_embed(state_dict, model)


def _is_square_grid(pos_embed: torch.Tensor) -> bool:
    """A class token plus a square patch grid: the only layout open_clip's resize handles."""
    side = round((pos_embed.shape[0] - 1) ** 0.5)
    return pos_embed.ndim == 2 and side * side + 1 == pos_embed.shape[0]


def _describe(report: LoadReport, model_name: str) -> str:
    lines = [f"{report.path} ({report.format}) does not fit {model_name}:"]
    if report.missing:
        lines.append(f"  missing keys ({len(report.missing)}): {_names(report.missing)}")
    if report.unexpected:
        lines.append(f"  unexpected keys ({len(report.unexpected)}): {_names(report.unexpected)}")
    if report.mismatched:
        shapes = [f"{k} {list(a)} in file vs {list(b)} in model" for k, (a, b) in sorted(report.mismatched.items())]
        lines.append(f"  shape mismatches ({len(shapes)}): {_names(shapes)}")
    lines.append("  (pass strict=False to load only the keys that fit)")
    return "\n".join(lines)


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_NAMED])
    return shown + (f", ... and {len(items) - _MAX_NAMED} more" if len(items) > _MAX_NAMED else "")
