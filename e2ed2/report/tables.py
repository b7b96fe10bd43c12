"""Tables: the main comparison and the ablations, as CSV, Markdown and LaTeX (booktabs).

A cell with two or more replicates (sampling-seed blocks × training seeds) is the mean ± the
half-width of its 95% t-interval, or the mean [low, high] where the metric's range makes the
interval asymmetric (``ci.RANGES``: FID, FD_CLIP, CLIP score, precision, recall); a cell with
one replicate is the bare mean marked ¹ (no interval). Each row also gives its number of training
seeds and, for FID and the CLIP score, the seed-level spread: the min–max over training seeds of
each seed's mean over its seed blocks (a t-interval over 2–3 seeds is wide and says little about
how far a rerun moves; the spread shows it). A caption is one sentence saying what the
table is (dataset, N per block, the replicates, the real-data floor FID and the real-image CLIP
score), followed by its footnote lines (the ¹ note where used, one provenance line: feature
networks, preprocessing, reference, hardware); in this module a caption is that sentence and its
footnotes joined by newlines.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..metrics import families
from . import health, names
from .aggregate import FLOOR_METHOD, train_k_of
from .ci import summarise
from .comparisons import matched_variant
from .names import name, rank
from .spec import ABLATION_CLAIMS, ablation_arms

# the metric columns and their names in running text (e2ed2.metrics.families)
METRICS = [(m.name, m.header) for m in families.METRICS.values()]
SHORT = {m.name: m.short for m in families.METRICS.values()}
ROW_KEYS = ["method", "variant", "sampler", "steps", "nfe"]
SPREAD = {"fid": "FID seed min–max", "clip_score": "CLIP seed min–max"}  # seed-level spread columns
SINGLE = "¹"  # marks a value from one replicate
SINGLE_NOTE = f"{SINGLE} one replicate: no interval."


def cell(mean: float, low: float, high: float, digits: int = 2, replicates: int | None = None) -> str:
    """'mean ± half-width' with ≥ 2 replicates and a finite interval ('mean [low, high]' where the
    metric's range makes it asymmetric); the bare mean marked ¹ with
    one replicate (a single-set Wilson interval is not shown); '–' when nothing was measured."""
    if not math.isfinite(mean):
        return "–"
    if replicates is not None and replicates < 2:
        return f"{mean:.{digits}f}{SINGLE}"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:.{digits}f}"
    if abs((mean - low) - (high - mean)) > 10 ** -digits:  # bounded by the metric's range: not symmetric
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def digits_for(metric: str) -> int:
    return 4 if metric == "kid" else 3 if metric in ("precision", "recall") else 2


def spread(lo: float, hi: float, digits: int = 2) -> str:
    """'lo–hi' (the min–max over training seeds), '–' with fewer than two seeds."""
    return f"{lo:.{digits}f}–{hi:.{digits}f}" if math.isfinite(lo) and math.isfinite(hi) else "–"


def wide(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows → one row per arm (``arm`` column if present) × (method, variant, sampler, steps,
    nfe), one column per metric, the seed-level min–max beside FID and the CLIP score, ms/image,
    the training images (each arm's budget), training seeds and replicates; a value with one
    replicate is bare and marked ¹."""
    keys = (["arm"] if "arm" in summary else []) + ROW_KEYS
    out = []
    for key, g in summary.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key))
        for m, title in METRICS:
            r = g[g["metric"] == m]
            if len(r):
                r = r.iloc[0]
                row[title] = cell(r["mean"], r["ci_low"], r["ci_high"], digits_for(m), int(r["replicates"]))
                if m in SPREAD:
                    row[SPREAD[m]] = spread(r["seed_min"], r["seed_max"], digits_for(m))
        ms = g["ms_per_image"].dropna()
        row["ms/image"] = f"{ms.mean():.1f}" if len(ms) else "–"
        # the images its weights were trained on (steps × global batch); a student's after its teacher
        imgs = g["train_images"].dropna() if "train_images" in g else g["ms_per_image"].iloc[:0]
        row["training images"] = f"{int(imgs.max()):,}" if len(imgs) else "–"
        row["training seeds"] = int(g["seeds"].max())
        row["replicates"] = int(g["replicates"].max())
        out.append(row)
    df = pd.DataFrame(out)
    for col in ("steps", "nfe"):
        df[col] = df[col].map(lambda v: "–" if pd.isna(v) else str(int(v)))
    df["sampler"] = df["sampler"].map(lambda v: "–" if pd.isna(v) or v == "" else v)
    metric_cols = [c for m, t in METRICS for c in (t, SPREAD.get(m)) if c in df]
    cols = keys + metric_cols + ["ms/image", "training images", "training seeds", "replicates"]
    return df[cols].fillna("–").rename(columns={"nfe": "NFE"})


