"""Inception feature-extraction throughput, before (TorchScript as loaded) and after (folded eager
channels-last InceptionFID), for the raw network and for both backends' full feature paths, plus a
check that FID is unchanged (≤ 1e-4 relative).

  OMP_NUM_THREADS=2 python benchmarks/bench_features.py --n 64 --batch-size 32 --repeats 2
Ceiling: ~11.5 GFLOP per 299×299 image at ~230 GFLOP/s sustained fp32 on this 2-core CPU ≈ 20 img/s.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from e2ed2.data import load_dataset
from e2ed2.metrics import backends, common, frechet, inception

CEILING = 20.0


def best_rate(fn, n, repeats):
    fn()  # warm-up (allocation, kernel selection)
    best = min(_timed(fn) for _ in range(repeats))
    return n / best


def _timed(fn):
    _sync()
    t0 = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0


def _sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the ceiling figure is the CPU's)")
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    layers = inception.load_torchscript_layers(inception.locate())
    nets = {"torchscript": inception.TorchScriptFID(layers),
            "torchscript-channels-last": inception.TorchScriptFID(layers, True),
            "fast (folded BN, fused 1x1, channels-last)": inception.InceptionFID(layers)}
    if args.device == "cpu":
        nets[f"fast + {args.threads} single-thread workers"] = inception.CoreParallel(inception.InceptionFID(layers),
                                                                                      args.threads)
    nets = {k: v.to(dev) for k, v in nets.items()}
    x = (torch.rand(args.batch_size, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 255).to(dev)
    rows = {"threads": args.threads, "device": str(dev), "batch_size": args.batch_size, "load_avg": os.getloadavg(),
            "network": {}}
    with torch.inference_mode():
        for name, net in nets.items():
            rate = best_rate(lambda net=net: net(x), args.batch_size, args.repeats)
            rows["network"][name] = {"images_per_s": rate, "fraction_of_ceiling": rate / CEILING}
    # Full backend paths (resize + network) on real mnist5k held-out digits, before/after.
    images = common.to_rgb(load_dataset("mnist5k").subset("heldout").images[: args.n])[0]
    rows["backends"], feats = {}, {}
    for backend in backends.BACKENDS:
        for fast in (False, True):
            key = f"{backend} {'fast' if fast else 'torchscript'}"
            with torch.inference_mode():
                t = _timed(lambda key=key, backend=backend, fast=fast: feats.__setitem__(
                    key, backends.features(backend, images, batch_size=args.batch_size, fast=fast, device=dev)))
            rows["backends"][key] = {"images_per_s": args.n / t, "fraction_of_ceiling": args.n / t / CEILING}
        half = args.n // 2
        fid = {}
        for mode in ("torchscript", "fast"):
            f = feats[f"{backend} {mode}"]
            m1, s1 = frechet.statistics(f[:half])
            m2, s2 = frechet.statistics(f[half:])
            fid[mode] = frechet.frechet_distance(m1, s1, m2, s2)
        rel = abs(fid["fast"] - fid["torchscript"]) / abs(fid["torchscript"])
        rows["backends"][f"{backend} fid_check"] = {**fid, "relative_change": rel, "ok": rel <= 1e-4}
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
