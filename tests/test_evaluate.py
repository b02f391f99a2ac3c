"""Evaluation: metrics on a handmade case, multi-view averaging, predict_proba, zero-shot, the eval CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_trainer import HELDOUT, FakeVideoModel, TensorVideoDataset, write_fake_config
from torch import nn

from actiondistill.config import load_config
from actiondistill.engine.class_subset import ClassSubset
from actiondistill.evaluate import classification_metrics, evaluate, predict, zero_shot_eval
from actiondistill.train import _seen_or_heldout, build_from_config

CLASSES = ["a", "b", "c", "d", "e", "f"]
PROBS = torch.tensor([
    [.50, .20, .12, .08, .06, .04],  # true a, predicted a
    [.01, .30, .25, .20, .14, .10],  # true a, predicted b, a ranked 6th: outside the top 5
    [.05, .20, .40, .15, .12, .08],  # true b, predicted c, b ranked 2nd
    [.10, .05, .60, .15, .06, .04],  # true c, predicted c
    [.30, .05, .25, .20, .12, .08],  # true c, predicted a, c ranked 2nd
])
LABELS = torch.tensor([0, 0, 1, 2, 2])


def test_metrics_on_a_handmade_case():
    m = classification_metrics(PROBS, LABELS, CLASSES)
    assert m["top1"] == pytest.approx(40.0) and m["top5"] == pytest.approx(80.0) and m["topk"] == 5
    assert m["per_class_acc"] == [50.0, 0.0, 50.0, None, None, None]
    assert m["mean_class_acc"] == pytest.approx(100 / 3)
    assert m["confusion"] == [[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [1, 0, 1, 0, 0, 0]] + [[0] * 6] * 3
    expected_nll = -sum(math.log(p) for p in (.50, .01, .20, .60, .25)) / 5
    assert m["nll"] == pytest.approx(expected_nll, rel=1e-5)
    assert (m["num_samples"], m["num_classes"], m["classes"]) == (5, 6, CLASSES)


def test_topk_is_capped_by_the_number_of_classes_and_labels_are_checked():
    m = classification_metrics(PROBS[:, :3] / PROBS[:, :3].sum(1, keepdim=True), LABELS, CLASSES[:3])
    assert m["topk"] == 3 and m["top5"] == 100.0
    with pytest.raises(ValueError, match="label 7 out of range for 6 class texts"):
        classification_metrics(PROBS, torch.tensor([0, 0, 1, 2, 7]), CLASSES)
    with pytest.raises(ValueError, match=r"expected \(N, 5\) for 5 classes"):
        classification_metrics(PROBS, LABELS, CLASSES[:5])


class FirstPixelModel(nn.Module):
    """Logits are the first frame's top-left pixel (3 channels = 3 classes): scores fully set by the test."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, frames, labels):
        assert len(labels) == 3
        return self.w * frames[:, 0, :, 0, 0]


class ProbaModel(FirstPixelModel):
    """predict_proba says class 2 whatever `forward` says, so the test sees which one evaluate uses."""

    def predict_proba(self, frames, labels):
        return torch.tensor([0.0, 0.1, 0.9]).expand(frames.shape[0], 3)


class ListDataset:
    def __init__(self, items, classes):
        self.items, self.classes = items, list(classes)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def views_item(logits_per_view, label, index, frames=2):
    frames_ = torch.zeros(len(logits_per_view), frames, 3, 2, 2)
    for v, logits in enumerate(logits_per_view):
        frames_[v, 0, :, 0, 0] = torch.tensor(logits)
    return {"frames": frames_, "label": label, "index": index}


