"""Paired comparisons of two arms: image-level bootstrap within a training seed, and the
two-level interval the claims are decided on (images and training seeds).

Level 1, images. Every method, step budget and training seed samples image i of seed block b
from the same x_T and caption, and every set carries B bootstrap replicates of its metrics on
the same resampled seeds (``e2ed2.metrics.bootstrap``), so two arms are compared image by image:
the difference is taken replicate by replicate. ``paired`` gives the 95% basic bootstrap
interval [2d̂ − q₉₇.₅, 2d̂ − q₂.₅] of such a difference (it also corrects FID's upward bias on
resamples with repeated images). It covers which images were drawn — not which model training
produced: a rerun of the same config on another CPU moved E2ED²'s FID by up to 37% (issue #24).

Level 2, training seeds (``two_level``). A *cell* is one training seed × seed block; a seed's
value is the mean of its cells over the blocks both arms share. The decision interval is

    d̂ ± t(ν, 0.975) · √(s²_A/n_A + s²_B/n_B + V_img)

- d̂ = mean over A's seeds − mean over B's seeds;
- s²_A, s²_B: the variance of the seed-level values over each arm's n training seeds — arms
  trained independently (different methods) enter separately (Welch); arms of one method with
  the same training seeds (variants of E2ED², whose seed s shares its teacher pairs and data
  order) enter as the variance of the seed-level differences d_s over n seeds (paired);
- V_img: the variance of the image-level bootstrap replicates of d̂. All training seeds sample
  the same x_T, so the draw of images is common to every seed and invisible in s²; it is added.
  (s² also carries the part of image noise that differs between seeds: counted twice, which errs
  on the wide side);
- ν: Welch–Satterthwaite over the seed terms (n − 1 degrees of freedom each; V_img, estimated
  from B replicates, as known).

Why not a hierarchical bootstrap (resample seeds, then images within them)? With 3 training
seeds an arm has 3³ = 27 equally likely draws (10 distinct multisets), and the spread of a
resampled 3-seed mean is √(2/3) of the sample standard error: the percentile interval is a z
interval on a shrunk standard error where Student's t needs t(2) = 4.30 rather than 1.96. In a
simulation of two arms with 3 seeds each whose seed spread is 10× the image noise, a 95%
hierarchical-bootstrap interval covered the true difference 79% of the time; this interval 96%
(2,000 draws; tests/test_report_seeds.py keeps a smaller version of that check). At 3 seeds the
t-interval is the honest one; it is wide, as it should be.

An arm with one training seed has no seed-level variance to estimate: the comparison is
``single seed`` — reported with its image-level interval, never ``better`` or ``worse`` — unless
that arm is the *shared teacher* of the other (DDIM and ancestral sampling of the teacher that
every E2ED² seed was fine-tuned from: the comparison is conditional on that teacher, which has
no training variance given itself). ``supported`` therefore means the effect holds at the level
of training seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
BETTER, WORSE, OVERLAP, SINGLE_SEED = "better", "worse", "overlap", "single seed"
# how the training seeds of the two arms entered the interval
PAIRED_SEEDS, INDEPENDENT, TEACHER_FIXED = "paired seeds", "independent seeds", "B is A's teacher"
SINGLE = SINGLE_SEED


def direction(low: float, high: float, lower_is_better: bool) -> str:
    """'better' / 'worse' when [low, high] excludes 0 on one side, else 'overlap'."""
    if high < 0:
        return BETTER if lower_is_better else WORSE
    if low > 0:
        return WORSE if lower_is_better else BETTER
    return OVERLAP


@dataclass(frozen=True)
class Paired:
    """A − B over matched units: estimate, basic-bootstrap interval, and the units behind it."""

    estimate: float
    low: float
    high: float
    units: int
    replicates: int

    def outcome(self, lower_is_better: bool) -> str:
        return direction(self.low, self.high, lower_is_better)


def paired(units: list[tuple[float, np.ndarray, float, np.ndarray]], level: float = LEVEL) -> Paired:
    """Image level: combine units (value_A, replicates_A, value_B, replicates_B), each pair on the same seeds."""
    if not units:
        raise ValueError("no matched units to compare")
    d_hat = float(np.mean([a - b for a, _, b, _ in units]))
    reps = np.mean([ra - rb for _, ra, _, rb in units], axis=0)
    q_lo, q_hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return Paired(d_hat, 2 * d_hat - float(q_hi), 2 * d_hat - float(q_lo), len(units), len(reps))


@dataclass(frozen=True)
class TwoLevel:
    """A − B over training seeds and images (module docstring); ``img_low/img_high``: the
    image-level interval alone, for comparison."""

    estimate: float
    low: float
    high: float
    se: float
    df: float
    design: str
    seeds_a: int
    seeds_b: int
    sd_a: float  # seed-level sd of A (of the differences d_s with paired seeds)
    sd_b: float  # seed-level sd of B (NaN with paired seeds or one seed)
    img_low: float
    img_high: float
    cells: int
    replicates: int

    def outcome(self, lower_is_better: bool) -> str:
        if self.design == SINGLE:
            return SINGLE_SEED
        return direction(self.low, self.high, lower_is_better)


Cells = dict  # {training seed: {seed block: (value, replicates)}}


def _seed_means(cells: Cells, blocks: list, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(seed-level values, their replicates) over ``blocks``, one row per seed (sorted)."""
    seeds = sorted(cells)
    x = np.array([np.mean([cells[s][b][0] for b in blocks]) for s in seeds]) * scale
    r = np.array([np.mean([cells[s][b][1] for b in blocks], axis=0) for s in seeds]) * scale
    return x, r


