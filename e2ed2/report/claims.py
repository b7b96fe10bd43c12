"""Claims C1–C9 (DESIGN.md §5): each a rule written as code, stated in one sentence beforehand.

Every rule reads only the tidy table (and, for C7/C9, the training logs) and returns a verdict
``supported`` / ``not supported`` / ``inconclusive``, the evidence rows behind it, and a note.
Interval comparisons use ``ci.compare``: only non-overlapping 95% t-intervals decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .aggregate import FLOOR_METHOD
from .ci import BETTER, OVERLAP, UNKNOWN, WORSE, compare, interval_of, summarise
from .curves import diverged
from .spec import ablation_arms

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


@dataclass
class Verdict:
    id: str
    claim: str
    rule: str
    verdict: str
    evidence: list = field(default_factory=list)  # dicts: dataset, what, value, versus, outcome
    note: str = ""


def _arms(s: pd.DataFrame, metric: str, **eq) -> pd.DataFrame:
    r = s[s["metric"] == metric]
    for k, v in eq.items():
        r = r[r[k].isin(v)] if isinstance(v, (list, tuple, set)) else r[r[k] == v]
    return r


def _name(r) -> str:
    extra = f"/{r['variant']}" if r["variant"] != "main" else ""
    return f"{r['method']}{extra}" + (f" [{r['sampler']}]" if r["sampler"] else "") + (f" @NFE {int(r['nfe'])}" if pd.notna(r["nfe"]) else " @NFE ?")


def _pairwise(verdict: Verdict, pairs, lower: bool, need: str) -> Verdict:
    """All-better → supported; any worse → not supported; otherwise inconclusive (overlap / no CI)."""
    outcomes = []
    for dataset, a, b in pairs:
        o = compare(interval_of(a), interval_of(b), lower)
        outcomes.append(o)
        verdict.evidence.append({"dataset": dataset, "what": _name(a), "value": interval_of(a).fmt(3),
                                 "versus": _name(b), "versus_value": interval_of(b).fmt(3), "outcome": o})
    if not outcomes:
        verdict.verdict = f"{INCONCLUSIVE} (no data: {need})"
    elif WORSE in outcomes:
        verdict.verdict = NOT_SUPPORTED
    elif all(o == BETTER for o in outcomes):
        verdict.verdict = SUPPORTED
    else:
        verdict.verdict = INCONCLUSIVE
        verdict.note = (f"{outcomes.count(OVERLAP)} overlapping, {outcomes.count(UNKNOWN)} without an interval "
                        f"(fewer than 2 seed blocks) of {len(outcomes)} comparisons")
    return verdict


def _baselines(s: pd.DataFrame, spec: dict) -> list:
    names = spec["baselines"] or sorted(set(s["method"]) - {spec["method"], FLOOR_METHOD})
    return list(names)


def _many_step_baselines(s, spec, metric: str, dataset) -> pd.DataFrame:
    """Each baseline's rows at its largest NFE ≥ many_steps_nfe (the reference of C3 and C9)."""
    B = _arms(s, metric, dataset=dataset, method=_baselines(s, spec), variant=spec["main_variant"])
    B = B[B["nfe"] >= spec["many_steps_nfe"]]
    return B[B["nfe"] == B.groupby("method")["nfe"].transform("max")]


def few_step(s, spec, metric, lower, cid, claim, datasets=None) -> Verdict:
    word = "upper" if lower else "lower"
    v = Verdict(cid, claim, f"Supported when, at every NFE in {spec['nfe']} (same dataset, same N), the {word} 95% bound of "
                f"{spec['method']} {metric} is {'below' if lower else 'above'} the {'lower' if lower else 'upper'} bound of "
                f"every baseline; not supported when any baseline's interval lies entirely on the better side; "
                f"inconclusive otherwise.", INCONCLUSIVE)
    pairs = []
    for dataset in datasets or sorted(s["dataset"].unique()):
        for nfe in spec["nfe"]:
            E = _arms(s, metric, dataset=dataset, method=spec["method"], variant=spec["main_variant"], nfe=nfe)
            B = _arms(s, metric, dataset=dataset, method=_baselines(s, spec), variant=spec["main_variant"], nfe=nfe)
            pairs += [(dataset, e, b) for _, e in E.iterrows() for _, b in B.iterrows()]
    return _pairwise(v, pairs, lower, f"{metric} of {spec['method']} and a baseline at the same NFE in {spec['nfe']}")


