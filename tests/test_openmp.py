"""Idle OpenMP threads spin briefly in streaming commands: set before torch loads, never over the user's choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch  # noqa: F401  (loaded, as in any test session)

from actiondistill import openmp


def test_the_spin_limit_is_set_only_before_torch_and_never_over_a_users_setting(monkeypatch):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert "torch" in sys.modules and not openmp.limit_spinning()  # too late in this process: libgomp has read it
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "torch")
    assert openmp.limit_spinning() and os.environ["GOMP_SPINCOUNT"] == str(openmp.STREAM_SPINCOUNT)
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")
    assert not openmp.limit_spinning() and os.environ["GOMP_SPINCOUNT"] == "5"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert not openmp.limit_spinning() and "GOMP_SPINCOUNT" not in os.environ
    assert openmp.spin_settings() == {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "PASSIVE"}


def run_cli(*argv: str) -> dict:
    """A command in a fresh interpreter (torch not loaded yet, as from a shell) whose `run` reports the variable."""
    code = ("import json, os, sys\n"
            "from actiondistill import cli\n"
            "from actiondistill.cli import profile, zeroshot\n"
            "seen = {}\n"
            "def record(args):\n"
            "    seen['spin'] = os.environ.get('GOMP_SPINCOUNT'); seen['torch'] = 'torch' in sys.modules\n"
            "    return {}\n"
            "zeroshot.run = profile.run = record\n"
            f"cli.main({[*argv, '--json', '-']!r})\n"
            "print(json.dumps(seen))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_streaming_commands_limit_spinning_and_the_others_do_not():
    assert run_cli("zeroshot", "--video", "x.mp4", "--labels", "a, b") == {"spin": "30000", "torch": False}
    profile = ["profile", "--model", "actionclip-meanp", "--backbone", "embedded-tiny"]
    assert run_cli(*profile, "--mode", "end_to_end", "--stream")["spin"] == "30000"
    assert run_cli(*profile)["spin"] is None


def test_the_spin_benchmark_streams_each_setting_in_its_own_environment(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_openmp_spin.py"
    spec = importlib.util.spec_from_file_location("bench_openmp_spin", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "spin.json"
    result = bench.main(["--backbone", "embedded-tiny", "--runtime", "eager", "--frames", "16", "--rounds", "1",
                         "--settings", "default", "spin 30000", "--threads", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    rows = {row["setting"]: row for row in result["rows"]}
    assert rows["default"]["openmp"] == {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None}
    assert rows["spin 30000"]["openmp"] == {"GOMP_SPINCOUNT": "30000", "OMP_WAIT_POLICY": None}
    assert all(row["fps_best"] > 0 and set(row["stages_ms_best"]) == {"decode", "resize", "encoder", "head"}
               for row in rows.values())
    assert rows["default"]["fps_vs_default_per_round"] == [1.0] and "openmp" not in result["machine"]
