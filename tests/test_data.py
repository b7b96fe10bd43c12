"""Datasets: the embedded mnist5k, user .npz files, image folders, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from e2ed2 import data
from e2ed2.text import tokenize


def test_mnist5k_shape_split_and_captions():
    ds = data.mnist5k()
    assert ds.images.shape == (5000, 1, 32, 32) and ds.images.dtype == np.uint8
    assert (ds.images[:, :, :2].max(), ds.images[:, :, :, -2:].max()) == (0, 0)  # zero padding
    assert (ds.split == data.TRAIN).sum() == 4500 and (ds.split == data.HELDOUT).sum() == 500
    for c in range(10):
        assert ((ds.labels == c) & (ds.split == data.HELDOUT)).sum() == 50
        assert data.DIGIT_WORDS[c] in ds.captions[np.flatnonzero(ds.labels == c)[0]]
    assert len(set(ds.captions)) == 40  # 4 templates × 10 digits
    assert ds.images.mean() > 20  # real digits, not blank


def test_npz_round_trip(tmp_path):
    ds = data.mnist5k().subset("heldout")
    ds.save(tmp_path / "h.npz")
    back = data.load_dataset(tmp_path / "h.npz")
    assert np.array_equal(back.images, ds.images) and list(back.captions) == list(ds.captions)


def test_npz_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        data.load_dataset(tmp_path / "missing.npz")
    bad = tmp_path / "floats.npz"
    np.savez(bad, images=np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="floats.npz: images must be a uint8"):
        data.load_npz(bad)
    shape = tmp_path / "shape.npz"
    np.savez(shape, images=np.zeros((2, 2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="shape.npz: images must be N×C×H×W"):
        data.load_npz(shape)
    noimg = tmp_path / "noimg.npz"
    np.savez(noimg, pixels=np.zeros(3))  # x/y would be read as images/labels (tests/test_own_data.py)
    with pytest.raises(ValueError, match=r"noimg.npz: no 'images' \(or 'x'\) array .*keys: \{images: NAME\}"):
        data.load_npz(noimg)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt.npz"):
        data.load_npz(corrupt)


@pytest.mark.parametrize("layout", ["NHW", "NHWC1", "NHWC3", "NCHW"])
def test_user_npz_layouts_convert(layout, tmp_path):
    rng = np.random.default_rng(0)
    grey = layout in ("NHW", "NHWC1", "NCHW")
    shape = {"NHW": (40, 12, 12), "NHWC1": (40, 12, 12, 1), "NHWC3": (40, 12, 12, 3), "NCHW": (40, 1, 12, 12)}[layout]
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    np.savez(tmp_path / "user.npz", images=images, labels=np.arange(40) % 4)
    ds = data.load_dataset(tmp_path / "user.npz")
    assert ds.images.shape == (40, 1 if grey else 3, 12, 12)
    expect = images[:, None] if layout == "NHW" else images if layout == "NCHW" else images.transpose(0, 3, 1, 2)
    assert np.array_equal(ds.images, expect)
    assert any("held out" in n for n in ds.notes) and (layout == "NCHW") != any("N×H×W" in n for n in ds.notes)


def test_missing_split_gets_a_stratified_heldout_split(tmp_path):
    labels = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    np.savez(tmp_path / "u.npz", images=np.zeros((150, 1, 8, 8), np.uint8), labels=labels)
    ds = data.load_dataset(tmp_path / "u.npz")
    held = ds.split == data.HELDOUT
    assert [int(held[labels == c].sum()) for c in range(5)] == [1, 2, 3, 4, 5]  # 10% of each class
    assert np.array_equal(data.load_dataset(tmp_path / "u.npz").split, ds.split)  # recorded rule: deterministic
    np.savez(tmp_path / "one.npz", images=np.zeros((1, 1, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="cannot hold out"):
        data.load_dataset(tmp_path / "one.npz")
    np.savez(tmp_path / "nohold.npz", images=np.zeros((4, 1, 8, 8), np.uint8), split=np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="holds out no image"):
        data.main([str(tmp_path / "nohold.npz"), "--out", str(tmp_path / "x.npz")])


def test_digits_is_the_uci_set_at_8px_with_a_stratified_split():
    ds = data.digits()
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.max() == 255 and ds.images.min() == 0
    held = ds.split == data.HELDOUT
    assert held.sum() == 539
    assert all(abs(held[ds.labels == c].sum() - 0.3 * (ds.labels == c).sum()) <= 1 for c in range(10))
    assert set(np.unique(ds.images)) <= {round(v * 255 / 16) for v in range(17)}  # the 17 grey levels


def test_image_folder_with_captions(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((20, 30, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    (folder / "captions.json").write_text(json.dumps({"0.png": "a red cat", "2.png": "a dog"}))
    ds = data.load_dataset(folder)
    assert ds.images.shape == (3, 3, 20, 20)
    assert list(ds.captions) == ["a red cat", "", "a dog"]
    (folder / "bad.png").write_text("nope")
    with pytest.raises(ValueError, match="bad.png"):
        data.load_image_folder(folder)


def test_unknown_dataset_spec():
    with pytest.raises(FileNotFoundError, match="not a built-in name"):
        data.load_dataset("cifar100-from-nowhere")


def test_tokenizer_is_stable_and_pads():
    a = tokenize(["a handwritten digit seven", ""], vocab_size=4096, max_len=8)
    assert a.shape == (2, 8) and a[1, 1:].sum() == 0 and a[0, 0] == 1
    assert (a[0, 1:5] > 1).all() and (a[0, 5:] == 0).all()
    assert np.array_equal(a, tokenize(["A Handwritten digit SEVEN", ""], vocab_size=4096, max_len=8))
