"""Per-sample distances d(x, y) → [B] used by regression and consistency losses."""

from __future__ import annotations

import math

import torch

DISTANCES = ("l2", "l1", "pseudo_huber", "mslap")


def distance(x: torch.Tensor, y: torch.Tensor, kind: str = "l2", huber_c: float | None = None) -> torch.Tensor:
    """l2: mean squared error; l1: mean absolute error; pseudo_huber: sqrt(‖x−y‖² + c²) − c
    with c = 0.00054·sqrt(d) by default (Song & Dhariwal 2023, §3.3); mslap: the Laplacian-pyramid
    L1 of ``mslap.py`` on [B, C, H, W] images, the weight-free stand-in for the LPIPS distance of
    Song et al. 2023 (their best CD results use LPIPS; no LPIPS weights exist offline)."""
    if kind == "mslap":
        from .mslap import LaplacianPyramidL1

        return LaplacianPyramidL1()(x, y)
    diff = (x - y).flatten(1)
    if kind == "l2":
        return diff.pow(2).mean(1)
    if kind == "l1":
        return diff.abs().mean(1)
    if kind == "pseudo_huber":
        c = huber_c if huber_c is not None else 0.00054 * math.sqrt(diff.shape[1])
        return (diff.pow(2).sum(1) + c**2).sqrt() - c
    raise ValueError(f"unknown distance {kind!r}; expected one of {DISTANCES}")
