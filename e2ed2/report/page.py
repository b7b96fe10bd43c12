"""The claims page: claims.md, claims.json, and claims.html — the one page to open.

Both lead with one line per dataset (which claims each verdict went to, which are unstable when a
training seed is left out, and a claim that does not apply); each per-dataset verdict carries its
leave-one-seed-out stability ("supported (stable 3/3)", "inconclusive (unstable: 1/3)"). The
evidence lists one summary row per comparison (the two-level interval); the per-seed rows are in
claims.json and paired.csv, and folded (<details>) in claims.html.

claims.html is self-contained (inline CSS, figures embedded as PNG data URIs, no scripts, no
external assets): a table of contents, the claims with their per-dataset verdicts, the baseline
health checks, the main table of each dataset (caption and footnotes from its Markdown), the key
figures of each dataset and of the run, then each claim's rule and evidence, and links to every
table and figure file beside it (each format of each). tests/test_report_page.py renders it in
headless Chromium.
"""

from __future__ import annotations

import base64
import html
import json
import struct
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from .claims import NO_CAPTIONS, NOT_APPLICABLE, NOT_TESTED, base
from .stability import UNSTABLE, stability_text

ICON = {"supported": "✅", "not supported": "❌", "not credible": "⚠️", "not tested": "–", NO_CAPTIONS: "–"}
COLOUR = {"supported": "#d4edda", "not supported": "#f8d7da", "not credible": "#ffe5b4", "not tested": "#eeeeee",
          NO_CAPTIONS: "#eeeeee"}
ORDER = ("supported", "not supported", "inconclusive", "not credible", "not tested")


def _base(verdict: str) -> str:
    return base(verdict)


def with_stability(verdict: str, st: dict | None) -> str:
    """'supported (stable 3/3)'; a verdict with its own detail gets it inside the parentheses."""
    text = stability_text(st)
    if not text or _base(verdict) == NOT_TESTED or verdict.startswith(NOT_APPLICABLE):
        return verdict
    return f"{verdict[:-1]}; {text})" if verdict.endswith(")") and " (" in verdict else f"{verdict} ({text})"


def cell(v, dataset: str) -> str:
    """The per-dataset verdict of claim ``v`` with its stability ('–' when not judged there)."""
    verdict = v.per_dataset.get(dataset)
    return "–" if verdict is None else with_stability(verdict, v.stability.get(dataset))


def answers(verdicts) -> list[str]:
    """One line per dataset: the claims under each verdict, the unstable ones, and a claim that does not apply."""
    datasets = sorted({d for v in verdicts for d in v.per_dataset})
    lines = []
    for d in datasets:
        by: dict[str, list[str]] = {}
        for v in verdicts:
            if d in v.per_dataset:
                by.setdefault(_base(v.per_dataset[d]), []).append(v.id)
        parts = [f"{k}: {', '.join(by[k])}" for k in (*ORDER, *sorted(set(by) - set(ORDER))) if k in by
                 and not k.startswith(NOT_APPLICABLE)]
        unstable = [v.id for v in verdicts if (v.stability.get(d) or {}).get("label") == UNSTABLE]
        line = f"{d}: " + " · ".join(parts)
        if unstable:
            line += f"; unstable when a training seed is left out: {', '.join(unstable)}"
        na = [v.id for v in verdicts if v.per_dataset.get(d, "").startswith(NOT_APPLICABLE)]
        if na:
            line += (f"; {', '.join(na)} not applicable: no captions (every caption is empty, so a CLIP score "
                     f"measures nothing about following one)")
        lines.append(line + ".")
    return lines


def _stability_lines(v) -> list[str]:
    """'digits: stable 3/3 (without seed 0: supported, …)' per dataset with a leave-one-out recomputation."""
    out = []
    for d, st in sorted(v.stability.items()):
        if with_stability(v.per_dataset.get(d, NOT_TESTED), st) != v.per_dataset.get(d, NOT_TESTED):
            loo = ", ".join(f"without seed {s}: {x}" for s, x in st["loo_verdicts"].items())
            out.append(f"{d}: {stability_text(st)} ({loo})")
    return out


def _bg(verdict: str) -> str:
    """The background colour of a verdict's cell (amber for inconclusive and anything else)."""
    return COLOUR.get(_base(verdict), "#fff3cd")


