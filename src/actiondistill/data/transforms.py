"""Clip transforms: uint8 frames (T, H, W, 3) in, float tensor (T, 3, H, W) out, CLIP-normalised.

Every transform works on the whole clip at once, so one draw of random parameters (crop box, flip, jitter
factors) applies to all frames: a clip keeps its temporal coherence. Randomness comes only from the
`torch.Generator` passed to the call (the dataset derives one per item), so training is reproducible.

Flipping swaps left and right, and with it the meaning of direction-dependent actions ("moving to the left"
in the synthetic world); hue jitter and grayscale alter colour, which is a predicted attribute there. Hence
`train_transform(..., flip=False, hue=0.0, grayscale_p=0.0)` are all possible, and the defaults keep hue small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
import torchvision.transforms.v2.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TSN_SCALES = (1.0, 0.875, 0.75, 0.66)

Size = int | tuple[int, int]


class ClipTransform(Protocol):
    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...


def to_clip_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames, as readers return them, to float32 (T, 3, H, W) in [0, 1].

    A float tensor is taken to be (T, 3, H, W) already, so composing transforms twice is harmless.
    """
    clip = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if clip.dtype == torch.uint8:
        if clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {tuple(clip.shape)}")
        return clip.permute(0, 3, 1, 2).float().div_(255.0)
    if not clip.is_floating_point() or clip.ndim != 4 or clip.shape[1] != 3:
        raise ValueError(f"expected uint8 (T, H, W, 3) or float (T, 3, H, W), got {clip.dtype} {tuple(clip.shape)}")
    return clip


def _pair(size: Size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise ValueError(f"size {size!r}: expected positive (height, width)")
    return int(h), int(w)


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(generator: torch.Generator | None, high: int) -> int:
    """A random integer in [0, high]."""
    return int(torch.randint(high + 1, (), generator=generator))


def _check_fits(clip: torch.Tensor, h: int, w: int, what: str) -> None:
    if clip.shape[-2] < h or clip.shape[-1] < w:
        raise ValueError(f"{what} of {h}x{w} does not fit in frames of {clip.shape[-2]}x{clip.shape[-1]}")


class Resize:
    """Scale so that the short side is `size` (aspect kept), or to exactly (height, width)."""

    def __init__(self, size: Size):
        self.size = [size] if isinstance(size, int) else list(_pair(size))

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.resize(clip, self.size, antialias=True)


class CenterCrop:
    def __init__(self, size: Size):
        self.size = _pair(size)

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_fits(clip, *self.size, "centre crop")
        return F.center_crop(clip, list(self.size))


class RandomCrop:
    def __init__(self, size: Size):
        self.size = _pair(size)

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = self.size
        _check_fits(clip, h, w, "random crop")
        top = _randint(generator, clip.shape[-2] - h)
        left = _randint(generator, clip.shape[-1] - w)
        return F.crop(clip, top, left, h, w)


class MultiScaleCrop:
    """TSN's multi-scale crop: a box whose height and width are each a scale of the short side (scales at most
    `max_distort` steps apart, so the aspect varies a little), at a random position, resized to `size`."""

    def __init__(self, size: Size, scales: Sequence[float] = TSN_SCALES, max_distort: int = 1):
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales {tuple(scales)!r}: expected fractions in (0, 1]")
        self.size, self.scales, self.max_distort = _pair(size), tuple(scales), max_distort

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        height, width = clip.shape[-2:]
        sides = [max(1, int(min(height, width) * s)) for s in self.scales]
        pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= self.max_distort]
        crop_h, crop_w = pairs[_randint(generator, len(pairs) - 1)]
        top = _randint(generator, height - crop_h)
        left = _randint(generator, width - crop_w)
        return F.resized_crop(clip, top, left, crop_h, crop_w, list(self.size), antialias=True)


class HorizontalFlip:
    """Mirror the clip with probability p (see the module docstring on direction-dependent classes)."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.horizontal_flip(clip) if _uniform(generator) < self.p else clip


class ColorJitter:
    """With probability p, scale brightness, contrast and saturation by factors in [1 - x, 1 + x] and shift hue
    by up to `hue` of a turn; one draw per clip, applied in a fixed order."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2, hue: float = 0.02,
                 p: float = 0.8):
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue {hue}: expected a fraction of a turn in [0, 0.5]")
        if min(brightness, contrast, saturation) < 0:
            raise ValueError(f"jitter strengths must be >= 0, got {(brightness, contrast, saturation)}")
        self.brightness, self.contrast, self.saturation, self.hue, self.p = brightness, contrast, saturation, hue, p

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if _uniform(generator) >= self.p:
            return clip
        factors = [_uniform(generator, 1 - x, 1 + x) for x in (self.brightness, self.contrast, self.saturation)]
        shift = _uniform(generator, -self.hue, self.hue)
        clip = F.adjust_brightness(clip, factors[0])
        clip = F.adjust_contrast(clip, factors[1])
        clip = F.adjust_saturation(clip, factors[2])
        return F.adjust_hue(clip, shift) if self.hue else clip


class RandomGrayscale:
    def __init__(self, p: float = 0.2):
        self.p = p

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.rgb_to_grayscale(clip, num_output_channels=3) if _uniform(generator) < self.p else clip


class Normalize:
    def __init__(self, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD):
        self.mean, self.std = list(mean), list(std)

    def __call__(self, clip: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.normalize(clip, self.mean, self.std)


class Compose:
    """Apply transforms in order to a clip converted by `to_clip_tensor`, sharing one generator."""

    def __init__(self, transforms: Sequence[ClipTransform]):
        self.transforms = list(transforms)

    def __call__(self, frames: np.ndarray | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        clip = to_clip_tensor(frames)
        for transform in self.transforms:
            clip = transform(clip, generator)
        return clip

    def __repr__(self) -> str:
        return f"Compose([{', '.join(type(t).__name__ for t in self.transforms)}])"


def train_transform(size: Size, *, scales: Sequence[float] = TSN_SCALES, flip: bool = True, brightness: float = 0.2,
                    contrast: float = 0.2, saturation: float = 0.2, hue: float = 0.02, jitter_p: float = 0.8,
                    grayscale_p: float = 0.2) -> Compose:
    """ActionCLIP's training augmentation: multi-scale crop, flip, colour jitter, grayscale, CLIP normalisation.

    Pass flip=False for direction-dependent classes, and hue=0 / grayscale_p=0 where colour is a label.
    """
    steps: list[ClipTransform] = [MultiScaleCrop(size, scales)]
    if flip:
        steps.append(HorizontalFlip())
    if jitter_p > 0:
        steps.append(ColorJitter(brightness, contrast, saturation, hue, jitter_p))
    if grayscale_p > 0:
        steps.append(RandomGrayscale(grayscale_p))
    steps.append(Normalize())
    return Compose(steps)


def eval_transform(size: Size, resize: int | None = None) -> Compose:
    """CLIP's test preprocessing: short side to `resize` (default: the crop size), centre crop, normalise."""
    short = resize if resize is not None else min(_pair(size))
    return Compose([Resize(short), CenterCrop(size), Normalize()])
