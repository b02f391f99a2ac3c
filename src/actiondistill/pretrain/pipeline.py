"""The embedded CLIPs, made once per world: `embedded-base` pretrained, `embedded-tiny` distilled from it.

Stage 1 trains `embedded-base` from random initialisation with CLIP's contrastive loss on frame-caption pairs
(the analogue of ViT-B CLIP). Stage 2 builds `embedded-tiny` by TinyCLIP weight inheritance from the trained base
(even-stride layers, leading slices of every tensor) and trains it with affinity mimicking against the frozen base,
blended with its own contrastive loss (the analogue of TinyCLIP). TinyCLIP shrinks in steps (100 -> 75 -> 50%);
here one inheritance step is used: the tiny model keeps 5 of 6 vision blocks and 3/4 of the vision width, and a
75% stage would cost a third training run for a gap this small (`intermediate_config` builds one if wanted).

Everything lands in data/clips/<key>/, where the key is the world's name plus a hash of the manifest and of the
config: `embedded-base.pt`, `embedded-tiny.pt` (plain state dicts, `create_backbone(name, pretrained=path)` loads
them), `report.json` (zero-shot accuracies, sizes, training times), the decoded frames (.npz) and the Trainer run
folders. A complete folder is reused without training; an interrupted one resumes (finished stages are kept, a
stage in progress continues from the Trainer's last epoch checkpoint, which is deleted once the stage is done).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actiondistill.io import atomic_write_json, read_json

#: Bump when captions, objectives or the recipe change, so old caches are not mistaken for new ones.
PRETRAIN_VERSION = 4  # 2: attribute heads and the pretraining pool; 3: position captions and head; 4: conv stem
STAGES = ("embedded-base", "embedded-tiny")
HELDOUT_SPLITS = ("val", "test")
REPORT_NAME = "report.json"


@dataclass
class StageConfig:
    """One stage's optimisation: AdamW (betas 0.9/0.98), cosine schedule with linear warm-up, gradient clipping."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_epochs: float = 0.3
    clip_grad: float = 1.0


@dataclass
class PretrainConfig:
    """Everything that determines the embedded CLIPs of a world (`device` and `workers` only change speed).

    `frames_per_clip` frames of each training clip are decoded (segment centres), `eval_frames_per_clip` of each
    val/test clip for the zero-shot report. `positives`: "matching" (every caption true of a frame is a positive)
    or "pairs" (plain CLIP). `blend` weighs affinity mimicking against the tiny model's own contrastive loss.
    `jitter`: brightness/contrast/saturation augmentation strength (never hue: colour is an attribute).
    `attribute_weight`: weight of the pretraining-only attribute heads' cross-entropy (`objectives.attribute_loss`,
    why: see `pretrain.objectives`), in both stages; 0 is plain contrastive pretraining.
    The base stage uses batch 32: the same frames in 4x the updates, which the attribute heads need (in 66
    updates at batch 128 they left zero-shot colour at chance).
    `state_weight`: weight of the pretraining-only state head (`pretrain.state`: regression of the main object's
    per-frame position, stripe angle, size and visibility, a privileged target standing in for the spatial knowledge
    of a web-scale CLIP), in both stages; 0 leaves it out. On by default (4, the frame-encoder benchmark's weight)
    since the embedded towers have a convolutional stem (`models.conv_stem`): with it, the frozen embeddings'
    action top-1 rose from 19% to 37% on the standard world (`benchmarks/results/world_ceiling.json`). The plain
    patch-8 ViT learnt no position from it in a few hundred steps (`bench_frame_encoders.py`).
    `extra_clips`: clips rendered only for pretraining (`pool.render_pool`, outside the world's splits), whose
    `frames_per_clip` frames are added to the training pairs; 0 trains on the world's training clips alone.
    """

    frames_per_clip: int = 4
    eval_frames_per_clip: int = 4
    seed: int = 0
    positives: str = "matching"
    blend: float = 0.5
    jitter: float = 0.0
    attribute_weight: float = 1.0
    state_weight: float = 4.0
    extra_clips: int = 0
    base: StageConfig = field(default_factory=lambda: StageConfig(batch_size=32))
    tiny: StageConfig = field(default_factory=StageConfig)
    device: str = "auto"
    workers: int | None = None

    def key_dict(self) -> dict[str, Any]:
        """The fields that change the result (not the device or the decode workers)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("device", "workers")}


def clip_key(manifest_path: str | os.PathLike, cfg: PretrainConfig) -> str:
    """`<world folder>-<12 hex>`: the hash covers the manifest's bytes, the config and PRETRAIN_VERSION."""
    manifest = _manifest_file(manifest_path)
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(manifest.read_bytes()).digest())
    digest.update(json.dumps({"version": PRETRAIN_VERSION, **cfg.key_dict()}, sort_keys=True).encode())
    return f"{manifest.parent.name}-{digest.hexdigest()[:12]}"


