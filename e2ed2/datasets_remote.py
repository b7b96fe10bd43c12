"""Paper-scale datasets: CIFAR-10 and COCO-2014 30K, downloaded when online, converted once.

Both end as the harness format (``e2ed2.data.ImageDataset.save``: uint8 N×C×H×W, captions,
labels, split 0 = train / 1 = held-out).

CIFAR-10 (Krizhevsky 2009): torchvision's download of the python-pickle batches; the 50,000
``data_batch_*`` images are train, the 10,000 ``test_batch`` images held out; caption
"a photo of a {class}".

COCO-2014 30K (the text-to-image protocol of Imagen / GigaGAN / SD evaluations): from val2014
(40,504 images, ~5 captions each), a fixed-seed draw of 30,000 distinct images and one of each
image's captions; images center-cropped and resized to the configured resolution. These pairs
are the held-out split: their captions condition sampling, their images are the FID reference.
Optional training pairs come from train2014 with the same rule (split 0).

CLIs (one per workflow rule):
  python -m e2ed2.datasets_remote cifar10-download --root data/raw/cifar10
  python -m e2ed2.datasets_remote cifar10 --root data/raw/cifar10 --out data/cifar10.npz
  python -m e2ed2.datasets_remote coco-download --root data/raw/coco2014 [--train]
  python -m e2ed2.datasets_remote coco30k --images data/raw/coco2014/val2014 \
      --captions data/raw/coco2014/annotations/captions_val2014.json --resolution 256 --out data/coco30k.npz
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

from . import cli
from .atomic import atomic_write, write_json
from .data import HELDOUT, TRAIN, ImageDataset, center_crop_resize

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = ["test_batch"]
CIFAR_CAPTION = "a photo of a {}"

COCO_URLS = {
    "val2014": "http://images.cocodataset.org/zips/val2014.zip",  # 6.2 GB, 40,504 images
    "train2014": "http://images.cocodataset.org/zips/train2014.zip",  # 13 GB, 82,783 images
    "annotations": "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",  # 241 MB
}


# ---- CIFAR-10 ------------------------------------------------------------------------------
def download_cifar10(root: str | os.PathLike) -> Path:
    """torchvision's download + md5 check of the python batches into ``root`` (network)."""
    from torchvision.datasets import CIFAR10

    for train in (True, False):
        CIFAR10(str(root), train=train, download=True)
    return Path(root) / CIFAR_DIR


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch file not found: {path} (run `python -m e2ed2.datasets_remote "
                                f"cifar10-download --root {path.parent.parent}` when online)")
    with open(path, "rb") as f:
        try:
            return pickle.load(f, encoding="bytes")  # the official format is a pickled dict
        except Exception as e:
            raise ValueError(f"{path}: not a CIFAR-10 python batch file ({e})") from e


def convert_cifar10(root: str | os.PathLike) -> ImageDataset:
    """``root`` holding ``cifar-10-batches-py/`` (or that folder itself) → ImageDataset."""
    root = Path(root)
    folder = root if (root / "batches.meta").exists() else root / CIFAR_DIR
    names = [n.decode() for n in _unpickle(folder / "batches.meta")[b"label_names"]]
    images, labels, split = [], [], []
    for files, part in ((CIFAR_TRAIN, TRAIN), (CIFAR_TEST, HELDOUT)):
        for name in files:
            batch = _unpickle(folder / name)
            data = np.asarray(batch[b"data"], np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch[b"labels"]) != len(data):
                raise ValueError(f"{folder / name}: expected 'data' N×3072 uint8 and N labels, got {data.shape}")
            images.append(data.reshape(-1, 3, 32, 32))  # rows are R(1024) G(1024) B(1024), row-major
            labels.append(np.asarray(batch[b"labels"], np.int64))
            split.append(np.full(len(data), part, np.uint8))
    labels = np.concatenate(labels)
    if labels.min() < 0 or labels.max() >= len(names):
        raise ValueError(f"{folder}: labels outside 0..{len(names) - 1}")
    captions = np.array([CIFAR_CAPTION.format(names[c]) for c in labels], dtype=str)
    return ImageDataset(np.concatenate(images), captions, labels, np.concatenate(split), "cifar10")


# ---- COCO-2014 -----------------------------------------------------------------------------
def download_url(url: str, dest: Path) -> Path:
    """Download to ``dest`` via a temp name + rename (network; resumable runs skip existing files)."""
    import torch.hub

    if dest.is_file():
        return dest
    with atomic_write(dest) as tmp:
        torch.hub.download_url_to_file(url, str(tmp), progress=True)
    return dest


