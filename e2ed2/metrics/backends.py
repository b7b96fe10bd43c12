"""The two FID/KID backends, both fed the same Inception network (e2ed2.metrics.inception).

- ``clean-fid`` (Parmar et al. 2022): resize with clean-fid's own "clean" resizer (PIL bicubic on
  float channels), features through clean-fid's ``get_batch_features`` with our network as its
  ``custom_feat_extractor``; μ, Σ as clean-fid computes them; KID with ``cleanfid.fid.kernel_distance``.
- ``torch-fidelity`` (Obukhov et al.): our network registered with ``register_feature_extractor``
  behind torch-fidelity's TF-1.x bilinear resize; features through its dataset loop; μ, Σ, KID and
  precision/recall with its own functions on those features.

The last FID step, d²(μ, Σ; μ_ref, Σ_ref), is ours for both (``e2ed2.metrics.frechet``): the
libraries' scipy ``sqrtm`` / ``eigvals`` take 45-100 s at D = 2048 on this CPU, the symmetric D×D
eigh form ~3 s and, for clean-fid, the N×N form of a set's own features ~0.1 s at N = 200;
tests/test_metrics.py checks that they agree.

One feature pass per image set serves FID, KID and precision/recall.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

import numpy as np
import torch

from . import inception
from .frechet import fid_from_features, frechet_distance

BACKENDS = {"clean-fid": "clean", "torch-fidelity": "tf-bilinear"}  # backend → preprocessing mode
FILE_TAGS = {"clean-fid": "cleanfid", "torch-fidelity": "torchfidelity"}
TF_EXTRACTOR = "e2ed2-inception-2015-12-05"
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 2020
PRC_NEIGHBORHOOD = 3


@lru_cache(maxsize=4)
def network(path: str | None, fast: bool = True, device: str = "cpu"):
    """(module, info) for the located Inception weights, loaded once per process."""
    return inception.load(path, fast=fast, device=device)


def use_torchscript(implementation: str, device: torch.device) -> bool:
    """Which Inception implementation runs: ``auto`` takes the rebuilt eager network on CPU (1.7–4×
    faster there) and the TorchScript as loaded on CUDA (2,394 vs 2,183 img/s on an H200 with TF32
    off, docs/GPU_CHECK.md). The features agree to float rounding (tests/test_metrics.py)."""
    if implementation not in ("auto", "fast", "torchscript"):
        raise ValueError(f"unknown Inception implementation {implementation!r}; expected auto, fast or torchscript")
    if implementation == "auto":
        return torch.device(device).type == "cuda"
    return implementation == "torchscript"


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {sorted(BACKENDS)}")
    return BACKENDS[backend]


# --- clean-fid ----------------------------------------------------------------------------------

def clean_features(images: np.ndarray, net, *, batch_size: int = 50, device=torch.device("cpu"),
                   progress=None) -> np.ndarray:
    """uint8 N×3×H×W → float32 N×2048 through clean-fid's clean resizer and batch-feature function.
    ``progress`` (optional) wraps the iterable of batch starts (the CLI's progress reporter)."""
    from cleanfid.fid import get_batch_features
    from cleanfid.resize import build_resizer

    resize = build_resizer("clean")  # PIL bicubic, float, per channel, to 299×299; values in [0, 255]
    out, starts = [], range(0, len(images), batch_size)
    for lo in progress(starts) if progress else starts:
        # N×299×299×3 float32 viewed as N×3×299×299: already channels-last, so no transpose copy
        batch = torch.from_numpy(np.stack([resize(im.transpose(1, 2, 0)) for im in images[lo:lo + batch_size]]))
        out.append(get_batch_features(batch.permute(0, 3, 1, 2), net, device))
    return np.concatenate(out).astype(np.float32)


@contextlib.contextmanager
def _numpy_seed(seed: int):
    """clean-fid's KID draws subsets from numpy's global RNG: seed it, then restore the caller's state."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def clean_metrics(gen: np.ndarray, ref: dict) -> list[dict]:
    from cleanfid.fid import kernel_distance

    fid = fid_from_features(gen, ref["mu"], ref["sigma"])  # μ, np.cov(rowvar=False) Σ, as clean-fid
    with _numpy_seed(KID_SEED):
        kid = kernel_distance(ref["features"], gen, num_subsets=KID_SUBSETS, max_subset_size=KID_SUBSET_SIZE)
    return [{"metric": "fid", "value": float(fid)}, {"metric": "kid", "value": float(kid),
            "subsets": KID_SUBSETS, "subset_size": min(KID_SUBSET_SIZE, len(gen), len(ref["features"]))}]


# --- torch-fidelity -----------------------------------------------------------------------------

def _fidelity_extractor_class():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    class FidelityInception(FeatureExtractorBase):
        """uint8 B×3×H×W → (B×2048,): torch-fidelity's TF-1.x bilinear resize, then our Inception."""

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            self.net, self.info = inception.load(feature_extractor_weights_path, fast=kwargs.get("e2ed2_fast", True))

        @staticmethod
        def get_provided_features_list():
            return ("2048",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"fid": "2048", "kid": "2048", "prc": "2048"}[metric]

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return (torch.rand([1, 3, 299, 299]) * 255).to(torch.uint8)

        def forward(self, x):
            # The TF-1.x bilinear resize treats channels independently: a gray image repeated to RGB
            # is resized once and repeated after (3× less resize work, same values).
            gray = x.shape[1] == 3 and bool((x[:, 1:] == x[:, :1]).all())
            x = interpolate_bilinear_2d_like_tensorflow1x((x[:, :1] if gray else x).float(), size=(299, 299),
                                                          align_corners=False)
            return (self.net(x.expand(-1, 3, -1, -1) if gray else x),)

    return FidelityInception


def register_fidelity_extractor() -> str:
    """Register our network with torch-fidelity once per process; returns its registry name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if TF_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(TF_EXTRACTOR, _fidelity_extractor_class())
    return TF_EXTRACTOR


class _UInt8Images(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return torch.from_numpy(np.ascontiguousarray(self.images[i]))


@lru_cache(maxsize=4)
def _fidelity_extractor(path: str | None, device: str, fast: bool):
    from torch_fidelity.utils import create_feature_extractor

    name = register_fidelity_extractor()
    extractor = create_feature_extractor(name, ["2048"], cuda=False, feature_extractor_weights_path=path,
                                         e2ed2_fast=fast, verbose=False)
    return extractor.to(device)


def fidelity_features(images: np.ndarray, path: str | None, *, batch_size: int = 50, device=torch.device("cpu"),
                      fast: bool = True, progress=None) -> np.ndarray:
    """uint8 N×3×H×W → float32 N×2048 through torch-fidelity's own dataset/feature loop
    (``progress`` given: it is advanced once per batch the loop feeds the network)."""
    from torch_fidelity.utils import get_featuresdict_from_dataset

    extractor = _fidelity_extractor(path, str(device), fast)
    handle, ticks = None, None
    if progress is not None:  # the reporter prints batch i's line when batch i + 1 starts, the last one below
        ticks = progress(range(-(-len(images) // min(batch_size, len(images)))))

        def tick(module, inputs):  # returns None: the batch goes on unchanged
            next(ticks, None)

        handle = extractor.register_forward_pre_hook(tick)
    try:
        feats = get_featuresdict_from_dataset(_UInt8Images(images), extractor, batch_size,
                                              cuda=device.type == "cuda", save_cpu_ram=True, verbose=False)
    finally:
        if handle is not None:
            handle.remove()
    for _ in ticks or ():
        pass
    return feats["2048"].numpy().astype(np.float32)


def fidelity_metrics(gen: np.ndarray, ref: dict) -> list[dict]:
    from torch_fidelity.metric_fid import fid_features_to_statistics
    from torch_fidelity.metric_kid import kid_features_to_metric

    stats = fid_features_to_statistics(torch.from_numpy(gen))
    fid = frechet_distance(stats["mu"], stats["sigma"], ref["mu"], ref["sigma"])
    size = min(KID_SUBSET_SIZE, len(gen), len(ref["features"]))
    kid = kid_features_to_metric(torch.from_numpy(gen), torch.from_numpy(ref["features"]), kid_subsets=KID_SUBSETS,
                                 kid_subset_size=size, rng_seed=KID_SEED, verbose=False)
    return [{"metric": "fid", "value": fid},
            {"metric": "kid", "value": kid["kernel_inception_distance_mean"],
             "std": kid["kernel_inception_distance_std"], "subsets": KID_SUBSETS, "subset_size": size}]


def precision_recall(gen: np.ndarray, real: np.ndarray) -> list[dict]:
    """Improved precision/recall (Kynkäänniemi et al. 2019, k = 3) with torch-fidelity's function."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    out = prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(real), prc_neighborhood=PRC_NEIGHBORHOOD,
                                 save_cpu_ram=True, verbose=False)
    return [{"metric": "precision", "value": out["precision"], "k": PRC_NEIGHBORHOOD},
            {"metric": "recall", "value": out["recall"], "k": PRC_NEIGHBORHOOD}]


