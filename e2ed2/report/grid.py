"""Fixed-latent sample grid: rows = methods, columns = step budgets, the same seeds (x_T) in every cell.

Reads the sample sets' ``samples.npz`` (e2ed2.sample): a set enters the grid when it holds the
first ``k`` seeds, so seed i sits at the same position in every cell and starts from the same x_T.
Sample folders are ``<root>/<method>/<variant>/s<train seed>/<sampler>-<steps>/b<block>/samples.npz``
(the method and variant names come from the path, as in the metric labels: DDIM samples the
teacher's checkpoint); shallower layouts take the method from the samples' meta and variant ``main``.
Only the first training seed of each model enters the grid.

The figure is laid out for a 7-inch page at 150 dpi: images are upscaled by an integer factor
with nearest-neighbour (8×8 digits stay sharp) so each is at least 0.25 inch wide, and the step
budgets wrap into several stacked panels when they do not fit across; every panel keeps the
rows (methods) and the seed positions, so a seed is at the same place in every cell.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .figures import DPI
from .names import name, rank


def find_sample_sets(root) -> pd.DataFrame:
    """One row per samples.npz: path, dataset, method, variant, sampler, steps, nfe, seeds."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"samples folder not found: {root}")
    rows = []
    for path in sorted(root.rglob("samples.npz")):
        with np.load(path) as z:
            meta, seeds = json.loads(str(z["meta"])), z["seeds"]
        parts = path.parent.relative_to(root).parts
        deep = len(parts) >= 5
        rows.append({"path": path, "dataset": Path(str(meta.get("data", "?"))).stem,
                     "method": parts[0] if deep else meta.get("method", parts[0]),
                     "variant": parts[1] if deep else "main",
                     "train_seed": int(parts[2][1:]) if deep and parts[2][1:].isdigit() else 0,
                     "sampler": meta.get("sampler", ""), "steps": int(meta["steps"]), "nfe": meta.get("nfe"),
                     "seeds": seeds})
    df = pd.DataFrame(rows)
    if len(df):  # the first training seed of each model
        df = df[df["train_seed"] == df.groupby(["dataset", "method", "variant"])["train_seed"].transform("min")]
    return df


PAGE_WIDTH_IN = 7.0   # the figure's width: a page's text width (DPI: figures.save's resolution)
MIN_IMAGE_IN = 0.25   # every sample at least this wide on the page
LABEL_IN = 1.45       # room for the row labels (method, sampler)
GAP, MISSING = 150, 235  # grey between the samples of a cell; light where a cell was not sampled
PAD = 2               # pixels around each sample inside a cell


def _row_label(method: str, sampler: str) -> str:
    return method + (f" [{sampler}]" if sampler else "")


def _row_order(label: str):
    return (rank(label.split(" [")[0]), label)


def _cells(sets: pd.DataFrame, k: int, variant: str):
    """(rows, cols, {(row, steps): the k images of seeds 0..k-1}) of the sets holding those seeds;
    None when no set does."""
    want = np.arange(k)
    sets = sets[(sets["variant"] == variant) & sets["seeds"].map(lambda s: np.isin(want, s).all())]
    if sets.empty:
        return None
    rows = sorted(dict.fromkeys(_row_label(m, s) for m, s in zip(sets["method"], sets["sampler"])), key=_row_order)
    cols = [int(s) for s in sorted(sets["steps"].unique())]
    cells = {}
    for _, r in sets.iterrows():
        with np.load(r["path"]) as z:
            idx = [int(np.flatnonzero(z["seeds"] == s)[0]) for s in want]
            cells[(_row_label(r["method"], r["sampler"]), int(r["steps"]))] = z["images"][idx]
    return rows, cols, cells


def _assemble(rows: list, cols: list, cells: dict, k: int):
    """The grid array (uint8 H×W[×3]) and one cell's (height, width) in pixels."""
    c, h, w = next(iter(cells.values())).shape[1:]
    cell_w, cell_h = k * (w + PAD) + 3 * PAD, h + 3 * PAD
    grid = np.full((c, len(rows) * cell_h, len(cols) * cell_w), MISSING, np.uint8)  # light: cells not sampled
    for (row, steps), ims in cells.items():
        y0, x0 = rows.index(row) * cell_h + PAD, cols.index(steps) * cell_w + PAD
        grid[:, y0 - PAD: y0 + h + PAD, x0 - PAD: x0 + k * (w + PAD)] = GAP  # grey: gaps in a cell
        for i, im in enumerate(ims):  # seed i at position i of every cell
            grid[:, y0: y0 + h, x0 + i * (w + PAD): x0 + i * (w + PAD) + w] = im
    image = grid[0] if c == 1 else grid.transpose(1, 2, 0)
    return image, (cell_h, cell_w)


