"""Chapter 8's real-size table and figure, read from `benchmarks/bench_streaming_realsize.py`'s JSON.

The benchmark streams 224 px TinyCLIP students on the machine it runs on and takes about an hour; the book only
reads its result, so that building the book never re-measures it and every figure names the machine it came from.
Before the benchmark has been run, the table is empty and the figure and summary say how to run it.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actiondistill.io import read_json
from actiondistill.paths import project_root

if TYPE_CHECKING:
    import pandas as pd

COMMAND = "python benchmarks/bench_streaming_realsize.py"
RUNTIME_ORDER = ("eager", "compile", "onnx", "onnx-int8", "bf16", "bf16-compile")


def realsize_path() -> Path:
    return project_root() / "benchmarks" / "results" / "streaming_realsize.json"


def read_realsize(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The benchmark's result, or None when it has not been run on this checkout."""
    path = Path(path) if path is not None else realsize_path()
    return read_json(path) if path.is_file() else None


def machine_label(result: dict[str, Any] | None) -> str:
    """The machine a result was measured on, in one line: CPU, cores, instruction sets, torch, load average."""
    if result is None:
        return f"no measurement yet ({COMMAND})"
    m = result["machine"]
    flags = ", ".join(m.get("cpu_flags") or []) or "no AVX-512/AMX"
    spin = (m.get("openmp") or {}).get("GOMP_SPINCOUNT")
    return (
        f"{m['cpu_model']} ({m['cpu_count']} cores; {flags}), torch {m['torch']}"
        f"{f', GOMP_SPINCOUNT {spin}' if spin else ''}, load average "
        f"{m['load_average'][0]:.1f} before and {m['load_average_after'][0]:.1f} after"
    )


def realsize_table(result: dict[str, Any] | None) -> pd.DataFrame:
    """One row per backbone, runtime and thread setting: best-round FPS and its spread over rounds, frames dropped
    and arrival-to-prediction latency at a 30 FPS source, time per stage, and the runtime's agreement with eager."""
    import pandas as pd

    if result is None:
        return pd.DataFrame(columns=["backbone", "runtime", "threads", "FPS"])
    checks = {(b["backbone"], b["requested"]): b["agreement"] for b in result["builds"]}
    rows = []
    for row in result["rows"]:
        check = checks.get((row["backbone"], row["runtime"])) or {}
        live, stages = row["live"], row["stages_ms"]
        rows.append(
            {
                "backbone": row["backbone"].replace("-Text-", " / text ").replace("TinyCLIP-", ""),
                "runtime": row["ran_as"],
                "threads": row["threads_setting"],
                "FPS": row["fps"]["best"],
                "spread": row["fps"]["spread"],
                f"dropped at {live['source_fps']} FPS": f"{live['dropped']['best']} / {live['frames']}",
                "arrival p50 (ms)": live["arrival_latency_p50_ms"]["best"],
                "arrival p99 (ms)": live["arrival_latency_p99_ms"]["best"],
                **{f"{name} (ms)": stages[name] for name in ("decode", "resize", "encoder", "head")},
                "cosine vs eager": check.get("frame_min_cosine"),
                "top-1 vs eager": check.get("top1_agreement"),
            }
        )
    return pd.DataFrame(rows)


def realsize_summary(result: dict[str, Any] | None) -> str:
    """The targets' verdicts and the book student's agreement, as Markdown sentences."""
    if result is None:
        return (
            f"The real-size benchmark has not been run on this checkout yet: `{COMMAND}` writes "
            "`benchmarks/results/streaming_realsize.json`, which this section reads."
        )
    sentences = [
        f"**{t['backbone']}** (target {t['target_fps']:g} FPS): {t['best_fps']:.0f} FPS at best "
        f"({t['best_runtime']}, {t['best_threads_setting']}), {'' if t['met'] else 'not met: '}{t['verdict']}."
        for t in result["targets"]
    ]
    book = result["book_agreement"]
    if "skipped" in book:
        sentences.append(f"The book student's agreement was not measured: {book['skipped']}.")
    else:
        agreement = ", ".join(
            f"{r['requested']} {r['top1_agreement_with_eager']:.1%}" for r in book["rows"] if r["requested"] != "eager"
        )
        sentences.append(
            f"On the {book['clips']} test clips of its world, the book's trained student "
            f"({book['backbone']}) keeps eager fp32's top-1 label with {agreement}."
        )
    return " ".join(sentences)


def plot_realsize_fps(result: dict[str, Any] | None):
    """FPS per runtime and thread setting, one panel per backbone with its target, titled with the machine; the
    figure says that random weights measure speed only."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if result is None:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, machine_label(None), ha="center", va="center")
        ax.set_axis_off()
        return fig
    table = realsize_table(result)
    targets = {t["backbone"]: t["target_fps"] for t in result["targets"]}
    names = list(dict.fromkeys(row["backbone"] for row in result["rows"]))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.8), squeeze=False)
    order = [r for r in RUNTIME_ORDER if r in set(table["runtime"])]
    for ax, name, shown in zip(axes[0], names, table["backbone"].unique(), strict=True):
        sns.barplot(data=table[table["backbone"] == shown], x="runtime", y="FPS", hue="threads", order=order, ax=ax)
        ax.axhline(targets[name], ls="--", color="0.3", label=f"target {targets[name]:g} FPS")
        ax.axhline(result["rows"][0]["live"]["source_fps"], ls=":", color="0.6", label="camera rate")
        ax.set(title=shown, xlabel="image-encoder runtime", ylabel="frames/s end to end (best round)")
        ax.legend(frameon=False, fontsize=8)
    machine = "\n".join(textwrap.wrap(machine_label(result), 65 * len(names)))
    fig.suptitle(f"Streaming FPS by runtime, random weights (speed only)\n{machine}", fontsize=9)
    fig.tight_layout()
    return fig
