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
from .files import write_text_atomic
from .spec import ABLATION_CLAIMS, ablation_arms

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
    """Summary rows → one row per (method, variant, sampler, steps, nfe), one column per metric + ms/image."""
    out = []
    for key, g in summary.groupby(ROW_KEYS, sort=True, dropna=False):
        row = dict(zip(ROW_KEYS, key))
        for m, title in METRICS:
            r = g[g["metric"] == m]
            if len(r):
                r = r.iloc[0]
                row[title] = cell(r["mean"], r["ci_low"], r["ci_high"], digits_for(m))
        ms = g["ms_per_image"].dropna()
        row["ms/image"] = f"{ms.mean():.1f}" if len(ms) else "–"
        out.append(row)
    df = pd.DataFrame(out)
    for col in ("steps", "nfe"):
        df[col] = df[col].map(lambda v: "–" if pd.isna(v) else str(int(v)))
    cols = ROW_KEYS + [t for _, t in METRICS if t in df] + ["ms/image"]
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


def main_table(df: pd.DataFrame, dataset: str, spec: dict) -> tuple[pd.DataFrame, str]:
    rows = df[(df["dataset"] == dataset) & (df["method"] != FLOOR_METHOD) & (df["variant"] == spec["main_variant"])]
    if rows.empty:
        raise ValueError(f"no rows for dataset {dataset!r} with variant {spec['main_variant']!r} in the tidy table")
    caption = (f"{dataset}: methods × NFE, variant '{spec['main_variant']}'. " + provenance(rows) + " "
               + floor_sentence(df, dataset))
    return wide(summarise(rows)).drop(columns=["variant"]), caption


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


def write_tables(df: pd.DataFrame, spec: dict, out_dir) -> list[Path]:
    """Every table for every dataset as <name>.csv, .md and .tex; returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for dataset in sorted(df["dataset"].unique()):
        tables = {f"main_{dataset}": main_table(df, dataset, spec)}
        for claim in ABLATION_CLAIMS:
            t = ablation_table(df, dataset, spec, claim)
            if t is not None:
                tables[f"ablation_{claim}_{dataset}"] = t
        for name, (table, caption) in tables.items():
            write_text_atomic(out / f"{name}.csv", table.to_csv(index=False))
            write_text_atomic(out / f"{name}.md", to_markdown(table, caption))
            write_text_atomic(out / f"{name}.tex", to_latex(table, caption, f"tab:{name}"))
            written += [out / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    return written
