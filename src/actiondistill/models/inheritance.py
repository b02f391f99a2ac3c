"""TinyCLIP-style manual weight inheritance: initialise a smaller CLIP from a larger one of the same family.

Depth: the student keeps teacher blocks at an even stride (block i takes teacher block
floor((i + 1/2) * L_t / L_s), so 12 -> 6 keeps every other block ending with the last one).
Width: every tensor keeps its leading slice along each dimension; the fused q/k/v projections are sliced
per projection, so the student keeps the teacher's first attention heads (exactly so when both use the
same head width). Position embeddings: a different patch grid is interpolated (bicubic, as open_clip
does for resolution changes); a shorter text context keeps the leading positions. The patch size, the
vocabulary and the tower types must match: nothing sensible can be sliced across those.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from open_clip import CLIP

from actiondistill.models.backbones import backbone_config, build_clip, create_backbone

_BLOCK = re.compile(r"^(visual\.transformer\.resblocks|transformer\.resblocks)\.(\d+)\.(.*)$")
_QKV = ("attn.in_proj_weight", "attn.in_proj_bias")


@dataclass
class InheritanceReport:
    """Which teacher blocks each tower kept and how every student tensor was obtained."""

    layer_map: dict[str, list[int]]
    copied: list[str] = field(default_factory=list)
    sliced: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    interpolated: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        maps = "; ".join(f"{tower} blocks {idx}" for tower, idx in self.layer_map.items())
        text = f"{len(self.copied)} tensors copied, {len(self.sliced)} sliced, {len(self.interpolated)} interpolated"
        return "; ".join([text, maps, *self.notes])


def layer_indices(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher blocks kept by a student of `student_layers` blocks (even stride, identity when equal)."""
    if not 0 < student_layers <= teacher_layers:
        raise ValueError(f"student depth {student_layers}: expected 1..{teacher_layers} (the teacher's depth)")
    return [math.floor((i + 0.5) * teacher_layers / student_layers) for i in range(student_layers)]


@torch.no_grad()
def inherit_weights(teacher: CLIP, student: CLIP) -> InheritanceReport:
    """Overwrite `student`'s weights with slices of `teacher`'s; returns what was done.

    Raises ValueError naming the tensor when the student is larger than the teacher along some
    dimension or has parameters the teacher lacks (a different family).
    """
    t_sd, s_sd = teacher.state_dict(), student.state_dict()
    layer_map = {
        "visual": layer_indices(_depth(t_sd, "visual.transformer"), _depth(s_sd, "visual.transformer")),
        "text": layer_indices(_depth(t_sd, "transformer"), _depth(s_sd, "transformer")),
    }
    report = InheritanceReport(layer_map=layer_map)
    _check_heads(teacher, student, report)
    new_sd = {}
    for key, target in s_sd.items():
        source_key = _teacher_key(key, layer_map)
        if source_key not in t_sd:
            raise ValueError(f"student tensor {key!r} has no teacher counterpart {source_key!r}: not the same family")
        source = t_sd[source_key]
        if key == "visual.conv1.weight" and source.shape[1:] != target.shape[1:]:
            raise ValueError(
                f"{key}: patch embedding {tuple(source.shape)} vs {tuple(target.shape)}; "
                "inheritance needs the same patch size and input channels"
            )
        if key == "token_embedding.weight" and source.shape[0] != target.shape[0]:
            raise ValueError(f"{key}: vocabulary {source.shape[0]} vs {target.shape[0]}; inheritance needs one vocab")
        if key == "visual.positional_embedding" and source.shape[0] != target.shape[0]:
            source = _resize_grid(source, target.shape[0], key)
            report.interpolated.append(key)
        if key.endswith(_QKV):
            value = _slice_qkv(source, target.shape, key)
        else:
            value = _leading_slice(source, target.shape, key)
        if value.shape == source.shape and key not in report.interpolated:
            report.copied.append(key)
        elif key not in report.interpolated:
            report.sliced[key] = (tuple(source.shape), tuple(target.shape))
        new_sd[key] = value.to(dtype=target.dtype)
    student.load_state_dict(new_sd, strict=True)
    return report


def make_inherited(teacher: CLIP, student: str | dict, **overrides) -> tuple[CLIP, InheritanceReport]:
    """Build a student from a backbone name or an open_clip config dict and inherit `teacher`'s weights.

    The student takes the teacher's activation: a teacher with QuickGELU (OpenAI's weights) gives a QuickGELU
    student unless `quick_gelu` is given, since inherited weights computed with one activation are wrong under the
    other.
    """
    from open_clip.transformer import QuickGELU

    device = next(teacher.parameters()).device
    if "quick_gelu" not in overrides and any(isinstance(m, QuickGELU) for m in teacher.modules()):
        overrides["quick_gelu"] = True
    if isinstance(student, str):
        model = create_backbone(student, device=device, **overrides)
    else:
        model = build_clip({**student, **overrides}, device)
    report = inherit_weights(teacher, model)
    return model.train(teacher.training), report


