"""Baseline health: does each baseline reproduce the behaviour its paper reports?

A verdict against a broken baseline measures the bug, not E2ED². Before any claim is judged,
each published ordering is checked on every dataset, on the mean FID of each arm (main
variant, over its seed blocks and training seeds), with its numbers beside it
(check: rule, with the spec's ``health`` keys; source):

- teacher_near_floor: the teacher's best FID (any sampler of its checkpoint) ≤ teacher_floor × the
  real-data floor; a converged teacher
- ddim_vs_ancestral: DDIM (η = 0) at S ∈ ddim_budgets ≤ ddim_vs_ancestral × ancestral at S and at
  2S (each measured one); Song et al. 2021, Table 1
- cd2_vs_ddim10: CD at 2 steps ≤ DDIM at 10 steps; Song et al. 2023, Table 1
- ct2_near_floor: CT at 2 steps ≤ ct_floor × the real-data floor (samples, not noise); Song et al. 2023
- ddim_monotone: DDIM's FID does not rise with steps: FID(S') ≤ monotone_tol × FID(S) for S < S';
  ODE discretisation error falls with steps

and one check of the method under test that gates no claim but flags a collapse before anything
is judged (docs/E2ED2.md §1: one prototype per class scores a fair FID and recall ≈ 0):

- collapse: each of its variants' recall at NFE = the K it was trained with ≥ collapse_ratio × the
  teacher's best recall (any sampler of its checkpoint); the sample grid shows the failing rows

A check whose arms were not sampled is ``missing``, and counts as not passed: a claim that
rests on it is "not credible" until it is measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .aggregate import FLOOR_METHOD

PASS, FAIL, MISSING = "pass", "fail", "missing"


@dataclass
class Check:
    id: str
    dataset: str
    rule: str
    status: str
    numbers: str
    methods: list = field(default_factory=list)  # the baselines whose credibility rests on it


def _fid(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Mean FID per (method, sampler, steps, nfe) of the main variant of one dataset."""
    r = df[(df["dataset"] == dataset) & (df["metric"] == "fid") & (df["variant"] == "main")]
    return r.groupby(["method", "sampler", "steps", "nfe"], as_index=False)["value"].mean()


def _at(fid: pd.DataFrame, method: str, steps: int, sampler: str | None = None) -> float | None:
    r = fid[(fid["method"] == method) & (fid["steps"] == steps)]
    if sampler:
        r = r[r["sampler"] == sampler]
    return float(r["value"].iloc[0]) if len(r) else None


def _floor(df: pd.DataFrame, dataset: str) -> float | None:
    r = df[(df["dataset"] == dataset) & (df["method"] == FLOOR_METHOD) & (df["metric"] == "fid")]["value"]
    return float(r.mean()) if len(r) else None


def _status(ok: bool | None) -> str:
    return MISSING if ok is None else PASS if ok else FAIL


