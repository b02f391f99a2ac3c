"""The Trainer: learning, exact resume, optimiser groups and schedule, accumulation, teachers and their cache, CLI.

A tiny fake video model and an in-memory dataset stand in for the real ones (same interfaces), so these tests
exercise the engine alone; test_distributed.py and test_evaluate.py import the fakes from here.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actiondistill.config import TrainConfig, apply_override, load_config, to_dict
from actiondistill.engine.objectives import build_objective, list_objectives
from actiondistill.engine.optim import WarmupCosine, param_groups
from actiondistill.engine.teachers import Teacher, TeacherCache, freeze
from actiondistill.models import register_model
from actiondistill.train import Trainer, register_dataset

COLOURS = ["red", "green", "blue"]
HELDOUT = ["cyan", "magenta"]


class FakeVideoModel(nn.Module):
    """Mean colour per frame -> linear -> mean over time -> residual fusion; texts from a learnable table."""

    def __init__(self, vocab=tuple(COLOURS + HELDOUT), dim: int = 8, dropout: float = 0.1):
        super().__init__()
        self.vocab = {label: i for i, label in enumerate(vocab)}
        self.proj = nn.Linear(3, dim)
        self.fusion = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.text = nn.Embedding(len(vocab), dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.calls = 0

    def fusion_parameters(self):
        return [*self.fusion.parameters(), *self.norm.parameters()]

    def backbone_parameters(self):
        ids = {id(p) for p in self.fusion_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def encode_video(self, frames):
        x = self.proj(frames.mean(dim=(-1, -2))).mean(dim=1)
        return self.norm(x + self.fusion(self.drop(x)))

    def encode_text(self, labels):
        return self.text(torch.tensor([self.vocab[label] for label in labels], device=self.text.weight.device))

    def forward(self, frames, labels):
        self.calls += 1
        v = F.normalize(self.encode_video(frames), dim=-1)
        t = F.normalize(self.encode_text(labels), dim=-1)
        return self.logit_scale.exp().clamp(max=100) * v @ t.t()


class TensorVideoDataset:
    """Clips of one noisy colour per class; the noise depends on (seed, epoch, index) when `augment`, like the
    real dataset's augmentation, and on (seed, index) only otherwise."""

    def __init__(self, n: int = 24, classes=tuple(COLOURS), frames: int = 4, size: int = 4, seed: int = 0,
                 augment: bool = True, views: int | None = None, noise: float = 0.3):
        self.classes = list(classes)
        self.n, self.frames, self.size, self.seed = n, frames, size, seed
        self.augment, self.views, self.noise = augment, views, noise
        self.epoch = 0
        self.palette = torch.rand(len(classes), 3, generator=torch.Generator().manual_seed(99 + len(classes))) * 2 - 1

    @property
    def labels(self):
        return [i % len(self.classes) for i in range(self.n)]

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        label = index % len(self.classes)
        g = torch.Generator().manual_seed(self.seed * 100003 + (self.epoch if self.augment else 0) * 1009 + index)
        shape = (self.views, self.frames) if self.views else (self.frames,)
        frames = self.palette[label].view(3, 1, 1) + self.noise * torch.randn(*shape, 3, self.size, self.size,
                                                                              generator=g)
        return {"frames": frames, "label": label, "index": index}


def tiny_config(tmp_path, **overrides) -> TrainConfig:
    cfg = load_config(None, [
        "epochs=3", "seed=3", f"out_dir={tmp_path / 'run'}", f"results_dir={tmp_path / 'results'}",
        "run_name=tiny", "data.batch_size=4", "optim.lr=0.05", "optim.warmup_epochs=1", "optim.weight_decay=0.01",
        "objective.name=cross_entropy",
    ])
    for key, value in overrides.items():
        cfg = apply_override(cfg, f"{key}={json.dumps(value)}")
    return cfg


def make_trainer(tmp_path, dropout=0.1, callbacks=(), val=True, checkpoints=True, **overrides) -> Trainer:
    torch.manual_seed(0)
    cfg = tiny_config(tmp_path, **overrides)
    return Trainer(cfg, FakeVideoModel(dropout=dropout), TensorVideoDataset(24, seed=1),
                   TensorVideoDataset(12, seed=2, augment=False) if val else None, progress=False,
                   callbacks=callbacks, checkpoints=checkpoints)


