"""The optional latent-space path in the DAG (config.latent), checked with dry runs only.

`snakemake -n -F -p` lists every job with its inputs and shell command, so without running
anything it shows that `encode_latents` feeds every `train` job and that each run config
carries `latent: {vae, latents}` (sampling then decodes through the checkpoint's VAE), and
that configs without a `latent:` block keep their DAG.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
RUN = "pytest_latent_dryrun"  # a run name of its own: never reads another run's results/

pytestmark = pytest.mark.skipif(not SNAKEMAKE.exists(), reason=f"snakemake not installed beside {sys.executable}")


def dry_run(configfile: Path | str, run: str | None = RUN) -> list[dict]:
    """Every job of a forced dry run: {rule, input, shell}."""
    args = [str(SNAKEMAKE), "-n", "-F", "-p", "--configfile", str(configfile)]
    if run:
        args += ["--config", f"run={run}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m:
            continue
        inputs = re.search(r"^\s+input: (.*)$", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs.append({"rule": m.group(1), "input": inputs.group(1).split(", ") if inputs else [],
                     "shell": shell.group(1) if shell else ""})
    return jobs


def run_config(job: dict) -> dict:
    """The --config-json of a train job's shell command."""
    argv = shlex.split(job["shell"])
    return json.loads(argv[argv.index("--config-json") + 1])


def by_rule(jobs: list[dict], rule: str) -> list[dict]:
    return [j for j in jobs if j["rule"] == rule]


@pytest.fixture(scope="module")
def coco_jobs():
    return dry_run("workflows/config/coco30k.yaml")


def test_coco30k_encodes_once_and_every_train_job_reads_latents(coco_jobs):
    latents = f"results/{RUN}/data/coco30k.latents.npz"
    (encode,) = by_rule(coco_jobs, "encode_latents")
    assert encode["input"] == [f"results/{RUN}/data/coco30k.npz"]
    assert "python -m e2ed2.latent encode" in encode["shell"] and "--vae sd-vae-ft-mse" in encode["shell"]
    assert f"--out {latents}" in encode["shell"]
    train = by_rule(coco_jobs, "train")
    # edm, ddpm, cd, ct, e2ed2/main × 2 training seeds, five single-seed E2ED² variants
    assert len(train) == 4 + 2 + 5
    for job in train:
        assert latents in job["input"]
        config = run_config(job)
        assert config["latent"] == {"vae": "sd-vae-ft-mse", "latents": latents}
        assert (config["net"]["image_channels"], config["net"]["resolution"]) == (4, 32)
    # the pixel data are prepared at the dataset's resolution, not the (latent) net's
    (convert,) = by_rule(coco_jobs, "coco30k_convert")
    assert "--resolution 256" in convert["shell"]
    # sampling reads the checkpoint (which carries the VAE) and decodes; no extra input needed
    assert all(latents not in j["input"] for j in by_rule(coco_jobs, "sample"))


def test_default_has_no_latent_path():
    jobs = dry_run("workflows/config/default.yaml")
    assert not by_rule(jobs, "encode_latents")
    train = by_rule(jobs, "train")
    assert train
    for job in train:
        assert "latent" not in run_config(job)
        assert not any("latents" in path for path in job["input"])


def test_latent_block_wires_any_config(tmp_path):
    """A `latent:` block added to the default config adds the rule and the run-config block."""
    config = yaml.safe_load((REPO / "workflows/config/default.yaml").read_text())
    config["latent"] = {"vae": "/nowhere/vae", "subfolder": "vae", "batch_size": 8}
    path = tmp_path / "latent.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = dry_run(path)
    encodes = by_rule(jobs, "encode_latents")
    datasets = sorted(config["datasets"])
    assert len(encodes) == len(datasets)  # one encode job per dataset
    for encode in encodes:
        assert "--subfolder vae" in encode["shell"] and "--batch-size 8" in encode["shell"]
    train = by_rule(jobs, "train")
    assert train
    for job in train:
        (dataset,) = [d for d in datasets if f"results/{RUN}/{d}/train/" in job["shell"]]
        assert run_config(job)["latent"] == {"vae": "/nowhere/vae", "subfolder": "vae",
                                             "latents": f"results/{RUN}/data/{dataset}.latents.npz"}
