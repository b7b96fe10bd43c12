"""One-page summary of a GPU workflow run (benchmarks/gpu_run.sh writes it to $OUT/gpu_summary.txt).

    python benchmarks/gpu_run_summary.py results/gpu [--elapsed SECONDS]

Reads only small files the run leaves: Snakemake's benchmark TSVs (wall and CPU seconds of every
job), each training run's stats.jsonl (sec_per_step) and config.json, the metric JSONs, the
snakemake log and nvidia-smi's utilisation samples (_gpu_run/). Its last section sets the
measured figures beside the assumptions of workflows/config/gpu.yaml's sizing, so the next run
can be sized from measurements. Standard library only (it also runs where the run failed early).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

REF_METRICS = {"fid_ref", "fid_floor", "clip_ref", "clip_floor"}
# the sizing assumptions of workflows/config/gpu.yaml (solo s/step on an H200)
ASSUMED = {"teacher s/step": 0.07, "ct s/step": 0.08, "e2ed2 K=1 s/step": 0.11, "e2ed2 K=2 s/step": 0.20,
           "e2ed2 K=4 s/step": 0.33, "sample/fid/clip job s": 6.0}


def rule_of(rel: Path) -> str:
    """The rule a benchmark TSV belongs to, from its path under benchmarks/."""
    parts = rel.parts
    if parts[0] == "report":
        return f"report_{rel.stem}"
    kind = parts[1] if len(parts) > 1 else ""
    if len(parts) == 2:
        return {"data": "dataset"}.get(rel.stem, rel.stem)
    if kind == "metrics":
        if len(parts) == 3 and rel.stem in REF_METRICS:
            return rel.stem
        return f"metrics_{rel.stem}"
    if kind == "diagnostics":
        return {"curve": "learning_curve"}.get(rel.stem, rel.stem)
    return kind  # train, sample


def read_tsv(path: Path) -> dict:
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return rows[-1] if rows else {}


def fmt_row(cols, widths):
    return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))


def jobs_section(res: Path, out: list[str]) -> dict:
    by_rule = defaultdict(list)
    for tsv in sorted((res / "benchmarks").rglob("*.tsv")):
        row = read_tsv(tsv)
        try:
            by_rule[rule_of(tsv.relative_to(res / "benchmarks"))].append(
                (float(row.get("s", "nan")), float(row.get("cpu_time", "nan") or "nan")))
        except ValueError:
            continue
    out.append("\n## Jobs finished, by rule (Snakemake benchmark TSVs: wall s per job)")
    widths = (16, 6, 9, 7, 7, 9)
    out.append(fmt_row(("rule", "jobs", "sum s", "mean s", "max s", "cpu s"), widths))
    for rule, vals in sorted(by_rule.items()):
        walls = [w for w, _ in vals]
        cpu = sum(c for _, c in vals if not math.isnan(c))
        out.append(fmt_row((rule, len(vals), f"{sum(walls):.0f}", f"{statistics.mean(walls):.1f}",
                            f"{max(walls):.1f}", f"{cpu:.0f}"), widths))
    total = sum(w for vals in by_rule.values() for w, _ in vals)
    out.append(f"sum of job wall times: {total:.0f} s (over the run's wall time = mean jobs in flight)")
    return by_rule


def training_section(res: Path, out: list[str]) -> dict:
    out.append("\n## Training runs (stats.jsonl; s/step = mean after the first record)")
    widths = (40, 11, 9, 9, 12)
    out.append(fmt_row(("run", "steps", "s/step", "batch", "last loss"), widths))
    measured = defaultdict(list)
    for stats in sorted(res.glob("*/train/*/*/s*/stats.jsonl")):
        run = stats.parent
        recs = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
        if not recs:
            continue
        cfg = {}
        if (run / "config.json").is_file():
            cfg = json.loads((run / "config.json").read_text())
        train, method = cfg.get("train", {}), cfg.get("method", {})
        times = [r["sec_per_step"] for r in recs[1:] if "sec_per_step" in r] or \
                [r["sec_per_step"] for r in recs if "sec_per_step" in r]
        sps = statistics.mean(times) if times else float("nan")
        loss = next((v for k, v in recs[-1].items() if k.startswith("loss_")), float("nan"))
        name = "/".join(run.relative_to(res).parts[0:1] + run.relative_to(res).parts[2:])
        out.append(fmt_row((name, f"{recs[-1].get('step')}/{train.get('steps', '?')}", f"{sps:.3f}",
                            train.get("batch_size", "?"), f"{loss:.4g}"), widths))
        m = run.parts[-3]
        key = {"edm": "teacher", "ddpm": "teacher", "ct": "ct"}.get(m)
        if m == "e2ed2":
            key = f"e2ed2 K={method.get('steps', '?')}"
        if key:
            measured[f"{key} s/step"].append(sps)
    return measured


def metrics_section(res: Path, out: list[str]) -> None:
    n = len(list(res.glob("*/metrics/**/fid.json"))), len(list(res.glob("*/metrics/**/clip.json")))
    out.append(f"\n## Metric JSONs written: fid {n[0]}, clip {n[1]}")
    for floor in sorted(res.glob("*/metrics/floor/fid.json")):
        rec = json.loads(floor.read_text())
        vals = {r["metric"]: r["value"] for r in rec.get("results", [])}
        out.append(f"real-data floor {floor.parts[-4]}: n={rec.get('n')} " +
                   " ".join(f"{k}={v:.4g}" for k, v in vals.items() if isinstance(v, (int, float))))
    claims = res / "report" / "claims" / "claims.md"
    out.append(f"claims page: {'written' if claims.is_file() else 'MISSING'} ({claims})")


def log_section(res: Path, out: list[str]) -> None:
    log = res / "_gpu_run" / "snakemake.log"
    if not log.is_file():
        out.append("\n## snakemake.log: missing")
        return
    text = log.read_text(errors="replace")
    done = re.findall(r"^(\d+) of (\d+) steps \((\d+%)\) done", text, re.MULTILINE)
    errors = re.findall(r"^Error in rule (\w+):", text, re.MULTILINE)
    out.append(f"\n## Snakemake: "
               f"{' of '.join(done[-1][:2]) + ' steps (' + done[-1][2] + ')' if done else 'no step done'};"
               f" {len(errors)} failed jobs")
    for rule, k in sorted(((r, errors.count(r)) for r in set(errors)), key=lambda x: -x[1]):
        out.append(f"  failed: {rule} × {k}")
    if "Terminating processes on user request" in text or "KeyboardInterrupt" in text:
        out.append("  stopped by the time limit (rerun `bash benchmarks/gpu_run.sh run` to resume)")


def gpu_section(res: Path, out: list[str]) -> None:
    path = res / "_gpu_run" / "gpu_util.csv"
    util, mem = [], []
    if path.is_file():
        for row in csv.reader(path.read_text().splitlines()):
            try:
                util.append(float(row[1].strip().rstrip(" %")))
                mem.append(float(row[3].strip().split()[0]))
            except (IndexError, ValueError):
                continue
    if not util:
        out.append("\n## GPU utilisation: no samples")
        return
    q = statistics.quantiles(util, n=10) if len(util) > 1 else [util[0]] * 9
    out.append(f"\n## GPU utilisation (nvidia-smi every 5 s, {len(util)} samples): mean {statistics.mean(util):.0f} %,"
               f" median {statistics.median(util):.0f} %, p90 {q[8]:.0f} %, max {max(util):.0f} %;"
               f" memory max {max(mem):.0f} MiB")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="results/<run> folder")
    p.add_argument("--elapsed", type=float, default=None, help="the script's wall seconds so far")
    args = p.parse_args(argv)
    res = Path(args.results)
    out = [f"# GPU run summary: {res}" + (f" (script wall {args.elapsed:.0f} s)" if args.elapsed else "")]
    env = res / "_gpu_run" / "env.txt"
    if env.is_file():
        out += ["", env.read_text().rstrip()]
    log_section(res, out)
    by_rule = jobs_section(res, out) if (res / "benchmarks").is_dir() else {}
    measured = training_section(res, out)
    for rule in ("sample", "metrics_fid", "metrics_clip"):
        measured["sample/fid/clip job s"] += [w for w, _ in by_rule.get(rule, [])]
    metrics_section(res, out)
    gpu_section(res, out)
    out.append("\n## Measured vs gpu.yaml's sizing assumptions (solo figures; shared-GPU runs are slower)")
    for key, assumed in ASSUMED.items():
        vals = [v for v in measured.get(key, []) if not math.isnan(v)]
        got = f"{statistics.mean(vals):.3f} (n={len(vals)})" if vals else "not measured"
        out.append(f"  {key:<24} assumed {assumed:<6} measured {got}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
