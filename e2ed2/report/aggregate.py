"""Aggregation: every metric JSON under a folder → one tidy table (one row per value).

Row = dataset × method × variant × sampler × steps × NFE × seed block × metric, with N,
backend, feature network, preprocessing, reference set, hardware and the sample set's timing.
Labels beyond the core ones (ablation, arm, train_seed, ...) become extra columns.
The real-data floor is the rows whose method is ``real`` (real images not in the reference, scored
against it at the same N).

Every metric JSON of a sample set carries the ``model`` block its sample set recorded (the
checkpoint's method knobs, run hash, training step; ``e2ed2.sample``). The table flattens the few
knobs the report groups by (``MODEL_COLUMNS``): ``train_k`` — the K a model was trained with, its
``method.steps`` (E2ED²; methods without ``steps`` have none) — and ``recipe``, a hash of every
other method knob, so two variants whose models of one training seed have the same recipe differ
only in K (claim C4's arms, ``k_variants``); plus the training run's identity (``run_hash``,
``train_step``, ``checkpoint``, ``teacher``). How the report shows a method comes with the labels
the workflow gives each JSON (``method_name``, ``method_order``: ``e2ed2.report.names``).
``train_k_of`` is the one answer to "which K was this variant trained with". A hand-written
``labels.train_k`` must agree with the model's K. A JSON without a model block (written before
sample sets recorded it) is refused: rerun sampling, or ``python -m e2ed2.report.backfill``.

Datasets without captions (issue #26): a CLIP JSON may record ``captions: {n, empty}`` (how many
of its sets' captions are empty strings); the table keeps the fraction as ``captions_empty``.
"""

from __future__ import annotations

import hashlib
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
           "images_per_s", "peak_memory_mb", "train_k", "train_step", "train_images", "captions_empty",
           "method_order"]
# columns read from the model block (and the sample set's checkpoint): see the module docstring
MODEL_COLUMNS = ["train_k", "recipe", "run_hash", "train_step", "train_images", "checkpoint", "teacher"]
BACKFILL = "python -m e2ed2.report.backfill <run folder>"


def _hardware(rec: dict) -> str:
    """One readable string: the sample set's device name (timing) and the scorer's hardware record."""
    timing, hw = rec.get("timing") or {}, rec.get("hardware") or {}
    parts = [str(timing[k]) for k in ("device_name", "device") if timing.get(k)]
    parts += [f"{k}={v}" for k, v in sorted(hw.items()) if isinstance(v, (str, int, float)) and v not in ("", None)]
    return "; ".join(dict.fromkeys(parts))


def model_columns(rec: dict, labels: dict, source: str) -> dict:
    """The MODEL_COLUMNS of one metric JSON from its ``model`` block (see the module docstring);
    every column None for the real-data floor, which has no model."""
    model = rec.get("model")
    if labels["method"] == FLOOR_METHOD and not model:
        return dict.fromkeys(MODEL_COLUMNS)
    if not isinstance(model, dict) or not isinstance(model.get("method"), dict):
        raise ValueError(f"{source}: no 'model' block (the sample set's method knobs, run hash, training step), "
                         f"so the report cannot tell which K this model was trained with; rerun its sampling and "
                         f"metrics jobs, or give the old JSONs that block with `{BACKFILL}`")
    knobs = model["method"]
    # K of a method that unrolls a K-step sampler in training (E2ED²): its config's ``steps``
    train_k = int(knobs["steps"]) if knobs.get("steps") is not None else None
    if labels.get("train_k") is not None and (train_k is None or int(labels["train_k"]) != train_k):
        trained = "no K (its method config has no 'steps')" if train_k is None else f"K = {train_k}"
        raise ValueError(f"{source}: labels.train_k = {labels['train_k']} but its model was trained with {trained} "
                         f"(model.method.steps); drop the hand-written train_k label from the config")
    rest = {k: v for k, v in knobs.items() if k != "steps"}
    recipe = hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return {"train_k": train_k, "recipe": recipe,
            "run_hash": model.get("run_hash"), "train_step": model.get("train_step"),
            "train_images": model.get("train_images"),
            "checkpoint": (rec.get("timing") or {}).get("checkpoint"), "teacher": knobs.get("teacher")}


