"""Figures (matplotlib + seaborn styles, PNG + PDF): quality vs NFE and vs wall-clock, FID vs CLIP,
training curves, learning curves, ablation bars, per-σ error.

Every figure has labelled axes with units, a legend with the methods' readable names
(``names``: from the method classes), and a title naming the dataset and N. Every FID axis carries the real-data
floor (real images against the same reference) as a dashed line; a CLIP-score axis carries the
real-image CLIP score. Spread is shown at the level of training seeds, not as t-intervals (with 2
seeds a t(1) band is 12.7 standard errors wide and hides the data): quality-vs-NFE plots draw the
mean over training seeds as a line and each training seed (its mean over its seed blocks) as a
point; error bars elsewhere are the min–max over training seeds (none with one seed). Each method
keeps its colour in every figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..atomic import atomic_write
from ..metrics import families
from .aggregate import FLOOR_METHOD, k_variants, train_k_of
from .ci import KEYS, summarise
from .names import colour_index, learn, name, rank
from .spec import ABLATION_CLAIMS, ablation_arms
from .tables import compact_hardware

# axis labels and titles of each metric (e2ed2.metrics.families)
LABEL = {m.name: m.axis for m in families.METRICS.values()}
TITLE = {m.name: m.title for m in families.METRICS.values()}
ABLATION_TITLES = {"C4": "training K vs sampling K", "C5": "pure-noise vs leaky start", "C6": "perceptual loss",
                   "C7": "adversarial loss"}
FLOOR_STYLE = {"ls": "--", "color": "0.2", "lw": 1.2, "zorder": 1}
REAL_CLIP_STYLE = {"ls": ":", "color": "0.2", "lw": 1.2, "zorder": 1}
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
# one colour per registered method, the same in every figure


DPI = 150  # PNG resolution of every figure (the sample grid is laid out for it)


def save(fig, out_dir, name_: str) -> list[Path]:
    """Write ``name_``.png (DPI) and ``name_``.pdf atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        with atomic_write(out / f"{name_}.{ext}") as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=ext)
        paths.append(out / f"{name_}.{ext}")
    return paths


def subplots(nrows=1, ncols=1, figsize=(6.4, 4.2), squeeze=True):
    """A pyplot-free figure (no global backend or state): Figure + its axes."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def panel_grid(n: int, width: float, height: float):
    """A figure of ``n`` panels, two per row, each ``width`` × ``height`` inches; returns (fig,
    the n axes in reading order), the spare axis of an odd count hidden."""
    ncols = min(2, n)
    nrows = math.ceil(n / ncols)
    fig, axes = subplots(nrows, ncols, (width * ncols, height * nrows), squeeze=False)
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def colour(method: str, i: int = 0):
    """The method's fixed colour (unregistered methods take the palette after the registered ones)."""
    return sns.color_palette("tab10")[colour_index(method, i) % 10]


def series(s: pd.DataFrame, spec: dict | None = None, df: pd.DataFrame | None = None) -> pd.Series:
    """Legend name per summary row: readable method name[ /variant][ (trained K=k)][ [sampler]]
    (the sampler shown when a method has several)."""
    if s.empty:
        return pd.Series([], dtype=str, index=s.index)
    multi = s.groupby("method")["sampler"].nunique()
    K = train_k_of(df, spec["method"]) if spec and df is not None else {}

    def one(r):
        label = name(r["method"]) + (f" /{r['variant']}" if r["variant"] != "main" else "")
        if spec and r["method"] == spec.get("method") and r["variant"] in K:
            label += f" (trained K={K[r['variant']]})"
        return label + (f" [{r['sampler']}]" if multi.get(r["method"], 0) > 1 else "")
    return s.apply(one, axis=1)


def _span(values) -> str:
    v = sorted({int(x) for x in values if pd.notna(x)})
    return "?" if not v else str(v[0]) if len(v) == 1 else f"{v[0]}–{v[-1]}"


