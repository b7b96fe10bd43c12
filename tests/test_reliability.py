"""Reruns that never mix runs, as a user meets them: real `snakemake` and `python -m e2ed2.*`
subprocesses — a changed knob retrains (new weights), a killed workflow recovers with every
training step logged once, NaN samples are refused, bad configs fail with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import TINY_NET
from tests.test_workflow import SMOKE, copy_repo, snakemake

PY = sys.executable


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([PY, "-m", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["ema"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def steps_logged(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]


# ---- the CLI: a finished run and a changed config --------------------------------------------------
def test_cli_refuses_then_restarts_a_changed_config(tiny_data, tmp_path):
    cfg = {"data": str(tiny_data), "method": {"name": "ddpm", "T": 100}, "net": TINY_NET,
           "train": {"steps": 6, "batch_size": 4, "ckpt_every": 3, "log_every": 1, "warmup": 1}}
    run = tmp_path / "run"
    assert cli("e2ed2.train", "--config-json", json.dumps(cfg), "--out", run, "--no-progress").returncode == 0
    old, old_config = weights(run / "final.pt"), (run / "config.json").read_text()
    # the reproduction: the same folder, another parameterisation → refused, naming the key
    proc = cli("e2ed2.train", "--config-json", json.dumps(cfg), "--out", run, "--set", "method.precond=v",
               "--no-progress")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: ") and "method.precond: 'eps' → 'v'" in proc.stderr
    assert same(weights(run / "final.pt"), old)  # nothing was touched, not even config.json
    assert (run / "config.json").read_text() == old_config
    # --restart (what the workflow passes) retrains: new weights, a full log
    proc = cli("e2ed2.train", "--config-json", json.dumps(cfg), "--out", run, "--set", "method.precond=v", "--restart",
               "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert not same(weights(run / "final.pt"), old) and steps_logged(run) == [1, 2, 3, 4, 5, 6]
    assert torch.load(run / "final.pt", weights_only=True)["config"]["method"]["precond"] == "v"


def test_ctrl_c_stops_training_with_a_checkpoint_and_one_line(tiny_data, tmp_path):
    """SIGINT: the step ends, latest.pt holds it, one `error:` line (exit 1); a rerun resumes there."""
    cfg = {"data": str(tiny_data), "method": {"name": "ddpm", "T": 100}, "net": TINY_NET,
           "train": {"steps": 100000, "batch_size": 4, "ckpt_every": 100000, "log_every": 1, "warmup": 1}}
    run = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([PY, "-m", "e2ed2.train", "--config-json", json.dumps(cfg), "--out", str(run),
                             "--no-progress"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not ((run / "stats.jsonl").exists() and len(steps_logged(run)) >= 3) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip() and "EMADecayUnused" not in ln and "warn_if" not in ln]
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert lines[-1].startswith("error: training interrupted: stopped at step ")
    step = torch.load(run / "latest.pt", map_location="cpu", weights_only=True)["step"]
    assert step == steps_logged(run)[-1] >= 3  # the checkpoint holds the last logged step


# ---- the workflow: a changed knob retrains that model -------------------------------------------------
def test_changed_knob_retrains_with_new_weights(tmp_path):
    """The rerun of a changed model does not resume its old weights: new final.pt, a whole log."""
    root = copy_repo(tmp_path / "repo")
    target = "results/smoke/mnist5k/train/ddpm/main/s0/final.pt"
    snakemake(target, "--cores", "1", "--configfile", SMOKE, cwd=root)
    final = root / target
    old = weights(final)
    (root / "retrain.yaml").write_text("models: {ddpm: {method: {precond: v}}}\n")  # a partial override
    snakemake(target, "--cores", "1", "--configfile", SMOKE, "retrain.yaml", cwd=root)
    new = torch.load(final, map_location="cpu", weights_only=True)
    assert new["config"]["method"]["precond"] == "v" and not same(new["ema"], old)
    steps = yaml.safe_load((root / SMOKE).read_text())["models"]["ddpm"]["train"]["steps"]
    assert steps_logged(final.parent) == list(range(2, steps + 1, 2))


# ---- the workflow killed mid-training ---------------------------------------------------------------------
def test_killed_workflow_recovers_with_every_step_logged_once(tmp_path):
    root = copy_repo(tmp_path / "repo")
    config = yaml.safe_load((root / SMOKE).read_text())
    config.update(run="kill", datasets={"mnist5k": {"prepare": "convert"}})
    # long enough that it is killed mid-run (after step 40 of 400), short enough that the resumed run is quick
    config["models"]["edm"]["train"] = {"steps": 400, "ckpt_every": 20, "log_every": 5}
    (root / "kill.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    target = "results/kill/mnist5k/train/edm/main/s0/final.pt"
    run = root / "results/kill/mnist5k/train/edm/main/s0"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PATH=f"{Path(PY).parent}:{os.environ['PATH']}")
    proc = subprocess.Popen([str(Path(PY).parent / "snakemake"), target, "--cores", "1", "--configfile", "kill.yaml"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not ((run / "latest.pt").exists() and len(steps_logged(run)) >= 8):
        time.sleep(0.5) if (run / "stats.jsonl").exists() else time.sleep(1)
    assert (run / "latest.pt").exists(), "training did not start in time"
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake alone dies; its trainer is orphaned
    proc.wait()
    t0 = time.time()
    while time.time() - t0 < 30 and trainer_running(run):
        time.sleep(0.5)
    assert not trainer_running(run), "the orphaned trainer kept running after Snakemake died"
    assert not (run / "final.pt").exists()
    snakemake("--unlock", "--configfile", "kill.yaml", cwd=root)
    snakemake(target, "--cores", "1", "--configfile", "kill.yaml", "--rerun-incomplete", cwd=root)
    assert steps_logged(run) == list(range(5, 401, 5))  # every step once, in order, from the start


def trainer_running(run: Path) -> bool:
    """A process holds the run's lock (a trainer writing the folder)."""
    import fcntl

    with open(run / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


# ---- bad input ---------------------------------------------------------------------------------------------
def test_nan_guidance_writes_nothing(tiny_config, tmp_path):
    from e2ed2.train import train

    ckpt = train(tiny_config(steps=2), tmp_path / "run")
    for guidance in ("nan", "inf"):
        out = tmp_path / f"s-{guidance}"
        proc = cli("e2ed2.sample", "--ckpt", ckpt, "--out", out, "--steps", "2", "--seeds", "0-3",
                   "--guidance", guidance)
        assert proc.returncode == 2 and proc.stderr.startswith("error: --guidance must be a finite number")
        assert not out.exists()


def test_non_finite_samples_are_refused(tiny_config, tmp_path):
    """A network that outputs NaN: the sampler's result is checked before anything is written."""
    from e2ed2.methods import build_method
    from e2ed2.sample import NonFiniteSamplesError, generate

    m = build_method({"method": {"name": "ddpm", "T": 100}, "net": TINY_NET})
    torch.nn.init.constant_(m.net.conv_out.bias, float("nan"))
    with pytest.raises(NonFiniteSamplesError, match=r"produced NaN/inf for 3 of 3 images \(seeds \[0, 1, 2\]"):
        generate(m, [0, 1, 2], ["a", "b", "c"], 2)


@pytest.mark.parametrize("override, key", [
    ("train.steps=-5", "train.steps"), ("train.steps=0", "train.steps"), ("train.batch_size=0", "train.batch_size"),
    ("train.ckpt_every=0", "train.ckpt_every"), ("train.lr=fast", "train.lr"),
    ("method.precond=x", "method 'ddpm'.precond"),
    ("trian.steps=3", "unknown top-level key(s) ['trian']"),
    # the net block is typed and bounded like the method knobs (issue: tracebacks or silent acceptance before)
    ("net.chanels=8", "net: unknown key(s) ['chanels'] (did you mean 'channels'?)"),
    ("net.channels=x", "net.channels: expected a number"), ("net.channels=0", "net.channels: 0 is below"),
    ("net.attn_resolutions=8", "net.attn_resolutions: expected a list"),
    ("net.vocab_size=0", "net.vocab_size: 0 is below"), ("net.num_res_blocks=-1", "net.num_res_blocks: -1 is below"),
    ("net.channel_mult=[]", "net.channel_mult: needs at least one level"),
    ("train.device=tpu", "train.device: 'tpu' is not a device"),
])
def test_bad_config_values_give_one_line_naming_the_key(override, key, tiny_data, tmp_path):
    cfg = {"data": str(tiny_data), "method": {"name": "ddpm"}, "net": TINY_NET, "train": {"steps": 2}}
    proc = cli("e2ed2.train", "--config-json", json.dumps(cfg), "--out", tmp_path / "x", "--set", override)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and key in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x").exists()  # nothing written


def test_bad_seed_ranges_are_errors():
    proc = cli("e2ed2.sample", "--ckpt", "x.pt", "--out", "o", "--steps", "1", "--seeds", "0-3,5-1")
    assert proc.returncode == 2 and "range '5-1' is empty" in proc.stderr and "Traceback" not in proc.stderr


def test_typo_in_a_method_knob_fails_the_dag_build(tmp_path):
    root = copy_repo(tmp_path / "repo")
    config = yaml.safe_load((root / SMOKE).read_text())
    config["models"]["e2ed2"]["method"]["lamda_adv"] = 0.1
    (root / "typo.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake("-n", "--configfile", "typo.yaml", cwd=root, check=False)
    assert proc.returncode != 0 and "unknown key(s) ['lamda_adv']" in proc.stdout + proc.stderr
    assert "models.e2ed2" in proc.stdout + proc.stderr
