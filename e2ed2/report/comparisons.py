"""Which arms the claims compare, and their paired differences (→ ``paired.csv``).

An *arm* is one model (method, variant) sampled with one sampler at one NFE, over all its
seed blocks and training seeds. Each comparison pairs arm A with arm B over the seed blocks
they share and combines images and training seeds with ``paired.two_level`` (its docstring
says how and why). paired.csv holds, per comparison:

- the decision row (``left_out = none``, ``train_seed = all``): the two-level interval and its
  ``outcome`` (better / worse / overlap, or ``single seed`` when an arm has one training seed and
  is not the other's teacher);
- one row per training seed of A (``train_seed = s``): A's seed s against B at the image level
  (B's seed s with paired seeds), for reading — verdicts never rest on them;
- one leave-one-seed-out row per training seed s of an arm with ≥ 2 seeds (``left_out = s``):
  the decision row recomputed without seed s in every arm that has it and another seed (an arm
  with one seed keeps it: leaving it out would remove the arm, not a seed). The claims' stability
  field is built from these.

The comparisons (``spec``: ``e2ed2.report.spec``):
- C1 (FID), C2 (CLIP score): at each NFE n in ``nfe``, the E2ED² arm trained with K = n
  (the C4 variants; the main variant when none is trained with K = n) against every baseline
  arm at NFE n.
- C3: E2ED² matched arms at NFE ≤ 4 against (1 + c3_margin) × the best many-step baseline.
- C4: at each sampling budget K', the variant trained with K = K' against each variant trained
  with another K (and otherwise the same recipe), all sampled at K'.
- C5–C7: treatment against control at every NFE both were sampled at.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import families
from .aggregate import FLOOR_METHOD
from .paired import direction, two_level
from .spec import ablation_arms, c4_variants

REPLICATE_FILES = families.replicate_files()  # metric → (replicate file, bootstrap key)
ARM = ["dataset", "method", "variant", "sampler", "nfe"]
KEY = ["claim", "dataset", "metric", "a", "b", "nfe", "b_scale"]  # one comparison
COLUMNS = [*KEY, "lower_is_better", "left_out", "train_seed", "estimate", "low", "high", "outcome", "design",
           "seeds_a", "seeds_b", "sd_a", "sd_b", "se", "df", "img_low", "img_high", "cells", "replicates", "b_teacher"]
NONE = "none"  # left_out of the rows computed on every training seed
PER_SEED = "per seed (image level)"


def arm_name(r) -> str:
    """'method[/variant] [sampler] @NFE n'."""
    extra = f"/{r['variant']}" if r["variant"] != "main" else ""
    return f"{r['method']}{extra} [{r['sampler']}] @NFE {int(r['nfe'])}"


def load_replicates(df: pd.DataFrame, root: str | Path = ".") -> dict:
    """{(source JSON, metric): B replicate values} from the npz beside each metric JSON."""
    out = {}
    for (source, metric), _ in df[df["method"] != FLOOR_METHOD].groupby(["source", "metric"]):
        if metric not in REPLICATE_FILES:
            continue
        name, key = REPLICATE_FILES[metric]
        path = Path(root) / Path(source).parent / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the paired replicates of {source} are missing (rerun its metrics job)")
        with np.load(path) as z:
            out[(source, metric)] = z[key]
    return out


def cells(rows: pd.DataFrame, reps: dict, metric: str) -> dict:
    """{training seed: {seed block: (value, replicates)}} of one arm."""
    out: dict = {}
    for _, r in rows.iterrows():
        seed, block = int(r["train_seed"]), int(r["seed_block"])
        if block in out.setdefault(seed, {}):
            raise ValueError(f"{r['source']}: a second {metric} set for {arm_name(r)}, training seed {seed}, block "
                             f"{block}; remove the stale metric JSON")
        out[seed][block] = (float(r["value"]), reps[(r["source"], metric)])
    return out


def is_teacher(a_rows: pd.DataFrame, b_rows: pd.DataFrame) -> bool:
    """True when B is one training run whose checkpoint every model of A was fine-tuned from."""
    if "teacher" not in a_rows or "checkpoint" not in b_rows or b_rows["train_seed"].nunique() != 1:
        return False
    ckpt = set(b_rows["checkpoint"].dropna().astype(str))
    return len(ckpt) == 1 and a_rows["teacher"].notna().all() and set(a_rows["teacher"].astype(str)) == ckpt


def _row(base: dict, r, lower: bool, left_out, train_seed, per_seed: bool = False) -> dict:
    nan = math.nan
    return {**base, "lower_is_better": lower, "left_out": left_out, "train_seed": train_seed,
            "estimate": r.estimate, "low": r.img_low if per_seed else r.low, "high": r.img_high if per_seed else r.high,
            "outcome": direction(r.img_low, r.img_high, lower) if per_seed else r.outcome(lower),
            "design": PER_SEED if per_seed else r.design, "seeds_a": r.seeds_a, "seeds_b": r.seeds_b,
            "sd_a": nan if per_seed else r.sd_a, "sd_b": nan if per_seed else r.sd_b, "se": r.se, "df": r.df,
            "img_low": r.img_low, "img_high": r.img_high, "cells": r.cells, "replicates": r.replicates}


def _without(arm: dict, seed: int) -> dict:
    """The arm's cells without training seed ``seed`` — unless it is the arm's only seed."""
    return {k: v for k, v in arm.items() if k != seed} if len(arm) > 1 else arm


def compare(df, reps, claim, metric, a_rows, b_rows, lower: bool, scale: float = 1.0) -> list[dict]:
    """Rows of paired.csv for arm A vs arm B (module docstring): the decision row, one row per
    training seed of A, one leave-one-seed-out row per seed of a multi-seed arm."""
    if a_rows.empty or b_rows.empty:
        return []
    ra, rb = a_rows.iloc[0], b_rows.iloc[0]
    base = {"claim": claim, "dataset": ra["dataset"], "metric": metric, "a": arm_name(ra), "b": arm_name(rb),
            "nfe": int(ra["nfe"]), "b_scale": scale}
    A, B = cells(a_rows, reps, metric), cells(b_rows, reps, metric)
    kw = {"paired_seeds": ra["method"] == rb["method"], "b_fixed": is_teacher(a_rows, b_rows), "scale": scale}
    base["b_teacher"] = kw["b_fixed"]
    full = two_level(A, B, **kw)
    if full is None:
        return []
    out = [_row(base, full, lower, NONE, "all")]
    if len(A) > 1:  # what each training seed of A says on its own (image level)
        for s in sorted(A):
            one = two_level({s: A[s]}, {s: B[s]} if kw["paired_seeds"] and s in B else B, scale=scale)
            if one is not None:
                out.append(_row(base, one, lower, NONE, s, per_seed=True))
    for s in sorted({s for arm in (A, B) if len(arm) > 1 for s in arm}):  # leave one training seed out
        loo = two_level(_without(A, s), _without(B, s), **kw)
        if loo is not None:
            out.append(_row(base, loo, lower, s, "all"))
    return out


def _rows(df, metric, **eq) -> pd.DataFrame:
    r = df[df["metric"] == metric]
    for k, v in eq.items():
        r = r[r[k].isin(v)] if isinstance(v, (list, tuple, set)) else r[r[k] == v]
    return r


def baselines(df: pd.DataFrame, spec: dict) -> list[str]:
    return list(spec["baselines"] or sorted(set(df["method"]) - {spec["method"], FLOOR_METHOD}))


def matched_variant(df: pd.DataFrame, spec: dict, nfe: int) -> str:
    """The E2ED² variant trained with K = nfe (C4's variants: the main recipe with another K),
    else the main variant."""
    K = c4_variants(spec, df)
    if K.get(spec["main_variant"]) == int(nfe):
        return spec["main_variant"]
    return next((v for v, k in sorted(K.items()) if k == int(nfe)), spec["main_variant"])


def many_step_reference(df, spec, dataset) -> pd.DataFrame:
    """Rows of the best (lowest mean FID) baseline arm at its largest NFE ≥ many_steps_nfe."""
    B = _rows(df, "fid", dataset=dataset, method=baselines(df, spec), variant=spec["main_variant"])
    B = B[B["nfe"] >= spec["many_steps_nfe"]]
    if B.empty:
        return B
    B = B[B["nfe"] == B.groupby("method")["nfe"].transform("max")]
    best = B.groupby(["method", "sampler", "nfe"])["value"].mean().idxmin()
    return B[(B["method"] == best[0]) & (B["sampler"] == best[1]) & (B["nfe"] == best[2])]


def all_comparisons(df: pd.DataFrame, reps: dict, spec: dict) -> pd.DataFrame:
    """Every paired comparison the claims read (see module docstring)."""
    method, out = spec["method"], []
    df = df[df["method"] != FLOOR_METHOD]
    for dataset in sorted(df["dataset"].unique()):
        d = df[df["dataset"] == dataset]
        for metric, claim in (("fid", "C1"), ("clip_score", "C2")):
            lower = families.METRICS[metric].lower_is_better
            for nfe in spec["nfe"]:
                A = _rows(d, metric, method=method, variant=matched_variant(d, spec, nfe), nfe=nfe)
                baseline_rows = _rows(d, metric, method=baselines(d, spec), variant=spec["main_variant"], nfe=nfe)
                for _, B in baseline_rows.groupby(ARM):
                    for _, Aa in A.groupby(ARM):
                        out += compare(d, reps, claim, metric, Aa, B, lower)
        ref = many_step_reference(d, spec, dataset)
        for nfe in [n for n in spec["nfe"] if n <= 4]:
            A = _rows(d, "fid", method=method, variant=matched_variant(d, spec, nfe), nfe=nfe)
            for _, Aa in A.groupby(ARM):
                out += compare(d, reps, "C3", "fid", Aa, ref, True, 1 + spec["c3_margin"])
        out += _ablations(d, reps, spec)
    return pd.DataFrame(out, columns=COLUMNS)


def _ablations(d, reps, spec) -> list[dict]:
    method, out = spec["method"], []
    K = c4_variants(spec, d)
    if len(K) > 1:
        for nfe in sorted(d[(d["method"] == method) & d["variant"].isin(list(K))]["nfe"].dropna().unique()):
            if not any(k == nfe for k in K.values()):
                continue
            A = _rows(d, "fid", method=method, variant=matched_variant(d, spec, nfe), nfe=nfe)
            for v in sorted(v for v, k in K.items() if k != nfe):
                for _, Aa in A.groupby(ARM):
                    for _, Bb in _rows(d, "fid", method=method, variant=v, nfe=nfe).groupby(ARM):
                        out += compare(d, reps, "C4", "fid", Aa, Bb, True)
    for cid in ("C5", "C6", "C7"):
        arms = ablation_arms(spec, d, cid)
        if not arms:
            continue
        T = _rows(d, "fid", method=method, variant=arms["treatment"])
        C = _rows(d, "fid", method=method, variant=arms["control"])
        for nfe in sorted(set(T["nfe"].dropna()) & set(C["nfe"].dropna())):
            for _, Tt in T[T["nfe"] == nfe].groupby(ARM):
                for _, Cc in C[C["nfe"] == nfe].groupby(ARM):
                    out += compare(d, reps, cid, "fid", Tt, Cc, True)
    return out
