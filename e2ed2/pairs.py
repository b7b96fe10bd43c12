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
sample in the model's range [-1, 1]), ``captions`` (str, M: every distinct training caption
as evenly as M allows, in an order drawn with the same generator), ``dropped`` (bool, M: a
``cond_drop`` fraction under the null condition of classifier-free guidance — all-padding
tokens, as the training loop's caption dropout makes them), and ``meta`` (JSON: teacher
checkpoint and run hash, sampler, steps, seed, dataset, dtype).

    python -m e2ed2.make_pairs --teacher edm/final.pt --data mnist5k.npz --n 3840 --steps 10 --seed 0 --out pairs.npz
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .text import tokenize

FILES = ("z", "x", "captions", "dropped", "meta")


@dataclass
class TeacherPairs:
    """M pairs (z_i, c_i, x_i = teacher ODE sample from z_i under caption c_i)."""

    z: torch.Tensor
    x: torch.Tensor
    captions: np.ndarray
    dropped: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return self.z.shape[0]

    def tokens(self, vocab_size: int, max_tokens: int) -> torch.Tensor:
        """Caption tokens as the teacher saw them: the null condition (all zeros) where dropped."""
        return null_dropped(tokenize(list(self.captions), vocab_size, max_tokens), self.dropped)


def null_dropped(tokens: torch.Tensor, dropped: np.ndarray) -> torch.Tensor:
    """The trainer's caption dropout: a dropped row is all padding (not the tokens of "")."""
    tokens[torch.as_tensor(dropped, dtype=torch.bool)] = 0
    return tokens


def balanced_captions(captions: np.ndarray, n: int, cond_drop: float, g: torch.Generator):
    """n captions covering every distinct training caption as evenly as n allows (the trainer draws
    each batch row's pair among the pairs of its own caption, so every caption needs one), and a
    ``cond_drop`` fraction (at least one when > 0) under the null condition; rows in random order."""
    unique = np.unique(captions)
    n_drop = max(1, round(cond_drop * n)) if cond_drop > 0 else 0
    if n - n_drop < len(unique):
        raise ValueError(f"{n} pairs cannot cover the {len(unique)} distinct training captions (+ {n_drop} null); "
                         "draw more pairs (--n), or train with teacher_pairs: null (the teacher per step)")
    order = unique[torch.randperm(len(unique), generator=g).numpy()]
    picked = np.concatenate([order[np.arange(n - n_drop) % len(unique)], np.full(n_drop, order[0])])
    dropped = np.arange(n) >= n - n_drop
    perm = torch.randperm(n, generator=g).numpy()
    return picked[perm], dropped[perm]


def make_pairs(teacher, captions: np.ndarray, n: int, steps: int, sampler: str, seed: int,
               batch_size: int = 64, cond_drop: float = 0.0) -> TeacherPairs:
    """Draw n noises and captions from one generator seeded with ``seed``; integrate the teacher's
    ODE from each (``sampler`` with ``steps`` steps, no guidance), in batches, without gradients.
    A fraction ``cond_drop`` of the captions is emptied (the null condition), as the training
    loop's caption dropout would have done to the batch a target is drawn for."""
    g = torch.Generator("cpu").manual_seed(int(seed))
    cfg = teacher.net.config
    z = torch.randn((n, cfg.image_channels, cfg.resolution, cfg.resolution), generator=g)
    picked, dropped = balanced_captions(np.asarray(captions, dtype=str), n, cond_drop, g)
    tokens = null_dropped(tokenize(list(picked), cfg.vocab_size, cfg.max_tokens), dropped)
    out = []
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            out.append(teacher.sample(z[lo:lo + batch_size], tokens[lo:lo + batch_size], steps, sampler=sampler))
    x = torch.cat(out).float()
    if not torch.isfinite(x).all():
        raise ValueError(f"teacher produced non-finite samples with {sampler}-{steps}; no pairs written")
    return TeacherPairs(z, x, picked, dropped, {"sampler": sampler, "steps": steps, "seed": int(seed), "n": n,
                                                "cond_drop": cond_drop})


def save_pairs(pairs: TeacherPairs, path) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, z=pairs.z.numpy(), x=pairs.x.numpy(), captions=np.asarray(pairs.captions, dtype=str),
                 dropped=np.asarray(pairs.dropped, dtype=bool), meta=np.asarray(json.dumps(pairs.meta)))


def load_pairs(path) -> TeacherPairs:
    """Load and check a pairs file; every failure names the file and how to remake it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher pairs not found: {path} (make them with python -m e2ed2.make_pairs)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = set(FILES) - set(f.files)
            if missing:
                raise ValueError(f"missing arrays {sorted(missing)}")
            z, x, captions, dropped = f["z"], f["x"], f["captions"], f["dropped"]
            meta = json.loads(str(f["meta"]))
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable teacher-pairs file ({e}); "
                         "delete it and rerun python -m e2ed2.make_pairs") from e
    if z.shape != x.shape or len(captions) != len(z) or len(dropped) != len(z) or z.ndim != 4:
        raise ValueError(f"{path}: z {z.shape}, x {x.shape} and {len(captions)} captions do not match; "
                         "delete it and rerun python -m e2ed2.make_pairs")
    return TeacherPairs(torch.from_numpy(z), torch.from_numpy(x), captions, dropped, meta)
