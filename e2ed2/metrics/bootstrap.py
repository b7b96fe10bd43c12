"""Bootstrap replicates of a sample set's metrics over its images, paired across sets.

For each set of n images, the same B index vectors (n draws with replacement from one fixed
generator, ``bootstrap_indices``) resample the images; since every method, budget and training
seed samples image i of a seed block from the same x_T and caption, replicate r of two sets
compares the same seeds (``e2ed2.report.paired``). FID is recomputed exactly on every
resample, cheaply, in the N×N Gram space (``e2ed2.metrics.frechet.GramFrechet``); a per-image
score (CLIP score) is a mean over the resampled images.
"""

from __future__ import annotations

import numpy as np

from .frechet import GramFrechet

B_DEFAULT, BOOT_SEED, LEVEL = 1000, 20251129, 0.95


def bootstrap_indices(n: int, replicates: int = B_DEFAULT, seed: int = BOOT_SEED) -> np.ndarray:
    """replicates × n indices in [0, n), the same for every set of n images (pairing)."""
    return np.random.default_rng(seed).integers(0, n, size=(replicates, n))


def fid_replicates(features: np.ndarray, ref: dict, replicates: int = B_DEFAULT) -> tuple[float, np.ndarray]:
    """(FID of the set, FID of its B paired resamples)."""
    boot = GramFrechet(features, ref["mu"], ref["sigma"])
    n = len(features)
    return float(boot.fid(np.arange(n))[0]), boot.fid(bootstrap_indices(n, replicates))


def mean_replicates(values: np.ndarray, replicates: int = B_DEFAULT) -> tuple[float, np.ndarray]:
    """(mean of per-image values, mean of each of the B paired resamples)."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), values[bootstrap_indices(len(values), replicates)].mean(1)
