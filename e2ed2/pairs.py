"""Teacher pairs: the frozen teacher's ODE sample from each noise z, computed once and shared.

E2ED²'s ``pairing: teacher`` regresses the K-step generator G_θ(z, c) on the teacher's
many-step ODE sample from the same z (a well-posed target, where data paired with independent
noise is not: its L2 optimum is the conditional mean). Drawing that target inside every
training step costs ``teacher_steps`` network evaluations per image — on this project's CPU
half of an E2ED² step — and every arm and training seed pays it again. Here the pairs are drawn
once per (teacher, sampler, steps, seed) and every arm that trains on the same seed reads them:
the distillation dataset of Luhman & Luhman 2021 ("Knowledge distillation in iterative
generative models"), with E2ED²'s perceptual and adversarial terms still on top.

A pairs file (``.npz``) holds ``z`` (float32, M×C×H×W, N(0, I)), ``x`` (float32, the teacher's
sample in the model's range [-1, 1]), ``captions`` (str, M: training captions drawn uniformly
with the same generator; a ``cond_drop`` fraction emptied, the null condition of classifier-free
guidance, so the pairs follow the training loop's caption dropout), and ``meta`` (JSON: teacher
checkpoint and run hash, sampler, steps, seed, dataset, dtype).

    python -m e2ed2.pairs --teacher edm/final.pt --data mnist5k.npz --n 3840 --steps 10 --seed 0 --out pairs.npz
"""

from __future__ import annotations

import json
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import cli
from .atomic import atomic_write
from .data import load_dataset
from .registry import load_method
from .text import tokenize

FILES = ("z", "x", "captions", "meta")


@dataclass
class TeacherPairs:
    """M pairs (z_i, c_i, x_i = teacher ODE sample from z_i under caption c_i)."""

    z: torch.Tensor
    x: torch.Tensor
    captions: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return self.z.shape[0]

    def tokens(self, vocab_size: int, max_tokens: int) -> torch.Tensor:
        return tokenize(list(self.captions), vocab_size, max_tokens)


def make_pairs(teacher, captions: np.ndarray, n: int, steps: int, sampler: str, seed: int,
               batch_size: int = 64, cond_drop: float = 0.0) -> TeacherPairs:
    """Draw n noises and captions from one generator seeded with ``seed``; integrate the teacher's
    ODE from each (``sampler`` with ``steps`` steps, no guidance), in batches, without gradients.
    A fraction ``cond_drop`` of the captions is emptied (the null condition), as the training
    loop's caption dropout would have done to the batch a target is drawn for."""
    g = torch.Generator("cpu").manual_seed(int(seed))
    cfg = teacher.net.config
    z = torch.randn((n, cfg.image_channels, cfg.resolution, cfg.resolution), generator=g)
    picked = captions[torch.randint(0, len(captions), (n,), generator=g).numpy()].astype(object)
    picked[(torch.rand(n, generator=g) < cond_drop).numpy()] = ""
    picked = picked.astype(str)
    tokens = tokenize(list(picked), cfg.vocab_size, cfg.max_tokens)
    out = []
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            out.append(teacher.sample(z[lo:lo + batch_size], tokens[lo:lo + batch_size], steps, sampler=sampler))
    x = torch.cat(out).float()
    if not torch.isfinite(x).all():
        raise ValueError(f"teacher produced non-finite samples with {sampler}-{steps}; no pairs written")
    return TeacherPairs(z, x, picked, {"sampler": sampler, "steps": steps, "seed": int(seed), "n": n,
                                       "cond_drop": cond_drop})


def save_pairs(pairs: TeacherPairs, path) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, z=pairs.z.numpy(), x=pairs.x.numpy(), captions=np.asarray(pairs.captions, dtype=str),
                 meta=np.asarray(json.dumps(pairs.meta)))


def load_pairs(path) -> TeacherPairs:
    """Load and check a pairs file; every failure names the file and how to remake it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher pairs not found: {path} (make them with python -m e2ed2.pairs)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = set(FILES) - set(f.files)
            if missing:
                raise ValueError(f"missing arrays {sorted(missing)}")
            z, x, captions, meta = f["z"], f["x"], f["captions"], json.loads(str(f["meta"]))
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable teacher-pairs file ({e}); "
                         "delete it and rerun python -m e2ed2.pairs") from e
    if z.shape != x.shape or len(captions) != len(z) or z.ndim != 4:
        raise ValueError(f"{path}: z {z.shape}, x {x.shape} and {len(captions)} captions do not match; "
                         "delete it and rerun python -m e2ed2.pairs")
    return TeacherPairs(torch.from_numpy(z), torch.from_numpy(x), captions, meta)


def build_parser():
    p = cli.parser("e2ed2.pairs", "Draw a teacher's ODE samples from fresh noise once, for E2ED²'s teacher pairing.")
    p.add_argument("--teacher", required=True, help="the teacher's checkpoint (EMA weights are used)")
    p.add_argument("--data", required=True, help="the dataset whose training captions condition the pairs")
    p.add_argument("--n", type=int, required=True, help="number of pairs M")
    p.add_argument("--steps", type=int, default=10, help="teacher sampler steps")
    p.add_argument("--sampler", default="ddim", help="teacher sampler (an ODE sampler: ddim, euler, heun, dpmpp_2m)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noises and captions (the training seed)")
    p.add_argument("--cond-drop", type=float, default=0.0,
                   help="fraction of pairs drawn under the null caption (the trainer's train.cond_drop)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", required=True, help="the pairs .npz to write")
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
    pairs = make_pairs(teacher, np.asarray(train.captions), args.n, args.steps, args.sampler, args.seed,
                       args.batch_size, args.cond_drop)
    seconds = time.perf_counter() - t0
    pairs.meta.update(teacher=str(args.teacher), teacher_run_hash=ckpt.get("run_hash"), data=str(args.data),
                      dtype="float32", seconds=seconds)
    save_pairs(pairs, args.out)
    print(json.dumps({"out": args.out, "n": args.n, "sampler": args.sampler, "steps": args.steps,
                      "seconds": round(seconds, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
