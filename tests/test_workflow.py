"""The Snakemake workflow as a user runs it: real `snakemake` subprocesses on a copy of the repo.

The smoke config runs the whole DAG (data → train → sample → metrics → report) once per test
session in a temporary copy; the later tests reuse that run: a rerun has nothing to do, a
changed E2ED² knob reruns only E2ED²'s jobs and the report, and a toy baseline added as one
file + one registry line + one config entry goes through the same DAG.
"""

from __future__ import annotations

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
CONFIGS = ["default", "smoke", "cifar10", "coco30k"]

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
    for stage in ("train", "samples", "metrics", "report"):
        assert any(f"results/{name}/{stage}/" in p for p in outputs), f"{name}: no {stage} jobs in the DAG"
    # every method of DESIGN.md is trained or sampled, with E2ED² ablation variants
    for model in ("ddpm/main", "cd/main", "ct/main", "e2ed2/main"):
        assert f"results/{name}/train/{model}/final.pt" in outputs
    assert any(f"results/{name}/samples/ddim/main/ddim-" in p for p in outputs)
    assert sum(f"results/{name}/train/e2ed2/" in p and p.endswith("final.pt") for p in outputs) >= 3


def test_default_config_covers_the_protocol():
    config = yaml.safe_load((REPO / "workflows/config/default.yaml").read_text())
    assert config["dataset"]["name"] == "mnist5k" and config["sampling"]["seed_blocks"] >= 3
    steps = {s for e in config["evaluate"] for s in e["steps"]}
    assert {1, 2, 4} <= steps
    assert set(config["claims"]["ablations"]) == {"C4", "C5", "C6", "C7"}
    variants = config["models"]["e2ed2"]["variants"]
    for arms in config["claims"]["ablations"].values():
        names = arms["variants"] if "variants" in arms else [arms["treatment"], arms["control"]]
        assert set(names) <= set(variants)


def test_teacher_trains_first_by_priority():
    """The DDPM teacher gates every distilled model: it carries the highest train priority."""
    proc = snakemake("-n", "--forceall")
    prio = dict(re.findall(r"wildcards: method=(\w+), variant=(?:\w+)\n\s+priority: (\d+)", proc.stdout))
    assert prio.get("ddpm") == "2", proc.stdout[-2000:]
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
    # the Slurm executor plugin is a dependency of the project (pyproject.toml)
    proc = snakemake("--executor", "slurm", "-n", "--forceall", "--profile", "workflows/profiles/slurm", "--configfile",
                     "workflows/config/cifar10.yaml")
    assert "results/cifar10/train/ddpm/main/final.pt" in proc.stdout


def test_schema_rejects_a_bad_config(tmp_path):
    bad = write_config(tmp_path / "bad.yaml", REPO / SMOKE, lambda c: c["sampling"].update(n="many"))
    proc = snakemake("-n", "--configfile", bad, check=False)
    assert proc.returncode != 0 and "'many' is not of type 'integer'" in proc.stdout + proc.stderr
    typo = write_config(tmp_path / "typo.yaml", REPO / SMOKE, lambda c: c.update(sampler={}))
    proc = snakemake("-n", "--configfile", typo, check=False)
    assert proc.returncode != 0 and "sampler" in proc.stdout + proc.stderr


def test_multi_gpu_rule_launches_torchrun(tmp_path):
    cfg = write_config(tmp_path / "gpus.yaml", REPO / "workflows/config/cifar10.yaml",
                       lambda c: c["resources"]["train"].update(gpu=4))
    proc = snakemake("results/cifar10/train/ddpm/main/final.pt", "-n", "-p", "--forceall", "--cores", "8",
                     "--configfile", cfg)
    assert "torchrun --standalone --nnodes 1 --nproc_per_node 4 -m e2ed2.train" in proc.stdout
    proc = snakemake("results/cifar10/train/ddpm/main/final.pt", "-n", "-p", "--forceall", "--cores", "8",
                     "--configfile", "workflows/config/cifar10.yaml")
    assert "python -m e2ed2.train" in proc.stdout and "torchrun" not in proc.stdout


# ---- the smoke DAG end to end (one run shared by the tests below) ----------------------
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    proc = snakemake("--cores", "2", "--configfile", SMOKE, cwd=root)
    return root, proc


@pytest.mark.slow  # the shared smoke run: ~3 min CPU on 2 idle cores, longer under load
def test_smoke_dag_runs_end_to_end(smoke_run):
    root, _ = smoke_run
    out = root / "results/smoke"
    config = yaml.safe_load((root / SMOKE).read_text())
    import json

    import numpy as np

    for method, block in config["models"].items():
        if "checkpoint_of" not in block:
            for variant in block["variants"]:
                assert (out / f"train/{method}/{variant}/final.pt").is_file()
                assert (out / f"benchmarks/train/{method}/{variant}.tsv").is_file()
    n = config["sampling"]["n"]
    with np.load(out / "samples/e2ed2/main/ddim-2/seed1/samples.npz") as z:
        assert z["images"].shape == (n, 1, 32, 32) and z["images"].dtype == np.uint8
        assert list(z["seeds"]) == list(range(n, 2 * n))  # seed block 1 = [N, 2N)
    fid = json.loads((out / "metrics/e2ed2/main/ddim-2/seed1/fid.json").read_text())
    assert fid["labels"]["method"] == "e2ed2" and str(fid["labels"]["seed_block"]) == "1"
    assert fid["n"] == n and fid["timing"]["nfe"] == 2
    clip = json.loads((out / "metrics/ddim/main/ddim-1/seed0/clip.json").read_text())
    assert {r["metric"] for r in clip["results"]} >= {"clip_score"}
    table = (out / "report/table.csv").read_text()
    assert "e2ed2" in table and "ddim" in table
    assert (out / "report/claims/claims.md").read_text().count("C1") >= 1
    assert any((out / "report/figures").glob("*.png"))


