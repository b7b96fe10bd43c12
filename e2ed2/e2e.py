"""E2ED²: train the few-step sampler end to end from pure noise (arXiv 2412.21044; docs/DESIGN.md §4).

Generator G_θ(z, c): the K-step deterministic sampler (default DDIM η=0) on the method's own
ladder, started from pure noise, the shared UNet at every step, gradients through every step.
Loss on the final sample x̂ = G_θ(z, c):
    λ_rec·d(x̂, x) + λ_perc·perceptual(x̂, x) + λ_adv·(−D_ψ(x̂, c))
with x the data paired with c (``pairing: data``) or the teacher's many-step ODE sample from
the same z (``pairing: teacher``). With λ_adv > 0 a conditional discriminator D_ψ is trained
in a "disc" phase (hinge loss, optional R1) before each generator ("main") phase.
Per-step activation checkpointing keeps memory flat in K; ``backprop_last: k`` detaches x
before the last k steps (truncation ablation); ``start: leaky`` starts from forward-noised
data at the largest σ instead of pure noise (leakage ablation).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import samplers
from .config import ConfigError, knob
from .discriminator import Discriminator
from .losses import PERCEPTUAL_BACKENDS, build_perceptual
from .losses.adversarial import d_hinge, g_hinge, r1_penalty
from .losses.distance import distance
from .method import Batch, DiffusionConfig, Method
from .pairs import TeacherPairs, load_pairs

CHAIN_SAMPLERS = ("ddim", "euler", "heun", "dpmpp_2m", "ddpm")  # any σ-space sampler but consistency


@dataclass(frozen=True)
class E2ED2Config(DiffusionConfig):
    steps: int = knob(2, min=1, doc="K: sampler steps unrolled in training (sampling may use any K')")
    sampler: Literal[CHAIN_SAMPLERS] = knob("ddim", doc="the chain trained through; sample() defaults to it")
    init: Literal["teacher", "scratch"] = knob("teacher", doc="start from the teacher's weights or at random")
    teacher: str | None = knob(None, doc="teacher checkpoint (init: teacher, pairing: teacher)")
    pairing: Literal["data", "teacher"] = knob("data",
                                               doc="target: the data paired with c, or the teacher's ODE sample from z")
    teacher_steps: int = knob(25, min=1, doc="pairing teacher: the teacher's sampler steps")
    teacher_sampler: Literal[CHAIN_SAMPLERS] = knob("ddim", doc="pairing teacher: the teacher's sampler")
    teacher_pairs: str | None = knob(None, doc="pairing teacher: a file of precomputed (z, c, teacher sample) "
                                               "pairs (python -m e2ed2.make_pairs); None: the teacher per step")
    start: Literal["pure", "leaky"] = knob("pure", doc="x_T = prior·z, or x₀ + σ_max·z (leakage ablation)")
    lambda_rec: float = knob(1.0, min=0.0, doc="weight of the regression term")
    rec_distance: Literal["l2", "l1", "pseudo_huber"] = knob("l2", doc="distance of the regression term")
    lambda_perc: float = knob(1.0, min=0.0, doc="weight of the perceptual term")
    perceptual: Literal[PERCEPTUAL_BACKENDS] = knob("mslap", doc="perceptual backend (e2ed2.losses)")
    lambda_adv: float = knob(0.0, min=0.0, doc="weight of the adversarial term (0: no discriminator)")
    disc_channels: int = knob(16, min=1, doc="width of the discriminator")
    r1_gamma: float = knob(0.0, min=0.0, doc="R1 weight γ (penalty γ/2·‖∇D‖²); 0 = off")
    backprop_last: int = knob(0, min=0, doc="k > 0: gradients through only the last k steps; 0 = all")
    checkpointing: bool = knob(True, doc="recompute each step's activations in backward (memory flat in K)")

    def __post_init__(self):
        super().__post_init__()
        if self.backprop_last > self.steps:
            raise ConfigError(f"backprop_last ({self.backprop_last}) must be ≤ steps ({self.steps})")
        if self.teacher_pairs and (self.pairing != "teacher" or self.start != "pure"):
            raise ConfigError("teacher_pairs needs pairing: teacher and start: pure (a leaky start depends on the "
                              f"batch's data, which precomputed pairs cannot see); got pairing {self.pairing!r}, "
                              f"start {self.start!r}")


class CheckpointedDenoiser(nn.Module):
    """D(x, σ, c) whose activations are recomputed in backward (one checkpoint per sampler step)."""

    def __init__(self, denoiser: nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x, sigma, cond=None):
        return checkpoint(self.denoiser, x, sigma, cond, use_reentrant=False)


class E2ED2(Method):
    name = "e2ed2"
    Config = E2ED2Config

    def __init__(self, cfg: E2ED2Config, net_cfg=None):
        super().__init__(cfg, net_cfg)
        self.default_sampler = cfg.sampler
        if cfg.lambda_adv > 0:
            self.phases = ("disc", "main")
            nc = self.net.config
            self.disc = Discriminator(nc.image_channels, nc.resolution, cfg.disc_channels, nc.vocab_size)

    def teacher_path(self) -> str | None:
        return self.cfg.teacher if self.cfg.init == "teacher" or self.uses_teacher() else None

    def uses_teacher(self) -> bool:
        return self.cfg.pairing == "teacher" and not self.cfg.teacher_pairs

    @cached_property
    def pairs(self) -> tuple[TeacherPairs, torch.Tensor] | None:
        """The precomputed teacher pairs and their caption tokens, read on first use (training only)."""
        if not self.cfg.teacher_pairs:
            return None
        pairs = load_pairs(self.cfg.teacher_pairs)
        nc = self.net.config
        if tuple(pairs.z.shape[1:]) != (nc.image_channels, nc.resolution, nc.resolution):
            raise ValueError(f"{self.cfg.teacher_pairs}: pairs of shape {tuple(pairs.z.shape[1:])} but the net makes "
                             f"{nc.image_channels}×{nc.resolution}×{nc.resolution} images; remake them for this data")
        return pairs, pairs.tokens(nc.vocab_size, nc.max_tokens)

    def draw_pairs(self, B: int, generator: torch.Generator, device, dtype):
        """B pairs drawn uniformly with replacement: (z, caption tokens, the teacher's sample from z)."""
        pairs, tokens = self.pairs
        idx = torch.randint(0, len(pairs), (B,), generator=generator)
        return (pairs.z[idx].to(device, dtype), tokens[idx].to(device), pairs.x[idx].to(device, dtype))

    @cached_property
    def perceptual(self) -> nn.Module | None:
        """The frozen perceptual loss, built on first use (sampling never needs its weights) and
        kept out of the state_dict: it is part of the loss, not of the model."""
        return build_perceptual(self.cfg.perceptual) if self.cfg.lambda_perc > 0 else None

    # ---- the unrolled generator G_θ(z, c) ----------------------------------------------
    def start(self, z: torch.Tensor, x0: torch.Tensor | None, sigma_max: torch.Tensor) -> torch.Tensor:
        """x_T in σ-space. pure: the prior (no data). leaky: the forward process at the largest
        σ, x = x₀ + σ_max·z (in VP variables x_vp = √ᾱ_T·x₀ + √(1 − ᾱ_T)·z)."""
        if self.cfg.start == "pure":
            return self.prior(z, sigma_max)
        if x0 is None:
            raise ValueError("e2ed2: start 'leaky' needs the data x₀")
        return x0 + float(sigma_max) * z

    def generate(self, z, cond, x0=None, generator=None, steps: int | None = None) -> torch.Tensor:
        """x̂ = G_θ(z, c): the K-step sampler with gradients (grad mode is the caller's)."""
        K = int(steps or self.cfg.steps)
        sigmas = self.sigmas(K)
        D = self.denoiser()
        if self.cfg.checkpointing:
            D = CheckpointedDenoiser(D)
        k = self.cfg.backprop_last
        # truncation: cut the graph before step K − k, so only the last k steps get gradients
        hook = (lambda i, x: x.detach() if i == K - k else x) if 0 < k < K else None
        sample = samplers.get_sampler(self.cfg.sampler)
        return sample(D, self.start(z, x0, sigmas[0]), sigmas, cond, generator=generator, step_hook=hook)

    def teacher_target(self, teacher: Method, z, cond) -> torch.Tensor:
        """pairing: teacher — the teacher's many-step ODE sample from the same z (no graph)."""
        with torch.no_grad():
            return teacher.sample(z, cond, self.cfg.teacher_steps, sampler=self.cfg.teacher_sampler)

    # ---- losses --------------------------------------------------------------------------
    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main", teacher=None) -> torch.Tensor:
        x0, c, cfg = batch.x, batch.tokens, self.cfg
        if cfg.teacher_pairs:  # noise, caption and target from the precomputed teacher pairs
            z, c, pair_target = self.draw_pairs(x0.shape[0], generator, x0.device, x0.dtype)
        else:
            z = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        if phase == "disc":
            with torch.no_grad():  # the fakes only: no K-step graph to build and throw away
                fake = self.generate(z, c, x0, generator)
            return self.disc_loss(x0, fake, c, real_cond=batch.tokens)
        if phase != "main":
            raise ValueError(f"e2ed2: unknown phase {phase!r}")
        x_hat = self.generate(z, c, x0, generator)
        if cfg.teacher_pairs:
            target = pair_target
        elif cfg.pairing == "teacher":
            if teacher is None:
                raise ValueError("e2ed2: pairing 'teacher' needs the frozen teacher (e2ed2.registry.build_training)")
            target = self.teacher_target(teacher, z, c)
        else:
            target = x0
        loss = cfg.lambda_rec * distance(x_hat, target, cfg.rec_distance)
        if self.perceptual is not None:
            loss = loss + cfg.lambda_perc * self.perceptual.to(x0.device)(x_hat, target)
        if cfg.lambda_adv > 0:
            loss = loss + cfg.lambda_adv * g_hinge(self.disc(x_hat, c))
        return loss

    def disc_loss(self, real, fake, cond, real_cond=None) -> torch.Tensor:
        """Hinge loss on (real, fake), plus γ/2·‖∇_x D(x)‖² on real data when r1_gamma > 0. Real
        images are scored with their own captions (``real_cond``, default ``cond``): with teacher
        pairs the fakes' captions are the pairs', not the batch's."""
        gamma = self.cfg.r1_gamma
        real = real.detach().requires_grad_(gamma > 0)
        real_logits = self.disc(real, cond if real_cond is None else real_cond)
        loss = d_hinge(real_logits, self.disc(fake, cond))
        if gamma > 0:
            loss = loss + gamma / 2 * r1_penalty(real_logits, real)
        return loss

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        if phase == "disc":
            return list(self.disc.parameters())
        return list(self.net.parameters())
