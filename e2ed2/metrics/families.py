"""The metric families and the metrics they write: one home for each metric's name, direction,
range and labels, and for each family's files. Read by the report (tables, figures, intervals,
paired comparisons) and the workflow's grouped metric rules; torch-free.

A family is one CLI (``python -m e2ed2.metrics.<name>``, built on ``e2ed2.metrics.family_cli``:
``ref`` / ``calc`` / ``floor``) writing ``<name>.json`` per sample set, plus a per-image replicate
file that the paired bootstrap of the claims resamples. The workflow makes every family's rules
from its entry here (workflows/rules/metrics.smk): adding a family is its module, its entry and
its name in ``metrics.families`` (docs/DESIGN.md, "Add a metric family").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Metric:
    name: str  # the key in a metric JSON's "metrics" and the report's metric column
    title: str  # figure titles and floors: "FID"
    axis: str  # an axis label that says the direction: "FID (lower is better)"
    short: str  # in running text (table notes): "FID", "recall"
    lower_is_better: bool
    range: tuple[float, float] | None = None  # bounded range (intervals are clipped to it); None: unbounded

    @property
    def header(self) -> str:
        """The table column: 'FID ↓', 'Recall ↑'."""
        return f"{self.title} {'↓' if self.lower_is_better else '↑'}"


@dataclass(frozen=True)
class Family:
    name: str  # the CLI module e2ed2.metrics.<name> and the JSON <name>.json
    metrics: tuple[str, ...]  # the metrics its JSON carries
    replicate_file: str  # per-image statistics written beside the JSON
    replicate_option: str  # the `calc` option that writes it
    replicates: dict[str, str] = field(default_factory=dict)  # metric → its bootstrap key in the replicate file
    # the reference's file name under <run>/<dataset>/metrics/ref: formatted with the reference
    # protocol (split, ref_n: metrics.fid's) and the family's own config block metrics.<name>
    ref_file: str = "{name}-{split}-n{ref_n}.npz"
    ref_options: tuple[str, ...] = ()  # keys of metrics.<name> that `ref` gets as --key value


# Every metric the harness writes, in the order of the report's tables
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("fid", "FID", "FID (lower is better)", "FID", True, (0.0, math.inf)),
    Metric("kid", "KID", "KID (lower is better)", "KID", True),
    Metric("clip_score", "CLIP score", "CLIP score, 100·max(cos, 0) (higher is better)", "CLIP score", False,
           (0.0, 100.0)),
    Metric("fd_clip", "FD_CLIP", "FD in CLIP space (lower is better)", "FD_CLIP", True, (0.0, math.inf)),
    Metric("precision", "Precision", "Precision (higher is better)", "precision", False, (0.0, 1.0)),
    Metric("recall", "Recall", "Recall (higher is better)", "recall", False, (0.0, 1.0)),
)}

# The families (metrics.families in the workflow config names them)
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("fid", ("fid", "kid", "precision", "recall"), "features.npz", "--save-features", {"fid": "fid_boot"},
           ref_file="fid-{split}-{backend}-n{ref_n}.npz", ref_options=("backend",)),
    Family("clip", ("clip_score", "fd_clip"), "clip_scores.npz", "--save-scores", {"clip_score": "clip_score_boot"},
           ref_file="clip-{model}-{split}-n{ref_n}.npz"),
)}


def replicate_files() -> dict[str, tuple[str, str]]:
    """metric → (replicate file, bootstrap key) for every metric a paired comparison can resample."""
    return {m: (f.replicate_file, key) for f in FAMILIES.values() for m, key in f.replicates.items()}
