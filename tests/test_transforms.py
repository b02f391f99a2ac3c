"""Clip transforms: shapes, one set of random parameters per clip, reproducibility, CLIP normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actiondistill.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    CenterCrop,
    ColorJitter,
    Compose,
    HorizontalFlip,
    MultiScaleCrop,
    RandomCrop,
    RandomGrayscale,
    Resize,
    eval_transform,
    to_clip_tensor,
    train_transform,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_frames(t: int = 4, h: int = 40, w: int = 60, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_to_clip_tensor_layout_and_range() -> None:
    frames = random_frames()
    clip = to_clip_tensor(frames)
    assert clip.shape == (4, 3, 40, 60) and clip.dtype == torch.float32
    assert torch.allclose(clip[2, 1], torch.from_numpy(frames[2, :, :, 1]).float() / 255)
    assert to_clip_tensor(clip) is clip
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        to_clip_tensor(np.zeros((4, 40, 60), np.uint8))
    with pytest.raises(ValueError, match="float"):
        to_clip_tensor(torch.zeros(4, 40, 60, 3))


@pytest.mark.parametrize("seed", range(8))
def test_train_transform_draws_one_set_of_parameters_per_clip(seed: int) -> None:
    # Identical frames in, identical frames out: crop box, flip, jitter and grayscale are shared by the clip.
    frames = np.repeat(random_frames(1, seed=seed), 6, axis=0)
    out = train_transform(32, hue=0.1, grayscale_p=0.5)(frames, gen(seed))
    assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
    assert all(torch.equal(out[0], out[t]) for t in range(1, 6))


def test_train_transform_is_reproducible_and_random() -> None:
    frames = random_frames()
    transform = train_transform(32)
    assert torch.equal(transform(frames, gen(3)), transform(frames, gen(3)))
    outputs = {transform(frames, gen(s)).sum().item() for s in range(10)}
    assert len(outputs) > 5


def test_eval_transform_is_a_deterministic_centre_crop() -> None:
    frames = random_frames(2, 40, 60)
    out = eval_transform(40)(frames, gen(0))
    assert torch.equal(out, eval_transform(40)(frames, gen(1)))
    expected = (to_clip_tensor(frames)[:, :, :, 10:50] - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(
        CLIP_STD)[:, None, None]
    assert torch.allclose(out, expected, atol=1e-6)  # short side already 40: no resize, just the centre
    assert eval_transform(24, resize=32)(frames).shape == (2, 3, 24, 24)


def test_normalise_uses_clip_statistics() -> None:
    mean_colour = np.round(np.array(CLIP_MEAN) * 255).astype(np.uint8)
    frames = np.broadcast_to(mean_colour, (2, 8, 8, 3)).copy()
    out = eval_transform(8)(frames)
    assert out.abs().max() < 0.01  # mean colour -> 0
    white = eval_transform(8)(np.full((1, 8, 8, 3), 255, np.uint8))
    assert torch.allclose(white[0, :, 0, 0], (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD))


def test_resize_keeps_aspect_and_crops_check_size() -> None:
    clip = to_clip_tensor(random_frames(2, 40, 60))
    assert Resize(20)(clip).shape == (2, 3, 20, 30)
    assert Resize((10, 12))(clip).shape == (2, 3, 10, 12)
    assert CenterCrop(16)(clip).shape == (2, 3, 16, 16)
    assert RandomCrop((20, 30))(clip, gen(0)).shape == (2, 3, 20, 30)
    with pytest.raises(ValueError, match="64x64 does not fit in frames of 40x60"):
        RandomCrop(64)(clip, gen(0))


def test_random_crop_is_a_window_of_the_input() -> None:
    clip = to_clip_tensor(random_frames(2, 20, 20))
    out = RandomCrop(8)(clip, gen(5))
    windows = [(i, j) for i in range(13) for j in range(13) if torch.equal(clip[..., i:i + 8, j:j + 8], out)]
    assert len(windows) == 1


def test_multi_scale_crop_boxes_come_from_the_scales() -> None:
    clip = to_clip_tensor(random_frames(1, 40, 60))
    # One scale, no distortion: a square box of the whole short side, resized to itself.
    out = MultiScaleCrop(40, scales=(1.0,))(clip, gen(0))
    windows = [j for j in range(21) if torch.allclose(clip[..., :, j:j + 40], out, atol=1e-5)]
    assert len(windows) == 1
    assert MultiScaleCrop((24, 32))(clip, gen(1)).shape == (1, 3, 24, 32)
    with pytest.raises(ValueError, match="scales"):
        MultiScaleCrop(32, scales=(1.2,))


def test_flip_mirrors_and_can_be_left_out() -> None:
    clip = to_clip_tensor(random_frames(2, 8, 10))
    assert torch.equal(HorizontalFlip(p=1.0)(clip), clip.flip(-1))
    assert HorizontalFlip(p=0.0)(clip) is clip
    # Direction-dependent classes need augmentation without flips.
    assert not any(isinstance(t, HorizontalFlip) for t in train_transform(8, flip=False).transforms)
    assert any(isinstance(t, HorizontalFlip) for t in train_transform(8).transforms)


def test_colour_jitter_and_grayscale() -> None:
    clip = to_clip_tensor(random_frames(2, 8, 8))
    assert ColorJitter(p=0.0)(clip, gen(0)) is clip
    jittered = ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0)(clip, gen(0))
    assert jittered.shape == clip.shape and not torch.equal(jittered, clip)
    assert 0 <= jittered.min() and jittered.max() <= 1
    gray = RandomGrayscale(p=1.0)(clip, gen(0))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    with pytest.raises(ValueError, match="hue"):
        ColorJitter(hue=0.7)


def test_compose_repr_and_generator_sharing() -> None:
    transform = Compose([MultiScaleCrop(16), HorizontalFlip()])
    assert repr(transform) == "Compose([MultiScaleCrop, HorizontalFlip])"
    frames = random_frames()
    assert torch.equal(transform(frames, gen(9)), transform(frames, gen(9)))