# ---- captions ---------------------------------------------------------------------------
def _floor_cell(df: pd.DataFrame, dataset: str, metric: str) -> str | None:
    fl = df[(df["dataset"] == dataset) & (df["method"] == FLOOR_METHOD) & (df["metric"] == metric)]
    if fl.empty:
        return None
    r = summarise(fl).iloc[0]
    return cell(r["mean"], r["ci_low"], r["ci_high"], digits_for(metric), int(r["replicates"]))


def floor_sentence(df: pd.DataFrame, dataset: str) -> str:
    """'real-data floor FID a at N = n, real-image CLIP score c' (the caption's closing clause), or
    'real-data floor not measured' when no metric JSON has method 'real'."""
    fl = df[(df["dataset"] == dataset) & (df["method"] == FLOOR_METHOD)]
    if fl.empty:
        return "real-data floor not measured (no metric JSON with method 'real')"
    fid, clip = _floor_cell(df, dataset, "fid"), _floor_cell(df, dataset, "clip_score")
    n = fl.loc[fl["metric"] == "fid", "n"].dropna() if fid else fl["n"].dropna()
    parts = [f"real-data floor FID {fid}" + (f" at N = {int(n.max())}" if len(n) else "") if fid
             else "real-data floor FID not measured"]
    parts.append(f"real-image CLIP score {clip}" if clip else "real-image CLIP score not measured")
    return ", ".join(parts)


def clip_eval_clause(entry) -> str:
    """'small-CLIP zero-shot accuracy 7.8% (chance 10.0%)' from a float or a model.eval.json dict."""
    if entry is None:
        return ""
    if isinstance(entry, dict):
        acc, chance = entry.get("zero_shot_accuracy"), entry.get("chance")
    else:
        acc, chance = entry, None
    if acc is None or not math.isfinite(float(acc)):
        return ""
    return (f"small-CLIP zero-shot accuracy {100 * float(acc):.1f}%"
            + (f" (chance {100 * float(chance):.1f}%)" if chance is not None else ""))


def _block_text(df: pd.DataFrame) -> str:
    blocks = sorted(int(b) for b in df["seed_block"].dropna().unique())
    seeds = sorted(int(s) for s in df["train_seed"].dropna().unique()) if "train_seed" in df else []
    b = f"{len(blocks)} seed block{'s' if len(blocks) != 1 else ''}"
    return b + (f" × {len(seeds)} training seeds" if len(seeds) > 1 else "")


def _ns(df: pd.DataFrame) -> str:
    ns = sorted(int(n) for n in df.loc[df["method"] != FLOOR_METHOD, "n"].dropna().unique()) or \
        sorted(int(n) for n in df["n"].dropna().unique())
    return "/".join(map(str, ns)) or "?"


