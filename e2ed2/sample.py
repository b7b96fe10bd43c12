"""Sample a trained method: images (.npz + PNG grid) and a timing record.

Per-seed contract: the initial noise (and any stochastic sampler noise) of image i comes only
from seed i, and the caption of image i is held-out caption i mod n, so every method and step
budget starts from the same x_T and condition for seed i.

Under torchrun the seed list is split into contiguous blocks, one per rank; each rank samples
its block (still one generator per seed, so the images do not depend on the rank count) and
rank 0 gathers them in seed order and writes. Latent-space checkpoints (config ``latent``)
are decoded by their VAE before images are written (decode time is part of the timing).

CLI: ``python -m e2ed2.sample --ckpt final.pt --steps 4 --seeds 0-255 --out DIR``
(multi-GPU: ``torchrun --standalone --nproc_per_node 8 -m e2ed2.sample ...``). Several sets in one
process (the workflow's per-arm sample jobs: one interpreter and torch start-up instead of one per
set): argument lists joined by ``--next``, each a complete set; every list is checked before the
first set is sampled, and each set's files are those a run of its list alone writes.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import cli, data_identity, distributed, runs
from .atomic import atomic_write, write_json
from .data import ImageDataset, load_dataset, to_uint8
from .denoiser import CountingDenoiser, GuidedDenoiser
from .methods import load_method
from .metrics.common import device_name, hardware
from .noise import SeedNoise, parse_seeds
from .samplers import SAMPLERS
from .text import tokenize


class NonFiniteSamplesError(cli.RunFailed):
    """The sampler produced NaN/inf: nothing is written (a NaN would become a black image and be scored)."""


def conditions_for(seeds, data: ImageDataset, split: str = "heldout"):
    """Caption and label for each seed: row π(seed mod n) of the chosen split.

    π is a fixed permutation (numpy seed 0) of the split's rows, so any block of consecutive
    seeds draws conditions spread over the whole split — datasets stored sorted by class (as
    mnist5k is) still give every class in proportion, matching the FID reference set.
    """
    part = data.subset(split)
    if len(part) == 0:
        raise ValueError(f"{data.name}: split {split!r} is empty; cannot draw captions")
    perm = np.random.default_rng(0).permutation(len(part))
    rows = perm[np.asarray(seeds) % len(part)]
    return part.captions[rows], part.labels[rows]


def generate(method, seeds, captions, steps: int, *, sampler=None, batch_size: int = 64, guidance: float = 1.0,
             device=torch.device("cpu"), dtype=torch.float32, warmup: bool = True, decode=None, progress=None,
             mid_sigmas=None):
    """Generate images for ``seeds`` in batches; returns (uint8 images, timing dict).

    ``progress`` (optional) wraps the iterable of batch starts (the CLI's progress reporter).

    ``mid_sigmas`` (consistency sampler only): the intermediate σ's of multistep sampling.

    ``decode`` (optional) maps the sampler's output to images in [-1, 1] (the VAE decoder).
    Raises NonFiniteSamplesError, naming the seeds, if any output is NaN or infinite.
    """
    device = torch.device(device)
    net_cfg = method.net.config
    tokens = tokenize(list(captions), net_cfg.vocab_size, net_cfg.max_tokens)
    shape = (net_cfg.image_channels, net_cfg.resolution, net_cfg.resolution)
    base = method.denoiser()
    if guidance != 1.0:
        base = GuidedDenoiser(base, guidance)
    counter = CountingDenoiser(base, evals_per_call=2 if guidance != 1.0 else 1)

    def run(lo, hi, steps=steps, mid_sigmas=mid_sigmas):
        noise = SeedNoise(seeds[lo:hi])
        z = noise.randn(shape, device=device, dtype=dtype)
        with torch.no_grad():
            x = method.sample(z, tokens[lo:hi].to(device), steps, sampler=sampler, generator=noise, denoiser=counter,
                              mid_sigmas=mid_sigmas)
            x = decode(x) if decode is not None else x
        bad = (~torch.isfinite(x)).flatten(1).any(1)
        if bad.any():
            first = [seeds[lo + int(i)] for i in bad.nonzero().flatten()[:5]]
            raise NonFiniteSamplesError(
                f"{method.name} with {sampler or method.default_sampler}-{steps} (guidance {guidance}) produced "
                f"NaN/inf for {int(bad.sum())} of {hi - lo} images (seeds {first}...); nothing was written")
        return x

    # Warm-up, not timed: the first network calls at this batch shape pay allocation and kernel
    # selection. One step of the same sampler at the same shape is enough (a full-length warm-up
    # cost a third of every 200-image set's sampling time).
    if warmup:
        run(0, min(batch_size, len(seeds)), steps=1, mid_sigmas=None)
    counter.nfe, calls = 0, 0
    if device.type == "cuda":
        torch.cuda.synchronize(), torch.cuda.reset_peak_memory_stats()
    out, t0 = [], time.perf_counter()
    starts = range(0, len(seeds), batch_size)
    for lo in progress(starts) if progress else starts:
        out.append(to_uint8(run(lo, lo + batch_size)))
        calls += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    images = np.concatenate(out)
    timing = {
        "nfe": counter.nfe // calls, "steps": steps, "sampler": sampler or method.default_sampler,
        "n": len(seeds), "seconds": seconds, "ms_per_image": 1000 * seconds / len(seeds),
        "images_per_s": len(seeds) / seconds, "batch_size": batch_size, "device": str(device),
        "device_name": device_name(device), "hardware": hardware(device),  # e2ed2.metrics.common: one record
        "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(), "guidance": guidance,
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "warmup_excluded": warmup, "decoded_latents": decode is not None,
    }
    return images, timing


def merge_timings(parts: list[dict]) -> dict:
    """One timing record from per-rank records: wall time is the slowest rank's; the per-image
    device time sums every rank's seconds (so it is comparable with a one-rank run)."""
    n, wall = sum(t["n"] for t in parts), max(t["seconds"] for t in parts)
    peaks = [t["peak_memory_mb"] for t in parts if t["peak_memory_mb"] is not None]
    return {**parts[0], "n": n, "seconds": wall, "ms_per_image": 1000 * sum(t["seconds"] for t in parts) / n,
            "images_per_s": n / wall, "world_size": len(parts), "rank_seconds": [t["seconds"] for t in parts],
            "peak_memory_mb": max(peaks) if peaks else None}


def save_grid(images: np.ndarray, path, ncol: int = 8) -> None:
    """uint8 N×C×H×W → PNG grid (2-pixel gaps), written atomically."""
    from PIL import Image

    n, c, h, w = images.shape
    nrow = (n + ncol - 1) // ncol
    grid = np.full((c, nrow * (h + 2) + 2, ncol * (w + 2) + 2), 128, np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, ncol)
        grid[:, 2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + col * (w + 2): 2 + col * (w + 2) + w] = im
    with atomic_write(path) as tmp:
        Image.fromarray(grid[0] if c == 1 else grid.transpose(1, 2, 0)).save(tmp)


def save_samples(path, images, seeds, captions, labels, meta: dict) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, images=images, seeds=np.asarray(seeds, np.int64), captions=np.asarray(captions, str),
                 labels=np.asarray(labels, np.int64), meta=np.asarray(json.dumps(meta)))


