"""What a metric job spends on process start-up vs on its images, and what scoring several sample
sets in one process saves (issue #24 item 5).

  OMP_NUM_THREADS=1 python benchmarks/bench_metrics_overhead.py --n 50 --sets 4

1. Start-up parts, timed inside one fresh process per family in the order a ``calc`` job pays
   them: interpreter (a bare ``python -c pass``), ``import torch``, the e2ed2 modules, the feature
   libraries (clean-fid + torch-fidelity, or open_clip: both pull in torchvision and torch._dynamo),
   the network (Inception TorchScript → fast network; the small CLIP), the reference statistics, the
   first forward pass and the provenance record; then the per-image work (steady state).
2. Before/after: ``--sets`` sample sets of ``--n`` real images (mnist5k train images written as
   sample sets), scored by one ``calc`` process per set (the per-set workflow rule) and by one
   ``calc`` process for all of them; process-seconds (wall time of the processes, summed) and
   their CPU seconds.

Everything runs with one torch thread (the workflow's metrics jobs: threads 1). The numbers are
from whatever machine runs it; on the shared 2-core dev VM other jobs run at the same time, so
read them as ±20 % (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}

# Fresh processes (one per family), timing each start-up part in the order a calc job pays it (JSON out).
FID_PARTS = r"""
import json, sys, time
t = {}
t0 = time.perf_counter()
import torch
torch.set_num_threads(1)
t["import torch"] = time.perf_counter() - t0
t0 = time.perf_counter()
from e2ed2.metrics import backends, common, fid
t["import e2ed2 (cli, data, metrics.fid)"] = time.perf_counter() - t0
t0 = time.perf_counter()
import cleanfid.fid, torch_fidelity  # imported lazily by the backends, on the first set
t["import clean-fid + torch-fidelity (torchvision, torch._dynamo)"] = time.perf_counter() - t0
t0 = time.perf_counter()
net, info = backends.network(None, True, "cpu")
t["load Inception TorchScript -> fast network"] = time.perf_counter() - t0
t0 = time.perf_counter()
ref = fid.load_reference(sys.argv[1])
t["load FID reference statistics"] = time.perf_counter() - t0
rgb = common.to_rgb(common.load_sample_set(sys.argv[2]).images)[0]
passes = []
for _ in range(2):  # the first pass pays allocation and kernel selection; the second is the steady cost
    t0 = time.perf_counter()
    backends.features("clean-fid", rgb[:8])
    passes.append(time.perf_counter() - t0)
t["first Inception pass (8 images), beyond a second one"] = passes[0] - passes[1]
t0 = time.perf_counter()
backends.features("clean-fid", rgb)
t["per image: Inception features (clean-fid path)"] = (time.perf_counter() - t0) / len(rgb)
t0 = time.perf_counter()
common.hardware(torch.device("cpu")), common.versions()
t["provenance (hardware, package versions)"] = time.perf_counter() - t0
print(json.dumps(t))
"""

CLIP_PARTS = r"""
import json, sys, time
t = {}
t0 = time.perf_counter()
import torch
torch.set_num_threads(1)
t["import torch"] = time.perf_counter() - t0
t0 = time.perf_counter()
from e2ed2.metrics import clip, clip_model, common
t["import e2ed2 (cli, data, metrics.clip)"] = time.perf_counter() - t0
t0 = time.perf_counter()
import open_clip
t["import open_clip (torchvision, torch._dynamo)"] = time.perf_counter() - t0
t0 = time.perf_counter()
backbone = clip_model.load("small:" + sys.argv[1])
t["load CLIP backbone"] = time.perf_counter() - t0
images = common.load_sample_set(sys.argv[2]).images
with torch.no_grad():
    passes = []
    for _ in range(2):
        t0 = time.perf_counter()
        backbone.encode_images(images[:8])
        backbone.encode_texts(["a"])
        passes.append(time.perf_counter() - t0)
    t["first CLIP pass (8 images, 1 caption), beyond a second one"] = passes[0] - passes[1]
    t0 = time.perf_counter()
    backbone.encode_images(images)
    backbone.encode_texts(["a"] * len(images))
    t["per image: CLIP embeddings (image + caption)"] = (time.perf_counter() - t0) / len(images)
