"""DDIM (Song et al. 2021): no training of its own — a trained diffusion model (the DDPM or EDM
teacher) under the deterministic ``ddim`` sampler (η = 0) at any step count.

The workflow never trains "ddim": it samples the teacher's final.pt with ``--sampler ddim``
(``checkpoint_of:`` in the config). :meth:`DDIM.of` gives the same thing as a Method object
whose ``sample()`` defaults to DDIM, with the teacher's weights unchanged (no retraining).
"""

from __future__ import annotations

import torch

from e2ed2.method import Batch, DiffusionConfig, Method


class DDIM(Method):
    name = "ddim"
    Config = DiffusionConfig
    default_sampler = "ddim"
    trainable = False

    @classmethod
    def of(cls, model: Method) -> DDIM:
        """``model`` (any diffusion Method) as DDIM: same config, same weights, sampler 'ddim'."""
        ddim = cls(model.cfg, model.net.config)
        ddim.net.load_state_dict(model.net.state_dict())
        return ddim

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main", teacher=None) -> torch.Tensor:
        raise RuntimeError("ddim has no training of its own: train 'ddpm' (or 'edm') and sample its checkpoint "
                           "with --sampler ddim (or DDIM.of(model))")
