"""Checkpoints: plain tensors and primitives only, loaded with ``weights_only=True``.

Contents: {format, method, config, run_hash, identity, step, state_dict, ema, optim, rng, ...}.
Writes are atomic (``e2ed2.atomic``), so a kill never leaves a half-written file under the real
name and an earlier checkpoint is never lost. This module is file I/O only: rebuilding a method
from a checkpoint is ``e2ed2.methods.load_method``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .atomic import atomic_write

FORMAT = "e2ed2-checkpoint-v1"


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(obj: dict, path: str | os.PathLike) -> None:
    with atomic_write(path) as tmp:
        torch.save({"format": FORMAT, **obj}, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load and validate; every failure names the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickler errors vary (EOFError, KeyError, UnpicklingError, ...)
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, corrupt, or not saved by torch.save): {e}"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an e2ed2 checkpoint (expected format {FORMAT!r})")
    missing = {"method", "config", "step", "state_dict"} - set(ckpt)
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {sorted(missing)}")
    return ckpt
