"""The embedded CLIPs shipped with the repository, so that `make book` does not pretrain them on every machine.

Why: pretraining `embedded-base` and distilling `embedded-tiny` takes about half an hour on a 2-core CPU, more than
the whole book's budget, and its result is fixed by the world and the recipe (`pipeline.clip_key`). So the
project's own `pretrain-clip --ship` packs them once into `weights/embedded/<key>/`, with the recipe, the training
log and the SHA-256 of every file, and `ensure_embedded_clips` installs a matching bundle instead of training.

Small files (the issue's budget is 20 MB for both models):
- every weight matrix is stored as int8 with one float32 scale per output row (symmetric, per-row absmax); vectors
  (biases, norms, the logit scale) are stored exactly. The shipped model *is* the dequantized one: its zero-shot
  report is measured again after dequantization, and everything downstream (frame features, the chapters) uses it;
- the token table (49408 rows, of which the world's captions and labels use a few hundred) is not stored: it is
  regenerated from the pretraining seed exactly as `pipeline._run_stage` initialises it, and only the rows that
  training changed are stored (the table has no weight decay, so the others never move).
Installing checks each file's SHA-256 and the reconstructed weights' hash, so a bundle made by another version of
the model code is an error naming the command that re-makes it, never a silently different model.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import torch

from actiondistill.io import atomic_save, atomic_write_json, file_sha256, read_json

BUNDLE_NAME = "bundle.json"
TOKEN_TABLE = "token_embedding.weight"
#: More changed token rows than this fraction means the regenerated table is not the initial one.
MAX_CHANGED_TOKEN_ROWS = 0.05


def shipped_root() -> Path:
    from actiondistill.paths import project_root

    return project_root() / "weights" / "embedded"


def bundle_dir(key: str, root: str | Path | None = None) -> Path:
    return Path(root or shipped_root()) / key


def has_bundle(key: str, root: str | Path | None = None) -> bool:
    return (bundle_dir(key, root) / BUNDLE_NAME).is_file()


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8: (int8 tensor of `weight`'s shape, float32 scale per row of dim 0)."""
    rows = weight.detach().float().reshape(weight.shape[0], -1)
    scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(weight.shape), scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (q.float().reshape(q.shape[0], -1) * scale[:, None]).reshape(q.shape)


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """A hash of a state dict's names, dtypes, shapes and values (key order does not matter)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def initial_token_table(name: str, seed: int, base: Any = None) -> torch.Tensor:
    """The token table `name` starts pretraining with: `embedded-base`'s random initialisation under `seed`, or
    `embedded-tiny`'s inheritance from the trained `base` (as `pipeline._run_stage` builds them)."""
    from actiondistill.engine.seeding import seed_everything
    from actiondistill.models import create_backbone, make_inherited

    seed_everything(seed)
    if name == "embedded-base":
        return create_backbone(name).state_dict()[TOKEN_TABLE].clone()
    if base is None:
        raise ValueError(f"initial token table of {name}: needs the trained embedded-base it inherits from")
    return make_inherited(base, name)[0].state_dict()[TOKEN_TABLE].clone()


def pack_state(state: dict[str, torch.Tensor], initial_table: torch.Tensor) -> dict[str, torch.Tensor]:
    """The tensors of one model's bundle file (see the module docstring)."""
    packed: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name == TOKEN_TABLE:
            changed = torch.nonzero((tensor != initial_table).any(dim=1)).flatten()
            if len(changed) > MAX_CHANGED_TOKEN_ROWS * len(tensor):
                raise ValueError(f"token table: {len(changed)} of {len(tensor)} rows differ from the regenerated "
                                 "initial table; it cannot be regenerated from the seed (trained with weight decay?)")
            packed[f"{name}.rows"] = changed
            packed[f"{name}.values"] = tensor[changed].float().contiguous()
        elif tensor.is_floating_point() and tensor.ndim >= 2:
            packed[f"{name}.q8"], packed[f"{name}.scale"] = quantize(tensor)
        else:
            packed[name] = tensor.detach().cpu().contiguous()
    return packed


