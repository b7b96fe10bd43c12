"""DDIM (Song et al. 2021): no training of its own — a DDPM checkpoint under the deterministic
``ddim`` sampler (η = 0) at any step count.

The workflow never trains "ddim": it samples the DDPM run's final.pt with ``--sampler ddim``.
:func:`from_ddpm_checkpoint` gives the same thing as a Method object whose ``sample()``
defaults to DDIM, with the DDPM weights loaded unchanged (no hidden retraining).
"""

from __future__ import annotations

import torch

from baselines.ddpm import DDPM
from e2ed2.method import Batch


class DDIM(DDPM):
    name = "ddim"
    default_sampler = "ddim"
    trainable = False

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main") -> torch.Tensor:
        raise RuntimeError("ddim has no training of its own: train method 'ddpm' and sample its checkpoint "
                           "with --sampler ddim (or baselines.ddim.from_ddpm_checkpoint)")


def from_ddpm_checkpoint(path, ema: bool = True, map_location="cpu") -> DDIM:
    """The DDPM checkpoint at ``path`` as a DDIM method (same weights, sampler 'ddim')."""
    from e2ed2.checkpoint import load_method

    ddpm, ckpt = load_method(path, ema=ema, map_location=map_location)
    if ckpt["method"] != "ddpm":
        raise ValueError(f"{path}: DDIM samples a ddpm checkpoint, this one is {ckpt['method']!r}")
    ddim = DDIM({k: v for k, v in ddpm.cfg.items()}, ddpm.net.config.to_dict())
    ddim.load_state_dict(ddpm.state_dict())
    return ddim