def compact_hardware(values) -> str:
    """One short description per distinct machine, e.g. 'CPU x86_64, 2 cores, 1 torch thread' or
    'GPU NVIDIA H200', from the tidy table's hardware strings ('x86_64; cpu; cpu_count=2; …')."""
    out = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            continue
        tokens = [t.strip() for t in v.split(";") if t.strip()]
        kv = dict(t.split("=", 1) for t in tokens if "=" in t)
        bare = [t for t in tokens if "=" not in t]
        device = kv.get("device") or next((t for t in bare if t.split(":")[0] in ("cpu", "cuda", "mps")), "")
        names = [t for t in bare if t.split(":")[0] not in ("cpu", "cuda", "mps")]
        if kv.get("gpu") or device.startswith("cuda"):
            desc = f"GPU {kv.get('gpu') or (names[0] if names else device)}"
        else:
            desc = f"CPU {kv.get('processor') or (names[0] if names else '')}".rstrip()
            if kv.get("cpu_count"):
                desc += f", {kv['cpu_count']} cores"
            if kv.get("torch_threads"):
                t = kv["torch_threads"]
                desc += f", {t} torch thread{'' if str(t) == '1' else 's'}"
        out.append(desc)
    out = list(dict.fromkeys(out))
    # a description that another one extends (the sampler's 'CPU x86_64' vs the scorer's full record) is dropped
    out = [d for d in out if not any(o != d and o.startswith(d) for o in out)]
    return "; ".join(out)


def _short_ref(ref: str) -> str:
    parts = str(ref).split("/")
    return "/".join(parts[-2:])


def provenance(df: pd.DataFrame) -> str:
    """The one footnote line of a table: feature networks (deduplicated, per group of metrics),
    the reference set, and the hardware of the timings."""
    groups: dict[tuple, list[str]] = {}
    cols = ["metric", "feature_network", "backend", "preprocessing"]
    for m, f, b, p in df[cols].astype(str).drop_duplicates().values:
        groups.setdefault((f, b, p), []).append(m)
    order = {m: i for i, (m, _) in enumerate(METRICS)}
    nets = []
    for (f, b, p), ms in sorted(groups.items(), key=lambda kv: min(order.get(m, 99) for m in kv[1])):
        what = f if b in ("", "nan", "None") or b in f else f"{f} via {b}"
        prep = "" if p in ("", "nan", "None") else f", {p}"
        nets.append(f"{', '.join(SHORT.get(m, m) for m in sorted(ms, key=lambda m: order.get(m, 99)))}: {what}{prep}")
    ref = sorted({_short_ref(r) for r in df["reference"].dropna().astype(str)})
    ref_n = sorted({int(n) for n in df["reference_n"].dropna()}) if "reference_n" in df else []
    hw = compact_hardware(sorted(set(df["hardware"].dropna().astype(str)))) if "hardware" in df else ""
    parts = [f"Features: {'; '.join(nets)}" if nets else "Features: unrecorded",
             "CLIP score = 100·max(cos, 0)" if "clip_score" in set(df["metric"]) else "",
             f"Reference {', '.join(ref)}" + (f" (N = {'/'.join(map(str, ref_n))})" if ref_n else "") if ref else "",
             f"Timings (ms/image) on {hw}" if hw else "Timings: hardware unrecorded"]
    return ". ".join(p for p in parts if p) + "."


def _notes(table: pd.DataFrame, *lines: str) -> list[str]:
    single = table.astype(str).apply(lambda c: c.str.contains(SINGLE, regex=False)).to_numpy().any()
    return ([SINGLE_NOTE] if single else []) + [line for line in lines if line]


def join_caption(sentence: str, notes) -> str:
    return "\n".join([sentence, *notes])


def split_caption(caption: str) -> tuple[str, list[str]]:
    """(the caption sentence, its footnote lines)."""
    first, *rest = caption.split("\n")
    return first, [r for r in rest if r.strip()]


def load_clip_eval(files) -> dict[str, dict]:
    """{dataset: model.eval.json record} from ``<run>/<dataset>/clip/model.eval.json`` files (the
    dataset is the folder above ``clip``)."""
    out = {}
    for f in map(Path, files or []):
        if not f.is_file():
            raise FileNotFoundError(f"CLIP evaluation file not found: {f}")
        out[f.parent.parent.name] = json.loads(f.read_text())
    return out


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
    name = names.name(r["method"])
    if r["method"] == FLOOR_METHOD:
        return name
    if r["method"] == spec["method"]:
        k = K.get(r["variant"])
        if r["variant"] == spec["main_variant"] and k is not None and int(r["nfe"]) != k:
            return f"{name} (trained K={k}, one model)"
        return f"{name} (K={k if k is not None else '?'}{', matched' if k == int(r['nfe']) else ''})"
    return name + ("" if r["variant"] == "main" else f" /{r['variant']}")


