"""Paired comparisons of sample sets drawn from the same seeds: a bootstrap over images.

Every method, step budget and training seed samples image i of seed block b from the same x_T
and caption, so two arms can be compared image by image instead of asking two independent
intervals not to overlap. Every set carries B bootstrap replicates of its metrics computed on
the same resampled seeds (``e2ed2.metrics.bootstrap``); the difference of two arms is taken
replicate by replicate.

Blocks (and training-seed pairs) are strata: the estimate is the mean over units of the
per-unit difference, a replicate is the mean over units of the replicate differences, and the
95% interval is the basic (pivotal) bootstrap interval [2d̂ − q₉₇.₅, 2d̂ − q₂.₅], which also
corrects the upward bias of FID on resamples with repeated images. The interval covers the
sampling of images (seeds); training-seed variance is covered by requiring the outcome to hold
for every training seed of the arm (``compare``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Paired:
    """A − B over matched units: estimate, basic-bootstrap interval, and the units behind it."""

    estimate: float
    low: float
    high: float
    units: int
    replicates: int

    def outcome(self, lower_is_better: bool) -> str:
        """'better' / 'worse' when the interval excludes 0 on one side, else 'overlap'."""
        if self.high < 0:
            return "better" if lower_is_better else "worse"
        if self.low > 0:
            return "worse" if lower_is_better else "better"
        return "overlap"


def paired(units: list[tuple[float, np.ndarray, float, np.ndarray]], level: float = LEVEL) -> Paired:
    """Combine units (value_A, replicates_A, value_B, replicates_B), each pair on the same seeds."""
    if not units:
        raise ValueError("no matched units to compare")
    d_hat = float(np.mean([a - b for a, _, b, _ in units]))
    reps = np.mean([ra - rb for _, ra, _, rb in units], axis=0)
    q_lo, q_hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return Paired(d_hat, 2 * d_hat - float(q_hi), 2 * d_hat - float(q_lo), len(units), len(reps))
