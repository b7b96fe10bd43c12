r"""CLIP score and FD_CLIP (Fréchet distance on CLIP image embeddings, a second feature space).

  python -m e2ed2.metrics.clip ref  --clip small:results/clip/clip.pt --data mnist5k --split heldout \
      --n 500 --out REF.npz
  python -m e2ed2.metrics.clip calc --clip small:results/clip/clip.pt --ref REF.npz --samples DIR --out clip.json
  python -m e2ed2.metrics.clip calc --clip ... --ref REF.npz \
      --samples DIR1 --out clip1.json --save-scores s1.npz --label steps=1 \
      --samples DIR2 --out clip2.json --save-scores s2.npz --label steps=2    # many sets, one process
  python -m e2ed2.metrics.clip floor --clip ... --ref REF.npz --n 200 --out floor.json  # real train images

CLIP score = mean over images of 100·max(cos(E_img(x), E_txt(caption)), 0) (Hessel et al. 2021),
each image against the caption it was sampled with; the backbone is named in every result.
``calc`` scores every ``--samples`` set of its command line with one loaded backbone and reference
(the options after a ``--samples`` belong to it; ``--label``s before the first go to every set),
writing each set's JSON exactly as a one-set call does (the timing fields aside); ``floor`` scores
train images with their own captions. The commands are the shared ``e2ed2.metrics.family_cli``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

import numpy as np

from .. import cli
from . import bootstrap, clip_model, common
from .family_cli import FamilyCLI, save_npz
from .frechet import frechet_distance, statistics

MIN_IMAGES = 2  # a covariance (FD_CLIP) and a standard deviation need two images


def _progress(desc: str, n: int):
    return functools.partial(cli.progress, desc=f"CLIP embeddings{desc} ({n} images)")


def reference(images: common.ImageSet, args, backbone) -> tuple[dict, dict]:
    """CLIP image embeddings of a dataset split, their μ and Σ (``ref``)."""
    feats = backbone.encode_images(images.images, progress=_progress("", images.n))
    mu, sigma = statistics(feats)
    meta = {"backbone": backbone.info, "preprocessing": backbone.preprocessing, "versions": common.versions()}
    return {"features": feats, "mu": mu, "sigma": sigma}, meta


def load_reference(path, args, backbone) -> dict:
    """μ, Σ and meta of a CLIP reference made with ``backbone`` (another backbone's is refused)."""
    z = common.read_npz(path, ("mu", "sigma", "meta"), "CLIP reference file",
                        "make it again with `python -m e2ed2.metrics.clip ref`")
    meta = json.loads(str(z["meta"]))
    if meta["backbone"].get("sha256") != backbone.info.get("sha256"):
        raise ValueError(f"{path}: made with backbone {meta['backbone']['name']}, "
                         f"this run uses {backbone.info['name']}")
    meta["stats_file"] = str(path)
    return {"mu": z["mu"], "sigma": z["sigma"], "meta": meta, "path": str(path)}


def score_set(images: common.ImageSet, ref: dict | None, args, backbone, job: dict, desc: str = "") -> dict:
    """CLIP score (+ FD_CLIP against ``ref``) of one image set; writes its JSON (and scores); returns the record."""
    _, notes = common.to_rgb(images.images[:1])
    img = backbone.encode_images(images.images, progress=_progress(desc, images.n))
    txt = backbone.encode_texts(images.captions)
    scores = clip_model.clip_score(img, txt)
    if job.get("save_scores"):
        _, boot = bootstrap.mean_replicates(scores)
        save_npz(job["save_scores"], scores=np.asarray(scores, np.float64), seeds=np.asarray(images.seeds, np.int64),
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


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clip", required=True, help="backbone: small:/path/clip.pt or MODEL:PRETRAINED (tag or file)")


CLIP = FamilyCLI(
    name="clip", description="CLIP score and FD_CLIP through open_clip: reference embedding statistics (ref), "
    "per-set scores (calc) and the real-image floor (floor).",
    min_images=MIN_IMAGES, min_why=f"CLIP score's std and FD_CLIP's covariance need at least {MIN_IMAGES} images",
    replicate_option="--save-scores", replicate_help="also write the per-image scores and seeds",
    setup=lambda args: clip_model.load(args.clip, device=args.device_obj), reference=reference,
    load_reference=load_reference, score=score_set, add_options=add_options, ref_required=False)
build_parser, main = CLIP.build_parser, CLIP.main


if __name__ == "__main__":
    sys.exit(cli.run(main))
