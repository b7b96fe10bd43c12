"""Report stage on synthetic metric JSONs (no training): aggregation, intervals, paired comparisons,
baseline health, tables, figures, verdicts."""

from __future__ import annotations

import json
import math
import re
from functools import partial

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from e2ed2.methods import METHODS, display_of
from e2ed2.metrics.bootstrap import bootstrap_indices
from e2ed2.metrics.frechet import GramFrechet, frechet_distance, statistics
from e2ed2.report import aggregate, ci, claims, comparisons, curves, grid, health, paired, tables
from e2ed2.report.cli import main as report_main
from e2ed2.report.spec import load_spec, make_spec

B = 200  # bootstrap replicates of the synthetic sets
SPEC = {"method": "e2ed2", "nfe": [1, 2, 4],  # C4's arms come from the models' K (no ablations.C4)
        "ablations": {"C5": {"treatment": "main", "control": "leaky"}, "C6": {"treatment": "main", "control": "noperc"},
                      "C7": {"treatment": "main", "control": "noadv"}},
        "health": {"teacher": "edm"}}
TEACHER = "run/train/edm/main/s0/final.pt"  # the teacher checkpoint: DDIM and EDM sample it, students start from it
E2ED2_KNOBS = {"main": {}, "k1": {}, "k4": {}, "leaky": {"start": "leaky"}, "noperc": {"lambda_perc": 0.0},
               "noadv": {"lambda_adv": 0.0}}


def model_block(method: str, variant: str, seed: int, K: int | None = None, knobs: dict | None = None) -> dict:
    """The ``model`` block a sample set records: method knobs (E2ED²: ``steps`` = its training K), run hash, step."""
    if method in ("edm", "ddim"):  # DDIM samples the teacher's checkpoint
        return {"method": {"name": "edm", "P_mean": -1.2}, "run_hash": "teacher", "train_step": 100,
                "train_images": 3200}
    knobs = {"name": method, "teacher": TEACHER, **({} if K is None else {"steps": K}), "start": "pure",
             "lambda_perc": 1.0, "lambda_adv": 0.1, **(knobs or {})}
    return {"method": knobs, "run_hash": f"{method}-{variant}-{seed}", "train_step": 100, "train_images": 3840}


def write_metric(root, *, dataset, method, variant, sampler, steps, block, values: dict, seed=0, n=100, nfe=None,
                 shared=None, K=None, knobs=None, model=True, captions=None, **labels):
    """One metric JSON in the METRICS contract (with the sample set's model block: ``K`` the
    training K of E2ED², ``knobs`` its other method knobs), plus the paired replicates beside it:
    replicate r of every set of a block shares ``shared[r]`` (the images' common variation), so
    paired differences are tighter than the sets' own spread."""
    nfe = steps if nfe is None else nfe
    rec = {"metric": "fid", "results": [{"metric": k, "value": v} for k, v in values.items()],
           "backend": "clean-fid", "feature_network": {"name": "inception-2015-12-05", "sha256": "abc"},
           "preprocessing": "clean", "n": n, "seeds": f"{block * n}-{block * n + n - 1}",
           "reference": {"dataset": dataset, "split": "heldout", "n": 500, "stats_file": "ref.npz"},
           "labels": {"dataset": dataset, "method": method, "variant": variant, "train_seed": seed, "sampler": sampler,
                      "steps": steps, "nfe": nfe, "seed_block": block,
                      # the workflow's labels: how the report names a registered method
                      **(display_of(method) if method in METHODS else {}), **labels},
           "timing": {"nfe": nfe, "ms_per_image": 2.0 * nfe, "batch_size": 64, "device": "cpu", "device_name": "x86_64",
                      "dtype": "float32"},
           "hardware": {"cpu": "test-cpu"}, "versions": {"torch": "2"}}
    if captions is not None:  # the CLIP record of the scored set's captions: {n, empty}
        rec["captions"] = captions
    if method != "real" and model:
        rec["model"] = model_block(method, variant, seed, K, knobs)
        ckpt = TEACHER if method in ("edm", "ddim") else f"run/train/{method}/{variant}/s{seed}/final.pt"
        rec["timing"]["checkpoint"] = ckpt
    if method == "real":
        rec["timing"] = {}
        rec["labels"] = {k: v for k, v in rec["labels"].items() if k not in ("sampler", "steps", "nfe")}
    folder = root / dataset / "metrics" / method / variant / f"s{seed}" / f"{sampler}-{steps}" / f"b{block}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fid.json").write_text(json.dumps(rec))
    rng = np.random.default_rng(abs(hash((dataset, method, variant, sampler, steps, block, seed))) % 2**32)
    common = shared if shared is not None else np.zeros(B)
    if "fid" in values:
        np.savez(folder / "features.npz", fid_boot=values["fid"] + 5 * common + rng.normal(0, 0.2, B))
    if "clip_score" in values:
        np.savez(folder / "clip_scores.npz", clip_score_boot=values["clip_score"] - common + rng.normal(0, 0.05, B))
    return folder / "fid.json"


