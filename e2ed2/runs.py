"""A training run's folder: its identity, its lock and its log.

Identity: the run hash is the SHA-256 of everything that determines the weights — the resolved
method, network and training knobs (not logging, checkpoint cadence or threads), the data (the
file's content hash, or the built-in name: ``e2ed2.data_identity``), the latent block, the world size, and for a
student the teacher's own run hash and step. Checkpoints carry it; resuming a folder whose
checkpoint has another hash is refused (or, when asked, the folder is restarted), with the
changed keys named, so a changed knob can never silently reuse old weights.

Lock: one trainer per folder (``fcntl.flock`` on ``DIR/.lock``; the kernel drops it when the
process dies, however it dies). Log: ``stats.jsonl`` belongs to the run — appended one whole
line at a time, and cut back to the checkpoint's step on resume, so after any crash and resume
every logged step appears exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .atomic import remove_stale, write_text
from .data_identity import identity as data_identity

# TrainConfig keys that change neither the weights nor the folder's outputs (excluded from the
# identity). `snapshots` stays in: snapshots are taken while training, so adding one needs a new run.
NON_WEIGHT_TRAIN_KEYS = ("ckpt_every", "log_every", "threads", "device")


class RunMismatchError(RuntimeError):
    """The folder holds a run of another configuration."""


class RunLockedError(RuntimeError):
    """Another trainer is writing the folder."""


def identity(method_cfg: dict, net_cfg: dict, train_cfg: dict, data: str, *, latent=None, world_size: int = 1,
             teacher: dict | None = None) -> dict:
    """The dict whose hash is the run hash (see module docstring); the teacher path is replaced
    by the teacher's identity, since the path stays the same when the teacher retrains."""
    method = {k: v for k, v in method_cfg.items() if k != "teacher"}
    return {
        "method": method, "net": net_cfg,
        "train": {k: v for k, v in train_cfg.items() if k not in NON_WEIGHT_TRAIN_KEYS},
        "data": data_identity(data), "latent": latent, "world_size": world_size, "teacher": teacher,
    }


def run_hash(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two identities, as 'key: old → new'."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b, name = old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, name + ".")
        elif a != b:
            out.append(f"{name}: {a!r} → {b!r}")
    return out


@contextlib.contextmanager
def writing(folder: Path, outputs, is_main: bool = True, wait_s: float = 30.0) -> Iterator[None]:
    """The block in which this process (rank 0; other ranks write nothing) is ``folder``'s one
    writer: its lock held (``locked``), and the temp files that a killed writer of any of
    ``outputs`` left behind removed first."""
    if not is_main:
        yield
        return
    with locked(folder, wait_s):
        for name in outputs:
            remove_stale(folder, name)
        yield


@contextlib.contextmanager
def locked(folder: Path, wait_s: float = 30.0) -> Iterator[None]:
    """Hold the folder's lock for the block; wait up to ``wait_s`` for a previous holder to exit."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    with open(path, "a+") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    f.seek(0)
                    holder = f.read().strip() or "unknown"
                    raise RunLockedError(f"{folder} is being written by another process (pid {holder}); wait for "
                                         f"it to finish or stop it, then rerun") from None
                time.sleep(0.5)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def truncate_log(path: Path, step: int) -> int:
    """Keep the log lines of steps ≤ ``step`` (they match the checkpoint resumed from); drop later
    ones and a torn last line from a killed writer. Returns the lines kept."""
    if not path.exists():
        return 0
    keep, lines = [], path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n < len(lines):  # only the last line can be torn by a killed writer: say so, not silently
                print(f"warning: {path}:{n}: a damaged log line, dropped: {line[:80]!r}", file=sys.stderr)
            continue  # a torn line: the writer was killed mid-line (it is after the checkpoint)
        if not isinstance(rec, dict) or "step" not in rec:
            raise ValueError(f"{path}:{n}: not a training log line: {line[:80]!r}")
        if rec["step"] <= step:
            keep.append(line)
    write_text(path, "".join(line + "\n" for line in keep))
    return len(keep)
