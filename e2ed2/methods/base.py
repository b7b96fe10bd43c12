"""The Method interface: what every training method (E2ED² and baselines) provides.

A method owns its network(s) and defines a per-sample loss for each optimisation *phase*
(most methods have one, "main"; E2ED² with an adversarial term adds "disc", stepped before
"main" every iteration). The shared loop in ``e2ed2.trainer`` owns everything else: data,
optimizers, LR warm-up, clipping, EMA, checkpoints and logs — identical for all methods.

A method is built from plain arguments: its typed config (a frozen dataclass, ``Config``) and
the UNet config. Files are opened elsewhere: ``registry`` resolves a teacher checkpoint,
checks it and hands the frozen teacher to ``init_from`` (initial weights) and to ``loss``
(a distillation target), the way NVlabs/edm's training loop wires its parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from .. import precond, samplers
from ..config import ConfigError, as_dict, knob
from ..denoiser import ClippedDenoiser, Denoiser, GuidedDenoiser
from ..nets import UNet, UNetConfig
from ..schedules import Schedule

VP_SCHEDULES = ("linear", "cosine")


@dataclass
class Batch:
    x: torch.Tensor  # float [-1, 1], B×C×H×W (x₀, the data)
    tokens: torch.Tensor  # int64 B×L caption tokens; all-zero rows = dropped condition
    labels: torch.Tensor  # int64 B (-1 when unlabelled)


@dataclass(frozen=True)
class DiffusionConfig:
    """How noise levels σ map to the network: shared by every method, and a teacher and its
    student must agree on it (``TEACHER_KEYS``). See ``e2ed2.schedules.Schedule`` and
    ``e2ed2.precond`` for what each knob means."""

    schedule: Literal["linear", "cosine", "edm"] = knob("linear",
                                                        doc="VP table (linear/cosine β) or EDM's continuous σ")
    T: int = knob(1000, min=2, doc="VP: number of discrete timesteps")
    zero_snr: bool = knob(False, doc="VP: rescale to ᾱ_T = 0 (Lin et al. 2024)")
    sigma_min: float = knob(0.002, gt=0, doc="edm: smallest σ")
    sigma_max: float = knob(80.0, gt=0, doc="edm: largest σ (the prior's)")
    rho: float = knob(7.0, gt=0, doc="ρ of the Karras ladder (edm sampling; consistency grids)")
    P_mean: float = knob(-1.2, doc="edm: mean of ln σ during training")
    P_std: float = knob(1.2, gt=0, doc="edm: std of ln σ during training")
    precond: Literal["eps", "v", "x0", "edm"] = knob("eps", doc="network parameterisation (e2ed2.precond)")
    sigma_data: float = knob(0.5, gt=0, doc="σ_data of the edm and consistency scalings")
    clip_denoised: bool = knob(False, doc="clamp x̂₀ to [−1, 1] in every sampler step")

    def __post_init__(self):
        if self.schedule == "edm" and self.precond != "edm":
            raise ConfigError(f"precond {self.precond!r} conditions the network on DDPM timesteps and needs a VP "
                              f"schedule {VP_SCHEDULES}; with schedule 'edm' use precond 'edm'")
        if self.sigma_min >= self.sigma_max:
            raise ConfigError(f"sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})")


# The knobs a student must share with its teacher (initialising from it or stepping its ODE).
TEACHER_KEYS = ("schedule", "T", "zero_snr", "sigma_min", "sigma_max", "precond", "sigma_data")


@dataclass(frozen=True)
class TeacherConfig:
    """Knobs of a method that starts from, or distils, a trained teacher (a mixin of its config:
    ``class MyConfig(TeacherConfig, DiffusionConfig)``; a subclass may re-declare a default)."""

    init: Literal["teacher", "scratch"] = knob("scratch", doc="start from the teacher's weights or at random")
    teacher: str | None = knob(None, doc="teacher checkpoint (the workflow sets it from the model's `teacher:`)")


class Method(nn.Module):
    """Base class. Subclasses set ``name``, ``Config`` (a DiffusionConfig subclass) and ``loss``.

    ``self.net`` is the network that is EMA-averaged, checkpointed and sampled from.
    """

    name: ClassVar[str] = "method"
    # the readable name in the report's tables, legends and grids (a sample set records it: the
    # report, torch-free, reads it from there); empty: the registry name
    display_name: ClassVar[str] = ""
    Config: ClassVar[type] = DiffusionConfig
    phases: tuple[str, ...] = ("main",)
    default_sampler: ClassVar[str] = "euler"
    trainable: ClassVar[bool] = True

    def __init__(self, cfg: DiffusionConfig, net_cfg: UNetConfig | dict | None = None):
        super().__init__()
        if not isinstance(cfg, self.Config):
            raise TypeError(f"{self.name}: cfg must be a {self.Config.__name__}, got {type(cfg).__name__}")
        self.cfg = cfg
        self.net = UNet(net_cfg)
        if cfg.schedule == "edm":
            self.schedule = Schedule("edm", None, cfg.sigma_min, cfg.sigma_max, cfg.rho, cfg.P_mean, cfg.P_std)
        else:
            self.schedule = Schedule.vp(cfg.T, cfg.schedule, cfg.zero_snr)
        self.param = precond.build(cfg.precond, self.schedule.table, cfg.sigma_data)

    # ---- construction helpers ------------------------------------------------------------
    def config_dict(self) -> dict:
        """Every knob, defaults included, with the registry name (stored in checkpoints)."""
        return {"name": self.name, **as_dict(self.cfg)}

    def teacher_path(self) -> str | None:
        """The teacher checkpoint this run needs (to initialise from or to distil), if any."""
        return None

    def uses_teacher(self) -> bool:
        """Whether ``loss`` needs the frozen teacher (distillation targets)."""
        return False

    def init_from(self, teacher: Method) -> None:
        """Start from the teacher's (EMA) weights; the builder has checked the configs agree."""
        self.net.load_state_dict(teacher.net.state_dict())

    # ---- training -------------------------------------------------------------------
    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main", teacher=None) -> torch.Tensor:
        """Per-sample loss, shape [B], for the given phase."""
        raise NotImplementedError

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """Parameters the optimizer of ``phase`` updates (default: the network)."""
        return list(self.net.parameters())

    def begin_step(self, step: int, total: int) -> tuple[str, ...]:
        """Hook before iteration ``step`` (0-based) of ``total``, also on a resumed run's first one: the
        phases to run now, in order (default: each of ``phases`` once; a name may repeat, and every
        name is one of ``phases``, which has one optimizer each). A loss that follows a schedule
        reads the step here."""
        return self.phases

    def step_stats(self) -> dict[str, float]:
        """Diagnostics of the iteration just run, merged into the loop's logged stats (default: none)."""
        return {}

    def after_step(self, step: int, total: int) -> None:
        """Hook after optimizer step ``step`` (0-based) of ``total`` (e.g. a consistency target's EMA)."""

    # ---- sampling -------------------------------------------------------------------
    def denoiser(self, net: nn.Module | None = None) -> nn.Module:
        """D(x, σ, cond) for ``net`` (default: the online network), clipped if ``clip_denoised``."""
        D = Denoiser(net if net is not None else self.net, self.param)
        return ClippedDenoiser(D) if self.cfg.clip_denoised else D

    def sigmas(self, steps: int) -> torch.Tensor:
        """The σ ladder for ``steps`` sampler steps (float64, descending, ending in 0)."""
        return self.schedule.ladder(steps)

    def prior(self, z: torch.Tensor, sigma_max: torch.Tensor) -> torch.Tensor:
        """x_T from z ~ N(0, I) at the ladder's first σ (VP: √(1+σ²)·z; EDM: σ·z)."""
        return z * self.schedule.prior_std(sigma_max)

    def sample(self, z, cond=None, steps: int = 1, *, sampler: str | None = None, net=None,
               generator=None, guidance: float = 1.0, denoiser=None, mid_sigmas=None) -> torch.Tensor:
        """Images in [-1, 1] from pure noise z. Grad mode is the caller's choice.
        ``mid_sigmas`` is an option of the consistency sampler only (see ConsistencyMethod)."""
        sampler = sampler or self.default_sampler
        if mid_sigmas is not None:
            raise ValueError(f"mid_sigmas is an option of the consistency sampler, not of {self.name}'s {sampler!r}")
        sigmas = self.sigmas(steps)
        D = denoiser if denoiser is not None else self.denoiser(net)
        if guidance != 1.0:
            D = GuidedDenoiser(D, guidance)
        return samplers.get_sampler(sampler)(D, self.prior(z, sigmas[0]), sigmas, cond, generator=generator)


