"""DDPM (Ho et al. 2020): ε-prediction on a T=1000 linear-β schedule, simple loss (eq. 14).

Sampling: ancestral (``ddpm`` sampler) at the full 1000 steps or respaced to fewer, with x̂₀
clipped to [−1, 1] as in the paper's reference sampler (``clip_denoised``, a recorded knob).
The same checkpoint serves the DDIM baseline through the deterministic ``ddim`` sampler.
``prediction: v`` / ``x0`` train the other parameterisations with the same loop.
"""

from __future__ import annotations

import torch

from e2ed2.method import Batch, Method


class DDPM(Method):
    name = "ddpm"
    defaults = {"clip_denoised": True}
    default_sampler = "ddpm"

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main") -> torch.Tensor:
        x0 = batch.x
        B = x0.shape[0]
        # t ~ U{0..T-1}, ε ~ N(0, I); in σ-space x = x₀ + σ_t·ε and the net sees x_vp = c_in·x
        # with c_in = 1/sqrt(1 + σ²) = sqrt(ᾱ_t) (Ho et al. 2020, eq. 4)
        t = torch.randint(0, self.cfg["T"], (B,), generator=generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        sigma = self.train_sigmas.to(x0.device)[t].to(x0.dtype).view(-1, 1, 1, 1)
        c_in = 1 / (sigma**2 + 1).sqrt()
        F = self.net((x0 + sigma * eps) * c_in, t.to(x0.dtype), batch.tokens)
        # regression target of the parameterisation: ε (eq. 14, "simple"), v = sqrt(ᾱ)ε − sqrt(1−ᾱ)x₀
        # (Salimans & Ho 2022), or x₀ — each the inverse of VPDenoiser's mapping
        target = {"eps": eps, "v": c_in * (eps - sigma * x0), "x0": x0}[self.cfg["prediction"]]
        return (F - target).pow(2).flatten(1).mean(1)
