"""Figures (seaborn, PNG + PDF): quality vs NFE and vs wall-clock, FID vs CLIP, training curves, ablation bars.

Every figure has labelled axes with units, a legend, and a title naming the dataset and N.
Shaded bands and error bars are the 95% t-intervals of ``ci`` over seed blocks (none when S = 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .aggregate import FLOOR_METHOD
from ..atomic import atomic_write
from .ci import summarise
from .spec import ABLATION_CLAIMS, ablation_arms

LABEL = {"fid": "FID (lower is better)", "kid": "KID (lower is better)", "clip_score": "CLIP score, 100·max(cos, 0) (higher is better)",
         "fd_clip": "FD in CLIP space (lower is better)", "recall": "Recall (higher is better)", "precision": "Precision (higher is better)"}


def save(fig, out_dir, name: str) -> list[Path]:
    """Write ``name``.png (150 dpi) and ``name``.pdf atomically; close the figure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        with atomic_write(out / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
        paths.append(out / f"{name}.{ext}")
    return paths


def subplots(nrows=1, ncols=1, figsize=(6.4, 4.2), squeeze=True):
    """A pyplot-free figure (no global backend or state): Figure + its axes."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def series(s: pd.DataFrame) -> pd.Series:
    """Legend name per summary row: method[/variant][ [sampler]] (sampler shown when a method has several)."""
    multi = s.groupby("method")["sampler"].nunique()
    return s.apply(lambda r: r["method"] + (f"/{r['variant']}" if r["variant"] != "main" else "")
                   + (f" [{r['sampler']}]" if multi.get(r["method"], 0) > 1 else ""), axis=1)


def _n_text(s: pd.DataFrame) -> str:
    ns = sorted({int(n) for n in s["n"].dropna()})
    S = sorted({int(r) for r in s["replicates"].dropna()})
    return f"N={'/'.join(map(str, ns))} per block, {'/'.join(map(str, S))} seed block(s)"


def _main(df: pd.DataFrame, dataset: str, variant: str) -> pd.DataFrame:
    rows = df[(df["dataset"] == dataset) & (df["method"] != FLOOR_METHOD) & (df["variant"] == variant)]
    s = summarise(rows)
    s["series"] = series(s) if len(s) else []
    return s


def _floor(df: pd.DataFrame, dataset: str, metric: str) -> float:
    fl = df[(df["dataset"] == dataset) & (df["method"] == FLOOR_METHOD) & (df["metric"] == metric)]["value"]
    return float(fl.mean()) if len(fl) else math.nan


def metric_vs_nfe(df, dataset: str, metric: str, variant: str = "main"):
    """One line per method over NFE (log x), shaded 95% CI, the real-data floor as a dashed line."""
    s = _main(df, dataset, variant)
    s = s[s["metric"] == metric].sort_values("nfe")
    if s.empty:
        return None
    fig, ax = subplots()
    names = sorted(s["series"].unique())
    colours = dict(zip(names, sns.color_palette(n_colors=len(names))))
    sns.lineplot(data=s, x="nfe", y="mean", hue="series", style="series", markers=True, dashes=False, palette=colours,
                 hue_order=names, style_order=names, ax=ax)
    for name, g in s.groupby("series"):
        ax.fill_between(g["nfe"], g["ci_low"], g["ci_high"], alpha=0.2, color=colours.get(name), linewidth=0)
    floor = _floor(df, dataset, metric)
    if math.isfinite(floor):
        ax.axhline(floor, ls="--", color="0.3", lw=1, label=f"real-data floor ({floor:.3g})")
    ax.set_xscale("log")
    ax.set_xticks(sorted(s["nfe"].unique()), [str(int(v)) for v in sorted(s["nfe"].unique())])
    ax.set(xlabel="NFE (network evaluations per image, log scale)", ylabel=LABEL.get(metric, metric),
           title=f"{dataset}: {metric.upper() if metric != 'clip_score' else 'CLIP score'} vs NFE ({_n_text(s)})")
    ax.legend(title="method", fontsize=8)
    return fig


def fid_vs_time(df, dataset: str, variant: str = "main"):
    """FID against wall-clock per image (log x); each point annotated with its NFE."""
    s = _main(df, dataset, variant)
    s = s[(s["metric"] == "fid") & s["ms_per_image"].notna()].sort_values("ms_per_image")
    if s.empty:
        return None
    fig, ax = subplots()
    for name, g in s.groupby("series"):
        err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]).clip(min=0)
        ax.errorbar(g["ms_per_image"], g["mean"], yerr=np.nan_to_num(err), marker="o", capsize=3, label=name)
        for _, r in g.iterrows():
            ax.annotate(f"{int(r['nfe'])}", (r["ms_per_image"], r["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    sel = df[(df["dataset"] == dataset) & (df["method"] != FLOOR_METHOD)]
    hw = ", ".join(sorted(set(sel["device_name"].dropna().astype(str)) if "device_name" in sel else set())
                   or sorted(set(sel["device"].dropna().astype(str))))[:60]
    ax.set_xscale("log")
    ax.set(xlabel=f"wall-clock per image (ms, log scale; {hw or 'hardware unrecorded'})", ylabel=LABEL["fid"],
           title=f"{dataset}: FID vs sampling time, labels = NFE ({_n_text(s)})")
    ax.legend(title="method", fontsize=8)
    return fig


def fid_vs_clip(df, dataset: str, variant: str = "main"):
    """Trade-off: CLIP score (x) against FID (y), one marker per method × NFE."""
    s = _main(df, dataset, variant)
    key = ["series", "nfe"]
    j = s[s["metric"] == "fid"].merge(s[s["metric"] == "clip_score"], on=key, suffixes=("_fid", "_clip"))
    if j.empty:
        return None
    fig, ax = subplots()
    for name, g in j.groupby("series"):
        xe = np.nan_to_num(np.vstack([g["mean_clip"] - g["ci_low_clip"], g["ci_high_clip"] - g["mean_clip"]]).clip(min=0))
        ye = np.nan_to_num(np.vstack([g["mean_fid"] - g["ci_low_fid"], g["ci_high_fid"] - g["mean_fid"]]).clip(min=0))
        ax.errorbar(g["mean_clip"], g["mean_fid"], xerr=xe, yerr=ye, marker="o", ls="-", capsize=2, label=name)
        for _, r in g.iterrows():
            ax.annotate(f"NFE {int(r['nfe'])}", (r["mean_clip"], r["mean_fid"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(xlabel=LABEL["clip_score"], ylabel=LABEL["fid"], title=f"{dataset}: FID vs CLIP score trade-off ({_n_text(s)})")
    ax.legend(title="method", fontsize=8)
    return fig


def training_curves(runs: pd.DataFrame):
    """One panel per loss name, one line per run; y on log scale when every value is positive."""
    if runs is None or runs.empty:
        return None
    runs = runs.assign(run=[r if r.startswith(m) else f"{r} ({m})" for r, m in zip(runs["run"], runs["method"])])
    title = f"Training curves, {', '.join(sorted(runs['dataset'].astype(str).unique()))}"
    losses = sorted(runs["loss"].unique())
    fig, axes = subplots(1, len(losses), (5 * len(losses), 3.8), squeeze=False)
    for ax, loss in zip(axes[0], losses):
        g = runs[runs["loss"] == loss]
        sns.lineplot(data=g, x="step", y="value", hue="run", ax=ax)
        if (g["value"] > 0).all():
            ax.set_yscale("log")
        ax.set(xlabel="training step (optimizer updates)", ylabel=f"loss_{loss} (per-sample mean, log scale)"
               if (g["value"] > 0).all() else f"loss_{loss} (per-sample mean)", title=f"{title}: phase '{loss}'")
        ax.legend(title="run", fontsize=7)
    fig.tight_layout()
    return fig


def ablation_bars(df, dataset: str, spec: dict, metric: str = "fid"):
    """One panel per ablation claim (C4–C7): bars over NFE, one per variant, 95% CI error bars."""
    panels = []
    for claim in ABLATION_CLAIMS:
        arms = ablation_arms(spec, df, claim)
        if arms:
            variants = list(arms["variants"]) if claim == "C4" else [arms["treatment"], arms["control"]]
            rows = df[(df["dataset"] == dataset) & (df["method"] == spec["method"]) & df["variant"].isin(variants)
                      & (df["metric"] == metric)]
            if len(rows):
                panels.append((claim, summarise(rows), variants))
    if not panels:
        return None
    fig, axes = subplots(1, len(panels), (4.2 * len(panels), 3.8), squeeze=False)
    for ax, (claim, s, variants) in zip(axes[0], panels):
        nfes, width = sorted(s["nfe"].unique()), 0.8 / len(variants)
        roles = {} if claim == "C4" else {variants[0]: " (treatment)", variants[1]: " (control)"}
        for i, (v, colour) in enumerate(zip(variants, sns.color_palette(n_colors=len(variants)))):
            g = s[s["variant"] == v].set_index("nfe").reindex(nfes)
            err = np.nan_to_num(np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]]).clip(min=0))
            ax.bar(np.arange(len(nfes)) + (i - (len(variants) - 1) / 2) * width, g["mean"], width, yerr=err,
                   capsize=3, label=v + roles.get(v, ""), color=colour)
        ax.set_xticks(range(len(nfes)), [str(int(n)) for n in nfes])
        ax.set(xlabel="NFE (sampling steps' network evaluations)", ylabel=LABEL.get(metric, metric),
               title=f"{dataset}: ablation {claim} ({_n_text(s)})")
        ax.legend(title="variant", fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves(diag: dict):
    """FID against training images seen, one line per sampler, one panel per teacher × dataset."""
    c = diag.get("curve")
    if c is None or c.empty:
        return None
    c = c.assign(sampler_steps=c["sampler"] + "-" + c["steps"].astype(str) + " (NFE " + c["nfe"].astype(str) + ")",
                 panel=c["dataset"] + ": " + c["model"])
    panels = sorted(c["panel"].unique())
    fig, axes = subplots(1, len(panels), (4.6 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        g = c[c["panel"] == panel]
        sns.lineplot(data=g, x="images_seen", y="fid", hue="sampler_steps", marker="o", ax=ax)
        ax.set_yscale("log")
        ax.set(xlabel="training images seen", ylabel="FID (log scale, lower is better)",
               title=f"{panel} (N={int(g['n'].max())} per point)")
        ax.legend(title="sampler", fontsize=7)
    fig.tight_layout()
    return fig


def sigma_error_curves(diag: dict):
    """x̂₀-MSE against σ (log–log), EMA and online, one line per teacher, the data-mean predictor dashed."""
    t = diag.get("sigma_error")
    if t is None or t.empty:
        return None
    fig, ax = subplots()
    t = t.assign(series=t["dataset"] + ": " + t["model"] + " (" + t["weights"] + ")")
    sns.lineplot(data=t, x="sigma", y="x0_mse", hue="series", style="weights", marker="o", ax=ax)
    for (dataset, model), g in t.groupby(["dataset", "model"]):
        ax.axhline(g["mean_predictor_x0_mse"].iloc[0], ls="--", color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="noise level σ (log scale)", ylabel="x̂₀-MSE on held-out images (log scale)",
           title="Denoising error per noise level (dashed: predicting the data mean)")
    ax.legend(fontsize=7)
    return fig


def theme() -> dict:
    """seaborn's whitegrid/paper look as an rc dict, applied inside a context (no global state changed)."""
    return {**sns.axes_style("whitegrid"), **sns.plotting_context("paper")}


def write_figures(df, spec: dict, out_dir, runs: pd.DataFrame | None = None, diag: dict | None = None) -> list[Path]:
    """Every figure for every dataset; figures whose data is absent are skipped."""
    with matplotlib.rc_context(theme()):
        written = _write_figures(df, spec, out_dir, runs)
        for name, fig in (("learning_curves", learning_curves(diag or {})), ("sigma_error", sigma_error_curves(diag or {}))):
            if fig is not None:
                written += save(fig, out_dir, name)
        return written


def _write_figures(df, spec, out_dir, runs) -> list[Path]:
    written, v = [], spec["main_variant"]
    for d in sorted(df["dataset"].unique()):
        figs = {f"fid_vs_nfe_{d}": metric_vs_nfe(df, d, "fid", v), f"clip_vs_nfe_{d}": metric_vs_nfe(df, d, "clip_score", v),
                f"fid_vs_time_{d}": fid_vs_time(df, d, v), f"fid_vs_clip_{d}": fid_vs_clip(df, d, v),
                f"ablations_{d}": ablation_bars(df, d, spec)}
        for name, fig in figs.items():
            if fig is not None:
                written += save(fig, out_dir, name)
    if runs is not None and not runs.empty:
        written += save(training_curves(runs), out_dir, "training_curves")
    return written
