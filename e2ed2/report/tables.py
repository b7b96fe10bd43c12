"""Tables: the main comparison and the ablations, as CSV, Markdown and LaTeX (booktabs).

Each cell is the mean and the 95% t-interval half-width over replicates (sampling-seed blocks,
times training seeds where several exist); every caption states N, the replicates, the feature
networks and the real-data floor (real images against the same reference at the same N).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .aggregate import FLOOR_METHOD
from .ci import summarise
from ..atomic import write_text
from . import health
from .comparisons import matched_variant
from .spec import ABLATION_CLAIMS, ablation_arms

# Readable names of the registered methods (the table's "arm" column)
NAMES = {"real": "real data (floor)", "edm": "EDM (teacher)", "ddpm": "DDPM (ε, linear β)", "ddim": "DDIM (η = 0)",
         "cd": "CD", "ct": "CT", "e2ed2": "E2ED²"}

METRICS = [("fid", "FID ↓"), ("kid", "KID ↓"), ("clip_score", "CLIP score ↑"), ("fd_clip", "FD_CLIP ↓"),
           ("precision", "Precision ↑"), ("recall", "Recall ↑")]
ROW_KEYS = ["method", "variant", "sampler", "steps", "nfe"]


def cell(mean: float, low: float, high: float, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "–"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def digits_for(metric: str) -> int:
    return 4 if metric == "kid" else 3 if metric in ("precision", "recall") else 2


def wide(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows → one row per arm (``arm`` column if present) × (method, variant, sampler, steps,
    nfe), one column per metric + ms/image; a value with one replicate carries no ± (no interval)."""
    keys = (["arm"] if "arm" in summary else []) + ROW_KEYS
    out = []
    for key, g in summary.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key))
        for m, title in METRICS:
            r = g[g["metric"] == m]
            if len(r):
                r = r.iloc[0]
                row[title] = cell(r["mean"], r["ci_low"], r["ci_high"], digits_for(m))
        ms = g["ms_per_image"].dropna()
        row["ms/image"] = f"{ms.mean():.1f}" if len(ms) else "–"
        row["replicates"] = int(g["replicates"].max())
        out.append(row)
    df = pd.DataFrame(out)
    for col in ("steps", "nfe"):
        df[col] = df[col].map(lambda v: "–" if pd.isna(v) else str(int(v)))
    cols = keys + [t for _, t in METRICS if t in df] + ["ms/image", "replicates"]
    return df[cols].fillna("–").rename(columns={"nfe": "NFE"})


def floor_sentence(df: pd.DataFrame, dataset: str) -> str:
    """'Real-data floor (real images vs the reference, N=…): FID a ± b, KID …' or a clear 'not measured'."""
    fl = df[(df["dataset"] == dataset) & (df["method"] == FLOOR_METHOD)]
    if fl.empty:
        return "Real-data floor: not measured (no metric JSON with method 'real')."
    s = summarise(fl)
    parts = [f"{t.split(' ')[0]} {cell(r['mean'], r['ci_low'], r['ci_high'], digits_for(m))}"
             for m, t in METRICS for _, r in s[s["metric"] == m].iterrows()]
    ref = fl["reference"].dropna().unique()
    return (f"Real-data floor (real images scored against the {', '.join(ref) or 'reference'} statistics, "
            f"N={int(fl['n'].max())}): " + "; ".join(parts) + ".")


