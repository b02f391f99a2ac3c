"""The one Trainer every chapter uses: a model, a training set, an objective, optional frozen teachers.

What it guarantees:
- Reproducibility: the data order, augmentations and text-template draws of an epoch are a function of
  (seed, epoch, rank) only, and a checkpoint is written (atomically) after every epoch with the model, optimiser,
  scheduler, grad scaler, RNG states and metric history, so `fit(resume=True)` after an interruption ends with
  exactly the parameters and metrics of an uninterrupted run (bit for bit on CPU; on GPUs as far as the kernels
  are deterministic, see torch.use_deterministic_algorithms).
- One code path from a laptop CPU to many GPUs: under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) it starts
  the process group (nccl on CUDA, gloo on CPU), wraps the model in DistributedDataParallel, shards the data
  with a DistributedSampler, reduces metrics over ranks, and lets rank 0 alone write files.
- ActionCLIP's optimisation recipe: AdamW with a faster fusion group, cosine schedule with linear warm-up per
  optimiser step, gradient accumulation, gradient clipping, and mixed precision on CUDA only.

Outputs in `out_dir`: checkpoint.pt (latest), best.pt (best validation `eval.monitor`), metrics.jsonl (one line
per epoch and per evaluation), config.yaml, result.json; and the run's record in data/results/<run_name>.json.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from actiondistill.config import ModelConfig, TrainConfig, save_config, to_dict
from actiondistill.engine.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    load_checkpoint,
    load_model_weights,
    save_checkpoint,
)
from actiondistill.engine.class_subset import ClassSubset
from actiondistill.engine.distributed import (
    DistEnv,
    barrier,
    init_distributed,
    reduce_sums,
    resolve_device,
    unwrap_model,
)
from actiondistill.engine.objectives import Objective, build_objective, metric_value
from actiondistill.engine.optim import build_optimizer, build_scheduler, current_lrs
from actiondistill.engine.records import build_record, write_record
from actiondistill.engine.seeding import derive_seed, rng_state, seed_everything, set_rng_state, worker_init_fn
from actiondistill.engine.teachers import Teacher, TeacherCache
from actiondistill.engine.time_reversal import TimeReversed, check_teachers
from actiondistill.evaluate import class_texts_of, evaluate, scalar_metrics
from actiondistill.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

Callback = Callable[["Trainer", str, dict[str, Any]], None]


def default_run_name(cfg: TrainConfig) -> str:
    return cfg.run_name or f"{cfg.model.name}-{cfg.data.dataset}-seed{cfg.seed}"


def default_out_dir(cfg: TrainConfig) -> Path:
    from actiondistill.paths import data_dir

    return Path(cfg.out_dir) if cfg.out_dir else data_dir() / "runs" / default_run_name(cfg)


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _has_classes(dataset: Any) -> bool:
    return bool(getattr(dataset, "class_texts", None) or getattr(dataset, "classes", None))


def _as_teachers(teachers: Mapping[str, nn.Module | Teacher] | Sequence[nn.Module | Teacher] | None
                 ) -> dict[str, Teacher]:
    if teachers is None:
        return {}
    items = teachers.items() if isinstance(teachers, Mapping) else (
        (t.name if isinstance(t, Teacher) else f"teacher{i}", t) for i, t in enumerate(teachers))
    return {name: t if isinstance(t, Teacher) else Teacher(name, t) for name, t in items}


def _step_attention(device: torch.device) -> contextlib.AbstractContextManager:
    """The attention kernel of a training step. On a CPU, torch's flash-attention kernel is tuned for long
    sequences; the text prompts and the temporal heads here attend over 8-16 tokens, where its backward pass cost
    a sixth of a chapter-2 step under bf16 and the plain matmul-softmax path is faster (measured, README)."""
    if device.type != "cpu":
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


class Trainer:
    """Train `model` on `train_data` with a pluggable objective; see the module docstring for the guarantees.

    Args:
        cfg: the run's config (optimiser, epochs, batch size, seed, device, evaluation...).
        model: a video model; called as `model(frames, class_texts) -> logits` by the built-in objectives.
        train_data: a map-style dataset of dicts {"frames", "label", "index", ...} with a `classes` (or
            `class_texts`) list; `set_epoch(epoch)` is called each epoch when it exists. A dataset without
            classes (e.g. image-caption pairs for CLIP pretraining) gives the objective an empty `labels_text`;
            its items need an "index" (or "label") entry, which counts the batch's samples.
        val_data: optional dataset evaluated every `cfg.eval.every` epochs and after the last one.
        objective: an Objective, a registered objective name, or None for `cfg.objective`.
        teachers: frozen teacher models (name -> module or `Teacher`), passed to the objective.
        out_dir: run folder (default `cfg.out_dir`, else data/runs/<run_name>).
        progress: tqdm bars (rank 0 only).
        callbacks: `callback(trainer, event, info)` for events "step_end" and "epoch_end".
        checkpoints: write the resumable `checkpoint.pt` and the best model's `best.pt` after every epoch. A caller
            whose run is short and kept only as its final weights (a chapter's grid, which re-runs a missing run
            whole) turns them off: for a one-minute run on cached embeddings they were about a tenth of its time.
            The epoch log (`metrics.jsonl`) is written either way.
    """

    def __init__(self, cfg: TrainConfig, model: nn.Module, train_data: Any, val_data: Any = None,
                 objective: Objective | str | None = None,
                 teachers: Mapping[str, nn.Module | Teacher] | Sequence[nn.Module | Teacher] | None = None,
                 out_dir: str | Path | None = None, progress: bool = True, callbacks: Sequence[Callback] = (),
                 checkpoints: bool = True):
        self.cfg = cfg
        self.checkpoints = checkpoints
        self.env = DistEnv.from_env()
        self.device = resolve_device(cfg.device, self.env)
        self.started_process_group = init_distributed(self.env, self.device, cfg.distributed.backend)
        self.out_dir = Path(out_dir) if out_dir is not None else default_out_dir(cfg)
        self.run_name = default_run_name(cfg)
        self.progress = progress and self.env.is_main
        self.callbacks = list(callbacks)
        self.train_data = train_data
        self.val_data = val_data
        self.labels_text = class_texts_of(train_data) if _has_classes(train_data) else []
        self.val_texts = class_texts_of(val_data) if val_data is not None else None
        if objective is None:
            objective = build_objective(cfg.objective.name, **cfg.objective.kwargs)
        elif isinstance(objective, str):
            objective = build_objective(objective)
        self.objective = objective
        self.teachers = {name: t.to(self.device) for name, t in _as_teachers(teachers).items()}
        for teacher in self.teachers.values():
            if teacher.cache is not None:
                TeacherCache.check_deterministic(train_data, "training data")
        if cfg.data.time_reversal:  # outermost, so that a teacher's frames are reversed with the student's
            check_teachers(cfg.data.time_reversal, [n for n, t in self.teachers.items() if t.cache is not None])
            self.train_data = train_data = TimeReversed(train_data, cfg.data.time_reversal, cfg.seed)

        if cfg.optim.amp_dtype not in ("float16", "bfloat16"):
            raise ValueError(f"optim.amp_dtype={cfg.optim.amp_dtype!r}: expected 'float16' or 'bfloat16'")
        self.amp_dtype = getattr(torch, cfg.optim.amp_dtype)
        # Mixed precision on a GPU; on a CPU only in bf16, which CPUs with AVX512-BF16/AMX run natively (a
        # training step of the book's teacher 1.7x faster on this project's CPU), while fp16 there is emulated.
        self.amp = cfg.optim.amp and (self.device.type == "cuda" or self.amp_dtype == torch.bfloat16)
        model = model.to(self.device)
        if self.env.enabled:
            model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.distributed.find_unused_parameters)
        self.model = model
        for key, value in (("optim.grad_accum", cfg.optim.grad_accum), ("eval.every", cfg.eval.every),
                           ("data.batch_size", cfg.data.batch_size)):
            if value < 1:
                raise ValueError(f"{key}={value}: expected >= 1")
        self.sampler = DistributedSampler(train_data, num_replicas=self.env.world_size, rank=self.env.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=False)
        batches = len(self.sampler) // cfg.data.batch_size
        if batches == 0:
            raise ValueError(f"training data: {len(self.sampler)} clips per process is fewer than data.batch_size="
                             f"{cfg.data.batch_size} (incomplete batches are dropped)")
        self.steps_per_epoch = math.ceil(batches / cfg.optim.grad_accum)
        self.optimizer = build_optimizer(unwrap_model(model), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch, cfg.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp and self.amp_dtype == torch.float16)
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.last_eval: dict[str, Any] | None = None

    # ------------------------------------------------------------------ public
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train until `cfg.epochs`; with `resume`, continue from `out_dir/checkpoint.pt` when it exists.

        Returns the final metrics: {"epoch", "global_step", "train": last epoch's training metrics, "val": the
        last evaluation (full, with confusion matrix) or None, "best": best monitored validation value}.
        """
        started = time.time()
        if resume and self.checkpoint_path.is_file():
            self.load(self.checkpoint_path)
            log.info("resumed %s at epoch %d", self.checkpoint_path, self.epoch)
        elif resume:
            log.info("nothing to resume in %s: starting from scratch", self.out_dir)
        if self.env.is_main:
            save_config(self.cfg, self.out_dir / "config.yaml")
        for epoch in range(self.epoch, self.cfg.epochs):
            entries = [{"epoch": epoch + 1, "split": "train", **self._train_epoch(epoch)}]
            if self.val_data is not None and ((epoch + 1) % self.cfg.eval.every == 0 or epoch + 1 == self.cfg.epochs):
                entries.append({"epoch": epoch + 1, "split": "val", **self._validate()})
            self.history.extend(entries)
            self.epoch = epoch + 1
            for teacher in self.teachers.values():
                if teacher.cache is not None:
                    teacher.cache.flush(write=self.env.is_main)
            improved = len(entries) > 1 and self._improved(entries[-1])  # on every rank: all return `best`
            if self.env.is_main:
                self._write_epoch(improved)
            barrier()
            self._emit("epoch_end", {"epoch": self.epoch, "entries": entries})
        result = self.final_metrics()
        if self.env.is_main:
            record = build_record("train", self.run_name, result, config=to_dict(self.cfg), seed=self.cfg.seed,
                                  model=unwrap_model(self.model), device=self.device, started=started,
                                  history=self.history, world_size=self.env.world_size, out_dir=str(self.out_dir))
            atomic_write_json(self.out_dir / "result.json", record)
            write_record(record, self.cfg.results_dir)
        barrier()
        return result

    def final_metrics(self) -> dict[str, Any]:
        train = [h for h in self.history if h["split"] == "train"]
        return {"epoch": self.epoch, "global_step": self.global_step,
                "train": {k: v for k, v in train[-1].items() if k not in ("epoch", "split")} if train else None,
                "val": self.last_eval, "best": self.best}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "rng": rng_state(),
            "history": self.history,
            "best": self.best,
            "last_eval": self.last_eval,
            "config": to_dict(self.cfg),
            "run_name": self.run_name,
        }

    def load(self, path: str | Path) -> None:
        """Restore the full training state from a Trainer checkpoint."""
        state = load_checkpoint(path, map_location=self.device)
        if state.get("config") != to_dict(self.cfg):
            changed = _changed_keys(state.get("config") or {}, to_dict(self.cfg))
            log.warning("%s: resuming with a changed config (%s); the run will differ from an uninterrupted one",
                        path, ", ".join(changed) or "unknown")
        unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # The schedule's shape comes from the current config (a run resumed with more epochs continues on the
        # longer cosine); only its position is restored. Unchanged configs give the stored learning rates exactly.
        shapes = [dict(f.__dict__) for f in self.scheduler.lr_lambdas]
        self.scheduler.load_state_dict(state["scheduler"])
        for f, shape in zip(self.scheduler.lr_lambdas, shapes):
            f.__dict__.update(shape)
        for group, base, f in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas):
            group["lr"] = base * f(self.scheduler.last_epoch)
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = list(state["history"])
        self.best = state["best"]
        self.last_eval = state["last_eval"]
        set_rng_state(state["rng"])

    # ------------------------------------------------------------------ internals
    def _emit(self, event: str, info: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback(self, event, info)

    def _begin_epoch(self, epoch: int) -> DataLoader:
        """Make everything random in this epoch a function of (seed, epoch, rank) and build its loader."""
        seed = derive_seed(self.cfg.seed, epoch, self.env.rank)
        seed_everything(seed)
        net = unwrap_model(self.model)
        if hasattr(net, "seed_templates"):
            net.seed_templates(derive_seed(self.cfg.seed, epoch, self.env.rank, 1))
        self.sampler.set_epoch(epoch)
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(epoch)
        if hasattr(self.objective, "set_epoch"):
            self.objective.set_epoch(epoch)
        return DataLoader(self.train_data, batch_size=self.cfg.data.batch_size, sampler=self.sampler,
                          num_workers=self.cfg.data.num_workers, drop_last=True,
                          pin_memory=self.device.type == "cuda", worker_init_fn=worker_init_fn,
                          generator=torch.Generator().manual_seed(seed))

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        loader = self._begin_epoch(epoch)
        self.model.train()
        accum = self.cfg.optim.grad_accum
        n_batches = len(loader)
        sums: dict[str, float] = {}
        seen = 0
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", disable=not self.progress, leave=False)
        for i, batch in enumerate(bar):
            batch = _to_device(batch, self.device)
            window_start = (i // accum) * accum
            window = min(accum, n_batches - window_start)
            steps_now = i == window_start + window - 1
            sync = self.model.no_sync() if self.env.enabled and not steps_now else contextlib.nullcontext()
            with sync, _step_attention(self.device):
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                    loss, metrics = self.objective(self.model, batch, self.teachers, self.labels_text)
                if not torch.isfinite(loss.detach()):
                    raise RuntimeError(f"non-finite loss {float(loss)} at epoch {epoch + 1}, batch {i} "
                                       "(lower optim.lr or set optim.clip_grad)")
                self.scaler.scale(loss / window).backward()
            if steps_now:
                self._optimizer_step()
            size = int(batch["label" if "label" in batch else "index"].shape[0])
            seen += size
            values = {k: metric_value(v) for k, v in metrics.items()}
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value * size
            if self.progress:
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()})
            self._emit("step_end", {"epoch": epoch, "batch": i, "global_step": self.global_step, **values})
        totals = reduce_sums({**sums, "__samples": float(seen)})
        samples = totals.pop("__samples")
        out = {k: v / samples for k, v in sorted(totals.items())}
        out.update(current_lrs(self.optimizer))
        out["samples"] = int(samples)
        out["time_s"] = round(time.perf_counter() - start, 3)
        return out

    def _optimizer_step(self) -> None:
        if self.cfg.optim.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                           self.cfg.optim.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.global_step += 1

    def _validate(self) -> dict[str, float]:
        result = evaluate(self.model, self.val_data, self.val_texts, views=self.cfg.eval.clips,
                          batch_size=self.cfg.eval.batch_size or self.cfg.data.batch_size, device=self.device,
                          num_workers=self.cfg.data.num_workers, amp=self.amp, progress=self.progress, desc="val")
        self.last_eval = result
        return scalar_metrics(result)

    def _improved(self, entry: dict[str, Any]) -> bool:
        key = self.cfg.eval.monitor
        if key not in entry:
            raise ValueError(f"eval.monitor={key!r}: not a validation metric; expected one of "
                             f"{[k for k in entry if k not in ('epoch', 'split')]}")
        value = float(entry[key])
        better = self.best is None or (value < self.best if key == "nll" else value > self.best)
        if better:
            self.best = value
        return better

    def _write_epoch(self, improved: bool) -> None:
        if self.checkpoints:
            save_checkpoint(self.checkpoint_path, self.state_dict())
        if improved and self.checkpoints:
            save_checkpoint(self.out_dir / BEST_NAME, {"model": unwrap_model(self.model).state_dict(),
                                                       "epoch": self.epoch, "metrics": self.last_eval,
                                                       "config": to_dict(self.cfg), "run_name": self.run_name})
        atomic_write_text(self.out_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in self.history))


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


