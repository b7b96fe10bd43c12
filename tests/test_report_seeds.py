"""Training-seed variance in the claims (issue #24), K read from the models (issue #28), and C2 on
data without captions (issue #26) — on synthetic metric JSONs and replicates (tests/test_report.py)."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
from scipy import stats

from e2ed2.config import ConfigError
from e2ed2.report import aggregate, claims, comparisons, page
from e2ed2.report.paired import direction, two_level
from e2ed2.report.spec import c4_variants, make_spec
from tests.test_report import B, write_metric

SPEC = make_spec({"method": "e2ed2", "nfe": [2], "ablations": {"C5": {"treatment": "main", "control": "leaky"}}})


def c5_run(root, main_fids, leaky_fids, captions=None):
    """E2ED² main and its leaky control at NFE 2, one FID per training seed; every set's replicates
    share the block's image variation and add 0.2 of their own (image noise ≪ the seed spread)."""
    shared = np.random.default_rng(1).normal(0, 1, B)
    w = partial(write_metric, root, dataset="d", method="e2ed2", sampler="ddim", steps=2, block=0, shared=shared, K=2)
    for seed, (fm, fl) in enumerate(zip(main_fids, leaky_fids)):
        w(variant="main", seed=seed, values={"fid": fm, "clip_score": 30.0}, captions=captions)
        w(variant="leaky", seed=seed, knobs={"start": "leaky"}, values={"fid": fl, "clip_score": 30.0})
    return root


def judge(root, spec=SPEC, image_only=False):
    """(verdicts by id, paired rows) — with ``image_only`` the decision rows use the image-level interval."""
    df = aggregate.collect([root / "d" / "metrics"])
    pairs = comparisons.all_comparisons(df, comparisons.load_replicates(df), spec)
    if image_only:
        pairs = pairs.assign(low=pairs["img_low"], high=pairs["img_high"],
                             outcome=[direction(lo, hi, True) for lo, hi in zip(pairs["img_low"], pairs["img_high"])])
    verdicts, _ = claims.evaluate(df, pairs, spec)
    return {v.id: v for v in verdicts}, pairs


# ---- (a) the two-level interval ----------------------------------------------------------------
def test_seed_variance_turns_an_image_level_supported_into_inconclusive(tmp_path):
    # per-seed differences −5, +3, −11: every image-level interval is ±0.5 wide, the seeds disagree
    c5_run(tmp_path, [40.0, 55.0, 47.0], [45.0, 52.0, 58.0])
    v_img, _ = judge(tmp_path, image_only=True)
    v, pairs = judge(tmp_path)
    assert v_img["C5"].per_dataset["d"] == "supported"
    assert v["C5"].per_dataset["d"] == "inconclusive"
    row = pairs[(pairs.claim == "C5") & (pairs.left_out == "none") & (pairs.train_seed == "all")].iloc[0]
    assert row["design"] == "paired seeds" and row["seeds_a"] == 3 and row["low"] < 0 < row["high"]
    assert row["img_high"] < 0  # the image level alone excludes 0
    # the half-width is t(2) × the standard error of the 3 seed-level differences (image variance ≪ it)
    d = np.array([-5.0, 3.0, -11.0])
    t_h = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert (row["high"] - row["low"]) / 2 == pytest.approx(t_h, rel=0.02)


def test_a_single_training_seed_decides_nothing(tmp_path):
    c5_run(tmp_path, [20.0], [30.0])  # a 10-point gap, one seed: image level says better, seeds cannot
    v, pairs = judge(tmp_path)
    row = pairs[(pairs.claim == "C5") & (pairs.train_seed == "all")].iloc[0]
    assert row["outcome"] == "single seed" and row["img_high"] < 0
    assert v["C5"].per_dataset["d"] == "inconclusive (single training seed: e2ed2, e2ed2/leaky)"
    assert v["C5"].stability["d"]["label"] == "n/a"


