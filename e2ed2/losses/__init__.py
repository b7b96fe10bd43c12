"""Training losses: distances, perceptual backends, adversarial terms (one file per loss).

Perceptual backends are named honestly and recorded in the run config; a missing backend
raises, it never falls back. The Inception FID network and the CLIP of the CLIP score are
never used here (no metric leakage).
"""

from __future__ import annotations

from torch import nn

PERCEPTUAL_BACKENDS = ("none", "lpips", "lpips-vgg", "lpips-randalex", "mslap")


def build_perceptual(name: str) -> nn.Module | None:
    """A frozen module (x̂, x) → per-sample loss [B] for images in [-1, 1]; None for 'none'."""
    if name == "none":
        return None
    if name in ("lpips", "lpips-vgg"):
        from .lpips_loss import LPIPSLoss

        return LPIPSLoss("vgg" if name == "lpips-vgg" else "alex")
    if name == "lpips-randalex":
        from .lpips_randalex import RandomAlexLPIPS

        return RandomAlexLPIPS()
    if name == "mslap":
        from .mslap import LaplacianPyramidL1

        return LaplacianPyramidL1()
    raise ValueError(f"unknown perceptual backend {name!r}; available: {list(PERCEPTUAL_BACKENDS)}")

