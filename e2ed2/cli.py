"""What every command-line entry point shares.

- ``parser(module, description)``: an argparse parser whose usage line reads
  ``python -m <module>`` and whose help shows every default.
- ``run(main, argv)``: expected failures — a bad config key or value, a missing or corrupt
  file, a run folder of another configuration — print ONE line ``error: …`` (naming the input
  and the fix) and exit with 2; a run that fails at run time (divergence, non-finite samples,
  an interrupted or locked run) exits with 1. Tracebacks are for bugs, or with E2ED2_DEBUG=1.
- ``progress(items, desc)``: a tqdm bar on a terminal, one line per item in a log file
  (``eta_line``: ``desc: i/n (p%), elapsed h:mm:ss, ETA h:mm:ss``).
- ``process_gone(pid)``: the test a trainer polls to stop when the workflow that started it died.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .checkpoint import CheckpointError
from .config import ConfigError
from .runs import RunLockedError, RunMismatchError

DEBUG_ENV = "E2ED2_DEBUG"


class RunFailed(RuntimeError):
    """A run that started correctly but could not finish (the message says why and what is kept)."""


INPUT_ERRORS = (ConfigError, CheckpointError, FileNotFoundError, NotADirectoryError, RunMismatchError, ValueError)
RUN_ERRORS = (RunFailed, RunLockedError)


def parser(module: str, description: str, **kwargs) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"python -m {module}", description=description,
                                   formatter_class=kwargs.pop("formatter_class",
                                                              argparse.ArgumentDefaultsHelpFormatter),
                                   **kwargs)


def out_path(kind: str) -> Callable[[str], str]:
    """An argparse ``type`` for ``--out``: a ``folder`` or a ``file`` path that can be written —
    checked when the arguments are parsed, before any work (no sampling 200 images to then
    fail on a name taken by a file)."""

    def check(text: str) -> str:
        p = Path(text)
        for parent in p.parents:
            if parent.exists() and not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
        if kind == "folder" and p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a file; --out takes a folder (a new name, or delete the file)")
        if kind == "file" and p.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; --out takes a file path inside it")
        return text

    check.__name__ = f"{kind} path"  # argparse names the type in its message
    return check


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """``main(argv)`` with expected errors turned into one ``error:`` line (see module docstring)."""
    if os.environ.get(DEBUG_ENV):
        return main(argv)
    try:
        return main(argv)
    except INPUT_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RUN_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's code for SIGINT; atomic writes left nothing half-written
        print("error: interrupted", file=sys.stderr)
        return 130


def process_gone(pid: int) -> bool:
    """True when process ``pid`` no longer runs (exited, or a zombie waiting to be reaped)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        return state in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def progress(items: Iterable, desc: str) -> Iterator:
    """Iterate ``items`` with progress on stderr: tqdm on a terminal; otherwise (a Snakemake log)
    one line per finished item, ``desc: i/n (seconds)``."""
    items = list(items)
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, dynamic_ncols=True)
        return
    t0 = time.perf_counter()
    for i, item in enumerate(items, 1):
        yield item
        print(eta_line(desc, i, len(items), time.perf_counter() - t0), file=sys.stderr, flush=True)


def eta_line(desc: str, done: int, total: int, elapsed_s: float, *details: str, eta_s: float | None = None) -> str:
    """One plain progress line for a log file: ``desc: done/total (p%), details…, elapsed h:mm:ss,
    ETA h:mm:ss`` (``eta_s`` default: the mean rate so far, extrapolated)."""
    eta = eta_s if eta_s is not None else (total - done) * elapsed_s / done if done > 0 else math.nan
    parts = [f"{desc}: {done}/{total} ({100 * done / max(total, 1):.0f}%)", *details,
             f"elapsed {hms(elapsed_s)}", f"ETA {hms(eta)}"]
    return ", ".join(parts)


def hms(seconds: float) -> str:
    """Seconds as ``h:mm:ss`` (``?`` when not known yet)."""
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"
