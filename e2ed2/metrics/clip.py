r"""CLIP score and FD_CLIP (Fréchet distance on CLIP image embeddings, a second feature space).

  python -m e2ed2.metrics.clip ref  --clip small:results/clip/clip.pt --data mnist5k --split heldout \
      --n 500 --out REF.npz
  python -m e2ed2.metrics.clip calc --clip small:results/clip/clip.pt --ref REF.npz --samples DIR --out clip.json

CLIP score = mean over images of 100·max(cos(E_img(x), E_txt(caption)), 0) (Hessel et al. 2021),
each image against the caption it was sampled with; the backbone is named in every result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from .. import cli
from ..distributed import resolve_device
from . import bootstrap, clip_model, common
from .fid import _save_npz
from .frechet import frechet_distance, statistics


def cmd_ref(args, backbone) -> dict:
    images = common.load_split(args.data, args.split, args.n, args.subset_seed)
    feats = backbone.encode_images(images.images)
    mu, sigma = statistics(feats)
    meta = {"dataset": str(args.data), "split": args.split, "n": images.n, "resolution": images.resolution,
            "subset_seed": images.source["subset_seed"], "backbone": backbone.info,
            "preprocessing": backbone.preprocessing, "versions": common.versions()}
    _save_npz(args.out, features=feats, mu=mu, sigma=sigma, meta=np.asarray(json.dumps(meta)))
    return meta


def cmd_calc(args, backbone) -> dict:
    if args.samples:
        images = common.load_sample_set(args.samples, args.n)
    else:
        images = common.load_split(args.data, args.split, args.n, args.subset_seed)
    _, notes = common.to_rgb(images.images[:1])
    img = backbone.encode_images(images.images)
    txt = backbone.encode_texts(images.captions)
    scores = clip_model.clip_score(img, txt)
    if getattr(args, "save_scores", None):
        _, boot = bootstrap.mean_replicates(scores)
        _save_npz(args.save_scores, scores=np.asarray(scores, np.float64), seeds=np.asarray(images.seeds, np.int64),
                  clip_score_boot=boot)
    results = [{"metric": "clip_score", "value": float(scores.mean()),
                "std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0}]
    reference = None
    if args.ref:
        ref_path = Path(args.ref)
        if not ref_path.is_file():
            raise FileNotFoundError(f"CLIP reference not found: {ref_path} "
                                    f"(make it with `python -m e2ed2.metrics.clip ref`)")
        with np.load(ref_path, allow_pickle=False) as z:
            ref_mu, ref_sigma, meta = z["mu"], z["sigma"], json.loads(str(z["meta"]))
        if meta["backbone"].get("sha256") != backbone.info.get("sha256"):
            raise ValueError(f"{ref_path}: made with backbone {meta['backbone']['name']}, "
                             f"this run uses {backbone.info['name']}")
        mu, sigma = statistics(img)
        results.append({"metric": "fd_clip", "value": frechet_distance(mu, sigma, ref_mu, ref_sigma)})
        reference = {"dataset": meta["dataset"], "split": meta["split"], "n": meta["n"], "stats_file": str(ref_path)}
    record = {
        "results": results, "backend": "open_clip",
        "feature_network": {"name": backbone.info["name"], "sha256": backbone.info.get("sha256")},
        "backbone": backbone.info, "preprocessing": " + ".join([backbone.preprocessing, *notes]), "n": images.n,
        "seeds": common.seeds_text(images.seeds), "source": images.source, "reference": reference,
        "labels": common.parse_labels(args.label), "timing": images.timing,
        "hardware": common.hardware(args.device_obj), "versions": common.versions(),
    }
    return common.write_result(args.out, record)


def build_parser():
    p = cli.parser("e2ed2.metrics.clip", "CLIP score and FD_CLIP through open_clip: reference embedding statistics "
                   "(ref) and per-set scores (calc).")
    sub = p.add_subparsers(dest="cmd", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--clip", required=True, help="backbone: small:/path/clip.pt or MODEL:PRETRAINED (tag or file)")
    shared.add_argument("--data", default=None,
                        help="dataset (built-in name, .npz or folder) for ref, or instead of --samples")
    shared.add_argument("--split", default="heldout", choices=["train", "heldout", "all"], help="split of --data")
    shared.add_argument("--n", type=int, default=None, help="images (default: all)")
    shared.add_argument("--subset-seed", type=int, default=0, help="seed of the n-image subset of --data")
    shared.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    shared.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    shared.add_argument("--out", required=True, help="output (.npz for ref, JSON for calc)")
    fmt = argparse.ArgumentDefaultsHelpFormatter
    sub.add_parser("ref", parents=[shared], formatter_class=fmt,
                   help="CLIP image-embedding statistics of a dataset split")
    c = sub.add_parser("calc", parents=[shared], formatter_class=fmt,
                       help="CLIP score (+ FD_CLIP with --ref) of a sample set")
    c.add_argument("--samples", default=None, help="sample folder (samples.npz + timing.json)")
    c.add_argument("--ref", default=None, help="reference .npz from `ref` (enables FD_CLIP)")
    c.add_argument("--save-scores", default=None, metavar="NPZ", help="also write the per-image scores and seeds")
    c.add_argument("--label", action="append", default=[], help="KEY=VALUE recorded under labels (repeatable)")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not getattr(args, "samples", None) and not args.data:
        p.error(f"{args.cmd}: give --data SPEC" + (" or --samples DIR" if args.cmd == "calc" else ""))
    args.device_obj = resolve_device(args.device)
    backbone = clip_model.load(args.clip, device=args.device_obj)
    with torch.no_grad():
        out = cmd_ref(args, backbone) if args.cmd == "ref" else cmd_calc(args, backbone)
    print(json.dumps({k: out[k] for k in ("metric", "value", "n") if k in out} or {"out": args.out, "n": out["n"]}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
