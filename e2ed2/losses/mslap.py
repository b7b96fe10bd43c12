"""Laplacian-pyramid L1 ("mslap"): a multi-scale pixel loss that needs no weights.

In the spirit of the Lap₁ loss of Bojanowski et al. 2018: the L1 distance between the
band-pass levels L^j of two Laplacian pyramids (2× average-pool down, bilinear up), the
per-pixel mean of each level weighted equally. It is not a learned perceptual metric, and
results trained with it are labelled "mslap", never "LPIPS".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[L^0, …, L^{levels−2}, G^{levels−1}]: band-pass levels, then the coarsest Gaussian level."""
    pyramid = []
    for _ in range(levels - 1):
        down = F.avg_pool2d(x, 2)
        pyramid.append(x - F.interpolate(down, scale_factor=2, mode="bilinear", align_corners=False))
        x = down
    return pyramid + [x]


class LaplacianPyramidL1(nn.Module):
    name = "mslap"

    def __init__(self, levels: int = 4):
        super().__init__()
        self.levels = levels

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        levels = min(self.levels, max(1, x.shape[-1].bit_length() - 2))  # coarsest level ≥ 2×2
        pa, pb = laplacian_pyramid(x_hat, levels), laplacian_pyramid(x, levels)
        return sum((a - b).abs().flatten(1).mean(1) for a, b in zip(pa, pb)) / levels