@pytest.mark.slow  # the shared smoke run: ~3 min CPU on 2 idle cores, longer under load
def test_rerun_has_nothing_to_do(smoke_run):
    root, _ = smoke_run
    proc = snakemake("-n", "--configfile", SMOKE, cwd=root)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


@pytest.mark.slow  # the shared smoke run: ~3 min CPU on 2 idle cores, longer under load
def test_changing_one_e2ed2_knob_reruns_only_e2ed2_and_the_report(smoke_run):
    root, _ = smoke_run
    cfg = write_config(root / "changed.yaml", root / SMOKE,
                       lambda c: c["models"]["e2ed2"]["method"].update(lambda_rec=0.5))
    outputs = dry_run_outputs(snakemake("-n", "--configfile", cfg, cwd=root))
    assert outputs, "a changed E2ED² knob must rerun something"
    assert "results/smoke/train/e2ed2/main/final.pt" in outputs
    stray = [p for p in outputs if "/e2ed2/" not in p and "/report/" not in p]
    assert not stray, f"jobs outside E2ED² and the report would rerun: {stray}"


TOY = '''"""Toy baseline (test only): x0-prediction regression with the shared UNet."""

import torch

from e2ed2.method import Batch, Method


class Toy(Method):
    name = "toy"
    defaults = {"weight": 1.0}
    default_sampler = "ddim"

    def loss(self, batch: Batch, generator: torch.Generator, phase: str = "main") -> torch.Tensor:
        # eps-prediction at a random training sigma, scaled by the `weight` knob
        x0 = batch.x
        t = torch.randint(0, self.cfg["T"], (x0.shape[0],), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        sigma = self.train_sigmas[t].float().view(-1, 1, 1, 1)
        eps_hat = self.net((x0 + sigma * eps) / (sigma**2 + 1).sqrt(), t.float(), batch.tokens)
        return self.cfg["weight"] * (eps_hat - eps).pow(2).flatten(1).mean(1)
'''


@pytest.mark.slow  # the shared smoke run: ~3 min CPU on 2 idle cores, longer under load
def test_adding_a_toy_baseline_runs_through_the_dag(smoke_run):
    root, _ = smoke_run
    # 1. one file in baselines/   2. one registry line   3. one config entry
    (root / "baselines/toy.py").write_text(TOY)
    registry = root / "e2ed2/registry.py"
    text = registry.read_text()
    text = text.replace("    return {\n", "    from baselines.toy import Toy\n\n    return {\n        \"toy\": Toy,\n", 1)
    registry.write_text(text)

    def add_toy(c):
        c["models"]["toy"] = {"method": {"weight": 2.0}, "train": {"steps": 3}, "variants": {"main": {}}}
        c["evaluate"].append({"model": "toy/main", "sampler": "ddim", "steps": [2], "seed_blocks": 1})

    cfg = write_config(root / "toy.yaml", root / SMOKE, add_toy)
    dry = dry_run_outputs(snakemake("-n", "--configfile", cfg, cwd=root))
    stray = [p for p in dry if "/toy/" not in p and "/report/" not in p]
    assert not stray, f"adding a baseline must not rerun other methods: {stray}"
    target = "results/smoke/metrics/toy/main/ddim-2/seed0/fid.json"
    snakemake(target, "--cores", "2", "--configfile", cfg, cwd=root)
    import json

    rec = json.loads((root / target).read_text())
    assert rec["labels"]["method"] == "toy" and rec["n"] == yaml.safe_load((root / SMOKE).read_text())["sampling"]["n"]
    ckpt_cfg = json.loads((root / "results/smoke/train/toy/main/config.json").read_text())
    assert ckpt_cfg["method"] == {"name": "toy", "weight": 2.0}


def test_two_cpu_processes_train_with_gloo(tmp_path):
    """resources.train.processes: 2 → torchrun with 2 gloo ranks on CPU."""
    root = copy_repo(tmp_path / "repo")

    def ddp(c):
        c["run"] = "ddp"
        c["models"] = {"ddpm": {"train": {"steps": 4}, "variants": {"main": {}}}}
        c["evaluate"] = [{"model": "ddpm/main", "sampler": "ddim", "steps": [1], "seed_blocks": 1}]
        c["resources"]["train"].update(processes=2)

    cfg = write_config(root / "ddp.yaml", root / SMOKE, ddp)
    target = "results/ddp/train/ddpm/main/final.pt"
    proc = snakemake(target, "-p", "--cores", "2", "--configfile", cfg, cwd=root)
    assert "torchrun --standalone --nnodes 1 --nproc_per_node 2" in proc.stdout + proc.stderr
    import torch

    ckpt = torch.load(root / target, map_location="cpu", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["method"] == "ddpm"
