"""E2ED²: train the few-step sampler end to end from pure noise (arXiv 2412.21044; docs/DESIGN.md §4).

Generator G_θ(z, c): the K-step deterministic sampler (default DDIM η=0) on the method's own
ladder, started from pure noise, the shared UNet at every step, gradients through every step.
Loss on the final sample x̂ = G_θ(z, c):
    λ_rec(s)·d(x̂, x) + λ_perc·perceptual(x̂, x) + λ_adv·(−D_ψ(x̂, c))
with x the data paired with c. Knobs (``python -m e2ed2.train --list-knobs e2ed2``; docs/E2ED2.md):

- target ``pairing``: ``data`` (the batch's data, z drawn independently), ``ot`` (the batch's data
  re-paired with the noises by minibatch optimal transport, each caption kept with its image;
  Tong et al. 2023, Pooladian et al. 2023; ``e2ed2.pairing``), or ``teacher`` (the teacher's
  ``teacher_steps``-step ODE sample from the same z, per step or from ``teacher_pairs``).
- chain: ``steps`` K, ``sampler``; ``backprop_last: k`` detaches x before the last k steps
  (truncation ablation); ``start: leaky`` starts from forward-noised data at the largest σ
  (leakage ablation); ``checkpointing`` recomputes each step's activations (memory flat in K).
- regression: ``lambda_rec``, ``rec_distance``; ``rec_schedule`` constant, or decaying to
  ``lambda_rec·rec_final`` at the last step (cosine or linear): regression as a warm start.
- perceptual: ``lambda_perc``, ``perceptual`` backend (e2ed2.losses).
- adversarial (λ_adv > 0 adds a "disc" phase before "main", hinge loss, optional R1 ``r1_gamma``):
  ``disc: conv`` (a small projection discriminator) or ``teacher`` (heads on the frozen teacher's
  encoder at a re-noised input, ln σ ~ N(``disc_sigma_mean``, ``disc_sigma_std``²); Sauer et al.
  2024); ``adv_weight: adaptive`` scales λ_adv by VQGAN's gradient ratio at the UNet's output conv
  (Esser et al. 2021, eq. 7), capped at ``adv_weight_max``; ``disc_steps`` D updates per G update;
  ``disc_warmup`` first iterations train D only (G frozen, its adversarial weight 0); ``disc_fakes:
  reuse`` scores the generator phase's own x̂ (detached) in the last D phase, one K-step chain per
  iteration instead of two (as ADD does, Sauer et al. 2023); ``fresh`` draws D's fakes separately.
- diagnostics: D's accuracy on real/fake and logit gap every step; with ``diag_every: n`` every
  n-th iteration also each weighted term's per-sample gradient norm at x̂ (extra backward passes).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from .. import samplers
from ..config import ConfigError, knob
from ..discriminator import Discriminator, TeacherFeatureDiscriminator
from ..losses import PERCEPTUAL_BACKENDS, build_perceptual
from ..losses.adversarial import adaptive_weight, d_hinge, g_hinge, r1_penalty
from ..losses.distance import distance
from ..pairing import ot_permutation
from ..pairs import TeacherPairs, load_pairs
from .base import Batch, DiffusionConfig, Method, Teacher, TeacherConfig

CHAIN_SAMPLERS = ("ddim", "euler", "heun", "dpmpp_2m", "ddpm")  # any σ-space sampler but consistency
REC_SCHEDULES = ("constant", "cosine_decay", "linear_decay")


@dataclass(frozen=True)
class E2ED2Config(TeacherConfig, DiffusionConfig):
    steps: int = knob(2, min=1, doc="K: sampler steps unrolled in training (sampling may use any K')")
    sampler: Literal[CHAIN_SAMPLERS] = knob("ddim", doc="the chain trained through; sample() defaults to it")
    init: Literal["teacher", "scratch"] = knob("teacher", doc="start from the teacher's weights or at random")
    teacher: str | None = knob(None, doc="teacher checkpoint (init: teacher, pairing: teacher, disc: teacher)")
    pairing: Literal["data", "ot", "teacher"] = knob(
        "data", doc="target: the data paired with c; the batch's data re-paired with z by minibatch OT "
                    "(caption kept with its image); or the teacher's ODE sample from z")
    teacher_steps: int = knob(25, min=1, doc="pairing teacher: the teacher's sampler steps")
    teacher_sampler: Literal[CHAIN_SAMPLERS] = knob("ddim", doc="pairing teacher: the teacher's sampler")
    teacher_pairs: str | None = knob(None, doc="pairing teacher: a file of precomputed (z, c, teacher sample) "
                                               "pairs (python -m e2ed2.make_pairs); None: the teacher per step")
    start: Literal["pure", "leaky"] = knob("pure", doc="x_T = prior·z, or x₀ + σ_max·z (leakage ablation)")
    lambda_rec: float = knob(1.0, min=0.0, doc="weight of the regression term")
    rec_distance: Literal["l2", "l1", "pseudo_huber"] = knob("l2", doc="distance of the regression term")
    rec_schedule: Literal[REC_SCHEDULES] = knob("constant", doc="λ_rec over training: constant, or decaying "
                                                                "(cosine/linear) to lambda_rec·rec_final")
    rec_final: float = knob(0.0, min=0.0, max=1.0, doc="rec_schedule ≠ constant: λ_rec's final fraction")
    lambda_perc: float = knob(1.0, min=0.0, doc="weight of the perceptual term")
    perceptual: Literal[PERCEPTUAL_BACKENDS] = knob("mslap", doc="perceptual backend (e2ed2.losses)")
    lambda_adv: float = knob(0.0, min=0.0, doc="weight of the adversarial term (0: no discriminator)")
    adv_weight: Literal["fixed", "adaptive"] = knob(
        "fixed", doc="λ_adv as set, or times VQGAN's ‖∇_L L_rec+perc‖/(‖∇_L L_adv‖+1e-4) at the UNet's output conv")
    adv_weight_max: float = knob(1e4, min=0.0, doc="adv_weight adaptive: the ratio's upper clamp")
    disc: Literal["conv", "teacher"] = knob(
        "conv", doc="a small conv projection D, or heads on the frozen teacher's encoder (needs init: teacher)")
    disc_channels: int = knob(16, min=1, doc="width of the discriminator (conv: first layer; teacher: heads)")
    disc_sigma_mean: float = knob(-0.6, doc="disc teacher: mean of ln σ of the re-noised input")
    disc_sigma_std: float = knob(1.6, gt=0, doc="disc teacher: std of ln σ of the re-noised input")
    disc_steps: int = knob(1, min=1, doc="discriminator updates per generator update")
    disc_warmup: int = knob(0, min=0, doc="first iterations in which only D trains (G frozen)")
    disc_fakes: Literal["fresh", "reuse"] = knob(
        "fresh", doc="D's fakes: a fresh no-grad K-step chain of their own, or (reuse) the generator's x̂ of "
                     "the same iteration, detached: one K-step chain per iteration instead of two (as in ADD)")
    r1_gamma: float = knob(0.0, min=0.0, doc="R1 weight γ (penalty γ/2·‖∇D‖²); 0 = off")
    backprop_last: int = knob(0, min=0, doc="k > 0: gradients through only the last k steps; 0 = all")
    checkpointing: bool = knob(True, doc="recompute each step's activations in backward (memory flat in K)")
    diag_every: int = knob(0, min=0, doc="n > 0: every n-th step log each term's gradient norm at x̂ "
                                         "(extra backward passes; set it to train.log_every); 0 = off")

    def __post_init__(self):
        super().__post_init__()
        if self.backprop_last > self.steps:
            raise ConfigError(f"backprop_last ({self.backprop_last}) must be ≤ steps ({self.steps})")
        if self.teacher_pairs and (self.pairing != "teacher" or self.start != "pure"):
            raise ConfigError("teacher_pairs needs pairing: teacher and start: pure (a leaky start depends on the "
                              f"batch's data, which precomputed pairs cannot see); got pairing {self.pairing!r}, "
                              f"start {self.start!r}")
        if self.lambda_adv > 0 and self.disc == "teacher" and (self.init != "teacher" or not self.teacher):
            raise ConfigError("disc 'teacher' reads the frozen teacher's encoder, which the method receives when it "
                              f"initialises from it: set init: teacher and teacher: PATH (got init {self.init!r}, "
                              f"teacher {self.teacher!r})", key="disc")


def rec_weight(cfg: E2ED2Config, step: int, total: int | None) -> float:
    """λ_rec at iteration ``step`` of ``total``: constant, or from λ_rec down to λ_rec·rec_final at the
    last step, with p = step/(total − 1): cosine λ_rec·(f + (1 − f)·½(1 + cos πp)), linear λ_rec·(1 − (1 − f)·p)."""
    if cfg.rec_schedule == "constant" or not total:
        return cfg.lambda_rec
    p, f = min(1.0, step / max(1, total - 1)), cfg.rec_final
    if cfg.rec_schedule == "cosine_decay":
        return cfg.lambda_rec * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * p)))
    return cfg.lambda_rec * (1 - (1 - f) * p)


class CheckpointedDenoiser(nn.Module):
    """D(x, σ, c) whose activations are recomputed in backward (one checkpoint per sampler step)."""

    def __init__(self, denoiser: nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x, sigma, cond=None):
        return checkpoint(self.denoiser, x, sigma, cond, use_reentrant=False)


class E2ED2(Teacher, Method):
    name = "e2ed2"
    display_name = "E2ED²"
    Config = E2ED2Config

    def __init__(self, cfg: E2ED2Config, net_cfg=None):
        super().__init__(cfg, net_cfg)
        self.default_sampler = cfg.sampler
        self.step_now, self.total_steps = 0, None  # the loop's iteration (begin_step)
        self._disc_phase, self._chain = 0, None
        self.diagnostics: dict[str, torch.Tensor | float] = {}
        if cfg.lambda_adv > 0:
            self.phases = ("disc", "main")
            nc = self.net.config
            if cfg.disc == "teacher":
                self.disc = TeacherFeatureDiscriminator(nc, self.param, cfg.disc_channels, cfg.disc_sigma_mean,
                                                        cfg.disc_sigma_std)
            else:
                self.disc = Discriminator(nc.image_channels, nc.resolution, cfg.disc_channels, nc.vocab_size)

    def uses_teacher(self) -> bool:
        return self.cfg.pairing == "teacher" and not self.cfg.teacher_pairs

    def init_from(self, teacher: Method) -> None:
        """The teacher's weights; with ``disc: teacher`` also its encoder for the discriminator."""
        super().init_from(teacher)
        if isinstance(getattr(self, "disc", None), TeacherFeatureDiscriminator):
            self.disc.set_teacher(teacher.net)

    # ---- the training schedule and its diagnostics (the loop's hooks) ----------------------
    def begin_step(self, step: int, total: int) -> tuple[str, ...]:
        """``disc_steps`` D updates, then the generator's, which waits out ``disc_warmup``."""
        self.step_now, self.total_steps = step, total
        self._disc_phase, self._chain = 0, None  # disc_fakes: reuse — this iteration's D phases, kept x̂
        if self.cfg.lambda_adv <= 0:
            return self.phases
        disc = ("disc",) * self.cfg.disc_steps
        return disc if step < self.cfg.disc_warmup else disc + ("main",)

    def reuse_fakes_now(self) -> bool:
        """disc_fakes: reuse — keep this D phase's x̂ for the generator phase: only in the last D phase
        of an iteration that has a generator phase (after disc_warmup)."""
        cfg = self.cfg
        if cfg.disc_fakes != "reuse" or self.step_now < cfg.disc_warmup:
            return False
        self._disc_phase += 1
        return self._disc_phase == cfg.disc_steps

    def step_stats(self) -> dict[str, float]:
        stats = {k: float(v) for k, v in self.diagnostics.items()}
        self.diagnostics.clear()
        return stats

    def diagnose_now(self) -> bool:
        n = self.cfg.diag_every
        return n > 0 and (self.step_now + 1) % n == 0

    @cached_property
    def pairs(self) -> tuple[TeacherPairs, torch.Tensor, dict] | None:
        """The precomputed teacher pairs, their caption tokens and the pair indices of each caption
        (token row → indices), read on first use (training only)."""
        if not self.cfg.teacher_pairs:
            return None
        pairs = load_pairs(self.cfg.teacher_pairs)
        nc = self.net.config
        if tuple(pairs.z.shape[1:]) != (nc.image_channels, nc.resolution, nc.resolution):
            raise ValueError(f"{self.cfg.teacher_pairs}: pairs of shape {tuple(pairs.z.shape[1:])} but the net makes "
                             f"{nc.image_channels}×{nc.resolution}×{nc.resolution} images; remake them for this data")
        tokens = pairs.tokens(nc.vocab_size, nc.max_tokens)
        by_caption: dict[bytes, list[int]] = {}
        for i, row in enumerate(tokens.numpy()):
            by_caption.setdefault(row.tobytes(), []).append(i)
        return pairs, tokens, {k: torch.tensor(v) for k, v in by_caption.items()}

    def draw_pairs(self, tokens: torch.Tensor, generator: torch.Generator, device, dtype):
        """One pair per batch row with that row's caption (the null condition for a dropped one),
        uniformly with replacement: (z, caption tokens, the teacher's sample from z). Matching the
        captions keeps the discriminator's real and fake rows paired by caption, as when the
        teacher integrates from the batch's own captions; a caption with no pair is an error."""
        pairs, pair_tokens, by_caption = self.pairs
        idx = []
        for row in tokens.cpu().numpy():
            pool = by_caption.get(row.tobytes())
            if pool is None:
                raise ValueError(f"{self.cfg.teacher_pairs}: no pair has the caption tokens {row.tolist()} of a "
                                 "training image; draw more pairs (python -m e2ed2.make_pairs --n) or set "
                                 "teacher_pairs: null (the teacher integrates in every step)")
            idx.append(pool[torch.randint(0, len(pool), (1,), generator=generator)].item())
        idx = torch.tensor(idx)
        return pairs.z[idx].to(device, dtype), pair_tokens[idx].to(device), pairs.x[idx].to(device, dtype)

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
        cfg = self.cfg
        if cfg.teacher_pairs:  # noise, caption and target from the precomputed teacher pairs
            z, c, pair_target = self.draw_pairs(batch.tokens, generator, batch.x.device, batch.x.dtype)
        else:
            z = torch.randn(batch.x.shape, generator=generator).to(batch.x.device, batch.x.dtype)
            if cfg.pairing == "ot":  # the batch re-paired with z by minibatch OT; captions, labels follow images
                perm = ot_permutation(z, batch.x)
                batch = Batch(batch.x[perm], batch.tokens[perm], batch.labels[perm])
            c = batch.tokens
        x0 = batch.x
        if phase == "disc":
            if self.reuse_fakes_now():  # x̂ with its graph, kept for this iteration's generator phase
                fake = self.generate(z, c, x0, generator)
                self._chain = (fake, z, c, pair_target if cfg.teacher_pairs else None, batch)
            else:
                with torch.no_grad():  # the fakes only: no K-step graph to build and throw away
                    fake = self.generate(z, c, x0, generator)
            return self.disc_loss(x0, fake.detach(), c, real_cond=batch.tokens, generator=generator)
        if phase != "main":
            raise ValueError(f"e2ed2: unknown phase {phase!r}")
        if self._chain is not None:  # disc_fakes: reuse — the chain the D phase ran from the same step
            (x_hat, z, c, pair_target, batch), self._chain = self._chain, None
            x0 = batch.x
        else:
            x_hat = self.generate(z, c, x0, generator)
        if cfg.teacher_pairs:
            target = pair_target
        elif cfg.pairing == "teacher":
            if teacher is None:
                raise ValueError("e2ed2: pairing 'teacher' needs the frozen teacher (e2ed2.methods.build_training)")
            target = self.teacher_target(teacher, z, c)
        else:
            target = x0
        lam_rec = rec_weight(cfg, self.step_now, self.total_steps)
        terms = {"rec": lam_rec * distance(x_hat, target, cfg.rec_distance)}
        if cfg.rec_schedule != "constant":
            self.diagnostics["lambda_rec_eff"] = lam_rec
        if self.perceptual is not None:
            terms["perc"] = cfg.lambda_perc * self.perceptual.to(x0.device)(x_hat, target)
        loss = terms["rec"] if "perc" not in terms else terms["rec"] + terms["perc"]
        if cfg.lambda_adv > 0 and self.step_now >= cfg.disc_warmup:
            adv = g_hinge(self.disc(x_hat, c, generator=generator))
            lam_adv = cfg.lambda_adv
            if cfg.adv_weight == "adaptive":  # VQGAN eq. 7 at the UNet's output conv
                lam_adv = cfg.lambda_adv * adaptive_weight(loss.mean(), adv.mean(), self.net.conv_out.weight,
                                                           cfg.adv_weight_max)
            self.diagnostics["lambda_adv_eff"] = lam_adv
            terms["adv"] = lam_adv * adv
            loss = loss + terms["adv"]
        if self.diagnose_now():
            self.diagnose_gradients(terms, x_hat)
        return loss

    def diagnose_gradients(self, terms: dict[str, torch.Tensor], x_hat: torch.Tensor) -> None:
        """Per term t (weighted, per sample): mean over the batch of ‖∂t_b/∂x̂_b‖, as ``gx_<term>``."""
        for name, t in terms.items():
            (g,) = torch.autograd.grad(t.sum(), x_hat, retain_graph=True)
            self.diagnostics[f"gx_{name}"] = g.flatten(1).norm(dim=1).mean().detach()

    def disc_loss(self, real, fake, cond, real_cond=None, generator=None) -> torch.Tensor:
        """Hinge loss on (real, fake), plus γ/2·‖∇_x D(x)‖² on real data when r1_gamma > 0. Real
        images are scored with their own captions (``real_cond``, default ``cond``): with teacher
        pairs the fakes' captions are the pairs', not the batch's. Logs D's accuracy and logit gap."""
        gamma = self.cfg.r1_gamma
        real = real.detach().requires_grad_(gamma > 0)
        # R1 differentiates ∇_x D again: only the math attention kernel has that double backward
        with sdpa_kernel(SDPBackend.MATH) if gamma > 0 else contextlib.nullcontext():
            real_logits = self.disc(real, cond if real_cond is None else real_cond, generator=generator)
        fake_logits = self.disc(fake, cond, generator=generator)
        loss = d_hinge(real_logits, fake_logits)
        if gamma > 0:
            loss = loss + gamma / 2 * r1_penalty(real_logits, real)
        # D's accuracy (real: logit > 0, fake: logit < 0) and the mean logit gap, cheap and every step
        r, f = real_logits.detach(), fake_logits.detach()
        self.diagnostics.update(d_acc_real=(r > 0).float().mean(), d_acc_fake=(f < 0).float().mean(),
                                d_logit_gap=r.mean() - f.mean())
        return loss

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        if phase == "disc":
            return self.disc.trainable_parameters()
        return list(self.net.parameters())
