"""Per-seed noise: sample i depends only on seed i, never on batch size or device count.

Each row of a batch owns a ``torch.Generator`` seeded with its own seed (the pattern of
NVlabs/edm ``StackedRandomGenerator``). Every draw — the initial x_T and the fresh noise of
stochastic samplers — is made row by row from that row's generator, on the CPU, then moved to
the target device, so a seed gives the same numbers on any device and in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class SeedNoise:
    """A stack of per-sample generators; ``randn_like(x)`` draws row i from generator i."""

    def __init__(self, seeds: Sequence[int]):
        self.seeds = [int(s) for s in seeds]
        self.generators = [torch.Generator("cpu").manual_seed(s) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.seeds)

    def randn(self, shape: Sequence[int], device="cpu", dtype=torch.float32) -> torch.Tensor:
        """Shape excludes the batch dimension; returns [len(seeds), *shape]."""
        rows = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in self.generators]
        return torch.stack(rows).to(device=device, dtype=dtype)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self.generators):
            raise ValueError(f"batch of {x.shape[0]} rows but {len(self.generators)} seeds")
        return self.randn(x.shape[1:], device=x.device, dtype=x.dtype)


def randn_like(x: torch.Tensor, generator) -> torch.Tensor:
    """Draw N(0, I) like x from a SeedNoise, a torch.Generator, or the global RNG (None)."""
    if isinstance(generator, SeedNoise):
        return generator.randn_like(x)
    if isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    if generator is None:
        return torch.randn_like(x)
    raise TypeError(f"generator must be SeedNoise, torch.Generator or None, got {type(generator)}")


def parse_seeds(spec: str) -> list[int]:
    """Parse '0-99', '0,3,7' or '0-9,20-29' into a list of ints (inclusive ranges)."""
    seeds: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            lo, _, hi = part.partition("-")
            lo, hi = int(lo), int(hi if hi else lo)
        except ValueError:
            raise ValueError(f"seeds {spec!r}: {part!r} is not N or N-M (non-negative integers)") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"seeds {spec!r}: range {part!r} is empty or negative (write low-high, low ≤ high)")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise ValueError(f"no seeds in {spec!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {spec!r}: a seed appears twice (two images would be identical)")
    return seeds