class Teacher:
    """Mixin of a Method whose config has the TeacherConfig knobs: it needs the teacher's checkpoint
    to initialise from it (``init: teacher``) or when its loss uses the frozen teacher."""

    def teacher_path(self) -> str | None:
        return self.cfg.teacher if self.cfg.init == "teacher" or self.uses_teacher() else None


def denoising_loss(method: Method, x0: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """λ(σ)·‖D_θ(x₀ + σn, σ) − x₀‖² per sample (EDM eq. 2), written as the regression of F_θ on
    F_target with weight λ(σ)·c_out(σ)² (EDM eq. 8); σ from the method's training distribution.
    For eps/v/x0 the weight is 1 and this is DDPM's "simple" loss on ε, v or x₀ (Ho et al. 2020,
    eq. 14; Salimans & Ho 2022)."""
    B = x0.shape[0]
    sigma = method.schedule.training_sigmas(B, generator).to(x0.device)
    n = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    s = sigma.view(-1, *([1] * (x0.ndim - 1)))
    x = x0 + s.to(x0.dtype) * n
    c_skip, c_out, c_in = (c.to(x0.dtype) for c in method.param.scalings(s))
    F = method.net(x * c_in, method.param.c_noise(sigma).to(x0.dtype), tokens)
    weight = (method.param.loss_weight(s) * method.param.scalings(s)[1] ** 2).to(x0.dtype)
    return (weight * (F - (x0 - c_skip * x) / c_out) ** 2).flatten(1).mean(1)