def unpack_state(packed: dict[str, torch.Tensor], initial_table: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's state dict from its bundle tensors: the inverse of `pack_state`, up to the int8 rounding."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in packed.items():
        if name.endswith(".q8"):
            base = name[: -len(".q8")]
            state[base] = dequantize(tensor, packed[f"{base}.scale"])
        elif name.endswith(".scale") or name.endswith(".values"):
            continue
        elif name == f"{TOKEN_TABLE}.rows":
            table = initial_table.clone().float()
            table[tensor] = packed[f"{TOKEN_TABLE}.values"]
            state[TOKEN_TABLE] = table
        else:
            state[name] = tensor
    return state


def remake_command(manifest: dict[str, Any]) -> str:
    """The command that re-makes a bundle of this world with the default recipe."""
    world = manifest.get("world", "standard")
    return (f"python -m actiondistill pretrain-clip --world {world} --videos {len(manifest['clips'])} "
            f"--size {manifest['size']} --frames {manifest['frames']} --seed {manifest['seed']} --ship")


def pack(clips_dir: str | Path, root: str | Path | None = None, progress: bool = True) -> Path:
    """Pack a complete `ensure_embedded_clips` folder into `weights/embedded/<key>/`; returns the bundle folder.

    The report shipped with it is measured again on the dequantized models (the held-out frames of the folder).
    """
    import numpy as np
    from safetensors.torch import save_file

    from actiondistill.data.synthetic import load_manifest
    from actiondistill.models.checkpoints import read_state_dict
    from actiondistill.pretrain.pipeline import HELDOUT_SPLITS, REPORT_NAME, STAGES, heldout_zero_shot

    clips_dir = Path(clips_dir)
    report = read_json(clips_dir / REPORT_NAME)
    seed = int(report["config"]["seed"])
    out = bundle_dir(clips_dir.name, root)
    out.mkdir(parents=True, exist_ok=True)
    files, hashes, models = {}, {}, {}
    for name in STAGES:
        initial = initial_token_table(name, seed, models.get("embedded-base"))
        packed = pack_state(read_state_dict(clips_dir / f"{name}.pt")[0], initial)
        path = out / f"{name}.safetensors"
        atomic_save(path, lambda tmp, packed=packed: save_file(packed, str(tmp)))
        models[name] = _rebuilt(name, packed, initial)
        hashes[name] = state_sha256(models[name].state_dict())
        files[path.name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        shutil.copyfile(clips_dir / f"{name}.json", out / f"{name}.json")  # the stage's training log
    manifest = load_manifest(report["manifest"])
    zero_shot = heldout_zero_shot(models, np.load(clips_dir / "frames-heldout.npz"), manifest, seed, progress)
    report["models"] = {name: {**report["models"][name], "zero_shot": zero_shot[name],
                               "zero_shot_before_packing": report["models"][name]["zero_shot"]} for name in STAGES}
    atomic_write_json(out / BUNDLE_NAME, {
        "key": clips_dir.name, "recipe": report["config"], "version": report["version"],
        "remake": remake_command(manifest), "files": files, "state_sha256": hashes,
        "quantization": "int8 per output row (symmetric absmax), vectors exact; token table regenerated from the "
                        "seed, changed rows stored", "splits": list(HELDOUT_SPLITS),
        "report": {**report, "shipped": True},
    })
    return out


def _rebuilt(name: str, packed: dict[str, torch.Tensor], initial_table: torch.Tensor) -> Any:
    """The backbone `name` with the weights of its bundle tensors."""
    from actiondistill.models import create_backbone

    model = create_backbone(name)
    model.load_state_dict(unpack_state(packed, initial_table))
    return model


def install(key: str, out: str | Path, manifest_path: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """Write the shipped models of `key` into a clips folder `out` (the layout `ensure_embedded_clips` reads) for the
    world of `manifest_path` (whose bytes the key hashes).

    Raises ValueError naming the file when a hash does not match.
    """
    from safetensors.torch import load_file

    from actiondistill.models import save_weights
    from actiondistill.pretrain.pipeline import REPORT_NAME, STAGES

    source = bundle_dir(key, root)
    bundle = read_json(source / BUNDLE_NAME)
    remake = f"re-make it with `{bundle.get('remake', 'python -m actiondistill pretrain-clip --ship')}`"
    for file, meta in bundle["files"].items():
        if file_sha256(source / file) != meta["sha256"]:
            raise ValueError(f"{source / file}: SHA-256 differs from {source / BUNDLE_NAME}; the file is damaged "
                             f"or was changed ({remake})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, Any] = {}
    for name in STAGES:
        initial = initial_token_table(name, int(bundle["recipe"]["seed"]), models.get("embedded-base"))
        models[name] = model = _rebuilt(name, load_file(str(source / f"{name}.safetensors")), initial)
        if state_sha256(model.state_dict()) != bundle["state_sha256"][name]:
            raise ValueError(f"{source / f'{name}.safetensors'}: the reconstructed {name} differs from the one packed "
                             f"(its token table is regenerated from the seed by this version's model code); {remake}")
        save_weights(model, out / f"{name}.pt")
        shutil.copyfile(source / f"{name}.json", out / f"{name}.json")
    atomic_write_json(out / "pretrain_config.json", {"version": bundle["version"], **bundle["recipe"],
                                                     "installed_from": str(source)})
    # last: its presence marks a complete folder
    atomic_write_json(out / REPORT_NAME, {**bundle["report"], "manifest": str(manifest_path)})
    return bundle
