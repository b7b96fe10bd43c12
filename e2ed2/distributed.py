"""Process-group plumbing for DDP through ``torchrun``: ranks, devices, all-reduce, gather.

``torchrun --nproc_per_node N -m e2ed2.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK and the
rendezvous variables; ``init()`` reads them and starts a process group (NCCL on CUDA, gloo on
CPU). Without them (plain ``python -m ...``) everything here is a no-op on one rank, so the
single-process path is unchanged. Gradients are averaged with one flat all-reduce per
optimisation phase (the maths of DDP without wrapping the method), so every rank keeps
bitwise-identical weights and rank 0 alone writes checkpoints and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.distributed as dist

from .devices import claim_gpu


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank layout from the torchrun environment (one rank when the variables are absent)."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun): {e}") from e


def init(device: torch.device) -> DistInfo:
    """Start the process group when WORLD_SIZE > 1 (idempotent); NCCL for CUDA, gloo otherwise."""
    info = env_info()
    if info.active and not dist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={info.world_size} but {var} is unset: launch with torchrun")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=info.rank, world_size=info.world_size)
    return info


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    """'auto' → cuda:LOCAL_RANK when CUDA is present, else cpu; 'cuda' → cuda:LOCAL_RANK."""
    info = info or env_info()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
        info = replace(info, local_rank=claim_gpu("cuda", default=info.local_rank))  # a free GPU slot (e2ed2.devices)
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but torch.cuda.is_available() is False")
    return device


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


# ---- training: gradient and scalar reductions ------------------------------------------
def average_gradients(params) -> None:
    """g ← mean over ranks of g, as one flat all-reduce (what DDP does, bucketed once)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_scalar(value: torch.Tensor) -> torch.Tensor:
    """Mean of a scalar over ranks (a NaN on any rank makes it NaN on every rank)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    v = value.detach().float().reshape(1).clone()
    dist.all_reduce(v, op=dist.ReduceOp.SUM)
    return v[0] / dist.get_world_size()


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` in rank order (a one-element list on a single rank)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def check_in_sync(module: torch.nn.Module, what: str) -> None:
    """Raise if ranks hold different weights (a checksum per rank, compared on every rank)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    sums = all_gather_objects(float(sum(p.detach().double().sum() for p in module.parameters())))
    if len(set(sums)) != 1:
        raise RuntimeError(f"DDP ranks diverged: {what} checksums per rank {sums}")


def gather_to_main(obj) -> list | None:
    """Every rank's ``obj`` in rank order on rank 0 (None on the others); no copy on other ranks."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


# ---- data and seed sharding -------------------------------------------------------------
def batch_slice(batch_size: int, info: DistInfo) -> slice:
    """This rank's rows of a global batch; the global batch must split evenly over ranks."""
    if batch_size % info.world_size:
        raise ValueError(f"train.batch_size={batch_size} is not divisible by WORLD_SIZE={info.world_size}")
    per = batch_size // info.world_size
    return slice(info.rank * per, (info.rank + 1) * per)


def shard_rows(n: int, info: DistInfo) -> np.ndarray:
    """This rank's contiguous block of row indices 0..n-1 (rank order = row order)."""
    if n < info.world_size:
        raise ValueError(f"{n} items cannot be shared by {info.world_size} ranks")
    return np.array_split(np.arange(n), info.world_size)[info.rank]
