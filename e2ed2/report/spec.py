"""The claims spec: which method is under test, which variants form each ablation, and margins.

Given as a small YAML/JSON file (the workflow writes it from its config) or, for ablations the
file does not name, read from the metric labels: rows labelled ``ablation: C5`` with
``arm: treatment|control`` (C5–C7), and rows labelled ``train_k: K`` (C4).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..config import ConfigError

DEFAULTS = {
    "method": "e2ed2",          # the method under test
    "main_variant": "main",     # variant of every method used in the main comparison (C1–C3, C8, C9)
    "nfe": [1, 2, 4],           # few-step budgets for C1, C2
    "baselines": [],            # methods compared against; empty = every other method except the floor
    "many_steps_nfe": 50,       # C3: a baseline budget counts as "many steps" at ≥ this NFE
    "c3_margin": 0.10,          # C3: E2ED² FID may exceed the many-step baseline by at most 10%
    "c9_margin": 0.20,          # C9: E2ED² recall may fall at most 20% below the many-step baseline
    "ablations": {},            # C4: {variants: {variant: train_K}}; C5–C7: {treatment: v, control: v}
    "health": {},               # baseline health checks (e2ed2.report.health); defaults in HEALTH
}
HEALTH = {
    "teacher": "edm",           # the diffusion teacher (its checkpoint is also DDIM's)
    "ancestral_sampler": "ddpm",  # the teacher's ancestral sampler
    "ddim": "ddim", "cd": "cd", "ct": "ct",  # method names of the baselines checked
    "teacher_floor": 2.0,       # teacher's best FID ≤ 2 × the real-data floor
    "ddim_budgets": [10, 50],   # DDIM at S ≤ ddim_vs_ancestral × ancestral at S and 2S
    "ddim_vs_ancestral": 1.2,
    "ct_floor": 3.0,            # CT at 2 steps ≤ 3 × the floor
    "monotone_tol": 1.1,        # DDIM FID(S') ≤ 1.1 × FID(S) for S < S'
}
ABLATION_CLAIMS = ("C4", "C5", "C6", "C7")


def load_spec(path=None) -> dict:
    """The spec of a YAML/JSON file (``None``: the defaults)."""
    if not path:
        return make_spec({})
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"claims spec not found: {p}")
    user = (json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text())) or {}
    return make_spec(user, str(p))


def make_spec(user: dict, where: str = "claims spec") -> dict:
    """DEFAULTS updated by ``user`` (and HEALTH by its ``health``); unknown keys are errors."""
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"{where}: unknown claims-spec keys {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    spec = {**DEFAULTS, **user}
    unknown = set(spec["health"]) - set(HEALTH)
    if unknown:
        raise ConfigError(f"{where}: health keys {sorted(unknown)} unknown; valid: {sorted(HEALTH)}")
    spec["health"] = {**HEALTH, **spec["health"]}
    bad = set(spec["ablations"]) - set(ABLATION_CLAIMS)
    if bad:
        raise ConfigError(f"{where}: ablations {sorted(bad)} unknown; valid: {list(ABLATION_CLAIMS)}")
    return spec


def ablation_arms(spec: dict, df, claim: str) -> dict | None:
    """Variants of ``claim``: {treatment, control} (C5–C7) or {variants: {v: K}} (C4); None if absent."""
    if claim in spec["ablations"]:
        return spec["ablations"][claim]
    rows = df[df["method"] == spec["method"]]
    if claim == "C4" and "train_k" in rows:
        variants = {v: int(k) for v, k in rows.dropna(subset=["train_k"]).groupby("variant")["train_k"].first().items()}
        return {"variants": variants} if variants else None
    if "ablation" in rows and "arm" in rows:
        sub = rows[rows["ablation"].astype(str) == claim]
        arms = sub.groupby("arm")["variant"].first().to_dict()
        if {"treatment", "control"} <= set(arms):
            return {"treatment": arms["treatment"], "control": arms["control"]}
    return None
