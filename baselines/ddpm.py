"""DDPM (Ho et al. 2020): ε-prediction on a T=1000 linear-β schedule, simple loss (eq. 14).

Sampling: ancestral (``ddpm`` sampler) at the full 1000 steps or respaced to fewer. The
same checkpoint serves the DDIM baseline through the deterministic ``ddim`` sampler.
"""

from __future__ import annotations

import torch

from e2ed2.method import Batch, Method


class DDPM(Method):
    name = "ddpm"
    defaults = {}
    default_sampler = "ddpm"

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main") -> torch.Tensor:
        x0 = batch.x
        B = x0.shape[0]
        # t ~ U{0..T-1}, ε ~ N(0, I); in σ-space x = x₀ + σ_t·ε and D = x - σ·ε̂, so
        # ‖ε - ε̂‖² = ‖x₀ - D(x, σ_t)‖² / σ_t² (the "simple" loss, Ho et al. 2020 eq. 14)
        t = torch.randint(0, self.cfg["T"], (B,), generator=generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        sigma = self.train_sigmas.to(x0.device)[t]
        x = x0 + sigma.to(x0.dtype).view(-1, 1, 1, 1) * eps
        eps_hat = self.net(x / (sigma**2 + 1).sqrt().to(x0.dtype).view(-1, 1, 1, 1), t.to(x0.dtype), batch.tokens)
        return (eps_hat - eps).pow(2).flatten(1).mean(1)
