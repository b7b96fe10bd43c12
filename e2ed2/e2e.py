"""E2ED²: train the few-step sampler end to end from pure noise (arXiv 2412.21044; DESIGN §4).

Generator G_θ(z, c): the K-step deterministic sampler (default DDIM η=0 on the trailing
ladder) started from pure noise, the shared UNet at every step, gradients through every
step. Loss on the final sample x̂ = G_θ(z, c):
    λ_rec·d(x̂, x) + λ_perc·perceptual(x̂, x) + λ_adv·(−D_ψ(x̂, c))
with x the data paired with c (``pairing: data``) or the teacher's many-step ODE sample from
the same z (``pairing: teacher``). With λ_adv > 0 a conditional discriminator D_ψ is trained
in a "disc" phase (hinge loss, optional R1) before each generator ("main") phase.
Per-step activation checkpointing keeps memory flat in K; ``backprop_last: k`` detaches x
before the last k steps (truncation ablation); ``start: leaky`` starts from forward-noised
data at the largest t instead of pure noise (leakage ablation).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import samplers
from .discriminator import Discriminator
from .losses import build_perceptual, check_perceptual_name
from .losses.adversarial import d_hinge, g_hinge, r1_penalty
from .losses.distance import DISTANCES, distance
from .method import Batch, Method
from .teacher import load_teacher

CHOICES = {"init": ("teacher", "scratch"), "pairing": ("data", "teacher"), "start": ("pure", "leaky")}


class CheckpointedDenoiser(nn.Module):
    """D(x, σ, c) whose activations are recomputed in backward (one checkpoint per sampler step)."""

    def __init__(self, denoiser: nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x, sigma, cond=None):
        return checkpoint(self.denoiser, x, sigma, cond, use_reentrant=False)


class E2ED2(Method):
    name = "e2ed2"
    defaults = {
        "steps": 2,  # K: sampler steps unrolled in training (any K' may be used for sampling)
        "sampler": "ddim",  # the chain trained through; sample() defaults to it
        "init": "teacher",  # teacher | scratch
        "teacher": None,  # path to the DDPM checkpoint (init: teacher or pairing: teacher)
        "pairing": "data",  # data | teacher
        "teacher_steps": 25,  # teacher's ODE steps for pairing: teacher
        "teacher_sampler": "ddim",
        "start": "pure",  # pure | leaky
        "lambda_rec": 1.0,
        "rec_distance": "l2",
        "lambda_perc": 1.0,
        "perceptual": "mslap",  # none | lpips | lpips-vgg | lpips-randalex | mslap
        "lambda_adv": 0.0,
        "disc_channels": 16,
        "r1_gamma": 0.0,  # R1 weight γ (penalty γ/2·‖∇D‖²); 0 = off
        "backprop_last": 0,  # k > 0: gradients through only the last k steps; 0 = all
        "checkpointing": True,
    }

    def __init__(self, cfg: dict | None, net_cfg: dict | None, restoring: bool = False):
        super().__init__(cfg, net_cfg, restoring)
        c = self.cfg
        for key, allowed in CHOICES.items():
            if c[key] not in allowed:
                raise ValueError(f"e2ed2: {key} must be one of {allowed}, got {c[key]!r}")
        samplers.get_sampler(c["sampler"]), samplers.get_sampler(c["teacher_sampler"])
        if c["sampler"] == "consistency":
            raise ValueError("e2ed2: sampler 'consistency' needs a consistency function; use ddim, euler, heun, ...")
        if c["rec_distance"] not in DISTANCES:
            raise ValueError(f"e2ed2: rec_distance must be one of {DISTANCES}, got {c['rec_distance']!r}")
        check_perceptual_name(c["perceptual"])
        if not 0 <= int(c["backprop_last"]) <= int(c["steps"]):
            raise ValueError(f"e2ed2: backprop_last must be in [0, steps={c['steps']}], got {c['backprop_last']}")
        self.default_sampler = c["sampler"]
        # the teacher: initial weights and/or the many-step ODE target; kept out of the state_dict.
        # A restored checkpoint has its own weights: the teacher file is needed only to train.
        teacher = None
        if not restoring and (c["init"] == "teacher" or c["pairing"] == "teacher"):
            teacher = load_teacher(c["teacher"], c, self.net.config if c["init"] == "teacher" else None, who="e2ed2")
        if teacher is not None and c["init"] == "teacher":
            self.net.load_state_dict(teacher.net.state_dict())
        self.__dict__["_teacher"] = teacher if c["pairing"] == "teacher" else None
        self.__dict__["_perceptual"] = None  # built on first use: sampling never needs its weights
        if c["lambda_adv"] > 0:
            self.phases = ("disc", "main")
            nc = self.net.config
            self.disc = Discriminator(nc.image_channels, nc.resolution, c["disc_channels"], nc.vocab_size)

    # ---- the unrolled generator G_θ(z, c) ----------------------------------------------
    def start(self, z: torch.Tensor, x0: torch.Tensor | None, sigma_max: torch.Tensor) -> torch.Tensor:
        """x_T in σ-space. pure: the VP prior x_vp = z. leaky: the forward process at the
        largest t, x_vp = sqrt(ᾱ_T)·x₀ + sqrt(1 − ᾱ_T)·z, i.e. x = x₀ + σ_max·z."""
        if self.cfg["start"] == "pure":
            return self.prior(z, sigma_max)
        if x0 is None:
            raise ValueError("e2ed2: start 'leaky' needs the data x₀")
        return x0 + float(sigma_max) * z

    def generate(self, z, cond, x0=None, generator=None, steps: int | None = None) -> torch.Tensor:
        """x̂ = G_θ(z, c): the K-step sampler with gradients (grad mode is the caller's)."""
        K = int(steps or self.cfg["steps"])
        sigmas = self.sigmas(K, self.cfg["sampler"])
        D = self.denoiser()
        if self.cfg["checkpointing"]:
            D = CheckpointedDenoiser(D)
        k = int(self.cfg["backprop_last"])
        # truncation: cut the graph before step K − k, so only the last k steps get gradients
        hook = (lambda i, x: x.detach() if i == K - k else x) if 0 < k < K else None
        sample = samplers.get_sampler(self.cfg["sampler"])
        return sample(D, self.start(z, x0, sigmas[0]), sigmas, cond, generator=generator, step_hook=hook)

    def teacher_target(self, z, cond) -> torch.Tensor:
        """pairing: teacher — the teacher's many-step ODE sample from the same z (no graph:
        the teacher is frozen and z needs no grad)."""
        if self._teacher is None:
            raise RuntimeError("e2ed2: pairing 'teacher' needs the teacher; this method was restored for sampling only")
        t = self._teacher.to(z.device)
        sigmas = t.sigmas(self.cfg["teacher_steps"])
        return samplers.get_sampler(self.cfg["teacher_sampler"])(t.denoiser(), t.prior(z, sigmas[0]), sigmas, cond).detach()

    def perceptual(self, device) -> nn.Module | None:
        if self._perceptual is None and self.cfg["perceptual"] != "none":
            self.__dict__["_perceptual"] = build_perceptual(self.cfg["perceptual"])
        return None if self._perceptual is None else self._perceptual.to(device)

    # ---- losses --------------------------------------------------------------------------
    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main") -> torch.Tensor:
        x0, c = batch.x, batch.tokens
        z = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        if phase == "disc":
            return self.disc_loss(x0, self.generate(z, c, x0, generator).detach(), c)
        if phase != "main":
            raise ValueError(f"e2ed2: unknown phase {phase!r}")
        x_hat = self.generate(z, c, x0, generator)
        target = x0 if self.cfg["pairing"] == "data" else self.teacher_target(z, c)
        cfg = self.cfg
        loss = cfg["lambda_rec"] * distance(x_hat, target, cfg["rec_distance"])
        perc = self.perceptual(x0.device) if cfg["lambda_perc"] > 0 else None
        if perc is not None:
            loss = loss + cfg["lambda_perc"] * perc(x_hat, target)
        if cfg["lambda_adv"] > 0:
            loss = loss + cfg["lambda_adv"] * g_hinge(self.disc(x_hat, c))
        return loss

    def disc_loss(self, real, fake, cond) -> torch.Tensor:
        """Hinge loss on (real, fake), plus γ/2·‖∇_x D(x)‖² on real data when r1_gamma > 0."""
        gamma = self.cfg["r1_gamma"]
        real = real.detach().requires_grad_(gamma > 0)
        real_logits = self.disc(real, cond)
        loss = d_hinge(real_logits, self.disc(fake, cond))
        if gamma > 0:
            loss = loss + gamma / 2 * r1_penalty(real_logits, real)
        return loss

    def extra_state(self) -> dict:
        """Every knob, defaults included, recorded in the checkpoint beside the user config."""
        return {"method_config": dict(self.cfg)}

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        if phase == "disc":
            return list(self.disc.parameters())
        return list(self.net.parameters())
