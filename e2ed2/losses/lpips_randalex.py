""""lpips-randalex": lpips' shipped linear heads on a RANDOMLY initialised AlexNet trunk.

This is NOT LPIPS as published (Zhang et al. 2018): the trunk has no ImageNet training. Random
deep features still give a multi-scale feature distance (Zhang et al. 2018, Table 5 report
random networks as a weak baseline). It works offline. The trunk is drawn from a fixed seed
(0) without touching the global RNG, so every run and every resume sees the same features.
"""

from __future__ import annotations

import torch
from torch import nn

from .lpips_loss import build_lpips, lpips_input

TRUNK_SEED = 0


class RandomAlexLPIPS(nn.Module):
    name = "lpips-randalex"

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TRUNK_SEED)
            self.model = build_lpips("alex", random_backbone=True)

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.model(lpips_input(x_hat), lpips_input(x)).flatten()
