"""Hinge adversarial losses (Lim & Ye 2017; Miyato et al. 2018), the R1 penalty (Mescheder et al. 2018)
and the adaptive adversarial weight of VQGAN (Esser et al. 2021, eq. 7)."""

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


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer_weight: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """λ = ‖∇_L L_rec‖ / (‖∇_L L_adv‖ + 10⁻⁴), clamped to [0, max_weight] and detached (Esser et al.
    2021, eq. 7), with ∇_L the gradient w.r.t. the generator's last layer ``last_layer_weight``.

    ``rec_loss`` and ``adv_loss`` are scalars; both graphs are kept (``retain_graph``) for the
    caller's backward. The result is a 0-d tensor with no graph."""
    (g_rec,) = torch.autograd.grad(rec_loss, last_layer_weight, retain_graph=True)
    (g_adv,) = torch.autograd.grad(adv_loss, last_layer_weight, retain_graph=True)
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, max_weight).detach()
