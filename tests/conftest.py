"""Shared fixtures: a tiny dataset on disk and a tiny run config, so core tests take seconds."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # open_clip must never retry the hub in tests

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

TINY_NET = {"channels": 8, "channel_mult": [1, 2], "attn_resolutions": [4], "resolution": 8,
            "text_dim": 16, "max_tokens": 8, "vocab_size": 64}


def make_tiny_dataset(path, n: int = 48, res: int = 8, channels: int = 1, seed: int = 0):
    """Blobs on a dark background, 10 classes with captions, 1/4 held out."""
    from e2ed2.data import ImageDataset

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    yy, xx = np.mgrid[:res, :res]
    images = np.zeros((n, channels, res, res), np.uint8)
    for i, c in enumerate(labels):
        cy, cx = 1 + c % 3 * (res - 2) / 2, 1 + c // 3 * (res - 2) / 3
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0) * 255
        images[i] = (blob + rng.normal(0, 10, blob.shape)).clip(0, 255).astype(np.uint8)
    captions = np.array([f"a blob of class {c}" for c in labels])
    split = (np.arange(n) % 4 == 3).astype(np.uint8)
    ds = ImageDataset(images, captions, labels.astype(np.int64), split, "tiny")
    ds.save(path)
    return ds


@pytest.fixture
def tiny_data(tmp_path):
    path = tmp_path / "tiny.npz"
    make_tiny_dataset(path)
    return path


@pytest.fixture
def tiny_config(tiny_data):
    def build(method: str = "ddpm", steps: int = 20, **method_cfg):
        return {
            "data": str(tiny_data),
            "method": {"name": method, "T": 100, **method_cfg},
            "net": dict(TINY_NET),
            "train": {"steps": steps, "batch_size": 4, "ckpt_every": 5, "log_every": 5, "warmup": 3, "lr": 1e-3},
        }

    return build
