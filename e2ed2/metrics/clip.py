r"""CLIP score and FD_CLIP (Fréchet distance on CLIP image embeddings, a second feature space).

  python -m e2ed2.metrics.clip ref  --clip small:results/clip/clip.pt --data mnist5k --split heldout \
      --n 500 --out REF.npz
  python -m e2ed2.metrics.clip calc --clip small:results/clip/clip.pt --ref REF.npz --samples DIR --out clip.json
  python -m e2ed2.metrics.clip calc --clip ... --ref REF.npz \
      --samples DIR1 --out clip1.json --save-scores s1.npz --label steps=1 \
      --samples DIR2 --out clip2.json --save-scores s2.npz --label steps=2    # many sets, one process

CLIP score = mean over images of 100·max(cos(E_img(x), E_txt(caption)), 0) (Hessel et al. 2021),
each image against the caption it was sampled with; the backbone is named in every result.
``calc`` scores every ``--samples`` set of its command line with one loaded backbone and reference
(the options after a ``--samples`` belong to it; ``--label``s before the first go to every set),
writing each set's JSON exactly as a one-set call does (the timing fields aside).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

import numpy as np
import torch

from .. import cli, data_identity
from ..distributed import resolve_device
from . import bootstrap, clip_model, common
from .fid import _save_npz
from .frechet import frechet_distance, statistics

MIN_IMAGES = 2  # a covariance (FD_CLIP) and a standard deviation need two images


def _progress(desc: str, n: int):
    return functools.partial(cli.progress, desc=f"CLIP embeddings{desc} ({n} images)")


def cmd_ref(args, backbone) -> dict:
    images = common.load_split(args.data, args.split, args.n, args.subset_seed)
    if images.n < MIN_IMAGES:
        raise ValueError(f"dataset {args.data!r}: split {args.split!r} has {images.n} image(s); FD_CLIP's covariance "
                         f"needs at least {MIN_IMAGES}")
    feats = backbone.encode_images(images.images, progress=_progress("", images.n))
    mu, sigma = statistics(feats)
    meta = {"dataset": str(args.data), "data_identity": images.data_identity, "split": args.split,
            "n": images.n, "resolution": images.resolution,
            "subset_seed": images.source["subset_seed"], "backbone": backbone.info,
            "preprocessing": backbone.preprocessing, "versions": common.versions()}
    _save_npz(args.out, features=feats, mu=mu, sigma=sigma, meta=np.asarray(json.dumps(meta)))
    return meta


def load_reference(path, backbone) -> dict:
    """μ, Σ and meta of a CLIP reference made with ``backbone`` (another backbone's is refused)."""
    z = common.read_npz(path, ("mu", "sigma", "meta"), "CLIP reference file",
                        "make it again with `python -m e2ed2.metrics.clip ref`")
    meta = json.loads(str(z["meta"]))
    if meta["backbone"].get("sha256") != backbone.info.get("sha256"):
        raise ValueError(f"{path}: made with backbone {meta['backbone']['name']}, "
                         f"this run uses {backbone.info['name']}")
    return {"mu": z["mu"], "sigma": z["sigma"], "meta": meta, "path": str(path)}


def score_set(images: common.ImageSet, backbone, ref: dict | None, args, job: dict, desc: str = "") -> dict:
    """CLIP score (+ FD_CLIP against ``ref``) of one image set; writes its JSON (and scores); returns the record."""
    _, notes = common.to_rgb(images.images[:1])
    img = backbone.encode_images(images.images, progress=_progress(desc, images.n))
    txt = backbone.encode_texts(images.captions)
    scores = clip_model.clip_score(img, txt)
    if job.get("save_scores"):
        _, boot = bootstrap.mean_replicates(scores)
        _save_npz(job["save_scores"], scores=np.asarray(scores, np.float64), seeds=np.asarray(images.seeds, np.int64),
                  clip_score_boot=boot)
    results = [{"metric": "clip_score", "value": float(scores.mean()),
                "std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0}]
    reference = None
    if ref is not None:
        mu, sigma = statistics(img)
        results.append({"metric": "fd_clip", "value": frechet_distance(mu, sigma, ref["mu"], ref["sigma"])})
        meta = ref["meta"]
        reference = {"dataset": meta["dataset"], "data_identity": meta["data_identity"], "split": meta["split"],
                     "n": meta["n"], "stats_file": ref["path"]}
    record = {
        "results": results, "backend": "open_clip",
        "feature_network": {"name": backbone.info["name"], "sha256": backbone.info.get("sha256")},
        "backbone": backbone.info, "preprocessing": " + ".join([backbone.preprocessing, *notes]), "n": images.n,
        "seeds": common.seeds_text(images.seeds), "source": images.source, "data_identity": images.data_identity,
        "reference": reference,
        "labels": common.parse_labels(job["label"]), "timing": images.timing,
        "hardware": common.hardware(args.device_obj), "versions": common.versions(),
        "model": images.model,  # the sample set's model block; None for real data
        # how many of the scored captions are empty: a dataset without captions makes the CLIP score
        # chance-level, and the report then calls C2 not applicable
        "captions": {"n": int(len(images.captions)),
                     "empty": int(sum(not str(c).strip() for c in images.captions))},
    }
    return common.write_result(job["out"], record)


def cmd_calc(args, backbone) -> list[dict]:
    jobs = common.resolve_sets(args, ("out", "save_scores"))
    ref = load_reference(args.ref, backbone) if args.ref else None
    for job, n, _, timing in common.check_set_sizes(jobs, args.n):  # every set checked before the first is scored
        if n < MIN_IMAGES:
            raise ValueError(f"{job['samples']}: {n} image(s); CLIP score's std and FD_CLIP need {MIN_IMAGES}")
        if ref is not None:
            data_identity.check_same_data(timing.get("data_identity"), ref["meta"].get("data_identity"),
                                          job["samples"], f"the reference {args.ref}")
    if not jobs:  # a dataset split (the real-image floor)
        if not args.out:
            raise ValueError("no --out JSON given")
        images = common.load_split(args.data, args.split, args.n, args.subset_seed)
        if ref is not None:
            data_identity.check_same_data(images.data_identity, ref["meta"].get("data_identity"),
                                          f"{args.data}:{args.split}", f"the reference {args.ref}")
        return [score_set(images, backbone, ref, args, {"out": args.out, "save_scores": args.save_scores,
                                                        "label": args.label})]
    return common.score_each(jobs, args.n, "clip calc",
                             lambda images, job, desc: score_set(images, backbone, ref, args, job, desc))


def build_parser():
    p = cli.parser("e2ed2.metrics.clip", "CLIP score and FD_CLIP through open_clip: reference embedding statistics "
                   "(ref) and per-set scores (calc).")
    sub = p.add_subparsers(dest="cmd", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--clip", required=True, help="backbone: small:/path/clip.pt or MODEL:PRETRAINED (tag or file)")
    shared.add_argument("--data", default=None,
                        help="dataset (built-in name, .npz or folder) for ref, or instead of --samples")
    shared.add_argument("--split", default="heldout", choices=["train", "heldout", "all"], help="split of --data")
    shared.add_argument("--n", type=int, default=None, help=f"images (default: all; at least {MIN_IMAGES})")
    shared.add_argument("--subset-seed", type=int, default=0, help="seed of the n-image subset of --data")
    shared.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    shared.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    fmt = argparse.ArgumentDefaultsHelpFormatter
    r = sub.add_parser("ref", parents=[shared], formatter_class=fmt,
                       help="CLIP image-embedding statistics of a dataset split")
    r.add_argument("--out", required=True, type=cli.out_path("file"), help="output .npz")
    c = sub.add_parser("calc", parents=[shared], formatter_class=fmt,
                       help="CLIP score (+ FD_CLIP with --ref) of sample sets (or a dataset split)")
    c.add_argument("--ref", default=None, help="reference .npz from `ref` (enables FD_CLIP)")
    common.add_set_options(c, "--save-scores", "also write the per-image scores and seeds")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.threads < 0:
        raise ValueError(f"--threads must be ≥ 0 (got {args.threads})")
    if args.n is not None and args.n < MIN_IMAGES:
        raise ValueError(f"--n {args.n}: CLIP score's std and FD_CLIP's covariance need at least {MIN_IMAGES} images; "
                         f"give --n ≥ {MIN_IMAGES} (or leave it out: all images)")
    sets = getattr(args, "sets", None)
    if not sets and not args.data:
        p.error(f"{args.cmd}: give --data SPEC" + (" or --samples DIR" if args.cmd == "calc" else ""))
    if sets and args.data:
        p.error("calc: give --samples DIR or --data SPEC, not both")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device_obj = resolve_device(args.device)
    backbone = clip_model.load(args.clip, device=args.device_obj)
    with torch.no_grad():
        if args.cmd == "ref":
            out = cmd_ref(args, backbone)
            print(json.dumps({"out": args.out, "n": out["n"]}))
            return 0
        outs = cmd_calc(args, backbone)
    for rec in outs:  # one summary line per scored set
        print(json.dumps({k: rec[k] for k in ("metric", "value", "n")}
                         | ({"source": rec["source"].get("path")} if len(outs) > 1 else {})))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
