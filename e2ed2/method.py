"""The Method interface: what every training method (E2ED² and baselines) provides.

A method owns its network(s) and defines a per-sample loss for each optimisation *phase*
(most methods have one, "main"; E2ED² with an adversarial term adds "disc", stepped before
"main" every iteration). The shared loop in ``e2ed2.train`` owns everything else: data,
optimizers, LR warm-up, clipping, EMA, checkpoints and logs — identical for all methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from . import samplers, schedules
from .denoiser import ClippedDenoiser, VPDenoiser
from .nets import UNet


@dataclass
class Batch:
    x: torch.Tensor  # float [-1, 1], B×C×H×W (x₀, the data)
    tokens: torch.Tensor  # int64 B×L caption tokens; all-zero rows = dropped condition
    labels: torch.Tensor  # int64 B (-1 when unlabelled)


class Method(nn.Module):
    """Base class. Subclasses set ``name``, ``defaults`` and implement ``loss``.

    ``self.net`` is the network that is EMA-averaged, checkpointed and sampled from.
    ``cfg`` is ``defaults`` updated by the user's method config; unknown keys are an error.
    ``restoring`` is True when the weights will be loaded from a checkpoint right after
    construction: subclasses then skip work that only matters for a fresh run (loading a
    teacher file to initialise from), so a checkpoint can be sampled without its teacher.
    """

    name: ClassVar[str] = "method"
    phases: tuple[str, ...] = ("main",)
    defaults: ClassVar[dict] = {}
    # Shared σ-space conventions: VP DDPM schedule the UNet is conditioned on.
    # clip_denoised clamps x̂₀ to [−1, 1] inside every sampler step (Ho et al.'s p_sample does).
    schedule_defaults: ClassVar[dict] = {"T": 1000, "schedule": "linear", "zero_snr": False, "prediction": "eps",
                                         "clip_denoised": False}
    default_sampler: ClassVar[str] = "euler"

    def __init__(self, cfg: dict | None, net_cfg: dict | None, restoring: bool = False):
        super().__init__()
        self.restoring = restoring
        self.cfg = self.resolve_config(cfg)
        self.net = UNet(net_cfg)
        self.train_sigmas = schedules.ddpm_sigmas(self.cfg["T"], self.cfg["schedule"], self.cfg["zero_snr"])

    @classmethod
    def resolve_config(cls, cfg: dict | None) -> dict:
        full = {**cls.schedule_defaults, **cls.defaults}
        cfg = dict(cfg or {})
        cfg.pop("name", None)
        unknown = set(cfg) - set(full)
        if unknown:
            raise KeyError(f"method {cls.name!r}: unknown config keys {sorted(unknown)}; valid: {sorted(full)}")
        full.update(cfg)
        return full

    # ---- training -------------------------------------------------------------------
    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main") -> torch.Tensor:
        """Per-sample loss, shape [B], for the given phase."""
        raise NotImplementedError

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """Parameters the optimizer of ``phase`` updates (default: the network)."""
        return list(self.net.parameters())

    def after_step(self, step: int) -> None:
        """Hook after each optimizer step (e.g. a consistency target's EMA)."""

    # ---- sampling -------------------------------------------------------------------
    def denoiser(self, net: nn.Module | None = None) -> nn.Module:
        """D(x, σ, cond) for ``net`` (default: the online network), clipped if ``clip_denoised``."""
        D = VPDenoiser(net if net is not None else self.net, self.train_sigmas, self.cfg["prediction"])
        return ClippedDenoiser(D) if self.cfg["clip_denoised"] else D

    def sigmas(self, steps: int, sampler: str | None = None) -> torch.Tensor:
        """The σ ladder for `steps` sampler steps (trailing respacing of the training table)."""
        return schedules.respace(self.train_sigmas, steps, "trailing")

    def prior(self, z: torch.Tensor, sigma_max: torch.Tensor) -> torch.Tensor:
        """x_T in σ-space from z ~ N(0, I): the VP prior x_vp = z, i.e. x = z·sqrt(1 + σ_max²)."""
        return z * float((1 + sigma_max.double() ** 2).sqrt())

    def sample(self, z, cond=None, steps: int = 1, *, sampler: str | None = None, net=None,
               generator=None, guidance: float = 1.0, denoiser=None) -> torch.Tensor:
        """Images in [-1, 1] from pure noise z. Grad mode is the caller's choice."""
        sampler = sampler or self.default_sampler
        sigmas = self.sigmas(steps, sampler)
        D = denoiser if denoiser is not None else self.denoiser(net)
        if guidance != 1.0:
            from .denoiser import GuidedDenoiser

            D = GuidedDenoiser(D, guidance)
        return samplers.get_sampler(sampler)(D, self.prior(z, sigmas[0]), sigmas, cond, generator=generator)

    def extra_state(self) -> dict:
        """Method-specific hyper-state stored in checkpoints beside the state_dict."""
        return {}
