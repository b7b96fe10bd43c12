"""Aggregation: every metric JSON under a folder → one tidy table (one row per value).

Row = dataset × method × variant × sampler × steps × NFE × seed block × metric, with N,
backend, feature network, preprocessing, reference set, hardware and the sample set's timing.
Labels beyond the core ones (ablation, arm, train_k, train_seed, ...) become extra columns.
The real-data floor is the rows whose method is ``real`` (real images not in the reference, scored
against it at the same N).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..atomic import write_text

CORE = ["dataset", "method", "variant", "train_seed", "sampler", "steps", "nfe", "seed_block", "metric", "value", "std",
        "n", "backend", "feature_network", "feature_sha256", "preprocessing", "reference", "reference_n", "hardware",
        "device", "device_name", "dtype", "batch_size", "ms_per_image", "images_per_s", "peak_memory_mb", "source"]
FLOOR_METHOD = "real"
LABEL_DEFAULTS = {"variant": "main", "sampler": "", "seed_block": 0, "train_seed": 0}
NUMERIC = ["train_seed", "steps", "nfe", "seed_block", "value", "std", "n", "reference_n", "batch_size", "ms_per_image",
           "images_per_s", "peak_memory_mb"]


def _hardware(rec: dict) -> str:
    """One readable string: the sample set's device name (timing) and the scorer's hardware record."""
    timing, hw = rec.get("timing") or {}, rec.get("hardware") or {}
    parts = [str(timing[k]) for k in ("device_name", "device") if timing.get(k)]
    parts += [f"{k}={v}" for k, v in sorted(hw.items()) if isinstance(v, (str, int, float)) and v not in ("", None)]
    return "; ".join(dict.fromkeys(parts))


def rows_from_record(rec: dict, source: str) -> list[dict]:
    """Flatten one metric JSON (the METRICS contract) into tidy rows, one per metric value."""
    labels = {**LABEL_DEFAULTS, **(rec.get("labels") or {})}
    missing = [k for k in ("dataset", "method") if k not in labels]
    if missing:
        raise KeyError(f"{source}: labels lack {missing}; every metric JSON needs labels dataset and method")
    results = rec.get("results") or [{"metric": rec.get("metric"), "value": rec.get("value"), "std": rec.get("std")}]
    fn, ref, timing = rec.get("feature_network") or {}, rec.get("reference") or {}, rec.get("timing") or {}
    base = {
        **{k: v for k, v in labels.items() if k not in ("metric", "value")},
        "steps": labels.get("steps", timing.get("steps")), "nfe": labels.get("nfe", timing.get("nfe")),
        "n": rec.get("n"), "backend": rec.get("backend"),
        "feature_network": fn.get("name") if isinstance(fn, dict) else fn,
        "feature_sha256": fn.get("sha256") if isinstance(fn, dict) else None,
        "preprocessing": rec.get("preprocessing"),
        "reference": "/".join(str(ref[k]) for k in ("dataset", "split") if ref.get(k) is not None) or None,
        "reference_n": ref.get("n"), "hardware": _hardware(rec),
        **{k: timing.get(k) for k in ("device", "device_name", "dtype", "batch_size", "ms_per_image", "images_per_s",
                                      "peak_memory_mb")},
        "source": source,
    }
    out = []
    for r in results:
        if r.get("metric") is None or r.get("value") is None:
            raise ValueError(f"{source}: result {r} lacks 'metric' or 'value'")
        out.append({**base, "metric": r["metric"], "value": r["value"], "std": r.get("std")})
    return out


def collect(roots) -> pd.DataFrame:
    """All ``*.json`` metric files under the folder(s) ``roots`` → tidy DataFrame (core columns
    first, then labels). ``source`` is each file's path as given (relative to the working folder)."""
    roots = [Path(r) for r in ([roots] if isinstance(roots, (str, os.PathLike)) else roots)]
    rows = []
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"metrics folder not found: {root}")
        for path in sorted(p for p in root.rglob("*.json") if not p.name.startswith(".")):
            try:
                rec = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
            if isinstance(rec, dict) and ("results" in rec or "value" in rec):
                rows += rows_from_record(rec, str(path))
    if not rows:
        raise FileNotFoundError(f"no metric JSONs (with 'results') under {', '.join(map(str, roots))}")
    return tidy(pd.DataFrame(rows))


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Fix column order and dtypes; sort so the CSV is stable across runs."""
    for c in CORE:
        if c not in df:
            df[c] = None
    for c in NUMERIC:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["variant"] = df["variant"].fillna("main").astype(str)
    df["sampler"] = df["sampler"].fillna("").astype(str)
    extra = sorted(c for c in df.columns if c not in CORE)
    df = df[CORE + extra]
    return df.sort_values(["dataset", "method", "variant", "sampler", "nfe", "metric", "seed_block"],
                          kind="stable", na_position="first").reset_index(drop=True)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Atomic CSV write (e2ed2.atomic)."""
    write_text(path, df.to_csv(index=False))


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tidy table not found: {path}; run `python -m e2ed2.report aggregate` first")
    return tidy(pd.read_csv(path, keep_default_na=True))
