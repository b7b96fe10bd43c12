"""The GPU run's plumbing, checked on CPU: the gpu.yaml DAG (every GPU job asks for one GPU, both
datasets, 3 seed blocks, 2 training seeds per E2ED² arm), the GPU profile, the per-GPU slot
claiming of e2ed2.devices (4 simulated GPUs, concurrent claimers in threads and processes), and
the packing step of benchmarks/gpu_run.sh. No GPU, no real workflow run.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tarfile
import threading
from collections import Counter, defaultdict

import pytest

from e2ed2 import devices
from tests.test_workflow import REPO, SNAKEMAKE, snakemake

GPU_CONFIG = "workflows/config/gpu.yaml"
GPU_STAGES = {"train", "teacher_pairs", "sample", "metrics_fid", "metrics_clip", "fid_ref", "fid_floor", "clip_train",
              "clip_ref", "clip_floor", "sigma_error", "learning_curve"}
needs_snakemake = pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake not installed beside this python")


def dry_run_jobs(stdout: str) -> list[dict]:
    """One dict per job of a `snakemake -n -p` listing: rule, wildcards, resources (name → str)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", stdout):
        m = re.match(r"(?:local)?rule (\w+):\n", block)
        if not m:
            continue
        job = {"rule": m.group(1), "wildcards": {}, "resources": {}}
        for key in ("wildcards", "resources"):
            line = re.search(rf"^\s+{key}: (.*)$", block, re.MULTILINE)
            if line:
                job[key] = dict(kv.split("=", 1) for kv in line.group(1).split(", ") if "=" in kv)
        jobs.append(job)
    return jobs


@pytest.fixture(scope="module")
def gpu_dag():
    proc = snakemake("-n", "-p", "--forceall", "--configfile", GPU_CONFIG, timeout=300)
    return dry_run_jobs(proc.stdout)


# ---- (a) the DAG of workflows/config/gpu.yaml ------------------------------------------------
@needs_snakemake
def test_gpu_dag_asks_one_gpu_for_every_train_sample_and_metrics_job(gpu_dag):
    by_rule = defaultdict(list)
    for job in gpu_dag:
        by_rule[job["rule"]].append(job)
    for rule in ("train", "sample", "metrics_fid", "metrics_clip"):
        assert by_rule[rule], f"no {rule} job in the gpu.yaml DAG"
    for job in gpu_dag:
        gpu = job["resources"].get("gpu")
        if job["rule"] in GPU_STAGES:
            assert gpu == "1", f"{job['rule']} {job['wildcards']}: resources gpu={gpu}, expected gpu=1"
        else:  # CPU-only jobs (data, report) must not hold the gpu pool
            assert gpu in (None, "0"), f"{job['rule']} asks for gpu={gpu}"
    # every sample set is scored by both metric families
    assert len(by_rule["sample"]) == len(by_rule["metrics_fid"]) == len(by_rule["metrics_clip"])


@needs_snakemake
def test_gpu_dag_covers_both_datasets_every_method_three_blocks_two_seeds(gpu_dag):
    trained = {(j["wildcards"]["dataset"], j["wildcards"]["method"], j["wildcards"]["variant"], j["wildcards"]["seed"])
               for j in gpu_dag if j["rule"] == "train"}
    sampled = [j["wildcards"] for j in gpu_dag if j["rule"] == "sample"]
    for dataset in ("mnist5k", "digits"):
        assert {m for d, m, _, _ in trained if d == dataset} == {"edm", "ddpm", "cd", "ct", "e2ed2"}
        assert {w["method"] for w in sampled if w["dataset"] == dataset} == {"edm", "ddpm", "ddim", "cd", "ct", "e2ed2"}
        arms = {v for d, m, v, _ in trained if d == dataset and m == "e2ed2"}
        assert arms == {"main", "k1", "k4", "leaky", "noperc", "noadv", "paper"}  # paper: the literal reading
        for arm in arms:  # ≥ 3 training seeds for every E2ED² arm and student
            assert {s for d, m, v, s in trained if (d, m, v) == (dataset, "e2ed2", arm)} >= {"0", "1", "2"}
        for student in ("cd", "ct"):
            assert {s for d, m, v, s in trained if (d, m) == (dataset, student)} >= {"0", "1", "2"}
    blocks = Counter((w["dataset"], w["method"], w["variant"], w["seed"], w["sampler"], w["steps"]) for w in sampled)
    assert set(blocks.values()) == {3}, "every sample set has exactly 3 seed blocks"


