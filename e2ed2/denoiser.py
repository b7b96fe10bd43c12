"""The denoiser contract D(x, σ, cond) → x̂₀ in σ-space, and adapters that lift networks into it.

σ-space (Karras et al. 2022, eq. 1): x = x₀ + σ·n. A VP/DDPM network sees the VP variable
x_vp = x·c_in with c_in = 1/sqrt(σ² + 1) and a continuous timestep c_noise obtained by
interpolating log σ over the discrete training table (as crowsonkb/k-diffusion does).
"""

from __future__ import annotations

import torch
from torch import nn


def _broadcast_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    return sigma


class VPDenoiser(nn.Module):
    """Adapter for a DDPM-style network F(x_vp, t, cond) with ε-, v- or x₀-prediction.

    ε: D = x - σ·F (Ho et al. 2020 in σ-space);  v: D = x/(1+σ²) - σ/sqrt(1+σ²)·F
    (Salimans & Ho 2022);  x₀: D = F.
    """

    def __init__(self, net: nn.Module, train_sigmas: torch.Tensor, prediction: str = "eps"):
        super().__init__()
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(f"prediction must be eps, v or x0, got {prediction!r}")
        self.net = net
        self.prediction = prediction
        self.register_buffer("log_sigmas", train_sigmas.to(torch.float64).log(), persistent=False)

    @property
    def sigma_min(self) -> float:
        return float(self.log_sigmas[0].exp())

    @property
    def sigma_max(self) -> float:
        return float(self.log_sigmas[-1].exp())

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep: piecewise-linear interpolation of t over log σ_t."""
        log_sigma = sigma.to(torch.float64).clamp(min=1e-30).log()
        ls = self.log_sigmas.to(sigma.device)
        idx = torch.searchsorted(ls, log_sigma).clamp(1, len(ls) - 1)
        lo, hi = ls[idx - 1], ls[idx]
        w = ((log_sigma - lo) / (hi - lo)).clamp(0, 1)
        return (idx - 1).to(torch.float64) + w

    def forward(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        sigma = _broadcast_sigma(sigma, x)
        s = sigma.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        c_in = 1 / (s**2 + 1).sqrt()
        t = self.sigma_to_t(sigma).to(x.dtype)
        F = self.net(x * c_in, t, cond)
        if self.prediction == "eps":
            return x - s * F
        if self.prediction == "v":
            return x * c_in**2 - s * c_in * F
        return F


class ClippedDenoiser(nn.Module):
    """x̂₀ clamped to the data range [−1, 1] (``clip_denoised`` of Ho et al.'s reference
    sampler); no gradient flows through saturated pixels."""

    def __init__(self, denoiser: nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x, sigma, cond=None):
        return self.denoiser(x, sigma, cond).clamp(-1, 1)


class GuidedDenoiser(nn.Module):
    """Classifier-free guidance: D = D(x, σ, ∅) + w·(D(x, σ, c) - D(x, σ, ∅)) (Ho & Salimans 2022)."""

    def __init__(self, denoiser: nn.Module, scale: float):
        super().__init__()
        self.denoiser, self.scale = denoiser, float(scale)

    def forward(self, x, sigma, cond=None):
        if cond is None or self.scale == 1.0:
            return self.denoiser(x, sigma, cond)
        sigma = _broadcast_sigma(sigma, x)
        both = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([cond, torch.zeros_like(cond)]))
        d_c, d_u = both.chunk(2)
        return d_u + self.scale * (d_c - d_u)


class CountingDenoiser(nn.Module):
    """Counts network function evaluations (NFE) per sample: one per call, two with CFG."""

    def __init__(self, denoiser: nn.Module, evals_per_call: int = 1):
        super().__init__()
        self.denoiser, self.evals_per_call, self.nfe = denoiser, evals_per_call, 0

    def forward(self, x, sigma, cond=None):
        self.nfe += self.evals_per_call
        return self.denoiser(x, sigma, cond)