def intermediate_config(teacher: str | dict, student: str | dict, fraction: float) -> dict:
    """A config `fraction` of the way from teacher (0) to student (1), for TinyCLIP's progressive schedule.

    Widths move linearly and are rounded to whole heads; depths move linearly. TinyCLIP shrinks
    100% -> 75% -> 50% of the teacher: `intermediate_config(t, s, 0.5)` is the 75% stage when the
    student is the 50% model.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction}: expected a value in [0, 1]")
    t_cfg = backbone_config(teacher) if isinstance(teacher, str) else teacher
    s_cfg = backbone_config(student) if isinstance(student, str) else student
    out = {k: v for k, v in s_cfg.items() if k not in ("vision_cfg", "text_cfg")}
    vis_t, vis_s = t_cfg["vision_cfg"], s_cfg["vision_cfg"]
    head_width = vis_s.get("head_width", 64)
    out["vision_cfg"] = {
        **vis_s,
        "width": _lerp_multiple(vis_t["width"], vis_s["width"], fraction, head_width),
        "layers": round(_lerp(vis_t["layers"], vis_s["layers"], fraction)),
    }
    if "conv_stem" in t_cfg and "conv_stem" in s_cfg:
        out["conv_stem"] = [_lerp_multiple(a, b, fraction, 8)
                            for a, b in zip(t_cfg["conv_stem"], s_cfg["conv_stem"], strict=True)]
    txt_t, txt_s = t_cfg["text_cfg"], s_cfg["text_cfg"]
    text_head_width = txt_s["width"] // txt_s["heads"]
    text_width = _lerp_multiple(txt_t["width"], txt_s["width"], fraction, text_head_width)
    out["text_cfg"] = {
        **txt_s,
        "width": text_width,
        "heads": text_width // text_head_width,
        "layers": round(_lerp(txt_t["layers"], txt_s["layers"], fraction)),
    }
    return out


def _depth(state_dict: dict, prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}\.resblocks\.(\d+)\.")
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    if not indices:
        raise ValueError(f"no '{prefix}.resblocks' blocks: inheritance needs a ViT image tower and a text transformer")
    return max(indices) + 1


def _teacher_key(key: str, layer_map: dict[str, list[int]]) -> str:
    match = _BLOCK.match(key)
    if not match:
        return key
    tower = "visual" if match.group(1).startswith("visual") else "text"
    return f"{match.group(1)}.{layer_map[tower][int(match.group(2))]}.{match.group(3)}"


def _leading_slice(source: torch.Tensor, shape: torch.Size, key: str) -> torch.Tensor:
    if source.ndim != len(shape) or any(s < t for s, t in zip(source.shape, shape, strict=True)):
        raise ValueError(f"{key}: teacher {tuple(source.shape)} cannot be sliced to student {tuple(shape)}")
    return source[tuple(slice(0, n) for n in shape)].clone()


def _slice_qkv(source: torch.Tensor, shape: torch.Size, key: str) -> torch.Tensor:
    """Slice q, k and v separately: leading rows of each third keep the first heads of each projection."""
    if source.shape[0] % 3 or shape[0] % 3:
        raise ValueError(f"{key}: expected a fused q/k/v tensor, got {tuple(source.shape)} -> {tuple(shape)}")
    chunks = source.chunk(3, dim=0)
    part_shape = (shape[0] // 3, *shape[1:])
    return torch.cat([_leading_slice(c, torch.Size(part_shape), key) for c in chunks], dim=0)


def _resize_grid(pos: torch.Tensor, tokens: int, key: str) -> torch.Tensor:
    old_side, new_side = round(math.sqrt(pos.shape[0] - 1)), round(math.sqrt(tokens - 1))
    if old_side**2 + 1 != pos.shape[0] or new_side**2 + 1 != tokens:
        raise ValueError(f"{key}: only square patch grids plus a class token can be interpolated")
    grid = pos[1:].reshape(1, old_side, old_side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False)
    return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(new_side * new_side, -1)], dim=0)


def _check_heads(teacher: CLIP, student: CLIP, report: InheritanceReport) -> None:
    """Record when head widths differ: slices then still fit, but no longer map to whole teacher heads."""
    towers = {
        "visual": (teacher.visual.transformer, student.visual.transformer),
        "text": (teacher.transformer, student.transformer),
    }
    for tower, (t, s) in towers.items():
        t_attn, s_attn = t.resblocks[0].attn, s.resblocks[0].attn
        t_hd = t.width // t_attn.num_heads
        s_hd = s.width // s_attn.num_heads
        if t_hd != s_hd:
            report.notes.append(f"{tower}: head width {t_hd} -> {s_hd}, q/k/v slices do not align with whole heads")


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _lerp_multiple(a: int, b: int, t: float, multiple: int) -> int:
    return max(multiple, round(_lerp(a, b, t) / multiple) * multiple)
