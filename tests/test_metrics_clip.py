"""CLIP score: range, matching vs shuffled captions once the small open_clip CLIP is trained, CLI record
(one set, many sets per process, the model block), bad input."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pytest
import torch

from e2ed2.metrics import clip, clip_model, train_clip

from .conftest import make_tiny_dataset


def test_clip_score_formula():
    img = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    txt = np.array([[2.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    assert np.allclose(clip_model.clip_score(img, txt), [100.0, 0.0, 100.0])  # cos 1, clipped −1, cos 1


def test_bad_backbone_spec_is_clear():
    with pytest.raises(ValueError, match="small:"):
        clip_model.load("nonsense")
    with pytest.raises(FileNotFoundError, match="train_clip"):
        clip_model.load("small:/no/such/clip.pt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The small CLIP trained briefly on the tiny blob fixture (10 classes, 1 caption each)."""
    folder = tmp_path_factory.mktemp("clip")
    data = folder / "blobs.npz"
    make_tiny_dataset(data, n=120, res=8, seed=0)
    torch.set_num_threads(2)
    ckpt = folder / "clip.pt"
    assert train_clip.main(["--data", str(data), "--steps", "80", "--batch-size", "32", "--lr", "3e-3",
                            "--out", str(ckpt)]) == 0
    torch.set_num_threads(1)
    return data, ckpt


def test_trained_clip_separates_matching_from_shuffled(trained):
    data, ckpt = trained
    report = json.loads(ckpt.with_suffix(".eval.json").read_text())
    assert report["zero_shot_accuracy"] > report["chance"]
    backbone = clip_model.load(f"small:{ckpt}")
    from e2ed2.data import load_dataset

    held = load_dataset(str(data)).subset("heldout")
    with torch.no_grad():
        img, txt = backbone.encode_images(held.images), backbone.encode_texts(held.captions)
    matching = clip_model.clip_score(img, txt)
    shuffled = clip_model.clip_score(img, np.roll(txt, 1, axis=0))  # neighbours have other classes
    assert ((matching >= 0) & (matching <= 100)).all() and ((shuffled >= 0) & (shuffled <= 100)).all()
    assert matching.mean() > shuffled.mean() + 5


def test_clip_cli_ref_calc(trained, tmp_path):
    data, ckpt = trained
    ref = tmp_path / "clipref.npz"
    assert clip.main(["ref", "--clip", f"small:{ckpt}", "--data", str(data), "--split", "heldout",
                      "--out", str(ref)]) == 0
    out = tmp_path / "clip.json"
    assert clip.main(["calc", "--clip", f"small:{ckpt}", "--data", str(data), "--split", "train", "--n", "30",
                      "--ref", str(ref), "--out", str(out), "--label", "method=real"]) == 0
    rec = json.loads(out.read_text())
    assert [r["metric"] for r in rec["results"]] == ["clip_score", "fd_clip"]
    assert 0 <= rec["value"] <= 100 and rec["results"][1]["value"] >= 0
    assert rec["backend"] == "open_clip" and rec["backbone"]["name"].startswith("e2ed2-small-clip")
    assert rec["n"] == 30 and rec["labels"] == {"method": "real"}
    assert "model" in rec and rec["model"] is None  # real data: no model block
    assert rec["captions"] == {"n": 30, "empty": 0}  # the report's C2 'not applicable' reads this
    assert rec["hardware"]["processor"] and rec["hardware"]["torch_cpu_capability"]


def test_clip_many_sets_in_one_process_match_one_set_calls(trained, tmp_path, capsys):
    from e2ed2.data import load_dataset

    from .test_metrics import MODEL, write_set

    data, ckpt = trained
    ds = load_dataset(str(data))
    sets = [write_set(tmp_path / f"s{k}", ds, slice(12 * k, 12 * k + 12), data) for k in range(2)]
    head = ["calc", "--clip", f"small:{ckpt}"]
    for k, s in enumerate(sets):
        assert clip.main(head + ["--samples", str(s), "--out", str(tmp_path / f"one{k}.json"), "--save-scores",
                                 str(tmp_path / f"one{k}.npz"), "--label", f"steps={k}"]) == 0
    argv = list(head)
    for k, s in enumerate(sets):
        argv += ["--samples", str(s), "--out", str(tmp_path / f"many{k}.json"), "--save-scores",
                 str(tmp_path / f"many{k}.npz"), "--label", f"steps={k}"]
    capsys.readouterr()
    assert clip.main(argv) == 0
    assert "clip calc: " in capsys.readouterr().err
    for k in range(2):  # byte for byte (a CLIP JSON has no timing of its own)
        assert (tmp_path / f"many{k}.json").read_text() == (tmp_path / f"one{k}.json").read_text()
        with np.load(tmp_path / f"many{k}.npz") as a, np.load(tmp_path / f"one{k}.npz") as b:
            assert all(np.array_equal(a[f], b[f]) for f in a.files)
    rec = json.loads((tmp_path / "many1.json").read_text())
    assert rec["model"] == MODEL and "model" not in rec["timing"] and rec["labels"] == {"steps": 1}


def test_clip_too_few_images_refused(tmp_path):
    with pytest.raises(ValueError, match="--n 1: CLIP score's std and FD_CLIP's covariance need at least 2"):
        clip.main(["ref", "--clip", "small:/x.pt", "--data", "digits", "--n", "1", "--out", str(tmp_path / "r.npz")])


def test_registering_the_small_clip_leaves_no_temp_folder(tmp_path, monkeypatch):
    """open_clip reads the config file at registration: no e2ed2-clip-config-* folder survives, and
    a second config under the same name replaces the first (two checkpoints in one process)."""
    import open_clip

    from e2ed2.metrics.clip_model import SMALL_CONFIG, register_small_config

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    other = {**SMALL_CONFIG, "embed_dim": 32}
    register_small_config("e2ed2-test-clip", SMALL_CONFIG)
    register_small_config("e2ed2-test-clip", other)
    assert open_clip.get_model_config("e2ed2-test-clip")["embed_dim"] == 32
    register_small_config("e2ed2-test-clip", other)  # unchanged: nothing written
    assert list(tmp_path.iterdir()) == []
