"""Which arms the claims compare, and their paired differences (→ ``paired.csv``).

An *arm* is one model (method, variant) sampled with one sampler at one NFE, over all its
seed blocks and training seeds. Each comparison pairs arm A with arm B on every seed block
they share and every (training seed of A, training seed of B), and combines the units with
``paired.paired`` (bootstrap over images). It is written once for all training seeds of A
(``train_seed = all``) and once per training seed of A, so a claim can require its outcome to
hold for every training seed.

The comparisons (``spec``: ``e2ed2.report.spec``):
- C1 (FID), C2 (CLIP score): at each NFE n in ``nfe``, the E2ED² arm trained with K = n
  (the C4 variants; the main variant when none is trained with K = n) against every baseline
  arm at NFE n.
- C3: E2ED² matched arms at NFE ≤ 4 against (1 + c3_margin) × the best many-step baseline.
- C4: at each sampling budget K', the variant trained with K = K' against each variant trained
  with another K, all sampled at K'.
- C5–C7: treatment against control at every NFE both were sampled at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import FLOOR_METHOD
from .paired import paired
from .spec import ablation_arms

REPLICATE_FILES = {"fid": ("features.npz", "fid_boot"), "clip_score": ("clip_scores.npz", "clip_score_boot")}
ARM = ["dataset", "method", "variant", "sampler", "nfe"]
COLUMNS = ["claim", "dataset", "metric", "a", "b", "nfe", "b_scale", "train_seed", "estimate", "low", "high",
           "units", "replicates", "lower_is_better"]


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


def _units(a: pd.DataFrame, b: pd.DataFrame, reps: dict, metric: str, scale: float):
    """(value_A, reps_A, scale·value_B, scale·reps_B) for every shared block × seed pair."""
    units = []
    for _, ra in a.iterrows():
        for _, rb in b[b["seed_block"] == ra["seed_block"]].iterrows():
            units.append((ra["value"], reps[(ra["source"], metric)],
                          scale * rb["value"], scale * reps[(rb["source"], metric)]))
    return units


def compare(df, reps, claim, metric, a_rows, b_rows, lower: bool, scale: float = 1.0) -> list[dict]:
    """Rows of paired.csv for arm A vs arm B: all training seeds of A, then each one."""
    if a_rows.empty or b_rows.empty:
        return []
    ra, rb = a_rows.iloc[0], b_rows.iloc[0]
    base = {"claim": claim, "dataset": ra["dataset"], "metric": metric, "a": arm_name(ra), "b": arm_name(rb),
            "nfe": int(ra["nfe"]), "b_scale": scale, "lower_is_better": lower}
    out = []
    seeds = sorted(a_rows["train_seed"].dropna().unique())
    for seed in ["all", *(seeds if len(seeds) > 1 else [])]:
        rows = a_rows if seed == "all" else a_rows[a_rows["train_seed"] == seed]
        units = _units(rows, b_rows, reps, metric, scale)
        if units:
            p = paired(units)
            out.append({**base, "train_seed": seed if seed == "all" else int(seed), "estimate": p.estimate,
                        "low": p.low, "high": p.high, "units": p.units, "replicates": p.replicates})
    return out


def _rows(df, metric, **eq) -> pd.DataFrame:
    r = df[df["metric"] == metric]
    for k, v in eq.items():
        r = r[r[k].isin(v)] if isinstance(v, (list, tuple, set)) else r[r[k] == v]
    return r


def baselines(df: pd.DataFrame, spec: dict) -> list[str]:
    return list(spec["baselines"] or sorted(set(df["method"]) - {spec["method"], FLOOR_METHOD}))


def matched_variant(df: pd.DataFrame, spec: dict, nfe: int) -> str:
    """The E2ED² variant trained with K = nfe (C4's variants), else the main variant."""
    arms = ablation_arms(spec, df, "C4")
    for variant, k in (arms or {}).get("variants", {}).items():
        if int(k) == int(nfe):
            return variant
    return spec["main_variant"]


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
        for metric, claim, lower in (("fid", "C1", True), ("clip_score", "C2", False)):
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
    c4 = ablation_arms(spec, d, "C4")
    if c4:
        K = {v: int(k) for v, k in c4["variants"].items()}
        for nfe in sorted(d[(d["method"] == method) & d["variant"].isin(list(K))]["nfe"].dropna().unique()):
            matched = [v for v, k in K.items() if k == nfe]
            if not matched:
                continue
            A = _rows(d, "fid", method=method, variant=matched[0], nfe=nfe)
            for v in (v for v, k in K.items() if k != nfe):
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