def params_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def without_time(metrics):
    out = dict(metrics)
    out["train"] = {k: v for k, v in metrics["train"].items() if k != "time_s"}
    return out


def test_fit_learns_and_writes_run_files(tmp_path):
    trainer = make_trainer(tmp_path, epochs=4)
    result = trainer.fit()
    assert result["epoch"] == 4 and result["global_step"] == 4 * 6
    assert result["val"]["top1"] == 100.0 and result["best"] == 100.0
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(x["epoch"], x["split"]) for x in lines] == [(e, s) for e in range(1, 5) for s in ("train", "val")]
    assert lines[-2]["loss"] < lines[0]["loss"]
    for name in ("checkpoint.pt", "best.pt", "config.yaml", "result.json"):
        assert (tmp_path / "run" / name).is_file(), name
    record = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert record["kind"] == "train" and record["seed"] == 3 and record["config"] == to_dict(trainer.cfg)
    assert record["params"]["total"] == sum(p.numel() for p in trainer.model.parameters())
    assert record["environment"]["torch"] == torch.__version__ and record["environment"]["device"] == "cpu"
    assert record["metrics"]["val"]["confusion"] == [[4, 0, 0], [0, 4, 0], [0, 0, 4]]


class Interrupt:
    """Stops the run like Ctrl-C in the middle of epoch `epoch` (0-based)."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def __call__(self, trainer, event, info):
        if event == "step_end" and info["epoch"] == self.epoch and info["batch"] == self.batch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("objective", ["cross_entropy", "actionclip"])
def test_resume_after_interruption_is_exact(tmp_path, objective):
    settings = {"objective.name": objective, "optim.grad_accum": 2, "optim.clip_grad": 1.0}
    reference = make_trainer(tmp_path / "a", **settings)
    expected = reference.fit()

    interrupted = make_trainer(tmp_path / "b", callbacks=[Interrupt(epoch=1, batch=3)], **settings)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    epochs_run = []
    resumed = make_trainer(tmp_path / "b", callbacks=[lambda t, e, i: epochs_run.append(i["epoch"])
                                                      if e == "epoch_end" else None], **settings)
    assert not all(torch.equal(a, b) for a, b in zip(params_of(resumed.model).values(),
                                                     params_of(reference.model).values()))
    result = resumed.fit(resume=True)
    assert epochs_run == [2, 3]  # started from the epoch-1 checkpoint
    assert without_time(result) == without_time(expected)
    got, want = params_of(resumed.model), params_of(reference.model)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert resumed.optimizer.state_dict()["state"].keys() == reference.optimizer.state_dict()["state"].keys()


def test_a_run_without_checkpoints_writes_only_its_log_and_record_and_learns_the_same(tmp_path):
    with_files = make_trainer(tmp_path / "a", epochs=2).fit()
    result = make_trainer(tmp_path / "b", epochs=2, checkpoints=False).fit()
    assert without_time(result) == without_time(with_files)
    assert sorted(p.name for p in (tmp_path / "b" / "run").iterdir()) == ["config.yaml", "metrics.jsonl",
                                                                        "result.json"]


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    result = make_trainer(tmp_path, epochs=1, val=False).fit(resume=True)
    assert result["epoch"] == 1 and result["val"] is None


def test_param_groups_fusion_lr_and_no_decay():
    model = FakeVideoModel()
    model.proj.bias.requires_grad_(False)
    cfg = TrainConfig().optim
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    assert set(groups) == {"base/decay", "base/no_decay", "fusion/decay", "fusion/no_decay"}
    assert groups["fusion/decay"]["lr"] == pytest.approx(cfg.lr * cfg.fusion_lr_mult)
    assert groups["base/decay"]["lr"] == pytest.approx(cfg.lr)
    assert ids["base/decay"] == {id(model.proj.weight)}
    assert ids["base/no_decay"] == {id(model.text.weight), id(model.logit_scale)}
    assert ids["fusion/decay"] == {id(model.fusion.weight)}
    assert ids["fusion/no_decay"] == {id(model.fusion.bias), id(model.norm.weight), id(model.norm.bias)}
    assert groups["base/no_decay"]["weight_decay"] == 0.0 and groups["base/decay"]["weight_decay"] == cfg.weight_decay
    assert id(model.proj.bias) not in set().union(*ids.values())  # frozen: not optimised


def test_param_groups_without_fusion_method_is_one_speed():
    model = nn.Sequential(nn.Linear(2, 2))
    groups = param_groups(model, TrainConfig().optim)
    assert {g["name"] for g in groups} == {"base/decay", "base/no_decay"}


def test_warmup_cosine_schedule():
    f = WarmupCosine(warmup=4, total=20, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    after = [f(s) for s in range(4, 21)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert f(20) == pytest.approx(0.1) and f(12) == pytest.approx(0.1 + 0.9 * 0.5)
    assert WarmupCosine(warmup=50, total=10)(9) == 1.0  # warm-up capped at the run's length


def test_scheduler_steps_per_optimiser_step(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2, val=False, **{"optim.grad_accum": 3, "optim.warmup_epochs": 1})
    assert trainer.steps_per_epoch == 2  # 6 batches / 3
    trainer.fit()
    assert trainer.global_step == 4 and trainer.scheduler.last_epoch == 4
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine reached its end


def test_gradient_accumulation_matches_large_batch(tmp_path):
    common = {"epochs": 1, "optim.warmup_epochs": 0, "optim.clip_grad": None}
    small = make_trainer(tmp_path / "a", dropout=0.0, val=False, **{**common, "data.batch_size": 4,
                                                                    "optim.grad_accum": 2})
    large = make_trainer(tmp_path / "b", dropout=0.0, val=False, **{**common, "data.batch_size": 8,
                                                                    "optim.grad_accum": 1})
    initial = params_of(small.model)
    for t in (small, large):
        t.sampler.shuffle = False  # same order of clips in both runs
        t.fit()
    assert small.global_step == large.global_step == 3
    a, b = params_of(small.model), params_of(large.model)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert all(torch.equal(initial[k], v) for k, v in params_of(large.model).items()) is False


def test_amp_on_cpu_is_bf16_only_and_bad_settings_fail(tmp_path):
    trainer = make_trainer(tmp_path, val=False)  # fp16 autocast: emulated on a CPU, so fp32 there
    assert trainer.cfg.optim.amp and not trainer.amp and not trainer.scaler.is_enabled()
    bf16 = make_trainer(tmp_path / "bf16", val=False, **{"optim.amp_dtype": "bfloat16"})
    assert bf16.amp and bf16.amp_dtype == torch.bfloat16 and not bf16.scaler.is_enabled()  # bf16 needs no scaler
    seen = []
    bf16.model.register_forward_hook(lambda module, args, out: seen.append(torch.is_autocast_enabled("cpu")))
    result = bf16.fit()
    assert seen and all(seen) and math.isfinite(result["train"]["loss"])
    with pytest.raises(ValueError, match="fewer than data.batch_size"):
        make_trainer(tmp_path, val=False, **{"data.batch_size": 64})
    with pytest.raises(ValueError, match="unknown; registered objectives are"):
        make_trainer(tmp_path, val=False, **{"objective.name": "nope"})


def test_cpu_steps_use_the_fused_adamw_and_the_plain_attention_kernel(tmp_path):
    from torch.nn.attention import SDPBackend, _cur_sdpa_kernel_backends

    trainer = make_trainer(tmp_path, val=False)
    assert all(group["fused"] for group in trainer.optimizer.param_groups)  # not the per-tensor CPU default
    backends = []
    trainer.model.register_forward_hook(lambda module, args, out: backends.append(_cur_sdpa_kernel_backends()))
    trainer.fit()
    assert backends and all(b == [SDPBackend.MATH] for b in backends)
    assert SDPBackend.FLASH_ATTENTION in _cur_sdpa_kernel_backends()  # restored after the step


def test_builtin_objectives():
    assert {"actionclip", "cross_entropy"} <= set(list_objectives())
    data = TensorVideoDataset(6)
    batch = {"frames": torch.stack([data[i]["frames"] for i in range(6)]), "label": torch.tensor(data.labels)}
    model = FakeVideoModel()
    for texts in ("batch", "classes"):
        loss, metrics = build_objective("actionclip", texts=texts)(model, batch, {}, COLOURS)
        assert loss.ndim == 0 and torch.isfinite(loss) and 0.0 <= float(metrics["acc"]) <= 1.0
        loss.backward()
        assert model.proj.weight.grad is not None
    with pytest.raises(ValueError, match="texts='nope'"):
        build_objective("actionclip", texts="nope")


class KDObjective:
    """Cross-entropy plus soft distillation from the teacher named "t" (what later chapters plug in)."""

    def __init__(self):
        self.teacher_logits = []

    def __call__(self, model, batch, teachers, labels_text):
        logits = model(batch["frames"], labels_text)
        target = teachers["t"](batch["frames"], labels_text, index=batch["index"])
        self.teacher_logits.append(target)
        kd = F.kl_div(logits.log_softmax(-1), target.softmax(-1), reduction="batchmean")
        loss = F.cross_entropy(logits, batch["label"]) + kd
        return loss, {"loss": loss.detach(), "kd": kd.detach()}


def test_teachers_stay_frozen_and_in_eval_mode(tmp_path):
    teacher_model = FakeVideoModel()
    before = params_of(teacher_model)
    objective = KDObjective()
    trainer = Trainer(tiny_config(tmp_path, epochs=1), FakeVideoModel(), TensorVideoDataset(24, seed=1),
                      objective=objective, teachers={"t": teacher_model}, progress=False)
    trainer.model.train()
    assert not teacher_model.training and not teacher_model.drop.training
    assert all(not p.requires_grad for p in teacher_model.parameters())
    parent = nn.ModuleDict({"student": FakeVideoModel(), "teacher": teacher_model}).train()
    assert parent["student"].training and not teacher_model.training and not teacher_model.drop.training
    result = trainer.fit()
    assert "kd" in result["train"] and objective.teacher_logits
    assert all(torch.equal(before[k], v) for k, v in params_of(teacher_model).items())
    assert not teacher_model.training


def test_teacher_cache_reuses_outputs_and_refuses_random_inputs(tmp_path):
    fingerprint = {"teacher": "fake", "class_texts": COLOURS}
    teacher_model = FakeVideoModel()
    deterministic = TensorVideoDataset(24, seed=1, augment=False)

    def run(cache_dir):
        cfg = tiny_config(tmp_path / "run", epochs=2)
        teacher = Teacher("t", teacher_model, TeacherCache(cache_dir, fingerprint))
        objective = KDObjective()
        Trainer(cfg, FakeVideoModel(), deterministic, objective=objective, teachers={"t": teacher},
                progress=False).fit()
        return teacher, objective

    teacher_model.calls = 0
    teacher, first = run(tmp_path / "cache")
    assert teacher.cache.path.is_file() and len(teacher.cache.outputs) == 24
    assert teacher_model.calls == 6  # epoch 1 computes every clip once, epoch 2 reads the cache
    teacher_model.calls = 0
    _, second = run(tmp_path / "cache")
    assert teacher_model.calls == 0
    assert all(torch.equal(a, b) for a, b in zip(first.teacher_logits, second.teacher_logits))
    with pytest.raises(ValueError, match="deterministic inputs"):
        Trainer(tiny_config(tmp_path), FakeVideoModel(), TensorVideoDataset(24, augment=True), objective=KDObjective(),
                teachers={"t": Teacher("t", FakeVideoModel(), TeacherCache(tmp_path / "c2", fingerprint))},
                progress=False)
    with pytest.raises(ValueError, match="other class texts"):
        teacher(deterministic[0]["frames"][None], HELDOUT, index=torch.tensor([0]))


def test_freeze_survives_train_calls():
    model = freeze(FakeVideoModel())
    model.train()
    assert not model.training and not model.drop.training
    assert model.eval() is model and not model.training


@register_model("fake-video", clip_backbone=False)  # the one model registry; configs name it like any other
def build_fake_model(backbone=None, num_frames=4, pretrained=None, vocab=tuple(COLOURS + HELDOUT), dim=8,
                     dropout=0.0):
    return FakeVideoModel(vocab=vocab, dim=dim, dropout=dropout)


def build_fake_data(cfg, split, train):
    if split == cfg.data.zeroshot_split:
        return TensorVideoDataset(10, classes=HELDOUT, seed=7, augment=False)
    return TensorVideoDataset(24 if train else 12, seed={"train": 1, "val": 2, "test": 3}[split], augment=train)


register_dataset("fake-data", build_fake_data)


def write_fake_config(tmp_path):
    path = tmp_path / "fake.yaml"
    path.write_text(f"""