def download_coco2014(root: str | os.PathLike, train: bool = False) -> Path:
    """val2014 images + caption annotations (and train2014 with ``train``) unpacked under ``root``."""
    root = Path(root)
    for key in ("annotations", "val2014") + (("train2014",) if train else ()):
        marker = root / ("annotations/captions_val2014.json" if key == "annotations" else key)
        if marker.exists():
            continue
        archive = download_url(COCO_URLS[key], root / "zips" / Path(COCO_URLS[key]).name)
        with zipfile.ZipFile(archive) as z:
            z.extractall(root)
    return root


def draw_pairs(captions_json: str | os.PathLike, n: int, seed: int) -> list[dict]:
    """Fixed-seed draw of ``n`` distinct images and one caption each: [{file_name, caption, image_id}].

    Images are ordered by id before drawing and each image's captions by annotation id, so the
    draw depends only on (annotation file, n, seed).
    """
    path = Path(captions_json)
    if not path.is_file():
        raise FileNotFoundError(f"COCO captions file not found: {path}")
    try:
        ann = json.loads(path.read_text())
        files = {im["id"]: im["file_name"] for im in ann["images"]}
        by_image: dict[int, list] = {}
        for a in sorted(ann["annotations"], key=lambda a: a["id"]):
            by_image.setdefault(a["image_id"], []).append(a["caption"].strip())
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a COCO captions file with 'images' and 'annotations' ({e})") from e
    ids = sorted(i for i in files if by_image.get(i))
    if n > len(ids):
        raise ValueError(f"{path}: asked for {n} pairs but only {len(ids)} captioned images")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(ids), size=n, replace=False)
    pairs = []
    for k in chosen:
        caps = by_image[ids[k]]
        pairs.append({"image_id": int(ids[k]), "file_name": files[ids[k]], "caption": caps[rng.integers(len(caps))]})
    return pairs


def load_pairs(pairs: list[dict], images_dir: str | os.PathLike, resolution: int) -> np.ndarray:
    """RGB, center-crop, resize → uint8 N×3×R×R; a missing or unreadable JPEG names the file."""
    from PIL import Image

    out = np.empty((len(pairs), 3, resolution, resolution), np.uint8)
    for i, p in enumerate(pairs):
        f = Path(images_dir) / p["file_name"]
        try:
            with Image.open(f) as im:
                out[i] = np.asarray(center_crop_resize(im.convert("RGB"), resolution)).transpose(2, 0, 1)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"COCO image not found: {f}") from e
        except OSError as e:
            raise ValueError(f"{f}: not a readable image ({e})") from e
    return out


def build_coco(val_images, val_captions, resolution: int = 256, n: int = 30_000, seed: int = 2014,
               train_images=None, train_captions=None, n_train: int = 0) -> tuple[ImageDataset, list[dict]]:
    """COCO-2014 30K held-out pairs (+ optional train2014 pairs); returns the dataset and the pair list."""
    parts = [(draw_pairs(val_captions, n, seed), val_images, HELDOUT)]
    if n_train:
        if not (train_images and train_captions):
            raise ValueError("n_train > 0 needs train_images and train_captions (train2014)")
        parts.insert(0, (draw_pairs(train_captions, n_train, seed), train_images, TRAIN))
    images, captions, split, record = [], [], [], []
    for pairs, folder, part in parts:
        images.append(load_pairs(pairs, folder, resolution))
        captions += [p["caption"] for p in pairs]
        split.append(np.full(len(pairs), part, np.uint8))
        record += [{**p, "split": int(part)} for p in pairs]
    labels = np.full(len(captions), -1, np.int64)
    return (ImageDataset(np.concatenate(images), np.array(captions, dtype=str), labels, np.concatenate(split),
                         "coco30k"), record)


def save_reference_folder(data: ImageDataset, folder: str | os.PathLike) -> Path:
    """Held-out images as PNGs (00000.png, ...) + captions.tsv, for folder-based FID tools."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ref = data.subset("heldout")
    lines = []
    for i, (im, cap) in enumerate(zip(ref.images, ref.captions)):
        name = f"{i:05d}.png"
        Image.fromarray(im.transpose(1, 2, 0) if im.shape[0] == 3 else im[0]).save(folder / name)
        lines.append(f"{name}\t{cap}")
    (folder / "captions.tsv").write_text("\n".join(lines) + "\n")
    return folder


# ---- CLI -----------------------------------------------------------------------------------
def _summary(ds: ImageDataset, out) -> str:
    return json.dumps({"out": str(out), "n": len(ds), "shape": list(ds.images.shape[1:]),
                       "train": int((ds.split == TRAIN).sum()), "heldout": int((ds.split == HELDOUT).sum())})


def _count(minimum: int):
    """argparse type: an integer ≥ ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value
    return parse


