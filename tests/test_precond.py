"""The parameterisation module against EDM's Table 1 closed forms (Karras et al. 2022) and the
consistency boundary condition f(x, σ_min) = x (Song et al. 2023)."""

from __future__ import annotations

import math

import pytest
import torch

from e2ed2 import precond, schedules
from e2ed2.denoiser import Denoiser
from e2ed2.methods import Batch, build_method, denoising_loss
from tests.conftest import TINY_NET

SIGMAS = torch.tensor([0.002, 0.05, 0.5, 1.0, 3.0, 20.0, 80.0], dtype=torch.float64)
TABLE = schedules.ddpm_sigmas(1000)

# (c_skip, c_out, c_in, λ) written out from Table 1 of Karras et al. 2022 (σ_d = 0.5 for EDM)
SD = 0.5
CLOSED = {
    "eps": lambda s: (1.0, -s, 1 / math.sqrt(s * s + 1), 1 / s**2),
    "v": lambda s: (1 / (s * s + 1), -s / math.sqrt(s * s + 1), 1 / math.sqrt(s * s + 1), (s * s + 1) / s**2),
    "x0": lambda s: (0.0, 1.0, 1 / math.sqrt(s * s + 1), 1.0),
    "edm": lambda s: (SD**2 / (s * s + SD**2), s * SD / math.sqrt(s * s + SD**2), 1 / math.sqrt(s * s + SD**2),
                      (s * s + SD**2) / (s * SD) ** 2),
}


@pytest.mark.parametrize("name", precond.PARAMETERISATIONS)
def test_scalings_match_edm_table_1(name):
    p = precond.build(name, TABLE, SD)
    c_skip, c_out, c_in = p.scalings(SIGMAS)
    lam = p.loss_weight(SIGMAS)
    for i, s in enumerate(SIGMAS.tolist()):
        want = CLOSED[name](s)
        got = (float(c_skip[i]), float(c_out[i]), float(c_in[i]), float(lam[i]))
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), (name, s)
    # every parameterisation gives the network a unit effective loss weight λ·c_out² = 1
    torch.testing.assert_close(lam * c_out**2, torch.ones_like(SIGMAS))


def test_c_noise_vp_is_the_ddpm_timestep_and_edm_is_log_sigma_over_4():
    vp = precond.build("eps", TABLE)
    t = torch.tensor([0, 1, 10, 500, 999])
    torch.testing.assert_close(vp.c_noise(TABLE[t]), t.double())
    torch.testing.assert_close(precond.build("edm").c_noise(SIGMAS), SIGMAS.log() / 4)


class Oracle(torch.nn.Module):
    """Outputs F_target for a known x₀, so that D(x, σ) = x₀ exactly iff the wrapper and the
    target agree on the scalings."""

    def __init__(self, p, x0, sigma):
        super().__init__()
        self.p, self.x0, self.sigma = p, x0, sigma

    def forward(self, x_in, c_noise, cond=None):
        s = self.sigma.view(-1, 1, 1, 1)
        x = x_in / self.p.scalings(s)[2].to(x_in.dtype)
        return self.p.target(self.x0, x, s).to(x_in.dtype)


@pytest.mark.parametrize("name", precond.PARAMETERISATIONS)
def test_denoiser_inverts_the_regression_target(name):
    p = precond.build(name, TABLE, SD)
    x0 = torch.rand(len(SIGMAS), 1, 4, 4, dtype=torch.float64) * 2 - 1
    x = x0 + SIGMAS.view(-1, 1, 1, 1) * torch.randn_like(x0)
    D = Denoiser(Oracle(p, x0, SIGMAS), p)
    torch.testing.assert_close(D(x, SIGMAS), x0)
    # guard: the target of another parameterisation does not invert this wrapper
    other = precond.build({"eps": "v", "v": "x0", "x0": "edm", "edm": "eps"}[name], TABLE, SD)
    assert not torch.allclose(Denoiser(Oracle(other, x0, SIGMAS), p)(x, SIGMAS), x0)


def test_consistency_boundary_condition():
    base = precond.build("edm")
    cm = precond.ConsistencyBoundary(base, sigma_min=0.002, sigma_data=SD)
    c_skip, c_out, c_in = cm.scalings(torch.tensor([0.002], dtype=torch.float64))
    assert float(c_skip) == 1.0 and float(c_out) == 0.0
    F = torch.nn.Module()
    F.forward = lambda x_in, c_noise, cond=None: torch.randn_like(x_in) * 10  # any network output
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(Denoiser(F, cm)(x, torch.full((3,), 0.002, dtype=torch.float64)), x)  # f(x, σ_min) = x
    # far from σ_min the boundary scalings approach the teacher's (a student starts near D_teacher)
    big = torch.tensor([80.0], dtype=torch.float64)
    for a, b in zip(cm.scalings(big), base.scalings(big)):
        assert float(a) == pytest.approx(float(b), rel=1e-4)


@pytest.mark.parametrize("precond_name, schedule",
                         [("eps", "linear"), ("v", "linear"), ("x0", "cosine"), ("edm", "edm")])
def test_denoising_loss_is_zero_for_the_exact_target(precond_name, schedule):
    """The loss of e2ed2.methods.denoising_loss vanishes when F_θ outputs F_target, for every
    parameterisation: the loss, the denoiser and the target share one set of scalings."""
    m = build_method({"method": {"name": "ddpm", "precond": precond_name, "schedule": schedule}, "net": TINY_NET})
    x0 = torch.rand(6, 1, 8, 8) * 2 - 1
    sigma = m.schedule.training_sigmas(6, torch.Generator().manual_seed(0))  # the σ's the loss draws first
    m.net = Oracle(m.param, x0.double(), sigma)
    batch = Batch(x0, torch.zeros(6, 8, dtype=torch.long), torch.zeros(6))
    assert denoising_loss(m, batch.x, batch.tokens, torch.Generator().manual_seed(0)).max() < 1e-6
    m.net = Oracle(m.param, x0.double() + 0.1, sigma)  # guard: a wrong x₀ is not zero
    assert denoising_loss(m, batch.x, batch.tokens, torch.Generator().manual_seed(0)).max() > 1e-4
