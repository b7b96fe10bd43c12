"""Claims C1–C9 (docs/DESIGN.md §6): each a rule written as code, stated in one sentence beforehand.

Inputs: the tidy table, the paired comparisons (``comparisons.all_comparisons`` → paired.csv),
the baseline health checks (``health``) and, for C7/C9, the training logs. Each claim is judged
on every dataset and gets one of

- ``supported`` / ``not supported``: decided by the data: two-level 95% intervals (training seeds
  and images, ``paired.two_level``) that exclude 0 — the effect holds at the level of training
  seeds;
- ``inconclusive``: the intervals include 0 somewhere, an arm has a single training seed (a
  ``single seed`` comparison is never better or worse), or datasets disagree;
- ``not applicable: no captions``: C2 on a dataset whose captions are all empty (a CLIP score
  against an empty caption measures nothing about prompt adherence);
- ``not credible``: a comparison rests on a baseline that fails a health check (named, with what
  the data alone say); but losing to a baseline that passes its checks is "not supported" however
  the other baselines fare;
- ``not tested``: the arms were not sampled (C8: fewer than two datasets).

The headline verdict combines the datasets: the same decided verdict on every dataset stands;
any not-credible dataset makes the claim not credible; otherwise it is inconclusive (mixed).

Stability (issue #24; ``stability``): each verdict is recomputed with each training seed s left
out (seed s dropped from every arm that has it and another seed: the leave-one-seed-out rows of
paired.csv, and the tidy table for C9; training logs of seed s for C7/C9). ``Verdict.stability[dataset]`` =
{agree, of, label, loo_verdicts}: ``of`` recomputations (one per training seed of the dataset's
multi-seed arms), ``agree`` of them with the full verdict; ``unstable`` when any disagrees,
``n/a`` when no arm has two training seeds. Health checks stay those of the full table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import health, names
from .aggregate import FLOOR_METHOD
from .ci import t_interval, wilson
from .comparisons import NONE, baselines, matched_variant
from .curves import MIN_ROWS_PER_QUARTER, blowup_tested, diverged, logged_rows
from .paired import SINGLE, SINGLE_SEED
from .stability import NOT_ASSESSED, STABLE, UNSTABLE, decision_rows, loo_seeds, str_cols, without_seed

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
NOT_CREDIBLE, NOT_TESTED, NOT_APPLICABLE = "not credible", "not tested", "not applicable"
NO_CAPTIONS = f"{NOT_APPLICABLE}: no captions"
DECIDED = (SUPPORTED, NOT_SUPPORTED)


@dataclass
class Verdict:
    id: str
    claim: str
    rule: str
    verdict: str
    per_dataset: dict = field(default_factory=dict)  # dataset → verdict
    evidence: list = field(default_factory=list)  # dicts: dataset, what, value, versus, outcome, level
    note: str = ""
    stability: dict = field(default_factory=dict)  # dataset → {agree, of, label, loo_verdicts}


def base(verdict: str) -> str:
    """The verdict without its parenthesised detail ('not supported (worse than cd …)' → 'not supported')."""
    return NO_CAPTIONS if verdict.startswith(NOT_APPLICABLE) else verdict.split(" (")[0]


def combine(per_dataset: dict) -> str:
    """The headline verdict from the per-dataset ones (see module docstring)."""
    every = [base(v) for v in per_dataset.values()]
    vs = [v for v in every if v != NOT_TESTED and not v.startswith(NOT_APPLICABLE)]
    if not vs:
        return NO_CAPTIONS if NO_CAPTIONS in every else NOT_TESTED
    if NOT_CREDIBLE in vs:
        return NOT_CREDIBLE
    if len(set(vs)) == 1:
        return vs[0]
    return INCONCLUSIVE


def _seeds_text(r) -> str:
    """'3 vs 3 training seeds (paired seeds)' and the like."""
    na, nb = int(r["seeds_a"]), int(r["seeds_b"])
    return f"{na} vs {nb} training seed{'s' if max(na, nb) > 1 else ''} ({r['design']})"


def _evidence(v: Verdict, rows: pd.DataFrame, seed_rows: pd.DataFrame | None = None) -> None:
    """One 'comparison' entry per decision row (two-level interval, the image-level one beside it),
    then one 'seed' entry per training seed of A (image level; for reading, never deciding)."""
    for level, rs in (("comparison", rows), ("seed", seed_rows)):
        for _, r in (rs if rs is not None else pd.DataFrame()).iterrows():
            scale = "" if r["b_scale"] == 1 else f"{r['b_scale']:g} × "
            seed = "" if level == "comparison" else f" (train seed {r['train_seed']})"
            value = f"{r['metric']} A − B = {r['estimate']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
            if level == "comparison" and r["design"] != SINGLE:
                value += f"; images only [{r['img_low']:+.3f}, {r['img_high']:+.3f}]"
            v.evidence.append({"dataset": r["dataset"], "what": r["a"] + seed, "versus": scale + r["b"], "value": value,
                               "versus_value": _seeds_text(r) if level == "comparison" else "image level",
                               "outcome": r["outcome"], "level": level})


def _single(rows: pd.DataFrame) -> str:
    """' (single training seed: cd, ct)': the arms whose one training seed kept comparisons undecided."""
    arms = set()
    for _, r in rows[rows["outcome"] == SINGLE_SEED].iterrows():
        teacher = str(r.get("b_teacher", False)) == "True"  # a teacher's one run is no reason
        arms |= {x.split(" [")[0] for x, n, why in ((r["a"], r["seeds_a"], True), (r["b"], r["seeds_b"], not teacher))
                 if int(n) < 2 and why}
    return f" (single training seed: {', '.join(sorted(arms))})" if arms else ""


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


def _claim_rows(pairs: pd.DataFrame, seed_rows: pd.DataFrame | None, claim: str):
    """(decision rows, per-seed rows) of one claim."""
    seeds = None if seed_rows is None else seed_rows[seed_rows["claim"] == claim]
    return pairs[pairs["claim"] == claim], seeds


def all_better(v: Verdict, pairs: pd.DataFrame, claim: str, checks, need: str, seed_rows=None,
               skip: dict | None = None) -> Verdict:
    """Supported when every comparison is 'better' at the seed level; not supported when one is
    'worse'; inconclusive otherwise (a 'single seed' comparison decides nothing). ``skip``:
    {dataset: verdict} for datasets where the claim does not apply."""
    rows, seeds = _claim_rows(pairs, seed_rows, claim)
    _evidence(v, rows, seeds)
    for dataset in sorted(pairs["dataset"].unique()) or []:
        r = rows[rows["dataset"] == dataset]
        if dataset in (skip or {}):
            v.per_dataset[dataset] = skip[dataset]
            continue
        if r.empty:
            v.per_dataset[dataset] = f"{NOT_TESTED} (no data: {need})"
            continue
        outcomes = r["outcome"]
        verdict = (SUPPORTED if (outcomes == "better").all() else NOT_SUPPORTED if (outcomes == "worse").any()
                   else INCONCLUSIVE + _single(r))
        # losing to a baseline that passes every health check refutes "better than every baseline"
        # whatever the other baselines' health: that refutation stands; anything else is gated
        methods = _methods_of(r)
        bad = {m for c in health.failed_for(checks, dataset, methods) for m in c.methods}
        healthy = ~r["b"].map(_method_of).isin(bad)
        beaten_by = sorted({_method_of(b) for b in r.loc[(outcomes == "worse") & healthy, "b"]})
        passing = "a baseline passing its" if len(beaten_by) == 1 else "baselines passing their"
        v.per_dataset[dataset] = (f"{NOT_SUPPORTED} (worse than {', '.join(beaten_by)}: {passing} health checks)"
                                  if beaten_by and bad else _gate(verdict, checks, dataset, methods))
    v.verdict = combine(v.per_dataset)
    return v


SEED_LEVEL = ("with 95% confidence over training seeds and images (two-level interval; a comparison with an arm of "
              "one training seed decides nothing)")


def c3(pairs, spec, checks, seed_rows=None) -> Verdict:
    d = spec["c3_margin"]
    v = Verdict("C3", f"At most 4 steps of {spec['method']} reach within {d:.0%} of the best many-step baseline's FID",
                f"At each NFE n ≤ 4 the {spec['method']} variant trained with K = n is paired with (1 + {d:g}) × "
                f"the best baseline at its largest NFE ≥ {spec['many_steps_nfe']}. Supported when for some n the "
                f"paired FID difference is below 0 {SEED_LEVEL}; not supported when at every n it is above 0; "
                f"inconclusive otherwise.", INCONCLUSIVE)
    rows, seeds = _claim_rows(pairs, seed_rows, "C3")
    _evidence(v, rows, seeds)
    for dataset in sorted(pairs["dataset"].unique()):
        r = rows[rows["dataset"] == dataset]
        if r.empty:
            v.per_dataset[dataset] = (f"{NOT_TESTED} (no data: a baseline at NFE ≥ {spec['many_steps_nfe']} "
                                      f"and E2ED² at ≤ 4)")
            continue
        by_nfe = {n: g["outcome"] for n, g in r.groupby("nfe")}
        verdict = (SUPPORTED if any((o == "better").all() for o in by_nfe.values())
                   else NOT_SUPPORTED if all((o == "worse").any() for o in by_nfe.values())
                   else INCONCLUSIVE + _single(r))
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


def ablation(pairs, spec, checks, cid, runs=None, seed_rows=None) -> Verdict:
    claim, treat, ctrl = ABLATION_TEXT[cid]
    rule = (f"The FID of {treat} minus that of {ctrl} is paired over images and training seeds at every NFE both "
            f"were sampled at. Supported when every difference is below 0 {SEED_LEVEL}; not supported when one is "
            f"above 0; inconclusive otherwise.")
    if cid == "C4":
        rule += (" The arms are the variants whose models differ from the main variant only in the K they were "
                 "trained with (read from each model's config).")
    if cid == "C7":
        rule += (" The treatment's training logs must also show no divergence (curves.diverged: a non-finite loss, "
                 f"or, where each quarter of a log has ≥ {MIN_ROWS_PER_QUARTER} rows, a last-quarter median |loss| "
                 "over 3× the second quarter's), else not supported; without logs the verdict is at most "
                 "inconclusive.")
    need = "variants of the main recipe trained with another K" if cid == "C4" else f"the {cid} arms (spec ablations)"
    v = all_better(Verdict(cid, claim, rule, INCONCLUSIVE), pairs, cid, checks, need, seed_rows)
    if cid == "C7":
        v = _divergence(v, runs, spec["method"],
                        [spec["ablations"].get("C7", {}).get("treatment", spec["main_variant"])])
    return v


def _divergence(v: Verdict, runs, method: str, variants) -> Verdict:
    """Downgrade with the training logs: diverged → not supported; no logs → at most inconclusive."""
    sel = None if runs is None else runs[(runs["method"] == method) & runs["variant"].isin(variants)]
    if sel is None or sel.empty:
        v.note = (v.note + "; " if v.note else "") + f"no training logs for {method} {variants}: stability not checked"
        if v.verdict == SUPPORTED:
            v.verdict = INCONCLUSIVE
        return v
    for run, g in sel.groupby("run"):
        reasons = diverged(g)
        stable = "stable" if blowup_tested(g) else (
            f"finite (blow-up test not applied: {logged_rows(g)} logged steps, it needs "
            f"{4 * MIN_ROWS_PER_QUARTER})")
        v.evidence.append({"dataset": g["dataset"].iloc[0], "what": f"training run {run}",
                           "value": f"{g['step'].max()} steps", "versus": "divergence rule", "versus_value": "",
                           "outcome": "; ".join(reasons) or stable, "level": "comparison"})
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
                           "outcome": verdict, "level": "comparison"})
    vs = [base(x) for x in c1.per_dataset.values()]
    if len(datasets) < 2:
        v.verdict = f"{NOT_TESTED} (only {len(datasets)} dataset: {', '.join(datasets)})"
    elif NOT_SUPPORTED in vs:
        v.verdict = NOT_SUPPORTED
    elif NOT_CREDIBLE in vs:
        v.verdict = NOT_CREDIBLE
    elif vs and all(x == SUPPORTED for x in vs) and len(vs) == len(datasets):
        v.verdict = SUPPORTED
    return v


def _seed_values(rows: pd.DataFrame) -> np.ndarray:
    """One value per training seed: the mean over its seed blocks."""
    return rows.groupby("train_seed")["value"].mean().to_numpy(float)


def _recall_interval(e: pd.DataFrame):
    """(mean, low, high, seeds) of a recall arm at the seed level: logit-scale t-interval over
    training seeds; one seed: the Wilson interval over the reference images (shown, not deciding)."""
    x = _seed_values(e)
    if len(x) >= 2:
        iv = t_interval(x, metric="recall")
        return iv.mean, iv.low, iv.high, len(x)
    n = e["reference_n"].max() if "reference_n" in e else math.nan
    lo, hi = wilson(float(x[0]), int(n)) if np.isfinite(n) and n > 0 else (math.nan, math.nan)
    return float(x[0]), lo, hi, 1


def c9(df, spec, checks, runs=None) -> Verdict:
    d = spec["c9_margin"]
    v = Verdict("C9", f"{spec['method']} keeps ≥ {1 - d:.0%} of the best many-step baseline's recall, and training "
                f"does not diverge",
                f"At each NFE n in {spec['nfe']}, the {spec['method']} variant trained with K = n: "
                f"supported when the lower 95% bound of its recall (logit-scale t-interval over training seeds, each "
                f"seed the mean over its seed blocks) is ≥ (1 − {d:g}) × the mean recall of the best baseline at its "
                f"largest NFE ≥ {spec['many_steps_nfe']} and no {spec['method']} run diverged; not supported when an "
                f"upper bound is below it or a run diverged; inconclusive otherwise — and with a single training "
                f"seed (its Wilson interval over the reference images is shown, and decides nothing).",
                INCONCLUSIVE)
    rec = df[(df["method"] != FLOOR_METHOD) & (df["metric"] == "recall")]
    for dataset in sorted(df["dataset"].unique()):
        sd = rec[rec["dataset"] == dataset]
        B = sd[sd["method"].isin(baselines(sd, spec)) & (sd["variant"] == spec["main_variant"])
               & (sd["nfe"] >= spec["many_steps_nfe"])]
        outcomes, methods = [], set()
        if not B.empty:
            means = B.groupby(["method", "sampler", "nfe"])["value"].mean()
            (ref_method, ref_sampler, ref_nfe), ref_mean = means.idxmax(), float(means.max())
            methods.add(ref_method)
            thr = (1 - d) * ref_mean
            for nfe in spec["nfe"]:
                E = sd[(sd["method"] == spec["method"]) & (sd["variant"] == matched_variant(sd, spec, nfe))
                       & (sd["nfe"] == nfe)]
                for (variant, sampler), e in E.groupby(["variant", "sampler"]):
                    arm = f"{spec['method']}/{variant} [{sampler}] @NFE {int(nfe)}"
                    mean, low, high, n = _recall_interval(e)
                    o = (SINGLE_SEED if n < 2 else "better" if low >= thr else "worse" if high < thr else "overlap")
                    outcomes.append(o)
                    v.evidence.append({"dataset": dataset, "what": arm,
                                       "value": f"{mean:.3f} [{low:.3f}, {high:.3f}] over {n} training seed"
                                                f"{'s' if n > 1 else ''}",
                                       "versus": f"(1−{d:g})×{ref_method} [{ref_sampler}] @NFE {int(ref_nfe)}",
                                       "versus_value": f"{thr:.3f}", "outcome": o, "level": "comparison"})
        if not outcomes:
            v.per_dataset[dataset] = f"{NOT_TESTED} (no data: recall of {spec['method']} and of a many-step baseline)"
            continue
        verdict = (NOT_SUPPORTED if "worse" in outcomes
                   else SUPPORTED if all(o == "better" for o in outcomes) else INCONCLUSIVE
                   + (f" (single training seed: {spec['method']})" if SINGLE_SEED in outcomes else ""))
        v.per_dataset[dataset] = _gate(verdict, checks, dataset, methods)
    v.verdict = combine(v.per_dataset)
    return _divergence(v, runs, spec["method"], [spec["main_variant"]])


# ---- datasets without captions (issue #26) -----------------------------------------------------
def no_captions(df: pd.DataFrame) -> dict[str, str]:
    """{dataset: NO_CAPTIONS} for datasets whose CLIP JSONs record every caption empty
    (``captions_empty`` = 1 on every CLIP-score row that records it)."""
    if "captions_empty" not in df:
        return {}
    out = {}
    clip = df[(df["metric"] == "clip_score") & df["captions_empty"].notna()]
    for dataset, g in clip.groupby("dataset"):
        if (g["captions_empty"] >= 1.0).all():
            out[str(dataset)] = NO_CAPTIONS
    return out


def captions_recorded(df: pd.DataFrame, dataset: str) -> bool:
    """Whether the CLIP JSONs of ``dataset`` say how many captions were empty."""
    if "captions_empty" not in df:
        return False
    r = df[(df["dataset"] == dataset) & (df["metric"] == "clip_score")]
    return bool(len(r)) and bool(r["captions_empty"].notna().any())


# ---- evaluation and leave-one-seed-out stability (e2ed2.report.stability) ------------------------
def _core(verdict: str) -> str:
    """What a leave-one-out recomputation must reproduce: the decided verdict (for a not-credible
    one, what the data alone say), without the parenthesised detail."""
    m = re.search(r"the data alone: (.*)\)$", verdict)
    return f"{NOT_CREDIBLE} / {base(m.group(1))}" if verdict.startswith(NOT_CREDIBLE) and m else base(verdict)


def _verdicts(df, pairs, spec, runs, checks, seed_rows=None) -> list[Verdict]:
    datasets = sorted(df["dataset"].unique())
    pairs = pairs.assign(dataset=pairs["dataset"].astype(str))
    for d in datasets:  # every dataset gets a row, even without any comparison
        if d not in set(pairs["dataset"]):
            pairs = pd.concat([pairs, pd.DataFrame([{"claim": "", "dataset": d}])], ignore_index=True)
    m = spec["method"]
    few = (f"At each NFE n in {spec['nfe']}, the {m} variant trained with K = n is paired over images and training "
           f"seeds with every baseline arm sampled at n (same seeds and captions). Supported when every paired "
           f"difference favours {m} {SEED_LEVEL}; not supported when a baseline is better with that confidence; "
           f"inconclusive otherwise. Worse than a baseline that passes its health checks: not supported; otherwise a "
           f"baseline failing a health check makes it not credible.")
    c1 = all_better(Verdict("C1", f"{m} has lower FID than every baseline at each few-step NFE {spec['nfe']}", few,
                            INCONCLUSIVE), pairs, "C1", checks, "E2ED² and a baseline at the same NFE", seed_rows)
    c2_rule = few + (" Not applicable on a dataset whose captions are all empty (the CLIP JSONs' caption record).")
    c2 = all_better(Verdict("C2", f"{m} has a higher CLIP score than every baseline at each few-step NFE {spec['nfe']}",
                            c2_rule, INCONCLUSIVE), pairs, "C2", checks, "CLIP scores of E2ED² and a baseline",
                    seed_rows, skip=no_captions(df))
    unrecorded = [d for d in datasets if not captions_recorded(df, d)]
    if unrecorded:
        c2.note = (f"whether captions exist is not recorded in the CLIP JSONs of {', '.join(unrecorded)} (field "
                   f"'captions'); C2 is judged as if they do")
    verdicts = [c1, c2, c3(pairs, spec, checks, seed_rows)]
    verdicts += [ablation(pairs, spec, checks, cid, runs, seed_rows) for cid in ("C4", "C5", "C6", "C7")]
    verdicts += [c8(c1, datasets), c9(df, spec, checks, runs)]
    return verdicts


def evaluate(df: pd.DataFrame, pairs: pd.DataFrame, spec: dict,
             runs: pd.DataFrame | None = None) -> tuple[list[Verdict], list]:
    """All nine claims, in order, with their leave-one-seed-out stability, and the health checks
    they were gated by."""
    names.learn(df)
    checks = health.checks(df, spec)
    missing = sorted({"outcome", "left_out", "design", "seeds_a", "seeds_b", "img_low"} - set(pairs.columns))
    if len(pairs) and missing:
        raise ValueError(f"paired comparisons lack columns {missing} (written before the two-level intervals); "
                         f"rerun `python -m e2ed2.report paired`")
    pairs = str_cols(pairs) if len(pairs) else pd.DataFrame(columns=["claim", "dataset", "b", "left_out",
                                                                      "train_seed", "outcome"])
    seed_rows = pairs[(pairs["left_out"] == NONE) & (pairs["train_seed"] != "all")]
    verdicts = _verdicts(df, decision_rows(pairs), spec, runs, checks, seed_rows)
    seeds = loo_seeds(df)
    loo = {}
    for s in sorted({s for ss in seeds.values() for s in ss}):
        df_s, runs_s = without_seed(df, runs, s)
        loo[s] = {v.id: v for v in _verdicts(df_s, decision_rows(pairs, str(s)), spec, runs_s, checks)}
    for v in verdicts:
        for dataset, verdict in v.per_dataset.items():
            again = {str(s): loo[s][v.id].per_dataset.get(dataset, NOT_TESTED) for s in seeds.get(dataset, [])}
            agree = sum(_core(x) == _core(verdict) for x in again.values())
            label = NOT_ASSESSED if not again else STABLE if agree == len(again) else UNSTABLE
            v.stability[dataset] = {"agree": agree, "of": len(again), "label": label, "loo_verdicts": again}
    return verdicts, checks