def _captions_empty(rec: dict):
    """Fraction of the scored set's captions that are empty (None when the JSON does not say)."""
    caps = rec.get("captions")
    if not isinstance(caps, dict) or not caps.get("n"):
        return None
    return float(caps.get("empty", 0)) / float(caps["n"])


def rows_from_record(rec: dict, source: str) -> list[dict]:
    """Flatten one metric JSON (the METRICS contract) into tidy rows, one per metric value."""
    labels = {**LABEL_DEFAULTS, **(rec.get("labels") or {})}
    missing = [k for k in ("dataset", "method") if k not in labels]
    if missing:
        raise KeyError(f"{source}: labels lack {missing}; every metric JSON needs labels dataset and method")
    model = model_columns(rec, labels, source)
    results = rec.get("results") or [{"metric": rec.get("metric"), "value": rec.get("value"), "std": rec.get("std")}]
    fn, ref, timing = rec.get("feature_network") or {}, rec.get("reference") or {}, rec.get("timing") or {}
    base = {
        **{k: v for k, v in labels.items() if k not in ("metric", "value", "train_k")},
        "steps": labels.get("steps", timing.get("steps")), "nfe": labels.get("nfe", timing.get("nfe")),
        "n": rec.get("n"), "backend": rec.get("backend"),
        "feature_network": fn.get("name") if isinstance(fn, dict) else fn,
        "feature_sha256": fn.get("sha256") if isinstance(fn, dict) else None,
        "preprocessing": rec.get("preprocessing"),
        "reference": "/".join(str(ref[k]) for k in ("dataset", "split") if ref.get(k) is not None) or None,
        "reference_n": ref.get("n"), "hardware": _hardware(rec), **model, "captions_empty": _captions_empty(rec),
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
    for c in (c for c in NUMERIC if c in df):
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
    return tidy(pd.read_csv(path, keep_default_na=True, dtype={c: str for c in ("recipe", "run_hash", "checkpoint",
                                                                                "teacher", "source")}))


def train_k_of(df: pd.DataFrame, method: str) -> dict[str, int]:
    """{variant: K} — the K each variant of ``method`` was trained with (its model's
    ``method.steps``); variants without a K (methods that train no K-step chain) are absent. A
    variant whose rows disagree (two K under one name) is an error naming it."""
    if "train_k" not in df:
        return {}
    rows = df[(df["method"] == method) & df["train_k"].notna()]
    out = {}
    for variant, ks in rows.groupby("variant")["train_k"]:
        found = sorted({int(k) for k in ks})
        if len(found) > 1:
            raise ValueError(f"{method}/{variant}: its metric JSONs record models trained with K = {found}; one "
                             f"variant name must be one recipe (rename the variants or rerun the stale ones)")
        out[str(variant)] = found[0]
    return out


def k_variants(df: pd.DataFrame, method: str, main_variant: str) -> dict[str, int]:
    """{variant: K} of the variants that differ from ``main_variant`` only in K — claim C4's arms:
    at every training seed both have, the same ``recipe`` (every other method knob equal; knobs
    may name a seed's own files, e.g. its teacher pairs, so recipes are compared seed by seed).
    {} when the main variant has no K."""
    K = train_k_of(df, method)
    if main_variant not in K or "recipe" not in df:
        return {}
    rows = df[(df["method"] == method) & df["variant"].isin(list(K))]
    recipes = rows.groupby(["variant", "train_seed"])["recipe"].agg(lambda r: frozenset(r.dropna()))
    main = recipes[main_variant].to_dict()
    out = {}
    for v in K:
        mine = recipes[v].to_dict()
        shared = set(mine) & set(main)
        if shared and all(mine[s] == main[s] for s in shared):
            out[v] = K[v]
    return out
