"""torchrun support: read the launcher's environment, start the process group, shard data, reduce metrics.

Single-process runs go through the same functions with world size 1, so there is one code path to test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: RANK / WORLD_SIZE / LOCAL_RANK as torchrun exports them."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistEnv:
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as err:
            raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK: expected integers as torchrun sets them ({err})") from None
        if not 0 <= rank < world:
            raise ValueError(f"RANK={rank}: expected 0 <= RANK < WORLD_SIZE={world}")
        return cls(rank=rank, world_size=world, local_rank=local)


def resolve_device(requested: str, env: DistEnv) -> torch.device:
    """`auto` is the local GPU (cuda:LOCAL_RANK) when there is one, else the CPU."""
    if requested == "auto":
        return torch.device(f"cuda:{env.local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r}: CUDA is not available on this machine (use device=cpu or auto)")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{env.local_rank}")
    return device


def init_distributed(env: DistEnv, device: torch.device, backend: str | None = None) -> bool:
    """Start the default process group when running under torchrun; returns True if this call started it.

    nccl on CUDA, gloo on CPU unless `backend` says otherwise. MASTER_ADDR/PORT come from torchrun.
    """
    if not env.enabled or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend or ("nccl" if device.type == "cuda" else "gloo"),
                            rank=env.rank, world_size=env.world_size)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj` in rank order (a one-element list without a process group)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def reduce_sums(sums: dict[str, float]) -> dict[str, float]:
    """Sum per-key totals over ranks; keys missing on a rank count as 0, so every rank gets the same dict."""
    total: dict[str, float] = {}
    for part in all_gather_objects(sums):
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + float(value)
    return total


def shard_indices(n: int) -> list[int]:
    """This rank's share of range(n) without padding (rank::world), for evaluation that must see each item once."""
    if not is_distributed():
        return list(range(n))
    return list(range(dist.get_rank(), n, dist.get_world_size()))


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The user's model inside a DistributedDataParallel wrapper (itself otherwise).

    Objectives must call the wrapper for the training forward (that is what syncs gradients) but may read
    attributes such as `logit_scale` from the unwrapped model.
    """
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def shutdown_distributed() -> None:
    """Destroy the default process group (end of a torchrun job), if one is running."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