seed: 1
epochs: 2
out_dir: {tmp_path / 'run'}
results_dir: {tmp_path / 'results'}
data: {{dataset: fake-data, batch_size: 4, num_frames: 4}}
model: {{name: fake-video, kwargs: {{dim: 8}}}}
optim: {{lr: 5e-2, warmup_epochs: 1}}
objective: {{name: actionclip, kwargs: {{texts: classes}}}}
""")
    return path


def test_train_cli_runs_and_resumes(tmp_path, capsys):
    from actiondistill.cli import main

    config = write_fake_config(tmp_path)
    assert main(["train", "--config", str(config), "epochs=1", "--no-progress", "--json", "-"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["epoch"] == 1 and first["val"]["num_samples"] == 12
    assert main(["train", "--config", str(config), "--resume", "--no-progress", "--json", "-"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["epoch"] == 2 and second["global_step"] == 2 * first["global_step"]
    assert json.loads((tmp_path / "results" / "fake-video-fake-data-seed1.json").read_text())["kind"] == "train"
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert main(["train", "--config", str(config), "optim.lrr=1"]) == 2
    assert "unknown key optim.lrr" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_with_mixed_precision(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2, **{"device": "cuda"})
    assert trainer.amp and trainer.scaler.is_enabled()
    result = trainer.fit()
    assert result["val"]["num_samples"] == 12 and math.isfinite(result["train"]["loss"])
    resumed = make_trainer(tmp_path, epochs=3, **{"device": "cuda"})
    assert resumed.fit(resume=True)["epoch"] == 3


class RecordingDataset(TensorVideoDataset):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: dict[int, list[int]] = {}

    def __getitem__(self, index):
        self.seen.setdefault(self.epoch, []).append(index)
        return super().__getitem__(index)


def test_data_order_is_a_function_of_seed_and_epoch(tmp_path):
    def orders(seed):
        data = RecordingDataset(24, seed=1)
        Trainer(tiny_config(tmp_path, epochs=2, seed=seed), FakeVideoModel(), data, progress=False).fit()
        return data.seen

    first, again, other = orders(5), orders(5), orders(6)
    assert sorted(first[0]) == sorted(first[1]) == list(range(24))
    assert first[0] != first[1] and first == again and first[0] != other[0]


def test_teachers_from_config(tmp_path, monkeypatch):
    from actiondistill.train import build_from_config

    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path / "data"))
    base = load_config(write_fake_config(tmp_path), ["teachers=[{name: big, model: {name: fake-video}}]"])
    trainer = build_from_config(base, progress=False)
    teacher = trainer.teachers["big"]
    assert teacher.cache is None and not teacher.model.training
    assert all(not p.requires_grad for p in teacher.model.parameters())
    with pytest.raises(ValueError, match="deterministic inputs"):  # fake-data augments its training split
        build_from_config(apply_override(base, "teachers.0.cache_outputs=true"), progress=False)


def test_objectives_of_later_chapters_are_found_by_name_in_config_driven_runs():
    from actiondistill.cli.train import load_objectives

    load_objectives()
    assert {"pkd", "compressed_ce", "actionclip", "spatial_multitask", "deit_twohead",
            "clip_contrastive"} <= set(list_objectives())
    with pytest.raises(ValueError, match="objective 'nope': unknown; registered objectives are .*actionclip.*imported"):
        build_objective("nope")
