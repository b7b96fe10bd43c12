"""Leave-one-seed-out stability of the verdicts (issue #24): which seeds to leave out, and the
tables without them.

A verdict is recomputed once per training seed s of the dataset's multi-seed arms, with s dropped
from every arm (dataset, method, variant) that has it and another seed — an arm with one seed keeps
it: leaving it out would remove the arm, not a seed. The paired comparisons come from the
leave-one-out rows of paired.csv (``comparisons``: ``left_out = s``), the tidy table and the
training logs are filtered here. ``claims.evaluate`` records per claim and dataset
{agree, of, label, loo_verdicts}: ``stable`` when every recomputation gives the full verdict,
``unstable`` when one does not, ``n/a`` when no arm has two training seeds.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .aggregate import FLOOR_METHOD
from .comparisons import KEY, NONE

STABLE, UNSTABLE, NOT_ASSESSED = "stable", "unstable", "n/a"


def str_cols(pairs: pd.DataFrame) -> pd.DataFrame:
    """left_out / train_seed as strings ('none', 'all', '0', …) whether read from CSV or built in memory."""
    def s(x):
        return str(int(x)) if isinstance(x, (int, float, np.integer, np.floating)) and math.isfinite(x) else str(x)
    out = pairs.copy()
    for c in ("left_out", "train_seed"):
        out[c] = out[c].map(s) if c in out else (NONE if c == "left_out" else "all")
    return out


def decision_rows(pairs: pd.DataFrame, left_out: str = NONE) -> pd.DataFrame:
    """The decision row of every comparison: recomputed without training seed ``left_out`` where
    paired.csv has that row, else the full one."""
    full = pairs[(pairs["left_out"] == NONE) & (pairs["train_seed"] == "all")]
    if left_out == NONE:
        return full
    loo = pairs[pairs["left_out"] == left_out]
    have = set(map(tuple, loo[KEY].astype(str).to_numpy()))
    keep = ~full[KEY].astype(str).apply(tuple, axis=1).isin(have)
    return pd.concat([full[keep], loo], ignore_index=True)


def multi_seed_arms(df: pd.DataFrame) -> pd.Series:
    """Boolean per row of ``df``: its model (dataset, method, variant) has ≥ 2 training seeds."""
    models = ["dataset", "method", "variant"]
    return (df["method"] != FLOOR_METHOD) & (df.groupby(models)["train_seed"].transform("nunique") > 1)


def loo_seeds(df: pd.DataFrame) -> dict[str, list[int]]:
    """{dataset: training seeds of its multi-seed arms}: the leave-one-out recomputations."""
    sub = df[multi_seed_arms(df)]
    return {str(d): sorted(int(s) for s in g["train_seed"].dropna().unique()) for d, g in sub.groupby("dataset")}


def _run_seed(run: str) -> int | None:
    """The training seed of a run folder ('…/e2ed2/main/s1' → 1), None when it names none."""
    part = next((p for p in reversed(re.split(r"[/\\]", str(run))) if re.fullmatch(r"s\d+", p)), None)
    return int(part[1:]) if part else None


def without_seed(df: pd.DataFrame, runs, seed: int):
    """The tidy table and training logs with training seed ``seed`` left out of every multi-seed arm."""
    df = df[~(multi_seed_arms(df) & (df["train_seed"] == seed))]
    if runs is not None and len(runs):
        s = runs["run"].map(_run_seed)
        many = s.groupby([runs["dataset"], runs["method"], runs["variant"]]).transform("nunique") > 1
        runs = runs[~(many & (s == seed))]
    return df, runs


def stability_text(st: dict | None) -> str:
    """'stable 3/3', 'unstable: 1/3', or '' (no arm with two training seeds)."""
    if not st or st.get("label") == NOT_ASSESSED:
        return ""
    return f"stable {st['agree']}/{st['of']}" if st["label"] == STABLE else f"unstable: {st['agree']}/{st['of']}"
