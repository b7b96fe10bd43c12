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

from . import assets, cli
from .atomic import atomic_write
from .data import SPLITS, ImageDataset, load_dataset, to_model_range


def load_vae(spec: str, subfolder: str | None = None, device="cpu", dtype=torch.float32):
    """AutoencoderKL from an asset name or a local diffusers folder (no network), frozen, eval."""
    try:
        from diffusers import AutoencoderKL
    except ImportError as e:
        raise ImportError("latent space needs diffusers, an optional extra: pip install 'e2ed2-harness[latent]' "
                          "(or pip install diffusers) in the harness venv") from e
    path = assets.resolve(spec) if spec in assets.ASSETS else Path(spec).expanduser()
    folder = path / subfolder if subfolder else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"VAE {spec!r}: no diffusers config.json in {folder} (expected an AutoencoderKL "
                                f"folder from save_pretrained, or a VAE asset name among "
                                f"{sorted(n for n, a in assets.ASSETS.items() if a.folder)})")
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda when present, else cpu; an unknown or unavailable device is a ValueError naming it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"--device {name!r}: not a torch device; use auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu (or auto)")
    return device


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("e2ed2.latent", "Encode a harness dataset to VAE latents once (for latent-space runs); needs the "
                   "optional diffusers extra: pip install 'e2ed2-harness[latent]'.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", help="encode (see its --help)")
    e = sub.add_parser("encode", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="dataset .npz → latents .npz", description="Encode every image of a dataset (all splits, "
                       "in order) to float16 VAE latents z = (E(x) - shift)·scaling_factor.")
    e.add_argument("--data", required=True, help="harness dataset (.npz, built-in name, or image folder)")
    e.add_argument("--vae", default="sd-vae-ft-mse",
                   help=f"asset name ({', '.join(n for n, a in assets.ASSETS.items() if a.folder)}) or a local "
                        f"diffusers AutoencoderKL folder")
    e.add_argument("--subfolder", default=None, help="folder inside --vae holding the VAE, e.g. 'vae' in a full "
                   "Stable Diffusion folder")
    e.add_argument("--out", required=True, help="output latents .npz (latents, split, meta)")
    e.add_argument("--mode", default="mean", choices=["mean", "sample"], help="posterior mean or a sample")
    e.add_argument("--seed", type=int, default=0, help="seed of the posterior samples (--mode sample)")
    e.add_argument("--batch-size", type=_positive_int, default=32, help="images per VAE forward pass")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto: cuda when present)")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="VAE weights dtype")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    data = load_dataset(args.data)  # a bad --data fails before the (slow) VAE load
    try:
        vae = load_vae(args.vae, args.subfolder, device, getattr(torch, args.dtype))
    except ImportError as e:  # the optional extra is not installed: one line, not a traceback
        raise cli.RunFailed(str(e)) from e
    with torch.inference_mode():
        latents = encode_dataset(vae, data, args.batch_size, args.mode, args.seed)
    scale, shift = factors(vae)
    meta = {"vae": args.vae, "subfolder": args.subfolder, "scaling_factor": scale, "shift_factor": shift,
            "mode": args.mode, "seed": args.seed, "dataset": str(args.data), "dtype": args.dtype}
    save_latents(args.out, latents, data, meta)
    print(json.dumps({"out": args.out, "shape": list(latents.shape), "std": float(latents.astype(np.float32).std()),
                      **meta}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