def baseline_fid(method: str, steps: int) -> float:
    return {"ddim": 80 - 10 * math.log2(steps), "cd": 45.0, "ct": 50.0, "edm": 25.0}[method]


def synth(root, e2e_fid: float, datasets=("mnist5k",), ablation_gap: float = -5.0, seeds=(0, 1)):
    """A whole synthetic run: healthy baselines (DDIM falls with steps, CD-2 < DDIM-10, CT near the
    floor, a teacher within 2× the floor), E2ED² at ``e2e_fid`` for every trained K, ablation
    controls ``ablation_gap`` away, a floor of 20. The teacher (EDM, DDIM) is one run; CD, CT and
    every E2ED² variant have the training ``seeds``, a seed moving FID by 0.1."""
    for d in datasets:
        shared = np.random.default_rng(1).normal(0, 1, B)
        w = partial(write_metric, root, dataset=d, block=0, shared=shared)
        w(method="real", variant="main", sampler="", steps=0, values={"fid": 20.0, "recall": 0.9, "clip_score": 60})
        for steps in (1, 2, 4, 10, 50):
            w(method="ddim", variant="main", sampler="ddim", steps=steps,
              values={"fid": baseline_fid("ddim", steps), "clip_score": 40, "recall": 0.6})
        for steps in (20, 100):  # ancestral: DDIM-10/50 must be no worse than 1.2× these when healthy
            w(method="edm", variant="main", sampler="ddpm", steps=steps, values={"fid": 40.0})
        for m in ("cd", "ct"):
            for steps in (1, 2, 4):
                for seed in seeds:
                    w(method=m, variant="main", sampler="consistency", steps=steps, seed=seed,
                      values={"fid": baseline_fid(m, steps) + 0.1 * seed, "clip_score": 40, "recall": 0.6})
        for variant, K in (("main", 2), ("k1", 1), ("k4", 4), ("leaky", 2), ("noperc", 2), ("noadv", 2)):
            for steps in (1, 2, 4):
                fid = e2e_fid + (0 if variant in ("main", "k1", "k4") else -ablation_gap) + (0 if steps == K else 10)
                for seed in seeds:
                    w(method="e2ed2", variant=variant, sampler="ddim", steps=steps, seed=seed, K=K,
                      knobs=E2ED2_KNOBS[variant], values={"fid": fid + 0.1 * seed, "clip_score": 80 - fid,
                                                          "recall": 0.8 + 0.002 * seed})
    return root


def run(root, spec=SPEC, train_runs=None):
    df = aggregate.collect(sorted(root.glob("*/metrics")))
    spec = load_spec_dict(spec)
    pairs = comparisons.all_comparisons(df, comparisons.load_replicates(df), spec)
    verdicts, checks = claims.evaluate(df, pairs, spec, train_runs)
    return {v.id: v for v in verdicts}, checks, pairs


