"""The denoiser contract D(x, σ, cond) → x̂₀ in σ-space (Karras et al. 2022, eq. 1: x = x₀ + σ·n),
the wrapper that lifts a network into it through a parameterisation (``e2ed2.precond``), and
wrappers on top of any denoiser: clipping, classifier-free guidance, NFE counting.
"""

from __future__ import annotations

import torch
from torch import nn


def _broadcast_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    return sigma


class Denoiser(nn.Module):
    """D(x, σ, c) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ), c) for a parameterisation of
    ``e2ed2.precond`` (EDM, Table 1). The scalings are computed in float64 and cast to x's dtype."""

    def __init__(self, net: nn.Module, param):
        super().__init__()
        self.net, self.param = net, param

    def forward(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        sigma = _broadcast_sigma(sigma, x)
        s = sigma.to(torch.float64).view(-1, *([1] * (x.ndim - 1)))
        c_skip, c_out, c_in = (c.to(x.dtype) for c in self.param.scalings(s))
        F = self.net(x * c_in, self.param.c_noise(sigma).to(x.dtype), cond)
        return c_skip * x + c_out * F


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
