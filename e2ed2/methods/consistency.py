"""Consistency models: distillation "cd" and training "ct" (Song et al. 2023; Song & Dhariwal 2023).

The consistency function puts the boundary condition on top of the network with the scalings
of ``e2ed2.precond.ConsistencyBoundary`` (Song et al. 2023, App. C):

    f_θ(x, σ) = c_skip(σ)·x + c_out(σ)·F_θ(c_in(σ)·x, c_noise(σ)),
    c_skip = σ_d²/((σ − σ_min)² + σ_d²),  c_out = σ_d(σ − σ_min)/√(σ² + σ_d²),

so f_θ(x, σ_min) = x exactly, with c_in and c_noise of the method's own parameterisation. With
``precond: edm`` F_θ is bounded at every σ and a student initialised from an EDM teacher starts
at f ≈ D_teacher for σ ≫ σ_min (the two scalings agree there).

Both minimise λ(σ_n)·d(f_θ(x_{n+1}, σ_{n+1}), f_θ⁻(x̂_n, σ_n)) over adjacent points of the
Karras grid σ_1 < … < σ_N (``Schedule.discretisation``):

- CD (Song et al. 2023, Alg. 2): x_{n+1} = x₀ + σ_{n+1}·z, x̂_n one ODE step of the frozen
  teacher; θ⁻ an EMA of θ (μ = ``target_ema``); n uniform.
- CT: x̂_n = x₀ + σ_n·z with the same z (no teacher in the loss). ``recipe: ict`` (default) is
  improved CT (Song & Dhariwal 2023): pseudo-Huber distance, λ(σ_n) = 1/(σ_{n+1} − σ_n), n drawn
  log-normally (P_mean −1.1, P_std 2.0), the doubling curriculum N(k) = min(s0·2^⌊k/K'⌋, s1) + 1,
  θ⁻ = stopgrad(θ). ``recipe: ct`` is the original (Song et al. 2023, App. C: N(k) from s0 to s1
  on a square-root curriculum, θ⁻ an EMA with μ(k) = exp(s0·ln μ0/N(k)), uniform n). The
  curriculum's length K is the training run's length, given by the loop (``after_step``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .. import samplers
from ..config import knob
from ..denoiser import ClippedDenoiser, Denoiser, GuidedDenoiser
from ..losses.distance import distance
from ..precond import ConsistencyBoundary
from .base import Batch, DiffusionConfig, Method, Teacher, TeacherConfig


@dataclass(frozen=True)
class ConsistencyConfig(TeacherConfig, DiffusionConfig):
    teacher: str | None = knob(None, doc="teacher checkpoint (init: teacher; CD's ODE steps)")
    distance: Literal["l2", "l1", "pseudo_huber", "mslap"] = knob("l2", doc="d(·,·) of the consistency loss")
    huber_c: float | None = knob(None, gt=0, doc="pseudo-Huber c (default 0.00054·√dim)")


class ConsistencyMethod(Teacher, Method):
    """Shared parts of CD and CT: f_θ, the target θ⁻, the pair loss, consistency sampling."""

    default_sampler = "consistency"

    def __init__(self, cfg: ConsistencyConfig, net_cfg=None):
        super().__init__(cfg, net_cfg)
        self.boundary = ConsistencyBoundary(self.param, self.schedule.sigma_min, cfg.sigma_data)
        self.target = copy.deepcopy(self.net).requires_grad_(False)

    @property
    def sigma_min(self) -> float:
        return self.schedule.sigma_min

    def init_from(self, teacher: Method) -> None:
        super().init_from(teacher)
        self.target.load_state_dict(self.net.state_dict())

    def denoiser(self, net=None) -> nn.Module:
        """The consistency function f_θ (of ``net``, default the online network)."""
        f = Denoiser(net if net is not None else self.net, self.boundary)
        return ClippedDenoiser(f) if self.cfg.clip_denoised else f

    def sigmas(self, steps: int, mid_sigmas=None) -> torch.Tensor:
        """Multistep ladder σ_max > τ_1 > … > τ_{steps−1}, then 0 (Song et al. 2023, Alg. 1).
        By default the τ's are the inner points of a (steps+1)-point Karras ladder over
        [σ_min, σ_max] (σ_min itself is skipped: f(x, σ_min) = x); ``mid_sigmas`` gives them
        explicitly, e.g. [0.821] for two steps as in improved CT (Song & Dhariwal 2023)."""
        s = self.schedule
        if mid_sigmas is None:
            ladder = s.discretisation(steps + 1).flip(0)
            return torch.cat([ladder[:steps], ladder.new_zeros(1)])
        mids = [float(v) for v in mid_sigmas]
        if len(mids) != steps - 1:
            raise ValueError(f"consistency sampling with {steps} steps takes {steps - 1} intermediate σ's, got {mids}")
        ladder = [s.sigma_max, *mids]
        if any(not (s.sigma_min < b < a) for a, b in zip(ladder, ladder[1:])):
            raise ValueError(f"intermediate σ's {mids} must descend strictly inside (σ_min, σ_max) = "
                             f"({s.sigma_min}, {s.sigma_max})")
        return torch.tensor([*ladder, 0.0], dtype=torch.float64)

    def sample(self, z, cond=None, steps: int = 1, *, sampler=None, net=None, generator=None, guidance=1.0,
               denoiser=None, mid_sigmas=None):
        if (sampler or self.default_sampler) != "consistency":
            return super().sample(z, cond, steps, sampler=sampler, net=net, generator=generator, guidance=guidance,
                                  denoiser=denoiser, mid_sigmas=mid_sigmas)
        sigmas = self.sigmas(steps, mid_sigmas)
        D = denoiser if denoiser is not None else self.denoiser(net)
        D = GuidedDenoiser(D, guidance) if guidance != 1.0 else D
        return samplers.sample_consistency(D, self.prior(z, sigmas[0]), sigmas, cond, generator=generator,
                                           sigma_min=self.sigma_min)

    def update_target(self, mu: float) -> None:
        """θ⁻ ← μ·θ⁻ + (1 − μ)·θ (stop-gradient EMA, Song et al. 2023 Alg. 2-3)."""
        with torch.no_grad():
            for pt, p in zip(self.target.parameters(), self.net.parameters()):
                pt.lerp_(p, 1 - mu)
            for bt, b in zip(self.target.buffers(), self.net.buffers()):
                bt.copy_(b)

    def pair_loss(self, x_next, sigma_next, x_n, sigma_n, cond, target_net: nn.Module) -> torch.Tensor:
        """d(f_θ(x_{n+1}, σ_{n+1}), f_θ⁻(x̂_n, σ_n)) per sample (Song et al. 2023, eqs. 7 and 10)."""
        online = self.denoiser(self.net)(x_next, sigma_next, cond)
        with torch.no_grad():
            target = self.denoiser(target_net)(x_n, sigma_n, cond)
        return distance(online, target, self.cfg.distance, self.cfg.huber_c)


# ---- consistency distillation ------------------------------------------------------------------
@dataclass(frozen=True)
class CDConfig(ConsistencyConfig):
    init: Literal["teacher", "scratch"] = knob("teacher", doc="start from the teacher's weights or at random")
    N: int = knob(18, min=2, doc="points of the σ grid")
    solver: Literal["euler", "heun"] = knob("heun", doc="the teacher's ODE step")
    target_ema: float = knob(0.95, min=0.0, lt=1.0, doc="μ of the target network θ⁻")


class ConsistencyDistillation(ConsistencyMethod):
    """CD (Song et al. 2023, Alg. 2): x̂_n = one teacher ODE step from x_{n+1} = x₀ + σ_{n+1}·z."""

    name = "cd"
    display_name = "CD"
    Config = CDConfig

    def uses_teacher(self) -> bool:
        return True

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main", teacher=None) -> torch.Tensor:
        if teacher is None:
            raise ValueError("cd: the loss needs the frozen teacher (build the run with e2ed2.methods.build_training)")
        x0, c = batch.x, batch.tokens
        sig = self.schedule.discretisation(self.cfg.N).to(x0.device)
        n = torch.randint(0, self.cfg.N - 1, (x0.shape[0],), generator=generator).to(x0.device)
        z = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        sigma_n, sigma_next = sig[n], sig[n + 1]
        x_next = x0 + sigma_next.to(x0.dtype).view(-1, 1, 1, 1) * z
        # the teacher's ODE step σ_{n+1} → σ_n (frozen teacher, no graph)
        with torch.no_grad():
            x_n = samplers.ode_step(teacher.denoiser(), x_next, sigma_next, sigma_n, c, self.cfg.solver)
        return self.pair_loss(x_next, sigma_next, x_n, sigma_n, c, self.target)

    def after_step(self, step: int, total: int) -> None:
        self.update_target(self.cfg.target_ema)


# ---- consistency training ----------------------------------------------------------------------
@dataclass(frozen=True)
class CTConfig(ConsistencyConfig):
    schedule: Literal["linear", "cosine", "edm"] = knob("edm", doc="σ ∈ [0.002, 80] as in (i)CT")
    precond: Literal["eps", "v", "x0", "edm"] = knob("edm", doc="c_in, c_noise of EDM under the boundary scalings")
    recipe: Literal["ict", "ct"] = knob("ict",
                                        doc="improved CT (Song & Dhariwal 2023) or the original (Song et al. 2023)")
    distance: Literal["l2", "l1", "pseudo_huber", "mslap"] = knob("pseudo_huber", doc="d(·,·) of the consistency loss")
    s0: int = knob(10, min=2, doc="initial grid size of the curriculum")
    s1: int = knob(1280, min=2, doc="final grid size of the curriculum")
    mu0: float = knob(0.9, min=0.0, lt=1.0, doc="ct recipe: initial target EMA μ0")
    index_P_mean: float = knob(-1.1, doc="ict: mean of ln σ for the log-normal choice of n")
    index_P_std: float = knob(2.0, gt=0, doc="ict: std of ln σ for the log-normal choice of n")


def ct_grid_size(k: int, total: int, s0: int, s1: int, recipe: str) -> int:
    """N(k), the number of grid points at step k of ``total``.

    ct (Song et al. 2023, App. C): ⌈√(k/K·((s1+1)² − s0²) + s0²) − 1⌉ + 1;
    ict (Song & Dhariwal 2023, eq. 8): min(s0·2^⌊k/K'⌋, s1) + 1, K' = ⌊K/(⌊log2(s1/s0)⌋ + 1)⌋."""
    k = min(k, total)
    if recipe == "ct":
        return math.ceil(math.sqrt(k / total * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1
    K_prime = max(1, total // (int(math.log2(s1 / s0)) + 1))
    return min(s0 * 2 ** (k // K_prime), s1) + 1


def lognormal_index_probs(sigmas: torch.Tensor, P_mean: float, P_std: float) -> torch.Tensor:
    """p(n) ∝ erf((ln σ_{n+1} − P_mean)/(√2·P_std)) − erf((ln σ_n − P_mean)/(√2·P_std)), n = 1…N−1
    (Song & Dhariwal 2023, §3.5), for an ascending grid ``sigmas``."""
    cdf = torch.erf((sigmas.log() - P_mean) / (math.sqrt(2) * P_std))
    p = (cdf[1:] - cdf[:-1]).clamp(min=0)
    return p / p.sum()


class ConsistencyTraining(ConsistencyMethod):
    """CT: the pair x₀ + σ_{n+1}·z vs x₀ + σ_n·z with one z, no teacher (see module docstring)."""

    name = "ct"
    display_name = "CT"
    Config = CTConfig

    def __init__(self, cfg: CTConfig, net_cfg=None):
        super().__init__(cfg, net_cfg)
        # curriculum position (step k, run length K), checkpointed with the weights
        self.register_buffer("k", torch.zeros((), dtype=torch.long))
        self.register_buffer("total", torch.ones((), dtype=torch.long))

    def grid(self) -> torch.Tensor:
        c = self.cfg
        return self.schedule.discretisation(ct_grid_size(int(self.k), int(self.total), c.s0, c.s1, c.recipe))

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main", teacher=None) -> torch.Tensor:
        x0, c, cfg = batch.x, batch.tokens, self.cfg
        sig = self.grid().to(x0.device)
        if cfg.recipe == "ict":
            probs = lognormal_index_probs(sig.cpu(), cfg.index_P_mean, cfg.index_P_std)
            n = torch.multinomial(probs.float(), x0.shape[0], replacement=True, generator=generator).to(x0.device)
        else:
            n = torch.randint(0, len(sig) - 1, (x0.shape[0],), generator=generator).to(x0.device)
        z = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        sigma_n, sigma_next = sig[n], sig[n + 1]
        x_next = x0 + sigma_next.to(x0.dtype).view(-1, 1, 1, 1) * z
        x_n = x0 + sigma_n.to(x0.dtype).view(-1, 1, 1, 1) * z
        target_net = self.net if cfg.recipe == "ict" else self.target  # ict: θ⁻ = stopgrad(θ)
        d = self.pair_loss(x_next, sigma_next, x_n, sigma_n, c, target_net)
        if cfg.recipe == "ict":  # λ(σ_n) = 1/(σ_{n+1} − σ_n)
            d = d / (sigma_next - sigma_n).to(d.dtype)
        return d

    def after_step(self, step: int, total: int) -> None:
        self.total.fill_(total)
        if self.cfg.recipe == "ct":
            N = ct_grid_size(int(self.k), total, self.cfg.s0, self.cfg.s1, "ct")
            self.update_target(math.exp(self.cfg.s0 * math.log(self.cfg.mu0) / N))
        self.k.fill_(step + 1)