def main_table(df: pd.DataFrame, dataset: str, spec: dict, clip_eval=None) -> tuple[pd.DataFrame, str]:
    """The main table of ``dataset`` and its caption (sentence + footnotes, newline-joined);
    ``clip_eval``: the small CLIP's zero-shot accuracy (a float, or its model.eval.json record)."""
    rows = main_rows(df, dataset, spec)
    if rows[rows["method"] != FLOOR_METHOD].empty:
        raise ValueError(f"no rows for dataset {dataset!r} with variant {spec['main_variant']!r} in the tidy table")
    K = train_k_of(df[df["dataset"] == dataset], spec["method"])
    summary = summarise(rows)
    summary.insert(0, "arm", [row_label(r, spec, K) for _, r in summary.iterrows()])
    summary = summary.sort_values(["method", "variant", "nfe"],
                                  key=lambda c: c.map(rank) if c.name == "method" else c, kind="stable")
    table = wide(summary).drop(columns=["method", "variant"])
    tail = ", ".join(p for p in (floor_sentence(df, dataset), clip_eval_clause(clip_eval)) if p)
    sentence = (f"{dataset}: every arm at each NFE, mean ± 95% t-interval half-width ([low, high] where the "
                f"metric's range bounds it) over replicates "
                f"({_block_text(rows)} of N = {_ns(rows)} images; count in the last column), the min–max over "
                f"training seeds beside FID and the CLIP score; {tail}.")
    return table, join_caption(sentence, _notes(table, provenance(rows)))


def ablation_table(df: pd.DataFrame, dataset: str, spec: dict, claim: str) -> tuple[pd.DataFrame, str] | None:
    arms = ablation_arms(spec, df[df["dataset"] == dataset], claim)
    if not arms:
        return None
    variants = list(arms["variants"]) if claim == "C4" else [arms["treatment"], arms["control"]]
    rows = df[(df["dataset"] == dataset) & (df["method"] == spec["method"]) & df["variant"].isin(variants)]
    if rows.empty:
        return None
    arms_txt = (", ".join(f"{v} = trained with K={k}" for v, k in arms["variants"].items()) if claim == "C4"
                else f"treatment {arms['treatment']} vs control {arms['control']}")
    table = wide(summarise(rows))
    table["method"] = table["method"].map(name)
    sentence = (f"{dataset}: ablation {claim} of {name(spec['method'])} ({arms_txt}), mean ± 95% t-interval half-width "
                f"([low, high] where bounded) over replicates ({_block_text(rows)} of N = {_ns(rows)} images), the "
                f"min–max over training seeds beside FID and the CLIP score; {floor_sentence(df, dataset)}.")
    return table, join_caption(sentence, _notes(table, provenance(rows)))


# ---- renderers --------------------------------------------------------------------------
def to_markdown(table: pd.DataFrame, caption: str) -> str:
    """The table, then its caption sentence in italics, then each footnote line."""
    head = "| " + " | ".join(table.columns) + " |\n|" + "|".join("---" for _ in table.columns) + "|\n"
    body = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in table.itertuples(index=False))
    sentence, notes = split_caption(caption)
    return head + body + f"\n*{sentence}*\n" + "".join(f"\n{n}\n" for n in notes)


