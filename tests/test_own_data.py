"""A newcomer's own data in one try: 10 classes of greyscale 28×28 images saved as
``np.savez("mine.npz", images=N×H×W uint8, labels=...)`` (or ``x``/``y``), no split, no captions.

- the UNet's resolution and channels are read from the data's file header when the DAG is built
  (``snakemake -n``), and a conflicting explicit value is refused there, naming the fix;
- ``only_datasets: [mine]`` runs any config on that dataset alone, and ``replace:`` lists of
  several files all apply;
- typo'd model, variant and top-level names are refused with the closest valid name and the file;
- a training log shows progress lines with an ETA while it runs; a failed job's log reaches the
  console of a plain ``snakemake --cores 1``.
Every ``snakemake`` here is a dry run except the one that must fail (in a copy of the repository).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from e2ed2 import cli, data
from e2ed2.config import ConfigError
from e2ed2.plan import SCHEMA, Plan, load_config, validate_config
from e2ed2.train import Progress, ProgressReport, main as train_main
from tests.test_workflow import REPO, SMOKE, SNAKEMAKE, copy_repo, dry_run_outputs, snakemake

RUN = "owndata_test"
needs_snakemake = pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake not installed beside the tests")


def save_mine(path, n: int = 200, **names) -> None:
    """n grey 28×28 images (N×H×W uint8) of 10 classes, no split, no captions; ``names`` renames arrays."""
    rng = np.random.default_rng(0)
    arrays = {"images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), "labels": np.arange(n) % 10}
    np.savez(path, **{names.get(k, k): v for k, v in arrays.items()})


def user_file(tmp_path, text: str, name: str = "mine.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def mine_dry_run(tmp_path_factory):
    """`snakemake -n -p` of smoke.yaml + a README-style override: the user's .npz (arrays named
    pixels/digit, mapped with keys:) as the only dataset, no net: block."""
    tmp = tmp_path_factory.mktemp("mine")
    save_mine(tmp / "mine.npz", images="pixels", labels="digit")
    override = user_file(tmp, f"run: {RUN}\nonly_datasets: [mine]\ndatasets:\n  mine:\n    prepare: convert\n"
                              f"    source: {tmp / 'mine.npz'}\n    keys: {{images: pixels, labels: digit}}\n")
    return snakemake("-n", "-p", "--configfile", SMOKE, override)


def shells(proc, module: str) -> list[str]:
    return re.findall(rf"^Shell command: .*?(python -m {re.escape(module)} .*)$", proc.stdout, re.M)


# ---- the UNet's shape from the data ----------------------------------------------------------
@needs_snakemake
def test_resolution_is_read_from_the_data_at_dag_build(mine_dry_run):
    runs = [json.loads(re.search(r"--config-json '(.*?)'", c).group(1)) for c in shells(mine_dry_run, "e2ed2.train")]
    assert runs and all(r["net"]["resolution"] == 28 and r["net"]["image_channels"] == 1 for r in runs)
    # the data job maps the user's array names
    (convert,) = shells(mine_dry_run, "e2ed2.data")
    assert "--key images=pixels --key labels=digit" in convert


@needs_snakemake
def test_a_conflicting_resolution_is_refused_at_dag_build(tmp_path):
    save_mine(tmp_path / "mine.npz")
    override = user_file(tmp_path, f"run: {RUN}\nonly_datasets: [mine]\nnet: {{resolution: 32}}\n"
                                   f"datasets: {{mine: {{prepare: convert, source: {tmp_path / 'mine.npz'}}}}}\n")
    proc = snakemake("-n", "--configfile", SMOKE, override, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in out, out[-2000:]  # refused before any job is planned
    assert "dataset 'mine' holds 1×28×28 images" in out and "net.resolution: 32" in out
    assert f"set in {override}" in out and "datasets: {mine: {net: {resolution: 28}}}" in out
    # the data-derived value is accepted when the user sets it right
    cfg, sources = load_config([SMOKE, user_file(tmp_path, override.read_text().replace("32", "28"), "ok.yaml")])
    assert Plan(cfg, sources).run_config("mine", "edm", "main", 0)["net"]["resolution"] == 28


def test_shapes_are_read_cheaply_and_match_the_loaders(tmp_path):
    save_mine(tmp_path / "grey.npz")
    np.savez_compressed(tmp_path / "rgb.npz", x=np.zeros((5, 12, 12, 3), np.uint8))  # N×H×W×C, compressed
    np.savez(tmp_path / "floats.npz", images=np.zeros((5, 8, 8), np.float32))
    assert data.peek_shape(tmp_path / "grey.npz") == (1, 28) and data.peek_shape(tmp_path / "rgb.npz") == (3, 12)
    with pytest.raises(ValueError, match="floats.npz: images must be a uint8 array, got float32"):
        data.peek_shape(tmp_path / "floats.npz")
    for name, shape in data.BUILTIN_SHAPES.items():  # the table the DAG uses is what the loaders give
        assert data.load_dataset(name).images.shape[1:] == (shape[0], shape[1], shape[1])
    from PIL import Image

    folder = tmp_path / "folder"
    folder.mkdir()
    Image.new("L", (20, 16)).save(folder / "a.png")
    Image.new("RGB", (20, 16)).save(folder / "b.png")
    assert data.peek_shape(folder) == (3, 16) == data.load_dataset(folder).images.shape[1:3]


def test_the_trainer_refuses_a_net_that_does_not_fit_the_data(tiny_config, tmp_path, capsys):
    cfg = tiny_config("ddpm", steps=2)
    cfg["net"]["resolution"] = 16  # the tiny data are 8×8
    rc = cli.run(train_main, ["--config-json", json.dumps(cfg), "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: data " + cfg["data"] + ": images are 1×8×8, but the net has resolution=16; "
                               "set net.resolution: 8 in the run config (--set net.resolution=8)"]
    assert not (tmp_path / "r").exists()  # refused before the run folder is made: no config.json, no log
    cfg["net"].update(resolution=8, image_channels=3)  # RGB net, grey data
    rc = cli.run(train_main, ["--config-json", json.dumps(cfg), "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "image_channels=3" in err[0] and "net.image_channels: 1" in err[0]
    assert not (tmp_path / "r").exists()


# ---- x/y and mapped array names ----------------------------------------------------------------
def test_x_y_and_mapped_keys_convert(tmp_path, capsys):
    save_mine(tmp_path / "xy.npz", images="x", labels="y")
    assert data.main([str(tmp_path / "xy.npz"), "--out", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as z:
        assert z["images"].shape == (200, 1, 28, 28) and list(z["labels"][:3]) == [0, 1, 2]
        assert set(z["labels"][z["split"] == 1]) == set(range(10))  # stratified by the y labels
    assert "array 'x' read as images" in capsys.readouterr().out
    save_mine(tmp_path / "named.npz", images="pixels", labels="digit")
    assert data.main([str(tmp_path / "named.npz"), "--key", "images=pixels", "--key", "labels=digit",
                      "--out", str(tmp_path / "out2.npz")]) == 0
    with pytest.raises(ValueError, match=r"keys: images: 'pixel' is not an array .*did you mean 'pixels'"):
        data.load_npz(tmp_path / "named.npz", {"images": "pixel"})


# ---- one dataset only; replace lists of several files ----------------------------------------
@needs_snakemake
def test_only_datasets_runs_only_that_dataset(mine_dry_run, tmp_path):
    outputs = dry_run_outputs(mine_dry_run)
    assert any(f"results/{RUN}/mine/train/" in p for p in outputs)
    assert not [p for p in outputs if "mnist5k" in p or "digits" in p]
    # everything that named a dropped dataset follows: diagnostics on none, ddpm's mnist5k-only entry samples none
    save_mine(tmp_path / "mine.npz")
    text = f"only_datasets: [mine]\ndatasets: {{mine: {{prepare: convert, source: {tmp_path / 'mine.npz'}}}}}\n"
    cfg, sources = load_config([SMOKE, user_file(tmp_path, text)])
    assert list(cfg["datasets"]) == ["mine"] and cfg["diagnostics"]["datasets"] == []
    assert cfg["evaluate"]["ddpm_main_ddpm"]["datasets"] == []
    plan = Plan(cfg, sources)
    plan.validate()
    assert ("ddpm", "main") not in plan.needed("mine") and plan.diagnosed("mine", "sigma_error") == []
    with pytest.raises(ConfigError, match=r"only_datasets in .*bad.yaml names 'mnist', .*did you mean 'mnist5k'"):
        load_config([SMOKE, user_file(tmp_path, "only_datasets: [mnist]\n", "bad.yaml")])


@needs_snakemake
def test_own_captionless_data_runs_in_one_try_with_c2_not_applicable(tmp_path):
    """The README path, end to end (smoke-sized): np.savez(images=N×28×28 uint8, labels=...) with no
    split and no captions, one override file, smoke.yaml + mine.yaml → only that dataset is trained,
    and the claims page says C2 is not applicable (no captions) instead of judging chance-level CLIP."""
    root = tmp_path / "repo"
    copy_repo(root)
    save_mine(root / "mine.npz", n=500)  # its 10% held-out split covers smoke's 32-image references
    user_file(root, "run: mine\nonly_datasets: [mine]\ndatasets: {mine: {prepare: convert, source: mine.npz}}\n")
    snakemake("--cores", "2", "--configfile", SMOKE, "mine.yaml", cwd=root, timeout=1500)
    run = root / "results/mine"
    assert sorted(p.name for p in run.iterdir() if (p / "train").is_dir()) == ["mine"]  # nothing else trained
    claims = {c["id"]: c for c in json.loads((run / "report/claims/claims.json").read_text())["claims"]}
    assert claims["C2"]["per_dataset"]["mine"].startswith("not applicable: no captions")
    assert "C2 not applicable: no captions" in (run / "report/claims/claims.md").read_text()
    net = json.loads(next((run / "mine/train/edm/main").glob("s*/config.json")).read_text())["resolved"]["net"]
    assert (net["resolution"], net["image_channels"]) == (28, 1)  # from the data, no net: block


def test_replace_lists_of_several_files_all_apply(tmp_path):
    save_mine(tmp_path / "mine.npz")
    user = user_file(tmp_path, f"replace: [datasets]\ndatasets: {{mine: {{prepare: convert, "
                               f"source: {tmp_path / 'mine.npz'}}}}}\n")
    cfg, _ = load_config([SMOKE, user])
    smoke = yaml.safe_load((REPO / SMOKE).read_text())
    assert list(cfg["datasets"]) == ["mine"]  # the user's replace: smoke's datasets are gone
    assert set(cfg["models"]) == set(smoke["models"])  # smoke's replace still applies: no default-only model
    assert cfg["evaluate"] == smoke["evaluate"]


# ---- names: the closest valid one, and the file -------------------------------------------------
def _refusal(tmp_path, text: str) -> str:
    path = user_file(tmp_path, text, "typo.yaml")
    with pytest.raises(ConfigError) as e:
        cfg, sources = load_config([SMOKE, path])
        validate_config(cfg, SCHEMA, sources)
        Plan(cfg, sources).validate()
    assert f"in {path}" in str(e.value), str(e.value)
    return str(e.value)


def test_typos_are_refused_with_a_suggestion_and_the_file(tmp_path):
    assert "unknown model 'e2ed' (models.e2ed)" in _refusal(tmp_path, "models: {e2ed: {method: {lambda_adv: 0.2}}}")
    msg = _refusal(tmp_path, "models: {e2ed2: {variants: {mian: {method: {lambda_adv: 0.2}}}}}")
    assert "models.e2ed2.variants.mian" in msg and "never trained or sampled" in msg and "did you mean 'main'" in msg
    msg = _refusal(tmp_path, "evaluate: {e2ed2_main_ddim: {model: e2ed2/mian}}")
    assert "evaluate.e2ed2_main_ddim.model" in msg and "did you mean 'main'" in msg
    msg = _refusal(tmp_path, "evaluate: {x: {model: e2ed/main, sampler: ddim, steps: [1]}}")
    assert "has no 'e2ed' (did you mean 'e2ed2'?)" in msg
    msg = _refusal(tmp_path, "datsets: {mine: {prepare: convert}}")
    assert "unknown top-level key 'datsets'" in msg and "did you mean 'datasets'" in msg and "'only_datasets'" in msg
    msg = _refusal(tmp_path, "models: {e2ed2: {method: {lamda_adv: 0.2}}}")
    assert "unknown key(s) ['lamda_adv'] (did you mean 'lambda_adv'?)" in msg
    assert "did you mean 'n'" in _refusal(tmp_path, "sampling: {nn: 3}")


@pytest.mark.parametrize("text,says", [
    ("net: {chanels: 8}", "net: unknown key(s) ['chanels'] (did you mean 'channels'?)"),
    ("net: {channels: x}", "net.channels: expected a number, got 'x'"),
    ("net: {channels: 0}", "net.channels: 0 is below the minimum 1"),
    ("net: {attn_resolutions: 8}", "net.attn_resolutions: expected a list, got 8"),
    ("net: {vocab_size: 0}", "net.vocab_size: 0 is below the minimum 2"),
    ("net: {num_res_blocks: -1}", "net.num_res_blocks: -1 is below the minimum 1"),
    ("net: {channel_mult: []}", "net.channel_mult: needs at least one level"),
    ("datasets: {digits: {net: {attn_resolutions: [3]}}}", "net.attn_resolutions: [3] not reached"),
    ("train: {device: tpu}", "train.device: 'tpu' is not a device"),
    ("sampling: {guidance: .nan}", "config.sampling.guidance"),
])
def test_bad_net_train_and_sampling_values_are_refused_before_work(tmp_path, text, says):
    """The net block is typed and bounded like the method knobs, checked with the plan (snakemake -n)."""
    assert says in _refusal(tmp_path, text)


@needs_snakemake
def test_a_typod_model_fails_snakemake_n_naming_the_file(tmp_path):
    path = user_file(tmp_path, "models: {e2ed: {method: {lambda_adv: 0.2}}}\n")
    proc = snakemake("-n", "--configfile", path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"unknown model 'e2ed' (models.e2ed) in {path} (did you mean 'e2ed2'?)" in out


# ---- progress in the logs; failed logs on the console -------------------------------------------
def test_the_training_log_shows_progress_with_an_eta(tiny_config, tmp_path, capsys):
    cfg = tiny_config("ddpm", steps=6)
    cfg["train"]["log_every"] = 3
    assert cli.run(train_main, ["--config-json", json.dumps(cfg), "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("train ddpm: ")]
    pattern = r"train ddpm: (\d)/6 \(\d+%\), [\d.]+ images/s, loss_main \S+, elapsed \d:\d\d:\d\d, ETA \d:\d\d:\d\d"
    assert [re.fullmatch(pattern, ln).group(1) for ln in lines] == ["1", "3", "6"] and "\r" not in err
    rec = [json.loads(line) for line in (tmp_path / "r/stats.jsonl").read_text().splitlines()]
    assert [(r["step"], r["total_steps"]) for r in rec] == [(3, 6), (6, 6)] and rec[-1]["eta_s"] == 0
    # the first step of a session, then every log_every steps, and at least every interval_s seconds
    for interval_s, lines in ((1e9, 1), (0.0, 2)):
        report = ProgressReport("t", every=1000, interval_s=interval_s)
        for step in (5, 6):  # a run resumed at step 4
            report(Progress(step, 2000, 4, 1.0 * (step - 4), 8, {}))
        assert capsys.readouterr().err.count("\n") == lines


def test_sampling_lines_carry_elapsed_and_eta(capsys):
    assert list(cli.progress(range(4), "sample edm ddim-4")) == [0, 1, 2, 3]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and all(re.fullmatch(r"sample edm ddim-4: \d/4 \(\d+%\), elapsed \d:\d\d:\d\d, "
                                                r"ETA \d:\d\d:\d\d", ln) for ln in lines)


@needs_snakemake
def test_workflow_jobs_log_progress(mine_dry_run):
    assert all("--no-progress" not in c for c in shells(mine_dry_run, "e2ed2.train") + shells(mine_dry_run,
                                                                                               "e2ed2.sample"))


@needs_snakemake
def test_a_failed_job_shows_its_log_on_the_console(tmp_path):
    """A plain `snakemake --cores 1` (no profile): the failing job's log follows its error report."""
    root = copy_repo(tmp_path / "repo")
    save_mine(root / "bad.npz")
    with np.load(root / "bad.npz") as z:
        np.savez(root / "bad.npz", **z, split=np.zeros(len(z["images"]), np.uint8))  # holds out nothing
    (root / "bad.yaml").write_text("run: bad\ndatasets: {bad: {prepare: convert, source: bad.npz}}\n")
    proc = snakemake("results/bad/data/bad.npz", "--cores", "1", "--configfile", "bad.yaml", cwd=root, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Logfile results/bad/logs/bad/data.log:" in out  # Snakemake's show-failed-logs
    assert "error: bad.npz: its 'split' array holds out no image" in out

