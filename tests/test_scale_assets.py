"""The pretrained-asset registry: resolution order, fast and explicit failures, the README table."""

from __future__ import annotations

import time

import pytest

from e2ed2 import assets
from e2ed2.assets import AssetMissingError, resolve


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
    assert assets.main(["check", "inception-fid-helper"]) == 0
    assert assets.main(["check", "clip-vit-b-32-laion2b"]) == 1
    assert "MISSING" in capsys.readouterr().out
    assets.main(["table"])
    table = capsys.readouterr().out
    for a in assets.ASSETS.values():
        assert f"`{a.name}`" in table and a.licence in table and a.size in table