t0 = time.perf_counter()
common.hardware(torch.device("cpu")), common.versions()
t["provenance (hardware, package versions)"] = time.perf_counter() - t0
print(json.dumps(t))
"""


def run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process; its output goes to a log (stderr on failure)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=ENV, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def prepare(folder: Path, n: int, sets: int, ref_n: int) -> tuple[Path, Path, Path, list[Path]]:
    """The FID and CLIP references of ``ref_n`` images of mnist5k's held-out split,
    a briefly trained small CLIP, and ``sets`` sample sets of n mnist5k train images each."""
    sys.path.insert(0, str(REPO))
    from e2ed2.data import load_dataset
    from e2ed2.sample import save_samples

    py = sys.executable
    data = folder / "mnist5k.npz"
    load_dataset("mnist5k").save(data)
    fid_ref, clip_ref, clip = folder / "fid_ref.npz", folder / "clip_ref.npz", folder / "clip.pt"
    run([py, "-m", "e2ed2.metrics.fid", "ref", "--data", str(data), "--split", "heldout", "--n", str(ref_n),
         "--threads", "1", "--out", str(fid_ref)])
    run([py, "-m", "e2ed2.metrics.train_clip", "--data", str(data), "--steps", "5", "--batch-size", "32",
         "--threads", "1", "--out", str(clip)])
    run([py, "-m", "e2ed2.metrics.clip", "ref", "--clip", f"small:{clip}", "--data", str(data), "--split", "heldout",
         "--n", str(ref_n), "--threads", "1", "--out", str(clip_ref)])
    train = load_dataset(str(data)).subset("train")
    model = {"method": {"name": "real", "steps": 0}, "run_hash": None, "train_step": 0}
    dirs = []
    for k in range(sets):
        d = folder / f"set{k}"
        rows = slice(k * n, (k + 1) * n)
        save_samples(d / "samples.npz", train.images[rows], list(range(n)), train.captions[rows], train.labels[rows],
                     {"model": model})
        (d / "timing.json").write_text(json.dumps({"data": str(data), "n": n}))
        dirs.append(d)
    return fid_ref, clip_ref, clip, dirs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50, help="images per sample set")
    p.add_argument("--sets", type=int, default=4, help="sample sets (the jobs one grouped job replaces)")
    p.add_argument("--ref-n", type=int, default=100,
                   help="reference images (the default run's 500 cost ~40 s more to make; loading either is ~0.02 s)")
    args = p.parse_args(argv)
    py = sys.executable
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        folder = Path(tmp)
        fid_ref, clip_ref, clip, dirs = prepare(folder, args.n, args.sets, args.ref_n)

        # 1. start-up parts and per-image work, one fresh process per family
        bare, _ = run([py, "-c", "pass"])
        parts = {}
        for family, script, arg in (("fid", FID_PARTS, fid_ref), ("clip", CLIP_PARTS, clip)):
            proc = subprocess.run([py, "-c", script, str(arg), str(dirs[0])], env=ENV, cwd=REPO,
                                  capture_output=True, text=True, check=True)
            parts[family] = {"python interpreter start (python -c pass)": bare,
                             **json.loads(proc.stdout.splitlines()[-1])}

        # 2. one process per set vs one process for every set
        figures = {}
        for family in ("fid", "clip"):
            head = ([py, "-m", "e2ed2.metrics.fid", "calc", "--ref", str(fid_ref)] if family == "fid" else
                    [py, "-m", "e2ed2.metrics.clip", "calc", "--clip", f"small:{clip}", "--ref", str(clip_ref)])
            keep = "--save-features" if family == "fid" else "--save-scores"
            per_set = [["--samples", str(d), "--out", str(d / f"{family}.json"), keep, str(d / f"{family}.npz"),
                        "--label", f"set={k}"] for k, d in enumerate(dirs)]
            single = [run(head + ["--threads", "1"] + a) for a in per_set]
            grouped = run(head + ["--threads", "1"] + [x for a in per_set for x in a])
            figures[family] = {"per-set processes": (sum(w for w, _ in single), sum(c for _, c in single)),
                               "one process": grouped}
    load1 = os.getloadavg()

    print(f"# metric-job overhead: {args.sets} sets × {args.n} mnist5k images, 1 torch thread, "
          f"{os.cpu_count()} cores")
    print(f"# load average at start {load0[0]:.2f}, at end {load1[0]:.2f} (a shared machine: other jobs ran too)")
    print("\n## start-up parts (one fresh process per family) and per-image work")
    startup = {}
    for family, fam_parts in parts.items():
        print(f"[{family}]")
        for name, sec in fam_parts.items():
            print(f"  {name:<64} {sec:8.3f} {'s/image' if name.startswith('per image') else 's'}")
        startup[family] = sum(sec for name, sec in fam_parts.items() if not name.startswith("per image"))
        (w1, _), (w2, _) = figures[family]["per-set processes"], figures[family]["one process"]
        print(f"  {'=> start-up, sum of the parts':<64} {startup[family]:8.3f} s")
        print(f"  {'=> start-up, measured: (per-set − one process) / (sets − 1)':<64} "
              f"{(w1 - w2) / (args.sets - 1):8.3f} s")
        per_image = next(sec for name, sec in fam_parts.items() if name.startswith("per image"))
        shares = ", ".join(f"n = {n}: {startup[family] / (startup[family] + n * per_image):.0%}" for n in (50, 200))
        print(f"  start-up share of a one-set job: {shares}")
    print(f"\n## process-seconds for {args.sets} sets: one process per set vs one process for all")
    for family, f in figures.items():
        (w1, c1), (w2, c2) = f["per-set processes"], f["one process"]
        print(f"{family:<5} per set: {w1:7.1f} s wall ({c1:6.1f} s CPU)   one process: {w2:7.1f} s wall "
              f"({c2:6.1f} s CPU)   ratio {w1 / w2:.2f}x wall, {c1 / c2:.2f}x CPU")
    tw1 = sum(f["per-set processes"][0] for f in figures.values())
    tw2 = sum(f["one process"][0] for f in figures.values())
    print(f"both  per set: {tw1:7.1f} s wall   one process: {tw2:7.1f} s wall   ratio {tw1 / tw2:.2f}x")
    print(f"\n(benchmark wall time {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
