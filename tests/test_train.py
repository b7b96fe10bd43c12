"""The shared training loop: exact resume, checkpoint safety, non-finite stop, logs."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from e2ed2 import cli
from e2ed2.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from e2ed2.config import ConfigError
from e2ed2.data import load_dataset
from e2ed2.runs import RunMismatchError
from e2ed2.train import (
    EMADecayUnusedWarning,
    NonFiniteLossError,
    Trainer,
    ema_decay_at,
    ema_reached_at,
    main as train_main,
    train,
)


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_is_bitwise_exact(tiny_config, tmp_path):
    cfg = tiny_config(steps=20)
    full = load_checkpoint(train(cfg, tmp_path / "full"))
    # 10 steps, "killed" (the process ends with only latest.pt at step 10), then resumed to 20
    train(cfg, tmp_path / "resumed", stop_after=10)
    assert not (tmp_path / "resumed" / "final.pt").exists()
    assert load_checkpoint(tmp_path / "resumed" / "latest.pt")["step"] == 10
    resumed = load_checkpoint(train(cfg, tmp_path / "resumed"))
    assert resumed["step"] == full["step"] == 20
    assert _equal_states(full["state_dict"], resumed["state_dict"])
    assert _equal_states(full["ema"], resumed["ema"])
    assert torch.equal(full["rng"]["loop"], resumed["rng"]["loop"])
    # the log of the resumed run equals the uninterrupted one, step for step
    def losses(p):
        return [json.loads(line)["loss_main"] for line in p.read_text().splitlines()]

    assert losses(tmp_path / "full" / "stats.jsonl") == losses(tmp_path / "resumed" / "stats.jsonl")


def test_ema_reached_at_is_the_first_step_of_the_ramp_at_d():
    for d in (0.0, 0.3, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999):
        s = ema_reached_at(d)
        assert ema_decay_at(1.0, s) >= d and (s == 0 or ema_decay_at(1.0, s - 1) < d)
    assert ema_reached_at(0.995) == 1790  # the default config's d: the 3,200-step teacher reaches it


def test_unreached_ema_decay_warns_and_changes_no_weight(tiny_config, tmp_path):
    """The promise at the level of the weights: in a 10-step run the warm-up (1+s)/(10+s) ≤ 0.53
    sets the EMA, so d = 0.99 and d = 0.999 give the same EMA weights, and both runs say so; a d
    the ramp reaches (0.3, from step 3) gives other EMA weights, and no warning."""
    def run(name, d):
        cfg = tiny_config(steps=10)
        cfg["train"]["ema_decay"] = d
        return load_checkpoint(train(cfg, tmp_path / name))

    for name, d in (("a", 0.99), ("b", 0.999)):
        with pytest.warns(EMADecayUnusedWarning, match=r"has no effect on this 10-step run.*step \d+"):
            ckpt = run(name, d)
        resolved = json.loads((tmp_path / name / "config.json").read_text())["resolved"]["ema"]
        assert resolved == {"decay": d, "reached_at_step": ema_reached_at(d), "last_step_decay": round(10 / 19, 6)}
        if name == "a":
            first = ckpt
    assert _equal_states(first["ema"], ckpt["ema"])
    online = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    assert online.keys() == ckpt["ema"].keys() and not _equal_states(ckpt["ema"], online)  # an average, not a copy
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMADecayUnusedWarning)
        reached = run("c", 0.3)
    assert not _equal_states(first["ema"], reached["ema"])


def test_resume_differs_from_restart_without_state(tiny_config, tmp_path):
    """Guard: a different seed gives different weights, so the equality above is informative."""
    a = load_checkpoint(train(tiny_config(steps=10), tmp_path / "a"))
    cfg = tiny_config(steps=10)
    cfg["train"]["seed"] = 1
    b = load_checkpoint(train(cfg, tmp_path / "b"))
    assert not _equal_states(a["state_dict"], b["state_dict"])


def test_rerun_of_finished_run_keeps_final(tiny_config, tmp_path):
    cfg = tiny_config(steps=5)
    path = train(cfg, tmp_path / "r")
    before = load_checkpoint(path)
    train(cfg, tmp_path / "r")  # resumes at step 5 == steps: no further update
    after = load_checkpoint(path)
    assert _equal_states(before["state_dict"], after["state_dict"])


def test_rerun_of_finished_run_leaves_final_untouched(tiny_config, tmp_path):
    """A finished run rerun unchanged writes nothing (final.pt keeps its bytes and its mtime)."""
    cfg = tiny_config(steps=3)
    path = train(cfg, tmp_path / "r")
    stamp = (path.read_bytes(), path.stat().st_mtime_ns)
    train(cfg, tmp_path / "r")  # latest.pt at the last step
    (tmp_path / "r" / "latest.pt").unlink()
    log, config = (tmp_path / "r/stats.jsonl").read_text(), (tmp_path / "r/config.json").read_text()
    train(cfg, tmp_path / "r")  # final.pt alone, same config: nothing to do
    assert (path.read_bytes(), path.stat().st_mtime_ns) == stamp
    assert (tmp_path / "r/stats.jsonl").read_text() == log != "" and (tmp_path / "r/config.json").read_text() == config


def test_restart_without_latest_clears_the_earlier_runs_snapshots(tiny_config, tmp_path):
    """No latest.pt but an earlier run's snapshots and log: refused without --restart (nothing
    touched); --restart removes them, so the new run's snapshots and log are its own alone."""
    out = tmp_path / "s"
    old = tiny_config(steps=4)
    old["train"]["snapshots"] = [2, 3]
    train(old, out)
    (out / "latest.pt").unlink()
    (out / "final.pt").unlink()
    new = tiny_config(steps=2)
    new["train"]["seed"] = 7
    with pytest.raises(RunMismatchError, match=r"snapshots/ of an earlier run but no latest\.pt"):
        train(new, out)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step-2.pt", "step-3.pt"]
    train(new, out, on_mismatch="restart")
    assert not (out / "snapshots").exists()  # the new run takes no snapshots: none of the old survive
    steps = [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and max(steps) == 2


def test_corrupt_latest_is_refused_naming_the_fix_and_cleared_by_restart(tiny_config, tmp_path):
    out, cfg = tmp_path / "c", tiny_config(steps=3)
    train(cfg, out, stop_after=2)
    (out / "latest.pt").write_bytes((out / "latest.pt").read_bytes()[:200])  # truncated by a full disk
    with pytest.raises(CheckpointError, match=r"delete .*latest\.pt to start this run afresh, or pass --restart"):
        train(cfg, out)
    assert train(cfg, out, on_mismatch="restart").exists()
    steps = [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 3  # one fresh log, no line of the cleared run twice


def test_a_damaged_log_line_is_reported_on_resume(tmp_path, capsys):
    from e2ed2.runs import truncate_log

    log = tmp_path / "stats.jsonl"
    log.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n{"step": 4, "torn')
    assert truncate_log(log, 3) == 2
    err = capsys.readouterr().err
    assert f"{log}:2: a damaged log line" in err and ":4:" not in err  # a torn LAST line is expected


def test_non_finite_loss_stops_with_step_and_keeps_checkpoint(tiny_config, tmp_path):
    cfg = tiny_config(steps=20)
    out = tmp_path / "nan"
    train(cfg, out, stop_after=5)
    good = load_checkpoint(out / "latest.pt")
    trainer = Trainer(cfg, load_dataset(cfg["data"]))
    trainer.load_state(good)
    with torch.no_grad():
        trainer.method.net.conv_in.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="at step 6"):
        trainer.step()
    assert _equal_states(load_checkpoint(out / "latest.pt")["state_dict"], good["state_dict"])


def test_cli_reports_non_finite_loss(tiny_config, tmp_path, capsys):
    cfg = tiny_config(steps=50)
    cfg["train"].update(lr=1e30, warmup=0, grad_clip=0)  # diverges to inf/NaN within a few steps
    rc = cli.run(train_main, ["--config-json", json.dumps(cfg), "--out", str(tmp_path / "x"), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged") and "non-finite" in err and "at step" in err
    assert "no checkpoint was written before it" in err  # it diverged before the first latest.pt


def test_unknown_config_keys_are_errors(tiny_config, tmp_path):
    cfg = tiny_config(steps=1)
    cfg["train"]["stpes"] = 3
    with pytest.raises(ConfigError, match="stpes"):
        train(cfg, tmp_path / "bad")
    cfg = tiny_config(steps=1, not_a_knob=1)
    with pytest.raises(ConfigError, match="not_a_knob"):
        train(cfg, tmp_path / "bad2")


def test_truncated_checkpoint_fails_clearly(tiny_config, tmp_path):
    path = train(tiny_config(steps=2), tmp_path / "t")
    data = path.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: not a readable checkpoint"):
        load_checkpoint(bad)


def test_non_checkpoint_files_fail_clearly(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an e2ed2 checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


class _Payload:  # an arbitrary Python object: only a full unpickler can rebuild it
    pass


def test_load_uses_weights_only(tmp_path):
    """A pickled arbitrary object is refused: torch.load runs with weights_only=True."""
    path = tmp_path / "pickled.pt"
    torch.save({"format": FORMAT, "method": "ddpm", "config": {}, "step": 0, "state_dict": {}, "x": _Payload()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_atomic_save_leaves_no_temp_files(tmp_path):
    save_checkpoint({"method": "m", "config": {}, "step": 1, "state_dict": {}}, tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_cosine_schedule_warms_up_then_decays_to_zero(tiny_config, tmp_path):
    cfg = tiny_config(steps=20)
    cfg["train"].update(lr=1e-3, warmup=4, lr_schedule="cosine", log_every=1)
    train(cfg, tmp_path / "cos")
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "cos" / "stats.jsonl").read_text().splitlines()]
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])  # linear warm-up
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] < 0.02 * lrs[3]  # cosine down towards 0
    assert lrs[4 + 8] == pytest.approx(0.5e-3, rel=1e-6)  # halfway through the decay: lr/2


def test_the_train_cli_parses_the_run_config_once_and_hands_the_loop_the_object(tiny_config, tmp_path, monkeypatch):
    """One parse per process (issue #28): the CLI turns the dict into a RunConfig, and the loop,
    the Trainer and the method builders take that object without parsing any block again."""
    from e2ed2 import methods, train_config
    from e2ed2.methods import registry

    parsed = []
    real_method_config, real_train = registry.method_config, train_config.TrainConfig.from_dict
    monkeypatch.setattr(registry, "method_config", lambda m: parsed.append("method") or real_method_config(m))
    monkeypatch.setattr(train_config.TrainConfig, "from_dict",
                        staticmethod(lambda d: parsed.append("train") or real_train(d)))
    cfg = tiny_config(steps=2)
    assert train_main(["--config-json", json.dumps(cfg), "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert parsed == ["method", "train"]
    ckpt = load_checkpoint(tmp_path / "r" / "final.pt")
    # the checkpoint keeps the config as written, with the method's every knob resolved
    run = methods.RunConfig.parse(cfg)
    assert ckpt["config"] == {**cfg, "method": {"name": run.cls.name, **methods.registry.as_dict(run.method)}}
    assert methods.RunConfig.parse(ckpt["config"]) == run