def _n_text(s: pd.DataFrame) -> str:
    """'N = 16 images per set, 1–3 training seeds per point'."""
    ns = sorted({int(n) for n in s["n"].dropna()})
    seeds = _span(s["seeds"]) if "seeds" in s else "?"
    return (f"N = {'/'.join(map(str, ns)) or '?'} images per set, {seeds} training seed{'' if seeds == '1' else 's'} "
            f"per point")


def _seed_points(df: pd.DataFrame, dataset: str, variant: str, metric: str, spec: dict | None) -> pd.DataFrame:
    """One row per arm × NFE × training seed: the seed's mean over its seed blocks, with its legend name."""
    rows = df[(df["dataset"] == dataset) & (df["method"] != FLOOR_METHOD) & (df["variant"] == variant)
              & (df["metric"] == metric)]
    if rows.empty:
        return rows.assign(series=[])
    p = rows.groupby([*KEYS, "train_seed"], dropna=False, as_index=False)["value"].mean()
    return p.assign(series=series(p, spec, df))


def _errors(g: pd.DataFrame, lo: str = "seed_min", hi: str = "seed_max", mean: str = "mean") -> np.ndarray:
    """2×n error-bar lengths from the min–max over training seeds (0 where one seed)."""
    return np.nan_to_num(np.vstack([g[mean] - g[lo], g[hi] - g[mean]]).clip(min=0))


def _main(df: pd.DataFrame, dataset: str, variant: str, spec: dict | None = None) -> pd.DataFrame:
    rows = df[(df["dataset"] == dataset) & (df["method"] != FLOOR_METHOD) & (df["variant"] == variant)]
    s = summarise(rows)
    s["series"] = series(s, spec, df) if len(s) else []
    return s


def _floor(df: pd.DataFrame | None, dataset: str, metric: str, n: int | None = None) -> tuple[float, int | None]:
    """Mean real-data value of ``metric`` on ``dataset`` (at N = ``n`` when measured there) and its N."""
    if df is None or df.empty:
        return math.nan, None
    fl = df[(df["dataset"] == dataset) & (df["method"] == FLOOR_METHOD) & (df["metric"] == metric)]
    if n is not None and (fl["n"] == n).any():
        fl = fl[fl["n"] == n]
    if fl.empty:
        return math.nan, None
    ns = fl["n"].dropna()
    return float(fl["value"].mean()), (int(ns.max()) if len(ns) else None)


def draw_floor(ax, df, dataset: str, metric: str = "fid", n: int | None = None, vertical: bool = False) -> float:
    """The real-data floor of ``metric`` as a dashed line (the real-image score, dotted, for the
    CLIP score); returns its value (NaN when not measured: nothing drawn)."""
    value, fn = _floor(df, dataset, metric, n)
    if not math.isfinite(value):
        return value
    at_n = f", N = {fn}" if fn is not None and n is not None and fn != n else ""
    if metric == "clip_score":
        label, style = f"real images (CLIP score {value:.4g}{at_n})", REAL_CLIP_STYLE
    else:
        label, style = f"real-data floor ({TITLE.get(metric, metric)} {value:.4g}{at_n})", FLOOR_STYLE
    (ax.axvline if vertical else ax.axhline)(value, label=label, **style)
    return value


def _fmt(v, _pos=None) -> str:
    return f"{v:g}"


def _count(v, _pos=None) -> str:
    """1500 → '1.5k', 2000000 → '2M'."""
    return f"{v / 1e6:g}M" if abs(v) >= 1e6 else f"{v / 1e3:g}k" if abs(v) >= 1e4 else f"{v:g}"