def test_gpu_config_is_a_partial_override_within_the_heldout_splits():
    import yaml

    from e2ed2.plan import DEFAULT_CONFIG, Plan, load_yaml, resolve_config

    raw = yaml.safe_load((REPO / GPU_CONFIG).read_text())
    assert "replace" not in raw, "gpu.yaml updates default.yaml; it replaces no block"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        config = resolve_config(load_yaml(DEFAULT_CONFIG), raw)
    assert config["metrics"]["fid"]["ref_n"] <= 500  # mnist5k's held-out split (digits: 539)
    assert config["sampling"]["seed_blocks"] >= 3 and config["sampling"]["n"] >= 2000
    for stage in ("train", "sample", "metrics"):
        assert config["resources"][stage]["gpu"] == 1
    for model in ("edm", "ddpm"):
        train = {**config["train"], **config["models"][model]["train"]}
        assert train["amp"] == "bf16" and train["tf32"] is True
        assert train.get("snapshots"), "teachers keep snapshots for the learning curves"
    assert config["metrics"]["clip"]["model"] == "small" and not config["metrics"]["clip"].get("pretrained")
    assert set(Plan(config).datasets()) == {"mnist5k", "digits"}


@needs_snakemake
def test_gpu_profile_parses_and_declares_the_gpu_pool():
    import yaml

    profile = yaml.safe_load((REPO / "workflows/profiles/gpu/config.yaml").read_text())
    assert any(re.fullmatch(r"gpu=\d+", r) for r in profile["resources"])
    proc = snakemake("-n", "--profile", "workflows/profiles/gpu", "--configfile", GPU_CONFIG, timeout=300)
    assert re.search(r"^total\s+\d+", proc.stdout, re.MULTILINE)


