"""GPU-path plumbing on CPU: DDP through torchrun with gloo, per-seed contract across ranks, AMP switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from e2ed2 import distributed
from e2ed2.checkpoint import load_checkpoint
from e2ed2.data import load_dataset
from e2ed2.runs import RunMismatchError
from e2ed2.sample import main as sample_main
from e2ed2.train import TrainConfig, Trainer, train


def _torchrun(module: str, args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", module, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_global_batch_is_the_same_for_any_rank_count(tiny_config):
    cfg = tiny_config(steps=1)
    cfg["train"]["batch_size"] = 6
    data = load_dataset(cfg["data"])
    one = Trainer(cfg, data).next_batch()
    parts = [Trainer(cfg, data, distributed.DistInfo(r, 2, r)).next_batch() for r in range(2)]
    assert parts[0].x.shape[0] == 3
    assert torch.equal(torch.cat([p.x for p in parts]), one.x)
    assert torch.equal(torch.cat([p.tokens for p in parts]), one.tokens)
    with pytest.raises(ValueError, match="not divisible by WORLD_SIZE=4"):
        Trainer(cfg, data, distributed.DistInfo(0, 4, 0))


def test_same_seeds_give_same_images_on_one_or_two_ranks(tiny_config, tmp_path):
    ckpt = train(tiny_config(steps=2), tmp_path / "run")
    args = ["--ckpt", str(ckpt), "--steps", "3", "--sampler", "ddpm", "--seeds", "3-9", "--batch-size", "2",
            "--device", "cpu"]
    assert sample_main([*args, "--out", str(tmp_path / "one")]) == 0
    _torchrun("e2ed2.sample", [*args, "--out", str(tmp_path / "two")])
    a, b = np.load(tmp_path / "one" / "samples.npz"), np.load(tmp_path / "two" / "samples.npz")
    assert list(b["seeds"]) == list(range(3, 10)) and list(b["captions"]) == list(a["captions"])
    assert np.array_equal(a["images"], b["images"])  # same per-seed noise, same batches → bitwise
    assert len({im.tobytes() for im in b["images"]}) == 7  # and the seeds do differ
    timing = json.loads((tmp_path / "two" / "timing.json").read_text())
    assert timing["world_size"] == 2 and timing["n"] == 7 and len(timing["rank_seconds"]) == 2


def test_ddp_training_with_gloo_keeps_ranks_in_sync(tiny_config, tmp_path):
    cfg = tiny_config(steps=4)
    cfg["train"].update(ckpt_every=2, log_every=1)
    out = tmp_path / "ddp"
    _torchrun("e2ed2.train", ["--config-json", json.dumps(cfg), "--out", str(out), "--no-progress"])
    ck = load_checkpoint(out / "final.pt")  # check_in_sync ran at steps 2 and 4 on both ranks
    assert ck["step"] == 4 and ck["world_size"] == 2
    states = ck["rng"]["per_rank"]
    assert len(states) == 2 and not torch.equal(states[0], states[1])  # each rank its own noise
    steps = [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # rank 0 alone logs
    assert json.loads((out / "config.json").read_text())["resolved"]["world_size"] == 2
    # a 2-rank run is another run than a 1-rank one (its RNG streams cannot continue)
    with pytest.raises(RunMismatchError, match="world_size: 2 → 1"):
        train(cfg, out)


def test_amp_switch_validated_and_bf16_trains(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="train.amp: 'fp8' is not one of"):
        TrainConfig.from_dict({"amp": "fp8"})
    cfg = tiny_config(steps=2)
    cfg["train"].update(amp="bf16", tf32=True)
    ck = load_checkpoint(train(cfg, tmp_path / "bf16"))
    fp32 = load_checkpoint(train(tiny_config(steps=2), tmp_path / "fp32"))
    assert all(v.dtype == torch.float32 for v in ck["state_dict"].values() if v.is_floating_point())
    diff = [not torch.equal(ck["state_dict"][k], fp32["state_dict"][k]) for k in ck["state_dict"]]
    assert any(diff)  # autocast really ran in bf16