# characters of the captions and cells → LaTeX (text mode; \ensuremath so adjacent symbols never form $$)
_TEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"\ensuremath{\pm}",
        "↓": r"\ensuremath{\downarrow}",
        "↑": r"\ensuremath{\uparrow}", "×": r"\ensuremath{\times}", "·": r"\ensuremath{\cdot}", "–": "--", "—": "---",
        "²": r"\ensuremath{^2}", "¹": r"\ensuremath{^1}", "₀": r"\ensuremath{_0}", "η": r"\ensuremath{\eta}",
        "ε": r"\ensuremath{\varepsilon}", "β": r"\ensuremath{\beta}", "σ": r"\ensuremath{\sigma}",
        "‖": r"\ensuremath{\|}",
        "→": r"\ensuremath{\to}", "≤": r"\ensuremath{\le}", "≥": r"\ensuremath{\ge}", "−": "-", "’": "'"}


def _tex(s) -> str:
    """Escape a cell or caption for LaTeX; the result is plain ASCII (pdflatex-safe)."""
    s, out, i = str(s), [], 0
    while i < len(s):
        c = s[i]
        if i + 1 < len(s) and s[i + 1] == "\u0302":  # combining circumflex: x̂
            out.append(rf"\ensuremath{{\hat{{{c}}}}}")
            i += 2
            continue
        t = _TEX.get(c, c)
        out.append(t if t.isascii() else "?")
        i += 1
    return "".join(out)


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table environment (needs \\usepackage{booktabs}); the caption sentence in
    \\caption, the footnote lines in small type under the tabular."""
    cols = "l" * len(ROW_KEYS[:2]) + "r" * (len(table.columns) - 2)
    sentence, notes = split_caption(caption)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex(sentence)}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(_tex(c) for c in table.columns) + r" \\",
             r"\midrule"]
    lines += [" & ".join(_tex(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines += [r"\par\smallskip", r"\parbox{\linewidth}{\footnotesize " + r" \\ ".join(_tex(n) for n in notes) + "}"]
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


def health_table(df: pd.DataFrame, spec: dict) -> tuple[pd.DataFrame, str]:
    t = health.table(health.checks(df, spec))
    return t, join_caption("Baseline health: each published ordering checked on the mean FID of each arm "
                           "(main variant).",
                           [("'missing' = the arms of the check were not sampled; a claim resting on a check that is "
                             "not 'pass' is not credible (e2ed2/report/health.py).")])


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
    return wide_t, join_caption(
        f"Denoising error per noise level σ of each teacher on N = {n} held-out images (one fixed noise draw), EMA and "
        f"online weights.",
        [("x̂₀-MSE = mean ‖D(x₀ + σn, σ) − x₀‖², ε-MSE = x̂₀-MSE/σ²; the last column is the x̂₀-MSE of predicting the "
          "per-pixel data mean (a denoiser worse than it at large σ ignores its input). "
          "python -m e2ed2.diagnose sigma-error.")])


def write_tables(df: pd.DataFrame, spec: dict, out_dir, diag: dict | None = None,
                 clip_eval: dict | None = None) -> list[Path]:
    """Every table for every dataset, the health checks and the diagnostics, as <name>.csv, .md
    and .tex; returns the written paths. ``clip_eval``: {dataset: zero-shot accuracy (float) or
    the small CLIP's model.eval.json record (see load_clip_eval)}, shown in the main captions."""
    names.learn(df)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {}
    for dataset in sorted(df["dataset"].unique()):
        tables[f"main_{dataset}"] = main_table(df, dataset, spec, (clip_eval or {}).get(dataset))
        for claim in ABLATION_CLAIMS:
            t = ablation_table(df, dataset, spec, claim)
            if t is not None:
                tables[f"ablation_{claim}_{dataset}"] = t
    tables["health"] = health_table(df, spec)
    sigma = sigma_error_table(diag or {})
    if sigma is not None:
        tables["sigma_error"] = sigma
    written = []
    for name_, (table, caption) in tables.items():
        write_text(out / f"{name_}.csv", table.to_csv(index=False))
        write_text(out / f"{name_}.md", to_markdown(table, caption))
        write_text(out / f"{name_}.tex", to_latex(table, caption, f"tab:{name_}"))
        written += [out / f"{name_}.{ext}" for ext in ("csv", "md", "tex")]
    return written
