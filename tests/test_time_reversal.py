"""Time reversal as a training augmentation: the label map of the world's actions, the wrapper's items and draws,
and the Trainer's use of `data.time_reversal`."""

from __future__ import annotations

import pytest
import torch
from test_trainer import FakeVideoModel, KDObjective, TensorVideoDataset, tiny_config

from actiondistill.data.synth_world import action_classes, reverse_action, zeroshot_classes
from actiondistill.engine.teachers import Teacher, TeacherCache
from actiondistill.engine.time_reversal import TimeReversed, reversal_map
from actiondistill.train import Trainer

SEEN = action_classes()[: len(action_classes()) - len(zeroshot_classes())]


class ClipsOf:
    """Items whose frames count up in time (frame t is all t) and carry teacher frames counting down."""

    def __init__(self, classes, n=40, frames=5):
        self.classes, self.n, self.frames = list(classes), n, frames
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        t = torch.arange(self.frames, dtype=torch.float32)
        return {"frames": t[:, None].repeat(1, 3), "teacher_frames": -t[:, None], "label": index % len(self.classes),
                "index": index}


def test_every_seen_action_maps_to_its_reversal_within_the_seen_classes():
    mapping = reversal_map(SEEN)
    assert SEEN[mapping[SEEN.index("moving left")]] == "moving right"
    assert SEEN[mapping[SEEN.index("growing")]] == "shrinking"
    assert SEEN[mapping[SEEN.index("blinking")]] == "blinking"
    assert all(mapping[mapping[i]] == i for i in range(len(SEEN)))  # an involution
    assert [SEEN[j] for j in mapping] == [reverse_action(c) or c for c in SEEN]


def test_a_class_without_a_known_reversal_or_outside_the_set_is_named():
    with pytest.raises(ValueError, match="'brush_hair' has no known reversal"):
        reversal_map(["blinking", "brush_hair"])
    with pytest.raises(ValueError, match="'moving left' plays backwards as 'moving right', which is not among"):
        reversal_map(["moving left", "blinking"])


def test_reversed_items_play_backwards_with_the_reversed_label_and_teacher_frames():
    data = TimeReversed(ClipsOf(SEEN), probability=1.0, seed=0)
    item = data[SEEN.index("moving up")]
    assert item["frames"][:, 0].tolist() == [4.0, 3.0, 2.0, 1.0, 0.0]
    assert item["teacher_frames"][:, 0].tolist() == [-4.0, -3.0, -2.0, -1.0, 0.0]
    assert SEEN[item["label"]] == "moving down" and item["index"] == SEEN.index("moving up")


def test_draws_depend_on_seed_epoch_and_index_alone_and_pass_the_epoch_down():
    inner = ClipsOf(SEEN, n=400)
    data = TimeReversed(inner, probability=0.5, seed=3)
    first = [data.reversed(i) for i in range(400)]
    assert first == [TimeReversed(ClipsOf(SEEN, n=400), 0.5, seed=3).reversed(i) for i in range(400)]
    assert 150 < sum(first) < 250
    data.set_epoch(1)
    assert inner.epochs == [1]
    assert [data.reversed(i) for i in range(400)] != first
    assert [TimeReversed(inner, 0.5, seed=4).reversed(i) for i in range(400)] != first
    for i in range(20):
        item, plain = data[i], inner[i]
        assert torch.equal(item["frames"], plain["frames"].flip(0) if data.reversed(i) else plain["frames"])


@pytest.mark.parametrize("probability", [0.0 - 0.1, 1.5])
def test_a_probability_outside_0_1_is_refused(probability):
    with pytest.raises(ValueError, match=r"data.time_reversal=.*expected a probability in \(0, 1\]"):
        TimeReversed(ClipsOf(SEEN), probability)


def test_the_trainer_reverses_its_training_data_and_refuses_cached_teachers(tmp_path):
    data = TensorVideoDataset(24, classes=["growing", "shrinking", "blinking"], seed=1)
    model = FakeVideoModel(vocab=("growing", "shrinking", "blinking"))
    plain = Trainer(tiny_config(tmp_path / "a", epochs=1), model, data, progress=False)
    assert plain.train_data is data
    trainer = Trainer(tiny_config(tmp_path / "b", epochs=1, **{"data.time_reversal": 0.5}), model, data,
                      progress=False)
    assert isinstance(trainer.train_data, TimeReversed) and trainer.train_data.seed == 3
    flipped = [i for i in range(len(data)) if trainer.train_data.reversed(i)]
    assert flipped and all(trainer.train_data[i]["label"] == [1, 0, 2][data[i]["label"]] for i in flipped)
    cached = Teacher("t", FakeVideoModel(vocab=("growing", "shrinking", "blinking")),
                     TeacherCache(tmp_path / "cache", {"teacher": "fake"}))
    deterministic = TensorVideoDataset(24, classes=["growing", "shrinking", "blinking"], augment=False)
    with pytest.raises(ValueError, match=r"data.time_reversal=0.5 with teacher\(s\) \['t'\] caching"):
        Trainer(tiny_config(tmp_path / "c", **{"data.time_reversal": 0.5}), model, deterministic,
                objective=KDObjective(), teachers={"t": cached}, progress=False)
