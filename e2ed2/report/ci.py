"""Mean and 95% Student-t confidence intervals over replicates (seed blocks).

A replicate is one sample set scored once: one sampling-seed block (and one training seed, when
several are run). The interval is mean ± t_{1-α/2, S-1} · s / √S over the S replicates; with a
single replicate it is undefined (NaN), and every rule that needs it says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    replicates: int

    @property
    def known(self) -> bool:
        return self.replicates >= 2 and math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def fmt(self, digits: int = 2) -> str:
        if not math.isfinite(self.mean):
            return "–"
        if not self.known:
            return f"{self.mean:.{digits}f} (S={self.replicates})"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def t_interval(values, level: float = LEVEL) -> Interval:
    """Student-t interval of the mean of ``values`` (NaNs dropped); NaN bounds when S < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    S = len(x)
    if S == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if S < 2:
        return Interval(mean, math.nan, math.nan, S)
    # half-width = t_{(1+level)/2, S-1} · s / √S  (s: sample std, ddof=1)
    h = float(stats.t.ppf((1 + level) / 2, S - 1) * x.std(ddof=1) / math.sqrt(S))
    return Interval(mean, mean - h, mean + h, S)


# Outcome of comparing two intervals on one metric: separated intervals decide, overlap does not.
BETTER, WORSE, OVERLAP, UNKNOWN = "better", "worse", "overlap", "unknown"


def compare(a: Interval, b: Interval, lower_is_better: bool) -> str:
    """Is ``a`` better than ``b`` with non-overlapping 95% intervals? UNKNOWN if either lacks a CI."""
    if not (a.known and b.known):
        return UNKNOWN
    if lower_is_better:
        return BETTER if a.high < b.low else WORSE if a.low > b.high else OVERLAP
    return BETTER if a.low > b.high else WORSE if a.high < b.low else OVERLAP


# Summary of a tidy table: one row per (dataset, method, variant, sampler, steps, nfe, metric) with
# the interval over its replicates (seed blocks × training seeds).
KEYS = ["dataset", "method", "variant", "sampler", "steps", "nfe", "metric"]


def summarise(df, keys=KEYS):
    import pandas as pd

    rows = []
    for key, g in df.groupby(list(keys), dropna=False, sort=True):
        iv = t_interval(g["value"])
        rows.append({**dict(zip(keys, key)), "mean": iv.mean, "ci_low": iv.low, "ci_high": iv.high,
                     "replicates": iv.replicates, "n": g["n"].max(), "ms_per_image": g["ms_per_image"].mean(),
                     "seed_blocks": ",".join(str(int(s)) for s in sorted(g["seed_block"].dropna().unique()))})
    return pd.DataFrame(rows, columns=[*keys, "mean", "ci_low", "ci_high", "replicates", "n", "ms_per_image",
                                       "seed_blocks"])


def interval_of(row) -> Interval:
    return Interval(float(row["mean"]), float(row["ci_low"]), float(row["ci_high"]), int(row["replicates"]))
