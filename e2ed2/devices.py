"""Spread single-GPU jobs over the GPUs of one node: each process claims a free GPU slot.

Snakemake counts GPUs (``--resources gpu=N``) but never says WHICH GPU a job gets, and it does
not set ``CUDA_VISIBLE_DEVICES``; without help every job would run on ``cuda:0``. So a process
that resolves its device to CUDA on its own (``--device auto`` or ``cuda``, no torchrun in
charge, several GPUs visible, ``CUDA_VISIBLE_DEVICES`` not set by the user or the scheduler)
claims the first free slot by taking an exclusive ``fcntl.flock`` on a lock file per GPU:

    $E2ED2_GPU_LOCK_DIR (default /tmp/e2ed2-gpu-locks)/gpu<i>.lock        slot 0 of GPU i
                                                     /gpu<i>.s<j>.lock     slot j ≥ 1

and keeps it until the process exits: the kernel drops a flock when its file is closed, so a
crashed or killed job frees its GPU at once and no stale lock survives. Slots are filled GPU
by GPU before any GPU gets a second job (with ``E2ED2_GPU_SLOTS=S`` jobs per GPU, default 1;
oversubscribe small jobs with ``--resources gpu=N*S``). With one GPU or none nothing happens.

When every slot is taken the claimer WAITS (polling) until one frees, printing one line on
stderr: under Snakemake with ``--resources gpu=N*S`` this only happens when something outside
the workflow holds slots. ``wait=False`` (or ``timeout``) gives up instead and the caller keeps
its default device.

A job that needs several GPUs (a torchrun training job, gpu > 1) claims every slot of that many
GPUs and pins them by ``CUDA_VISIBLE_DEVICES`` before torchrun starts:

    python -m e2ed2.devices run --gpus 2 -- torchrun --nproc_per_node 2 -m e2ed2.train ...

The locks' file descriptors are inherited across ``exec`` and held by the launched command.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOCK_DIR_ENV = "E2ED2_GPU_LOCK_DIR"
SLOTS_ENV = "E2ED2_GPU_SLOTS"
DEFAULT_LOCK_DIR = "/tmp/e2ed2-gpu-locks"
# variables torchrun (torch.distributed.run) sets for its workers: a rank layout is in charge
TORCHRUN_VARS = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID", "GROUP_RANK")


@dataclass
class Claim:
    """One held GPU slot: the CUDA index and the open lock file that holds it."""

    index: int
    slot: int
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


_HELD: Claim | None = None  # this process's claim, kept for the life of the process


def lock_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)


def slots_per_gpu(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    value = env.get(SLOTS_ENV) or "1"
    try:
        slots = int(value)
    except ValueError:
        raise ValueError(f"${SLOTS_ENV}={value!r}: expected a positive integer (jobs per GPU)") from None
    if slots < 1:
        raise ValueError(f"${SLOTS_ENV}={value!r}: expected a positive integer (jobs per GPU)")
    return slots


def visible_gpus() -> int:
    """CUDA devices torch sees (0 without CUDA); torch is imported only here."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def lock_path(directory: Path, index: int, slot: int) -> Path:
    return directory / (f"gpu{index}.lock" if slot == 0 else f"gpu{index}.s{slot}.lock")


def should_spread(device: str, n_gpus: int, env: Mapping[str, str] | None = None) -> bool:
    """True when this process should pick its own GPU: device 'auto'/'cuda' without an index,
    no torchrun rank layout, more than one GPU, and no CUDA_VISIBLE_DEVICES from the user."""
    env = os.environ if env is None else env
    if device not in ("auto", "cuda"):
        return False  # cpu, or an explicit cuda:N
    if any(var in env for var in TORCHRUN_VARS) or int(env.get("WORLD_SIZE", "1") or 1) > 1:
        return False  # torchrun maps ranks to devices (cuda:LOCAL_RANK)
    if "CUDA_VISIBLE_DEVICES" in env:
        return False  # the user (or Slurm) already chose
    return n_gpus > 1


def _open_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held by another open file (process, thread or fd)
        os.close(fd)
        return -1
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
    return fd


