"""Fréchet distance between Gaussians and the feature statistics it is computed from.

d²((μ₁, Σ₁), (μ₂, Σ₂)) = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})   (Heusel et al. 2017, eq. 6;
Dowson & Landau 1982). Pure functions of numpy arrays; float64 throughout.
"""

from __future__ import annotations

import numpy as np
import torch


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) of N×D features: the mean and the unbiased (N − 1) covariance, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be N×D with N ≥ 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d² above, with Tr (Σ₁Σ₂)^{1/2} computed in its symmetric form:
    Σ₁Σ₂ is similar to A = Σ₁^{1/2} Σ₂ Σ₁^{1/2} (symmetric PSD), so Tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(A).
    Two float64 ``eigh`` calls (LAPACK via torch) instead of a general ``sqrtm``: ~20× faster at
    D = 2048 on CPU and never complex; tiny negative eigenvalues from rounding are clipped to 0."""
    mu1, mu2 = _as64(mu1, 1), _as64(mu2, 1)
    sigma1, sigma2 = _as64(sigma1, 2), _as64(sigma2, 2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {tuple(mu1.shape)} vs {tuple(mu2.shape)}, "
                         f"sigma {tuple(sigma1.shape)} vs {tuple(sigma2.shape)}")
    # Σ₁^{1/2} from the eigendecomposition of the (symmetrised) covariance.
    w, V = torch.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (V * w.clamp_min(0).sqrt()) @ V.T
    A = root1 @ sigma2 @ root1
    tr_covmean = torch.linalg.eigvalsh((A + A.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * tr_covmean)


def _as64(x, ndim: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    return t.reshape(1) if ndim == 1 and t.ndim == 0 else (t.reshape(1, 1) if ndim == 2 and t.ndim == 0 else t)