def model_record(ckpt: dict) -> dict:
    """What a sample set (and every metric JSON scored from it) says about the model it came from:
    the method's knobs as trained (``method.steps`` is E2ED²'s K), the run's identity hash, its step
    and the images it trained on (steps × global batch: a student's budget after its teacher)."""
    batch = (ckpt["config"].get("train") or {}).get("batch_size")
    return {"method": dict(ckpt["config"]["method"]), "run_hash": ckpt.get("run_hash"),
            "train_step": int(ckpt["step"]), "train_images": int(ckpt["step"]) * int(batch) if batch else None}


def trained_on(ckpt: dict) -> dict:
    """The identity (``e2ed2.data_identity``) of the data a checkpoint's model trained on: as its run
    identity recorded it, else (a checkpoint without one) of its config's data as found now."""
    return (ckpt.get("identity") or {}).get("data") or data_identity.identity(ckpt["config"]["data"])


def build_parser():
    p = cli.parser("e2ed2.sample", "Sample a checkpoint: write samples.npz, grid.png and timing.json into --out. "
                                  "Several sets in one process: join their argument lists with --next.")
    p.add_argument("--ckpt", required=True, help="checkpoint written by python -m e2ed2.train (final.pt)")
    p.add_argument("--out", required=True, type=cli.out_path("folder"), help="output folder")
    p.add_argument("--steps", type=int, required=True, help="sampler steps (the method's own σ ladder)")
    p.add_argument("--sampler", default=None, choices=sorted(SAMPLERS), help="sampler (default: the method's own)")
    p.add_argument("--seeds", default="0-63",
                   help="seeds: ranges and lists, e.g. 0-499 or 0-9,20-29; image i uses seed i")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (does not change the images)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--mid-sigmas", default=None,
                   help="consistency sampler: the steps − 1 intermediate σ's, comma-separated (default: Karras ladder)")
    p.add_argument("--data", default=None, help="dataset for captions (default: the checkpoint's)")
    p.add_argument("--caption-split", default="heldout", choices=["train", "heldout"],
                   help="split the captions come from")
    p.add_argument("--no-ema", action="store_true", help="use the online weights instead of EMA")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true",
                   help="no per-batch progress (a bar on a terminal; in a log, lines with elapsed time and ETA)")
    return p


