"""Fixed-latent sample grid: rows = methods, columns = step budgets, the same seeds (x_T) in every cell.

Reads the sample sets' ``samples.npz`` (e2ed2.sample): a set enters the grid when it holds the
first ``k`` seeds, so seed i sits at the same position in every cell and starts from the same x_T.
Sample folders are ``<root>/<method>/<variant>/s<train seed>/<sampler>-<steps>/b<block>/samples.npz``
(the method and variant names come from the path, as in the metric labels: DDIM samples the
teacher's checkpoint); shallower layouts take the method from the samples' meta and variant ``main``.
Only the first training seed of each model enters the grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


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
                     "method": parts[0] if deep else meta.get("method", parts[0]), "variant": parts[1] if deep else "main",
                     "train_seed": int(parts[2][1:]) if deep and parts[2][1:].isdigit() else 0,
                     "sampler": meta.get("sampler", ""), "steps": int(meta["steps"]), "nfe": meta.get("nfe"), "seeds": seeds})
    df = pd.DataFrame(rows)
    if len(df):  # the first training seed of each model
        df = df[df["train_seed"] == df.groupby(["dataset", "method", "variant"])["train_seed"].transform("min")]
    return df


def fixed_latent_grid(sets: pd.DataFrame, k: int = 4, variant: str = "main"):
    """Assemble the grid array (uint8 H×W[×3]) plus row and column labels; None if no set holds seeds 0..k-1."""
    want = np.arange(k)
    sets = sets[(sets["variant"] == variant) & sets["seeds"].map(lambda s: np.isin(want, s).all())]
    if sets.empty:
        return None
    rows = sorted(dict.fromkeys(sets["method"] + sets["sampler"].map(lambda s: f" [{s}]" if s else "")))
    cols = sorted(sets["steps"].unique())
    cells = {}
    for _, r in sets.iterrows():
        with np.load(r["path"]) as z:
            idx = [int(np.flatnonzero(z["seeds"] == s)[0]) for s in want]
            cells[(r["method"] + (f" [{r['sampler']}]" if r["sampler"] else ""), r["steps"])] = z["images"][idx]
    c, h, w = next(iter(cells.values())).shape[1:]
    pad = 2
    cell_w, cell_h = k * (w + pad) + 3 * pad, h + 3 * pad
    grid = np.full((c, len(rows) * cell_h, len(cols) * cell_w), 160, np.uint8)  # grey: gaps, missing cells
    for (name, steps), ims in cells.items():
        y0, x0 = rows.index(name) * cell_h + pad, cols.index(steps) * cell_w + pad
        for i, im in enumerate(ims):  # seed i at position i of every cell
            grid[:, y0: y0 + h, x0 + i * (w + pad): x0 + i * (w + pad) + w] = im
    image = grid[0] if c == 1 else grid.transpose(1, 2, 0)
    return image, rows, [int(s) for s in cols], (cell_h, cell_w)


def grid_figure(sets: pd.DataFrame, k: int = 4, variant: str = "main"):
    """The grid as a labelled figure (rows: methods, columns: sampling steps)."""
    from .figures import subplots

    built = fixed_latent_grid(sets, k, variant)
    if built is None:
        return None
    image, rows, cols, (ch, cw) = built
    scale = 0.9 / 36  # inches per pixel for 32-pixel images
    fig, ax = subplots(figsize=(max(4.0, image.shape[1] * scale + 2.5), max(2.5, image.shape[0] * scale + 1.2)))
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([(i + 0.5) * ch for i in range(len(rows))], rows)
    ax.set_xticks([(j + 0.5) * cw for j in range(len(cols))], [f"{s} step{'s' if s > 1 else ''}" for s in cols])
    ax.tick_params(length=0)
    ax.grid(False)
    dataset = ", ".join(sorted(sets["dataset"].unique()))
    ax.set(xlabel="sampling steps (columns)", ylabel="method [sampler]",
           title=f"{dataset}: fixed-latent samples, seeds 0–{k - 1} (same x_T at each position)")
    return fig
