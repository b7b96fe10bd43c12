"""Consistency models (Song et al. 2023): distillation ("cd") and training ("ct").

Consistency function on top of the shared UNet with EDM-style skip scalings shifted to σ_min
(Song et al. 2023, eq. 5 / App. C):
    f_θ(x, σ) = c_skip(σ)·x + c_out(σ)·F_θ(x, σ),
    c_skip = σ_d²/((σ − σ_min)² + σ_d²),  c_out = σ_d(σ − σ_min)/sqrt(σ² + σ_d²),
so f_θ(x, σ_min) = x. F_θ = D_θ/σ_d, where D_θ(x, σ) = x − σ·ε̂_θ(c_in·x, t(σ)) is the
ε-parameterised denoiser of the VP table (c_in = 1/sqrt(σ² + 1), t from the DDPM table):
the UNet sees exactly the DDPM teacher's inputs, so CD initialised from the teacher starts
at f ≈ D_teacher for large σ. The target network θ⁻ is an EMA of θ kept in the state_dict.
"""

from __future__ import annotations

import copy
import functools
import math

import torch
from torch import nn

from e2ed2 import samplers, schedules
from e2ed2.denoiser import VPDenoiser, _broadcast_sigma
from e2ed2.losses.distance import DISTANCES, distance
from e2ed2.method import Batch, Method
from e2ed2.teacher import load_teacher


class ConsistencyFunction(nn.Module):
    """f_θ(x, σ, c) = c_skip(σ)·x + c_out(σ)·D_θ(x, σ, c)/σ_d (see module docstring)."""

    def __init__(self, net, train_sigmas, sigma_min: float, sigma_data: float = 0.5):
        super().__init__()
        self.D = VPDenoiser(net, train_sigmas, "eps")
        self.sigma_min, self.sigma_data = float(sigma_min), float(sigma_data)

    def forward(self, x, sigma, cond=None):
        sigma = _broadcast_sigma(sigma, x)
        s = sigma.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        sd, smin = self.sigma_data, self.sigma_min
        c_skip = sd**2 / ((s - smin) ** 2 + sd**2)
        c_out = sd * (s - smin) / (s**2 + sd**2).sqrt()
        return c_skip * x + c_out * self.D(x, sigma, cond) / sd


def ode_step(D, x, sigma, sigma_next, cond, solver: str = "heun"):
    """One probability-flow ODE step σ → σ_next (per-sample σ's), Euler or Heun (EDM, Alg. 1)."""
    s, s_next = (v.to(x.dtype).view(-1, *([1] * (x.ndim - 1))) for v in (sigma, sigma_next))
    d = (x - D(x, sigma, cond)) / s
    x_next = x + (s_next - s) * d
    if solver == "euler":
        return x_next
    d_next = (x_next - D(x_next, sigma_next, cond)) / s_next
    return x + (s_next - s) * (d + d_next) / 2


def consistency_loss(f_online, f_target, x_next, sigma_next, x_n, sigma_n, cond, dist: str, huber_c=None):
    """d(f_θ(x_{n+1}, σ_{n+1}), f_θ⁻(x̂_n, σ_n)) per sample (Song et al. 2023, eqs. 7 and 10)."""
    return distance(f_online(x_next, sigma_next, cond), f_target(x_n, sigma_n, cond).detach(), dist, huber_c)


class ConsistencyMethod(Method):
    """Shared parts of CD and CT: f_θ, target θ⁻, σ discretisation, consistency sampling."""

    default_sampler = "consistency"
    common_defaults = {"init": "scratch", "teacher": None, "rho": 7.0, "sigma_data": 0.5,
                       "distance": "l2", "huber_c": None}

    def __init__(self, cfg, net_cfg, restoring: bool = False):
        super().__init__(cfg, net_cfg, restoring)
        c = self.cfg
        if c["init"] not in ("teacher", "scratch"):
            raise ValueError(f"{self.name}: init must be 'teacher' or 'scratch', got {c['init']!r}")
        if c["distance"] not in DISTANCES:
            raise ValueError(f"{self.name}: distance must be one of {DISTANCES}, got {c['distance']!r}")
        self.teacher_method = None
        # a restored checkpoint has its own weights; the teacher file is needed only to train
        if not restoring and (c["init"] == "teacher" or self.needs_teacher):
            teacher = load_teacher(c["teacher"], c, self.net.config if c["init"] == "teacher" else None, who=self.name)
            if c["init"] == "teacher":
                self.net.load_state_dict(teacher.net.state_dict())
            self.__dict__["teacher_method"] = teacher if self.needs_teacher else None
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.sigma_min, self.sigma_max = float(self.train_sigmas[0]), float(self.train_sigmas[-1])

    needs_teacher = False

    def denoiser(self, net=None) -> nn.Module:
        return ConsistencyFunction(net if net is not None else self.net, self.train_sigmas, self.sigma_min, self.cfg["sigma_data"])

    def discretisation(self, N: int) -> torch.Tensor:
        """σ_1 < … < σ_N: Karras et al. 2022 eq. 5 over the teacher's [σ_min, σ_max] (float64)."""
        return schedules.karras_sigmas(N, self.sigma_min, self.sigma_max, self.cfg["rho"])[:-1].flip(0)

    def sigmas(self, steps: int, sampler: str | None = None) -> torch.Tensor:
        """Multistep ladder: the first `steps` points of a (steps+1)-point Karras ladder, then 0
        (σ_min itself is skipped: f(x, σ_min) = x)."""
        return schedules.append_zero(schedules.karras_sigmas(steps + 1, self.sigma_min, self.sigma_max, self.cfg["rho"])[:steps])

    def sample(self, z, cond=None, steps: int = 1, *, sampler=None, net=None, generator=None, guidance=1.0, denoiser=None):
        if (sampler or self.default_sampler) != "consistency":
            return super().sample(z, cond, steps, sampler=sampler, net=net, generator=generator, guidance=guidance, denoiser=denoiser)
        from e2ed2.denoiser import GuidedDenoiser

        sigmas = self.sigmas(steps)
        D = denoiser if denoiser is not None else self.denoiser(net)
        D = GuidedDenoiser(D, guidance) if guidance != 1.0 else D
        run = functools.partial(samplers.sample_consistency, sigma_min=self.sigma_min)
        return run(D, self.prior(z, sigmas[0]), sigmas, cond, generator=generator)

    def extra_state(self) -> dict:
        """Every knob, defaults included, recorded in the checkpoint beside the user config."""
        return {"method_config": dict(self.cfg)}

    def update_target(self, mu: float) -> None:
        """θ⁻ ← μ·θ⁻ + (1 − μ)·θ (stop-gradient EMA, Song et al. 2023 Alg. 2-3)."""
        for pt, p in zip(self.target.parameters(), self.net.parameters()):
            pt.detach().lerp_(p.detach(), 1 - mu)
        for bt, b in zip(self.target.buffers(), self.net.buffers()):
            bt.detach().copy_(b)

    def pair_loss(self, x_next, sigma_next, x_n, sigma_n, cond):
        return consistency_loss(self.denoiser(self.net), self.denoiser(self.target), x_next, sigma_next, x_n, sigma_n,
                                cond, self.cfg["distance"], self.cfg["huber_c"])