def two_level(a: Cells, b: Cells, *, paired_seeds: bool = False, b_fixed: bool = False, scale: float = 1.0,
              level: float = LEVEL) -> TwoLevel | None:
    """The two-level interval of A − scale·B (module docstring); None when no seed block is
    shared by every cell of both arms. ``paired_seeds``: the arms share training seeds seed by
    seed (used only when both have the same ≥ 2 seeds); ``b_fixed``: B (one seed) is A's teacher."""
    blocks = sorted(set.intersection(*(set(c) for arm in (a, b) for c in arm.values()))) if a and b else []
    if not blocks:
        return None
    xa, ra = _seed_means(a, blocks, 1.0)
    xb, rb = _seed_means(b, blocks, scale)
    if ra.shape[1] != rb.shape[1]:
        raise ValueError(f"the arms carry {ra.shape[1]} and {rb.shape[1]} bootstrap replicates; rerun their metrics "
                         f"jobs with the same number")
    n_a, n_b = len(xa), len(xb)
    # level 1: the image draw, common to every seed (replicate by replicate, as ``paired``)
    d_hat = float(xa.mean() - xb.mean())
    reps = ra.mean(0) - rb.mean(0)
    q_lo, q_hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    img_low, img_high = 2 * d_hat - float(q_hi), 2 * d_hat - float(q_lo)
    v_img = float(reps.var(ddof=1)) if len(reps) > 1 else 0.0
    # level 2: the training seeds — paired differences, or each arm's own spread (Welch)
    nan = math.nan
    if paired_seeds and sorted(a) == sorted(b) and n_a >= 2:
        d = xa - xb
        terms, design, sd_a, sd_b = [(float(d.var(ddof=1)) / n_a, n_a - 1)], PAIRED_SEEDS, float(d.std(ddof=1)), nan
    elif n_a >= 2 and (n_b >= 2 or b_fixed):
        terms = [(float(xa.var(ddof=1)) / n_a, n_a - 1)]
        terms += [(float(xb.var(ddof=1)) / n_b, n_b - 1)] if n_b >= 2 else []
        design = INDEPENDENT if n_b >= 2 else TEACHER_FIXED
        sd_a, sd_b = float(xa.std(ddof=1)), float(xb.std(ddof=1)) if n_b >= 2 else nan
    else:
        sd = [float(x.std(ddof=1)) if len(x) >= 2 else nan for x in (xa, xb)]
        return TwoLevel(d_hat, img_low, img_high, math.sqrt(v_img), math.inf, SINGLE, n_a, n_b, sd[0], sd[1],
                        img_low, img_high, len(blocks) * (n_a + n_b), len(reps))
    var = sum(v for v, _ in terms) + v_img
    denom = sum(v * v / k for v, k in terms)
    df = var * var / denom if denom > 0 else math.inf
    h = float(stats.t.ppf((1 + level) / 2, df)) * math.sqrt(var) if var > 0 else 0.0
    return TwoLevel(d_hat, d_hat - h, d_hat + h, math.sqrt(var), df, design, n_a, n_b, sd_a, sd_b, img_low, img_high,
                    len(blocks) * (n_a + n_b), len(reps))