def test_independent_arms_and_a_shared_teacher():
    """Welch over two arms' own seed spreads; a single-seed B counts as fixed only when it is A's teacher."""
    rng = np.random.default_rng(0)
    boot = rng.normal(0, 0.1, 400)
    A = {s: {0: (10.0 + x, 10.0 + x + boot)} for s, x in enumerate([0.0, 0.5, -0.5])}
    Bm = {s: {0: (14.0 + x, 14.0 + x + boot)} for s, x in enumerate([1.0, -1.0, 0.0])}
    r = two_level(A, Bm)
    a, b = np.var([0, 0.5, -0.5], ddof=1) / 3, np.var([1, -1, 0], ddof=1) / 3
    nu = (a + b) ** 2 / (a * a / 2 + b * b / 2)
    assert r.design == "independent seeds" and r.estimate == pytest.approx(-4.0)
    assert r.high - r.estimate == pytest.approx(stats.t.ppf(0.975, nu) * np.sqrt(a + b), rel=1e-3)
    teacher = {0: {0: (14.0, 14.0 + boot)}}
    assert two_level(A, teacher).outcome(True) == "single seed"
    fixed = two_level(A, teacher, b_fixed=True)
    assert fixed.design == "B is A's teacher" and fixed.outcome(True) == "better"
    assert fixed.high - fixed.estimate == pytest.approx(stats.t.ppf(0.975, 2) * np.sqrt(a), rel=1e-2)


def test_the_t_interval_holds_its_level_at_three_seeds_where_a_hierarchical_bootstrap_does_not():
    """Two arms, 3 training seeds each, seed spread 10× the image noise, true difference 0."""
    rng = np.random.default_rng(0)
    R, n, hits_t, hits_boot = 300, 3, 0, 0
    for _ in range(R):
        common = rng.normal(0, 0.1, 100)  # the shared image draw's replicates
        A = {s: {0: (v, v + common)} for s, v in enumerate(rng.normal(0, 1, n))}
        Bm = {s: {0: (v, v + common)} for s, v in enumerate(rng.normal(0, 1, n))}
        r = two_level(A, Bm)
        hits_t += r.low <= 0 <= r.high
        xa, xb = np.array([A[s][0][0] for s in A]), np.array([Bm[s][0][0] for s in Bm])
        ia, ib = rng.integers(0, n, (400, n)), rng.integers(0, n, (400, n))
        lo, hi = np.quantile(xa[ia].mean(1) - xb[ib].mean(1), [0.025, 0.975])
        hits_boot += lo <= 0 <= hi
    assert hits_t / R >= 0.92 and hits_boot / R <= 0.88, (hits_t / R, hits_boot / R)


# ---- (b) leave-one-seed-out stability ------------------------------------------------------------
def test_one_outlier_seed_makes_the_verdict_unstable(tmp_path):
    # seeds 0 and 1: main 5 below leaky; seed 2 an outlier 1.8 above it
    c5_run(tmp_path, [20.0, 20.1, 27.0], [25.0, 25.0, 25.2])
    v, pairs = judge(tmp_path)
    st = v["C5"].stability["d"]
    assert v["C5"].per_dataset["d"] == "inconclusive"
    assert st["of"] == 3 and st["agree"] == 2 and st["label"] == "unstable"
    assert st["loo_verdicts"] == {"0": "inconclusive", "1": "inconclusive", "2": "supported"}
    assert set(pairs.loc[pairs.claim == "C5", "left_out"]) == {"none", 0, 1, 2}
    paths = page.write_claims(list(v.values()), [], tmp_path / "claims")
    md = paths[0].read_text()
    assert "| inconclusive (unstable: 2/3) |" in md and "unstable when a training seed is left out: C5" in md
    js = json.loads(paths[2].read_text())
    c5 = next(c for c in js["claims"] if c["id"] == "C5")
    assert c5["stability"]["d"] == {"agree": 2, "of": 3, "label": "unstable", "loo_verdicts": st["loo_verdicts"]}
    html = paths[1].read_text()
    assert "<details>" in html and "inconclusive (unstable: 2/3)" in html


def test_consistent_seeds_give_a_stable_verdict(tmp_path):
    c5_run(tmp_path, [20.0, 20.2, 20.1], [25.0, 25.1, 25.2])
    v, _ = judge(tmp_path)
    assert v["C5"].per_dataset["d"] == "supported"
    assert v["C5"].stability["d"] == {"agree": 3, "of": 3, "label": "stable",
                                      "loo_verdicts": {"0": "supported", "1": "supported", "2": "supported"}}
    md = page.to_markdown(list(v.values()), [], "t")
    assert "| supported (stable 3/3) |" in md
    # the Markdown keeps one row per comparison; the per-seed rows stay in the JSON
    assert md.count("(train seed") == 0 and "per-seed rows (image level): claims.json, paired.csv" in md
    assert sum(e["level"] == "seed" for e in v["C5"].evidence) == 3


