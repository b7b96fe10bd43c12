"""Latent space (Rombach et al. 2022): a pretrained VAE, datasets encoded once, decode before metrics.

The VAE is a diffusers ``AutoencoderKL`` loaded from a local folder (an asset name such as
``sd-vae-ft-mse`` resolved by ``e2ed2.assets``, or a path). Latents follow the LDM convention
z = (E(x) - shift)·scaling_factor, using the VAE's own ``scaling_factor`` / ``shift_factor``,
so they have roughly unit variance; decoding inverts it: x = D(z / scaling_factor + shift).

Run config: ``latent: {vae: sd-vae-ft-mse, latents: data/coco30k.latents.npz}``; the UNet's
``image_channels`` / ``resolution`` are then the latent's (4, H/8). The latents file holds
``latents`` (float16 N×c×h×w, every row of the dataset in its order), ``split`` (copied from
the dataset, checked on load) and the VAE's factors, so training reads it instead of pixels.

CLI: ``python -m e2ed2.latent encode --data data/coco30k.npz --vae sd-vae-ft-mse --out data/coco30k.latents.npz``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import assets
from .atomic import atomic_write
from .data import ImageDataset, SPLITS, load_dataset, to_model_range


def load_vae(spec: str, subfolder: str | None = None, device="cpu", dtype=torch.float32):
    """AutoencoderKL from an asset name or a local diffusers folder (no network), frozen, eval."""
    try:
        from diffusers import AutoencoderKL
    except ImportError as e:
        raise ImportError("latent space needs diffusers: pip install diffusers (in the harness venv)") from e
    path = assets.resolve(spec) if spec in assets.ASSETS else Path(spec).expanduser()
    folder = path / subfolder if subfolder else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"VAE {spec!r}: no diffusers config.json in {folder} (expected an AutoencoderKL "
                                f"folder from save_pretrained, or an asset name among {sorted(assets.ASSETS)})")
    vae = AutoencoderKL.from_pretrained(str(path), subfolder=subfolder, local_files_only=True)
    return vae.eval().requires_grad_(False).to(device=device, dtype=dtype)


def factors(vae) -> tuple[float, float]:
    """(scaling_factor, shift_factor) from the VAE config (shift 0 when it has none)."""
    return float(vae.config.scaling_factor), float(getattr(vae.config, "shift_factor", None) or 0.0)


def encode(vae, x: torch.Tensor, mode: str = "mean", generator: torch.Generator | None = None) -> torch.Tensor:
    """x in [-1, 1] → z = (E(x) - shift)·scale; ``mode`` picks the posterior mean or a sample."""
    scale, shift = factors(vae)
    posterior = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
    if mode == "mean":
        h = posterior.mean
    elif mode == "sample":
        h = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
    else:
        raise ValueError(f"encode mode {mode!r}; expected 'mean' or 'sample'")
    return (h - shift) * scale


def decode(vae, z: torch.Tensor) -> torch.Tensor:
    """z → x = D(z / scale + shift), in [-1, 1] (clamped)."""
    scale, shift = factors(vae)
    return vae.decode((z / scale + shift).to(vae.device, vae.dtype)).sample.float().clamp(-1, 1)


class LatentDecoder:
    """Callable z → images in [-1, 1], for ``e2ed2.sample.generate(..., decode=...)``."""

    def __init__(self, latent_cfg: dict, device="cpu", dtype=torch.float32):
        self.vae = load_vae(latent_cfg["vae"], latent_cfg.get("subfolder"), device, dtype)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return decode(self.vae, z)


def encode_dataset(vae, data: ImageDataset, batch_size: int = 32, mode: str = "mean", seed: int = 0) -> np.ndarray:
    """Every image of ``data`` (all splits, in order) → float16 latents N×c×h×w."""
    if data.channels != vae.config.in_channels:
        raise ValueError(f"{data.name}: {data.channels}-channel images, but the VAE expects {vae.config.in_channels}")
    g = torch.Generator("cpu").manual_seed(seed)
    out = []
    for lo in range(0, len(data), batch_size):
        x = to_model_range(data.images[lo: lo + batch_size])
        out.append(encode(vae, x, mode, g).float().cpu().numpy().astype(np.float16))
    return np.concatenate(out)


def save_latents(path, latents: np.ndarray, data: ImageDataset, meta: dict) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, latents=latents, split=data.split, meta=np.asarray(json.dumps(meta)))


def load_latents(latent_cfg: dict, data: ImageDataset, split: str = "train") -> torch.Tensor:
    """The ``split`` rows of the latents file named in ``latent_cfg``, float32, checked against ``data``."""
    if "latents" not in latent_cfg:
        raise KeyError("config.latent needs 'latents': the .npz written by `python -m e2ed2.latent encode`")
    path = Path(latent_cfg["latents"])
    if not path.is_file():
        raise FileNotFoundError(f"latents file not found: {path} (encode it with `python -m e2ed2.latent encode`)")
    with np.load(path, allow_pickle=False) as z:
        latents, lsplit = z["latents"], z["split"]
    if len(latents) != len(data) or not np.array_equal(lsplit, data.split):
        raise ValueError(f"{path}: {len(latents)} latents / split column do not match dataset {data.name} "
                         f"({len(data)} images); re-encode it from this dataset")
    keep = lsplit == SPLITS[split] if split != "all" else np.ones(len(lsplit), bool)
    return torch.from_numpy(latents[keep].astype(np.float32))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Encode a harness dataset to VAE latents once (for latent-space runs).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode", help="dataset .npz → latents .npz")
    e.add_argument("--data", required=True, help="harness dataset (.npz, built-in name, or image folder)")
    e.add_argument("--vae", default="sd-vae-ft-mse", help="asset name or local diffusers AutoencoderKL folder")
    e.add_argument("--subfolder", default=None, help="e.g. 'vae' inside a full Stable Diffusion folder")
    e.add_argument("--out", required=True)
    e.add_argument("--mode", default="mean", choices=["mean", "sample"], help="posterior mean or a sample")
    e.add_argument("--seed", type=int, default=0, help="for --mode sample")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--device", default="auto")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    vae = load_vae(args.vae, args.subfolder, device, getattr(torch, args.dtype))
    data = load_dataset(args.data)
    with torch.inference_mode():
        latents = encode_dataset(vae, data, args.batch_size, args.mode, args.seed)
    scale, shift = factors(vae)
    meta = {"vae": args.vae, "subfolder": args.subfolder, "scaling_factor": scale, "shift_factor": shift,
            "mode": args.mode, "seed": args.seed, "dataset": str(args.data), "dtype": args.dtype}
    save_latents(args.out, latents, data, meta)
    print(json.dumps({"out": args.out, "shape": list(latents.shape), "std": float(latents.astype(np.float32).std()), **meta}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
