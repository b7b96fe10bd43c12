"""The recipe table of docs/E2ED2.md from benchmarks/e2ed2_sweep.py's JSON lines.

One row per (dataset, variant, training step): images seen, the knobs that differ from the
committed recipe, and FID / recall at each scored NFE as the mean over training seeds with the
seeds' range in brackets (seeds listed). FID is clean-fid on N images against the held-out
reference, so the numbers sit beside the workflow's.

    python benchmarks/e2ed2_sweep_table.py .tmp/sweep_*.jsonl
"""

from __future__ import annotations

import json
import sys

import pandas as pd

BASE = {"pairing": "data", "lambda_adv": 0.1, "lambda_perc": 1.0, "lambda_rec": 1.0, "steps": 2, "start": "pure"}


def knobs(row) -> str:
    """The method knobs that differ from the committed recipe (BASE), plus any new knob set."""
    out = []
    for k, v in row.items():
        if not k.startswith("knob_") or k.startswith("knob_train_") or pd.isna(v):
            continue
        name = k[len("knob_"):]
        if name.startswith("teacher_") and row.get("knob_pairing") != "teacher":
            continue  # the teacher's sampler settings matter only to the teacher pairing
        if name in BASE and v != BASE[name] or name not in BASE and name in EXTRA:
            v = int(v) if isinstance(v, float) and v.is_integer() else v
            v = str(v).rsplit("/", 1)[-1] if name == "teacher_pairs" else v
            out.append(f"{name}={v}")
    return ", ".join(out) or "(committed recipe)"


EXTRA = ("teacher_steps", "teacher_pairs", "adv_weight", "disc", "disc_steps", "disc_warmup", "disc_fakes",
         "rec_schedule", "rec_final", "r1_gamma", "diag_every")


def cell(g: pd.DataFrame, col: str, digits: int) -> str:
    v = g[col]
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} [{v.min():.{digits}f}, {v.max():.{digits}f}]"


def table(rows: pd.DataFrame) -> str:
    lines = ["| dataset | variant | knobs (vs committed) | step | images | train s | NFE | FID | recall | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (d, v, step, nfe), g in rows.groupby(["dataset", "variant", "step", "nfe"], sort=True):
        final = (g["step"] == g["train_steps"]).all()  # the run's wall time belongs to its final row
        secs = f"{g['train_seconds'].mean():.0f}" if final else ""
        seeds = ",".join(map(str, sorted(g["seed"])))
        lines.append(f"| {d} | {v} | {knobs(g.iloc[0])} | {step} | {int(g['images_seen'].iloc[0]):,} | {secs} | "
                     f"{nfe} | {cell(g, 'fid', 1)} | {cell(g, 'recall', 3)} | {seeds} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    paths = (argv if argv is not None else sys.argv[1:])
    rows = pd.DataFrame([json.loads(line) for p in paths for line in open(p) if line.strip()])
    rows = rows.drop_duplicates(subset=["dataset", "variant", "seed", "step", "nfe"], keep="last")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