# ---- (c) K from the model block ------------------------------------------------------------------
def k_run(root):
    """Variants whose names say nothing about K: alpha (K=1), main (K=2), beta (K=4) of one recipe,
    gamma (K=2, leaky start: another recipe)."""
    shared = np.random.default_rng(1).normal(0, 1, B)
    w = partial(write_metric, root, dataset="d", method="e2ed2", sampler="ddim", block=0, shared=shared)
    for variant, K, knobs in (("alpha", 1, {}), ("main", 2, {}), ("beta", 4, {}), ("gamma", 2, {"start": "leaky"})):
        for steps in (1, 2, 4):
            for seed in (0, 1):
                w(variant=variant, steps=steps, seed=seed, K=K, knobs=knobs,
                  values={"fid": 30.0 + (0 if steps == K else 10) + 0.1 * seed})
    return aggregate.collect([root / "d" / "metrics"])


def test_k_and_c4_arms_come_from_the_model(tmp_path):
    df = k_run(tmp_path)
    assert aggregate.train_k_of(df, "e2ed2") == {"alpha": 1, "main": 2, "beta": 4, "gamma": 2}
    spec = make_spec({"method": "e2ed2", "nfe": [1, 2, 4]})
    assert c4_variants(spec, df) == {"alpha": 1, "main": 2, "beta": 4}
    assert comparisons.matched_variant(df, spec, 4) == "beta" and comparisons.matched_variant(df, spec, 2) == "main"
    pairs = comparisons.all_comparisons(df, comparisons.load_replicates(df), spec)
    c4 = pairs[(pairs.claim == "C4") & (pairs.train_seed == "all") & (pairs.left_out == "none")]
    assert set(zip(c4["a"], c4["b"])) == {
        ("e2ed2/alpha [ddim] @NFE 1", "e2ed2 [ddim] @NFE 1"), ("e2ed2/alpha [ddim] @NFE 1", "e2ed2/beta [ddim] @NFE 1"),
        ("e2ed2 [ddim] @NFE 2", "e2ed2/alpha [ddim] @NFE 2"), ("e2ed2 [ddim] @NFE 2", "e2ed2/beta [ddim] @NFE 2"),
        ("e2ed2/beta [ddim] @NFE 4", "e2ed2/alpha [ddim] @NFE 4"), ("e2ed2/beta [ddim] @NFE 4", "e2ed2 [ddim] @NFE 4")}
    assert (c4["outcome"] == "better").all()
    # a spec that still names C4 variants is checked against the models' K
    with pytest.raises(ConfigError, match="'alpha'.*K = 2.*trained with K = 1"):
        c4_variants(make_spec({"ablations": {"C4": {"variants": {"alpha": 2, "main": 2}}}}), df)


def test_train_k_label_must_agree_and_the_model_block_is_required(tmp_path):
    p = write_metric(tmp_path, dataset="d", method="e2ed2", variant="main", sampler="ddim", steps=2, block=0, K=2,
                     values={"fid": 30.0}, train_k=3)
    with pytest.raises(ValueError, match=r"fid\.json: labels\.train_k = 3 but its model was trained with K = 2"):
        aggregate.collect([tmp_path])
    write_metric(tmp_path, dataset="d", method="e2ed2", variant="main", sampler="ddim", steps=2, block=0, K=2,
                 values={"fid": 30.0}, train_k=2)
    assert aggregate.collect([tmp_path])["train_k"].tolist() == [2]
    rec = json.loads(p.read_text())
    del rec["model"]
    p.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=rf"{p}: no 'model' block.*python -m e2ed2\.report\.backfill"):
        aggregate.collect([tmp_path])


