"""Frame samplers: TSN segments, dense clips, uniform spacing, short videos, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from actiondistill.data.sampling import FrameSampler, dense_indices, tsn_indices, uniform_indices


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_tsn_test_takes_segment_centres() -> None:
    assert tsn_indices(32, 8, train=False) == [2, 6, 10, 14, 18, 22, 26, 30]
    assert tsn_indices(10, 3, train=False) == [1, 5, 8]
    assert tsn_indices(8, 8, train=False) == list(range(8))


def test_tsn_train_takes_one_random_frame_per_segment() -> None:
    seen = set()
    for seed in range(50):
        picks = tsn_indices(30, 4, train=True, rng=rng(seed))
        bounds = [0, 7, 15, 22, 30]  # (k * 30) // 4
        assert all(bounds[k] <= p < bounds[k + 1] for k, p in enumerate(picks)), picks
        seen.add(tuple(picks))
    assert len(seen) > 30  # really random
    assert tsn_indices(30, 4, True, rng(7)) == tsn_indices(30, 4, True, rng(7))  # and reproducible


@pytest.mark.parametrize("train", [False, True])
def test_indices_always_in_range_and_right_count(train: bool) -> None:
    for num_frames in (1, 2, 3, 7, 16, 33):
        for segments in (1, 3, 8):
            picks = tsn_indices(num_frames, segments, train, rng(num_frames))
            assert len(picks) == segments and all(0 <= p < num_frames for p in picks)
            assert picks == sorted(picks)  # temporal order kept
        for clip_len, interval, clips in [(1, 1, 1), (4, 2, 1), (8, 1, 3), (3, 4, 2)]:
            picks = dense_indices(num_frames, clip_len, interval, clips, train, rng(num_frames))
            assert len(picks) == clip_len * clips and all(0 <= p < num_frames for p in picks)
        picks = uniform_indices(num_frames, 5)
        assert len(picks) == 5 and all(0 <= p < num_frames for p in picks)


def test_short_videos_clamp_or_loop() -> None:
    assert tsn_indices(5, 8, train=True, rng=rng()) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert tsn_indices(5, 8, train=False, short="loop") == [0, 1, 2, 3, 4, 0, 1, 2]
    assert tsn_indices(1, 3, train=True) == [0, 0, 0]
    assert uniform_indices(3, 5) == [0, 1, 2, 2, 2]
    assert uniform_indices(3, 5, short="loop") == [0, 1, 2, 0, 1]
    # A 10-frame video cannot hold one 8-frame clip at interval 2 (span 15): it starts at 0 and is completed.
    assert dense_indices(10, 8, 2, 1, train=True, rng=rng()) == [0, 2, 4, 6, 8, 9, 9, 9]
    assert dense_indices(10, 8, 2, 1, train=False, short="loop") == [0, 2, 4, 6, 8, 0, 2, 4]


def test_short_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="short='wrap'"):
        tsn_indices(3, 8, train=False, short="wrap")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_num_frames_must_be_positive(bad: object) -> None:
    for call in (lambda: tsn_indices(bad, 8, False), lambda: dense_indices(bad, 8, 1, 1, False),  # type: ignore
                 lambda: uniform_indices(bad, 8)):  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=f"num_frames must be an integer >= 1, got {bad!r}"):
            call()


def test_other_counts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="num_segments"):
        tsn_indices(10, 0, False)
    with pytest.raises(ValueError, match="frame_interval"):
        dense_indices(10, 4, 0, 1, False)
    with pytest.raises(ValueError, match="n must"):
        uniform_indices(10, 0)


def test_dense_test_spaces_clips_evenly() -> None:
    # span 15 leaves starts 0..17 (18 of them): one clip starts at the centre, three at the centres of thirds.
    assert dense_indices(32, 8, 2, 1, train=False) == [9, 11, 13, 15, 17, 19, 21, 23]
    picks = dense_indices(32, 8, 2, 3, train=False)
    assert [picks[0], picks[8], picks[16]] == [3, 9, 15]
    assert all(b - a == 2 for clip in np.reshape(picks, (3, 8)) for a, b in zip(clip[:-1], clip[1:]))


def test_dense_train_starts_randomly_within_range() -> None:
    starts = {dense_indices(32, 8, 2, 1, train=True, rng=rng(s))[0] for s in range(200)}
    assert starts <= set(range(18)) and len(starts) > 12
    assert dense_indices(32, 8, 2, 2, True, rng(3)) == dense_indices(32, 8, 2, 2, True, rng(3))


def test_uniform_spans_first_to_last() -> None:
    assert uniform_indices(32, 8) == [0, 4, 9, 13, 18, 22, 27, 31]
    assert uniform_indices(9, 1) == [4]
    assert uniform_indices(1, 1) == [0]


def test_frame_sampler_dispatches_and_validates() -> None:
    assert FrameSampler("tsn", 8)(32) == tsn_indices(32, 8, False)
    assert FrameSampler("tsn", 8, train=True)(32, rng(1)) == tsn_indices(32, 8, True, rng(1))
    dense = FrameSampler("dense", 4, frame_interval=2, num_clips=2, train=True)
    assert dense.length == 8
    assert dense(40, rng(2)) == dense_indices(40, 4, 2, 2, True, rng(2))
    assert FrameSampler("uniform", 5, short="loop")(3) == [0, 1, 2, 0, 1]
    with pytest.raises(ValueError, match="kind='slowfast'"):
        FrameSampler("slowfast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frames"):
        FrameSampler("tsn", 0)
    with pytest.raises(ValueError, match="'dense' only"):
        FrameSampler("tsn", 8, num_clips=2)
