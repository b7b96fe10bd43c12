"""Samplers as pure functions of (denoiser, x, sigmas, cond, *, generator).

All work in σ-space on a descending ``sigmas`` ladder ending in 0 (see ``schedules``). None
of them sets grad mode: E2ED² backpropagates through them, evaluation wraps them in
``torch.no_grad()`` at the call site. ``generator`` is a :class:`~e2ed2.noise.SeedNoise`
(per-sample seeds), a ``torch.Generator`` or None; only stochastic samplers use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .noise import randn_like


def _sigma(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return s.to(device=x.device, dtype=x.dtype).expand(x.shape[0])


def sample_euler(denoiser, x, sigmas, cond=None, *, generator=None, step_hook=None):
    """Euler on the probability-flow ODE dx/dσ = (x - D)/σ (Karras et al. 2022, eq. 3)."""
    for i in range(len(sigmas) - 1):
        x = step_hook(i, x) if step_hook else x
        denoised = denoiser(x, _sigma(sigmas[i], x), cond)
        d = (x - denoised) / sigmas[i].to(x.dtype)
        x = x + d * (sigmas[i + 1] - sigmas[i]).to(x.dtype)
    return x


def sample_heun(denoiser, x, sigmas, cond=None, *, generator=None, step_hook=None):
    """Heun's 2nd-order method, Euler on the last step to σ=0 (Karras et al. 2022, Algorithm 1)."""
    for i in range(len(sigmas) - 1):
        x = step_hook(i, x) if step_hook else x
        s, s_next = sigmas[i].to(x.dtype), sigmas[i + 1].to(x.dtype)
        d = (x - denoiser(x, _sigma(sigmas[i], x), cond)) / s
        x_next = x + d * (s_next - s)
        if sigmas[i + 1] > 0:
            d_next = (x_next - denoiser(x_next, _sigma(sigmas[i + 1], x), cond)) / s_next
            x_next = x + (d + d_next) / 2 * (s_next - s)
        x = x_next
    return x


def ode_step(D, x, sigma, sigma_next, cond, solver: str = "heun"):
    """One probability-flow ODE step σ → σ_next > 0 with per-sample σ's (a batch at different noise levels,
    e.g. consistency distillation's teacher step): Euler, or Heun's correction (Karras et al. 2022, Alg. 1)."""
    s, s_next = (v.to(x.dtype).view(-1, *([1] * (x.ndim - 1))) for v in (sigma, sigma_next))
    d = (x - D(x, sigma, cond)) / s
    x_next = x + (s_next - s) * d
    if solver == "euler":
        return x_next
    d_next = (x_next - D(x_next, sigma_next, cond)) / s_next
    return x + (s_next - s) * (d + d_next) / 2


def sample_ddim(denoiser, x, sigmas, cond=None, *, eta=0.0, generator=None, step_hook=None):
    """DDIM (Song et al. 2021, eq. 12) written in its VP variables, mapped back to σ-space.

    x_vp = x·sqrt(ᾱ); x_vp' = sqrt(ᾱ')·x̂₀ + sqrt(1 - ᾱ' - s²)·ε̂ + s·z with
    s = η·sqrt((1 - ᾱ')/(1 - ᾱ))·sqrt(1 - ᾱ/ᾱ'). η=0 is deterministic, η=1 is DDPM-like.
    """
    for i in range(len(sigmas) - 1):
        x = step_hook(i, x) if step_hook else x
        s, s_next = sigmas[i].to(torch.float64), sigmas[i + 1].to(torch.float64)
        a, a_next = 1 / (1 + s**2), 1 / (1 + s_next**2)
        x0 = denoiser(x, _sigma(sigmas[i], x), cond)
        eps = (x - x0) / s.to(x.dtype)
        std = eta * ((1 - a_next) / (1 - a) * (1 - a / a_next)).clamp(min=0).sqrt()
        c_eps = (1 - a_next - std**2).clamp(min=0).sqrt()
        x_vp = a_next.sqrt().to(x.dtype) * x0 + c_eps.to(x.dtype) * eps
        if eta > 0 and s_next > 0:
            x_vp = x_vp + std.to(x.dtype) * randn_like(x, generator)
        x = x_vp / a_next.sqrt().to(x.dtype)
    return x


