"""The book's one noise rule: a difference between two settings is judged paired over seeds, against two standard
errors.

Two runs that share a seed share its data order and initialisation draw, so their per-seed differences cancel much
of what the seed alone changes. A difference counts ("gain" or "loss") when the mean of the per-seed differences lies
more than two standard errors of that mean from zero; otherwise it is "none", no measurable difference. With fewer
than two shared seeds there is no spread to judge by, and the verdict is "unknown". Every verdict of the book goes
through `paired_difference`, so that "beyond noise" means the same thing in every chapter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

RULE = ("a difference between two settings counts when the mean of its per-seed differences (the runs paired by "
        "seed) is more than two standard errors from zero; with one seed there is no verdict")


#: What each verdict means, closing a sentence about it.
_MEANING = {"none": ": no measurable difference", "gain": ": a measurable gain", "loss": ": a measurable loss",
            "unknown": ""}


@dataclass(frozen=True)
class PairedDifference:
    """`a - b` paired by seed: mean, spread and the rule's verdict ("gain", "loss", "none" or "unknown")."""

    mean: float
    std: float
    se: float
    seeds: int
    verdict: str
    per_seed: dict[int, float] = field(default_factory=dict)

    @property
    def margin(self) -> float:
        """Two standard errors: how far from zero the mean must lie to count."""
        return 2.0 * self.se

    @property
    def beyond(self) -> bool | None:
        """Whether the difference counts; None with one seed."""
        return None if self.verdict == "unknown" else self.verdict != "none"

    def phrase(self) -> str:
        """How the rule judged it, for the book's prose: 'more than two standard errors (1.2) above zero', ..."""
        if self.verdict == "unknown":
            return "not judged: one seed gives no spread"
        if self.verdict == "none":
            return f"within two standard errors ({self.margin:.1f}) of zero"
        side = "above" if self.verdict == "gain" else "below"
        return f"more than two standard errors ({self.margin:.1f}) {side} zero"

    def sentence(self, what: str) -> str:
        """'{what} (+1.2 points, paired over 3 seeds) is within two standard errors (1.9) of zero: no measurable
        difference', and its variants: a verdict in words for the book."""
        return (f"{what} ({self.mean:+.1f} points, paired over {self.seeds} seed(s)) is "
                f"{self.phrase()}{_MEANING[self.verdict]}")

    def described(self) -> str:
        """'+1.2 points (paired over 3 seed(s), sd 1.6), within two standard errors (1.9) of zero: no measurable
        difference': `sentence` with the spread of the per-seed differences, for sentences that name the
        comparison themselves."""
        spread = "" if math.isnan(self.std) else f", sd {self.std:.1f}"
        return (f"{self.mean:+.1f} points (paired over {self.seeds} seed(s){spread}), "
                f"{self.phrase()}{_MEANING[self.verdict]}")

    def against_noise(self) -> str:
        """'beyond noise (two standard errors of the difference paired over 3 seeds: 1.2 points)', 'within noise
        (...)' or 'with one seed, so no spread to judge it against': the verdict without a side, for sentences that
        state the difference the other way round (b - a, or a drop as a change)."""
        if self.beyond is None:
            return "with one seed, so no spread to judge it against"
        relation = "beyond" if self.beyond else "within"
        return (f"{relation} noise (two standard errors of the difference paired over {self.seeds} seeds: "
                f"{self.margin:.1f} points)")

    def as_dict(self) -> dict[str, Any]:
        values = list(self.per_seed.values())
        return {"mean": self.mean, "std": self.std, "se": self.se, "seeds": self.seeds, "verdict": self.verdict,
                "min": min(values, default=math.nan), "max": max(values, default=math.nan),
                "per_seed": dict(self.per_seed)}


def paired_difference(a: Mapping[int, float] | pd.Series, b: Mapping[int, float] | pd.Series | None = None,
                      points: float = 0.0) -> PairedDifference:
    """`a - b` over the seeds both have (keyed by seed); with `b` None, `a` holds the per-seed differences already.

    `points` raises the bar where a chapter also asks for a practical size: the mean must then exceed both two
    standard errors and `points`.
    """
    left = pd.Series(a, dtype=float)
    diff = (left - pd.Series(b, dtype=float)).dropna() if b is not None else left.dropna()
    n = len(diff)
    mean = float(diff.mean()) if n else math.nan
    std = float(diff.std(ddof=1)) if n > 1 else math.nan
    se = std / math.sqrt(n) if n > 1 else math.nan
    if n < 2:
        verdict = "unknown"
    elif abs(mean) > max(2.0 * se, points):
        verdict = "gain" if mean > 0 else "loss"
    else:
        verdict = "none"
    return PairedDifference(mean, std, se, n, verdict, {int(s): float(d) for s, d in diff.items()})


def paired_by_seed(runs: pd.DataFrame, column: str, a: str, b: str, metric: str = "top1") -> PairedDifference:
    """`paired_difference` of the runs whose `column` is `a` against those where it is `b`, on `metric`. A metric
    the runs do not have (NaN, e.g. zero-shot on a dataset without held-out classes) gives the verdict "unknown"."""
    present = set(runs[column])
    for name in (a, b):
        if name not in present:
            raise ValueError(f"paired_by_seed: no runs with {column} {name!r}; have {sorted(present)}")

    def by_seed(name: str) -> pd.Series:
        return runs.loc[runs[column] == name].groupby("seed")[metric].mean()

    return paired_difference(by_seed(a), by_seed(b))


def pareto_front(table: pd.DataFrame, latency: str = "latency_ms", accuracy: str = "top1_mean") -> pd.Series:
    """True for rows no other row beats: none is at least as fast and at least as accurate, and better in one."""
    lat, acc = table[latency].to_numpy(), table[accuracy].to_numpy()
    front = []
    for i in range(len(table)):
        dominated = any(lat[j] <= lat[i] and acc[j] >= acc[i] and (lat[j] < lat[i] or acc[j] > acc[i])
                        for j in range(len(table)) if j != i)
        front.append(not dominated)
    return pd.Series(front, index=table.index, name="pareto")