def load_spec_dict(spec):
    return make_spec(spec)


# ---- aggregation -----------------------------------------------------------------------------
def test_aggregate_round_trip(tmp_path):
    synth(tmp_path, 20.0)
    df = aggregate.collect([tmp_path / "mnist5k" / "metrics"])
    row = df[(df.method == "ddim") & (df.nfe == 50) & (df.metric == "fid")].iloc[0]
    assert row["n"] == 100 and row["reference"] == "mnist5k/heldout" and row["train_seed"] == 0
    assert list(df.columns[:len(aggregate.CORE)]) == aggregate.CORE
    aggregate.write_table(df, tmp_path / "table.csv")
    back = aggregate.read_table(tmp_path / "table.csv")
    assert len(back) == len(df) and set(back["source"]) == set(df["source"])


def test_method_names_come_from_the_classes_through_the_labels(tmp_path):
    """A method's readable name, rank and colour live on its class (``display_name``, its registry
    place); the workflow labels its JSONs with them and the report learns them from the table."""
    from e2ed2.methods import get_method
    from e2ed2.report import figures, names

    assert display_of("e2ed2") == {"method_name": get_method("e2ed2").display_name, "method_order": 5}
    synth(tmp_path, 20.0)
    write_metric(tmp_path, dataset="mnist5k", method="mine", variant="main", sampler="ddim", steps=2, block=0,
                 values={"fid": 30.0}, method_name="My method (2 steps)", method_order=9)
    write_metric(tmp_path, dataset="mnist5k", method="other", variant="main", sampler="ddim", steps=2, block=0,
                 values={"fid": 31.0})
    aggregate.write_table(aggregate.collect([tmp_path / "mnist5k" / "metrics"]), tmp_path / "table.csv")
    df = aggregate.read_table(tmp_path / "table.csv")
    names.learn(df)
    assert [names.name(m) for m in ("e2ed2", "ddim", "real", "mine", "other")] == \
        ["E2ED²", "DDIM (η = 0)", "real data (floor)", "My method (2 steps)", "other"]
    assert names.rank("real") < names.rank("edm") < names.rank("e2ed2") < names.rank("mine") < names.rank("other")
    assert figures.colour("e2ed2") != figures.colour("mine") != figures.colour("other", 1)


def test_aggregate_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics folder"):
        aggregate.collect([tmp_path / "missing"])
    p = write_metric(tmp_path, dataset="d", method="x", variant="main", sampler="s", steps=1, block=0,
                     values={"fid": 1.0})
    rec = json.loads(p.read_text())
    del rec["labels"]["method"]
    p.write_text(json.dumps(rec))
    with pytest.raises(KeyError, match="fid.json"):
        aggregate.collect([tmp_path])