def test_multi_view_probabilities_are_averaged():
    # View 1 is sure of class 0; view 2 mildly prefers class 1: the average picks class 0 (a vote would tie).
    views = [[5.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    item = views_item(views, label=0, index=0)
    expected = torch.tensor(views).softmax(-1).mean(0)
    model = FirstPixelModel()
    assert torch.allclose(predict(model, item["frames"][None], "xyz"), expected[None])
    flat = item["frames"].flatten(0, 1)[None]  # (1, V*T, 3, H, W): consecutive clips
    assert torch.allclose(predict(model, flat, "xyz", views=2), expected[None])
    data = ListDataset([item, views_item([[0, 0, 3.0], [0, 0, 1.0]], label=2, index=1)], "xyz")
    result = evaluate(model, data, batch_size=2, progress=False)
    assert result["top1"] == 100.0 and result["views"] == 1 and result["num_samples"] == 2
    with pytest.raises(ValueError, match="expected views=3"):
        evaluate(model, data, views=3, progress=False)
    with pytest.raises(ValueError, match="do not split into views=3"):
        predict(model, flat, "xyz", views=3)


def test_predict_proba_is_preferred_and_training_mode_restored():
    frames = torch.zeros(2, 3, 2, 2)
    frames[0, :, 0, 0] = torch.tensor([9.0, 0.0, 0.0])  # forward says class 0, the label is 2
    data = ListDataset([{"frames": frames, "label": 2, "index": 0}], "xyz")
    model = ProbaModel().train()
    assert evaluate(FirstPixelModel(), data, progress=False)["top1"] == 0.0
    assert evaluate(model, data, progress=False)["top1"] == 100.0
    assert model.training


def test_results_follow_dataset_order_and_default_texts():
    data = TensorVideoDataset(9, augment=False)
    model = FakeVideoModel()
    a = evaluate(model, data, batch_size=2, progress=False)
    b = evaluate(model, data, batch_size=5, progress=False)
    assert a["classes"] == data.classes and a["confusion"] == b["confusion"] and a["nll"] == pytest.approx(b["nll"])


class LabelledDataset(TensorVideoDataset):
    def __init__(self, labels, classes):
        super().__init__(len(labels), classes=classes, augment=False)
        self._labels = labels

    @property
    def labels(self):
        return self._labels

    def __getitem__(self, index):
        return {**super().__getitem__(index), "label": self._labels[index]}


def test_zero_shot_uses_held_out_classes_only(tmp_path):
    everything = ["red", "green", "blue", *HELDOUT]
    held_out = LabelledDataset([3, 4, 3, 4], everything)
    subset = ClassSubset(held_out, [3, 4])
    assert subset.classes == HELDOUT and subset.labels == [0, 1, 0, 1] and subset[1]["label"] == 1
    result = zero_shot_eval(FakeVideoModel(), subset, progress=False)
    assert result["zero_shot"] and result["classes"] == HELDOUT and result["num_classes"] == 2
    with pytest.raises(ValueError, match=r"labels \[3, 4\] are not among the classes"):
        ClassSubset(held_out, [0, 1, 2])
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"num_seen_classes": 3}))
    assert _seen_or_heldout(held_out, manifest, "zeroshot", zero_shot=True).classes == HELDOUT
    seen = _seen_or_heldout(LabelledDataset([0, 2], everything), tmp_path, "test", zero_shot=False)
    assert seen.classes == ["red", "green", "blue"]


def test_eval_cli_on_a_trained_checkpoint(tmp_path, capsys):
    from actiondistill.cli import main

    cfg = load_config(write_fake_config(tmp_path), ["epochs=3"])
    trained = build_from_config(cfg, progress=False).fit()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert main(["eval", "--checkpoint", str(checkpoint), "--split", "val", "--no-progress", "--json", "-"]) == 0
    val = json.loads(capsys.readouterr().out)
    assert val["top1"] == trained["val"]["top1"] and val["confusion"] == trained["val"]["confusion"]
    record = json.loads((tmp_path / "results" / "fake-video-fake-data-seed1-eval-val.json").read_text())
    assert record["kind"] == "eval" and record["metrics"]["top1"] == val["top1"] and record["split"] == "val"
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--split", "zeroshot",
                 "--no-progress", "--json", "-"]) == 0
    zs = json.loads(capsys.readouterr().out)
    assert zs["zero_shot"] and zs["classes"] == HELDOUT and zs["num_samples"] == 10
    assert main(["eval", "--checkpoint", str(checkpoint), "--split", "test", "eval.clips=3", "--no-progress"]) == 2
    assert "do not split into views=3" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