def auto_log_y(ax, values, ratio: float = 10.0) -> bool:
    """Log y (plain-number tick labels) when every value is positive and they span ≥ ``ratio``×."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0 or (v <= 0).any() or v.max() / v.min() < ratio:
        return False
    log_y(ax)
    return True


def log_y(ax) -> None:
    """Log y after plotting, with plain-number tick labels (see log_ticks)."""
    ax.set_yscale("log")
    log_ticks(ax.yaxis, *ax.get_ylim())


def log_ticks(axis, lo: float, hi: float) -> None:
    """Readable ticks on a log axis: 1-2-5 decades labelled as plain numbers when the view spans a
    decade or more, else a few evenly spaced plain labels (never '4.18×10²' or '3×10⁰')."""
    if lo > 0 and hi / lo >= 10:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0) if hi / lo < 1e3 else (1.0,)))
        axis.set_minor_locator(ticker.LogLocator(base=10, subs="auto"))
    else:
        axis.set_major_locator(ticker.MaxNLocator(nbins=5))
        axis.set_minor_locator(ticker.NullLocator())
    axis.set_major_formatter(ticker.FuncFormatter(_fmt))
    axis.set_minor_formatter(ticker.NullFormatter())


def log_x_ticks(ax, values) -> None:
    """Log x with a tick and a plain label at each value (no '3×10⁰' minor labels)."""
    vals = sorted({float(v) for v in values if np.isfinite(v)})
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    if vals and all(v == int(v) for v in vals):
        ax.set_xticks(vals, [str(int(v)) for v in vals])


def legend(ax, title: str | None = None, outside: bool = True, **kw) -> None:
    """The axes' legend, outside on the right by default (it never hides data)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    real = [i for i, lab in enumerate(labels) if lab.startswith("real")]  # the floor lines after the methods
    keep = [i for i in range(len(labels)) if i not in real] + real
    handles, labels = [handles[i] for i in keep], [labels[i] for i in keep]
    where = ({"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0} if outside
             else {"loc": kw.pop("loc", "best")})
    ax.legend(handles, labels, title=title, fontsize=kw.pop("fontsize", 8), title_fontsize=8, **where, **kw)


def _values(s: pd.DataFrame, *extra) -> list:
    return [*s["mean"], *s["seed_min"].dropna(), *s["seed_max"].dropna(), *extra]


def _per_budget(df: pd.DataFrame, dataset: str, metric: str, spec: dict | None) -> pd.DataFrame:
    """The method under test as claims C1–C3 judge it, one summary row per NFE: each variant that
    differs from the main one only in K (``k_variants``) sampled at NFE = its K; and every other
    variant that is no ablation control (e.g. the paper-literal reading) at each NFE it was sampled."""
    if not spec or df.empty:
        return df.iloc[:0]
    method = spec["method"]
    K = k_variants(df, method, spec.get("main_variant", "main"))
    rows = df[(df["dataset"] == dataset) & (df["method"] == method) & (df["metric"] == metric)]
    controls = {a.get("control") for a in spec.get("ablations", {}).values() if isinstance(a, dict)}
    if "ablation" in rows:
        controls |= set(rows.loc[rows["ablation"].notna(), "variant"])
    budget = rows[rows["variant"].map(K).eq(rows["nfe"])]
    other = rows[~rows["variant"].isin(list(K)) & ~rows["variant"].isin(controls)]
    out = []
    if len(budget):
        out.append(summarise(budget.assign(variant="per budget")))
    if len(other):
        out.append(summarise(other))
    if not out:
        return df.iloc[:0]
    s = pd.concat(out, ignore_index=True)
    label = name(method)
    s["series"] = s["variant"].map(lambda v: f"{label} per budget (trained K = NFE)" if v == "per budget"
                                   else f"{label} /{v}")
    return s.sort_values("nfe")


def metric_vs_nfe(df, dataset: str, metric: str, variant: str = "main", spec: dict | None = None):
    """One line per method over NFE (log x) through the mean over training seeds, each training
    seed a point; the method under test also as C1 judges it (its variant trained with K = NFE at
    each NFE, dashed) and its other non-ablation arms (e.g. the paper-literal reading, as points);
    the real-data floor as a dashed line."""
    s = _main(df, dataset, variant, spec)
    s = s[s["metric"] == metric].sort_values("nfe")
    if s.empty:
        return None
    points = _seed_points(df, dataset, variant, metric, spec)
    fig, ax = subplots(figsize=(5.2, 3.6))
    is_main = variant == (spec or {}).get("main_variant", "main")
    extra = _per_budget(df, dataset, metric, spec) if is_main else s.iloc[:0]
    for j, (label, g) in enumerate(extra.groupby("series", sort=False)):
        budget = "per budget" in label
        c = colour(g["method"].iloc[0], j) if budget else "0.3"  # other arms in grey: apart from the main line
        ax.errorbar(g["nfe"], g["mean"], yerr=_errors(g), color=c, label=label, lw=1.2, capsize=2,
                    ls="--" if budget else "none", marker="D" if budget else "X", ms=5 if budget else 7,
                    mfc="white" if budget else c)
    for i, (label, g) in enumerate(sorted(s.groupby("series"), key=lambda kv: _order(kv[1]))):
        c = colour(g["method"].iloc[0], i)
        ax.plot(g["nfe"], g["mean"], marker=MARKERS[i % len(MARKERS)], color=c, label=label, lw=1.4, ms=5)
        if (g["seeds"] > 1).any():
            p = points[points["series"] == label]
            ax.scatter(p["nfe"], p["value"], marker=MARKERS[i % len(MARKERS)], s=14, facecolors="none",
                       edgecolors=[c], linewidths=0.9, alpha=0.8, zorder=3)
    if (s["seeds"] > 1).any():
        ax.scatter([], [], marker="o", s=14, facecolors="none", edgecolors="0.3", label="each training seed (hollow)")
    floor = draw_floor(ax, df, dataset, metric, _n_of(s))
    logged = metric == "fid" and auto_log_y(ax, [*_values(s, floor), *points["value"], *_values(extra)])
    log_x_ticks(ax, s["nfe"])
    ax.set(xlabel="NFE (network evaluations per image, log scale)",
           ylabel=LABEL.get(metric, metric) + (", log scale" if logged else ""),
           title=f"{dataset}: {TITLE.get(metric, metric)} vs NFE\n{_n_text(s)}")
    legend(ax, "method")
    return fig


def _order(g: pd.DataFrame):
    """Legend order: registered methods in registry order, then by name."""
    return (rank(g["method"].iloc[0]), str(g["series"].iloc[0]))


def _n_of(s: pd.DataFrame) -> int | None:
    ns = s["n"].dropna()
    return int(ns.max()) if len(ns) else None


def fid_vs_time(df, dataset: str, variant: str = "main", spec: dict | None = None):
    """FID against wall-clock per image (log x); each point annotated with its NFE; the floor dashed."""
    s = _main(df, dataset, variant, spec)
    s = s[(s["metric"] == "fid") & s["ms_per_image"].notna()].sort_values("ms_per_image")
    if s.empty:
        return None
    fig, ax = subplots(figsize=(5.2, 3.6))
    for i, (label, g) in enumerate(sorted(s.groupby("series"), key=lambda kv: _order(kv[1]))):
        ax.errorbar(g["ms_per_image"], g["mean"], yerr=_errors(g), marker=MARKERS[i % len(MARKERS)], capsize=3,
                    label=label, color=colour(g["method"].iloc[0], i), lw=1.2, ms=5)
        for _, r in g.iterrows():
            ax.annotate(f"{int(r['nfe'])}", (r["ms_per_image"], r["mean"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    floor = draw_floor(ax, df, dataset, "fid", _n_of(s))
    logged = auto_log_y(ax, _values(s, floor))
    sel = df[(df["dataset"] == dataset) & (df["method"] != FLOOR_METHOD) & (df["variant"] == variant)]
    hw = compact_hardware(sorted(set(sel["hardware"].dropna().astype(str)))) if "hardware" in sel else ""
    ax.set_xscale("log")
    log_ticks(ax.xaxis, *ax.get_xlim())
    ax.set(xlabel=f"sampling wall-clock per image (ms, log scale)\n{hw or 'hardware unrecorded'}",
           ylabel=LABEL["fid"] + (", log scale" if logged else ""),
           title=f"{dataset}: FID vs sampling time (point labels: NFE; bars: min–max over seeds)\n{_n_text(s)}")
    legend(ax, "method")
    return fig


def fid_vs_clip(df, dataset: str, variant: str = "main", spec: dict | None = None):
    """Trade-off: CLIP score (x) against FID (y), one marker per method × NFE; the real-data floor
    (dashed) and the real-image CLIP score (dotted)."""
    s = _main(df, dataset, variant, spec)
    key = ["series", "method", "nfe"]
    j = s[s["metric"] == "fid"].merge(s[s["metric"] == "clip_score"], on=key, suffixes=("_fid", "_clip"))
    if j.empty:
        return None
    fig, ax = subplots(figsize=(5.2, 3.6))
    for i, (label, g) in enumerate(sorted(j.groupby("series"), key=lambda kv: _order(kv[1]))):
        g = g.sort_values("nfe")
        xe = _errors(g, "seed_min_clip", "seed_max_clip", "mean_clip")
        ye = _errors(g, "seed_min_fid", "seed_max_fid", "mean_fid")
        ax.errorbar(g["mean_clip"], g["mean_fid"], xerr=xe, yerr=ye, marker=MARKERS[i % len(MARKERS)], ls="-",
                    capsize=2, label=label, color=colour(g["method"].iloc[0], i), lw=1.0, ms=5)
        for _, r in g.iterrows():
            ax.annotate(f"{int(r['nfe'])}", (r["mean_clip"], r["mean_fid"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    n = _n_of(s)
    floor = draw_floor(ax, df, dataset, "fid", n)
    draw_floor(ax, df, dataset, "clip_score", n, vertical=True)
    fid_rows = j.rename(columns={"mean_fid": "mean", "seed_min_fid": "seed_min", "seed_max_fid": "seed_max"})
    logged = auto_log_y(ax, _values(fid_rows, floor))
    t = s[s["metric"].isin(["fid", "clip_score"])]
    ax.set(xlabel=LABEL["clip_score"], ylabel=LABEL["fid"] + (", log scale" if logged else ""),
           title=f"{dataset}: FID vs CLIP score (point labels: NFE)\n{_n_text(t)}")
    legend(ax, "method")
    return fig


def training_curves(runs: pd.DataFrame):
    """One panel per (method, loss phase) — losses of different methods and phases are not
    comparable — with every run of that method overlaid: colour = variant, line style = dataset,
    each training seed one thin line in its variant's colour. The legend (outside the panel) names
    variants and datasets, not runs, so it stays short however many seeds there are."""
    if runs is None or runs.empty:
        return None
    runs = runs.dropna(subset=["value"])
    if runs.empty:
        return None
    panels = sorted(runs.groupby(["method", "loss"]).groups, key=lambda k: (rank(k[0]), str(k[0]), str(k[1])))
    fig, axes = panel_grid(len(panels), 5.6, 3.0)
    datasets = sorted(runs["dataset"].astype(str).unique())
    dash = dict(zip(datasets, ["-", "--", ":", "-."] * 4))
    for ax, (method, loss) in zip(axes, panels):
        g = runs[(runs["method"] == method) & (runs["loss"] == loss)]
        # one colour per variant of the method, the same in each of its panels
        every = sorted(runs.loc[runs["method"] == method, "variant"].astype(str).unique(),
                       key=lambda v: (v != "main", v))
        pal = dict(zip(every, sns.color_palette("tab10" if len(every) <= 10 else "husl", len(every))))
        variants = [v for v in every if v in set(g["variant"].astype(str))]
        for (_, d, v), h in g.groupby(["run", "dataset", "variant"], sort=True):
            h = h.sort_values("step")
            ax.plot(h["step"], h["value"], color=pal[str(v)], ls=dash[str(d)], lw=1.0, alpha=0.8)
        positive = bool((g["value"] > 0).all())
        if positive:
            log_y(ax)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=6, integer=True))
        n_runs = g["run"].nunique()
        ax.set(xlabel="training step (optimizer updates)",
               ylabel=f"loss '{loss}'" + (" (log)" if positive else ""),
               title=f"{name(method)}: loss '{loss}' ({n_runs} run{'s' if n_runs > 1 else ''})")
        handles = [Line2D([], [], color=pal[v], lw=1.6, label=v) for v in variants] if len(variants) > 1 else []
        shown = [d for d in datasets if d in set(g["dataset"].astype(str))]
        if len(datasets) > 1:
            handles += [Line2D([], [], color="0.3", ls=dash[d], lw=1.2, label=d) for d in shown]
        if handles:
            ax.legend(handles=handles, fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      borderaxespad=0, title="variant / dataset" if len(variants) > 1 else "dataset")
    fig.suptitle(f"Training losses per method and phase — {', '.join(datasets)} ({runs['run'].nunique()} runs; "
                 "one line per training seed)", y=1.0)
    fig.tight_layout()
    return fig


def ablation_bars(df, dataset: str, spec: dict, metric: str = "fid"):
    """One panel per ablation claim (C4–C7): bars over NFE, one per variant (the mean over training
    seeds), error bars the min–max over training seeds, the real-data floor dashed."""
    panels = []
    for claim in ABLATION_CLAIMS:
        arms = ablation_arms(spec, df[df["dataset"] == dataset], claim)
        if arms:
            variants = list(arms["variants"]) if claim == "C4" else [arms["treatment"], arms["control"]]
            rows = df[(df["dataset"] == dataset) & (df["method"] == spec["method"]) & df["variant"].isin(variants)
                      & (df["metric"] == metric)]
            if len(rows):
                panels.append((claim, summarise(rows), variants, arms))
    if not panels:
        return None
    fig, axes = panel_grid(len(panels), 4.6, 3.5)
    for ax, (claim, s, variants, arms) in zip(axes, panels):
        nfes, width = sorted(s["nfe"].unique()), 0.8 / len(variants)
        roles = ({v: f" (trained K={k})" for v, k in arms["variants"].items()} if claim == "C4"
                 else {variants[0]: " (treatment)", variants[1]: " (control)"})
        for i, (v, c) in enumerate(zip(variants, sns.color_palette("colorblind", n_colors=len(variants)))):
            g = s[s["variant"] == v].set_index("nfe").reindex(nfes)
            err = _errors(g)
            ax.bar(np.arange(len(nfes)) + (i - (len(variants) - 1) / 2) * width, g["mean"], width, yerr=err,
                   capsize=3, label=v + roles.get(v, ""), color=c)
        floor = draw_floor(ax, df, dataset, metric, _n_of(s))
        top = np.nanmax(np.r_[s["mean"].to_numpy(float), s["seed_max"].to_numpy(float), floor])
        if np.isfinite(top) and top > 0:
            ax.set_ylim(0, top * (1.25 + 0.08 * len(variants)))  # headroom: the legend sits above the bars
        ax.set_xticks(range(len(nfes)), [str(int(n)) for n in nfes])
        ax.set(xlabel="NFE (network evaluations per image)", ylabel=LABEL.get(metric, metric),
               title=f"{dataset}: {claim}, {ABLATION_TITLES.get(claim, 'ablation')}\n{_n_text(s)}")
        legend(ax, f"{name(spec['method'])} variant", outside=False, fontsize=7, ncol=2, loc="upper center")
    fig.tight_layout()
    return fig


def learning_curves(diag: dict, df: pd.DataFrame | None = None):
    """FID against training images seen, one line per sampler, one panel per teacher × dataset;
    the real-data floor (from the tidy table ``df``, at the curve's N where measured) dashed."""
    c = diag.get("curve")
    if c is None or c.empty:
        return None
    c = c.assign(sampler_steps=c["sampler"] + "-" + c["steps"].astype(str) + " (NFE " + c["nfe"].astype(str) + ")")
    panels = sorted(c.groupby(["dataset", "model"]).groups)
    fig, axes = panel_grid(len(panels), 5.0, 3.6)
    for ax, (dataset, model) in zip(axes, panels):
        g = c[(c["dataset"] == dataset) & (c["model"] == model)]
        n = int(g["n"].max()) if "n" in g and g["n"].notna().any() else None
        for i, (label, h) in enumerate(sorted(g.groupby("sampler_steps"))):
            h = h.sort_values("images_seen")
            ax.plot(h["images_seen"], h["fid"], marker=MARKERS[i % len(MARKERS)], lw=1.3, ms=4, label=label)
        floor = draw_floor(ax, df, str(dataset), "fid", n)
        logged = auto_log_y(ax, [*g["fid"], floor])
        method, _, variant = str(model).partition("/")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(_count))
        ax.set(xlabel="training images seen", ylabel=LABEL["fid"] + (", log scale" if logged else ""),
               title=f"{dataset}: FID of {name(method)}{'' if variant in ('', 'main') else ' /' + variant} "
                     f"during training"
                     f"\nN = {n if n is not None else '?'} images per point")
        ax.legend(title="sampler", fontsize=7, title_fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def sigma_error_curves(diag: dict):
    """x̂₀-MSE against σ (log–log), EMA and online, one line per teacher, the data-mean predictor dashed."""
    t = diag.get("sigma_error")
    if t is None or t.empty:
        return None
    fig, ax = subplots(figsize=(5.2, 3.6))
    models = {m: name(m.split("/")[0]) + ("" if m.split("/", 1)[-1] in ("main", m) else " /" + m.split("/", 1)[1])
              for m in t["model"].astype(str).unique()}
    t = t.assign(series=t["dataset"].astype(str) + ": " + t["model"].astype(str).map(models))
    keys = sorted(t["series"].unique())
    pal = dict(zip(keys, sns.color_palette("tab10", n_colors=len(keys))))
    for (label, weights), g in t.groupby(["series", "weights"]):
        g = g.sort_values("sigma")
        ax.plot(g["sigma"], g["x0_mse"], marker="o", ms=3.5, lw=1.2, color=pal[label],
                ls="-" if str(weights) == "ema" else "--", label=f"{label} ({weights})")
    for i, (_, g) in enumerate(t.groupby(["dataset", "model"])):
        ax.axhline(g["mean_predictor_x0_mse"].iloc[0], ls=":", color="0.4", lw=1.0,
                   label="predicting the data mean" if i == 0 else None)
    ax.set_xscale("log")
    log_ticks(ax.xaxis, *ax.get_xlim())
    log_y(ax)
    n = int(t["n"].max()) if "n" in t else None
    ax.set(xlabel="noise level σ (log scale)", ylabel="x̂₀-MSE on held-out images (log scale)",
           title=f"Denoising error per noise level, {', '.join(sorted(t['dataset'].astype(str).unique()))}\n"
                 f"N = {n if n is not None else '?'} held-out images, one fixed noise draw")
    legend(ax, "teacher (weights)")
    return fig


def theme() -> dict:
    """seaborn's whitegrid/paper look as an rc dict, applied inside a context (no global state changed)."""
    return {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"), "axes.titlesize": 9, "axes.labelsize": 8.5,
            "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 10}


def write_figures(df, spec: dict, out_dir, runs: pd.DataFrame | None = None, diag: dict | None = None) -> list[Path]:
    """Every figure for every dataset; figures whose data is absent are skipped. The tidy table
    ``df`` also gives the learning curves their real-data floor."""
    learn(df)
    with matplotlib.rc_context(theme()):
        written = _write_figures(df, spec, out_dir, runs)
        for name_, fig in (("learning_curves", learning_curves(diag or {}, df)),
                           ("sigma_error", sigma_error_curves(diag or {}))):
            if fig is not None:
                written += save(fig, out_dir, name_)
        return written


def _write_figures(df, spec, out_dir, runs) -> list[Path]:
    written, v = [], spec["main_variant"]
    for d in sorted(df["dataset"].unique()):
        figs = {f"fid_vs_nfe_{d}": metric_vs_nfe(df, d, "fid", v, spec),
                f"clip_vs_nfe_{d}": metric_vs_nfe(df, d, "clip_score", v, spec),
                f"fid_vs_time_{d}": fid_vs_time(df, d, v, spec), f"fid_vs_clip_{d}": fid_vs_clip(df, d, v, spec),
                f"ablations_{d}": ablation_bars(df, d, spec)}
        for name_, fig in figs.items():
            if fig is not None:
                written += save(fig, out_dir, name_)
    if runs is not None and not runs.empty:
        fig = training_curves(runs)
        if fig is not None:
            written += save(fig, out_dir, "training_curves")
    return written
