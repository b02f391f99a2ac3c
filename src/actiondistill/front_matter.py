"""The introduction's front matter: the book's headline results and how to re-run each chapter.

The headline is chapter 7's final table (`data/results/combined-<profile>.json`), so the introduction shows what the
last build measured rather than numbers typed by hand; the thesis's reported result stands beside it, labelled as
reported. The book runner writes it into the staged introduction in place of `MARKER`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

#: The line of `book/intro.md` that the staged introduction replaces by the front matter.
MARKER = "<!-- front matter: written by the book runner from chapter 7's record -->"


def _top1(row: Mapping[str, Any]) -> str:
    spread = row.get("top1_std")
    spread_text = f" ± {spread:.1f}" if isinstance(spread, (int, float)) and math.isfinite(spread) else ""
    return f"{row['top1_mean']:.1f}{spread_text}"


def headline(record: Mapping[str, Any] | None, profile: str) -> str:
    """Markdown: the teacher and every student of chapter 7's table (top-1 over seeds, speed-up, cost in points),
    the goal's verdict, and the thesis's reported result; without a record, how to make one."""
    if record is None:
        return (f"*The headline results appear here once chapter 7 has run on the `{profile}` profile "
                f"(`python -m actiondistill book --profile {profile}`).*\n")
    from actiondistill.combined import REPORTED

    rows = list(record["table"])
    seeds = len(record.get("seeds", [])) or rows[0].get("seeds", "")
    lines = [
        f"Measured by this build (profile `{profile}`, {record.get('machine', 'machine not recorded')}; top-1 "
        f"closed-set %, mean ± standard deviation over {seeds} seeds; speed-up against the teacher at "
        f"{record.get('frames', '?')} frames, timed side by side):",
        "",
        "| model | top-1 | speed-up | cost: the teacher's top-1 minus this one's (points) |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        cost = f"{row['drop']:+.1f}" if round(row["drop"], 1) else "0"  # the teacher's own row
        lines.append(f"| {row['model']} | {_top1(row)} | {row['speedup']:.2f}x | {cost} |")
    teacher, student = REPORTED[0], REPORTED[1]
    lines += ["", record.get("goal", {}).get("sentence", ""), "",
              f"Reported by the thesis this book reproduces (HMDB51, not comparable with the synthetic world): the "
              f"teacher {teacher['top1']}%, its student ({student['model'].removeprefix('thesis student: ')}) "
              f"{student['top1']}% at {student['speedup']}x the teacher's speed."]
    return "\n".join(lines) + "\n"


def rerun_commands(chapters: Sequence[str], profile: str) -> str:
    """Markdown: a folded box with the commands that re-run each chapter under this profile or other parameters."""
    lines = [":::{admonition} Re-run a chapter", ":class: dropdown", "",
             "Each line re-runs one chapter with this build's profile; the book runner reuses the others. To change a "
             "parameter, run the notebook with papermill (`-p name value`), e.g. another world seed for chapter 1:",
             "", "```bash"]
    lines += [f"python -m actiondistill book --profile {profile} --only {name}" for name in chapters]
    if chapters:
        lines.append(f"papermill book/{chapters[0]}.ipynb /tmp/{chapters[0]}.ipynb -p seed 3")
    lines += ["```", ":::", ""]
    return "\n".join(lines)


def front_matter(profile: str, chapters: Sequence[str], results_dir: str | os.PathLike | None = None) -> str:
    """The headline (from chapter 7's record of `profile`, when there is one) and the re-run box."""
    from actiondistill.chapter_records import record_path
    from actiondistill.io import read_json

    path = record_path("combined", profile, results_dir)
    record = read_json(path) if path.is_file() else None
    return "## The headline\n\n" + headline(record, profile) + "\n" + rerun_commands(chapters, profile)
