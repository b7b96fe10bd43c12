"""Report stage on synthetic metric JSONs (no training): aggregation, CI maths, tables, figures, verdicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from e2ed2.report import aggregate, ci, claims, curves, figures, grid, tables
from e2ed2.report.cli import main as report_main
from e2ed2.report.spec import load_spec

NFES = {"e2ed2": [1, 2, 4], "ddpm": [1, 2, 4, 50], "cm": [1, 2, 4]}
SPEC = {"ablations": {"C5": {"treatment": "main", "control": "leaky"}, "C6": {"treatment": "main", "control": "no_perc"},
                      "C7": {"treatment": "main", "control": "no_adv"}}}


def write_metric(root, *, dataset, method, variant, nfe, block, values: dict, n=100, **labels):
    """One metric JSON in the METRICS contract, at the path layout METRICS uses."""
    rec = {"metric": "fid", "results": [{"metric": k, "value": v, **({"std": 0.001} if k == "kid" else {})}
                                        for k, v in values.items()],
           "backend": "clean-fid", "feature_network": {"name": "inception-2015-12-05", "sha256": "abc"},
           "preprocessing": "clean", "n": n, "seeds": f"{block * n}-{block * n + n - 1}",
           "reference": {"dataset": dataset, "split": "train", "n": 1000, "stats_file": "ref.npz"},
           "labels": {"dataset": dataset, "method": method, "variant": variant, "sampler": "euler", "steps": nfe,
                      "nfe": nfe, "seed_block": block, **labels},
           "timing": {"nfe": nfe, "ms_per_image": 2.0 * nfe, "images_per_s": 500 / max(nfe, 1), "batch_size": 64,
                      "device": "cpu", "device_name": "x86_64", "dtype": "float32", "peak_memory_mb": None},
           "hardware": {"cpu": "test-cpu"}, "versions": {"torch": "2"}}
    if method == "real":  # the floor: held-out images, no sampler and no timing
        rec["timing"] = {}
        rec["labels"] = {k: v for k, v in rec["labels"].items() if k not in ("sampler", "steps", "nfe")}
    path = root / dataset / method / variant / f"euler-{nfe}" / f"seed{block}" / "fid.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path


def synth(root, e2e_fid: float, blocks: int = 3, noise: float = 0.5, datasets=("mnist5k",), ablation_gap: float = -5.0,
          seed: int = 0):
    """A whole synthetic run: baselines at FID 60 − 5·log2(NFE) (DDPM 10 at NFE 50), E2ED² at ``e2e_fid``,
    ablation controls at e2e_fid − ablation_gap, and a real-data floor of 2."""
    rng = np.random.default_rng(seed)
    for d in datasets:
        for b in range(blocks):
            write_metric(root, dataset=d, method="real", variant="heldout", nfe=0, block=b,
                         values={"fid": 2 + rng.normal(0, 0.1), "kid": 0.001, "recall": 0.9})
            for m, nfes in NFES.items():
                variants = ["main", "leaky", "no_perc", "no_adv"] if m == "e2ed2" else ["main"]
                for v in variants:
                    for nfe in nfes:
                        base = e2e_fid if m == "e2ed2" else (10.0 if nfe == 50 else 60 - 5 * math.log2(nfe))
                        if v != "main":
                            base -= ablation_gap
                        fid = base + rng.normal(0, noise)
                        write_metric(root, dataset=d, method=m, variant=v, nfe=nfe, block=b,
                                     values={"fid": fid, "kid": fid / 1000, "clip_score": 30 - fid / 10,
                                             "fd_clip": fid * 2, "recall": 0.5 + rng.normal(0, 0.01)})
    return root


@pytest.fixture
def spec_file(tmp_path):
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(SPEC))
    return p


def verdicts(root, spec_file, runs=None):
    df = aggregate.collect(root)
    return {v.id: v for v in claims.evaluate(df, load_spec(spec_file), runs)}


# ---- aggregation -----------------------------------------------------------------------------
def test_aggregate_round_trip(tmp_path):
    synth(tmp_path / "m", 20.0, blocks=2)
    df = aggregate.collect(tmp_path / "m")
    # 2 blocks × (floor 3 metrics + (3 e2e nfe × 4 variants + 4 ddpm + 3 cm) × 5 metrics)
    assert len(df) == 2 * (3 + (12 + 4 + 3) * 5)
    assert list(df.columns[:len(aggregate.CORE)]) == aggregate.CORE
    row = df[(df.method == "ddpm") & (df.nfe == 50) & (df.metric == "kid") & (df.seed_block == 1)].iloc[0]
    assert row["std"] == 0.001 and row["n"] == 100 and row["reference"] == "mnist5k/train"
    assert row["feature_network"] == "inception-2015-12-05" and "test-cpu" in row["hardware"]
    aggregate.write_table(df, tmp_path / "table.csv")
    back = aggregate.read_table(tmp_path / "table.csv")
    pd.testing.assert_frame_equal(df.drop(columns="peak_memory_mb"), back.drop(columns="peak_memory_mb"), check_dtype=False)


def test_aggregate_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics folder"):
        aggregate.collect(tmp_path / "missing")
    p = write_metric(tmp_path, dataset="d", method="x", variant="main", nfe=1, block=0, values={"fid": 1.0})
    rec = json.loads(p.read_text())
    del rec["labels"]["method"]
    p.write_text(json.dumps(rec))
    with pytest.raises(KeyError, match="fid.json"):
        aggregate.collect(tmp_path)


# ---- confidence intervals ----------------------------------------------------------------------
def test_t_interval_matches_scipy_and_coverage():
    x = [10.0, 12.0, 11.0, 13.0]
    iv = ci.t_interval(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert iv.mean == pytest.approx(11.5) and iv.low == pytest.approx(lo) and iv.high == pytest.approx(hi)
    one = ci.t_interval([3.0])
    assert one.replicates == 1 and not one.known and math.isnan(one.low)
    # coverage of the true mean over many small normal samples is close to 95%
    rng = np.random.default_rng(0)
    hits = [(lambda i: i.low <= 0 <= i.high)(ci.t_interval(rng.normal(0, 1, 3))) for _ in range(2000)]
    assert 0.93 < np.mean(hits) < 0.97


def test_compare_needs_separated_intervals():
    a, b = ci.Interval(1, 0.5, 1.5, 3), ci.Interval(3, 2.5, 3.5, 3)
    assert ci.compare(a, b, lower_is_better=True) == ci.BETTER
    assert ci.compare(a, b, lower_is_better=False) == ci.WORSE
    assert ci.compare(a, ci.Interval(1.4, 1.2, 1.6, 3), True) == ci.OVERLAP
    assert ci.compare(a, ci.Interval(3, math.nan, math.nan, 1), True) == ci.UNKNOWN


# ---- tables ----------------------------------------------------------------------------------
def test_tables_render_with_floor(tmp_path, spec_file):
    synth(tmp_path / "m", 20.0)
    df = aggregate.collect(tmp_path / "m")
    paths = tables.write_tables(df, load_spec(spec_file), tmp_path / "t")
    names = {p.name for p in paths}
    assert {"main_mnist5k.md", "main_mnist5k.tex", "main_mnist5k.csv", "ablation_C5_mnist5k.tex"} <= names
    md, tex = (tmp_path / "t" / "main_mnist5k.md").read_text(), (tmp_path / "t" / "main_mnist5k.tex").read_text()
    for text in (md, tex):
        assert "Real-data floor" in text and "3 sampling-seed block(s)" in text
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex
    main = pd.read_csv(tmp_path / "t" / "main_mnist5k.csv")
    assert len(main) == 3 + 4 + 3 and "FID ↓" in main and "ms/image" in main
    # the ddpm NFE-50 cell: mean ± half-width over the 3 blocks
    vals = df[(df.method == "ddpm") & (df.nfe == 50) & (df.metric == "fid")]["value"]
    iv = ci.t_interval(vals)
    assert main[(main.method == "ddpm") & (main.NFE == 50)]["FID ↓"].iloc[0] == f"{iv.mean:.2f} ± {iv.half_width:.2f}"


def test_floor_missing_is_said(tmp_path):
    write_metric(tmp_path, dataset="d", method="x", variant="main", nfe=1, block=0, values={"fid": 1.0})
    _, caption = tables.main_table(aggregate.collect(tmp_path), "d", load_spec())
    assert "floor: not measured" in caption


# ---- verdicts ------------------------------------------------------------------------------------
def test_verdicts_supported(tmp_path, spec_file):
    v = verdicts(synth(tmp_path, e2e_fid=20.0), spec_file)  # far below every baseline at NFE 1–4
    assert v["C1"].verdict == "supported" and v["C2"].verdict == "supported"
    assert v["C5"].verdict == "supported" and v["C6"].verdict == "supported"
    assert v["C7"].verdict == "inconclusive"  # FID helps, but no training logs to check stability
    assert v["C8"].verdict.startswith("inconclusive (no data")  # one dataset only
    assert v["C4"].verdict.startswith("inconclusive (no data")


def test_verdicts_not_supported(tmp_path, spec_file):
    v = verdicts(synth(tmp_path, e2e_fid=70.0, ablation_gap=5.0), spec_file)  # worse than baselines and controls
    for cid in ("C1", "C2", "C3", "C5", "C6", "C7"):
        assert v[cid].verdict == "not supported", cid
    assert any(e["outcome"] == "worse" for e in v["C1"].evidence)


def test_verdicts_inconclusive(tmp_path, spec_file):
    v = verdicts(synth(tmp_path, e2e_fid=60.0, noise=8.0, seed=3), spec_file)  # ties DDPM@1 with wide noise
    assert v["C1"].verdict == "inconclusive"
    one = verdicts(synth(tmp_path / "one", e2e_fid=20.0, blocks=1), spec_file)  # a single seed block: no interval
    assert one["C1"].verdict == "inconclusive" and "without an interval" in one["C1"].note


def test_c8_and_c4_from_labels(tmp_path):
    synth(tmp_path, 20.0, datasets=("mnist5k", "digits"))
    rng = np.random.default_rng(1)
    for b in range(3):  # C4 grid: variants trained with K ∈ {1, 2}, each sampled at 1 and 2 steps
        for k in (1, 2):
            for steps in (1, 2):
                fid = (15 if k == steps else 40) + rng.normal(0, 0.5)
                write_metric(tmp_path, dataset="mnist5k", method="e2ed2", variant=f"k{k}", nfe=steps, block=b,
                             values={"fid": fid}, train_k=k)
    v = verdicts(tmp_path, None)
    assert v["C8"].verdict == "supported" and v["C4"].verdict == "supported"
    assert v["C5"].verdict.startswith("inconclusive (no data")  # no spec and no ablation labels


def test_c7_divergence_makes_not_supported(tmp_path, spec_file):
    synth(tmp_path / "m", 20.0)
    run = tmp_path / "train" / "e2ed2" / "main"
    run.mkdir(parents=True)
    losses = [1.0] * 10 + [1.0] * 10 + [1.0] * 10 + [50.0] * 10  # blows up in the last quarter
    run.joinpath("stats.jsonl").write_text("".join(json.dumps({"step": 10 * (i + 1), "loss_main": x}) + "\n"
                                                   for i, x in enumerate(losses)))
    runs = curves.load_runs(tmp_path / "train")
    assert curves.diverged(runs) and set(runs["method"]) == {"e2ed2"}
    assert verdicts(tmp_path / "m", spec_file, runs)["C7"].verdict == "not supported"


# ---- figures and the CLI -----------------------------------------------------------------------------
def write_samples(root, method, steps, seeds=range(8)):
    from e2ed2.sample import save_samples

    rng = np.random.default_rng(steps)
    images = rng.integers(0, 255, (len(seeds), 1, 8, 8), dtype=np.uint8)
    save_samples(root / method / "main" / f"euler-{steps}" / "seed0" / "samples.npz", images, list(seeds),
                 ["c"] * len(seeds), [0] * len(seeds), {"method": method, "steps": steps, "sampler": "euler",
                                                         "nfe": steps, "data": "mnist5k"})


def test_fixed_latent_grid_keeps_seed_positions(tmp_path):
    for m in ("ddpm", "e2ed2"):
        for s in (1, 4):
            write_samples(tmp_path, m, s)
    sets = grid.find_sample_sets(tmp_path)
    image, rows, cols, (ch, cw) = grid.fixed_latent_grid(sets, k=3)
    assert rows == ["ddpm [euler]", "e2ed2 [euler]"] and cols == [1, 4]
    with np.load(tmp_path / "e2ed2" / "main" / "euler-4" / "seed0" / "samples.npz") as z:
        seed2 = z["images"][list(z["seeds"]).index(2), 0]
    y0, x0 = 1 * ch + 2, 1 * cw + 2 + 2 * (8 + 2)
    np.testing.assert_array_equal(image[y0:y0 + 8, x0:x0 + 8], seed2)


def test_cli_all_writes_everything(tmp_path, spec_file):
    synth(tmp_path / "metrics", 20.0)
    run = tmp_path / "train" / "ddpm"
    run.mkdir(parents=True)
    run.joinpath("stats.jsonl").write_text("".join(json.dumps({"step": s, "loss_main": 1 / s}) + "\n" for s in range(1, 21)))
    for m in ("ddpm", "e2ed2"):
        for s in (1, 2, 4):
            write_samples(tmp_path / "samples", m, s)
    out = tmp_path / "report"
    assert report_main(["all", "--metrics", str(tmp_path / "metrics"), "--spec", str(spec_file), "--train",
                        str(tmp_path / "train"), "--samples", str(tmp_path / "samples"), "--out", str(out)]) == 0
    for name in ("fid_vs_nfe_mnist5k", "clip_vs_nfe_mnist5k", "fid_vs_time_mnist5k", "fid_vs_clip_mnist5k",
                 "ablations_mnist5k", "training_curves", "sample_grid"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000, name
    assert (out / "figures" / "fid_vs_nfe_mnist5k.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "claims.md").read_text()
    assert "| C1 |" in md and "supported" in md and "Rule (fixed before the numbers)" in md
    assert "<table>" in (out / "claims.html").read_text()
    assert len(json.loads((out / "claims.json").read_text())) == 9
    # stage-by-stage route gives the same claims
    assert report_main(["claims", "--table", str(out / "table.csv"), "--spec", str(spec_file), "--out", str(tmp_path / "c2")]) == 0
    assert (tmp_path / "c2" / "claims.json").read_text() == (out / "claims.json").read_text()
