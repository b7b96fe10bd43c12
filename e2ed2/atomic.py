"""Atomic file writes: the one place that writes a temp file and renames it into place.

``atomic_write(path)`` yields a temporary path in the destination folder (hidden, same suffix
as ``path`` so libraries that infer the format from the extension — PIL, matplotlib, numpy —
write the right thing). On a clean exit the file gets the permissions a plain ``open()`` would
have given it (0666 minus the umask, so a group-shared results folder stays readable) and is
renamed over ``path`` with ``os.replace`` (atomic on POSIX). On an exception the temp file is
removed and ``path`` is untouched. A process killed mid-write leaves only a hidden
``.<name>.*.tmp<suffix>`` file, which ``remove_stale`` deletes on the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    """The process umask (os.umask can only be read by setting it, so set it back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    """JSON with a trailing newline (indent 2; non-JSON values through ``str``)."""
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def remove_stale(folder: str | os.PathLike, name: str) -> list[Path]:
    """Delete temp files that a killed writer of ``folder/name`` left behind; returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(folder.glob(f"{_temp_prefix(Path(name))}*.tmp*"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
