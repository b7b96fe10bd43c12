"""CLI: ``python -m e2ed2.report {aggregate,paired,tables,figures,claims,all} ...``.

aggregate  metric JSONs under --metrics folders → tidy --out table.csv
paired     table.csv (+ the per-image replicates beside each metric JSON) → paired.csv
tables     table.csv → main, ablation and health tables (.csv, .md, .tex) in --out
figures    table.csv (+ --train logs, --samples sets, --diagnostics) → PNG + PDF figures in --out
claims     table.csv + paired.csv (+ --train logs, --tables, --figures) → claims.md, claims.json and
           claims.html, the one-page summary (claims, health checks, main tables, key figures)
all        every stage into --out
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import pandas as pd

from .. import cli
from ..atomic import write_text
from . import aggregate, claims, comparisons, curves, diagnostics, figures, grid, page, tables
from .spec import load_spec


def _runs(args):
    return curves.load_runs(args.train) if getattr(args, "train", None) else None


def _figures(df, spec, args, out) -> list:
    written = figures.write_figures(df, spec, out, _runs(args), diagnostics.load(args.diagnostics or []))
    for root in args.samples or []:
        with matplotlib.rc_context(figures.theme()):
            sets = grid.find_sample_sets(root)
            for dataset in sorted(sets["dataset"].unique()) if len(sets) else []:
                fig = grid.grid_figure(sets[sets["dataset"] == dataset], args.grid_seeds, spec["main_variant"])
                if fig is not None:
                    written += figures.save(fig, out, f"sample_grid_{dataset}")
    return written


def _paired(df, args) -> pd.DataFrame:
    return comparisons.all_comparisons(df, comparisons.load_replicates(df), load_spec(args.spec))


def _claims(df, pairs, spec, args, out) -> list:
    verdicts, checks = claims.evaluate(df, pairs, spec, _runs(args))
    n = sorted({int(x) for x in df["n"].dropna()})
    seeds = df[df["method"] != aggregate.FLOOR_METHOD].groupby(["dataset", "method", "variant"])["train_seed"].nunique()
    pre = (f"Datasets: {', '.join(sorted(df['dataset'].unique()))}. N = {'/'.join(map(str, n))} images per seed "
           f"block; {_span(seeds)} training seeds per model. Claims are decided by paired comparisons (same seeds "
           f"and captions in every arm) whose 95% intervals cover both the draw of images and training-seed "
           f"variance (a t-interval over training seeds with the image-level bootstrap variance added; a comparison "
           f"with a single-seed arm decides nothing), after the baseline health checks; each verdict is recomputed "
           f"with each training seed left out (stable / unstable). Each rule is written in e2ed2/report/claims.py, "
           f"the statistics in e2ed2/report/paired.py.")
    return page.write_claims(verdicts, checks, out, preamble=pre, tables_dir=args.tables, figures_dir=args.figures)


def _span(counts) -> str:
    v = sorted({int(c) for c in counts})
    return "?" if not v else str(v[0]) if len(v) == 1 else f"{v[0]}–{v[-1]}"


def build_parser():
    p = cli.parser("e2ed2.report", __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    helps = {"aggregate": "metric JSONs → tidy table.csv", "paired": "table.csv → paired comparisons (paired.csv)",
             "tables": "table.csv → main, ablation, health and diagnostics tables",
             "figures": "table.csv (+ logs, samples, diagnostics) → figures",
             "claims": "table.csv + paired.csv → claims.md/json and the summary page claims.html",
             "all": "every stage into one folder"}
    stages = {name: sub.add_parser(name, formatter_class=fmt, help=text) for name, text in helps.items()}
    for name, sp in stages.items():
        sp.add_argument("--out", required=True, help="output file (aggregate, paired) or folder")
        if name in ("aggregate", "all"):
            sp.add_argument("--metrics", required=True, nargs="+",
                            help="folders of metric JSONs (searched recursively)")
        else:
            sp.add_argument("--table", required=True, help="tidy table.csv written by `aggregate`")
        if name != "aggregate":
            sp.add_argument("--spec", default=None,
                            help="claims spec YAML/JSON (method, variants per ablation, margins)")
        if name == "claims":
            sp.add_argument("--paired", required=True, help="paired.csv written by `paired`")
            sp.add_argument("--tables", default=None, help="tables folder to show on the summary page")
            sp.add_argument("--figures", default=None, help="figures folder to show on the summary page")
        if name in ("figures", "claims", "all"):
            sp.add_argument("--train", default=None,
                            help="folder of training runs (stats.jsonl) for curves / stability")
        if name in ("figures", "all"):
            sp.add_argument("--samples", default=None, nargs="*",
                            help="folders of sample sets for the fixed-latent grids")
            sp.add_argument("--grid-seeds", type=int, default=4, help="seeds per grid cell")
        if name in ("tables", "figures", "all"):
            sp.add_argument("--diagnostics", default=None, nargs="*", help="sigma_error.csv / curve.csv files")
        if name in ("tables", "all"):
            sp.add_argument("--clip-eval", default=None, nargs="*", help="the small CLIP's model.eval.json files "
                            "(<run>/<dataset>/clip/model.eval.json): zero-shot accuracy in the main table captions")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.stage == "aggregate":
        df = aggregate.collect(args.metrics)
        aggregate.write_table(df, out)
        print(json.dumps({"table": str(out), "rows": len(df)}))
        return 0
    spec = load_spec(args.spec)
    df = aggregate.collect(args.metrics) if args.stage == "all" else aggregate.read_table(args.table)
    if args.stage == "paired":
        pairs = _paired(df, args)
        write_text(out, pairs.to_csv(index=False))
        print(json.dumps({"paired": str(out), "comparisons": len(pairs)}))
        return 0
    if args.stage == "all":
        aggregate.write_table(df, out / "table.csv")
        pairs = _paired(df, args)
        write_text(out / "paired.csv", pairs.to_csv(index=False))
        args.tables, args.figures = out / "tables", out / "figures"
        written = [out / "table.csv", out / "paired.csv"]
        written += tables.write_tables(df, spec, out / "tables", diagnostics.load(args.diagnostics or []),
                                       tables.load_clip_eval(args.clip_eval))
        written += _figures(df, spec, args, out / "figures") + _claims(df, pairs, spec, args, out / "claims")
    elif args.stage == "claims":
        written = _claims(df, pd.read_csv(args.paired), spec, args, out)
    else:
        written = {"tables": lambda: tables.write_tables(df, spec, out, diagnostics.load(args.diagnostics or []),
                                                         tables.load_clip_eval(args.clip_eval)),
                   "figures": lambda: _figures(df, spec, args, out)}[args.stage]()
    print(json.dumps({"written": [str(w) for w in written]}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
