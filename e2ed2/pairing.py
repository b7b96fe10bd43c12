"""Minibatch optimal-transport pairing of noise and data (Tong et al. 2023; Pooladian et al. 2023).

Within a batch of B noises z_i and B data x_j, the pairing is the permutation

    π* = argmin_π Σ_i ‖z_i − x_π(i)‖²

(the exact OT plan between the two empirical measures with uniform weights is a permutation,
Birkhoff–von Neumann), solved by the Hungarian method (``scipy.optimize.linear_sum_assignment``).

Scale: a generator started in σ-space sees the prior σ_max·z (VP: √(1+σ_max²)·z), not z. For any
scale s > 0, Σ_i ‖s·z_i − x_π(i)‖² = s²Σ‖z_i‖² + Σ‖x_j‖² − 2s·Σ_i ⟨z_i, x_π(i)⟩, where the first two
sums do not depend on π; so the optimal π is the same for z and for s·z (it maximises Σ⟨z_i, x_π(i)⟩).
We pair on z against x unscaled: the choice of prior scale cannot change the permutation.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment


def ot_permutation(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """π (int64 [B], on z's device) with x[π] the data paired with z: π = argmin_π Σ_i ‖z_i − x_π(i)‖².

    The B×B cost C_ij = ‖z_i − x_j‖² = ‖z_i‖² + ‖x_j‖² − 2⟨z_i, x_j⟩ is computed in float64 on the CPU
    (no gradients; memory B² + B·d, not B²·d)."""
    if z.shape[0] != x.shape[0]:
        raise ValueError(f"ot_permutation: {z.shape[0]} noises but {x.shape[0]} data; the batch must pair one to one")
    zf = z.detach().to("cpu", torch.float64).flatten(1)
    xf = x.detach().to("cpu", torch.float64).flatten(1)
    cost = zf.pow(2).sum(1)[:, None] + xf.pow(2).sum(1)[None, :] - 2 * zf @ xf.T
    rows, cols = linear_sum_assignment(cost.numpy())
    perm = torch.empty(z.shape[0], dtype=torch.long)
    perm[torch.from_numpy(rows)] = torch.from_numpy(cols).long()
    return perm.to(z.device)