# ---- (d) C2 on data without captions -------------------------------------------------------------
def test_c2_is_not_applicable_without_captions(tmp_path):
    spec = make_spec({"method": "e2ed2", "nfe": [2], "baselines": ["cd"]})
    shared = np.random.default_rng(1).normal(0, 1, B)
    for cap, root in (({"n": 100, "empty": 100}, tmp_path / "none"), ({"n": 100, "empty": 0}, tmp_path / "some")):
        w = partial(write_metric, root, dataset="d", sampler="ddim", steps=2, block=0, shared=shared, captions=cap)
        for seed in (0, 1, 2):
            w(method="e2ed2", variant="main", seed=seed, K=2, values={"fid": 30.0, "clip_score": 31.0 + seed})
            w(method="cd", variant="main", seed=seed, values={"fid": 40.0, "clip_score": 20.0 + seed})
    v, _ = judge(tmp_path / "none", spec)
    assert v["C2"].per_dataset["d"] == v["C2"].verdict == "not applicable: no captions"
    assert not v["C2"].note  # the caption record is there
    lines = page.answers(list(v.values()))
    assert len(lines) == 1 and "C2 not applicable: no captions" in lines[0]
    v, _ = judge(tmp_path / "some", spec)
    assert claims.base(v["C2"].per_dataset["d"]) != "not applicable: no captions"


def test_collapse_check_flags_an_arm_far_below_the_teachers_recall():
    import pandas as pd

    from e2ed2.report import health
    from e2ed2.report.spec import make_spec

    def row(method, variant, steps, value, train_k=None):
        return {"dataset": "d", "metric": "recall", "method": method, "variant": variant, "sampler": "ddim",
                "steps": steps, "nfe": steps, "value": value, "train_k": train_k}

    df = pd.DataFrame([row("edm", "main", 100, 0.8), row("ddim", "main", 10, 0.7),
                       row("e2ed2", "main", 2, 0.6, 2), row("e2ed2", "main", 4, 0.0, 2),  # K' ≠ K: not judged
                       row("e2ed2", "paper", 2, 0.01, 2)])
    check = health.collapse(df, "d", make_spec({}))
    assert check.status == health.FAIL and "collapsed: paper" in check.numbers and "main" not in check.numbers.split(
        "collapsed:")[1]
    ok = health.collapse(df[df["variant"] != "paper"], "d", make_spec({}))
    assert ok.status == health.PASS and ok.methods == []  # gates no claim


def test_backfill_adds_the_model_block_and_the_training_images(tmp_path):
    """Old metric JSONs get their model block from the checkpoint's config.json (the run hash must
    match: a retrained model is refused); a block without train_images gets only that added."""
    from e2ed2.report.backfill import backfill

    run = tmp_path / "run"
    ckpt = run / "d/train/e2ed2/main/s0/final.pt"
    ckpt.parent.mkdir(parents=True)
    (ckpt.parent / "config.json").write_text(json.dumps({"run_hash": "h1", "method": {"name": "e2ed2"}, "resolved": {
        "method": {"name": "e2ed2", "steps": 2}, "train": {"batch_size": 32}}}))
    rec = {"metric": "fid", "value": 50.0, "source": {"kind": "samples"},
           "timing": {"checkpoint": str(ckpt), "run_hash": "h1", "train_step": 120}}
    old, partial = run / "d/metrics/a/fid.json", run / "d/metrics/b/clip.json"
    for path, extra in ((old, {}), (partial, {"model": {"method": {"name": "e2ed2", "steps": 2}, "run_hash": "h1",
                                                         "train_step": 120}})):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**rec, **extra}))
    floor = run / "d/metrics/floor/fid.json"  # a real-data floor: no model, left alone
    floor.parent.mkdir(parents=True)
    floor.write_text(json.dumps({"metric": "fid", "value": 9.0, "source": {"kind": "data"}, "model": None}))
    assert backfill(run) == (2, 0) and backfill(run) == (0, 2)
    for path in (old, partial):
        model = json.loads(path.read_text())["model"]
        assert model["method"]["steps"] == 2 and model["train_step"] == 120 and model["train_images"] == 3840
    (run / "d/metrics/c").mkdir()
    (run / "d/metrics/c/fid.json").write_text(json.dumps({**rec, "timing": {**rec["timing"], "run_hash": "h0"}}))
    with pytest.raises(ValueError, match="retrained since"):
        backfill(run)