def _icon(verdict: str) -> str:
    return ICON.get(_base(verdict), "❔")


def to_markdown(verdicts, checks, title: str, preamble: str = "") -> str:
    datasets = sorted({d for v in verdicts for d in v.per_dataset})
    lines = [f"# {title}", "", *[f"- **{a.split(':', 1)[0]}**:{a.split(':', 1)[1]}" for a in answers(verdicts)], "",
             preamble, "", "| id | claim | verdict | " + " | ".join(datasets) + " |",
             "|---|---|---|" + "---|" * len(datasets)]
    lines += [f"| {v.id} | {v.claim} | {_icon(v.verdict)} {v.verdict} | "
              + " | ".join(cell(v, d) for d in datasets) + " |" for v in verdicts]
    lines += ["", "## Baseline health", "", "| dataset | check | rule | numbers | status |", "|---|---|---|---|---|"]
    lines += [f"| {c.dataset} | {c.id} | {c.rule} | {c.numbers} | {c.status} |" for c in checks]
    for v in verdicts:
        lines += ["", f"## {v.id}: {v.claim}", "", f"**Verdict: {v.verdict}**", "",
                  f"*Rule (fixed before the numbers):* {v.rule}"]
        if v.note:
            lines += ["", f"Note: {v.note}"]
        stab = _stability_lines(v)
        if stab:
            lines += ["", "*Leave one training seed out:* " + "; ".join(stab)]
        summary = [e for e in v.evidence if e.get("level", "comparison") == "comparison"]
        if summary:
            lines += ["", "| dataset | arm A | value | versus (B) | seeds | outcome |", "|---|---|---|---|---|---|"]
            lines += [f"| {e['dataset']} | {e['what']} | {e['value']} | {e['versus']} | {e['versus_value']} "
                      f"| {e['outcome']} |" for e in summary]
        if len(summary) < len(v.evidence):
            lines += ["", f"{len(v.evidence) - len(summary)} per-seed rows (image level): claims.json, paired.csv."]
    return "\n".join(lines) + "\n"


CSS = """
:root{--ink:#1d2329;--mute:#5b6570;--rule:#d5dbe1;--head:#eef2f6;--ours:#f3f0ff}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:var(--ink);
     max-width:1320px;margin:0 auto;padding:1.5em 1.5em 4em;background:#fff}
h1{font-size:1.7em;margin:.2em 0 .3em}
h2{font-size:1.3em;margin:2em 0 .6em;padding-bottom:.2em;border-bottom:2px solid var(--rule)}
h3{font-size:1.08em;margin:1.4em 0 .4em}a{color:#1a5fb4}
.top{font-size:.75em;font-weight:normal;margin-left:.6em}
.pre{color:var(--mute);max-width:60em}
nav.toc{background:#f7f9fb;border:1px solid var(--rule);border-radius:6px;padding:.6em 1.2em;margin:1em 0 1.5em;
        columns:2 16em;font-size:.92em}
nav.toc b{display:block;column-span:all;margin-bottom:.3em}nav.toc ul{margin:0;padding-left:1.1em}
nav.toc li{margin:.1em 0;break-inside:avoid}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5em 0;font-size:.88em}
th,td{border:1px solid var(--rule);padding:.3em .55em;vertical-align:top;text-align:left}
th{background:var(--head);font-weight:600}
table.main{font-variant-numeric:tabular-nums;font-size:.8em}
table.main th,table.main td{padding:.25em .45em}table.main th{white-space:nowrap}
table.main td.num{text-align:right;white-space:nowrap}table.main td:first-child{min-width:12em}
table.main tr:nth-child(even) td{background:#fafbfc}
table.main tr.real td{background:#eef7ee;font-style:italic}
table.main tr.ours td{background:var(--ours)}table.main tr.ours td:first-child{font-weight:600}
.cap{font-size:.85em;color:var(--ink);margin:.3em 0 0;max-width:70em}
.note{font-size:.78em;color:var(--mute);margin:.15em 0 0;max-width:70em}
.verdict{font-weight:600}.rule{font-style:italic;color:#333}
.figs{display:flex;flex-direction:column;align-items:center;gap:1.2em}
figure{margin:0;padding:.6em;border:1px solid var(--rule);border-radius:6px;background:#fff;width:100%}
figure img{display:block;width:100%;height:auto;margin:0 auto;image-rendering:auto}
figcaption{font-size:.8em;color:var(--mute);margin-top:.3em}
ul.files{columns:3 18em;font-size:.85em}ul.files li{break-inside:avoid}
ul.answers{font-size:1.02em;margin:.4em 0 1em;padding-left:1.2em}ul.answers li{margin:.15em 0}
details{margin:.4em 0}details>summary{cursor:pointer;color:#1a5fb4}
.stab{font-size:.85em;color:var(--mute)}
"""
# figures shown on the page, in this order: per dataset, then the run-wide ones
DATASET_FIGURES = (("fid_vs_nfe", "FID vs NFE"), ("clip_vs_nfe", "CLIP score vs NFE"),
                   ("fid_vs_clip", "FID vs CLIP score"),
                   ("fid_vs_time", "FID vs sampling time"), ("ablations", "Ablations (C4–C7)"),
                   ("sample_grid", "Fixed-latent samples"))
