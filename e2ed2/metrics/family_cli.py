"""The command line every metric family shares (``python -m e2ed2.metrics.<family>``), after edm2's
ref/calc split:

  ref    statistics of one dataset split:  --data SPEC --split heldout --n N --subset-seed S --out REF.npz
  calc   score sample sets against a reference:  --ref REF.npz  --samples DIR --out JSON [REPLICATE NPZ]
         [--label K=V] (the group repeatable: many sets, one process), or one dataset split (--data)
  floor  the real-data floor: --n train images (default: the reference's N) of the reference's
         dataset (or --data), scored as a set

A family (``e2ed2.metrics.families`` names it) is a :class:`FamilyCLI`: its own options, ``setup``
(load its network once), ``reference`` (the statistics of an image set), ``load_reference`` and
``score`` (one image set against a loaded reference: its JSON record). This module does the rest
once for every family: parsing, the checks every set passes before the first is scored (enough
images; the reference's dataset, by ``e2ed2.data_identity``), the loop over sets with its ETA
lines, atomic files, and one summary line per result.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import cli, data_identity
from ..atomic import atomic_write
from ..distributed import resolve_device
from . import common

SPLITS = ["train", "heldout", "all"]


def save_npz(path, **arrays) -> None:
    """A reference or replicate file, written atomically."""
    with atomic_write(path) as tmp:
        np.savez(tmp, **arrays)


def check_set(family: FamilyCLI, n: int, shape: tuple, data: dict | None, ref: dict | None, where: str) -> None:
    """What every family refuses before it scores anything: too few images, images its reference
    cannot score (the family's ``check_images``: e.g. FID's resolution), another dataset."""
    if n < family.min_images:
        raise ValueError(f"{where}: {n} image(s); {family.min_why}")
    if ref is not None and family.check_images is not None:
        family.check_images(shape, ref, where)
    if ref is not None:
        data_identity.check_same_data(data, ref["meta"].get("data_identity"), where,
                                      f"the reference {ref['meta'].get('stats_file', '')}".rstrip())


@dataclass
class FamilyCLI:
    name: str  # the module e2ed2.metrics.<name>; its results are <name>.json
    description: str
    min_images: int  # fewer cannot be scored (a covariance needs 2; precision/recall k + 1)
    min_why: str  # says why, in an error
    replicate_option: str  # the calc/floor option that writes the per-image replicate file
    replicate_help: str
    setup: Callable[[argparse.Namespace], Any]  # args → state (the loaded network), once per process
    reference: Callable[[common.ImageSet, argparse.Namespace, Any], tuple[dict, dict]]  # → (arrays, meta)
    load_reference: Callable[[str, argparse.Namespace, Any], dict]  # → {"meta": {...}, ...}
    score: Callable[..., dict]  # (images, ref | None, args, state, job, desc) → the written record
    add_options: Callable[[argparse.ArgumentParser], None] = lambda p: None  # every command's own options
    add_ref_options: Callable[[argparse.ArgumentParser], None] = lambda p: None
    check_images: Callable[[tuple, dict, str], None] | None = None  # (C×H×W, ref, where): refuse what ref can't score
    ref_required: bool = True  # calc without --ref is an error (else the family scores without one)
    summary: tuple[str, ...] = ("metric", "value", "n")  # the keys of each printed summary line
    # more sub-commands: name → (add its parser (subparsers, parent), run it (args, state) → records)
    commands: dict[str, tuple[Callable, Callable]] = field(default_factory=dict)

    @property
    def replicate_dest(self) -> str:
        return self.replicate_option.lstrip("-").replace("-", "_")

    # ---- the parser -------------------------------------------------------------------------
    def build_parser(self) -> argparse.ArgumentParser:
        p = cli.parser(f"e2ed2.metrics.{self.name}", self.description)
        sub = p.add_subparsers(dest="cmd", required=True)
        shared = argparse.ArgumentParser(add_help=False)
        shared.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
        shared.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
        self.add_options(shared)
        fmt = argparse.ArgumentDefaultsHelpFormatter
        r = sub.add_parser("ref", parents=[shared], formatter_class=fmt, help="reference statistics of a dataset split")
        r.add_argument("--data", required=True, help="built-in name, .npz or image folder")
        r.add_argument("--split", default="heldout", choices=SPLITS, help="split to describe")
        r.add_argument("--n", type=int, default=None,
                       help=f"images (default: the whole split; at least {self.min_images})")
        r.add_argument("--subset-seed", type=int, default=0, help="seed of the n-image subset")
        self.add_ref_options(r)
        r.add_argument("--out", required=True, type=cli.out_path("file"), help="output .npz")
        for name, helptext in (("calc", "score sample sets (or a dataset split) against a reference"),
                               ("floor", "real-data floor: a train subset of the reference's N against the reference")):
            c = sub.add_parser(name, parents=[shared], formatter_class=fmt, help=helptext)
            c.add_argument("--ref", required=self.ref_required or name == "floor", default=None,
                           help="reference .npz from `ref`")
            c.add_argument("--data", default=None,
                           help="dataset instead of --samples (default for floor: the reference's)")
            c.add_argument("--split", default="train", choices=SPLITS, help="split of --data")
            c.add_argument("--n", type=int, default=None,
                           help=f"images (default: all samples / the reference's N; at least {self.min_images})")
            c.add_argument("--subset-seed", type=int, default=0, help="seed of the n-image subset of --data")
            common.add_set_options(c, self.replicate_option, self.replicate_help, samples=name == "calc")
        for add, _ in self.commands.values():
            add(sub, shared)
        return p

    # ---- the commands -----------------------------------------------------------------------
    def cmd_ref(self, args, state) -> dict:
        images = common.load_split(args.data, args.split, args.n, args.subset_seed)
        if images.n < self.min_images:
            raise ValueError(f"dataset {args.data!r}: split {args.split!r} has {images.n} image(s); {self.min_why}")
        arrays, meta = self.reference(images, args, state)
        meta = {"dataset": str(args.data), "data_identity": images.data_identity, "split": args.split,
                "n": images.n, "resolution": images.resolution, "subset_seed": images.source["subset_seed"], **meta}
        save_npz(args.out, **arrays, meta=np.asarray(json.dumps(meta)))
        return meta

    def cmd_calc(self, args, state) -> list[dict]:
        """Every --samples set (checked first, all of them), or one dataset split, against one loaded reference."""
        ref = self.load_reference(args.ref, args, state) if args.ref else None
        jobs = common.resolve_sets(args, ("out", self.replicate_dest))
        for job, n, shape, timing in common.check_set_sizes(jobs, args.n):
            check_set(self, n, shape[1:], timing.get("data_identity"), ref, job["samples"])
        if jobs:
            return common.score_each(jobs, args.n, f"{self.name} calc",
                                     lambda images, job, desc: self.score(images, ref, args, state, job, desc))
        if not args.out:
            raise ValueError("no --out JSON given")
        meta = ref["meta"] if ref is not None else {}
        data = args.data or meta.get("dataset")
        images = common.load_split(data, args.split, args.n or meta.get("n"), args.subset_seed)
        check_set(self, images.n, images.images.shape[1:], images.data_identity, ref, f"{data}:{args.split}")
        job = {"out": args.out, self.replicate_dest: getattr(args, self.replicate_dest), "label": args.label}
        return [self.score(images, ref, args, state, job, "")]

    def main(self, argv=None) -> int:
        p = self.build_parser()
        args = p.parse_args(argv)
        if args.threads < 0:
            raise ValueError(f"--threads must be ≥ 0 (got {args.threads})")
        n = getattr(args, "n", None)
        if n is not None and n < self.min_images:
            raise ValueError(f"--n {n}: {self.min_why}; give --n ≥ {self.min_images} (or leave it out: all images)")
        if args.cmd == "floor":
            args.sets = None
        elif args.cmd == "calc":
            if not getattr(args, "sets", None) and not args.data:
                p.error("calc: give --samples DIR (repeatable) or --data SPEC (with --split/--n)")
            if getattr(args, "sets", None) and args.data:
                p.error("calc: give --samples DIR or --data SPEC, not both")
        if args.threads:
            torch.set_num_threads(args.threads)
        args.device_obj = resolve_device(args.device)
        state = self.setup(args)
        with torch.no_grad():
            if args.cmd == "ref":
                meta = self.cmd_ref(args, state)
                print(json.dumps({"out": args.out, "n": meta["n"]}))
                return 0
            outs = self.commands[args.cmd][1](args, state) if args.cmd in self.commands else self.cmd_calc(args, state)
        outs = outs if isinstance(outs, list) else [outs]
        for rec in outs:  # one summary line per scored set
            print(json.dumps({k: rec[k] for k in self.summary}
                             | ({"source": rec["source"].get("path")} if len(outs) > 1 else {})))
        return 0
