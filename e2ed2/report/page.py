"""The claims page: claims.md, claims.json, and claims.html — the one page to open.

claims.html is self-contained (inline CSS, figures embedded as PNG data URIs, no scripts, no
external assets): the claims with their per-dataset verdicts, the baseline health checks, the
main table of each dataset, the key figures, then each claim's rule and evidence, and links to
every table and figure file beside it.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..atomic import write_text

ICON = {"supported": "✅", "not supported": "❌", "not credible": "⚠️", "not tested": "–"}
COLOUR = {"supported": "#d4edda", "not supported": "#f8d7da", "not credible": "#ffe5b4", "not tested": "#eeeeee"}
KEY_FIGURES = ("fid_vs_nfe", "sample_grid", "learning_curves", "sigma_error", "ablations", "fid_vs_time")


def _base(verdict: str) -> str:
    return verdict.split(" (")[0]


def _icon(verdict: str) -> str:
    return ICON.get(_base(verdict), "❔")


def to_markdown(verdicts, checks, title: str, preamble: str = "") -> str:
    datasets = sorted({d for v in verdicts for d in v.per_dataset})
    lines = [f"# {title}", "", preamble, "", "| id | claim | verdict | " + " | ".join(datasets) + " |",
             "|---|---|---|" + "---|" * len(datasets)]
    lines += [f"| {v.id} | {v.claim} | {_icon(v.verdict)} {v.verdict} | "
              + " | ".join(v.per_dataset.get(d, "–") for d in datasets) + " |" for v in verdicts]
    lines += ["", "## Baseline health", "", "| dataset | check | rule | numbers | status |", "|---|---|---|---|---|"]
    lines += [f"| {c.dataset} | {c.id} | {c.rule} | {c.numbers} | {c.status} |" for c in checks]
    for v in verdicts:
        lines += ["", f"## {v.id}: {v.claim}", "", f"**Verdict: {v.verdict}**", "", f"*Rule (fixed before the numbers):* {v.rule}"]
        if v.note:
            lines += ["", f"Note: {v.note}"]
        if v.evidence:
            lines += ["", "| dataset | arm A | value | versus (B) | units | outcome |", "|---|---|---|---|---|---|"]
            lines += [f"| {e['dataset']} | {e['what']} | {e['value']} | {e['versus']} | {e['versus_value']} | {e['outcome']} |"
                      for e in v.evidence]
    return "\n".join(lines) + "\n"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<figure><img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(path.stem)}</figcaption></figure>"


def _table_html(csv: Path) -> str:
    md = csv.with_suffix(".md")
    caption = md.read_text().strip().splitlines()[-1].strip("*") if md.is_file() else ""
    return (pd.read_csv(csv, dtype=str).fillna("–").to_html(index=False, border=0, classes="t")
            + f"<p class='cap'>{html.escape(caption)}</p>")


def to_html(verdicts, checks, title: str, preamble: str = "", tables_dir=None, figures_dir=None) -> str:
    e = html.escape
    datasets = sorted({d for v in verdicts for d in v.per_dataset})
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
           "body{font-family:sans-serif;max-width:80em;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;font-size:88%}"
           "img{max-width:100%}figure{margin:1em 0}figcaption,.cap{font-size:85%;color:#444}"
           ".rule{font-style:italic;color:#333}</style></head><body>", f"<h1>{e(title)}</h1><p>{e(preamble)}</p>",
           "<h2 id='claims'>Claims</h2><table><tr><th>id</th><th>claim</th><th>verdict</th>"
           + "".join(f"<th>{e(d)}</th>" for d in datasets) + "</tr>"]
    for v in verdicts:
        cells = "".join(f"<td style='background:{COLOUR.get(_base(v.per_dataset.get(d, '')), '#fff3cd')}'>"
                        f"{e(v.per_dataset.get(d, '–'))}</td>" for d in datasets)
        out.append(f"<tr><td><a href='#{v.id}'>{v.id}</a></td><td>{e(v.claim)}</td>"
                   f"<td style='background:{COLOUR.get(_base(v.verdict), '#fff3cd')}'>{e(v.verdict)}</td>{cells}</tr>")
    out.append("</table><h2 id='health'>Baseline health</h2><table><tr><th>dataset</th><th>check</th><th>rule</th>"
               "<th>numbers</th><th>status</th></tr>")
    out += [f"<tr><td>{e(c.dataset)}</td><td>{e(c.id)}</td><td>{e(c.rule)}</td><td>{e(c.numbers)}</td>"
            f"<td style='background:{'#d4edda' if c.status == 'pass' else '#f8d7da'}'>{e(c.status)}</td></tr>" for c in checks]
    out.append("</table>")
    tables_dir, figures_dir = (Path(p) if p else None for p in (tables_dir, figures_dir))
    if tables_dir and tables_dir.is_dir():
        out.append("<h2 id='tables'>Main tables</h2>")
        out += [f"<h3>{e(csv.stem)}</h3>" + _table_html(csv) for csv in sorted(tables_dir.glob("main_*.csv"))]
    if figures_dir and figures_dir.is_dir():
        out.append("<h2 id='figures'>Key figures</h2>")
        out += [_img(p) for key in KEY_FIGURES for p in sorted(figures_dir.glob(f"{key}*.png"))]
    for v in verdicts:
        out.append(f"<h2 id='{v.id}'>{v.id}: {e(v.claim)}</h2><p><b>Verdict: {e(v.verdict)}</b></p>"
                   f"<p class='rule'>Rule (fixed before the numbers): {e(v.rule)}</p>")
        if v.note:
            out.append(f"<p>Note: {e(v.note)}</p>")
        if v.evidence:
            out.append("<table><tr><th>dataset</th><th>arm A</th><th>value</th><th>versus (B)</th><th>units</th><th>outcome</th></tr>")
            out += [f"<tr>{''.join(f'<td>{e(str(x[k]))}</td>' for k in ('dataset', 'what', 'value', 'versus', 'versus_value', 'outcome'))}</tr>"
                    for x in v.evidence]
            out.append("</table>")
    links = []
    for folder in (tables_dir, figures_dir):
        if folder and folder.is_dir():
            links += [f"<li><a href='../{folder.name}/{p.name}'>{folder.name}/{p.name}</a></li>"
                      for p in sorted(folder.iterdir()) if p.suffix in (".md", ".csv", ".png", ".pdf")]
    if links:
        out.append("<h2 id='files'>All tables and figures</h2><ul>" + "".join(links) + "</ul>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write_claims(verdicts, checks, out_dir, title: str = "E2ED² claims report", preamble: str = "",
                 tables_dir=None, figures_dir=None) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "claims.md", out / "claims.html", out / "claims.json"]
    write_text(paths[0], to_markdown(verdicts, checks, title, preamble))
    write_text(paths[1], to_html(verdicts, checks, title, preamble, tables_dir, figures_dir))
    write_text(paths[2], json.dumps({"claims": [asdict(v) for v in verdicts], "health": [asdict(c) for c in checks]},
                                    indent=2, default=str) + "\n")
    return paths
