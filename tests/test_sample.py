"""Per-seed noise, schedules, the denoiser adapter, and the sample CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from e2ed2 import schedules
from e2ed2.methods import build_method
from e2ed2.noise import SeedNoise, parse_seeds
from e2ed2.sample import main as sample_main
from e2ed2.train import train
from tests.conftest import TINY_NET


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "consistency"])
def test_samples_independent_of_batch_size(sampler):
    torch.manual_seed(0)
    method = build_method({"method": {"name": "ddpm", "T": 100}, "net": TINY_NET}).eval()
    for p in method.net.parameters():  # non-trivial output: un-zero the zero-init layers
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    seeds = list(range(8))
    shape = (1, 8, 8)
    results = []
    for bs in (1, 3, 8):
        parts = []
        for lo in range(0, 8, bs):
            noise = SeedNoise(seeds[lo:lo + bs])
            with torch.no_grad():
                parts.append(method.sample(noise.randn(shape), None, 4, sampler=sampler, generator=noise))
        results.append(torch.cat(parts))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(results[0], results[2], rtol=0, atol=1e-5)
    assert not torch.allclose(results[0][0], results[0][1])  # different seeds differ


def test_parse_seeds():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    with pytest.raises(ValueError):
        parse_seeds(",")


def test_schedules():
    ab = schedules.alpha_bars_from_betas(schedules.linear_betas())
    assert ab.dtype == torch.float64 and abs(ab[-1].item() - 4.036e-5) < 1e-7  # Ho et al. T=1000
    zs = schedules.zero_terminal_snr(ab)
    assert zs[-1] == 0 and torch.isclose(zs[0], ab[0])
    s = schedules.respace(schedules.ddpm_sigmas(1000), 4)
    train_s = schedules.ddpm_sigmas(1000)
    assert len(s) == 5 and s[-1] == 0 and s[0] == train_s[-1]  # trailing: starts at t = T
    assert (s[:-1].diff() < 0).all()
    k = schedules.karras_sigmas(5, 0.002, 80.0)
    assert torch.isclose(k[0], torch.tensor(80.0, dtype=torch.float64))
    assert torch.isclose(k[-2], torch.tensor(0.002, dtype=torch.float64))
    cos = schedules.cosine_alpha_bars()
    assert (cos.diff() < 0).all() and 0 < cos[-1] < 1e-3


def test_sample_cli_writes_images_grid_and_timing(tiny_config, tmp_path):
    ckpt = train(tiny_config(steps=2), tmp_path / "run")
    out = tmp_path / "s"
    assert sample_main(["--ckpt", str(ckpt), "--out", str(out), "--steps", "3", "--sampler", "heun", "--seeds", "0-9",
                        "--batch-size", "4"]) == 0
    z = np.load(out / "samples.npz")
    assert z["images"].shape == (10, 1, 8, 8) and z["images"].dtype == np.uint8
    assert list(z["seeds"]) == list(range(10))
    timing = json.loads((out / "timing.json").read_text())
    assert timing["nfe"] == 5 and timing["n"] == 10 and timing["ms_per_image"] > 0  # Heun: 2·3 - 1
    assert timing["warmup_excluded"] and timing["device"] == "cpu" and timing["dtype"] == "float32"
    assert (out / "grid.png").stat().st_size > 0
    # the set records which data its model learnt: the content hash of the run config's data file
    from e2ed2.data_identity import file_digest

    data = tiny_config(steps=2)["data"]
    assert timing["data_identity"] == {"file": Path(data).name, "sha256": file_digest(data)}
    assert json.loads(str(z["meta"]))["data_identity"] == timing["data_identity"]


def test_sampler_removes_a_killed_writers_temp_and_refuses_a_second_sampler(tiny_config, tmp_path, capsys):
    from e2ed2 import cli, runs

    ckpt = train(tiny_config(steps=2), tmp_path / "run")
    out = tmp_path / "s"
    out.mkdir()
    stale = out / ".samples.npz.k1ll3d.tmp"  # what atomic_write leaves when its process is killed
    stale.write_bytes(b"half a file")
    args = ["--ckpt", str(ckpt), "--out", str(out), "--steps", "1", "--seeds", "0-3", "--no-progress"]
    with runs.locked(out):  # another sampler holds the folder: refused at once, nothing written
        assert cli.run(sample_main, args) == 1
    assert "being written by another process" in capsys.readouterr().err and not (out / "samples.npz").exists()
    assert sample_main(args) == 0 and not stale.exists() and (out / "samples.npz").exists()


def test_several_sets_in_one_process_write_what_each_alone_writes(tiny_config, tmp_path, capsys):
    """The workflow's per-arm sample jobs: argument lists joined by --next give each set the bytes of
    its own run (but for timing), and a bad later list stops the process before any set is written."""
    from e2ed2 import cli

    ckpt = str(train(tiny_config(steps=2), tmp_path / "run"))

    def one(out, steps, sampler):
        return ["--ckpt", ckpt, "--out", str(out), "--steps", str(steps), "--sampler", sampler, "--seeds", "0-5",
                "--no-progress"]

    sets = [(tmp_path / "g" / "a", 2, "ddim"), (tmp_path / "g" / "b", 3, "heun")]
    assert sample_main(one(*sets[0]) + ["--next"] + one(*sets[1])) == 0
    for out, steps, sampler in sets:
        alone = tmp_path / "alone" / out.name
        assert sample_main(one(alone, steps, sampler)) == 0
        grouped, single = np.load(out / "samples.npz"), np.load(alone / "samples.npz")
        assert all(np.array_equal(grouped[k], single[k]) for k in ("images", "seeds", "captions", "labels"))
        assert json.loads(str(grouped["meta"]))["steps"] == steps
    # a bad second list (steps 0) or two sets into one folder: refused before the first set is sampled
    first = tmp_path / "never"
    assert cli.run(sample_main, one(first, 2, "ddim") + ["--next"] + one(tmp_path / "x", 0, "ddim")) == 2
    assert cli.run(sample_main, one(first, 2, "ddim") + ["--next"] + one(first, 3, "ddim")) == 2
    assert "same --out folder" in capsys.readouterr().err and not first.exists()


def test_warmup_is_one_untimed_step_and_changes_no_image(tiny_config, tmp_path):
    from e2ed2.methods import load_method
    from e2ed2.sample import generate

    method, _ = load_method(train(tiny_config(steps=2), tmp_path / "run"))
    method.eval()
    seeds, captions = list(range(6)), ["a digit 3"] * 6
    calls = []
    sample = method.sample
    method.sample = lambda z, c, steps, **kw: calls.append(steps) or sample(z, c, steps, **kw)
    warm, timing = generate(method, seeds, captions, 4, sampler="ddim", batch_size=4, warmup=True)
    assert calls == [1, 4, 4] and timing["nfe"] == 4  # one 1-step warm-up call, not counted
    cold, _ = generate(method, seeds, captions, 4, sampler="ddim", batch_size=4, warmup=False)
    assert np.array_equal(warm, cold)


def test_conditions_spread_over_classes():
    """Consecutive seeds draw captions from the whole held-out split, not its first rows."""
    from e2ed2.data import mnist5k
    from e2ed2.sample import conditions_for

    captions, labels = conditions_for(list(range(200)), mnist5k())
    counts = np.bincount(labels, minlength=10)
    assert counts.min() >= 10, counts  # sorted-by-class data would give classes 0-3 only
    again, _ = conditions_for([5, 7], mnist5k())
    assert list(again) == [captions[5], captions[7]]
