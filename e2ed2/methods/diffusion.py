"""Denoising diffusion trained with the denoising loss: DDPM (Ho et al. 2020) and EDM (Karras et al. 2022).

Both minimise λ(σ)·‖D_θ(x₀ + σn, σ) − x₀‖² (``base.denoising_loss``); they differ only in
their defaults, i.e. in EDM Table 1's columns:

- ``ddpm``: ε-prediction on the T = 1000 linear-β VP schedule, t ~ U{0…T−1}, unit weight on ε
  (the "simple" loss, eq. 14). Sampling: ancestral (``ddpm`` sampler) on the trailing respacing,
  x̂₀ clipped to [−1, 1] as in the paper's reference sampler (``clip_denoised``). ``precond: v``
  or ``x0`` train the other parameterisations on the same schedule.
- ``edm``: EDM preconditioning (c_skip, c_out, c_in, c_noise = ln σ/4), ln σ ~ N(−1.2, 1.2²),
  λ(σ) = (σ² + σ_d²)/(σσ_d)², σ ∈ [0.002, 80]; sampled on the Karras ρ = 7 ladder.

DDIM (Song et al. 2021) has no training of its own: a trained diffusion model (the DDPM or EDM
teacher) under the deterministic ``ddim`` sampler (η = 0) at any step count. The workflow never
trains "ddim": it samples the teacher's final.pt with ``--sampler ddim`` (``checkpoint_of:`` in
the config); :meth:`DDIM.of` gives the same as a Method object, the teacher's weights unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import knob
from .base import Batch, DiffusionConfig, Method, denoising_loss


@dataclass(frozen=True)
class DDPMConfig(DiffusionConfig):
    clip_denoised: bool = knob(True, doc="clamp x̂₀ to [−1, 1] in every sampler step (Ho et al.'s p_sample)")


class DDPM(Method):
    name = "ddpm"
    display_name = "DDPM (ε, linear β)"  # its defaults: ε-prediction on the linear-β VP table
    Config = DDPMConfig
    default_sampler = "ddpm"

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main", teacher=None) -> torch.Tensor:
        return denoising_loss(self, batch.x, batch.tokens, generator)


@dataclass(frozen=True)
class EDMConfig(DiffusionConfig):
    schedule: Literal["linear", "cosine", "edm"] = knob("edm", doc="EDM's continuous σ ∈ [sigma_min, sigma_max]")
    precond: Literal["eps", "v", "x0", "edm"] = knob("edm", doc="EDM preconditioning (e2ed2.precond)")


class EDM(DDPM):
    name = "edm"
    display_name = "EDM (teacher)"  # the harness's teacher of every distilled student
    Config = EDMConfig
    default_sampler = "heun"


class DDIM(Method):
    name = "ddim"
    display_name = "DDIM (η = 0)"
    Config = DiffusionConfig
    default_sampler = "ddim"
    trainable = False

    @classmethod
    def of(cls, model: Method) -> DDIM:
        """``model`` (any diffusion Method) as DDIM: same config, same weights, sampler 'ddim'."""
        ddim = cls(model.cfg, model.net.config)
        ddim.net.load_state_dict(model.net.state_dict())
        return ddim

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main", teacher=None) -> torch.Tensor:
        raise RuntimeError("ddim has no training of its own: train 'ddpm' (or 'edm') and sample its checkpoint "
                           "with --sampler ddim (or DDIM.of(model))")