def fixed_latent_grid(sets: pd.DataFrame, k: int = 4, variant: str = "main"):
    """Assemble the grid array (uint8 H×W[×3]) plus row and column labels; None if no set holds seeds 0..k-1."""
    built = _cells(sets, k, variant)
    if built is None:
        return None
    rows, cols, cells = built
    image, size = _assemble(rows, cols, cells, k)
    return image, rows, cols, size


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (each pixel becomes factor × factor)."""
    return image if factor <= 1 else image.repeat(factor, axis=0).repeat(factor, axis=1)


def grid_figure(sets: pd.DataFrame, k: int = 4, variant: str = "main"):
    """The grid as a labelled figure 7 inches wide: rows = methods [sampler], columns = sampling
    steps, wrapped into stacked panels of at most as many budgets as fit across the page (a panel
    leaves out the methods sampled at none of its budgets)."""
    from matplotlib.figure import Figure

    built = _cells(sets, k, variant)
    if built is None:
        return None
    rows, cols, cells = built
    image, (ch0, cw0) = _assemble(rows, cols, cells, k)
    sampled = {(rows.index(row), cols.index(steps)) for row, steps in cells}
    h = next(iter(cells.values())).shape[2]  # one sample's height
    factor = max(1, math.ceil(MIN_IMAGE_IN * DPI / max(h, 1)))
    big, ch, cw = upscale(image, factor), ch0 * factor, cw0 * factor
    per_panel = max(1, int((PAGE_WIDTH_IN - LABEL_IN - 0.15) * DPI // cw))
    n_panels = math.ceil(len(cols) / per_panel)
    per_panel = math.ceil(len(cols) / n_panels)  # balanced: 5 budgets at 3 across → 3 + 2
    panels = []
    for start in range(0, len(cols), per_panel):
        chunk = list(range(start, min(start + per_panel, len(cols))))
        panels.append((chunk, [i for i in range(len(rows)) if any((i, j) in sampled for j in chunk)]))
    top, gap, bottom = 0.5, 0.3, 0.25  # inches: title, column labels under each panel, note
    height = top + sum(len(r) * ch / DPI + gap for _, r in panels) + bottom
    fig = Figure(figsize=(PAGE_WIDTH_IN, height))
    labels = [f"{name(r.split(' [')[0])}" + (f"\n[{r.split(' [', 1)[1]}" if " [" in r else "") for r in rows]
    y = height - top
    for chunk, row_ids in panels:
        panel_h = len(row_ids) * ch / DPI
        y -= panel_h
        panel = np.concatenate([big[i * ch:(i + 1) * ch, chunk[0] * cw:(chunk[-1] + 1) * cw] for i in row_ids])
        ax = fig.add_axes([LABEL_IN / PAGE_WIDTH_IN, y / height, panel.shape[1] / DPI / PAGE_WIDTH_IN,
                           panel_h / height])
        ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest",
                  aspect="auto")
        ax.set_yticks([(i + 0.5) * ch for i in range(len(row_ids))], [labels[i] for i in row_ids], fontsize=7.5)
        ax.set_xticks([(j + 0.5) * cw for j in range(len(chunk))],
                      [f"{cols[c]} step{'s' if cols[c] > 1 else ''}" for c in chunk], fontsize=8)
        ax.tick_params(length=0, pad=3)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_color("0.6")
        y -= gap
    dataset = ", ".join(sorted(sets["dataset"].astype(str).unique()))
    fig.suptitle(f"{dataset}: fixed-latent samples, N = {k} per cell (seeds 0–{k - 1}, left to right)\n"
                 f"the same seed starts from the same $x_T$ at the same position in every cell", fontsize=9,
                 y=1 - 0.06 / height, va="top")
    fig.text(LABEL_IN / PAGE_WIDTH_IN, 0.04 / height,
             f"rows: method [sampler]; columns: sampling steps; light cell: not sampled. Images upscaled {factor}× "
             f"(nearest neighbour).", fontsize=7, color="0.3", va="bottom")
    return fig
