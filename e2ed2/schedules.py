"""Noise schedules as pure functions, all in float64.

Conventions (Karras et al. 2022, "EDM", §2): a VP schedule with cumulative signal
ᾱ_t maps to the σ-space of the denoiser contract through σ_t = sqrt((1 - ᾱ_t) / ᾱ_t).
Sampler ladders are descending σ tensors that end in an appended 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Smallest ᾱ kept when converting a zero-terminal-SNR schedule to σ-space: ᾱ_T = 0 means
# σ_T = ∞, so the terminal step is represented by σ = sqrt(1/ᾱ_floor - 1) ≈ 3.2e4.
ALPHA_BAR_FLOOR = 1e-9


def linear_betas(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """β_t linear in t (Ho et al. 2020, §4): T values from beta_1 to beta_T."""
    return torch.linspace(beta_1, beta_T, T, dtype=torch.float64)


def cosine_alpha_bars(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2) (Nichol & Dhariwal 2021, eq. 17)."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, 0)


def alpha_bars_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s≤t} (1 - β_s) (Ho et al. 2020, eq. 4)."""
    return torch.cumprod(1 - betas.to(torch.float64), 0)


def zero_terminal_snr(alpha_bars: torch.Tensor) -> torch.Tensor:
    """Rescale so ᾱ_T = 0 while keeping ᾱ_1 (Lin et al. 2024, Algorithm 1).

    With ᾱ_T = 0 the first sampling step sees pure noise: no signal leaks from the data.
    """
    sqrt_ab = alpha_bars.to(torch.float64).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    return sqrt_ab**2


def sigmas_from_alpha_bars(alpha_bars: torch.Tensor) -> torch.Tensor:
    """σ_t = sqrt((1 - ᾱ_t)/ᾱ_t), the VP→VE change of variables (EDM, Table 1)."""
    ab = alpha_bars.to(torch.float64).clamp(min=ALPHA_BAR_FLOOR)
    return ((1 - ab) / ab).sqrt()


def ddpm_sigmas(
    T: int = 1000,
    kind: str = "linear",
    zero_snr: bool = False,
) -> torch.Tensor:
    """The discrete training σ table (ascending, length T) of a DDPM schedule."""
    if kind == "linear":
        ab = alpha_bars_from_betas(linear_betas(T))
    elif kind == "cosine":
        ab = cosine_alpha_bars(T)
    else:
        raise ValueError(f"unknown DDPM schedule kind {kind!r}; expected 'linear' or 'cosine'")
    if zero_snr:
        ab = zero_terminal_snr(ab)
    return sigmas_from_alpha_bars(ab)


def respace(train_sigmas: torch.Tensor, steps: int, spacing: str = "trailing") -> torch.Tensor:
    """Pick `steps` of the T training σ's, descending, with a 0 appended.

    "trailing" always includes t = T (the pure-noise end), as recommended by Lin et al. 2024
    (Table 2); "leading" is DDIM's original spacing; "linspace" rounds an even grid.
    """
    T = len(train_sigmas)
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if spacing == "trailing":
        idx = torch.round(torch.arange(T, 0, -T / steps, dtype=torch.float64)).long() - 1
    elif spacing == "leading":
        idx = (torch.arange(steps, dtype=torch.long) * (T // steps)).flip(0)
    elif spacing == "linspace":
        idx = torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long()
    else:
        raise ValueError(f"unknown spacing {spacing!r}; expected trailing, leading or linspace")
    return append_zero(train_sigmas[idx])


def karras_sigmas(
    steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """σ_i = (σ_max^{1/ρ} + i/(N-1)(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ (EDM, eq. 5)."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    if steps == 1:
        ramp = torch.zeros(1, dtype=torch.float64)
    inv_max, inv_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return append_zero((inv_max + ramp * (inv_min - inv_max)) ** rho)


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def lognormal_sigmas(n: int, P_mean: float, P_std: float, generator: torch.Generator) -> torch.Tensor:
    """ln σ ~ N(P_mean, P_std²), the training noise distribution of EDM (Karras et al. 2022, Table 1)."""
    return (torch.randn(n, generator=generator, dtype=torch.float64) * P_std + P_mean).exp()


@dataclass(frozen=True)
class Schedule:
    """The σ's of one method: where training draws them, the sampling ladder, and the prior.

    ``vp`` (DDPM, Ho et al. 2020): a discrete table of T σ's; training draws t ~ U{0…T−1};
    ``steps`` sampler steps use the trailing respacing (always starting at t = T, Lin et al.
    2024); the prior is the VP one, x_vp = z, i.e. x_T = √(1 + σ_max²)·z.
    ``edm`` (Karras et al. 2022): σ ∈ [σ_min, σ_max], training draws ln σ ~ N(P_mean, P_std²);
    ``steps`` sampler steps use the first ``steps`` points of a (steps+1)-point ρ-ladder (the
    σ_min point is dropped: a step from σ_min to 0 costs an evaluation and changes nothing);
    the prior is x_T = σ_max·z (EDM Algorithm 1).
    """

    kind: str
    table: torch.Tensor | None = None  # vp: ascending σ_t, t = 0…T−1
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    P_mean: float = -1.2
    P_std: float = 1.2

    @classmethod
    def vp(cls, T: int, kind: str = "linear", zero_snr: bool = False) -> Schedule:
        table = ddpm_sigmas(T, kind, zero_snr)
        return cls("vp", table, float(table[0]), float(table[-1]))

    def training_sigmas(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n training noise levels (float64)."""
        if self.kind == "vp":
            return self.table[torch.randint(0, len(self.table), (n,), generator=generator)]
        return lognormal_sigmas(n, self.P_mean, self.P_std, generator)

    def ladder(self, steps: int) -> torch.Tensor:
        """Descending σ's for ``steps`` sampler steps, with 0 appended."""
        if self.kind == "vp":
            return respace(self.table, steps, "trailing")
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        return append_zero(karras_sigmas(steps + 1, self.sigma_min, self.sigma_max, self.rho)[:steps])

    def discretisation(self, N: int) -> torch.Tensor:
        """σ_1 < … < σ_N: EDM eq. 5 over [σ_min, σ_max] (the consistency models' grid)."""
        return karras_sigmas(N, self.sigma_min, self.sigma_max, self.rho)[:-1].flip(0)

    def prior_std(self, sigma_max) -> float:
        """Standard deviation of x_T = prior_std·z at the ladder's first σ."""
        s = float(sigma_max)
        return math.sqrt(1 + s * s) if self.kind == "vp" else s
