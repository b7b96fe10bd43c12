"""The teacher-pairs CLI: draw a teacher's ODE samples from fresh noise once (e2ed2.pairs).

    python -m e2ed2.make_pairs --teacher edm/final.pt --data mnist5k.npz --n 3840 --steps 10 --seed 0 --out pairs.npz
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from . import cli
from .data import load_dataset
from .methods import load_method
from .pairs import make_pairs, save_pairs


def build_parser():
    p = cli.parser("e2ed2.make_pairs", "Draw a teacher's ODE samples from fresh noise once (E2ED²'s teacher pairing).")
    p.add_argument("--teacher", required=True, help="the teacher's checkpoint (EMA weights are used)")
    p.add_argument("--data", required=True, help="the dataset whose training captions condition the pairs")
    p.add_argument("--n", type=int, required=True, help="number of pairs M")
    p.add_argument("--steps", type=int, default=10, help="teacher sampler steps")
    p.add_argument("--sampler", default="ddim", help="teacher sampler (an ODE sampler: ddim, euler, heun, dpmpp_2m)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noises and captions (the training seed)")
    p.add_argument("--cond-drop", type=float, default=0.0,
                   help="fraction of pairs drawn under the null caption (the trainer's train.cond_drop)")
    p.add_argument("--amp", choices=["none", "bf16"], default="none",
                   help="bf16: the teacher in bf16 autocast, as it runs inside an E2ED² step under train.amp bf16")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", required=True, type=cli.out_path("file"), help="the pairs .npz to write")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 1 or args.steps < 1 or args.batch_size < 1:
        raise ValueError(f"--n, --steps and --batch-size must be ≥ 1 (got {args.n}, {args.steps}, {args.batch_size})")
    if not 0.0 <= args.cond_drop < 1.0:
        raise ValueError(f"--cond-drop must be in [0, 1), got {args.cond_drop}")
    if args.sampler in ("ddpm", "consistency"):
        raise ValueError(f"--sampler {args.sampler!r} is not a deterministic ODE sampler; use ddim, euler, heun "
                         "or dpmpp_2m")
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher, ckpt = load_method(args.teacher)
    teacher.eval()
    train = load_dataset(args.data).subset("train")
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
        pairs = make_pairs(teacher, np.asarray(train.captions), args.n, args.steps, args.sampler, args.seed,
                           args.batch_size, args.cond_drop)
    seconds = time.perf_counter() - t0
    pairs.meta.update(teacher=str(args.teacher), teacher_run_hash=ckpt.get("run_hash"), data=str(args.data),
                      dtype="bfloat16 autocast" if args.amp == "bf16" else "float32", seconds=seconds)
    save_pairs(pairs, args.out)
    print(json.dumps({"out": args.out, "n": args.n, "sampler": args.sampler, "steps": args.steps,
                      "seconds": round(seconds, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
