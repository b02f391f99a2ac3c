"""Config loading: YAML + key=value overrides, strict keys and types, round trips, the example configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from actiondistill.config import (
    TeacherConfig,
    TrainConfig,
    apply_override,
    from_dict,
    load_config,
    save_config,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides(tmp_path):
    path = write(tmp_path, "seed: 4\noptim: {lr: 5e-6, betas: [0.8, 0.9]}\ndata: {num_frames: 8}\n")
    cfg = load_config(path, ["optim.lr=1e-4", "data.num_frames=16", "model.name=actionclip-transf",
                             "model.kwargs.fusion_layers=2", "data.eval_split=null", "optim.clip_grad=1"])
    assert cfg.seed == 4 and cfg.optim.lr == 1e-4 and cfg.data.num_frames == 16
    assert cfg.optim.betas == (0.8, 0.9)  # a YAML list becomes the annotated tuple
    assert cfg.model.name == "actionclip-transf" and cfg.model.kwargs == {"fusion_layers": 2}
    assert cfg.data.eval_split is None and cfg.optim.clip_grad == 1.0 and isinstance(cfg.optim.clip_grad, float)
    assert cfg.objective.name == "actionclip" and cfg.optim.weight_decay == 0.2  # untouched defaults


def test_numeric_strings_are_floats():
    cfg = from_dict({"optim": {"lr": "5e-6"}})  # PyYAML reads 5e-6 (no dot) as a string
    assert cfg.optim.lr == 5e-6
    with pytest.raises(ValueError, match=r"optim.lr: expected a number, got str 'fast'"):
        from_dict({"optim": {"lr": "fast"}}, source="x.yaml")


def test_unknown_keys_name_the_file_and_path(tmp_path):
    path = write(tmp_path, "optim:\n  lrr: 1.0\n")
    with pytest.raises(ValueError, match=rf"^{path}: unknown key optim.lrr \(known at this level: "):
        load_config(path)
    with pytest.raises(ValueError, match=r"override 'data.framez=3': unknown key data.framez"):
        load_config(None, ["data.framez=3"])
    with pytest.raises(ValueError, match=r"unknown key nope"):
        load_config(None, ["nope.deeper=1"])
    with pytest.raises(ValueError, match=r"teachers.0.model.nam"):
        from_dict({"teachers": [{"name": "t", "model": {"nam": "x"}}]}, source="f.yaml")


def test_wrong_types_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"run.yaml: data.num_frames: expected an integer, got str 'many'"):
        load_config(write(tmp_path, "data: {num_frames: many}\n"))
    with pytest.raises(ValueError, match=r"optim.amp: expected true or false, got int 1"):
        load_config(None, ["optim.amp=1"])
    with pytest.raises(ValueError, match=r"epochs: expected an integer, got float 2.5"):
        load_config(None, ["epochs=2.5"])
    with pytest.raises(ValueError, match=r"optim.betas: expected a list of 2 values"):
        load_config(None, ["optim.betas=[0.9]"])
    with pytest.raises(ValueError, match=r"data: expected a mapping"):
        load_config(write(tmp_path, "data: 3\n"))
    with pytest.raises(ValueError, match=r"expected a mapping at the top level"):
        load_config(write(tmp_path, "- 1\n"))
    with pytest.raises(ValueError, match=r"expected key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(FileNotFoundError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_teacher_list_and_index_overrides():
    cfg = load_config(None, ["teachers=[{name: big, model: {name: xclip}}]", "teachers.0.cache_outputs=true"])
    assert cfg.teachers == [TeacherConfig(name="big", model=cfg.teachers[0].model, cache_outputs=True)]
    assert cfg.teachers[0].model.name == "xclip" and cfg.teachers[0].model.backbone == "embedded-tiny"
    with pytest.raises(ValueError, match=r"teachers.3: expected a list index below 1"):
        apply_override(cfg, "teachers.3.name=x")


def test_round_trip_and_save(tmp_path):
    cfg = load_config(None, ["optim.lr=3e-4", "teachers=[{name: t}]", "model.kwargs={a: [1, 2]}"])
    assert from_dict(to_dict(cfg)) == cfg
    path = save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(path) == cfg
    assert to_dict(TrainConfig())["optim"]["betas"] == [0.9, 0.98]


@pytest.mark.parametrize("name", ["actionclip_synth.yaml", "actionclip_hmdb51.yaml"])
def test_example_configs_load(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.objective.name == "actionclip" and cfg.optim.betas == (0.9, 0.98)


def test_hmdb51_config_has_the_reference_recipe():
    cfg = load_config(ROOT / "configs" / "actionclip_hmdb51.yaml")
    o = cfg.optim
    assert (o.lr, o.weight_decay, o.fusion_lr_mult, o.warmup_epochs) == (5e-6, 0.2, 10.0, 5.0)
    assert (cfg.epochs, cfg.data.batch_size, cfg.data.num_frames, cfg.model.backbone) == (50, 64, 32, "ViT-B-16")


def test_display_path_is_relative_under_the_project_and_absolute_elsewhere(tmp_path):
    from actiondistill.paths import display_path, project_root

    assert display_path(project_root() / "data" / "x.pt") == str(Path("data") / "x.pt")
    assert display_path(tmp_path / "x.pt") == str((tmp_path / "x.pt").resolve())  # ACTIONDISTILL_DATA elsewhere