RUN_FIGURES = (("learning_curves", "Teacher FID during training"), ("sigma_error", "Denoising error per noise level"),
               ("training_curves", "Training losses"))
SCREEN = 0.8  # a 150-dpi PNG is shown at 0.8 of its pixel width (≈ 1.25× its printed size): readable, not blown up


def _png_width(data: bytes) -> int | None:
    return struct.unpack(">I", data[16:20])[0] if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 else None


def _img(path: Path, caption: str = "") -> str:
    e = html.escape
    raw = path.read_bytes()
    data = base64.b64encode(raw).decode()
    w = _png_width(raw)
    scale = 1.0 if path.stem.startswith("sample_grid") else SCREEN  # sample grids at their own pixels: sharp
    attrs = f" style='max-width:{round(w * scale)}px'" if w else ""
    link = f"<a href='../{e(path.parent.name)}/{e(path.name)}'>{e(path.name)}</a>"
    pdf = path.with_suffix(".pdf")
    if pdf.is_file():
        link += f" · <a href='../{e(path.parent.name)}/{e(pdf.name)}'>pdf</a>"
    return (f"<figure{attrs} id='fig-{e(path.stem)}'>"
            f"<img alt='{e(caption or path.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{e(caption or path.stem)} — {link}</figcaption></figure>")


def _caption_lines(md: Path) -> tuple[str, list[str]]:
    """The caption sentence and the footnote lines written under a table's Markdown."""
    if not md.is_file():
        return "", []
    lines = md.read_text().strip().splitlines()
    after = [x.strip() for x in lines[max(i for i, x in enumerate(lines) if x.startswith("|")) + 1:] if x.strip()] \
        if any(x.startswith("|") for x in lines) else []
    caption = next((x.strip("*") for x in after if x.startswith("*")), "")
    return caption, [x for x in after if not x.startswith("*")]


def _is_num(v: str) -> bool:
    return bool(v) and (v[0].isdigit() or v[0] in "-–+.") and any(ch.isdigit() for ch in v) or v == "–"


def _table_html(csv: Path, main: bool = False) -> str:
    """A table from its CSV, its caption and footnotes from its Markdown; main tables styled
    (numbers right-aligned, the real-data row and the method's arms marked)."""
    e = html.escape
    t = pd.read_csv(csv, dtype=str, keep_default_na=False).replace("", "–")
    caption, notes = _caption_lines(csv.with_suffix(".md"))
    head = "".join(f"<th>{e(c)}</th>" for c in t.columns)
    rows = []
    for r in t.itertuples(index=False):
        first = str(r[0])
        cls = " class='real'" if first.startswith("real") else " class='ours'" if first.startswith("E2ED") else ""
        cells = "".join(f"<td class='num'>{e(str(v))}</td>" if main and j > 0 and _is_num(str(v))
                        else f"<td>{e(str(v))}</td>" for j, v in enumerate(r))
        rows.append(f"<tr{cls}>{cells}</tr>")
    table = f"<div class='scroll'><table class='{'main' if main else 't'}'><thead><tr>{head}</tr></thead><tbody>" \
            + "".join(rows) + "</tbody></table></div>"
    return (table + (f"<p class='cap'>{e(caption)}</p>" if caption else "")
            + "".join(f"<p class='note'>{e(n)}</p>" for n in notes))


