"""E2ED² recipe study: train variants of the default E2ED² arm and score their learning curves.

Each variant is the default config's ``e2ed2/main`` run config of one dataset with method/train
overrides (a YAML file: ``name: {method: {...}, train: {...}}``), trained once per seed into
``<run>/<dataset>/sweep/<variant>/s<seed>`` with EMA snapshots, then scored like the workflow
scores a sample set (seeds 0…n−1, held-out reference, FID/KID/precision/recall): every snapshot at
NFE = the variant's K (the learning curve), the final checkpoint at each ``--nfe`` as well. One row
per (variant, seed, step, NFE) is appended to ``--out`` (JSON lines) (a rerun skips what is there), with the
training seconds, images seen, and the last logged diagnostics of stats.jsonl (per-term gradient
norms at x̂, D accuracy and logit gap, where the variant logs them). docs/E2ED2.md's tables come
from this file's output.

    python benchmarks/e2ed2_sweep.py --run results/e2exp --dataset digits \
        --variants benchmarks/e2ed2_variants.yaml --only paper,recon_only --seeds 0,1 --out .tmp/sweep.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from e2ed2.config import deep_merge
from e2ed2.diagnose import curve
from e2ed2.plan import Plan
from e2ed2.train import train
from e2ed2.workflow_config import load_config, load_yaml


def run_config(plan: Plan, dataset: str, overrides: dict, seed: int, steps: int, snapshots: list[int]) -> dict:
    """The default E2ED² main run config of ``dataset`` with the variant's overrides."""
    run = plan.run_config(dataset, "e2ed2", "main", seed)
    run["method"] = deep_merge(run["method"], overrides.get("method"))
    run["train"] = deep_merge(run["train"], overrides.get("train"))
    run["train"]["steps"] = (overrides.get("train") or {}).get("steps", steps)
    run["train"]["snapshots"] = [s for s in snapshots if s < run["train"]["steps"]]
    run["train"]["threads"] = 1
    # teacher pairs only where the variant can use them and they exist for its budget and seed
    m = run["method"]
    pairs = m.get("teacher_pairs")
    if pairs:  # a variant may name its own pairs file per seed ("...-s{seed}.npz")
        m["teacher_pairs"] = pairs = pairs.format(seed=seed)
    if pairs and (m.get("pairing") != "teacher" or m.get("start", "pure") != "pure"
                  or not Path(pairs).is_file()):
        m["teacher_pairs"] = None
    if m.get("teacher_pairs") is None:
        m.pop("teacher_pairs", None)
    return run


def last_diagnostics(stats: Path) -> dict:
    """Means over the last quarter of the logged rows of every diagnostic column (loss, norms, D stats)."""
    rows = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
    if not rows:
        return {}
    df = pd.DataFrame(rows)
    tail = df.iloc[len(df) * 3 // 4:]
    keep = [c for c in df.columns if c not in ("step", "lr", "images_seen", "sec_per_step", "total_steps", "eta_s")]
    return {f"diag_{c}": float(tail[c].mean()) for c in keep if pd.api.types.is_numeric_dtype(tail[c])}


def read_rows(path: Path) -> pd.DataFrame:
    """The rows written so far (JSON lines), or an empty frame."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["variant", "seed"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="results/e2exp")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--variants", default="benchmarks/e2ed2_variants.yaml")
    p.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=120, help="training steps unless a variant sets train.steps")
    p.add_argument("--snapshots", default="", help="comma-separated EMA snapshot steps (learning curve)")
    p.add_argument("--nfe", default="1,2,4", help="NFEs at which the final checkpoint is scored")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--out", default=".tmp/e2ed2_sweep.jsonl")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    plan = Plan(load_config(cli_values={"run": Path(args.run).name})[0])
    variants = load_yaml(args.variants)
    names = [v for v in args.only.split(",") if v] or list(variants)
    unknown = set(names) - set(variants)
    if unknown:
        raise SystemExit(f"error: variants {sorted(unknown)} not in {args.variants}; valid: {sorted(variants)}")
    ref = f"{args.run}/{args.dataset}/metrics/ref/fid-heldout-clean-fid-n500.npz"
    out = Path(args.out)
    done = read_rows(out)
    snapshots = [int(s) for s in args.snapshots.split(",") if s]
    for name in names:
        for seed in (int(s) for s in args.seeds.split(",")):
            if ((done["variant"] == name) & (done["seed"] == seed)).any():
                continue
            cfg = run_config(plan, args.dataset, variants[name] or {}, seed, args.steps, snapshots)
            folder = Path(args.run) / args.dataset / "sweep" / name / f"s{seed}"
            t0 = time.perf_counter()
            train(cfg, folder, on_mismatch="restart")
            seconds = time.perf_counter() - t0
            K = int(cfg["method"].get("steps", 2))
            rows = curve(folder, ref, [("ddim", K)], args.n, torch.device("cpu"))
            finals = [int(k) for k in args.nfe.split(",") if int(k) != K]
            final_only = Path(folder / "final_only")
            final_only.mkdir(exist_ok=True)
            if not (final_only / "final.pt").exists():
                os.symlink(os.path.abspath(folder / "final.pt"), final_only / "final.pt")
            if finals:
                rows = pd.concat([rows, curve(final_only, ref, [("ddim", k) for k in finals], args.n,
                                              torch.device("cpu"))])
            diag = last_diagnostics(folder / "stats.jsonl")
            knobs = {f"knob_{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                     for k, v in {**cfg["method"], **{f"train_{k}": v for k, v in cfg["train"].items()}}.items()
                     if k != "teacher"}
            rows = rows.assign(variant=name, seed=seed, dataset=args.dataset, train_seconds=seconds,
                               train_steps=cfg["train"]["steps"], batch_size=cfg["train"]["batch_size"], **diag,
                               **knobs)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "a") as f:  # one JSON object per line: variants log different diagnostics
                for rec in rows.to_dict("records"):
                    f.write(json.dumps(rec, default=str) + "\n")
            done = read_rows(out)
            print(f"{name} s{seed}: {seconds:.0f} s; " + "; ".join(
                f"step {r.step} NFE {r.nfe}: FID {r.fid:.1f} recall {r.recall:.3f}" for r in rows.itertuples()),
                flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
