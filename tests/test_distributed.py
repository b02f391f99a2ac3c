"""torchrun support: environment parsing, and two CPU processes (gloo) training one model in agreement."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from actiondistill.engine.distributed import DistEnv, all_gather_objects, reduce_sums, shard_indices

TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    import torch
    import torch.distributed as dist

    sys.path.insert(0, {tests!r})
    from test_trainer import FakeVideoModel, TensorVideoDataset, tiny_config

    from actiondistill.train import Trainer

    out = Path(sys.argv[1])
    rank = int(__import__("os").environ["RANK"])
    torch.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    cfg = tiny_config(out, epochs=2, **{{"optim.grad_accum": 2}})
    trainer = Trainer(cfg, FakeVideoModel(), TensorVideoDataset(24, seed=1),
                      TensorVideoDataset(13, seed=2, augment=False), progress=False)
    result = trainer.fit()
    assert trainer.started_process_group and dist.get_world_size() == 2 and dist.get_backend() == "gloo"
    state = {{k: v.detach().clone() for k, v in trainer.model.module.state_dict().items()}}
    torch.save({{"params": state, "result": result, "env": trainer.env.__dict__, "steps": trainer.steps_per_epoch}},
               out / f"rank{{rank}}.pt")
    dist.destroy_process_group()
""")


def test_dist_env_from_torchrun_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert DistEnv.from_env() == DistEnv(0, 1, 0) and not DistEnv.from_env().enabled
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    env = DistEnv.from_env()
    assert (env.rank, env.world_size, env.local_rank, env.enabled, env.is_main) == (3, 4, 1, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4: expected 0 <= RANK < WORLD_SIZE=4"):
        DistEnv.from_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="expected integers"):
        DistEnv.from_env()


def test_single_process_helpers_are_identity():
    assert all_gather_objects({"a": 1}) == [{"a": 1}]
    assert reduce_sums({"loss": 2.0}) == {"loss": 2.0}
    assert shard_indices(3) == [0, 1, 2]


def test_two_gloo_processes_train_in_agreement(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [r["env"]["rank"] for r in ranks] == [0, 1] and all(r["env"]["world_size"] == 2 for r in ranks)
    a, b = ranks[0]["params"], ranks[1]["params"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = ranks[0]["result"], ranks[1]["result"]
    assert {k: v for k, v in ra["train"].items() if k != "time_s"} == {
        k: v for k, v in rb["train"].items() if k != "time_s"}
    assert ra["val"] == rb["val"] and ra["best"] == rb["best"] is not None
    assert ra["val"]["num_samples"] == 13  # uneven shards, each clip counted once
    assert ra["train"]["samples"] == 24  # 12 clips per rank, summed
    assert ranks[0]["steps"] == 2 and ra["global_step"] == 4  # 3 batches per rank, accumulated by 2
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and (tmp_path / "results" / "tiny.json").is_file()
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(saved[k], a[k]) for k in a)