def _figures(figures_dir: Path, datasets) -> list[str]:
    """The key figures: per dataset (FID/CLIP vs NFE, trade-off, time, ablations, samples), then
    the run-wide ones; each with a link to its PNG and PDF."""
    out = []
    stems = {p.stem: p for p in figures_dir.glob("*.png")}
    names = sorted({s.rsplit("_", 1)[-1] for s in stems if s.startswith("fid_vs_nfe_")} | set(datasets))
    for d in names:
        figs = [_img(stems[f"{key}_{d}"], f"{d}: {title}") for key, title in DATASET_FIGURES if f"{key}_{d}" in stems]
        if figs:
            out.append(f"<h3 id='figures-{html.escape(d)}'>{html.escape(d)}</h3><div class='figs'>"
                       + "".join(figs) + "</div>")
    run = [_img(stems[key], title) for key, title in RUN_FIGURES if key in stems]
    if run:
        out.append("<h3 id='figures-run'>Training and diagnostics</h3><div class='figs'>" + "".join(run) + "</div>")
    return out


def _files(folder: Path) -> str:
    """One line per table or figure: its name and links to each of its formats."""
    by_stem: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix in (".md", ".csv", ".tex", ".png", ".pdf"):
            by_stem.setdefault(p.stem, []).append(p)
    return "".join(f"<li>{html.escape(stem)}: " + " · ".join(
        f"<a href='../{html.escape(folder.name)}/{html.escape(p.name)}'>{p.suffix[1:]}</a>" for p in ps) + "</li>"
        for stem, ps in by_stem.items())


def _evidence_html(evidence: list) -> str:
    """The comparisons of a claim in one folded table: a summary row each, then the per-seed rows."""
    e = html.escape
    cols = ("dataset", "what", "value", "versus", "versus_value", "outcome")
    summary = [x for x in evidence if x.get("level", "comparison") == "comparison"]
    seeds = [x for x in evidence if x.get("level", "comparison") != "comparison"]

    def table(rows, head):
        return ("<div class='scroll'><table class='evidence'><thead><tr>"
                + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
                + "".join(f"<tr>{''.join(f'<td>{e(str(x[k]))}</td>' for k in cols)}</tr>" for x in rows)
                + "</tbody></table></div>")
    out = (f"<details><summary>{len(summary)} comparison{'s' if len(summary) != 1 else ''} (two-level "
           f"intervals)</summary>" + table(summary, ("dataset", "arm A", "value", "versus (B)", "seeds", "outcome"))
           + "</details>")
    if seeds:
        out += (f"<details><summary>{len(seeds)} per-seed rows (image level, for reading)</summary>"
                + table(seeds, ("dataset", "arm A (training seed)", "value", "versus (B)", "level", "outcome"))
                + "</details>")
    return out


