"""Teacher diagnostics (``python -m e2ed2.diagnose``) for the report: per-σ error and learning curves.

Files are ``<run>/<dataset>/diagnostics/<method>-<variant>/{sigma_error,curve}.csv``; the dataset
and model come from the path.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

KINDS = ("sigma_error", "curve")


def load(files) -> dict[str, pd.DataFrame]:
    """{kind: one table over every file of that kind}, with ``dataset`` and ``model`` columns."""
    parts = {k: [] for k in KINDS}
    for f in map(Path, files):
        if f.stem not in KINDS:
            raise ValueError(f"{f}: a diagnostics file is sigma_error.csv or curve.csv")
        if not f.is_file():
            raise FileNotFoundError(f"diagnostics file not found: {f}")
        model = f.parent.name.replace("-", "/", 1)
        parts[f.stem].append(pd.read_csv(f).assign(dataset=f.parent.parent.parent.name, model=model))
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items() if v}
