"""One-shot CUDA check of the harness on a GPU machine: training (fp32/TF32, bf16 autocast,
torch.compile), E2ED² step time and memory vs K, sampling, and the metrics stage (both FID
backends, floor, small CLIP, CLIP score / FD_CLIP, Inception throughput). It is a measurement,
not a test: every stage runs the real CLI in a subprocess, its wall time and exit code are
recorded, and a failing stage does not stop the others.

    python benchmarks/gpu_check.py --stage train   --work /root/e2ed2_gpu --out $OUT
    python benchmarks/gpu_check.py --stage metrics --work /root/e2ed2_gpu --out $OUT

The two stages exist because the FID Inception file (87 MB) does not fit one transfer to the
lent machine together with the code; `metrics` expects the `train` stage's --work folder.
On an H200 (2026-11-26) the first version of the train stage (DDPM 2000 bf16 steps, E2ED² 400,
CT 500) ran past 7 min; the sizes below are cut to fit ~5 min. Figures: docs/GPU_CHECK.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
NET = {"channels": 16, "channel_mult": [1, 2, 4], "attn_resolutions": [8]}


class Runner:
    """Runs CLIs, logs each to <out>/logs.txt, and collects {stage: {seconds, rc}}."""

    def __init__(self, out: Path):
        self.out, self.rows = out, {}
        self.log = open(out / "gpu_check.log", "a")

    def __call__(self, name: str, args: list[str], timeout: float = 300) -> bool:
        t0 = time.perf_counter()
        self.log.write(f"\n===== {name}: {' '.join(args)}\n")
        self.log.flush()
        try:
            rc = subprocess.run([PY, *args], stdout=self.log, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        self.rows[name] = {"seconds": round(time.perf_counter() - t0, 2), "rc": rc}
        print(f"{name}: rc={rc} {self.rows[name]['seconds']} s", flush=True)
        (self.out / "stages_partial.json").write_text(json.dumps(self.rows, indent=0))  # survives a kill
        return rc == 0


def last_stats(run: Path) -> dict:
    """Last logged step and its losses, plus the mean sec_per_step over the records after the
    first (compile/warm-up), from the run's stats.jsonl (e2ed2.train's log format)."""
    recs = [json.loads(line) for line in open(run / "stats.jsonl")]
    keep = {k: v for k, v in recs[-1].items() if k == "step" or k.startswith("loss_")}
    times = [r["sec_per_step"] for r in recs[1:]]
    if times:
        keep["mean_sec_per_step_after_first"] = sum(times) / len(times)
    return keep


def train_stage(run: Runner, w: Path) -> dict:
    data = w / "data/mnist5k.npz"
    run("data", ["-m", "e2ed2.data", "mnist5k", "--out", str(data)])
    cfg = lambda method, train: json.dumps({"data": str(data), "method": method, "net": NET, "train": train})  # noqa: E731
    common = {"device": "cuda", "ckpt_every": 1000, "log_every": 100, "lr": 5e-4, "warmup": 100}
    # DDPM teacher: fp32+TF32 vs bf16 autocast vs bf16 + torch.compile, same seed and steps.
    for tag, extra in [("fp32_tf32", {"tf32": True}), ("bf16", {"amp": "bf16", "tf32": True}),
                       ("bf16_compile", {"amp": "bf16", "tf32": True, "compile": True})]:
        steps = 1000 if tag == "bf16" else 300
        run(f"train_ddpm_{tag}", ["-m", "e2ed2.train", "--config-json",
                                  cfg({"name": "ddpm"}, {**common, **extra, "steps": steps, "batch_size": 128}),
                                  "--out", str(w / f"train/ddpm_{tag}"), "--no-progress"], timeout=420)
    teacher = str(w / "train/ddpm_bf16/final.pt")
    e2e = {"name": "e2ed2", "teacher": teacher, "steps": 2, "sampler": "ddim", "init": "teacher", "start": "pure",
           "lambda_rec": 1.0, "lambda_perc": 1.0, "lambda_adv": 0.1, "perceptual": "mslap", "clip_denoised": True}
    run("train_e2ed2_k2_bf16", ["-m", "e2ed2.train", "--config-json",
                                cfg(e2e, {**common, "amp": "bf16", "tf32": True, "steps": 300, "batch_size": 64,
                                          "lr": 1e-4, "warmup": 20, "log_every": 50}),
                                "--out", str(w / "train/e2ed2"), "--no-progress"], timeout=420)
    # E2ED² step time and peak CUDA memory vs K, checkpointing on/off (benchmarks/bench_e2e.py).
    run("bench_e2e_cuda", ["benchmarks/bench_e2e.py", "--device", "cuda", "--ks", "1,2,4", "--steps", "3",
                           "--batch-size", "64", "--json", str(run.out / "bench_e2e_cuda.json")], timeout=300)
    # Sampling: every step budget from the same seeds, timing.json records ms/image and peak memory.
    seeds = "0-499"
    for name, ckpt, sampler, steps in [("e2ed2", w / "train/e2ed2/final.pt", "ddim", s) for s in (1, 2, 4)] + \
            [("ddpm", teacher, "ddim", s) for s in (4, 50)] + [("ddpm", teacher, "ddpm", 100)]:
        run(f"sample_{name}_{sampler}{steps}", ["-m", "e2ed2.sample", "--ckpt", str(ckpt), "--data", str(data),
                                                "--steps", str(steps), "--sampler", sampler, "--seeds", seeds,
                                                "--batch-size", "500", "--device", "cuda",
                                                "--out", str(w / f"samples/{name}/{sampler}-{steps}")])
    run("train_clip", ["-m", "e2ed2.metrics.train_clip", "--data", str(data), "--out", str(w / "clip/small.pt")])
    out = {"train": {}}
    for d in sorted((w / "train").iterdir()):
        if (d / "stats.jsonl").is_file():
            out["train"][d.name] = last_stats(d)
    out["timing"] = {str(p.parent.relative_to(w)): json.loads(p.read_text())
                     for p in (w / "samples").rglob("timing.json")}
    return out


def metrics_stage(run: Runner, w: Path) -> dict:
    data = str(w / "data/mnist5k.npz")
    for backend in ("clean-fid", "torch-fidelity"):
        ref = str(w / f"ref/{backend}.npz")
        run(f"ref_{backend}", ["-m", "e2ed2.metrics.fid", "ref", "--data", data, "--split", "heldout", "--n", "500",
                               "--backend", backend, "--device", "cuda", "--batch-size", "250", "--out", ref])
        run(f"floor_{backend}", ["-m", "e2ed2.metrics.fid", "floor", "--data", data, "--ref", ref, "--n", "500",
                                 "--device", "cuda", "--out", str(w / f"metrics/floor_{backend}.json")])
        for s in sorted((w / "samples").glob("*/*")):
            run(f"fid_{backend}_{s.parent.name}_{s.name}",
                ["-m", "e2ed2.metrics.fid", "calc", "--samples", str(s), "--ref", ref, "--device", "cuda",
                 "--batch-size", "250", "--out", str(w / f"metrics/fid_{backend}_{s.parent.name}_{s.name}.json")])
    clip = f"small:{w / 'clip/small.pt'}"
    cref = str(w / "ref/clip.npz")
    run("clip_ref", ["-m", "e2ed2.metrics.clip", "ref", "--clip", clip, "--data", data, "--split", "heldout",
                     "--n", "500", "--device", "cuda", "--out", cref])
    for s in sorted((w / "samples").glob("*/*")):
        run(f"clip_{s.parent.name}_{s.name}", ["-m", "e2ed2.metrics.clip", "calc", "--clip", clip, "--samples", str(s),
                                               "--ref", cref, "--device", "cuda",
                                               "--out", str(w / f"metrics/clip_{s.parent.name}_{s.name}.json")])
    out = {"metrics": {}}
    for p in sorted((w / "metrics").glob("*.json")):
        rec = json.loads(p.read_text())  # one metric JSON: {"results": [{"metric", "value"}, ...], "n", ...}
        out["metrics"][p.stem] = {"n": rec["n"], "backend": rec.get("backend"),
                                  **{r["metric"]: r["value"] for r in rec["results"]}}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=["train", "metrics"], required=True)
    p.add_argument("--work", required=True, help="folder for data, checkpoints, samples (kept between stages)")
    p.add_argument("--out", required=True, help="folder for the JSON summary and the log")
    args = p.parse_args(argv)
    w, out = Path(args.work), Path(args.out)
    w.mkdir(parents=True, exist_ok=True), out.mkdir(parents=True, exist_ok=True)
    import torch
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0),
            "python": sys.version.split()[0], "stage": args.stage}
    run = Runner(out)
    result = train_stage(run, w) if args.stage == "train" else metrics_stage(run, w)
    if args.stage == "metrics":
        run("bench_features_cuda", ["benchmarks/bench_features.py", "--device", "cuda", "--n", "500",
                                    "--batch-size", "250", "--repeats", "3"], timeout=300)
    summary = {"info": info, "stages": run.rows, **result}
    (out / f"gpu_check_{args.stage}.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary["stages"], indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