# ---------------------------------------------------------------------- building runs from configs
DatasetBuilder = Callable[[TrainConfig, str, bool], Any]
_DATASET_BUILDERS: dict[str, DatasetBuilder] = {}


def register_dataset(name: str, builder: DatasetBuilder) -> None:
    """Let configs name a dataset built by `builder(cfg, split, train) -> dataset` (e.g. in-memory tensors)."""
    _DATASET_BUILDERS[name] = builder


def build_model(mcfg: ModelConfig, num_frames: int) -> nn.Module:
    """The model a config names, with `mcfg.checkpoint`'s weights when given."""
    from actiondistill.models import create_model

    model = create_model(mcfg.name, backbone=mcfg.backbone, num_frames=num_frames, pretrained=mcfg.pretrained,
                         **mcfg.kwargs)
    if mcfg.checkpoint:
        load_model_weights(model, mcfg.checkpoint)
    return model


def build_dataset(cfg: TrainConfig, split: str, train: bool) -> Any:
    """The dataset of one split: training sampling/augmentation when `train`, else eval-style (deterministic)."""
    if cfg.data.dataset in _DATASET_BUILDERS:
        return _DATASET_BUILDERS[cfg.data.dataset](cfg, split, train)
    from actiondistill.data.datasets import VideoDataset, hmdb51, ucf101
    from actiondistill.data.sampling import FrameSampler
    from actiondistill.data.transforms import eval_transform, train_transform

    d = cfg.data
    clips = 1 if train else cfg.eval.clips
    if clips > 1 and d.sampler != "dense":
        raise ValueError(f"eval.clips={clips}: multi-clip testing needs data.sampler=dense, got {d.sampler!r}")
    sampler = FrameSampler(kind=d.sampler, frames=d.num_frames, train=train, num_clips=clips,
                           **d.kwargs.get("sampler", {}))
    transform = (train_transform(d.size, flip=d.flip, **d.kwargs.get("train_transform", {})) if train
                 else eval_transform(d.size, **d.kwargs.get("eval_transform", {})))
    common = {"sampler": sampler, "transform": transform, "seed": cfg.seed, **d.kwargs.get("dataset", {})}
    if d.dataset in ("hmdb51", "ucf101"):
        from actiondistill.data.sources import real_dataset_root

        builder = hmdb51 if d.dataset == "hmdb51" else ucf101
        return builder(real_dataset_root(d.dataset, d.root), split=d.fold, subset=split, **common)
    if not d.manifest:
        raise ValueError(f"data.manifest: required for dataset {d.dataset!r} (a manifest.json or its folder, e.g. "
                         "from `python -m actiondistill synth --out DIR --videos N`)")
    from actiondistill.paths import data_dir

    manifest = Path(d.manifest) if Path(d.manifest).is_absolute() else data_dir() / d.manifest
    dataset = VideoDataset.from_manifest(manifest, split, **common)
    return _seen_or_heldout(dataset, manifest, split, zero_shot=split == d.zeroshot_split)


