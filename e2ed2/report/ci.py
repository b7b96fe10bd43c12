"""Mean and 95% confidence intervals over replicates (seed blocks × training seeds), in range.

A replicate is one sample set scored once: one sampling-seed block of one training seed. The
interval is Student-t over the S replicates, computed where the metric is unbounded: on the
log scale for FID and FD_CLIP (≥ 0), on the logit scale for precision, recall (in [0, 1]) and
the CLIP score (in [0, 100]), then mapped back, so it never leaves the metric's range. With a
single replicate it is undefined (NaN) — except precision/recall, proportions over the
reference (recall) or generated (precision) images, which get a Wilson score interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..metrics import families

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    replicates: int

    @property
    def known(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def fmt(self, digits: int = 2) -> str:
        if not math.isfinite(self.mean):
            return "–"
        if not self.known:
            return f"{self.mean:.{digits}f} (S={self.replicates})"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


# metric → (lower bound, upper bound) of its range; absent = unbounded (e2ed2.metrics.families)
RANGES = {m.name: m.range for m in families.METRICS.values() if m.range is not None}
PROPORTIONS = ("precision", "recall")


def _to_unbounded(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    eps = 1e-6
    if math.isinf(hi):
        return np.log(np.maximum(x - lo, eps))
    p = np.clip((x - lo) / (hi - lo), eps, 1 - eps)
    return np.log(p / (1 - p))


def _from_unbounded(y: float, lo: float, hi: float) -> float:
    return lo + math.exp(y) if math.isinf(hi) else lo + (hi - lo) / (1 + math.exp(-y))


def t_interval(values, level: float = LEVEL, metric: str | None = None) -> Interval:
    """Student-t interval of the mean of ``values`` (NaNs dropped), on the metric's unbounded
    scale when it has a range (see module docstring); NaN bounds when S < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    S = len(x)
    if S == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if S < 2:
        return Interval(mean, math.nan, math.nan, S)
    t = float(stats.t.ppf((1 + level) / 2, S - 1))
    if metric in RANGES:
        lo, hi = RANGES[metric]
        y = _to_unbounded(x, lo, hi)
        h = t * y.std(ddof=1) / math.sqrt(S)
        return Interval(mean, _from_unbounded(y.mean() - h, lo, hi), _from_unbounded(y.mean() + h, lo, hi), S)
    # half-width = t_{(1+level)/2, S-1} · s / √S  (s: sample std, ddof=1)
    h = t * float(x.std(ddof=1)) / math.sqrt(S)
    return Interval(mean, mean - h, mean + h, S)


def wilson(p: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion p observed over n items."""
    z = float(stats.norm.ppf((1 + level) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


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
# the interval over its replicates (seed blocks × training seeds), and the seed-level spread: the
# number of training seeds and the min and max over them of each seed's mean over its seed blocks.
KEYS = ["dataset", "method", "variant", "sampler", "steps", "nfe", "metric"]


def seed_values(g):
    """One value per training seed of a group of tidy rows: the mean over its seed blocks."""
    return g.groupby("train_seed")["value"].mean() if "train_seed" in g else g["value"].iloc[:0]


def summarise(df, keys=KEYS):
    import pandas as pd

    rows = []
    for key, g in df.groupby(list(keys), dropna=False, sort=True):
        metric = dict(zip(keys, key)).get("metric")
        iv = t_interval(g["value"], metric=metric)
        if iv.replicates == 1 and metric in PROPORTIONS:  # one replicate: Wilson over the images counted
            n = g["reference_n"].max() if metric == "recall" else g["n"].max()
            if n and np.isfinite(n):
                iv = Interval(iv.mean, *wilson(iv.mean, int(n)), 1)
        per_seed = seed_values(g)
        rows.append({**dict(zip(keys, key)), "mean": iv.mean, "ci_low": iv.low, "ci_high": iv.high,
                     "replicates": iv.replicates, "n": g["n"].max(), "ms_per_image": g["ms_per_image"].mean(),
                     "train_images": g["train_images"].max() if "train_images" in g else math.nan,
                     "seed_blocks": ",".join(str(int(s)) for s in sorted(g["seed_block"].dropna().unique())),
                     "seeds": len(per_seed), "seed_min": per_seed.min() if len(per_seed) > 1 else math.nan,
                     "seed_max": per_seed.max() if len(per_seed) > 1 else math.nan})
    return pd.DataFrame(rows, columns=[*keys, "mean", "ci_low", "ci_high", "replicates", "n", "ms_per_image",
                                       "train_images", "seed_blocks", "seeds", "seed_min", "seed_max"])


def interval_of(row) -> Interval:
    return Interval(float(row["mean"]), float(row["ci_low"]), float(row["ci_high"]), int(row["replicates"]))