# ---- intervals -----------------------------------------------------------------------------------
def test_t_interval_matches_scipy_and_respects_ranges():
    x = [10.0, 12.0, 11.0, 13.0]
    iv = ci.t_interval(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert iv.mean == pytest.approx(11.5) and iv.low == pytest.approx(lo) and iv.high == pytest.approx(hi)
    assert math.isnan(ci.t_interval([3.0]).low)
    # a plain t-interval of these recalls leaves [0, 1]; the logit-scale one does not
    r = [0.01, 0.07, 0.02]
    assert ci.t_interval(r).low < 0 and 0 < ci.t_interval(r, metric="recall").low < 0.02
    assert ci.t_interval([5.0, 40.0], metric="fid").low > 0
    lo, hi = ci.wilson(0.0, 500)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0 < hi < 0.01


# ---- paired comparisons ------------------------------------------------------------------------
def test_fid_bootstrap_is_exact():
    rng = np.random.default_rng(0)
    real, gen = rng.normal(size=(300, 32)), rng.normal(size=(100, 32)) * 1.1 + 0.2
    mu, sigma = statistics(real)
    boot = GramFrechet(gen, mu, sigma)
    idx = bootstrap_indices(100, 3)
    assert boot.fid(np.arange(100))[0] == pytest.approx(frechet_distance(*statistics(gen), mu, sigma), rel=1e-6)
    for row in idx:
        assert boot.fid(row)[0] == pytest.approx(frechet_distance(*statistics(gen[row]), mu, sigma), rel=1e-6)


def test_paired_test_detects_a_shift_that_overlapping_intervals_miss():
    """Per-image scores with a large common per-seed component: arm A = arm B − 1. Independent 95%
    intervals of the two means overlap; the paired difference excludes 0."""
    rng = np.random.default_rng(0)
    seeds_effect = rng.normal(0, 10, 200)
    a, b = seeds_effect - 1 + rng.normal(0, 0.5, 200), seeds_effect + rng.normal(0, 0.5, 200)
    ia, ib = ci.t_interval(a), ci.t_interval(b)
    assert ci.compare(ia, ib, lower_is_better=True) == ci.OVERLAP
    idx = bootstrap_indices(200, 1000)
    p = paired.paired([(a.mean(), a[idx].mean(1), b.mean(), b[idx].mean(1))])
    assert p.outcome(lower_is_better=True) == "better" and p.low < -1 < p.high < 0
    # guard: no shift → the paired interval covers 0
    c = seeds_effect + rng.normal(0, 0.5, 200)
    assert paired.paired([(c.mean(), c[idx].mean(1), b.mean(), b[idx].mean(1))]).outcome(True) == "overlap"


# ---- baseline health ---------------------------------------------------------------------------
def test_health_checks_pass_and_fail_with_numbers(tmp_path):
    _, checks, _ = run(synth(tmp_path / "ok", 20.0))
    assert {c.id: c.status for c in checks} == {"teacher_near_floor": "pass", "ddim10_vs_ancestral": "pass",
                                                 "ddim50_vs_ancestral": "pass", "cd2_vs_ddim10": "pass",
                                                 "ct2_near_floor": "pass", "ddim_monotone": "pass",
                                                 "collapse": "pass"}
    df = pd.DataFrame([{"dataset": "d", "method": m, "variant": "main", "sampler": s, "steps": st, "nfe": st,
                        "metric": "fid", "value": f} for m, s, st, f in
                       [("real", "", 0, 20), ("ddim", "ddim", 10, 200), ("ddim", "ddim", 50, 230),
                        ("edm", "ddpm", 20, 60), ("edm", "ddpm", 100, 50), ("cd", "consistency", 2, 300),
                        ("ct", "consistency", 2, 400)]])
    by_id = {c.id: c for c in health.checks(df, load_spec())}
    assert by_id["ddim50_vs_ancestral"].status == "fail" and "DDIM-50 230.0" in by_id["ddim50_vs_ancestral"].numbers
    assert by_id["cd2_vs_ddim10"].status == "fail" and by_id["ct2_near_floor"].status == "fail"
    assert by_id["ddim_monotone"].status == "fail" and by_id["teacher_near_floor"].status == "fail"


# ---- verdicts ------------------------------------------------------------------------------------
def test_verdicts_supported_with_two_datasets_and_two_training_seeds(tmp_path):
    v, checks, pairs = run(synth(tmp_path, 20.0, datasets=("mnist5k", "digits"), seeds=(0, 1)))
    assert all(c.status == "pass" for c in checks)
    for cid in ("C1", "C2", "C4", "C5", "C6", "C8"):
        assert v[cid].verdict == "supported", (cid, v[cid].verdict, v[cid].per_dataset)
    assert v["C7"].verdict == "inconclusive"  # FID helps, but no training logs to check stability
    # C1 uses the matched arm: at NFE 1 the variant trained with K = 1
    c1 = pairs[(pairs.claim == "C1") & (pairs.nfe == 1)]
    assert set(c1["a"]) == {"e2ed2/k1 [ddim] @NFE 1"} and set(c1["train_seed"].astype(str)) == {"all", "0", "1"}


def test_verdicts_not_supported_and_c8_not_tested_on_one_dataset(tmp_path):
    v, _, _ = run(synth(tmp_path, 70.0, ablation_gap=5.0))
    for cid in ("C1", "C3", "C5", "C6", "C7"):
        assert v[cid].verdict == "not supported", (cid, v[cid].verdict)
    assert v["C8"].verdict.startswith("not tested")


def test_a_failed_health_check_makes_the_claim_not_credible(tmp_path):
    v, checks, _ = run(synth(tmp_path, 20.0), {**SPEC, "health": {"teacher": "edm", "ct_floor": 1.0}})
    assert {c.id: c.status for c in checks}["ct2_near_floor"] == "fail"
    assert v["C1"].verdict == "not credible" and "ct2_near_floor" in v["C1"].per_dataset["mnist5k"]
    assert "the data alone: supported" in v["C1"].per_dataset["mnist5k"]
    assert v["C5"].verdict == "supported"  # E2ED² against its own ablation: no baseline involved


def test_losing_to_a_healthy_baseline_is_not_supported_despite_a_failed_check(tmp_path):
    # CT fails its check, but E2ED² (47) is worse than CD (45), which passes its checks
    v, checks, _ = run(synth(tmp_path, 47.0), {**SPEC, "health": {"teacher": "edm", "ct_floor": 1.0}})
    assert {c.id: c.status for c in checks}["ct2_near_floor"] == "fail"
    assert v["C1"].verdict == "not supported", v["C1"].per_dataset
    assert v["C1"].per_dataset["mnist5k"] == "not supported (worse than cd: a baseline passing its health checks)"


def test_c7_divergence_makes_not_supported(tmp_path):
    synth(tmp_path / "m", 20.0)
    train_dir = tmp_path / "run" / "mnist5k" / "train" / "e2ed2" / "main" / "s0"
    train_dir.mkdir(parents=True)
    losses = [1.0] * 30 + [50.0] * 10  # blows up in the last quarter
    train_dir.joinpath("stats.jsonl").write_text("".join(json.dumps({"step": 10 * (i + 1), "loss_main": x}) + "\n"
                                                         for i, x in enumerate(losses)))
    runs = curves.load_runs(tmp_path / "run")
    assert curves.diverged(runs) and set(runs["variant"]) == {"main"} and set(runs["dataset"]) == {"mnist5k"}
    assert run(tmp_path / "m", train_runs=runs)[0]["C7"].verdict == "not supported"


def test_c7_short_noisy_log_is_not_divergence(tmp_path):
    """The committed default's mnist5k E2ED² seed-1 log: 5 rows whose generator loss (with its adversarial
    term) swings 0.02 ↔ 0.08. One row per quarter cannot tell a blow-up from noise: finiteness only."""
    synth(tmp_path / "m", 20.0)
    train_dir = tmp_path / "run" / "mnist5k" / "train" / "e2ed2" / "main" / "s0"
    train_dir.mkdir(parents=True)
    losses = [0.0612, 0.0199, 0.0588, 0.0184, 0.0766]
    train_dir.joinpath("stats.jsonl").write_text("".join(json.dumps({"step": s, "loss_main": x}) + "\n"
                                                         for s, x in zip((25, 50, 75, 100, 120), losses)))
    runs = curves.load_runs(tmp_path / "run")
    assert not curves.diverged(runs) and not curves.blowup_tested(runs)
    v = run(tmp_path / "m", train_runs=runs)[0]["C7"]
    assert v.verdict != "not supported"
    assert any("blow-up test not applied: 5 logged steps" in e["outcome"] for e in v.evidence)
    # a single late spike in a long log is not a blow-up either (medians), a sustained one is
    spike = [1.0] * 39 + [50.0]
    assert not curves.diverged(pd.DataFrame({"run": "r", "loss": "main", "step": range(40), "value": spike}))


# ---- tables, figures and the CLI ---------------------------------------------------------------
def test_main_table_has_matched_arms_floor_and_readable_names(tmp_path):
    synth(tmp_path, 20.0, seeds=(0, 1))
    df = aggregate.collect([tmp_path / "mnist5k" / "metrics"])
    table, caption = tables.main_table(df, "mnist5k", load_spec_dict(SPEC))
    arms = list(table["arm"])
    assert "real data (floor)" in arms and "DDIM (η = 0)" in arms
    assert "E2ED² (K=1, matched)" in arms and "E2ED² (trained K=2, one model)" in arms
    matched1 = table[table["arm"] == "E2ED² (K=1, matched)"].iloc[0]
    assert matched1["NFE"] == "1" and matched1["replicates"] == 2  # two training seeds
    # each arm's training budget, from its models: the students' 3,840 images, the teacher's own
    assert matched1["training images"] == "3,840"
    assert table[table["arm"] == "DDIM (η = 0)"].iloc[0]["training images"] == "3,200"
    # presentation: ± only with ≥ 2 replicates; one replicate is bare and marked ¹ (no Wilson interval shown)
    # FID's interval is on the log scale (FID ≥ 0): shown as [low, high] around the mean
    assert re.fullmatch(r"\d+\.\d+ \[\d+\.\d+, \d+\.\d+\]", matched1["FID ↓"]), matched1["FID ↓"]
    real = table[table["arm"] == "real data (floor)"].iloc[0]
    assert real["FID ↓"] == "20.00¹" and real["CLIP score ↑"] == "60.00¹" and real["Recall ↑"] == "0.900¹"
    ddim = table[table["arm"] == "DDIM (η = 0)"].iloc[0]
    assert ddim["Recall ↑"] == "0.600¹" and "±" not in ddim["Recall ↑"]
    # a one-sentence caption (floor FID and real-image CLIP score), then the ¹ note and one provenance line
    sentence, notes = tables.split_caption(caption)
    assert "real-data floor FID 20.00¹" in sentence and "real-image CLIP score 60.00¹" in sentence
    assert notes[0] == tables.SINGLE_NOTE and len(notes) == 2 and notes[1].count("Timings") == 1
    _, with_clip = tables.main_table(df, "mnist5k", load_spec_dict(SPEC), {"zero_shot_accuracy": 0.5, "chance": 0.1})
    assert "small-CLIP zero-shot accuracy 50.0% (chance 10.0%)" in tables.split_caption(with_clip)[0]
    tex = tables.to_latex(table, with_clip, "tab:main_mnist5k")
    assert tex.isascii() and r"\toprule" in tex and r"\bottomrule" in tex and tex.count("{") == tex.count("}")
    md = tables.to_markdown(table, with_clip)
    assert md.count("\n*") == 1 and tables.SINGLE_NOTE in md


def test_compact_hardware_collapses_repeats():
    hw = ["x86_64; cpu; cpu_count=2; device=cpu; platform=Linux-x86_64; processor=x86_64; torch_threads=1",
          "cpu_count=2; device=cpu; platform=Linux-x86_64; processor=x86_64; torch_threads=1", "x86_64; cpu"]
    assert tables.compact_hardware(hw) == "CPU x86_64, 2 cores, 1 torch thread"
    gpu = "NVIDIA H200; cuda; cpu_count=16; device=cuda:0; gpu=NVIDIA H200; processor=x86_64; torch_threads=16"
    assert tables.compact_hardware([gpu]) == "GPU NVIDIA H200"


def write_samples(root, method, steps, seeds=range(8)):
    from e2ed2.sample import save_samples

    rng = np.random.default_rng(steps)
    images = rng.integers(0, 255, (len(seeds), 1, 8, 8), dtype=np.uint8)
    save_samples(root / method / "main" / "s0" / f"ddim-{steps}" / "b0" / "samples.npz", images, list(seeds),
                 ["c"] * len(seeds), [0] * len(seeds), {"method": method, "steps": steps, "sampler": "ddim",
                                                         "nfe": steps, "data": "mnist5k"})


def test_fixed_latent_grid_keeps_seed_positions(tmp_path):
    for m in ("ddim", "e2ed2"):
        for s in (1, 4):
            write_samples(tmp_path, m, s)
    sets = grid.find_sample_sets(tmp_path)
    image, rows, cols, (ch, cw) = grid.fixed_latent_grid(sets, k=3)
    assert rows == ["ddim [ddim]", "e2ed2 [ddim]"] and cols == [1, 4]
    with np.load(tmp_path / "e2ed2" / "main" / "s0" / "ddim-4" / "b0" / "samples.npz") as z:
        seed2 = z["images"][list(z["seeds"]).index(2), 0]
    y0, x0 = 1 * ch + 2, 1 * cw + 2 + 2 * (8 + 2)
    np.testing.assert_array_equal(image[y0:y0 + 8, x0:x0 + 8], seed2)
    # the figure: 7 inches wide, 8×8 samples upscaled (nearest neighbour) to ≥ 0.25 inch at 150 dpi, same positions
    fig = grid.grid_figure(sets, k=3)
    assert fig.get_size_inches()[0] == pytest.approx(grid.PAGE_WIDTH_IN)
    f = math.ceil(grid.MIN_IMAGE_IN * grid.DPI / 8)
    assert 8 * f / grid.DPI >= grid.MIN_IMAGE_IN
    shown = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_array_equal(shown[y0 * f:(y0 + 8) * f, x0 * f:(x0 + 8) * f], seed2.repeat(f, 0).repeat(f, 1))


def test_cli_all_writes_everything(tmp_path, monkeypatch):
    synth(tmp_path / "run", 20.0)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    train_dir = tmp_path / "run" / "mnist5k" / "train" / "edm" / "main" / "s0"
    train_dir.mkdir(parents=True)
    train_dir.joinpath("stats.jsonl").write_text("".join(json.dumps({"step": s, "loss_main": 1 / s}) + "\n"
                                                         for s in range(1, 21)))
    for m in ("ddim", "e2ed2"):
        for s in (1, 2, 4):
            write_samples(tmp_path / "run" / "mnist5k" / "samples", m, s)
    out = tmp_path / "report"
    assert report_main(["all", "--metrics", "run/mnist5k/metrics", "--spec", str(spec), "--train", "run",
                        "--samples", "run/mnist5k/samples", "--out", str(out)]) == 0
    for name in ("fid_vs_nfe_mnist5k", "clip_vs_nfe_mnist5k", "fid_vs_time_mnist5k", "ablations_mnist5k",
                 "training_curves", "sample_grid_mnist5k"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    md = (out / "claims" / "claims.md").read_text()
    assert "| C1 |" in md and "supported" in md and "Baseline health" in md
    page = (out / "claims" / "claims.html").read_text()
    assert "data:image/png;base64," in page and "main_mnist5k" in page and "Baseline health" in page
    js = json.loads((out / "claims" / "claims.json").read_text())
    assert len(js["claims"]) == 9 and all(set(c["stability"]["mnist5k"]) == {"agree", "of", "label", "loo_verdicts"}
                                          for c in js["claims"])
    paired_csv = pd.read_csv(out / "paired.csv", dtype={"left_out": str, "train_seed": str})
    assert {"none", "0", "1"} <= set(paired_csv["left_out"]) and "outcome" in paired_csv
    # the stage-by-stage route gives the same claims
    assert report_main(["claims", "--table", str(out / "table.csv"), "--paired", str(out / "paired.csv"), "--spec",
                        str(spec), "--train", "run", "--out", str(tmp_path / "c2")]) == 0
    a = json.loads((tmp_path / "c2" / "claims.json").read_text())
    b = json.loads((out / "claims" / "claims.json").read_text())
    assert [c["verdict"] for c in a["claims"]] == [c["verdict"] for c in b["claims"]]