def clips_dir(manifest_path: str | os.PathLike, cfg: PretrainConfig, root: str | os.PathLike | None = None) -> Path:
    from actiondistill.paths import data_dir

    return Path(root or data_dir() / "clips") / clip_key(manifest_path, cfg)


def ensure_embedded_clips(manifest_path: str | os.PathLike, cfg: PretrainConfig | None = None, progress: bool = True,
                          force: bool = False, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The embedded CLIPs of a world: trained (or resumed) unless the cache folder is complete.

    Args:
        manifest_path: a SynthActions manifest.json (or its folder), e.g. from `synthactions_manifest`.
        cfg: the recipe (default `PretrainConfig()`).
        force: delete this key's folder first and train again (a shipped bundle is then not used either).
        root: where cache folders live (default data/clips).

    A folder missing here is installed from the repository's shipped bundle of the same key when there is one
    (`pretrain.shipped`: int8 weights made by `pretrain-clip --ship`), which is how `make book` skips pretraining.

    Returns {"dir", "key", "reused" (True when nothing was trained), "source" ("cache", "shipped" or "trained"),
    "checkpoints": {name: path}, "report_path", "report"}.
    """
    cfg = cfg or PretrainConfig()
    manifest = _manifest_file(manifest_path)
    out = clips_dir(manifest, cfg, root)
    if force and out.exists():
        shutil.rmtree(out)
    checkpoints = {name: out / f"{name}.pt" for name in STAGES}
    report_path = out / REPORT_NAME
    source = "cache" if report_path.is_file() and all(p.is_file() for p in checkpoints.values()) else None
    from actiondistill.pretrain import shipped  # torch: not at import, so the CLI's parser stays light

    if source is None and not force and shipped.has_bundle(out.name):
        shipped.install(out.name, out, manifest)
        source = "shipped"
    if source is None:
        _build(manifest, cfg, out, progress)
        source = "trained"
    return {"dir": str(out), "key": out.name, "reused": source != "trained", "source": source,
            "checkpoints": {name: str(p) for name, p in checkpoints.items()}, "report_path": str(report_path),
            "report": read_json(report_path)}


def provenance(clips: Mapping[str, Any]) -> str:
    """Where an `ensure_embedded_clips` result's weights came from, as a phrase for the book's text: a reader
    must be able to tell shipped weights from weights this run trained."""
    shipped_text = "the repository's shipped weights (`weights/embedded/`, SHA-256 checked)"
    if clips["source"] == "trained":
        return "trained by this run"
    if clips["source"] == "shipped":
        return f"installed by this run from {shipped_text}"
    if clips["report"].get("shipped"):
        return f"{shipped_text}, installed by an earlier run"
    return "reused from the cache (trained by an earlier run)"


def _manifest_file(manifest_path: str | os.PathLike) -> Path:
    path = Path(manifest_path)
    path = path / "manifest.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest (expected a SynthActions manifest.json, e.g. from "
                                "`python -m actiondistill synth`)")
    return path


def _build(manifest_path: Path, cfg: PretrainConfig, out: Path, progress: bool) -> None:
    """Run the missing stages, then write the report (last: its presence marks a complete folder)."""
    import numpy as np

    from actiondistill.data.synthetic import load_manifest
    from actiondistill.models import create_backbone
    from actiondistill.pretrain.frames import FrameCaptionDataset, cached_frames, frame_positions
    from actiondistill.pretrain.pool import cached_pool, with_pool
    from actiondistill.pretrain.state import frame_states

    manifest = load_manifest(manifest_path)
    atomic_write_json(out / "pretrain_config.json", {"manifest": str(manifest_path), "version": PRETRAIN_VERSION,
                                                     **dataclasses.asdict(cfg)})
    started = time.perf_counter()
    train = cached_frames(out / "frames-train.npz", manifest_path, ["train"], cfg.frames_per_clip, cfg.workers,
                          progress)
    heldout = cached_frames(out / "frames-heldout.npz", manifest_path, list(HELDOUT_SPLITS),
                            cfg.eval_frames_per_clip, cfg.workers, progress)
    frames, clips, frame_index, pairs_manifest = train["frames"], train["clip"], train["frame"], manifest
    if cfg.extra_clips:
        pool = cached_pool(out / "frames-pool.npz", manifest, cfg.extra_clips, cfg.frames_per_clip, cfg.workers,
                           progress)
        pairs_manifest, pool_clips = with_pool(manifest, pool)
        frames, clips = np.concatenate([frames, pool["frames"]]), np.concatenate([clips, pool_clips])
        frame_index = np.concatenate([frame_index, pool["frame"]])
    decode_seconds = time.perf_counter() - started
    states = frame_states(pairs_manifest, clips, frame_index) if cfg.state_weight else None
    dataset = FrameCaptionDataset(frames, clips, pairs_manifest, seed=cfg.seed, jitter=cfg.jitter, states=states,
                                  positions=frame_positions(pairs_manifest, clips, frame_index))
    stages = {name: _run_stage(name, out, dataset, cfg, progress) for name in STAGES}

    started = time.perf_counter()
    trained = {name: create_backbone(name, pretrained=out / f"{name}.pt") for name in STAGES}
    zero_shot = heldout_zero_shot(trained, heldout, manifest, cfg.seed, progress)
    models = {name: {"zero_shot": zero_shot[name], "params": parameter_counts(model), **stages[name]}
              for name, model in trained.items()}
    atomic_write_json(out / REPORT_NAME, {
        "key": out.name, "manifest": str(manifest_path), "version": PRETRAIN_VERSION,
        "config": dataclasses.asdict(cfg),
        "train_frames": len(dataset), "train_clips": int(len(set(train["clip"].tolist()))),
        "pool_clips": cfg.extra_clips,
        "heldout": {"splits": list(HELDOUT_SPLITS), "clips": int(len(set(heldout["clip"].tolist()))),
                    "frames": len(heldout["frames"])},
        "decode_seconds": round(decode_seconds, 2), "report_seconds": round(time.perf_counter() - started, 2),
        "models": models,
    })


def heldout_zero_shot(models: dict[str, Any], heldout: Any, manifest: dict[str, Any], seed: int,
                      progress: bool) -> dict[str, Any]:
    """The report's zero-shot attribute top-1 of each model on the held-out frames (`cached_frames` of val + test)."""
    import torch

    from actiondistill.pretrain.frames import FrameCaptionDataset, frame_positions
    from actiondistill.pretrain.zeroshot import zero_shot_accuracy

    test = FrameCaptionDataset(heldout["frames"], heldout["clip"], manifest, seed=seed,
                               positions=frame_positions(manifest, heldout["clip"], heldout["frame"]))
    with torch.no_grad():
        return {name: zero_shot_accuracy(model, heldout["frames"], test.attributes, test.vocab, progress=progress)
                for name, model in models.items()}


def parameter_counts(model: Any) -> dict[str, int]:
    """Visual tower, text tower (everything else but the logit scale) and total parameters."""
    from actiondistill.models import visual_parameter_count

    total = sum(p.numel() for p in model.parameters())
    visual = visual_parameter_count(model)
    return {"visual": visual, "text": total - visual - model.logit_scale.numel(), "total": total}


def inherited_student(teacher: Any, name: str = "embedded-tiny") -> tuple[Any, Any]:
    """The tiny CLIP's starting point: TinyCLIP weight inheritance from the trained base, in one step."""
    from actiondistill.models import make_inherited

    return make_inherited(teacher, name)


def _train_config(name: str, out: Path, cfg: PretrainConfig, stage: StageConfig, objective: str,
                  kwargs: dict[str, Any]):
    from actiondistill.config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrainConfig

    run = out / f"{name}-run"
    return TrainConfig(
        seed=cfg.seed, run_name=f"pretrain-{name}-{out.name}", out_dir=str(run), results_dir=str(run),
        device=cfg.device, epochs=stage.epochs,
        data=DataConfig(dataset="synthactions-frames", num_frames=1, batch_size=stage.batch_size, flip=False,
                        eval_split=None),
        model=ModelConfig(name="open_clip", backbone=name),
        optim=OptimConfig(lr=stage.lr, fusion_lr_mult=1.0, weight_decay=stage.weight_decay, betas=(0.9, 0.98),
                          warmup_epochs=stage.warmup_epochs, clip_grad=stage.clip_grad),
        objective=ObjectiveConfig(name=objective, kwargs=kwargs),
    )


def _run_stage(name: str, out: Path, dataset: Any, cfg: PretrainConfig, progress: bool) -> dict[str, Any]:
    """Train one stage unless its weights exist; returns its record (stored as `<name>.json`)."""
    from actiondistill.engine.checkpoint import CHECKPOINT_NAME
    from actiondistill.engine.seeding import seed_everything
    from actiondistill.models import create_backbone, save_weights
    from actiondistill.pretrain.frames import CAPTION_ATTRIBUTES
    from actiondistill.pretrain.objectives import (  # and registers the objectives
        attach_attribute_heads,
        attach_state_head,
        detach_pretraining_heads,
    )
    from actiondistill.pretrain.state import STATE_FIELDS
    from actiondistill.train import Trainer

    weights, record_path = out / f"{name}.pt", out / f"{name}.json"
    if weights.is_file() and record_path.is_file():
        return read_json(record_path)
    started = time.perf_counter()
    seed_everything(cfg.seed)
    record: dict[str, Any] = {}
    kwargs = {"positives": cfg.positives, "attribute_weight": cfg.attribute_weight,
              "state_weight": cfg.state_weight}
    if name == "embedded-base":
        model, teachers = create_backbone(name), {}
        tcfg = _train_config(name, out, cfg, cfg.base, "clip_contrastive", kwargs)
    else:
        teacher = create_backbone("embedded-base", pretrained=out / "embedded-base.pt")
        model, inheritance = inherited_student(teacher, name)
        record["inheritance"] = {"layer_map": inheritance.layer_map, "summary": inheritance.summary()}
        teachers = {"teacher": teacher}
        tcfg = _train_config(name, out, cfg, cfg.tiny, "tinyclip_distill", {"blend": cfg.blend, **kwargs})
    if cfg.attribute_weight:
        attach_attribute_heads(model, [len(dataset.vocab[key]) for key in CAPTION_ATTRIBUTES])
    if cfg.state_weight:
        attach_state_head(model, len(STATE_FIELDS))
    trainer = Trainer(tcfg, model.train(), dataset, objective=None, teachers=teachers, progress=progress)
    trainer.fit(resume=True)
    detach_pretraining_heads(model)  # pretraining-only: the saved CLIP is a plain open_clip model
    epochs = [h for h in trainer.history if h["split"] == "train"]
    record.update({
        "train_seconds": round(sum(h["time_s"] for h in epochs), 2), "epochs": len(epochs),
        "stage_seconds": round(time.perf_counter() - started, 2),  # this call's wall time (after a resume: part)
        "steps": trainer.global_step, "batch_size": tcfg.data.batch_size,
        "history": [{k: v for k, v in h.items() if not k.startswith("lr/")} for h in epochs],
    })
    atomic_write_json(record_path, record)
    save_weights(model, weights)
    (trainer.out_dir / CHECKPOINT_NAME).unlink(missing_ok=True)  # optimiser state: only needed to resume
    return record