def c3(s, spec) -> Verdict:
    d = spec["c3_margin"]
    v = Verdict("C3", "Fewer than 4 steps suffice", f"Supported when, for some NFE ≤ 4, the upper 95% bound of "
                f"{spec['method']} FID is ≤ (1 + {d:g}) × the mean FID of the best baseline at its largest NFE "
                f"≥ {spec['many_steps_nfe']}; not supported when at every NFE ≤ 4 the lower bound exceeds that threshold; "
                f"inconclusive otherwise.", INCONCLUSIVE)
    outcomes = []
    for dataset in sorted(s["dataset"].unique()):
        B = _many_step_baselines(s, spec, "fid", dataset)
        E = _arms(s, "fid", dataset=dataset, method=spec["method"], variant=spec["main_variant"])
        E = E[E["nfe"] <= 4]
        if B.empty or E.empty:
            continue
        ref = B.loc[B["mean"].idxmin()]
        thr = (1 + d) * ref["mean"]
        for _, e in E.iterrows():
            iv = interval_of(e)
            o = UNKNOWN if not iv.known else BETTER if iv.high <= thr else WORSE if iv.low > thr else OVERLAP
            outcomes.append(o)
            v.evidence.append({"dataset": dataset, "what": _name(e), "value": iv.fmt(3), "versus": f"(1+{d:g})×{_name(ref)}",
                               "versus_value": f"{thr:.3f}", "outcome": o})
    if not outcomes:
        v.verdict = f"{INCONCLUSIVE} (no data: FID of {spec['method']} at NFE ≤ 4 and of a baseline at NFE ≥ {spec['many_steps_nfe']})"
    elif BETTER in outcomes:
        v.verdict = SUPPORTED
    elif all(o == WORSE for o in outcomes):
        v.verdict = NOT_SUPPORTED
    return v


def c4(df, s, spec) -> Verdict:
    v = Verdict("C4", "Matching training to sampling removes the train/test mismatch", "Supported when, at every "
                "sampling budget K', the variant trained with K = K' has an FID interval entirely below that of every "
                "variant trained with K ≠ K' (sampled at K'); not supported when some mismatched variant is entirely "
                "below the matched one; inconclusive otherwise.", INCONCLUSIVE)
    arms = ablation_arms(spec, df, "C4")
    pairs = []
    if arms:
        K = arms["variants"]
        for dataset in sorted(s["dataset"].unique()):
            rows = _arms(s, "fid", dataset=dataset, method=spec["method"], variant=list(K))
            for steps, g in rows.groupby("steps"):
                match = g[g["variant"].map(K) == steps]
                other = g[g["variant"].map(K) != steps]
                pairs += [(dataset, m, o) for _, m in match.iterrows() for _, o in other.iterrows()]
    return _pairwise(v, pairs, True, "FID of variants trained with different K (spec ablations.C4 or label train_k)")


ABLATION_TEXT = {"C5": ("Starting from pure noise (no leakage) helps", "pure-noise start", "leaky start"),
                 "C6": ("The perceptual loss helps", "with the perceptual loss", "without it"),
                 "C7": ("The adversarial loss helps, without instability", "with the adversarial loss", "without it")}


def ablation(df, s, spec, cid, runs=None) -> Verdict:
    claim, treat, ctrl = ABLATION_TEXT[cid]
    rule = (f"Supported when, at every NFE both arms were sampled at, the FID interval {treat} lies entirely below "
            f"the one {ctrl}; not supported when it lies entirely above at any NFE; inconclusive otherwise.")
    if cid == "C7":
        rule += (" The treatment's training logs must also show no divergence (curves.diverged), else not supported; "
                 "without logs the verdict is at most inconclusive.")
    v = Verdict(cid, claim, rule, INCONCLUSIVE)
    arms = ablation_arms(spec, df, cid)
    pairs = []
    if arms:
        for dataset in sorted(s["dataset"].unique()):
            T = _arms(s, "fid", dataset=dataset, method=spec["method"], variant=arms["treatment"])
            C = _arms(s, "fid", dataset=dataset, method=spec["method"], variant=arms["control"])
            pairs += [(dataset, t, c) for _, t in T.iterrows() for _, c in C[C["nfe"] == t["nfe"]].iterrows()]
    v = _pairwise(v, pairs, True, f"FID of the {cid} treatment and control variants (spec ablations.{cid} or labels "
                  f"ablation={cid}, arm=treatment|control)")
    if cid == "C7" and arms and pairs:
        v = _stability(v, runs, spec["method"], [arms["treatment"]])
    return v