def sample_ddpm(denoiser, x, sigmas, cond=None, *, generator=None, step_hook=None):
    """Ancestral sampling from the posterior q(x_{t'} | x_t, x̂₀) (Ho et al. 2020, eqs. 6-7).

    On a respaced ladder β_t = 1 - ᾱ_t/ᾱ_{t'} (Nichol & Dhariwal 2021, §4); variance β̃_t.
    """
    for i in range(len(sigmas) - 1):
        x = step_hook(i, x) if step_hook else x
        s, s_next = sigmas[i].to(torch.float64), sigmas[i + 1].to(torch.float64)
        a, a_next = 1 / (1 + s**2), 1 / (1 + s_next**2)
        beta = 1 - a / a_next
        x0 = denoiser(x, _sigma(sigmas[i], x), cond)
        x_vp = x * a.sqrt().to(x.dtype)
        # posterior mean μ̃ = c0·x̂₀ + ct·x_t and variance β̃ = (1-ᾱ')/(1-ᾱ)·β (eq. 7)
        c0 = a_next.sqrt() * beta / (1 - a)
        ct = (1 - beta).sqrt() * (1 - a_next) / (1 - a)
        mean = c0.to(x.dtype) * x0 + ct.to(x.dtype) * x_vp
        if s_next > 0:
            var = (1 - a_next) / (1 - a) * beta
            mean = mean + var.sqrt().to(x.dtype) * randn_like(x, generator)
        x = mean / a_next.sqrt().to(x.dtype)
    return x


def sample_dpmpp_2m(denoiser, x, sigmas, cond=None, *, generator=None, step_hook=None):
    """DPM-Solver++(2M), multistep 2nd order in λ = -log σ (Lu et al. 2022, Algorithm 2)."""
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        x = step_hook(i, x) if step_hook else x
        denoised = denoiser(x, _sigma(sigmas[i], x), cond)
        s, s_next = sigmas[i], sigmas[i + 1]
        if s_next == 0:
            x = denoised
            break
        h = (s.log() - s_next.log()).to(x.dtype)
        if old_denoised is not None:
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        else:
            denoised_d = denoised
        x = (s_next / s).to(x.dtype) * x - torch.expm1(-h) * denoised_d
        old_denoised, h_last = denoised, h
    return x


def sample_consistency(denoiser, x, sigmas, cond=None, *, sigma_min=0.002, generator=None, step_hook=None):
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1).

    ``denoiser`` is the consistency function f(x, σ); between evaluations fresh noise brings
    x̂₀ back to σ_n: x = x̂₀ + sqrt(σ_n² - σ_min²)·z. One step is f(x_T, σ_max).
    """
    x = denoiser(x, _sigma(sigmas[0], x), cond)
    for i in range(1, len(sigmas) - 1):
        x = step_hook(i, x) if step_hook else x
        s = sigmas[i].to(torch.float64)
        x = x + math.sqrt(max(float(s**2 - sigma_min**2), 0.0)) * randn_like(x, generator)
        x = denoiser(x, _sigma(sigmas[i], x), cond)
    return x


# The sampler registry: an explicit dict, as in openai/consistency_models.
SAMPLERS: dict[str, Callable] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "ddim": sample_ddim,
    "ddpm": sample_ddpm,
    "dpmpp_2m": sample_dpmpp_2m,
    "consistency": sample_consistency,
}


def get_sampler(name: str) -> Callable:
    if name not in SAMPLERS:
        raise KeyError(f"unknown sampler {name!r}; available: {sorted(SAMPLERS)}")
    return SAMPLERS[name]


def nfe_of(name: str, steps: int) -> int:
    """Network evaluations a sampler spends on a ladder of `steps` nonzero σ's."""
    return 2 * steps - 1 if name == "heun" else steps