def _folder(path, flag: str, hint: str) -> None:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{flag} {path}: no such folder ({hint})")


def _download(what: str, fn, *args):
    """A download step; network and archive failures become one run-failure line (exit 1)."""
    try:
        return fn(*args)
    except (OSError, RuntimeError, zipfile.BadZipFile) as e:
        raise cli.RunFailed(f"{what} download failed ({type(e).__name__}: {e}); check the network and rerun "
                            f"(finished files are kept)") from e


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = cli.parser("e2ed2.datasets_remote", "Download and convert CIFAR-10 / COCO-2014 30K to the harness format "
                   "(uint8 N×C×H×W images, captions, labels, split).")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                           help="cifar10-download | cifar10 | coco-download | coco30k (each has its own --help)")
    s = sub.add_parser("cifar10-download", formatter_class=fmt, help="torchvision download of the python batches "
                       "(network)", description="Download CIFAR-10's python batches with torchvision (md5-checked).")
    s.add_argument("--root", required=True, help="folder to download into (cifar-10-batches-py/ is created in it)")
    s = sub.add_parser("cifar10", formatter_class=fmt, help="python batches → harness .npz",
                       description="Convert CIFAR-10's python batches: 50,000 train + 10,000 held-out images, caption "
                       "'a photo of a {class}'.")
    s.add_argument("--root", required=True, help="folder holding cifar-10-batches-py/ (or that folder itself)")
    s.add_argument("--out", required=True, help="output harness .npz")
    s = sub.add_parser("coco-download", formatter_class=fmt, help="val2014 images + caption annotations (network)",
                       description="Download and unpack COCO-2014 val2014 (6.2 GB) and the caption annotations.")
    s.add_argument("--root", required=True, help="folder to unpack into (val2014/, annotations/, zips/)")
    s.add_argument("--train", action="store_true", help="also train2014 (13 GB)")
    s = sub.add_parser("coco30k", formatter_class=fmt, help="fixed-seed 30K (image, caption) pairs → harness .npz",
                       description="Draw COCO-2014 30K: a fixed-seed draw of distinct val2014 images with one caption "
                       "each (the held-out split), plus optional train2014 pairs (split 0).")
    s.add_argument("--images", required=True, help="val2014 image folder")
    s.add_argument("--captions", required=True, help="captions_val2014.json")
    s.add_argument("--resolution", type=_count(1), default=256, help="side of the center-cropped, resized images")
    s.add_argument("--n", type=_count(1), default=30_000, help="number of held-out val2014 pairs")
    s.add_argument("--seed", type=int, default=2014, help="seed of the draw of images and captions")
    s.add_argument("--train-images", help="train2014 image folder (training pairs, split 0)")
    s.add_argument("--train-captions", help="captions_train2014.json")
    s.add_argument("--n-train", type=_count(0), default=0, help="number of train2014 pairs (0 = none)")
    s.add_argument("--out", required=True, help="output harness .npz")
    s.add_argument("--pairs-out", help="JSON list of the drawn pairs (image_id, file_name, caption, split)")
    s.add_argument("--ref-dir", help="also write the held-out reference images as PNGs here")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "cifar10-download":
        print(json.dumps({"downloaded": str(_download("CIFAR-10", download_cifar10, args.root))}))
    elif args.cmd == "cifar10":
        ds = convert_cifar10(args.root)
        ds.save(args.out)
        print(_summary(ds, args.out))
    elif args.cmd == "coco-download":
        print(json.dumps({"downloaded": str(_download("COCO-2014", download_coco2014, args.root, args.train))}))
    else:
        _folder(args.images, "--images", "the unpacked val2014/ folder; `coco-download` fetches it")
        if args.n_train:
            if not (args.train_images and args.train_captions):
                raise ValueError("--n-train > 0 needs --train-images (train2014/) and --train-captions "
                                 "(captions_train2014.json)")
            _folder(args.train_images, "--train-images", "the unpacked train2014/ folder; `coco-download --train`")
        ds, pairs = build_coco(args.images, args.captions, args.resolution, args.n, args.seed,
                               args.train_images, args.train_captions, args.n_train)
        ds.save(args.out)
        if args.pairs_out:
            write_json(args.pairs_out, pairs)
        if args.ref_dir:
            save_reference_folder(ds, args.ref_dir)
        print(_summary(ds, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
