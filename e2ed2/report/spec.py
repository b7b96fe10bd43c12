"""The claims spec: which method is under test, which variants form each ablation, and margins.

Given as a small YAML/JSON file (the workflow writes it from its config) or, for ablations the
file does not name, read from the metric labels: rows labelled ``ablation: C5`` with
``arm: treatment|control`` (C5–C7). C4's arms come from the models themselves
(``aggregate.k_variants``: the variants that differ from the main variant only in the K they
were trained with, read from each metric JSON's model block); a spec that still names C4
variants has them checked against the models' K.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..config import ConfigError
from .aggregate import k_variants, train_k_of

DEFAULTS = {
    "method": "e2ed2",          # the method under test
    "main_variant": "main",     # variant of every method used in the main comparison (C1–C3, C8, C9)
    "nfe": [1, 2, 4],           # few-step budgets for C1, C2
    "baselines": [],            # methods compared against; empty = every other method except the floor
    "many_steps_nfe": 50,       # C3: a baseline budget counts as "many steps" at ≥ this NFE
    "c3_margin": 0.10,          # C3: E2ED² FID may exceed the many-step baseline by at most 10%
    "c9_margin": 0.20,          # C9: E2ED² recall may fall at most 20% below the many-step baseline
    "ablations": {},            # C5–C7: {treatment: v, control: v} (C4's arms come from the models' K)
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
    "collapse_ratio": 0.5,      # the method under test: recall at its own K ≥ 0.5 × the teacher's best
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


def c4_variants(spec: dict, df) -> dict[str, int]:
    """{variant: K} of claim C4: the spec's ``ablations.C4.variants`` when given (each checked
    against the K its model was trained with: a mismatch is a ConfigError naming the variant),
    else the variants that differ from the main variant only in K (``aggregate.k_variants``)."""
    given = (spec["ablations"].get("C4") or {}).get("variants")
    if not given:
        return k_variants(df, spec["method"], spec["main_variant"])
    K = train_k_of(df, spec["method"])
    for variant, k in given.items():
        if variant in K and int(k) != K[variant]:
            raise ConfigError(f"claims spec ablations.C4: variant {variant!r} is listed with K = {k} but its model was "
                              f"trained with K = {K[variant]} (model.method.steps); drop ablations.C4 from the spec "
                              f"(the report reads K from the models)")
    return {v: K[v] for v in given if v in K}


def ablation_arms(spec: dict, df, claim: str) -> dict | None:
    """Variants of ``claim``: {treatment, control} (C5–C7) or {variants: {v: K}} (C4); None if absent."""
    if claim == "C4":
        variants = c4_variants(spec, df)
        return {"variants": variants} if len(variants) > 1 else None
    if claim in spec["ablations"]:
        return spec["ablations"][claim]
    rows = df[df["method"] == spec["method"]]
    if "ablation" in rows and "arm" in rows:
        sub = rows[rows["ablation"].astype(str) == claim]
        arms = sub.groupby("arm")["variant"].first().to_dict()
        if {"treatment", "control"} <= set(arms):
            return {"treatment": arms["treatment"], "control": arms["control"]}
    return None
