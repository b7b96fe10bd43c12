"""Give metric JSONs written before sample sets carried their model's knobs a ``model`` block.

Since the sample CLI records the checkpoint's method config in every sample set (``model``:
method knobs, run hash, training step) and the metric CLIs copy it into every metric JSON, the
report reads E2ED²'s K (and any knob it groups by) from there. Older metric JSONs lack it. Their
``timing`` block names the checkpoint and its run hash; the training folder beside that
checkpoint keeps ``config.json`` (committed even where the weights are not). This CLI copies the
resolved method config from that file into each JSON, after checking that the run hash recorded
at sampling time is the run hash of that folder: a JSON whose checkpoint was retrained since is
refused, never relabelled.

    python -m e2ed2.report.backfill results/default            # every */metrics/**/{fid,clip}.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import cli
from ..atomic import write_json

FAMILY_FILES = ("fid.json", "clip.json")


def model_block(rec: dict, where: Path) -> dict | None:
    """The ``model`` block of one metric JSON from its checkpoint's config.json (None: not a sample set)."""
    timing = rec.get("timing") or {}
    if (rec.get("source") or {}).get("kind") != "samples" or not timing.get("checkpoint"):
        return None
    config_file = Path(timing["checkpoint"]).parent / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{where}: its checkpoint's {config_file} is missing; rerun sampling instead")
    config = json.loads(config_file.read_text())
    if config.get("run_hash") != timing.get("run_hash"):
        raise ValueError(f"{where}: sampled from run {timing.get('run_hash')} but {config_file} is run "
                         f"{config.get('run_hash')} (retrained since); rerun sampling instead of backfilling")
    method = (config.get("resolved") or {}).get("method") or config["method"]
    batch = ((config.get("resolved") or {}).get("train") or config.get("train") or {}).get("batch_size")
    step = int(timing["train_step"])
    return {"method": method, "run_hash": config["run_hash"], "train_step": step,
            "train_images": step * int(batch) if batch else None}


def backfill(root: str | Path) -> tuple[int, int]:
    """Add ``model`` to every metric JSON under ``root`` that lacks it, and ``model.train_images``
    where a block predates it; returns (updated, complete already)."""
    updated = present = 0
    for name in FAMILY_FILES:
        for path in sorted(Path(root).glob(f"*/metrics/**/{name}")):
            rec = json.loads(path.read_text())
            model = rec.get("model")
            if isinstance(model, dict) and model.get("train_images") is not None:
                present += 1
                continue
            block = model_block(rec, path)
            if block is None:  # not a sample set (a real-data floor): no model
                continue
            if isinstance(model, dict):  # keep what sampling recorded; add only the training images
                block = {**model, "train_images": block["train_images"]}
            write_json(path, {**rec, "model": block})
            updated += 1
    return updated, present


def build_parser():
    p = cli.parser("e2ed2.report.backfill", "Add the model block (method knobs from the checkpoint's config.json) "
                   "to metric JSONs written before sample sets recorded it.")
    p.add_argument("root", help="a run folder, e.g. results/default")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not Path(args.root).is_dir():
        raise FileNotFoundError(f"no run folder {args.root}")
    updated, present = backfill(args.root)
    print(f"{args.root}: {updated} metric JSON(s) given a model block, {present} already had one")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
