"""A run folder's identity, lock and log (e2ed2.runs), and atomic writes (e2ed2.atomic)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from e2ed2 import runs
from e2ed2.atomic import atomic_write, remove_stale, write_text


def test_identity_changes_with_a_weight_knob_not_with_logging():
    base = runs.identity({"name": "ddpm", "lr": 1}, {"channels": 8}, {"lr": 1e-3, "log_every": 5}, "mnist5k")
    same = runs.identity({"name": "ddpm", "lr": 1}, {"channels": 8}, {"lr": 1e-3, "log_every": 50}, "mnist5k")
    other = runs.identity({"name": "ddpm", "lr": 1}, {"channels": 8}, {"lr": 2e-3, "log_every": 5}, "mnist5k")
    assert runs.run_hash(base) == runs.run_hash(same) != runs.run_hash(other)
    assert runs.changed_keys(base, other) == ["train.lr: 0.001 → 0.002"]
    teach = runs.identity({"name": "cd", "teacher": "a.pt"}, {}, {}, "x", teacher={"run_hash": "1", "step": 5})
    moved = runs.identity({"name": "cd", "teacher": "b.pt"}, {}, {}, "x", teacher={"run_hash": "1", "step": 5})
    retrained = runs.identity({"name": "cd", "teacher": "a.pt"}, {}, {}, "x", teacher={"run_hash": "2", "step": 5})
    assert runs.run_hash(teach) == runs.run_hash(moved) != runs.run_hash(retrained)


def test_log_truncation_drops_later_and_torn_lines(tmp_path):
    log = tmp_path / "stats.jsonl"
    log.write_text("".join(json.dumps({"step": s}) + "\n" for s in (5, 10, 15, 20)) + '{"step": 2')
    assert runs.truncate_log(log, 10) == 2
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [5, 10]
    log.write_text("not json at all\n" + json.dumps({"nostep": 1}) + "\n")
    with pytest.raises(ValueError, match="stats.jsonl:2: not a training log line"):
        runs.truncate_log(log, 10)


def test_lock_refuses_a_second_writer(tmp_path):
    with runs.locked(tmp_path):
        with pytest.raises(runs.RunLockedError, match=f"pid {os.getpid()}"):
            with runs.locked(tmp_path, wait_s=0.2):
                pass
    with runs.locked(tmp_path, wait_s=0.2):  # released on exit
        pass


def test_atomic_write_respects_the_umask_and_cleans_up(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "a.json"
        write_text(path, "{}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    finally:
        os.umask(old)
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "b.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not (tmp_path / "b.txt").exists() and not list(tmp_path.glob(".b.txt.*"))
    (tmp_path / ".latest.pt.abc.tmp.pt").write_text("orphan")
    assert [p.name for p in remove_stale(tmp_path, "latest.pt")] == [".latest.pt.abc.tmp.pt"]
