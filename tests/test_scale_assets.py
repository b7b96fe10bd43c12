"""The pretrained-asset registry: resolution order, fast and explicit failures, the README table."""

from __future__ import annotations

import time

import pytest

from e2ed2 import assets
from e2ed2.assets import AssetMissingError, preflight, resolve
from e2ed2.assets.command import main as assets_main
from e2ed2.config import ConfigError


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Point every standard cache at empty folders, and clear the asset env variables."""
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(assets.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    for a in assets.ASSETS.values():
        monkeypatch.delenv(a.env_var, raising=False)
    return tmp_path


def test_bundled_inception_resolves_from_the_pip_package():
    path = resolve("inception-fid-helper")
    assert path.name == "default_1.pt" and path.stat().st_size > 80e6


def test_missing_asset_fails_at_once_naming_file_and_place(empty_caches):
    t0 = time.perf_counter()
    with pytest.raises(AssetMissingError) as err:
        resolve("lpips-alex")
    assert time.perf_counter() - t0 < 1.0  # no download attempt, no retries
    msg = str(err.value)
    expected = empty_caches / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert "alexnet-owt-7be5be79.pth" in msg and str(expected) in msg and "E2ED2_ASSET_LPIPS_ALEX" in msg
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"weights")
    assert resolve("lpips-alex") == expected  # the standard torch.hub location is honoured


def test_override_and_env_take_precedence_and_must_exist(empty_caches, monkeypatch):
    own = empty_caches / "mine" / "inception-2015-12-05.pt"
    own.parent.mkdir()
    own.write_bytes(b"x")
    assert resolve("inception-stylegan", override=own.parent) == own  # a folder holding the file
    monkeypatch.setenv("E2ED2_ASSET_INCEPTION_STYLEGAN", str(own))
    assert resolve("inception-stylegan") == own
    monkeypatch.setenv("E2ED2_ASSET_INCEPTION_STYLEGAN", str(empty_caches / "nope.pt"))
    with pytest.raises(AssetMissingError, match="E2ED2_ASSET_INCEPTION_STYLEGAN points to .*nope.pt"):
        resolve("inception-stylegan")
    (empty_caches / "tmp").mkdir()
    (empty_caches / "tmp" / "inception-2015-12-05.pt").write_bytes(b"y")  # clean-fid's own cache
    monkeypatch.delenv("E2ED2_ASSET_INCEPTION_STYLEGAN")
    assert resolve("inception-stylegan") == empty_caches / "tmp" / "inception-2015-12-05.pt"
    with pytest.raises(KeyError, match="unknown asset 'inceptoin'"):
        resolve("inceptoin")


def test_hf_cache_layout_resolves_to_the_snapshot_folder(empty_caches):
    with pytest.raises(AssetMissingError, match="models--stabilityai--sd-vae-ft-mse"):
        resolve("sd-vae-ft-mse")
    repo = empty_caches / "hf" / "models--stabilityai--sd-vae-ft-mse"
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (snap / name).write_text("{}")
    assert resolve("sd-vae-ft-mse") == snap


def test_check_cli_and_table(empty_caches, capsys):
    assert assets_main(["check", "inception-fid-helper"]) == 0
    assert assets_main(["check", "clip-vit-b-32-laion2b"]) == 1
    assert "MISSING" in capsys.readouterr().out
    assets_main(["table"])
    table = capsys.readouterr().out
    for a in assets.ASSETS.values():
        assert f"`{a.name}`" in table and a.licence in table and a.size in table


def _config(tmp_path, text: str):
    path = tmp_path / "override.yaml"
    path.write_text(text)
    return preflight.load_config([path])


def _needed(config) -> list[str]:
    return [need.label.split(" (")[0] + (f" ({need.assets[0]})" if len(need.assets) == 1 else "")
            for need in preflight.needs(config)]


def test_needs_follow_the_config(tmp_path):
    """Only what the resolved config uses is required; partial files update the default."""
    assert _needed(preflight.load_config([])) == ["FID Inception network"]
    # a variant inside a dataset's models: override; a zero perceptual weight never builds the loss
    cfg = _config(tmp_path, "datasets:\n  digits:\n    models:\n      e2ed2:\n        variants:\n"
                            "          main: {method: {perceptual: lpips-vgg}}\n"
                            "          noperc: {method: {perceptual: lpips}}\n")
    needs = preflight.needs(cfg)
    assert _needed(cfg) == ["FID Inception network", "LPIPS backbone (lpips-vgg)"]
    assert "digits:e2ed2/main" in needs[1].why and "mnist5k" not in needs[1].why
    cfg = _config(tmp_path, "metrics: {clip: {model: ViT-B-32, pretrained: laion2b_s34b_b79k}}\n")
    assert _needed(cfg) == ["FID Inception network", "open_clip weights (clip-vit-b-32-laion2b)"]
    cfg = _config(tmp_path, "metrics: {families: [fid], clip: {model: ViT-B-32, pretrained: laion2b_s34b_b79k}}\n")
    assert _needed(cfg) == ["FID Inception network"]  # CLIP metrics not computed
    cfg = _config(tmp_path, "latent: {vae: sd-vae-ft-ema, latents: data/x.latents.npz}\n")
    assert _needed(cfg) == ["FID Inception network", "VAE (sd-vae-ft-ema)"]
    with pytest.raises(ConfigError, match="latent: needs 'vae'"):
        preflight.needs(_config(tmp_path, "latent: {latents: x.npz}\n"))


def test_check_configfile_requires_only_what_it_uses(empty_caches, tmp_path, capsys):
    cfg = tmp_path / "latent.yaml"
    cfg.write_text("latent: {vae: sd-vae-ft-mse, latents: data/x.latents.npz}\n")
    assert assets_main(["check", "--configfile", str(cfg)]) == 1
    out = capsys.readouterr().out
    required, optional = out.split("OPTIONAL")
    assert "MISSING  VAE (sd-vae-ft-mse)" in required and "models--stabilityai--sd-vae-ft-mse" in required
    assert "lpips-alex" not in required and "missing  lpips-alex" in optional  # listed, exit code unaffected
    snap = empty_caches / "hf" / "models--stabilityai--sd-vae-ft-mse" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("0123abcd")
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (snap / name).write_text("{}")
    assert assets_main(["check", "--configfile", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"ok       VAE (sd-vae-ft-mse) [latent.vae = sd-vae-ft-mse]: {snap}" in out
    # an open_clip weights file given as a path: required, and named when absent
    weights = tmp_path / "clip.bin"
    cfg.write_text(f"metrics: {{clip: {{model: ViT-B-32, pretrained: {weights}}}}}\n")
    assert assets_main(["check", "--configfile", str(cfg)]) == 1
    assert f"no such file {weights}" in capsys.readouterr().out
    weights.write_bytes(b"w")
    assert assets_main(["check", "--configfile", str(cfg)]) == 0


def test_check_rejects_unknown_names_and_mixed_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown asset 'inceptoin'.*known: inception-fid-helper"):
        assets_main(["check", "inceptoin"])
    with pytest.raises(ValueError, match="not both"):
        assets_main(["check", "lpips-alex", "--configfile", "workflows/config/default.yaml"])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        assets_main(["check", "--configfile", str(tmp_path / "list.yaml")])