def provenance(df: pd.DataFrame) -> str:
    """N, replicates and feature networks of the rows in ``df``, as one caption sentence."""
    blocks = sorted(int(b) for b in df["seed_block"].dropna().unique())
    train_seeds = sorted(df["train_seed"].dropna().unique()) if "train_seed" in df else []
    seeds = (f"{len(blocks)} sampling-seed block(s) ({', '.join(map(str, blocks))})" +
             (f" × {len(train_seeds)} training seeds" if len(train_seeds) > 1 else ", one training run per row"))
    nets = "; ".join(sorted({f"{m}: {f} ({b}, {p})" for m, f, b, p in
                             df[["metric", "feature_network", "backend", "preprocessing"]].astype(str).drop_duplicates().values}))
    ns = sorted(int(n) for n in df["n"].dropna().unique())
    return (f"N = {'/'.join(map(str, ns))} images per block. Mean ± 95% t-interval half-width over {seeds}; "
            f"a bare number had one replicate (no interval). Features: {nets}. "
            f"CLIP score = 100·max(cos, 0). ms/image: wall-clock per image on {', '.join(sorted(set(df['hardware'].dropna())) ) or 'unrecorded hardware'}.")


def main_rows(df: pd.DataFrame, dataset: str, spec: dict) -> pd.DataFrame:
    """Baselines (main variant), the method's matched arms (the variant trained with K = n at
    NFE n) and its main variant at every NFE, and the real-data rows (floor, real-image CLIP)."""
    d = df[df["dataset"] == dataset]
    main = d[(d["variant"] == spec["main_variant"]) | (d["method"] == FLOOR_METHOD)]
    matched = [d[(d["method"] == spec["method"]) & (d["variant"] == matched_variant(d, spec, n)) & (d["nfe"] == n)]
               for n in spec["nfe"]]
    return pd.concat([main, *matched]).drop_duplicates(subset=["source", "metric"])


def row_label(r, spec: dict, K: dict) -> str:
    """Readable arm name: 'E2ED² (K=2, matched)', 'DDIM (η=0)', 'real data', …"""
    name = NAMES.get(r["method"], r["method"])
    if r["method"] == FLOOR_METHOD:
        return name
    if r["method"] == spec["method"]:
        k = K.get(r["variant"])
        if r["variant"] == spec["main_variant"] and k is not None and int(r["nfe"]) != k:
            return f"{name} (trained K={k}, one model)"
        return f"{name} (K={k if k is not None else '?'}{', matched' if k == int(r['nfe']) else ''})"
    return name + ("" if r["variant"] == "main" else f" /{r['variant']}")


def main_table(df: pd.DataFrame, dataset: str, spec: dict) -> tuple[pd.DataFrame, str]:
    rows = main_rows(df, dataset, spec)
    if rows[rows["method"] != FLOOR_METHOD].empty:
        raise ValueError(f"no rows for dataset {dataset!r} with variant {spec['main_variant']!r} in the tidy table")
    K = {v: int(k) for v, k in ((ablation_arms(spec, df, "C4") or {}).get("variants") or {}).items()}
    summary = summarise(rows)
    summary.insert(0, "arm", [row_label(r, spec, K) for _, r in summary.iterrows()])
    order = {m: i for i, m in enumerate([FLOOR_METHOD, *NAMES])}
    summary = summary.sort_values(["method", "variant", "nfe"], key=lambda c: c.map(order).fillna(99) if c.name == "method"
                                  else c, kind="stable")
    caption = (f"{dataset}: every arm × NFE. A value without ± had one replicate (one seed block of one training "
               f"run). " + floor_sentence(df, dataset) + " " + provenance(rows))
    return wide(summary).drop(columns=["method", "variant"]), caption


def ablation_table(df: pd.DataFrame, dataset: str, spec: dict, claim: str) -> tuple[pd.DataFrame, str] | None:
    arms = ablation_arms(spec, df, claim)
    if not arms:
        return None
    variants = list(arms["variants"]) if claim == "C4" else [arms["treatment"], arms["control"]]
    rows = df[(df["dataset"] == dataset) & (df["method"] == spec["method"]) & df["variant"].isin(variants)]
    if rows.empty:
        return None
    arms_txt = (", ".join(f"{v} = trained with K={k}" for v, k in arms["variants"].items()) if claim == "C4"
                else f"treatment {arms['treatment']} vs control {arms['control']}")
    caption = f"{dataset}: ablation {claim} of {spec['method']} ({arms_txt}). " + provenance(rows) + " " + floor_sentence(df, dataset)
    return wide(summarise(rows)), caption


