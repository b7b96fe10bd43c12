"""CIFAR-10 and COCO-2014 30K converters on fixtures in the real file formats, written here."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from e2ed2.data import load_dataset
from e2ed2.datasets_remote import build_coco, convert_cifar10, draw_pairs, main as remote_main

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _write_cifar(root, per_batch: int = 4):
    """A tiny cifar-10-batches-py/ in the official layout: pickled dicts with bytes keys."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}, f)
    batches = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        # channel-planar rows: R plane then G then B, each 32×32 row-major
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(k * per_batch + j) % 10 for j in range(per_batch)]
        batches[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"img{j}.png".encode() for j in range(per_batch)]}, f)
    return batches


def test_cifar10_conversion(tmp_path):
    batches = _write_cifar(tmp_path / "raw")
    out = tmp_path / "cifar10.npz"
    assert remote_main(["cifar10", "--root", str(tmp_path / "raw"), "--out", str(out)]) == 0
    ds = load_dataset(out)
    assert ds.images.shape == (24, 3, 32, 32) and ds.images.dtype == np.uint8
    assert (ds.split[:20] == 0).all() and (ds.split[20:] == 1).all()  # 5 train batches, then test
    data, labels = batches["data_batch_2"]
    row = data[1]  # image 1 of batch 2 is row 5 overall; pixel (c, y, x) = data[c*1024 + y*32 + x]
    assert ds.images[5, 2, 3, 7] == row[2 * 1024 + 3 * 32 + 7] and ds.images[5, 0, 31, 0] == row[31 * 32]
    assert ds.labels[5] == labels[1] and ds.captions[5] == f"a photo of a {CLASSES[labels[1]]}"
    assert ds.captions[3] == "a photo of a cat"


def test_cifar10_missing_batch_names_the_file(tmp_path):
    _write_cifar(tmp_path / "raw")
    (tmp_path / "raw" / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4.*cifar10-download"):
        convert_cifar10(tmp_path / "raw")


def _write_mini_coco(root, n_images: int = 12):
    """val2014-style JPEGs of assorted sizes + a captions JSON with 1–5 captions per image."""
    from PIL import Image

    images_dir = root / "val2014"
    images_dir.mkdir(parents=True)
    rng = np.random.default_rng(1)
    images, anns, aid = [], [], 100
    for i in range(n_images):
        image_id = 1000 + 7 * i
        name = f"COCO_val2014_{image_id:012d}.jpg"
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        arr = np.full((h, w, 3), (i * 20) % 256, np.uint8)  # flat colour identifies the image
        Image.fromarray(arr).save(images_dir / name, quality=95)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for j in range(1 + i % 5):
            anns.append({"id": aid, "image_id": image_id, "caption": f"image {image_id} caption {j} "})
            aid += 1
    images.append({"id": 5, "file_name": "uncaptioned.jpg", "width": 1, "height": 1})  # never drawn
    captions = root / "annotations" / "captions_val2014.json"
    captions.parent.mkdir()
    captions.write_text(json.dumps({"images": images, "annotations": anns[::-1]}))
    return images_dir, captions


def test_coco30k_draw_crop_resize_and_reference(tmp_path):
    images_dir, captions = _write_mini_coco(tmp_path / "coco")
    out, ref = tmp_path / "coco.npz", tmp_path / "ref"
    argv = ["coco30k", "--images", str(images_dir), "--captions", str(captions), "--resolution", "16", "--n", "8",
            "--seed", "3", "--out", str(out), "--pairs-out", str(tmp_path / "pairs.json"), "--ref-dir", str(ref)]
    assert remote_main(argv) == 0
    ds = load_dataset(out)
    pairs = json.loads((tmp_path / "pairs.json").read_text())
    assert ds.images.shape == (8, 3, 16, 16) and (ds.split == 1).all()
    ids = [p["image_id"] for p in pairs]
    assert len(set(ids)) == 8 and 5 not in ids  # distinct images, each captioned
    for k, p in enumerate(pairs):
        assert ds.captions[k] == p["caption"] and p["caption"].startswith(f"image {p['image_id']} caption")
        i = (p["image_id"] - 1000) // 7
        assert abs(int(ds.images[k].astype(int).mean()) - (i * 20) % 256) <= 2  # the right JPEG, resized
    assert len(list(ref.glob("*.png"))) == 8 and len((ref / "captions.tsv").read_text().splitlines()) == 8
    # fixed seed: same draw again (annotation order does not matter), another seed differs
    assert draw_pairs(captions, 8, 3) == [{k: p[k] for k in ("image_id", "file_name", "caption")} for p in pairs]
    assert [p["image_id"] for p in draw_pairs(captions, 8, 4)] != ids


def test_coco_train_pairs_and_errors(tmp_path):
    images_dir, captions = _write_mini_coco(tmp_path / "coco")
    ds, _ = build_coco(images_dir, captions, 8, n=4, seed=0, train_images=images_dir, train_captions=captions,
                       n_train=6)
    assert list(ds.split) == [0] * 6 + [1] * 4
    with pytest.raises(ValueError, match="only 12 captioned images"):
        draw_pairs(captions, 13, 0)
    pairs = draw_pairs(captions, 3, 0)
    (images_dir / pairs[1]["file_name"]).unlink()
    with pytest.raises(FileNotFoundError, match=pairs[1]["file_name"]):
        build_coco(images_dir, captions, 8, n=3, seed=0)
