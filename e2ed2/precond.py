"""Network parameterisations in one place: EDM's Table 1 view (Karras et al. 2022, §5).

Every method wraps the shared UNet F_θ into a denoiser in σ-space (x = x₀ + σ·n):

    D_θ(x, σ) = c_skip(σ)·x + c_out(σ)·F_θ(c_in(σ)·x, c_noise(σ))

and trains it with the weighted denoising loss λ(σ)·‖D_θ(x₀ + σn, σ) − x₀‖² (EDM eq. 2 and 8).
Written as a regression of F_θ this is λ(σ)·c_out(σ)²·‖F_θ − F_target‖² with
F_target = (x₀ − c_skip·x)/c_out: ε for eps, v for v-prediction, x₀ for x₀-prediction.

| parameterisation | c_skip          | c_out              | c_in           | c_noise   | λ(σ)            |
|------------------|-----------------|--------------------|----------------|-----------|-----------------|
| eps (DDPM)       | 1               | −σ                 | 1/√(σ²+1)      | t(σ)      | 1/σ²            |
| v (Salimans & Ho)| 1/(σ²+1)        | −σ/√(σ²+1)         | 1/√(σ²+1)      | t(σ)      | (σ²+1)/σ²       |
| x0               | 0               | 1                  | 1/√(σ²+1)      | t(σ)      | 1               |
| edm              | σ_d²/(σ²+σ_d²)  | σσ_d/√(σ²+σ_d²)    | 1/√(σ²+σ_d²)   | ln(σ)/4   | (σ²+σ_d²)/(σσ_d)² |

For the VP rows t(σ) is the continuous index of σ in the discrete DDPM table (log-σ
interpolation, as crowsonkb/k-diffusion does), so the UNet sees DDPM's timesteps 0…T−1. With
these λ the loss is exactly ‖F − F_target‖² (unit effective weight), as DDPM's "simple" loss.

``ConsistencyBoundary`` replaces c_skip/c_out by the consistency-model scalings shifted to
σ_min (Song et al. 2023, App. C), so that f_θ(x, σ_min) = x exactly, on top of the same c_in and
c_noise as the parameterisation it wraps (the teacher's), so a student initialised from the
teacher sees the teacher's inputs and F's scale stays bounded at large σ.
"""

from __future__ import annotations

import torch

PARAMETERISATIONS = ("eps", "v", "x0", "edm")


class Parameterisation:
    """c_skip, c_out, c_in, c_noise and λ as functions of σ (float tensors of any shape)."""

    name = "base"

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def target(self, x0: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """F_target = (x₀ − c_skip·x)/c_out: what F_θ regresses on (EDM eq. 8)."""
        c_skip, c_out, _ = self.scalings(sigma)
        return (x0 - c_skip * x) / c_out


class VPTable:
    """c_noise for the VP family: the continuous timestep of σ in the discrete training table."""

    def __init__(self, train_sigmas: torch.Tensor):
        self.log_sigmas = train_sigmas.to(torch.float64).log()

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        """Piecewise-linear interpolation of t over log σ_t (t = 0 … T−1)."""
        log_sigma = sigma.to(torch.float64).clamp(min=1e-30).log()
        ls = self.log_sigmas.to(sigma.device)
        idx = torch.searchsorted(ls, log_sigma).clamp(1, len(ls) - 1)
        lo, hi = ls[idx - 1], ls[idx]
        w = ((log_sigma - lo) / (hi - lo)).clamp(0, 1)
        return (idx - 1).to(torch.float64) + w


class VPEps(VPTable, Parameterisation):
    """ε-prediction (Ho et al. 2020): D = x − σ·ε̂."""

    name = "eps"

    def scalings(self, sigma):
        return torch.ones_like(sigma), -sigma, 1 / (sigma**2 + 1).sqrt()

    def loss_weight(self, sigma):
        return 1 / sigma**2


class VPV(VPTable, Parameterisation):
    """v-prediction (Salimans & Ho 2022): D = x/(σ²+1) − σ/√(σ²+1)·v̂."""

    name = "v"

    def scalings(self, sigma):
        return 1 / (sigma**2 + 1), -sigma / (sigma**2 + 1).sqrt(), 1 / (sigma**2 + 1).sqrt()

    def loss_weight(self, sigma):
        return (sigma**2 + 1) / sigma**2


class VPX0(VPTable, Parameterisation):
    """x₀-prediction: D = F."""

    name = "x0"

    def scalings(self, sigma):
        return torch.zeros_like(sigma), torch.ones_like(sigma), 1 / (sigma**2 + 1).sqrt()

    def loss_weight(self, sigma):
        return torch.ones_like(sigma)


class EDM(Parameterisation):
    """EDM preconditioning (Karras et al. 2022, Table 1): unit-variance input and target."""

    name = "edm"

    def __init__(self, sigma_data: float = 0.5):
        self.sigma_data = float(sigma_data)

    def scalings(self, sigma):
        sd2 = self.sigma_data**2
        return sd2 / (sigma**2 + sd2), sigma * self.sigma_data / (sigma**2 + sd2).sqrt(), 1 / (sigma**2 + sd2).sqrt()

    def c_noise(self, sigma):
        return sigma.to(torch.float64).log() / 4

    def loss_weight(self, sigma):
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2


class ConsistencyBoundary(Parameterisation):
    """f_θ = c_skip·x + c_out·F with c_skip = σ_d²/((σ−σ_min)²+σ_d²), c_out = σ_d(σ−σ_min)/√(σ²+σ_d²)
    (Song et al. 2023, App. C), over the wrapped parameterisation's c_in and c_noise."""

    def __init__(self, base: Parameterisation, sigma_min: float, sigma_data: float = 0.5):
        self.base, self.sigma_min, self.sigma_data = base, float(sigma_min), float(sigma_data)
        self.name = f"consistency({base.name})"

    def scalings(self, sigma):
        sd, s = self.sigma_data, sigma - self.sigma_min
        _, _, c_in = self.base.scalings(sigma)
        return sd**2 / (s**2 + sd**2), sd * s / (sigma**2 + sd**2).sqrt(), c_in

    def c_noise(self, sigma):
        return self.base.c_noise(sigma)

    def loss_weight(self, sigma):
        return torch.ones_like(sigma)


def build(name: str, table: torch.Tensor | None = None, sigma_data: float = 0.5) -> Parameterisation:
    """The parameterisation called ``name``; the VP rows need the discrete training σ table."""
    if name == "edm":
        return EDM(sigma_data)
    vp = {"eps": VPEps, "v": VPV, "x0": VPX0}
    if name not in vp:
        raise ValueError(f"unknown parameterisation {name!r}; expected one of {PARAMETERISATIONS}")
    if table is None:
        raise ValueError(f"parameterisation {name!r} conditions the network on DDPM timesteps and needs a VP "
                         f"schedule (linear or cosine), not the continuous 'edm' one")
    return vp[name](table)
