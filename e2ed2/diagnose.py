"""Teacher diagnostics: denoising error per noise level, and FID per sampler as training proceeds.

  python -m e2ed2.diagnose sigma-error --ckpt final.pt --data DATA.npz --out sigma_error.csv
  python -m e2ed2.diagnose curve --run DIR --ref REF.npz --samplers ddim:10,heun:10 --out curve.csv

``sigma-error``: on n held-out images x₀ and one fixed noise draw n, at each σ of a log grid
over the method's range, the denoising error of D_θ(x₀ + σn, σ) for the EMA and the online
weights: x̂₀-MSE = mean ‖D − x₀‖², and the ε-MSE it implies, x̂₀-MSE/σ² (the ε-prediction
error). Beside them, the x̂₀-MSE of predicting the per-pixel data mean (the σ → ∞ limit of the
optimal denoiser without condition), so a row above it means the network does worse than
ignoring its input.

``curve``: the run's EMA snapshots (``train.snapshots``) and final.pt, each sampled with every
``sampler:steps`` on seeds 0…n−1 and scored against the reference (clean-fid/torch-fidelity as
the reference says) — FID against training images seen, one line per sampler.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import cli, data_identity
from .atomic import write_text
from .data import load_dataset, to_model_range
from .distributed import resolve_device
from .methods import load_method
from .metrics import backends, common
from .metrics.fid import load_reference
from .sample import conditions_for, generate, trained_on
from .text import tokenize


def sigma_grid(method, points: int) -> np.ndarray:
    """``points`` σ's log-spaced over the method's schedule range (VP: the table's ends)."""
    s = method.schedule
    return np.geomspace(s.sigma_min, s.sigma_max, points)


def sigma_error(path, data, n: int, points: int, seed: int = 0) -> pd.DataFrame:
    """Rows: weights (ema/online), sigma, x0_mse, eps_mse, mean_predictor_x0_mse."""
    ds = load_dataset(data).subset("heldout")
    n = min(n, len(ds))
    x0 = to_model_range(ds.images[:n])
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=g)
    rows = []
    for weights in ("ema", "online"):
        method, ckpt = load_method(path, ema=weights == "ema")
        method.eval()
        tokens = tokenize(list(ds.captions[:n]), method.net.config.vocab_size, method.net.config.max_tokens)
        D = method.denoiser()
        baseline = float(((x0 - x0.mean(0, keepdim=True)) ** 2).mean())
        for sigma in sigma_grid(method, points):
            with torch.no_grad():
                x_hat = D(x0 + float(sigma) * noise, torch.full((n,), float(sigma), dtype=torch.float64), tokens)
            mse = float(((x_hat - x0) ** 2).mean())
            rows.append({"method": ckpt["method"], "weights": weights, "step": int(ckpt["step"]), "sigma": float(sigma),
                         "x0_mse": mse, "eps_mse": mse / float(sigma) ** 2, "mean_predictor_x0_mse": baseline, "n": n})
    return pd.DataFrame(rows)


def snapshots_of(run: Path) -> list[Path]:
    """EMA snapshots in step order, then final.pt."""
    snaps = sorted((run / "snapshots").glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    final = run / "final.pt"
    if not final.is_file():
        raise FileNotFoundError(f"{final}: no final checkpoint; train the run first")
    return snaps + [final]


def curve(run, ref_path, samplers: list[tuple[str, int]], n: int, device, batch_size: int = 100) -> pd.DataFrame:
    ref = load_reference(ref_path)
    backend = ref["meta"]["backend"]
    rows = []
    for path in snapshots_of(Path(run)):
        method, ckpt = load_method(path)
        data_identity.check_same_data(trained_on(ckpt), ref["meta"].get("data_identity"), str(path),
                                      f"the reference {ref_path}")
        method = method.to(device).eval()
        data = load_dataset(ckpt["config"]["data"])
        seeds = list(range(n))
        captions, _ = conditions_for(seeds, data)
        for sampler, steps in samplers:
            images, timing = generate(method, seeds, captions, steps, sampler=sampler, batch_size=batch_size,
                                      device=device, warmup=False)
            rgb, _ = common.to_rgb(images)
            feats = backends.features(backend, rgb, device=device)
            scores = {r["metric"]: r["value"] for r in backends.metrics(backend, feats, ref)}
            step = int(ckpt["step"])
            rows.append({"method": ckpt["method"], "step": step,
                         "images_seen": step * int(ckpt["config"]["train"].get("batch_size", 32)),
                         "sampler": sampler, "steps": steps, "nfe": timing["nfe"], "n": n, "backend": backend,
                         **{k: scores[k] for k in ("fid", "kid", "precision", "recall")}})
            print(f"{path.name} {sampler}-{steps}: FID {scores['fid']:.1f}", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def parse_samplers(spec: str) -> list[tuple[str, int]]:
    out = []
    for item in spec.split(","):
        name, sep, steps = item.strip().partition(":")
        if not sep or not steps.isdigit() or int(steps) < 1:
            raise ValueError(f"--samplers: {item!r} is not SAMPLER:STEPS (e.g. ddim:10)")
        out.append((name, int(steps)))
    return out


def build_parser():
    p = cli.parser("e2ed2.diagnose", "Teacher diagnostics: per-σ denoising error and FID learning curves per sampler.")
    sub = p.add_subparsers(dest="cmd", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    s = sub.add_parser("sigma-error", formatter_class=fmt,
                       help="x̂₀- and ε-MSE per σ on held-out images (EMA and online)")
    s.add_argument("--ckpt", required=True, help="checkpoint (final.pt)")
    s.add_argument("--data", required=True, help="dataset whose held-out split is denoised")
    s.add_argument("--n", type=int, default=200, help="held-out images")
    s.add_argument("--points", type=int, default=10, help="σ's on the log grid")
    s.add_argument("--out", required=True, type=cli.out_path("file"), help="output CSV")
    c = sub.add_parser("curve", formatter_class=fmt, help="FID of each sampler at every snapshot of a run")
    c.add_argument("--run", required=True, help="training folder with snapshots/ and final.pt")
    c.add_argument("--ref", required=True, help="FID reference .npz (python -m e2ed2.metrics.fid ref)")
    c.add_argument("--samplers", default="ddim:10,ddim:50,heun:10,dpmpp_2m:10,ddpm:100", help="SAMPLER:STEPS list")
    c.add_argument("--n", type=int, default=100, help="images per point (seeds 0…n−1)")
    c.add_argument("--out", required=True, type=cli.out_path("file"), help="output CSV")
    for sp in (s, c):
        sp.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
        sp.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.cmd == "sigma-error":
        table = sigma_error(args.ckpt, args.data, args.n, args.points)
    else:
        table = curve(args.run, args.ref, parse_samplers(args.samplers), args.n, device)
    write_text(args.out, table.to_csv(index=False, float_format=lambda v: f"{v:.6g}" if math.isfinite(v) else "nan"))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