def _seen_or_heldout(dataset: Any, manifest: Path, split: str, zero_shot: bool) -> Any:
    """The synthetic world lists seen classes first, then held-out ones (`num_seen_classes`): every split but the
    zero-shot one is restricted to the seen classes, the zero-shot split to the held-out ones."""
    from actiondistill.data.datasets import MANIFEST_NAME
    from actiondistill.io import read_json

    path = manifest / MANIFEST_NAME if manifest.is_dir() else manifest
    seen = read_json(path).get("num_seen_classes")
    if seen is None or seen >= len(dataset.classes):
        return dataset
    ids = range(seen, len(dataset.classes)) if zero_shot else range(seen)
    return ClassSubset(dataset, ids, name=f"{path} split {split!r}")


def build_teacher(cfg: TrainConfig, tcfg: Any, class_texts: Sequence[str]) -> Teacher:
    """A frozen teacher from its config; with `cache_outputs`, its logits are cached under data/cache/."""
    from actiondistill.paths import data_dir

    model = build_model(tcfg.model, cfg.data.num_frames)
    cache = None
    if tcfg.cache_outputs:
        fingerprint = {"teacher": to_dict(tcfg.model), "data": to_dict(cfg.data) | {"batch_size": None,
                       "num_workers": None}, "split": cfg.data.train_split, "seed": cfg.seed,
                       "class_texts": list(class_texts)}
        if tcfg.model.checkpoint:
            stat = Path(tcfg.model.checkpoint).stat()
            fingerprint["checkpoint_stat"] = [stat.st_size, stat.st_mtime_ns]
        cache = TeacherCache(data_dir() / "cache" / "teacher_outputs", fingerprint)
    return Teacher(tcfg.name, model, cache)


def build_from_config(cfg: TrainConfig, progress: bool = True, callbacks: Sequence[Callback] = ()) -> Trainer:
    """Model, datasets and teachers from the config, then the Trainer (what `python -m actiondistill train` runs)."""
    seed_everything(cfg.seed)
    model = build_model(cfg.model, cfg.data.num_frames)
    train_data = build_dataset(cfg, cfg.data.train_split, train=True)
    val_data = build_dataset(cfg, cfg.data.eval_split, train=False) if cfg.data.eval_split else None
    texts = class_texts_of(train_data)
    teachers = {t.name: build_teacher(cfg, t, texts) for t in cfg.teachers}
    return Trainer(cfg, model, train_data, val_data, teachers=teachers, progress=progress, callbacks=callbacks)