def _stability(v: Verdict, runs, method: str, variants) -> Verdict:
    """Downgrade a verdict with the training logs: diverged → not supported; no logs → at most inconclusive."""
    sel = None if runs is None else runs[(runs["method"] == method) & runs["variant"].isin(variants)]
    if sel is None or sel.empty:
        v.note = (v.note + "; " if v.note else "") + f"no training logs for {method} {variants}: stability not checked"
        if v.verdict == SUPPORTED:
            v.verdict = INCONCLUSIVE
        return v
    for run, g in sel.groupby("run"):
        reasons = diverged(g)
        v.evidence.append({"dataset": "", "what": f"training run {run}", "value": f"{g['step'].max()} steps",
                           "versus": "divergence rule", "versus_value": "", "outcome": "; ".join(reasons) or "stable"})
        if reasons:
            v.verdict = NOT_SUPPORTED
    return v


def c8(s, spec) -> Verdict:
    per = {d: few_step(s, spec, "fid", True, "C1", "", [d]) for d in sorted(s["dataset"].unique())}
    v = Verdict("C8", "Results carry over to a second benchmark", "Supported when the C1 rule gives 'supported' on at "
                "least two datasets; not supported when it gives 'not supported' on any dataset; inconclusive otherwise.",
                INCONCLUSIVE)
    for d, r in per.items():
        v.evidence.append({"dataset": d, "what": "C1 rule", "value": "", "versus": "", "versus_value": "", "outcome": r.verdict})
    verdicts = [r.verdict for r in per.values()]
    if NOT_SUPPORTED in verdicts:
        v.verdict = NOT_SUPPORTED
    elif verdicts.count(SUPPORTED) >= 2:
        v.verdict = SUPPORTED
    elif len(per) < 2:
        v.verdict = f"{INCONCLUSIVE} (no data: only {len(per)} dataset(s) in the table)"
    return v


def c9(s, spec, runs=None) -> Verdict:
    d = spec["c9_margin"]
    v = Verdict("C9", "Training is stable, no mode collapse", f"Supported when, at every NFE in {spec['nfe']}, the lower "
                f"95% bound of {spec['method']} recall is ≥ (1 − {d:g}) × the mean recall of the best baseline at its "
                f"largest NFE ≥ {spec['many_steps_nfe']}, and no training run of {spec['method']} diverged; not supported "
                f"when an upper bound is below that threshold or a run diverged; inconclusive otherwise.", INCONCLUSIVE)
    outcomes = []
    for dataset in sorted(s["dataset"].unique()):
        B = _many_step_baselines(s, spec, "recall", dataset)
        E = _arms(s, "recall", dataset=dataset, method=spec["method"], variant=spec["main_variant"], nfe=spec["nfe"])
        if B.empty or E.empty:
            continue
        ref = B.loc[B["mean"].idxmax()]
        thr = (1 - d) * ref["mean"]
        for _, e in E.iterrows():
            iv = interval_of(e)
            o = UNKNOWN if not iv.known else BETTER if iv.low >= thr else WORSE if iv.high < thr else OVERLAP
            outcomes.append(o)
            v.evidence.append({"dataset": dataset, "what": _name(e), "value": iv.fmt(3), "versus": f"(1−{d:g})×{_name(ref)}",
                               "versus_value": f"{thr:.3f}", "outcome": o})
    if not outcomes:
        v.verdict = f"{INCONCLUSIVE} (no data: recall of {spec['method']} at NFE {spec['nfe']} and of a many-step baseline)"
        return v
    v.verdict = NOT_SUPPORTED if WORSE in outcomes else SUPPORTED if all(o == BETTER for o in outcomes) else INCONCLUSIVE
    return _stability(v, runs, spec["method"], [spec["main_variant"]])


def evaluate(df: pd.DataFrame, spec: dict, runs: pd.DataFrame | None = None) -> list[Verdict]:
    """All nine claims, in order, from the tidy table (and optional training logs)."""
    s = summarise(df[df["method"] != FLOOR_METHOD])
    return [
        few_step(s, spec, "fid", True, "C1", "E2ED² gives lower FID than the baselines at the same few steps"),
        few_step(s, spec, "clip_score", False, "C2", "E2ED² gives a higher CLIP score than the baselines at the same few steps"),
        c3(s, spec),
        c4(df, s, spec),
        ablation(df, s, spec, "C5"),
        ablation(df, s, spec, "C6"),
        ablation(df, s, spec, "C7", runs),
        c8(s, spec),
        c9(s, spec, runs),
    ]
