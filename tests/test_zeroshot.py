"""Zero-shot classification with free-text labels that no model has seen."""

from __future__ import annotations

import pytest
import torch

from actiondistill.models import ZeroShotClassifier, create_backbone, create_model, validate_labels

UNSEEN = ["juggling three oranges", "a cat chasing a laser dot", "slowly folding a paper crane", "skateboarding"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("actionclip-meanp", backbone=create_backbone("embedded-tiny"), num_frames=4)


@pytest.fixture(scope="module")
def clips():
    return torch.randn(3, 4, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["actionclip-meanp", "xclip", "vificlip"])
def test_unseen_labels_give_valid_probabilities(name, clips):
    torch.manual_seed(0)
    clf = ZeroShotClassifier(create_model(name, backbone=create_backbone("embedded-tiny"), num_frames=4), UNSEEN)
    probs = clf.probs(clips)
    assert probs.shape == (3, 4)
    assert (probs >= 0).all() and torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(dim=-1), torch.ones(3))


def test_predict_returns_sorted_top_k(model, clips):
    clf = ZeroShotClassifier(model, UNSEEN)
    top = clf.predict(clips, k=2)
    assert len(top) == 3 and all(len(row) == 2 for row in top)
    probs = clf.probs(clips)
    for row, p in zip(top, probs, strict=True):
        assert row[0][1] >= row[1][1]
        assert row[0] == (UNSEEN[int(p.argmax())], pytest.approx(float(p.max())))
    assert len(clf.predict(clips[0], k=10)[0]) == 4  # one clip (T, 3, H, W); k capped at the label count


def test_text_is_encoded_once(model, clips, monkeypatch):
    clf = ZeroShotClassifier(model, [" Juggling ", "skateboarding"], templates=["a video of {}"])
    assert clf.labels == ["Juggling", "skateboarding"] and clf.text.shape == (1, 2, 256)
    monkeypatch.setattr(model.backbone, "encode_text", lambda *a, **k: pytest.fail("text encoder called again"))
    clf.probs(clips)


@pytest.mark.parametrize(
    ("labels", "offending"),
    [
        ([], r"\[\]"),
        (["running", "   "], "'   '"),
        (["running", ""], "''"),
        (["Running", "jumping", " running "], "' running '"),
        (["running", 3], "3"),
    ],
)
def test_bad_label_lists_name_the_offending_value(model, labels, offending):
    with pytest.raises(ValueError, match=offending):
        ZeroShotClassifier(model, labels)
    with pytest.raises(ValueError, match=offending):
        validate_labels(labels)


def test_bad_templates_are_refused(model):
    with pytest.raises(ValueError, match="no slot"):
        ZeroShotClassifier(model, UNSEEN, templates=["no slot"])
