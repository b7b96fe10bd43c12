"""Training logs: every ``stats.jsonl`` under a folder → one long table, and the divergence rule.

A run folder is ``<root>/<dataset>/train/<method>/<variant>/s<seed>/`` (the workflow's layout) or,
for runs outside it, ``<root>/<method>[/<variant>]``; the method name and dataset come from the
run's ``config.json`` when present.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

LATE_OVER_MID = 3.0  # divergence: median |loss| over the last quarter > 3 × that over the second quarter
# Logged rows per quarter the blow-up test needs: with fewer, one noisy row decides it (an E2ED²
# generator loss carries the adversarial term, which swings 4× between log lines of a stable run)
MIN_ROWS_PER_QUARTER = 3


def load_runs(root) -> pd.DataFrame:
    """Long table: run, method, variant, dataset, step, images_seen, loss (name), value."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training folder not found: {root}")
    rows = []
    for path in sorted(root.rglob("stats.jsonl")):
        parts = path.parent.relative_to(root).parts
        if "train" in parts and len(parts) >= parts.index("train") + 3:
            i = parts.index("train")
            dataset, method, variant = parts[i - 1] if i else "?", parts[i + 1], parts[i + 2]
        else:
            dataset, method, variant = ("?", parts[0] if parts else path.parent.name,
                                        parts[1] if len(parts) >= 2 else "main")
        cfg_path = path.parent / "config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            method = (cfg.get("method") or {}).get("name", method)
            dataset = Path(str(cfg.get("data", "?"))).stem
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            for k, v in rec.items():
                if k.startswith("loss_"):
                    rows.append({"run": "/".join(parts) or path.parent.name, "method": method, "variant": variant,
                                 "dataset": dataset,
                                 "step": rec["step"], "images_seen": rec.get("images_seen"), "loss": k[5:],
                                 "value": float(v) if v is not None else math.nan})
    return pd.DataFrame(rows, columns=["run", "method", "variant", "dataset", "step", "images_seen", "loss", "value"])


def diverged(run: pd.DataFrame) -> list[str]:
    """Reasons a run's logs show divergence (empty list = stable): a non-finite loss, or — where each
    quarter of the log has ``MIN_ROWS_PER_QUARTER`` rows — a late blow-up of a loss (median |loss| of
    the last quarter > ``LATE_OVER_MID`` × that of the second quarter; medians: robust to one spike)."""
    reasons = []
    for loss, g in run.sort_values("step").groupby("loss"):
        v = g["value"].to_numpy()
        if not all(math.isfinite(x) for x in v):
            reasons.append(f"loss_{loss} non-finite")
            continue
        q = len(v) // 4
        if q >= MIN_ROWS_PER_QUARTER:
            mid, late = abs(float(np.median(v[q:2 * q]))), abs(float(np.median(v[-q:])))
            if late > LATE_OVER_MID * mid:
                reasons.append(f"loss_{loss}: last-quarter median |loss| {late:.3g} > {LATE_OVER_MID:g}× "
                               f"second-quarter {mid:.3g}")
    return reasons


def logged_rows(run: pd.DataFrame) -> int:
    """The fewest logged rows of any loss of a run (0 without logs)."""
    rows = run.groupby("loss")["step"].count()
    return int(rows.min()) if len(rows) else 0


def blowup_tested(run: pd.DataFrame) -> bool:
    """Whether the log is long enough for ``diverged``'s blow-up test (else only finiteness is checked)."""
    return logged_rows(run) >= 4 * MIN_ROWS_PER_QUARTER