# --- one entry point per backend -----------------------------------------------------------------

def features(backend: str, images_rgb: np.ndarray, *, inception_path=None, batch_size: int = 50,
             device=torch.device("cpu"), fast: bool = True, progress=None) -> np.ndarray:
    check_backend(backend)
    if images_rgb.ndim != 4 or images_rgb.shape[1] != 3 or images_rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 N×3×H×W images, got {images_rgb.dtype} {images_rgb.shape}")
    path = None if inception_path is None else str(inception_path)
    with exact_fp32():
        if backend == "clean-fid":
            net, _ = network(path, fast, str(device))
            return clean_features(images_rgb, net, batch_size=batch_size, device=device, progress=progress)
        return fidelity_features(images_rgb, path, batch_size=batch_size, device=device, fast=fast, progress=progress)


@contextlib.contextmanager
def exact_fp32():
    """Features in true fp32 on CUDA: cuDNN convolutions default to TF32 on Ampere and later
    (torch.backends.cudnn.allow_tf32 is True out of the box), which moved FID by ~1e-3 relative on
    an H200 (benchmarks/gpu_check.py); the FID protocol is fp32, so TF32 is off while we extract."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def metrics(backend: str, gen: np.ndarray, ref: dict) -> list[dict]:
    """FID and KID with the backend's own functions, then precision/recall, all on the same features."""
    check_backend(backend)
    fid_kid = clean_metrics(gen, ref) if backend == "clean-fid" else fidelity_metrics(gen, ref)
    return fid_kid + precision_recall(gen, ref["features"])


def reference_statistics(backend: str, feats: np.ndarray) -> dict:
    """μ, Σ as the backend computes them (dtypes matter to torch-fidelity's checks)."""
    if backend == "torch-fidelity":
        from torch_fidelity.metric_fid import fid_features_to_statistics

        return fid_features_to_statistics(torch.from_numpy(feats))
    return {"mu": np.mean(feats, axis=0), "sigma": np.cov(feats, rowvar=False)}
