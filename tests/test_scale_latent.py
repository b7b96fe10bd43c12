"""Latent space plumbing with a tiny random-weight AutoencoderKL: shapes, encode → train → sample → decode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from e2ed2 import latent
from e2ed2.assets import AssetMissingError
from e2ed2.data import load_dataset
from e2ed2.sample import main as sample_main
from e2ed2.train import train
from tests.conftest import TINY_NET, make_tiny_dataset

pytest.importorskip("diffusers", reason="latent space needs diffusers (pip install diffusers)")


@pytest.fixture
def tiny_vae(tmp_path):
    """The SD VAE architecture (AutoencoderKL, 4 latent channels) at toy width: f = 2 instead of 8."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=8, scaling_factor=0.5)
    vae.save_pretrained(tmp_path / "vae")
    return tmp_path / "vae"


@pytest.fixture
def rgb_data(tmp_path):
    path = tmp_path / "rgb.npz"
    make_tiny_dataset(path, n=16, res=8, channels=3)
    return path


def test_encode_decode_shapes_and_scaling(tiny_vae):
    vae = latent.load_vae(str(tiny_vae))
    assert latent.factors(vae) == (0.5, 0.0)
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    z = latent.encode(vae, x)
    assert z.shape == (3, 4, 4, 4)
    raw = vae.encode(x).latent_dist.mean
    torch.testing.assert_close(z, raw * 0.5)  # z = E(x)·scaling_factor
    y = latent.decode(vae, z)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    torch.testing.assert_close(y, vae.decode(raw).sample.clamp(-1, 1))  # decode inverts the scaling
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(latent.encode(vae, x, "sample", g), z)


def test_latent_run_encode_train_sample_decode(tiny_vae, rgb_data, tmp_path, monkeypatch):
    monkeypatch.setenv("E2ED2_ASSET_SD_VAE_FT_MSE", str(tiny_vae))  # the asset name resolves to it
    lat = tmp_path / "rgb.latents.npz"
    assert latent.main(["encode", "--data", str(rgb_data), "--vae", "sd-vae-ft-mse", "--out", str(lat),
                        "--batch-size", "5", "--device", "cpu"]) == 0
    with np.load(lat) as z:
        assert z["latents"].shape == (16, 4, 4, 4) and z["latents"].dtype == np.float16
        assert json.loads(str(z["meta"]))["scaling_factor"] == 0.5
    data = load_dataset(rgb_data)
    assert latent.load_latents({"latents": str(lat)}, data, "train").shape == (12, 4, 4, 4)

    cfg = {"data": str(rgb_data), "latent": {"vae": "sd-vae-ft-mse", "latents": str(lat)},
           "method": {"name": "ddpm", "T": 100}, "net": {**TINY_NET, "image_channels": 4, "resolution": 4},
           "train": {"steps": 2, "batch_size": 4, "ckpt_every": 2, "log_every": 1, "warmup": 1}}
    ckpt = train(cfg, tmp_path / "run")
    out = tmp_path / "s"
    assert sample_main(["--ckpt", str(ckpt), "--steps", "2", "--seeds", "0-4", "--out", str(out),
                        "--device", "cpu"]) == 0
    with np.load(out / "samples.npz") as s:
        assert s["images"].shape == (5, 3, 8, 8) and s["images"].dtype == np.uint8  # decoded to pixels
    assert json.loads((out / "timing.json").read_text())["decoded_latents"] is True


def test_latent_errors_are_explicit(tiny_vae, rgb_data, tmp_path, monkeypatch):
    monkeypatch.delenv("E2ED2_ASSET_SD_VAE_FT_MSE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(AssetMissingError, match="sd-vae-ft-mse"):
        latent.load_vae("sd-vae-ft-mse")
    with pytest.raises(FileNotFoundError, match="no diffusers config.json"):
        latent.load_vae(str(tmp_path))
    other = tmp_path / "other.npz"
    make_tiny_dataset(other, n=20, res=8, channels=3)
    lat = tmp_path / "l.npz"
    latent.main(["encode", "--data", str(rgb_data), "--vae", str(tiny_vae), "--out", str(lat), "--device", "cpu"])
    with pytest.raises(ValueError, match="do not match dataset"):
        latent.load_latents({"latents": str(lat)}, load_dataset(other))
    with pytest.raises(FileNotFoundError, match="latents file not found"):
        latent.load_latents({"latents": str(tmp_path / "missing.npz")}, load_dataset(rgb_data))