def checks(df: pd.DataFrame, spec: dict) -> list[Check]:
    """Every health check on every dataset of the tidy table."""
    h, out = spec["health"], []
    teacher, ddim, cd, ct, anc = h["teacher"], h["ddim"], h["cd"], h["ct"], h["ancestral_sampler"]
    for dataset in sorted(df["dataset"].unique()):
        fid, floor = _fid(df, dataset), _floor(df, dataset)
        f = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
        # the teacher: its best FID over every sampler of its checkpoint (DDIM samples it too)
        t = fid[fid["method"].isin([teacher, ddim])]
        best = t.loc[t["value"].idxmin()] if len(t) else None
        ok = None if best is None or floor is None else best["value"] <= h["teacher_floor"] * floor
        out.append(Check("teacher_near_floor", dataset, f"best FID of {teacher} ≤ {h['teacher_floor']:g} × floor",
                         _status(ok), f"best {f(None if best is None else best['value'])}"
                         + (f" ({best['method']} {best['sampler']}-{int(best['steps'])})" if best is not None else "")
                         + f"; floor {f(floor)}", [teacher, ddim]))
        # DDIM against ancestral sampling at the same and at double the steps
        for S in h["ddim_budgets"]:
            d = _at(fid, ddim, S, "ddim")
            refs = {S2: _at(fid, teacher, S2, anc) for S2 in (S, 2 * S)}
            refs = {k: v for k, v in refs.items() if v is not None}
            ok = None if d is None or not refs else all(d <= h["ddim_vs_ancestral"] * v for v in refs.values())
            out.append(Check(f"ddim{S}_vs_ancestral", dataset,
                             f"DDIM-{S} ≤ {h['ddim_vs_ancestral']:g} × ancestral at {S} and {2 * S} steps", _status(ok),
                             f"DDIM-{S} {f(d)}; " + ", ".join(f"ancestral-{k} {f(v)}" for k, v in refs.items()),
                             [ddim]))
        c2, d10 = _at(fid, cd, 2), _at(fid, ddim, 10, "ddim")
        out.append(Check("cd2_vs_ddim10", dataset, "CD-2 ≤ DDIM-10",
                         _status(None if c2 is None or d10 is None else c2 <= d10),
                         f"CD-2 {f(c2)}; DDIM-10 {f(d10)}", [cd]))
        t2 = _at(fid, ct, 2)
        ok = None if t2 is None or floor is None else t2 <= h["ct_floor"] * floor
        out.append(Check("ct2_near_floor", dataset, f"CT-2 ≤ {h['ct_floor']:g} × floor", _status(ok),
                         f"CT-2 {f(t2)}; floor {f(floor)}", [ct]))
        curve = fid[(fid["method"] == ddim) & (fid["sampler"] == "ddim")].sort_values("steps")
        pairs = list(zip(curve["value"], curve["value"].iloc[1:]))
        ok = None if len(curve) < 2 else all(b <= h["monotone_tol"] * a for a, b in pairs)
        out.append(Check("ddim_monotone", dataset, f"DDIM FID(S') ≤ {h['monotone_tol']:g} × FID(S) for S < S'",
                         _status(ok),
                         ", ".join(f"{int(s)}: {v:.1f}" for s, v in zip(curve["steps"], curve["value"])) or "–",
                         [ddim]))
        out.append(collapse(df, dataset, spec))
    return out


def collapse(df: pd.DataFrame, dataset: str, spec: dict) -> Check:
    """Recall of each variant of the method under test at its own K against the teacher's best recall."""
    h, method = spec["health"], spec["method"]
    r = df[(df["dataset"] == dataset) & (df["metric"] == "recall")]
    teacher = r[r["method"].isin([h["teacher"], h["ddim"]])].groupby(["method", "sampler", "steps"])["value"].mean()
    arms = r[r["method"] == method]
    if "train_k" in arms:
        arms = arms[arms["steps"] == arms["train_k"]]
    arms = arms.groupby("variant")["value"].mean()
    rule = f"recall of {method} at its own K ≥ {h['collapse_ratio']:g} × the teacher's best recall"
    if teacher.empty or arms.empty:
        return Check("collapse", dataset, rule, MISSING, "–")
    best, bar = float(teacher.max()), h["collapse_ratio"] * float(teacher.max())
    low = sorted(v for v, x in arms.items() if x < bar)
    numbers = f"teacher best {best:.3f}; " + ", ".join(f"{v} {x:.3f}" for v, x in arms.items())
    if low:
        numbers += f"; collapsed: {', '.join(low)} (sample grid: figures/sample_grid_{dataset}.png)"
    return Check("collapse", dataset, rule, FAIL if low else PASS, numbers)


def failed_for(checks_: list[Check], dataset: str, methods) -> list[Check]:
    """The checks of ``dataset`` not passed by any of ``methods``."""
    methods = set(methods)
    return [c for c in checks_ if c.dataset == dataset and c.status != PASS and methods & set(c.methods)]


def table(checks_: list[Check]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": c.dataset, "check": c.id, "rule": c.rule, "numbers": c.numbers, "status": c.status}
                         for c in checks_])