def _progress(args, method, n: int):
    """The CLI's per-batch progress lines (``i/n batches, elapsed, ETA``), or None with --no-progress."""
    if args.no_progress:
        return None
    desc = (f"sample {method.name} {args.sampler or method.default_sampler}-{args.steps} "
            f"({n} images, batches of {args.batch_size})")
    return functools.partial(cli.progress, desc=desc)


OUTPUTS = ("samples.npz", "grid.png", "timing.json")


NEXT = "--next"  # separates the argument lists of several sample sets in one process


def _parse(argv: list[str]):
    """One set's argument list → (args, seeds, mid_sigmas), checked."""
    args = build_parser().parse_args(argv)
    if not math.isfinite(args.guidance):
        raise ValueError(f"--guidance must be a finite number, got {args.guidance}")
    if args.steps < 1 or args.batch_size < 1:
        raise ValueError(f"--steps and --batch-size must be ≥ 1 (got {args.steps}, {args.batch_size})")
    mid_sigmas = [float(v) for v in args.mid_sigmas.split(",")] if args.mid_sigmas else None
    return args, parse_seeds(args.seeds), mid_sigmas


def split_sets(argv: list[str]) -> list[list[str]]:
    """The argument lists of the sets in ``argv`` (one list when there is no ``--next``)."""
    parts, part = [], []
    for a in argv:
        if a == NEXT:
            parts.append(part)
            part = []
        else:
            part.append(a)
    parts.append(part)
    return parts


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    sets = [_parse(part) for part in split_sets(argv)]  # every set's arguments checked before any work
    outs = [Path(args.out).resolve() for args, _, _ in sets]
    if len(set(outs)) < len(outs):
        raise ValueError(f"two sample sets write into the same --out folder: {sorted(map(str, outs))}")
    info = distributed.env_info()
    for args, seeds, mid_sigmas in sets:
        if args.threads:
            torch.set_num_threads(args.threads)
        out = Path(args.out)
        # one writer per folder (a second sampler into it is refused at once), and no temp file of a
        # killed earlier writer left beside the outputs
        with runs.writing(out, OUTPUTS, info.is_main, wait_s=0):
            rc = _sample(args, info, seeds, mid_sigmas, out)
        if rc:
            return rc
    return 0


def _sample(args, info, seeds, mid_sigmas, out: Path) -> int:
    """Sample on this rank, gather on rank 0, write the set (rank 0)."""
    device = distributed.resolve_device(args.device, info)
    distributed.init(device)
    try:
        method, ckpt = load_method(args.ckpt, ema=not args.no_ema, map_location="cpu")
        method = method.to(device).eval()
        data = load_dataset(args.data or ckpt["config"]["data"])
        captions, labels = conditions_for(seeds, data, args.caption_split)
        decode = None
        if ckpt["config"].get("latent"):
            from .latent import LatentDecoder  # latent runs only: it pulls in the asset resolver (+0.45 s per job)

            decode = LatentDecoder(ckpt["config"]["latent"], device)
        # this rank's contiguous block of seeds; rank 0 gathers the blocks in rank (= seed) order
        rows = distributed.shard_rows(len(seeds), info)
        part = generate(method, [seeds[i] for i in rows], captions[rows], args.steps, sampler=args.sampler,
                        batch_size=args.batch_size, guidance=args.guidance, device=device, decode=decode,
                        progress=_progress(args, method, len(rows)) if info.is_main else None, mid_sigmas=mid_sigmas)
        parts = distributed.gather_to_main(part)
    finally:
        distributed.shutdown()
    if not info.is_main:
        return 0
    images, timing = np.concatenate([p[0] for p in parts]), merge_timings([p[1] for p in parts])
    meta = {"checkpoint": str(args.ckpt), "method": ckpt["method"], "train_step": int(ckpt["step"]),
            "run_hash": ckpt.get("run_hash"), "ema": not args.no_ema, "caption_split": args.caption_split,
            "mid_sigmas": mid_sigmas, "data": str(args.data or ckpt["config"]["data"]),
            # which data the model learnt (the run identity's content hash): checked against every reference
            "data_identity": trained_on(ckpt), **timing,
            # the trained model's knobs, from the checkpoint: the one home of K and every knob the report groups by
            "model": model_record(ckpt)}
    save_samples(out / "samples.npz", images, seeds, captions, labels, meta)
    save_grid(images[:64], out / "grid.png")
    write_json(out / "timing.json", meta)
    print(json.dumps({k: meta[k] for k in ("method", "sampler", "steps", "nfe", "n", "ms_per_image")}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