def _prepare(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    try:  # shared by every user of the node: world-writable, sticky like /tmp
        os.chmod(directory, 0o1777)
    except PermissionError:
        pass
    return directory


def try_claim(n_gpus: int, directory: str | os.PathLike | None = None, slots: int = 1) -> Claim | None:
    """The first free slot, taken now (slot 0 of every GPU, then slot 1, ...), or None if all
    ``n_gpus * slots`` are held. Not cached: each call takes another slot (tests, wrappers)."""
    directory = _prepare(Path(directory) if directory is not None else lock_dir())
    for slot in range(slots):
        for index in range(n_gpus):
            path = lock_path(directory, index, slot)
            fd = _open_lock(path)
            if fd >= 0:
                return Claim(index, slot, path, fd)
    return None


def claim(n_gpus: int, directory: str | os.PathLike | None = None, slots: int = 1, *, wait: bool = True,
          timeout: float | None = None, poll: float = 0.25) -> Claim | None:
    """``try_claim``, waiting for a slot to free when all are held (until ``timeout`` seconds)."""
    start, told = time.monotonic(), False
    while True:
        got = try_claim(n_gpus, directory, slots)
        if got is not None or not wait or (timeout is not None and time.monotonic() - start >= timeout):
            return got
        if not told:
            print(f"e2ed2.devices: all {n_gpus * slots} GPU slots in {directory or lock_dir()} are held; "
                  "waiting for one to free", file=sys.stderr, flush=True)
            told = True
        time.sleep(poll)


def claim_gpu(device: str = "auto", default: int | None = None, *, n_gpus: int | None = None,
              env: Mapping[str, str] | None = None, wait: bool = True, timeout: float | None = None) -> int | None:
    """The CUDA index this process should use, claimed once and held until the process exits.

    Returns ``default`` (no lock taken) when spreading does not apply: a CPU or explicit
    ``cuda:N`` device, torchrun in charge, ``CUDA_VISIBLE_DEVICES`` set, or fewer than two GPUs
    (``n_gpus``, default ``torch.cuda.device_count()``; tests inject it). Also returns
    ``default`` when ``wait=False``/``timeout`` gives up on a full node."""
    global _HELD
    if _HELD is not None:
        return _HELD.index
    env = os.environ if env is None else env
    if device not in ("auto", "cuda"):
        return default
    if n_gpus is None:
        if any(var in env for var in TORCHRUN_VARS) or "CUDA_VISIBLE_DEVICES" in env:
            return default  # decided without importing torch
        n_gpus = visible_gpus()
    if not should_spread(device, n_gpus, env):
        return default
    got = claim(n_gpus, lock_dir(env), slots_per_gpu(env), wait=wait, timeout=timeout)
    if got is None:
        return default
    _HELD = got
    return got.index


def release_gpu() -> None:
    """Give this process's slot back before exit (tests; a long-lived process changing device)."""
    global _HELD
    if _HELD is not None:
        _HELD.release()
        _HELD = None


def claim_gpus(count: int, n_gpus: int, directory: str | os.PathLike | None = None, slots: int = 1, *,
               wait: bool = True, timeout: float | None = None, poll: float = 0.25) -> list[Claim] | None:
    """``count`` whole GPUs (every slot of each), for a job that runs one rank per GPU; None if
    ``wait=False``/``timeout`` finds fewer free. Partial grabs are released before retrying."""
    if count > n_gpus:
        raise ValueError(f"{count} GPUs asked for but only {n_gpus} visible")
    directory = _prepare(Path(directory) if directory is not None else lock_dir())
    start, told = time.monotonic(), False
    while True:
        held: list[Claim] = []
        for index in range(n_gpus):
            whole = []
            for slot in range(slots):
                fd = _open_lock(lock_path(directory, index, slot))
                if fd < 0:
                    break
                whole.append(Claim(index, slot, lock_path(directory, index, slot), fd))
            if len(whole) == slots:
                held += whole
                if len({c.index for c in held}) == count:
                    return held
            else:
                for c in whole:
                    c.release()
        for c in held:
            c.release()
        if not wait or (timeout is not None and time.monotonic() - start >= timeout):
            return None
        if not told:
            print(f"e2ed2.devices: fewer than {count} whole GPUs free in {directory}; waiting", file=sys.stderr,
                  flush=True)
            told = True
        time.sleep(poll)


def _run(args) -> int:
    """Claim ``--gpus`` whole GPUs, pin them with CUDA_VISIBLE_DEVICES and exec the command."""
    env = dict(os.environ)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("e2ed2.devices run: no command given after --")
    n_gpus = args.n_gpus if args.n_gpus is not None else (0 if "CUDA_VISIBLE_DEVICES" in env else visible_gpus())
    if "CUDA_VISIBLE_DEVICES" not in env and n_gpus > 1 and args.gpus >= 1:
        held = claim_gpus(args.gpus, n_gpus, lock_dir(env), slots_per_gpu(env))
        for c in held:
            os.set_inheritable(c.fd, True)  # the exec'd command (torchrun) holds the locks
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in sorted({c.index for c in held}))
    os.execvpe(command[0], command, env)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2ed2.devices", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="claim whole GPUs, set CUDA_VISIBLE_DEVICES, exec a command")
    r.add_argument("--gpus", type=int, required=True, help="GPUs the command uses (one rank each)")
    r.add_argument("--n-gpus", type=int, default=None, help="GPUs on the node (default: torch's count)")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = p.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
