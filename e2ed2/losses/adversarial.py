"""Hinge adversarial losses (Lim & Ye 2017; Miyato et al. 2018) and the R1 penalty (Mescheder et al. 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D = max(0, 1 − D(x)) + max(0, 1 + D(x̂)), per sample."""
    return F.relu(1 - real_logits) + F.relu(1 + fake_logits)


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G = −D(x̂), per sample."""
    return -fake_logits


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """‖∇_x D(x)‖² on real data, per sample (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1)