class ConsistencyDistillation(ConsistencyMethod):
    """CD (Song et al. 2023, Alg. 2): x̂_n = one teacher ODE step from x_{n+1} = x + σ_{n+1}·z."""

    name = "cd"
    needs_teacher = True
    defaults = {**ConsistencyMethod.common_defaults, "init": "teacher", "N": 18, "solver": "heun", "target_ema": 0.95}

    def __init__(self, cfg, net_cfg, restoring: bool = False):
        super().__init__(cfg, net_cfg, restoring)
        if self.cfg["solver"] not in ("euler", "heun"):
            raise ValueError(f"cd: solver must be 'euler' or 'heun', got {self.cfg['solver']!r}")

    def teacher_denoiser(self, device):
        return self.teacher_method.to(device).denoiser()

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main") -> torch.Tensor:
        x0, c = batch.x, batch.tokens
        sig = self.discretisation(self.cfg["N"]).to(x0.device)
        n = torch.randint(0, self.cfg["N"] - 1, (x0.shape[0],), generator=generator).to(x0.device)
        z = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        sigma_n, sigma_next = sig[n], sig[n + 1]
        x_next = x0 + sigma_next.to(x0.dtype).view(-1, 1, 1, 1) * z
        # the teacher's ODE step σ_{n+1} → σ_n (frozen teacher, inputs without grad: no graph)
        x_n = ode_step(self.teacher_denoiser(x0.device), x_next, sigma_next, sigma_n, c, self.cfg["solver"]).detach()
        return self.pair_loss(x_next, sigma_next, x_n, sigma_n, c)

    def after_step(self, step: int) -> None:
        self.update_target(self.cfg["target_ema"])


def ct_schedule(k: int, total: int, s0: int = 2, s1: int = 150, mu0: float = 0.9) -> tuple[int, float]:
    """N(k) = ⌈sqrt(k/K·((s1+1)² − s0²) + s0²) − 1⌉ + 1 and μ(k) = exp(s0·log μ0/N(k))
    (Song et al. 2023, App. C)."""
    N = math.ceil(math.sqrt(min(k, total) / total * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1
    return N, math.exp(s0 * math.log(mu0) / N)


class ConsistencyTraining(ConsistencyMethod):
    """CT (Song et al. 2023, Alg. 3): the unbiased pair x + σ_{n+1}·z vs x + σ_n·z, no teacher."""

    name = "ct"
    defaults = {**ConsistencyMethod.common_defaults, "s0": 2, "s1": 150, "mu0": 0.9,
                "total_steps": 2000}  # total_steps: K of the N(k) curriculum (set to train.steps)

    def __init__(self, cfg, net_cfg, restoring: bool = False):
        super().__init__(cfg, net_cfg, restoring)
        self.register_buffer("k", torch.zeros((), dtype=torch.long))  # curriculum step, checkpointed

    def schedule_now(self) -> tuple[int, float]:
        c = self.cfg
        return ct_schedule(int(self.k), c["total_steps"], c["s0"], c["s1"], c["mu0"])

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main") -> torch.Tensor:
        x0, c = batch.x, batch.tokens
        N, _ = self.schedule_now()
        sig = self.discretisation(N).to(x0.device)
        n = torch.randint(0, N - 1, (x0.shape[0],), generator=generator).to(x0.device)
        z = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        sigma_n, sigma_next = sig[n], sig[n + 1]
        x_next = x0 + sigma_next.to(x0.dtype).view(-1, 1, 1, 1) * z
        x_n = x0 + sigma_n.to(x0.dtype).view(-1, 1, 1, 1) * z
        return self.pair_loss(x_next, sigma_next, x_n, sigma_n, c)

    def after_step(self, step: int) -> None:
        _, mu = self.schedule_now()
        self.update_target(mu)
        self.k.fill_(step + 1)
