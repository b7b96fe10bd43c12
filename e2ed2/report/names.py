"""Readable method names, and the order and colour of each method in tables, legends and grids.

The names live on the method classes (``Method.display_name``); the workflow labels every metric
JSON of a registered method with its name and registry place (``e2ed2.methods.display_of``), and
the tidy table carries them as columns (``method_name``, ``method_order``).
The report reads only files, so it learns them from the table (``learn``) before it renders; a
model with a name of its own is shown by that name, after the registered methods.
"""

from __future__ import annotations

import pandas as pd

from .aggregate import FLOOR_METHOD

NAMES: dict[str, str] = {FLOOR_METHOD: "real data (floor)"}
ORDER: dict[str, int] = {}  # registered method → its place in the registry


def learn(df: pd.DataFrame) -> None:
    """Take the display names and registry places the table's rows recorded."""
    if "method_name" not in df:
        return
    rows = df.dropna(subset=["method_name"]).drop_duplicates("method")
    for r in rows.itertuples():
        NAMES[str(r.method)] = str(r.method_name)
        ORDER[str(r.method)] = int(r.method_order)


def _after_registered() -> int:
    """The first place after every registered method seen (where unregistered ones start)."""
    return max(ORDER.values(), default=-1) + 1


def name(method: str) -> str:
    """The readable name of a method ('DDIM (η = 0)'), or the method itself when unregistered."""
    return NAMES.get(str(method), str(method))


def rank(method: str) -> int:
    """Display order: the real-data floor, the registered methods in registry order, then the rest."""
    if str(method) == FLOOR_METHOD:
        return 0
    return 1 + ORDER.get(str(method), _after_registered())


def colour_index(method: str, i: int = 0) -> int:
    """A registered method's fixed palette slot (its registry place); unregistered ones take the
    slots after the registered ones, ``i`` apart."""
    return ORDER[method] if method in ORDER else _after_registered() + i
