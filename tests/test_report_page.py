"""The summary page claims.html rendered in headless Chromium: it loads, draws something that is
not blank, and its DOM holds the claims table, the baseline health checks, the main tables and
the inline figures.

Built from the synthetic run of tests/test_report.py through the CLI's ``all`` stage. Skipped,
saying so, when no Chromium binary is installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from e2ed2.report.cli import main as report_main
from tests.test_report import SPEC, synth, write_samples

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason=f"no Chromium binary on PATH (looked for {', '.join(BROWSERS)}); "
                                "install it with `apt-get install -y chromium` to run this test")
WIDTH, HEIGHT = 1400, 3000
DATASETS = ("mnist5k", "digits")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A whole synthetic report (two datasets, training logs, sample sets) written by `all`."""
    root = tmp_path_factory.mktemp("page")
    synth(root / "run", 20.0, datasets=DATASETS)
    spec = root / "spec.json"
    spec.write_text(json.dumps(SPEC))
    for d in DATASETS:
        train = root / "run" / d / "train" / "edm" / "main" / "s0"
        train.mkdir(parents=True)
        train.joinpath("stats.jsonl").write_text("".join(json.dumps({"step": s, "loss_main": 1 / s}) + "\n"
                                                         for s in range(1, 21)))
        for m in ("ddim", "e2ed2"):
            for s in (1, 2, 4):
                write_samples(root / "run" / d / "samples", m, s)
    out = root / "report"
    args = (["all", "--metrics", *(str(root / "run" / d / "metrics") for d in DATASETS), "--spec", str(spec),
             "--train", str(root / "run"), "--samples", *(str(root / "run" / d / "samples") for d in DATASETS),
             "--out", str(out)])
    assert report_main(args) == 0
    return out


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180, cwd=tmp_path)


def test_page_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    page = report / "claims" / "claims.html"
    shot = tmp_path / "claims.png"
    r = chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000, f"no screenshot: {r.stderr[-2000:]}"
    with Image.open(shot) as im:
        assert im.size == (WIDTH, HEIGHT)
        grey = np.asarray(im.convert("L"), dtype=float)
        colours = len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])
    assert grey.std() > 10 and colours > 50, "the screenshot is (nearly) one colour: the page drew nothing"
    assert (grey[:300] < 100).mean() > 0.002, "no dark text in the page's first 300 pixels (title, contents)"
    assert (grey < 250).any(axis=1).mean() > 0.5, "more than half the screenshot's rows are blank"


def test_page_dom_has_claims_health_main_tables_and_figures(report, tmp_path):
    page = report / "claims" / "claims.html"
    r = chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = r.stdout
    assert "</html>" in dom, f"no DOM dumped: {r.stderr[-2000:]}"
    assert '<table class="claims">' in dom and all(f">C{i}<" in dom for i in range(1, 10))
    assert "Baseline health" in dom and '<table class="health">' in dom
    assert dom.count('<table class="main">') == len(DATASETS)
    assert "real data (floor)" in dom and "E2ED² (K=1, matched)" in dom and "one replicate: no interval" in dom
    assert dom.count("<img") >= 6 and "data:image/png;base64," in dom
    assert '<nav class="toc">' in dom and 'href="#health"' in dom
    # one line per dataset first; each verdict with its leave-one-seed-out stability (2 seeds: one left
    # decides nothing, so a supported verdict is unstable); long comparison tables folded
    assert dom.count("<li><b>") >= len(DATASETS) and dom.index('<ul class="answers">') < dom.index('<table')
    assert "supported (unstable: 0/2)" in dom and dom.count("<details>") >= 9
    for d in DATASETS:
        assert f'id="main_{d}"' in dom and f'id="fig-fid_vs_nfe_{d}"' in dom
    assert "<script" not in dom.lower() and "http://" not in dom and "https://" not in dom  # self-contained
