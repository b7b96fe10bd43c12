"""Teacher pairs (e2ed2.pairs): drawn once, the same as sampling the teacher, refused when broken."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e2ed2 import make_pairs as M, pairs as P
from e2ed2.methods import load_method
from e2ed2.train import train
from tests.conftest import TINY_NET, make_tiny_dataset


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "tiny.npz"
    make_tiny_dataset(data)
    cfg = {"data": str(data), "method": {"name": "edm"}, "net": dict(TINY_NET),
           "train": {"steps": 6, "batch_size": 4, "warmup": 1, "lr": 1e-2, "ckpt_every": 6, "log_every": 6}}
    return str(train(cfg, tmp_path_factory.mktemp("teacher"))), str(data)


def test_pairs_are_the_teachers_samples_from_their_noise(teacher, tmp_path):
    ckpt, data = teacher
    out = tmp_path / "pairs.npz"
    assert M.main(["--teacher", ckpt, "--data", data, "--n", "10", "--steps", "3", "--seed", "7",
                   "--batch-size", "4", "--out", str(out)]) == 0
    pairs = P.load_pairs(out)
    assert len(pairs) == 10 and pairs.meta["steps"] == 3 and pairs.meta["seed"] == 7
    # the stored target of pair i is the teacher's 3-step DDIM sample from the stored z_i and caption c_i,
    # whatever the batch it was drawn in
    method, _ = load_method(ckpt)
    method.eval()
    cfg = method.net.config
    tokens = pairs.tokens(cfg.vocab_size, cfg.max_tokens)[:5]
    with torch.no_grad():
        x = method.sample(pairs.z[:5], tokens, 3, sampler="ddim")
    torch.testing.assert_close(x, pairs.x[:5], rtol=1e-5, atol=1e-5)
    # the seed decides the pairs: another seed, other noises
    again = P.make_pairs(method, np.asarray(pairs.captions), 10, 3, "ddim", seed=8)
    assert not torch.equal(again.z, pairs.z)


def test_broken_pairs_files_are_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m e2ed2.make_pairs"):
        P.load_pairs(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="bad.npz"):
        P.load_pairs(bad)
    odd = tmp_path / "odd.npz"
    np.savez(odd, z=np.zeros((3, 1, 8, 8), np.float32), x=np.zeros((2, 1, 8, 8), np.float32),
             captions=np.array(["a", "b", "c"]), dropped=np.zeros(3, bool), meta=np.asarray("{}"))
    with pytest.raises(ValueError, match="do not match"):
        P.load_pairs(odd)


def test_cli_refuses_a_stochastic_sampler(teacher, tmp_path):
    ckpt, data = teacher
    with pytest.raises(ValueError, match="not a deterministic ODE sampler"):
        M.main(["--teacher", ckpt, "--data", data, "--n", "4", "--sampler", "ddpm", "--out", str(tmp_path / "p.npz")])
    assert not (tmp_path / "p.npz").exists()


def test_caption_dropout_empties_that_fraction(teacher):
    ckpt, _ = teacher
    method, _ = load_method(ckpt)
    captions = np.array([f"a blob of class {i}" for i in range(10)])
    pairs = P.make_pairs(method, captions, 200, 1, "ddim", seed=0, cond_drop=0.25)
    assert 0.15 < pairs.dropped.mean() < 0.35 and pairs.meta["cond_drop"] == 0.25
    # a dropped caption is the null condition the trainer's dropout makes (all padding), not the tokens of ""
    tokens = pairs.tokens(method.net.config.vocab_size, method.net.config.max_tokens)
    assert (tokens[pairs.dropped] == 0).all() and (tokens[~pairs.dropped][:, 0] != 0).all()


def test_e2ed2_regresses_on_the_drawn_pairs(teacher, tmp_path):
    from e2ed2.config import ConfigError
    from e2ed2.losses.distance import distance
    from e2ed2.methods import Batch, build_method

    ckpt, data = teacher
    out = tmp_path / "pairs.npz"
    M.main(["--teacher", ckpt, "--data", data, "--n", "16", "--steps", "2", "--out", str(out)])
    knobs = {"name": "e2ed2", "schedule": "edm", "precond": "edm", "init": "scratch", "pairing": "teacher",
             "teacher": ckpt, "teacher_pairs": str(out), "lambda_perc": 0.0, "lambda_adv": 0.0}
    method = build_method({"method": knobs, "net": dict(TINY_NET)})
    assert not method.uses_teacher()  # no teacher integration in the step: the targets are on disk
    x0 = torch.zeros(4, 1, 8, 8)
    pairs, pair_tokens, _ = method.pairs
    tokens = pair_tokens[[0, 1, 2, 0]].clone()  # the batch's captions (the first pairs' captions)
    batch = Batch(x0, tokens, torch.zeros(4, dtype=torch.long))
    loss = method.loss(batch, torch.Generator().manual_seed(3))
    # the same draw by hand: pairs with the batch rows' captions, then G(z_i, c_i) against the teacher's x_i
    z, c, x = method.draw_pairs(tokens, torch.Generator().manual_seed(3), "cpu", torch.float32)
    assert torch.equal(c, tokens)  # every row drew a pair of its own caption
    with torch.no_grad():
        expected = distance(method.generate(z, c, x0), x, "l2")
    torch.testing.assert_close(loss.detach(), expected)
    unseen = torch.full((1, TINY_NET["max_tokens"]), 5, dtype=torch.long)
    with pytest.raises(ValueError, match="no pair has the caption"):
        method.draw_pairs(unseen, torch.Generator(), "cpu", torch.float32)
    with pytest.raises(ConfigError, match="start: pure"):
        build_method({"method": {**knobs, "start": "leaky"}, "net": dict(TINY_NET)})


def test_pairs_cover_every_caption_or_are_refused(teacher):
    ckpt, _ = teacher
    method, _ = load_method(ckpt)
    captions = np.array([f"a blob of class {i % 7}" for i in range(40)])
    pairs = P.make_pairs(method, captions, 16, 1, "ddim", seed=0, cond_drop=0.1)
    kept = pairs.captions[~pairs.dropped]
    assert set(kept) == set(captions) and pairs.dropped.sum() == 2  # 14 rows cover the 7 captions twice
    with pytest.raises(ValueError, match="cannot cover the 7 distinct"):
        P.make_pairs(method, captions, 6, 1, "ddim", seed=0)
