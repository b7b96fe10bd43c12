"""Claims C1–C9 (docs/DESIGN.md §6): each a rule written as code, stated in one sentence beforehand.

Inputs: the tidy table, the paired comparisons (``comparisons.all_comparisons`` → paired.csv),
the baseline health checks (``health``) and, for C7/C9, the training logs. Each claim is judged
on every dataset and gets one of

- ``supported`` / ``not supported``: decided by the data (paired 95% intervals that exclude 0,
  for every training seed of the E2ED² arm);
- ``inconclusive``: the intervals include 0 somewhere, or datasets disagree;
- ``not credible``: a comparison rests on a baseline that fails a health check (named, with what
  the data alone say); but losing to a baseline that passes its checks is "not supported" however
  the other baselines fare;
- ``not tested``: the arms were not sampled (C8: fewer than two datasets).

The headline verdict combines the datasets: the same decided verdict on every dataset stands;
any not-credible dataset makes the claim not credible; otherwise it is inconclusive (mixed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from . import health
from .aggregate import FLOOR_METHOD
from .ci import interval_of, summarise
from .comparisons import baselines, matched_variant
from .curves import diverged

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
NOT_CREDIBLE, NOT_TESTED = "not credible", "not tested"
DECIDED = (SUPPORTED, NOT_SUPPORTED)


@dataclass
class Verdict:
    id: str
    claim: str
    rule: str
    verdict: str
    per_dataset: dict = field(default_factory=dict)  # dataset → verdict
    evidence: list = field(default_factory=list)  # dicts: dataset, what, value, versus, outcome
    note: str = ""


def combine(per_dataset: dict) -> str:
    """The headline verdict from the per-dataset ones (see module docstring)."""
    vs = [v.split(" (")[0] for v in per_dataset.values()]
    if not vs or all(v == NOT_TESTED for v in vs):
        return NOT_TESTED
    vs = [v for v in vs if v != NOT_TESTED]
    if NOT_CREDIBLE in vs:
        return NOT_CREDIBLE
    if len(set(vs)) == 1:
        return vs[0]
    return INCONCLUSIVE


def _outcome(row) -> str:
    if row["high"] < 0:
        return "better" if row["lower_is_better"] else "worse"
    if row["low"] > 0:
        return "worse" if row["lower_is_better"] else "better"
    return "overlap"


def _evidence(v: Verdict, rows: pd.DataFrame) -> None:
    for _, r in rows.iterrows():
        scale = "" if r["b_scale"] == 1 else f"{r['b_scale']:g} × "
        seed = "" if str(r["train_seed"]) == "all" else f" (train seed {r['train_seed']})"
        v.evidence.append({"dataset": r["dataset"], "what": r["a"] + seed, "versus": scale + r["b"],
                           "value": f"{r['metric']} A − B = {r['estimate']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]",
                           "versus_value": f"{int(r['units'])} block×seed unit(s)", "outcome": _outcome(r)})


def _gate(verdict: str, checks, dataset: str, methods) -> str:
    """A decided verdict that rests on a failed or unmeasured baseline becomes 'not credible (…)',
    with what the data alone would say beside the failed checks."""
    bad = health.failed_for(checks, dataset, methods)
    if bad and verdict not in (NOT_TESTED,):
        return (f"{NOT_CREDIBLE} (baseline check {', '.join(sorted({c.id + ': ' + c.status for c in bad}))}; "
                f"the data alone: {verdict})")
    return verdict


def _method_of(b: str) -> str:
    return b.split(" [")[0].split("/")[0]


def _methods_of(rows: pd.DataFrame) -> set:
    return {_method_of(b) for b in rows["b"]}


def all_better(v: Verdict, pairs: pd.DataFrame, claim: str, checks, need: str) -> Verdict:
    """Supported when every comparison (each training seed too) is 'better'; not supported when a
    pooled comparison is 'worse'; inconclusive otherwise."""
    rows = pairs[pairs["claim"] == claim]
    _evidence(v, rows)
    for dataset in sorted(pairs["dataset"].unique()) or []:
        r = rows[rows["dataset"] == dataset]
        if r.empty:
            v.per_dataset[dataset] = f"{NOT_TESTED} (no data: {need})"
            continue
        outcomes = r.apply(_outcome, axis=1)
        pooled = outcomes[r["train_seed"].astype(str) == "all"]
        verdict = (SUPPORTED if (outcomes == "better").all() else NOT_SUPPORTED if (pooled == "worse").any()
                   else INCONCLUSIVE)
        # losing to a baseline that passes every health check refutes "better than every baseline"
        # whatever the other baselines' health: that refutation stands; anything else is gated
        methods = _methods_of(r)
        bad = {m for c in health.failed_for(checks, dataset, methods) for m in c.methods}
        healthy = ~r.loc[pooled.index, "b"].map(_method_of).isin(bad)
        beaten_by = sorted({_method_of(b) for b in r.loc[pooled.index[(pooled == "worse") & healthy], "b"]})
        passing = "a baseline passing its" if len(beaten_by) == 1 else "baselines passing their"
        v.per_dataset[dataset] = (f"{NOT_SUPPORTED} (worse than {', '.join(beaten_by)}: {passing} health checks)"
                                  if beaten_by and bad else _gate(verdict, checks, dataset, methods))
    v.verdict = combine(v.per_dataset)
    return v


def c3(pairs, spec, checks) -> Verdict:
    d = spec["c3_margin"]
    v = Verdict("C3", f"At most 4 steps of {spec['method']} reach within {d:.0%} of the best many-step baseline's FID",
                f"At each NFE n ≤ 4 the {spec['method']} variant trained with K = n is paired with (1 + {d:g}) × "
                f"the best baseline at its largest NFE ≥ {spec['many_steps_nfe']}. Supported when for some n the "
                f"paired FID difference is below 0 with 95% confidence (for every training seed); not supported when "
                f"at every n it is above 0; inconclusive otherwise.", INCONCLUSIVE)
    rows = pairs[pairs["claim"] == "C3"]
    _evidence(v, rows)
    for dataset in sorted(pairs["dataset"].unique()):
        r = rows[rows["dataset"] == dataset]
        if r.empty:
            v.per_dataset[dataset] = (f"{NOT_TESTED} (no data: a baseline at NFE ≥ {spec['many_steps_nfe']} "
                                      f"and E2ED² at ≤ 4)")
            continue
        by_nfe = {n: g.apply(_outcome, axis=1) for n, g in r.groupby("nfe")}
        verdict = (SUPPORTED if any((o == "better").all() for o in by_nfe.values())
                   else NOT_SUPPORTED if all((o == "worse").any() for o in by_nfe.values()) else INCONCLUSIVE)
        v.per_dataset[dataset] = _gate(verdict, checks, dataset, _methods_of(r))
    v.verdict = combine(v.per_dataset)
    return v


ABLATION_TEXT = {"C4": ("Training with K steps beats training with another K, when sampling with K steps",
                        "the variant trained with K = K'", "each variant trained with another K, sampled at K'"),
                 "C5": ("Starting from pure noise beats starting from leaked data (lower FID)", "pure-noise start",
                        "leaky start"),
                 "C6": ("The perceptual loss lowers FID", "with the perceptual loss", "without it"),
                 "C7": ("The adversarial loss lowers FID, and training does not diverge", "with the adversarial loss",
                        "without it")}


def ablation(pairs, spec, checks, cid, runs=None) -> Verdict:
    claim, treat, ctrl = ABLATION_TEXT[cid]
    rule = (f"The FID of {treat} minus that of {ctrl} is paired over images at every NFE both were sampled at. "
            f"Supported when every difference is below 0 with 95% confidence (for every training seed); not "
            f"supported when one is above 0; inconclusive otherwise.")
    if cid == "C7":
        rule += (" The treatment's training logs must also show no divergence (curves.diverged), else not "
                 "supported; without logs the verdict is at most inconclusive.")
    v = all_better(Verdict(cid, claim, rule, INCONCLUSIVE), pairs, cid, checks,
                   f"the {cid} arms (spec ablations.{cid})")
    if cid == "C7":
        v = _stability(v, runs, spec["method"],
                       [spec["ablations"].get("C7", {}).get("treatment", spec["main_variant"])])
    return v


def _stability(v: Verdict, runs, method: str, variants) -> Verdict:
    """Downgrade with the training logs: diverged → not supported; no logs → at most inconclusive."""
    sel = None if runs is None else runs[(runs["method"] == method) & runs["variant"].isin(variants)]
    if sel is None or sel.empty:
        v.note = (v.note + "; " if v.note else "") + f"no training logs for {method} {variants}: stability not checked"
        if v.verdict == SUPPORTED:
            v.verdict = INCONCLUSIVE
        return v
    for run, g in sel.groupby("run"):
        reasons = diverged(g)
        v.evidence.append({"dataset": g["dataset"].iloc[0], "what": f"training run {run}",
                           "value": f"{g['step'].max()} steps", "versus": "divergence rule", "versus_value": "",
                           "outcome": "; ".join(reasons) or "stable"})
        if reasons and v.verdict != NOT_TESTED:
            v.verdict = NOT_SUPPORTED
    return v


def c8(c1: Verdict, datasets: list[str]) -> Verdict:
    v = Verdict("C8", "C1 holds on every benchmark (at least two datasets)",
                "Supported when the C1 rule gives 'supported' on every dataset (two or more) with every baseline "
                "health check passing; not supported when it gives 'not supported' on any; not credible when a "
                "dataset's baselines fail their checks; not tested with fewer than two datasets; inconclusive "
                "otherwise.",
                INCONCLUSIVE, dict(c1.per_dataset))
    for d, verdict in c1.per_dataset.items():
        v.evidence.append({"dataset": d, "what": "C1 rule", "value": "", "versus": "", "versus_value": "",
                           "outcome": verdict})
    vs = [x.split(" (")[0] for x in c1.per_dataset.values()]
    if len(datasets) < 2:
        v.verdict = f"{NOT_TESTED} (only {len(datasets)} dataset: {', '.join(datasets)})"
    elif NOT_SUPPORTED in vs:
        v.verdict = NOT_SUPPORTED
    elif NOT_CREDIBLE in vs:
        v.verdict = NOT_CREDIBLE
    elif vs and all(x == SUPPORTED for x in vs) and len(vs) == len(datasets):
        v.verdict = SUPPORTED
    return v


def c9(df, spec, checks, runs=None) -> Verdict:
    d = spec["c9_margin"]
    v = Verdict("C9", f"{spec['method']} keeps ≥ {1 - d:.0%} of the best many-step baseline's recall, and training "
                f"does not diverge",
                f"At each NFE n in {spec['nfe']}, the {spec['method']} variant trained with K = n: "
                f"supported when the lower 95% bound of its recall (logit-scale interval over seed blocks × training "
                f"seeds, Wilson interval over the reference images with one replicate) is ≥ (1 − {d:g}) × the mean "
                f"recall of the best baseline at its largest NFE ≥ {spec['many_steps_nfe']} and no {spec['method']} "
                f"run diverged; not supported when an upper bound is below it or a run diverged; inconclusive "
                f"otherwise.",
                INCONCLUSIVE)
    s = summarise(df[df["method"] != FLOOR_METHOD])
    for dataset in sorted(s["dataset"].unique()):
        sd = s[(s["dataset"] == dataset) & (s["metric"] == "recall")]
        B = sd[sd["method"].isin(baselines(s, spec)) & (sd["variant"] == spec["main_variant"])
               & (sd["nfe"] >= spec["many_steps_nfe"])]
        outcomes, methods = [], set()
        if not B.empty:
            ref = B.loc[B["mean"].idxmax()]
            methods.add(ref["method"])
            thr = (1 - d) * ref["mean"]
            for nfe in spec["nfe"]:
                E = sd[(sd["method"] == spec["method"]) & (sd["variant"] == matched_variant(s, spec, nfe))
                       & (sd["nfe"] == nfe)]
                for _, e in E.iterrows():
                    iv = interval_of(e)
                    o = "better" if iv.low >= thr else "worse" if iv.high < thr else "overlap"
                    outcomes.append(o)
                    v.evidence.append({"dataset": dataset, "what": f"{e['method']}/{e['variant']} @NFE {int(nfe)}",
                                       "value": iv.fmt(3),
                                       "versus": f"(1−{d:g})×{ref['method']} [{ref['sampler']}] @NFE {int(ref['nfe'])}",
                                       "versus_value": f"{thr:.3f}", "outcome": o})
        if not outcomes:
            v.per_dataset[dataset] = f"{NOT_TESTED} (no data: recall of {spec['method']} and of a many-step baseline)"
            continue
        verdict = (NOT_SUPPORTED if "worse" in outcomes
                   else SUPPORTED if all(o == "better" for o in outcomes) else INCONCLUSIVE)
        v.per_dataset[dataset] = _gate(verdict, checks, dataset, methods)
    v.verdict = combine(v.per_dataset)
    return _stability(v, runs, spec["method"], [spec["main_variant"]])


def evaluate(df: pd.DataFrame, pairs: pd.DataFrame, spec: dict,
             runs: pd.DataFrame | None = None) -> tuple[list[Verdict], list]:
    """All nine claims, in order, and the health checks they were gated by."""
    checks = health.checks(df, spec)
    datasets = sorted(df["dataset"].unique())
    pairs = pairs if len(pairs) else pd.DataFrame(columns=["claim", "dataset", "b", "train_seed"])
    pairs = pairs.assign(dataset=pairs["dataset"].astype(str))
    for d in datasets:  # every dataset gets a row, even without any comparison
        if d not in set(pairs["dataset"]):
            pairs = pd.concat([pairs, pd.DataFrame([{"claim": "", "dataset": d}])], ignore_index=True)
    m = spec["method"]
    few = (f"At each NFE n in {spec['nfe']}, the {m} variant trained with K = n is paired over images with every "
           f"baseline arm sampled at n (same seeds and captions). Supported when every paired difference favours {m} "
           f"with 95% confidence, for every training seed of {m}; not supported when a baseline is better with 95% "
           f"confidence; inconclusive otherwise. Worse than a baseline that passes its health checks: not "
           f"supported; otherwise a baseline failing a health check makes it not credible.")
    c1 = all_better(Verdict("C1", f"{m} has lower FID than every baseline at each few-step NFE {spec['nfe']}", few,
                            INCONCLUSIVE), pairs, "C1", checks, "E2ED² and a baseline at the same NFE")
    c2 = all_better(Verdict("C2", f"{m} has a higher CLIP score than every baseline at each few-step NFE {spec['nfe']}",
                            few, INCONCLUSIVE), pairs, "C2", checks, "CLIP scores of E2ED² and a baseline")
    verdicts = [c1, c2, c3(pairs, spec, checks)]
    verdicts += [ablation(pairs, spec, checks, cid, runs) for cid in ("C4", "C5", "C6", "C7")]
    verdicts += [c8(c1, datasets), c9(df, spec, checks, runs)]
    return verdicts, checks
