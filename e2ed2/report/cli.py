"""CLI: ``python -m e2ed2.report {aggregate,tables,figures,claims,all} ...``.

aggregate  metric JSONs under --metrics → tidy --out table.csv
tables     table.csv → main + ablation tables (.csv, .md, .tex) in --out
figures    table.csv (+ --train logs, --samples sets) → PNG + PDF figures in --out
claims     table.csv (+ --train logs) → claims.md, claims.html, claims.json in --out
all        every stage into --out (table.csv, tables/, figures/, claims.*)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import aggregate, claims, curves, figures, grid, page, tables
from .spec import load_spec


def _runs(args):
    return curves.load_runs(args.train) if getattr(args, "train", None) else None


def _figures(df, spec, args, out) -> list:
    written = figures.write_figures(df, spec, out, _runs(args))
    if args.samples:
        import matplotlib

        with matplotlib.rc_context(figures.theme()):
            fig = grid.grid_figure(grid.find_sample_sets(args.samples), args.grid_seeds, spec["main_variant"])
            if fig is None:
                raise FileNotFoundError(f"no samples.npz under {args.samples} holds seeds 0..{args.grid_seeds - 1} "
                                        f"for variant {spec['main_variant']!r}; cannot draw the fixed-latent grid")
            written += figures.save(fig, out, "sample_grid")
    return written


def _claims(df, spec, args, out) -> list:
    verdicts = claims.evaluate(df, spec, _runs(args))
    n = sorted({int(x) for x in df["n"].dropna()})
    pre = (f"Datasets: {', '.join(sorted(df['dataset'].unique()))}. N = {'/'.join(map(str, n))} images per seed block; "
           f"intervals are 95% Student-t over sampling-seed blocks. Each rule was written in e2ed2/report/claims.py "
           f"before any number was computed.")
    return page.write_claims(verdicts, out, preamble=pre)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2ed2.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True)
    stages = {name: sub.add_parser(name, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
              for name in ("aggregate", "tables", "figures", "claims", "all")}
    for name, sp in stages.items():
        sp.add_argument("--out", required=True, help="output file (aggregate) or folder")
        if name in ("aggregate", "all"):
            sp.add_argument("--metrics", required=True, help="folder of metric JSONs (searched recursively)")
        else:
            sp.add_argument("--table", required=True, help="tidy table.csv written by `aggregate`")
        if name != "aggregate":
            sp.add_argument("--spec", default=None, help="claims spec YAML/JSON (method, variants per ablation, margins)")
        if name in ("figures", "claims", "all"):
            sp.add_argument("--train", default=None, help="folder of training runs (stats.jsonl) for curves / stability")
        if name in ("figures", "all"):
            sp.add_argument("--samples", default=None, help="folder of sample sets (samples.npz) for the fixed-latent grid")
            sp.add_argument("--grid-seeds", type=int, default=4, help="seeds per grid cell")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.stage == "aggregate":
        df = aggregate.collect(args.metrics)
        aggregate.write_table(df, out)
        print(json.dumps({"table": str(out), "rows": len(df)}))
        return 0
    spec = load_spec(args.spec)
    if args.stage == "all":
        df = aggregate.collect(args.metrics)
        aggregate.write_table(df, out / "table.csv")
        written = [out / "table.csv"] + tables.write_tables(df, spec, out / "tables")
        written += _figures(df, spec, args, out / "figures") + _claims(df, spec, args, out)
    else:
        df = aggregate.read_table(args.table)
        written = {"tables": lambda: tables.write_tables(df, spec, out), "figures": lambda: _figures(df, spec, args, out),
                   "claims": lambda: _claims(df, spec, args, out)}[args.stage]()
    print(json.dumps({"written": [str(w) for w in written]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