# ---- renderers --------------------------------------------------------------------------
def to_markdown(table: pd.DataFrame, caption: str) -> str:
    head = "| " + " | ".join(table.columns) + " |\n|" + "|".join("---" for _ in table.columns) + "|\n"
    body = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in table.itertuples(index=False))
    return head + body + f"\n*{caption}*\n"


def _tex(s: str) -> str:
    s = str(s)
    for a, b in [("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("↓", r"$\downarrow$"), ("↑", r"$\uparrow$"), ("×", r"$\times$"),
                 ("·", r"$\cdot$"), ("–", "--"), ("²", r"$^2$")]:
        s = s.replace(a, b)
    return s


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table environment (needs \\usepackage{booktabs})."""
    cols = "l" * len(ROW_KEYS[:2]) + "r" * (len(table.columns) - 2)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex(caption)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(_tex(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def health_table(df: pd.DataFrame, spec: dict) -> tuple[pd.DataFrame, str]:
    t = health.table(health.checks(df, spec))
    return t, ("Baseline health: each published ordering checked on the mean FID of each arm (main variant). "
               "'missing' = the arms of the check were not sampled; a claim resting on a check that is not 'pass' "
               "is not credible (e2ed2/report/health.py).")


def sigma_error_table(diag: dict) -> tuple[pd.DataFrame, str] | None:
    """Per-σ denoising error of each teacher: x̂₀-MSE (EMA and online) and the implied ε-MSE."""
    if "sigma_error" not in diag:
        return None
    t = diag["sigma_error"]
    wide_t = t.pivot_table(index=["dataset", "model", "sigma"], columns="weights", values=["x0_mse", "eps_mse"])
    wide_t.columns = [f"{a} ({b})" for a, b in wide_t.columns]
    wide_t = wide_t.reset_index()
    base = t.groupby(["dataset", "model"])["mean_predictor_x0_mse"].first()
    wide_t["x0_mse of the data mean"] = [base[(d, m)] for d, m in zip(wide_t["dataset"], wide_t["model"])]
    for c in wide_t.columns[3:]:
        wide_t[c] = wide_t[c].map(lambda v: f"{v:.3g}")
    wide_t["sigma"] = wide_t["sigma"].map(lambda v: f"{v:.3g}")
    n = int(t["n"].max())
    return wide_t, (f"Denoising error per noise level on {n} held-out images (one fixed noise draw): x̂₀-MSE = "
                    f"mean ‖D(x₀ + σn, σ) − x₀‖², ε-MSE = x̂₀-MSE/σ², for the EMA and online weights; the last column "
                    f"is the x̂₀-MSE of predicting the per-pixel data mean (a denoiser worse than it at large σ "
                    f"ignores its input badly). python -m e2ed2.diagnose sigma-error.")


def write_tables(df: pd.DataFrame, spec: dict, out_dir, diag: dict | None = None) -> list[Path]:
    """Every table for every dataset, the health checks and the diagnostics, as <name>.csv, .md
    and .tex; returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {}
    for dataset in sorted(df["dataset"].unique()):
        tables[f"main_{dataset}"] = main_table(df, dataset, spec)
        for claim in ABLATION_CLAIMS:
            t = ablation_table(df, dataset, spec, claim)
            if t is not None:
                tables[f"ablation_{claim}_{dataset}"] = t
    tables["health"] = health_table(df, spec)
    sigma = sigma_error_table(diag or {})
    if sigma is not None:
        tables["sigma_error"] = sigma
    written = []
    for name, (table, caption) in tables.items():
        write_text(out / f"{name}.csv", table.to_csv(index=False))
        write_text(out / f"{name}.md", to_markdown(table, caption))
        write_text(out / f"{name}.tex", to_latex(table, caption, f"tab:{name}"))
        written += [out / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    return written
