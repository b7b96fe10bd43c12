"""The claims page: claims.md, a self-contained claims.html and a machine-readable claims.json."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path

from .files import write_text_atomic

ICON = {"supported": "✅", "not supported": "❌"}


def _icon(verdict: str) -> str:
    return ICON.get(verdict, "❔")


def to_markdown(verdicts, title: str, preamble: str = "") -> str:
    lines = [f"# {title}", "", preamble, "", "| id | claim | verdict |", "|---|---|---|"]
    lines += [f"| {v.id} | {v.claim} | {_icon(v.verdict)} {v.verdict} |" for v in verdicts]
    for v in verdicts:
        lines += ["", f"## {v.id}: {v.claim}", "", f"**Verdict: {v.verdict}**", "", f"*Rule (fixed before the numbers):* {v.rule}"]
        if v.note:
            lines += ["", f"Note: {v.note}"]
        if v.evidence:
            lines += ["", "| dataset | arm | value [95% CI] | versus | versus value | outcome |", "|---|---|---|---|---|---|"]
            lines += [f"| {e['dataset']} | {e['what']} | {e['value']} | {e['versus']} | {e['versus_value']} | {e['outcome']} |"
                      for e in v.evidence]
    return "\n".join(lines) + "\n"


def to_html(verdicts, title: str, preamble: str = "") -> str:
    """One self-contained HTML file (inline CSS, no scripts, no external assets)."""
    e = html.escape
    colour = {"supported": "#d4edda", "not supported": "#f8d7da"}
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
           "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;font-size:90%}"
           ".rule{font-style:italic;color:#333}</style></head><body>", f"<h1>{e(title)}</h1><p>{e(preamble)}</p>",
           "<table><tr><th>id</th><th>claim</th><th>verdict</th></tr>"]
    for v in verdicts:
        bg = colour.get(v.verdict, "#fff3cd")
        out.append(f"<tr><td><a href='#{v.id}'>{v.id}</a></td><td>{e(v.claim)}</td><td style='background:{bg}'>{e(v.verdict)}</td></tr>")
    out.append("</table>")
    for v in verdicts:
        out.append(f"<h2 id='{v.id}'>{v.id}: {e(v.claim)}</h2><p><b>Verdict: {e(v.verdict)}</b></p>"
                   f"<p class='rule'>Rule (fixed before the numbers): {e(v.rule)}</p>")
        if v.note:
            out.append(f"<p>Note: {e(v.note)}</p>")
        if v.evidence:
            out.append("<table><tr><th>dataset</th><th>arm</th><th>value [95% CI]</th><th>versus</th><th>versus value</th><th>outcome</th></tr>")
            out += [f"<tr>{''.join(f'<td>{e(str(x[k]))}</td>' for k in ('dataset', 'what', 'value', 'versus', 'versus_value', 'outcome'))}</tr>"
                    for x in v.evidence]
            out.append("</table>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write_claims(verdicts, out_dir, title: str = "E2ED² claims report", preamble: str = "") -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "claims.md", out / "claims.html", out / "claims.json"]
    write_text_atomic(paths[0], to_markdown(verdicts, title, preamble))
    write_text_atomic(paths[1], to_html(verdicts, title, preamble))
    write_text_atomic(paths[2], json.dumps([asdict(v) for v in verdicts], indent=2, default=str) + "\n")
    return paths
