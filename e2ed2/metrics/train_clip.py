"""Train the small offline CLIP (open_clip model classes + ``open_clip.ClipLoss``) on a dataset's TRAIN
image–caption pairs, then measure on the held-out split what its score means:

- zero-shot accuracy: each held-out image against one prompt per class (the class's most frequent
  train caption), top-1 correct when the prompt of its own label wins;
- caption retrieval: each held-out image against the distinct held-out captions, top-1 correct when
  its own caption wins.

  python -m e2ed2.metrics.train_clip --data mnist5k --steps 400 --out results/clip/clip.pt
writes clip.pt and clip.eval.json (the accuracies) beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .. import cli
from ..atomic import write_json
from ..data import load_dataset
from . import clip_model


def class_prompts(train) -> dict[int, str]:
    """label → the most frequent train caption of that label."""
    prompts = {}
    for c in sorted(set(int(x) for x in train.labels) - {-1}):
        prompts[c] = Counter(train.captions[train.labels == c].tolist()).most_common(1)[0][0]
    if not prompts:
        raise ValueError(f"{train.name}: no labels, so no zero-shot classes")
    return prompts


def evaluate(backbone: clip_model.Backbone, train, heldout) -> dict:
    """Zero-shot accuracy over class prompts and caption-retrieval accuracy on the held-out split."""
    img = backbone.encode_images(heldout.images)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    prompts = class_prompts(train)
    classes = np.array(list(prompts))
    txt = backbone.encode_texts(list(prompts.values()))
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    zero_shot = float((classes[(img @ txt.T).argmax(1)] == heldout.labels).mean())
    unique = sorted(set(heldout.captions.tolist()))
    cap = backbone.encode_texts(unique)
    cap /= np.linalg.norm(cap, axis=1, keepdims=True)
    retrieval = float((np.array(unique)[(img @ cap.T).argmax(1)] == heldout.captions).mean())
    return {"zero_shot_accuracy": zero_shot, "chance": 1 / len(classes), "classes": len(classes),
            "prompts": {int(k): v for k, v in prompts.items()}, "caption_retrieval_accuracy": retrieval,
            "caption_chance": 1 / len(unique), "n_heldout": len(heldout)}


def train(data: str, steps: int, batch_size: int, lr: float, seed: int, log=None):
    """(model, tokenizer, losses): ClipLoss on random TRAIN pairs, AdamW with cosine decay."""
    import open_clip

    torch.manual_seed(seed)
    ds = load_dataset(data)
    part = ds.subset("train")
    for split, n in (("train", len(part)), ("heldout", len(ds) - len(part))):
        if n == 0:  # fail before training, not at evaluation
            raise ValueError(f"dataset {data}: no {split} images (its 'split' array); the small CLIP trains on the "
                             f"train split and is evaluated on the held-out split — give a dataset with both")
    model, tokenizer = clip_model.create_small()
    backbone = clip_model.Backbone(model, tokenizer, {})
    images, _ = backbone.image_tensor(part.images)  # preprocessed once: N×3×S×S
    tokens = tokenizer([str(c) for c in part.captions])
    loss_fn = open_clip.ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, (s + 1) / 20) * 0.5 * (1 + np.cos(np.pi * s / steps)))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(len(part), (batch_size,), generator=gen)
        out = model(images[idx], tokens[idx])
        image_features, text_features, logit_scale = out[:3]
        loss = loss_fn(image_features, text_features, logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():  # CLIP's clamp of the learned temperature (logit scale ≤ 100)
            model.logit_scale.clamp_(0, np.log(100))
        losses.append(loss.item())
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"step {step} loss {loss.item():.4f}")
    model.eval()
    return model, tokenizer, ds, losses


def _number(kind, minimum, what: str, strict: bool = False):
    """argparse type: a ``kind`` number ≥ ``minimum`` (> with ``strict``); ``what`` says why, in the error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (value > minimum if strict else value >= minimum):
            raise argparse.ArgumentTypeError(f"{value} must be {'>' if strict else '≥'} {minimum} ({what})")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("e2ed2.metrics.train_clip", "Train the small offline CLIP (open_clip classes + ClipLoss) on a "
                   "dataset's TRAIN image-caption pairs and report its held-out zero-shot and caption-retrieval "
                   "accuracy; writes OUT and OUT's .eval.json beside it.")
    p.add_argument("--data", required=True, help="dataset with captions and a held-out split (built-in name, .npz "
                   "or image folder)")
    p.add_argument("--steps", type=_number(int, 1, "optimizer steps"), default=400, help="optimizer steps")
    p.add_argument("--batch-size", type=_number(int, 2, "ClipLoss contrasts pairs within a batch"), default=128,
                   help="image-caption pairs per step (drawn at random from the train split)")
    p.add_argument("--lr", type=_number(float, 0, "a learning rate", strict=True), default=2e-3,
                   help="AdamW peak learning rate (20-step warm-up, cosine decay)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batch draws")
    p.add_argument("--threads", type=_number(int, 0, "0 keeps torch's default"), default=0,
                   help="torch threads (0: torch's default)")
    p.add_argument("--out", required=True, type=cli.out_path("file"),
                   help="checkpoint path (.pt); the eval JSON goes beside it")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, tokenizer, ds, losses = train(args.data, args.steps, args.batch_size, args.lr, args.seed,
                                         log=lambda m: print(m, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        report = evaluate(clip_model.Backbone(model, tokenizer, {}), ds.subset("train"), ds.subset("heldout"))
    report.update({"data": str(args.data), "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                   "seed": args.seed, "train_seconds": seconds, "final_loss": float(np.mean(losses[-20:])),
                   "parameters": sum(p.numel() for p in model.parameters()), "model": clip_model.SMALL_NAME})
    out = Path(args.out)
    clip_model.save_small(out, model, clip_model.SMALL_CONFIG, {"data": str(args.data), "eval": report})
    write_json(out.with_suffix(".eval.json"), report)
    print(json.dumps({k: report[k] for k in ("zero_shot_accuracy", "caption_retrieval_accuracy", "final_loss",
                                             "train_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
