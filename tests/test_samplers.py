"""Samplers against closed forms: Gaussian data has an exact denoiser."""

from __future__ import annotations

import math

import pytest
import torch

from e2ed2 import precond, samplers, schedules
from e2ed2.denoiser import Denoiser
from e2ed2.nets import UNet
from e2ed2.noise import SeedNoise

MU, S = 0.7, 0.5  # data ~ N(μ, s²) in every dimension


def gaussian_denoiser(x, sigma, cond=None):
    """E[x₀ | x] for x₀ ~ N(μ, s²), x = x₀ + σn: μ + s²/(s² + σ²)·(x - μ)."""
    s2 = sigma.view(-1, *[1] * (x.ndim - 1)) ** 2
    return MU + S**2 / (S**2 + s2) * (x - MU)


def gaussian_consistency(x, sigma, cond=None):
    """The exact PF-ODE map to σ=0 for Gaussian data: μ + s/sqrt(s² + σ²)·(x - μ)."""
    s2 = sigma.view(-1, *[1] * (x.ndim - 1)) ** 2
    return MU + S / (S**2 + s2).sqrt() * (x - MU)


# (sampler, ladder) pairs with "enough steps"; tolerance: |mean - μ| < 0.02 and
# |std/s - 1| < 0.03 over 40,000 float64 samples (sampling error ≈ 0.0025 / 0.35%).
CASES = [
    ("euler", schedules.karras_sigmas(200, 0.002, 80.0)),
    ("heun", schedules.karras_sigmas(40, 0.002, 80.0)),
    ("ddim", schedules.karras_sigmas(200, 0.002, 80.0)),
    ("dpmpp_2m", schedules.karras_sigmas(30, 0.002, 80.0)),
    ("ddpm", schedules.respace(schedules.ddpm_sigmas(1000), 250)),
]


@pytest.mark.parametrize("name,sigmas", CASES, ids=[c[0] for c in CASES])
def test_gaussian_target_mean_and_variance(name, sigmas):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40_000, 1, generator=g, dtype=torch.float64) * math.sqrt(1 + float(sigmas[0]) ** 2)
    out = samplers.get_sampler(name)(gaussian_denoiser, x, sigmas, generator=g)
    assert abs(out.mean().item() - MU) < 0.02
    assert abs(out.std().item() / S - 1) < 0.03


@pytest.mark.parametrize("steps", [1, 3])
def test_consistency_sampler_gaussian(steps):
    g = torch.Generator().manual_seed(1)
    sigmas = schedules.karras_sigmas(steps, 0.002, 80.0)
    x = torch.randn(40_000, 1, generator=g, dtype=torch.float64) * 80.0
    out = samplers.sample_consistency(gaussian_consistency, x, sigmas, generator=g)
    assert abs(out.mean().item() - MU) < 0.02
    assert abs(out.std().item() / S - 1) < 0.03


def test_few_steps_are_not_exact():
    """Guard that the tolerance above can fail: 1 Euler step from σ=80 collapses to the mean."""
    g = torch.Generator().manual_seed(0)
    sigmas = schedules.karras_sigmas(1, 0.002, 80.0)
    out = samplers.sample_euler(gaussian_denoiser, torch.randn(10_000, 1, generator=g, dtype=torch.float64) * 80,
                                sigmas)
    assert abs(out.std().item() / S - 1) > 0.03


def test_ddim_eta0_equals_euler_float64():
    """In σ-space a DDIM step with η=0 is an Euler step (Karras et al. 2022, §3)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).double()

    def D(x, sigma, cond=None):
        return net(torch.cat([x, sigma[:, None].log()], 1)[:, :4] * 0.1) + x / (1 + sigma[:, None] ** 2)

    x = torch.randn(16, 4, dtype=torch.float64) * 20
    sigmas = schedules.respace(schedules.ddpm_sigmas(1000), 7)
    a = samplers.sample_ddim(D, x, sigmas, eta=0.0)
    b = samplers.sample_euler(D, x, sigmas)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_ddim_eta1_is_ddpm_posterior():
    """DDIM with η=1 draws from the DDPM posterior (Song et al. 2021, §4.1): same seed, same result."""
    x = torch.randn(64, 3, dtype=torch.float64) * 30
    sigmas = schedules.respace(schedules.ddpm_sigmas(1000), 10)
    a = samplers.sample_ddim(gaussian_denoiser, x, sigmas, eta=1.0, generator=torch.Generator().manual_seed(3))
    b = samplers.sample_ddpm(gaussian_denoiser, x, sigmas, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(samplers.SAMPLERS))
def test_gradients_reach_network_through_every_sampler(name):
    torch.manual_seed(0)
    net = UNet({"channels": 8, "channel_mult": [1, 2], "attn_resolutions": [], "resolution": 8, "text_dim": 16,
                "vocab_size": 64, "max_tokens": 8})
    # the UNet zero-inits its residual and output convs; perturb them so gradients reach every layer
    for p in net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    D = Denoiser(net, precond.build("eps", schedules.ddpm_sigmas(1000)))
    sigmas = schedules.respace(schedules.ddpm_sigmas(1000), 3)
    x = torch.randn(2, 1, 8, 8) * float(sigmas[0])
    out = samplers.get_sampler(name)(D, x, sigmas, None, generator=SeedNoise([0, 1]))
    out.square().mean().backward()
    for pname in ("conv_in.weight", "time_mlp.0.weight", "conv_out.weight"):
        grad = dict(net.named_parameters())[pname].grad
        assert grad is not None and grad.abs().sum() > 0, f"{name}: no gradient at {pname}"


def test_samplers_do_not_change_grad_mode():
    with torch.no_grad():
        out = samplers.sample_euler(gaussian_denoiser, torch.randn(4, 1, requires_grad=True),
                                    schedules.karras_sigmas(3))
    assert not out.requires_grad
    x = torch.randn(4, 1, dtype=torch.float64, requires_grad=True)
    assert samplers.sample_euler(gaussian_denoiser, x, schedules.karras_sigmas(3)).requires_grad
