"""E2ED² training-step time and peak memory for K = 1, 2, 4, 8, with and without per-step
activation checkpointing. Prints a table; it is a measurement, not a test.

Each configuration runs in a fresh subprocess (one full shared-loop step: loss, backward,
clip, AdamW, EMA). Memory: on CUDA torch.cuda.max_memory_allocated; on CPU the step's own
footprint (activations, gradients, transients) = peak resident set during the timed steps
minus the resident set before them. The peak (VmHWM) is reset after a warm-up step by
writing 5 to /proc/self/clear_refs (Linux ≥ 4.0), and glibc is told to return freed blocks
(MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_), so the resident set tracks live tensors.

    python benchmarks/bench_e2e.py [--ks 1,2,4,8] [--steps 3] [--batch-size 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

DEFAULT_NET = {"channels": 16, "channel_mult": [1, 2, 4], "attn_resolutions": [8]}


def proc_status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc/self/status, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def worker(args) -> dict:
    import torch

    from e2ed2.data import load_dataset
    from e2ed2.train import Trainer

    torch.set_num_threads(args.threads)
    cfg = {"data": args.data, "net": DEFAULT_NET,
           "method": {"name": "e2ed2", "init": "scratch", "steps": args.k, "checkpointing": args.checkpointing,
                      "perceptual": args.perceptual, "lambda_adv": args.lambda_adv},
           "train": {"batch_size": args.batch_size, "device": args.device}}
    trainer = Trainer(cfg, load_dataset(args.data))
    cuda = trainer.device.type == "cuda"
    trainer.step()  # warm-up: allocator, optimizer state, lazily built perceptual loss
    gc.collect()
    reset_peak_rss()
    base = proc_status_mb("VmRSS")
    if cuda:
        torch.cuda.synchronize(), torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.step()
    if cuda:
        torch.cuda.synchronize()
    sec = (time.perf_counter() - t0) / args.steps
    peak = proc_status_mb("VmHWM")
    return {"K": args.k, "checkpointing": args.checkpointing, "sec_per_step": sec, "peak_rss_mb": peak,
            "step_rss_mb": peak - base, "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ks", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration (after 1 warm-up)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--device", default="auto")
    p.add_argument("--perceptual", default="mslap")
    p.add_argument("--lambda-adv", type=float, default=0.0)
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--checkpointing", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    rows = []
    for ckpt in (1, 0):
        for k in (int(v) for v in args.ks.split(",")):
            cmd = [sys.executable, __file__, "--worker", "--k", str(k), "--checkpointing", str(ckpt)] + [
                f"--{n}={getattr(args, n.replace('-', '_'))}" for n in
                ("steps", "batch-size", "threads", "data", "device", "perceptual", "lambda-adv")]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1",
                   "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            cuda = "" if r["cuda_peak_mb"] is None else f", peak CUDA {r['cuda_peak_mb']:.0f} MB"
            print(f"K={r['K']} ckpt={'on' if ckpt else 'off'}: {r['sec_per_step']:.3f} s/step, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB (+{r['step_rss_mb']:.0f} MB for the step){cuda}", flush=True)
    mem = "cuda_peak_mb" if rows[0]["cuda_peak_mb"] is not None else "step_rss_mb"
    print(f"\n| K | checkpointing | s/step | peak RSS MB | step MB ({mem}) | × K=1 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ref = next(x for x in rows if x["checkpointing"] == r["checkpointing"] and x["K"] == rows[0]["K"])
        print(f"| {r['K']} | {'on' if r['checkpointing'] else 'off'} | {r['sec_per_step']:.3f} | "
              f"{r['peak_rss_mb']:.0f} | {r[mem]:.0f} | {r[mem] / ref[mem]:.2f} |")
    if args.json:
        from e2ed2.atomic import write_json

        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
