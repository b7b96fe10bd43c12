"""Checkpoints: plain tensors and primitives only, loaded with ``weights_only=True``.

Contents: {format, method, config, step, state_dict, ema, optim, rng}. Writes are atomic
(temp file in the same folder + ``os.replace``), so a kill never leaves a half-written file
under the real name and an earlier checkpoint is never lost.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FORMAT = "e2ed2-checkpoint-v1"


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(obj: dict, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **obj}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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


def load_method(path: str | os.PathLike, ema: bool = True, map_location="cpu"):
    """Rebuild the method from a checkpoint; with ``ema`` the network gets the EMA weights."""
    from .registry import build_method

    ckpt = load_checkpoint(path, map_location)
    method = build_method(ckpt["config"], restoring=True)
    method.load_state_dict(ckpt["state_dict"])
    if ema and ckpt.get("ema") is not None:
        method.net.load_state_dict(ckpt["ema"])
    return method, ckpt