# ---- (b) e2ed2.devices: one GPU slot per process ---------------------------------------------
@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No torchrun, no CUDA_VISIBLE_DEVICES, locks in a private folder, no claim held."""
    for var in ("CUDA_VISIBLE_DEVICES", "WORLD_SIZE", devices.SLOTS_ENV, *devices.TORCHRUN_VARS):
        monkeypatch.delenv(var, raising=False)
    locks = tmp_path / "locks"
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(locks))
    devices.release_gpu()
    yield locks
    devices.release_gpu()


def test_four_threads_claim_four_distinct_gpus_and_a_fifth_finds_none(clean_env):
    barrier, got = threading.Barrier(4), [None] * 4

    def claimer(i):
        barrier.wait()  # all four race for the slots at once
        got[i] = devices.try_claim(4, clean_env)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c.index for c in got) == [0, 1, 2, 3]
    assert devices.try_claim(4, clean_env) is None  # 5th: every slot held
    assert devices.claim(4, clean_env, wait=True, timeout=0.3, poll=0.05) is None  # waits, then gives up
    freed = got[2]
    freed.release()
    fifth = devices.claim(4, clean_env, wait=True, timeout=5, poll=0.05)
    assert fifth is not None and fifth.index == freed.index
    for c in got + [fifth]:
        c.release()
    assert sorted(p.name for p in clean_env.iterdir()) == [f"gpu{i}.lock" for i in range(4)]


def test_a_waiting_claimer_gets_the_slot_freed_by_another(clean_env):
    held = [devices.try_claim(2, clean_env) for _ in range(2)]
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault("c", devices.claim(2, clean_env, poll=0.02)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "with every slot held the claimer waits"
    held[1].release()
    waiter.join(5)
    assert result["c"].index == held[1].index
    result["c"].release()
    held[0].release()


def test_slots_fill_every_gpu_before_any_gets_a_second_job(clean_env):
    claims = [devices.try_claim(2, clean_env, slots=2) for _ in range(4)]
    assert [c.index for c in claims] == [0, 1, 0, 1]
    assert devices.try_claim(2, clean_env, slots=2) is None
    for c in claims:
        c.release()


def test_claim_gpu_is_held_for_the_process_and_does_nothing_when_it_should_not(clean_env, monkeypatch):
    assert devices.claim_gpu("auto", default=0, n_gpus=1) == 0  # one GPU: nothing to spread
    assert devices.claim_gpu("auto", default=None, n_gpus=0) is None  # no GPU
    assert devices.claim_gpu("cpu", default=7, n_gpus=4) == 7
    assert devices.claim_gpu("cuda:3", default=7, n_gpus=4) == 7  # an explicit index is obeyed
    assert not clean_env.exists() or not any(clean_env.iterdir()), "no lock taken so far"
    for var, value in (("CUDA_VISIBLE_DEVICES", "1"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2")):
        monkeypatch.setenv(var, value)
        assert devices.claim_gpu("cuda", default=0, n_gpus=4) == 0, f"{var} set: torchrun/user decides"
        monkeypatch.delenv(var)
    first = devices.claim_gpu("cuda", default=0, n_gpus=4)
    assert first == 0 and devices.claim_gpu("auto", default=0, n_gpus=4) == first  # claimed once
    assert devices.try_claim(4, clean_env).index == 1  # slot 0 stays held by this process
    with pytest.raises(ValueError, match=devices.SLOTS_ENV):
        devices.slots_per_gpu({devices.SLOTS_ENV: "0"})


HOLDER = """
import sys
from e2ed2 import devices
idx = devices.claim_gpu("auto", default=None, n_gpus=4, wait=sys.argv[1] == "wait")
print(idx, flush=True)
sys.stdin.read()  # hold the slot until the test closes stdin
"""


def _holder(mode: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, mode], cwd=REPO, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _line(proc: subprocess.Popen, timeout: float) -> str | None:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else None


def test_four_processes_get_four_gpus_the_fifth_reports_none_or_waits(clean_env):
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "LOCAL_RANK", "WORLD_SIZE")}
    env[devices.LOCK_DIR_ENV] = str(clean_env)
    holders = [_holder("wait", env) for _ in range(4)]
    try:
        indices = [_line(p, 60) for p in holders]
        assert sorted(indices) == ["0", "1", "2", "3"], indices
        out = subprocess.run([sys.executable, "-c", HOLDER, "nowait"], cwd=REPO, env=env, input="", text=True,
                             capture_output=True, timeout=60, check=True)
        assert out.stdout.strip() == "None"  # wait=False: no slot free, the caller keeps its default
        fifth = _holder("wait", env)
        holders.append(fifth)
        assert _line(fifth, 1.0) is None, "the 5th claimer waits while all four GPUs are held"
        holders[1].stdin.close()  # the job on GPU indices[1] exits: the kernel drops its flock
        holders[1].wait(30)
        assert _line(fifth, 30) == indices[1]
        assert "waiting for one to free" in fifth.stderr.readline()
    finally:
        for p in holders:
            if p.poll() is None:
                p.kill()
            p.wait(30)


def test_devices_run_pins_whole_gpus_for_a_multi_gpu_command(clean_env):
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "LOCAL_RANK", "WORLD_SIZE")}
    env[devices.LOCK_DIR_ENV] = str(clean_env)
    one = devices.try_claim(4, clean_env)  # a single-GPU job already holds GPU 0
    child = ("import os, sys; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-m", "e2ed2.devices", "run", "--gpus", "2", "--n-gpus", "4", "--",
                             sys.executable, "-c", child], cwd=REPO, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert _line(proc, 60) == "1,2"
        third = devices.try_claim(4, clean_env)  # the exec'd command holds GPUs 1 and 2
        assert third.index == 3
        third.release()
    finally:
        proc.stdin.close()
        proc.wait(30)
        one.release()
    after = [devices.try_claim(4, clean_env) for _ in range(4)]  # the command exited: all four free again
    assert sorted(c.index for c in after) == [0, 1, 2, 3]
    for c in after:
        c.release()


# ---- (c) benchmarks/gpu_run.sh: syntax and what comes back -------------------------------------
def test_gpu_run_script_parses_and_packs_at_most_eight_small_files(tmp_path):
    for script in ("benchmarks/gpu_run.sh", "benchmarks/gpu_wheels.sh"):
        subprocess.run(["bash", "-n", script], cwd=REPO, check=True)
    # a fake results/gpu in a scratch checkout: Snakefile + config + the scripts
    work = tmp_path / "repo"
    for rel in ("Snakefile", GPU_CONFIG, "benchmarks/gpu_run.sh", "benchmarks/gpu_run_summary.py"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes((REPO / rel).read_bytes())
    res = work / "results/gpu"
    run = res / "mnist5k/train/e2ed2/k4/s1"
    run.mkdir(parents=True)
    (run / "final.pt").write_bytes(b"0" * 1000)
    (run / "config.json").write_text(json.dumps({"method": {"name": "e2ed2", "steps": 4}, "train": {"steps": 200}}))
    (run / "stats.jsonl").write_text("".join(json.dumps({"step": s, "loss_main": 0.3, "sec_per_step": 0.3}) + "\n"
                                             for s in (50, 100)))
    sets = res / "mnist5k/metrics/e2ed2/k4/s1/ddim-4/b0"
    sets.mkdir(parents=True)
    (sets / "fid.json").write_text(json.dumps({"n": 2000, "results": [{"metric": "fid", "value": 12.0}]}))
    (sets / "features.npz").write_bytes(b"0" * 1000)
    bench = res / "benchmarks/mnist5k/metrics/e2ed2/k4/s1/ddim-4/b0"
    bench.mkdir(parents=True)
    (bench / "fid.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n6.5\t0:00:06\t800\t5.1\n")
    (res / "benchmarks/mnist5k/train/e2ed2/k4").mkdir(parents=True)
    (res / "benchmarks/mnist5k/train/e2ed2/k4/s1.tsv").write_text("s\tcpu_time\n70.2\t68\n")
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable)
    subprocess.run(["bash", "benchmarks/gpu_run.sh", "pack"], cwd=work, env=env, check=True, capture_output=True)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["gpu_results.tar.gz", "gpu_summary.txt"] and len(files) <= 8
    assert all((out / f).stat().st_size <= 16 * 2**20 for f in files)
    with tarfile.open(out / "gpu_results.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("ddim-4/b0/fid.json") for n in names) and any(n.endswith("stats.jsonl") for n in names)
    assert not any(n.endswith((".pt", ".npz")) for n in names), "checkpoints, samples and features stay behind"
    summary = (out / "gpu_summary.txt").read_text()
    assert re.search(r"metrics_fid\s+1\s+6\b", summary) and re.search(r"train\s+1\s+70\b", summary)
    assert re.search(r"e2ed2 K=4 s/step\s+assumed 0.33\s+measured 0.300", summary)
