"""The Python sources are clean under ruff, with the rules of ``[tool.ruff]`` in pyproject.toml.

ruff is in the ``test`` extra (pip install -e '.[test]'); `ruff check --fix` applies the safe fixes.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = ["e2ed2", "baselines", "tests", "benchmarks"]


def _ruff() -> list[str] | None:
    """``python -m ruff`` of this interpreter, else the ``ruff`` executable beside it (or on PATH)."""
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    beside = Path(sys.executable).parent / "ruff"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ruff")
    return [found] if found else None


def test_ruff_check_is_clean():
    ruff = _ruff()
    if ruff is None:
        pytest.skip(f"ruff not installed for {sys.executable} (pip install -e '.[test]')")
    proc = subprocess.run([*ruff, "check", *PATHS], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ruff check {' '.join(PATHS)} found problems:\n{proc.stdout}{proc.stderr}"