def to_html(verdicts, checks, title: str, preamble: str = "", tables_dir=None, figures_dir=None) -> str:
    """The one page to open: table of contents, claims with per-dataset verdicts, baseline health,
    the main table of each dataset, the key figures inline, each claim's rule and evidence, and
    links to every table and figure. Self-contained: inline CSS, PNGs as data URIs, no scripts."""
    e = html.escape
    datasets = sorted({d for v in verdicts for d in v.per_dataset} | {c.dataset for c in checks})
    tables_dir, figures_dir = (Path(p) if p else None for p in (tables_dir, figures_dir))
    mains = sorted(tables_dir.glob("main_*.csv")) if tables_dir and tables_dir.is_dir() else []
    figs = _figures(figures_dir, datasets) if figures_dir and figures_dir.is_dir() else []
    top = "<a class='top' href='#top'>↑ top</a>"

    toc = ["<li><a href='#claims'>Claims</a> (verdict per dataset)</li>",
           "<li><a href='#health'>Baseline health</a></li>"]
    if mains:
        toc.append("<li><a href='#tables'>Main tables</a>: " + ", ".join(
            f"<a href='#{e(c.stem)}'>{e(c.stem[5:])}</a>" for c in mains) + "</li>")
    if figs:
        toc.append("<li><a href='#figures'>Key figures</a></li>")
    toc.append("<li><a href='#details'>Claim details</a>: "
               + " ".join(f"<a href='#{v.id}'>{v.id}</a>" for v in verdicts) + "</li>")
    if any(f and f.is_dir() for f in (tables_dir, figures_dir)):
        toc.append("<li><a href='#files'>All tables and figures</a></li>")

    out = [(f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{e(title)}</title><style>{CSS}</style></head><body id='top'>"),
           f"<h1>{e(title)}</h1><ul class='answers'>"
           + "".join(f"<li><b>{e(a.split(':', 1)[0])}</b>:{e(a.split(':', 1)[1])}</li>" for a in answers(verdicts))
           + f"</ul><p class='pre'>{e(preamble)}</p>",
           "<nav class='toc'><b>Contents</b><ul>" + "".join(toc) + "</ul></nav>",
           f"<h2 id='claims'>Claims{top}</h2><div class='scroll'><table class='claims'><thead><tr>"
           "<th>id</th><th>claim</th><th>verdict</th>"
           + "".join(f"<th>{e(d)}</th>" for d in datasets) + "</tr></thead><tbody>"]
    for v in verdicts:
        cells = "".join(f"<td style='background:{_bg(v.per_dataset.get(d, ''))}'>"
                        f"{e(cell(v, d))}</td>" for d in datasets)
        out.append(f"<tr><td><a href='#{v.id}'>{v.id}</a></td><td>{e(v.claim)}</td>"
                   f"<td class='verdict' style='background:{_bg(v.verdict)}'>"
                   f"{e(v.verdict)}</td>{cells}</tr>")
    out.append(f"</tbody></table></div><h2 id='health'>Baseline health{top}</h2>"
               "<div class='scroll'><table class='health'><thead>"
               "<tr><th>dataset</th><th>check</th><th>rule</th><th>numbers</th><th>status</th></tr></thead><tbody>")
    out += [f"<tr><td>{e(c.dataset)}</td><td>{e(c.id)}</td><td>{e(c.rule)}</td><td>{e(c.numbers)}</td>"
            f"<td style='background:{'#d4edda' if c.status == 'pass' else '#f8d7da'}'>{e(c.status)}</td></tr>"
            for c in checks]
    out.append("</tbody></table></div>")
    if mains:
        out.append(f"<h2 id='tables'>Main tables{top}</h2>")
        out += [f"<h3 id='{e(csv.stem)}'>{e(csv.stem[5:])} <span class='top'>({e(csv.stem)}: "
                f"<a href='../{e(tables_dir.name)}/{e(csv.stem)}.md'>md</a> · "
                f"<a href='../{e(tables_dir.name)}/{e(csv.stem)}.csv'>csv</a> · "
                f"<a href='../{e(tables_dir.name)}/{e(csv.stem)}.tex'>tex</a>)</span></h3>"
                + _table_html(csv, main=True) for csv in mains]
    if figs:
        out.append(f"<h2 id='figures'>Key figures{top}</h2>")
        out += figs
    out.append(f"<h2 id='details'>Claim details{top}</h2>")
    for v in verdicts:
        out.append(f"<h3 id='{v.id}'>{v.id}: {e(v.claim)}</h3><p class='verdict'>Verdict: "
                   f"<span style='background:{_bg(v.verdict)};padding:0 .3em'>"
                   f"{e(v.verdict)}</span></p>"
                   f"<p class='rule'>Rule (fixed before the numbers): {e(v.rule)}</p>")
        if v.note:
            out.append(f"<p>Note: {e(v.note)}</p>")
        stab = _stability_lines(v)
        if stab:
            out.append("<p class='stab'>Leave one training seed out: " + "; ".join(map(e, stab)) + "</p>")
        if v.evidence:
            out.append(_evidence_html(v.evidence))
    files = [f"<h3>{e(folder.name)}</h3><ul class='files'>{_files(folder)}</ul>"
             for folder in (tables_dir, figures_dir) if folder and folder.is_dir()]
    if files:
        out.append(f"<h2 id='files'>All tables and figures{top}</h2>" + "".join(files))
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
