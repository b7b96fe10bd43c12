"""A small conditional conv discriminator for E2ED²'s adversarial term.

Projection discriminator (Miyato & Koyama 2018): D(x, c) = ψ(φ(x)) + ⟨e(c), φ(x)⟩, with φ a
stride-2 conv stack down to 4×4 followed by global sum pooling, and e(c) the masked mean of
its own caption-token embeddings (it does not share the generator's text encoder). An
all-padding caption (a dropped condition) gives e(c) = 0: the unconditional score ψ(φ(x)).
"""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self, image_channels: int, resolution: int, channels: int = 16, vocab_size: int = 4096,
                 max_channels: int = 128):
        super().__init__()
        layers, c, res = [nn.Conv2d(image_channels, channels, 3, padding=1), nn.LeakyReLU(0.2)], channels, resolution
        # φ: halve the resolution until 4×4, doubling channels up to max_channels
        while res > 4:
            c_next = min(2 * c, max_channels)
            layers += [nn.Conv2d(c, c_next, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c, res = c_next, res // 2
        self.phi = nn.Sequential(*layers)
        self.psi = nn.Linear(c, 1)
        self.embed = nn.Embedding(vocab_size, c)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B]."""
        h = self.phi(x).sum((2, 3))
        mask = (tokens != 0).to(h.dtype)
        e = (self.embed(tokens) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.psi(h).squeeze(1) + (e * h).sum(1)
