"""Bootstrap replicates of a sample set's metrics over its images, paired across sets.

For each set of n images, the same B index vectors (n draws with replacement from one fixed
generator, ``bootstrap_indices``) resample the images; since every method, budget and training
seed samples image i of a seed block from the same x_T and caption, replicate r of two sets
compares the same seeds (``e2ed2.report.paired``). FID is recomputed exactly on every
resample, cheaply, in the N×N Gram space (``FIDBootstrap``); a per-image score (CLIP score)
is a mean over the resampled images.
"""

from __future__ import annotations

import numpy as np
import torch

B_DEFAULT, BOOT_SEED, LEVEL = 1000, 20251129, 0.95


def bootstrap_indices(n: int, replicates: int = B_DEFAULT, seed: int = BOOT_SEED) -> np.ndarray:
    """replicates × n indices in [0, n), the same for every set of n images (pairing)."""
    return np.random.default_rng(seed).integers(0, n, size=(replicates, n))


class FIDBootstrap:
    """FID of row-resampled features F (N×D) against fixed reference statistics (μ_r, Σ_r).

    With X = C·F[idx] centred (C = I − 11ᵀ/N): Σ_g = XᵀX/(N−1), and the nonzero eigenvalues of
    Σ_r^{1/2} Σ_g Σ_r^{1/2} are those of X Σ_r Xᵀ/(N−1) = C·G[idx, idx]·C/(N−1) with the Gram
    matrix G = F Σ_r Fᵀ, so Tr (Σ_g Σ_r)^{1/2} = Σ √λᵢ of an N×N matrix (Heusel et al. 2017, eq. 6).
    Tr Σ_g = tr(C·H[idx, idx]·C)/(N−1) with H = F Fᵀ, and ‖μ_g − μ_r‖² = mean(H[idx, idx])
    − 2·mean(F[idx]·μ_r) + ‖μ_r‖².
    """

    def __init__(self, features: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray):
        F = torch.as_tensor(np.asarray(features, np.float64))
        mu, sigma = torch.as_tensor(np.asarray(mu_r, np.float64)), torch.as_tensor(np.asarray(sigma_r, np.float64))
        self.G, self.H, self.m = F @ sigma @ F.T, F @ F.T, F @ mu
        self.const = float(mu @ mu + sigma.trace())
        self.n = F.shape[0]

    def fid(self, idx: np.ndarray) -> np.ndarray:
        """FID of each row of ``idx`` (R × N index matrix, or one index vector)."""
        idx = torch.as_tensor(np.atleast_2d(idx))
        N = idx.shape[1]
        C = torch.eye(N, dtype=torch.float64) - 1.0 / N
        out = []
        for chunk in idx.split(100):
            rows, cols = chunk[:, :, None], chunk[:, None, :]
            Gi, Hi = self.G[rows, cols], self.H[rows, cols]
            A = C @ Gi @ C / (N - 1)
            tr_sqrt = torch.linalg.eigvalsh((A + A.transpose(1, 2)) / 2).clamp_min(0).sqrt().sum(1)
            tr_g = (C @ Hi @ C).diagonal(dim1=1, dim2=2).sum(1) / (N - 1)
            mean_sq = Hi.mean((1, 2))
            cross = self.m[chunk].mean(1)
            out.append(mean_sq - 2 * cross + self.const + tr_g - 2 * tr_sqrt)
        return torch.cat(out).numpy()


def fid_replicates(features: np.ndarray, ref: dict, replicates: int = B_DEFAULT) -> tuple[float, np.ndarray]:
    """(FID of the set, FID of its B paired resamples)."""
    boot = FIDBootstrap(features, ref["mu"], ref["sigma"])
    n = len(features)
    return float(boot.fid(np.arange(n))[0]), boot.fid(bootstrap_indices(n, replicates))


def mean_replicates(values: np.ndarray, replicates: int = B_DEFAULT) -> tuple[float, np.ndarray]:
    """(mean of per-image values, mean of each of the B paired resamples)."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), values[bootstrap_indices(len(values), replicates)].mean(1)
