"""open_clip backbones for CLIP score and FD_CLIP: a pretrained model from the user's cache, or the
small CLIP trained offline by ``e2ed2.metrics.train_clip`` (open_clip's own model classes).

Backbone specs: ``small:/path/clip.pt`` (our checkpoint) or ``NAME:PRETRAINED`` with an open_clip
model name and a pretrained tag or local file (e.g. ``ViT-B-32:laion2b_s34b_b79k``). Pretrained tags
resolve through the Hugging Face cache; with ``HF_HUB_OFFLINE=1`` a missing one fails at once.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_write
from .common import to_rgb
from .inception import sha256

SMALL_NAME = "e2ed2-small-clip"
# A small ViT/transformer pair sized for 32×32 digits on a 2-core CPU (~3.5 M parameters, most of
# them the 49,408-token BPE embedding that open_clip's bundled tokenizer needs).
SMALL_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 64, "head_width": 32, "patch_size": 4},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def register_small_config(name: str = SMALL_NAME, config: dict | None = None) -> str:
    """Register a model config with open_clip through its public ``add_model_config``, which
    reads the file at once: the temporary folder is gone when this returns. A name registered
    with another config (a second checkpoint in one process) is registered again."""
    import open_clip

    config = json.loads(json.dumps(config or SMALL_CONFIG))  # as the JSON file will read
    if open_clip.get_model_config(name) != config:
        with tempfile.TemporaryDirectory(prefix="e2ed2-clip-config-") as folder:
            path = Path(folder) / f"{name}.json"
            path.write_text(json.dumps(config))
            open_clip.add_model_config(path)
    return name


class Backbone:
    """An open_clip model with its tokenizer, input size and normalisation; encodes uint8 images and captions."""

    def __init__(self, model, tokenizer, info: dict, device=torch.device("cpu")):
        self.model, self.tokenizer, self.info, self.device = model.to(device).eval(), tokenizer, info, device
        visual = model.visual
        size = visual.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else int(size)
        self.mean = torch.tensor(getattr(visual, "image_mean", None)
                                 or (0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
        self.std = torch.tensor(getattr(visual, "image_std", None)
                                or (0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)

    @property
    def preprocessing(self) -> str:
        return f"bicubic-antialias to {self.image_size}px, CLIP mean/std"

    def image_tensor(self, images: np.ndarray) -> tuple[torch.Tensor, list[str]]:
        """uint8 N×C×H×W → normalised float N×3×S×S (gray repeated to RGB)."""
        rgb, notes = to_rgb(images)
        x = torch.from_numpy(np.ascontiguousarray(rgb)).float() / 255
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", antialias=True,
                              align_corners=False).clamp(0, 1)
        return (x - self.mean) / self.std, notes

    def encode_images(self, images: np.ndarray, batch_size: int = 256, progress=None) -> np.ndarray:
        """``progress`` (optional) wraps the iterable of batch starts (the CLI's progress reporter)."""
        out, starts = [], range(0, len(images), batch_size)
        for lo in progress(starts) if progress else starts:
            x, _ = self.image_tensor(images[lo:lo + batch_size])
            out.append(self.model.encode_image(x.to(self.device)).float().cpu())
        return torch.cat(out).numpy()

    def encode_texts(self, captions, batch_size: int = 256) -> np.ndarray:
        out = []
        captions = [str(c) for c in captions]
        for lo in range(0, len(captions), batch_size):
            tokens = self.tokenizer(captions[lo:lo + batch_size]).to(self.device)
            out.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(out).numpy()


def save_small(path, model, config: dict, extra: dict) -> None:
    """Atomic checkpoint: {"model_name", "config", "state_dict", **extra} (weights_only-loadable)."""
    with atomic_write(path) as tmp:
        torch.save({"model_name": SMALL_NAME, "config": config, "state_dict": model.state_dict(), **extra}, tmp)


def create_small(config: dict | None = None):
    import open_clip

    name = register_small_config(SMALL_NAME, config)
    model = open_clip.create_model(name, pretrained=None)
    return model, open_clip.get_tokenizer(name)


def load(spec: str, device=torch.device("cpu")) -> Backbone:
    """A backbone from ``small:/path.pt`` or ``NAME:PRETRAINED`` (see module docstring)."""
    import open_clip

    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError(f"CLIP backbone {spec!r}: expected 'small:/path/clip.pt' or 'MODEL:PRETRAINED'")
    if kind == "small":
        path = Path(rest)
        if not path.is_file():
            raise FileNotFoundError(f"small CLIP checkpoint not found: {path} "
                                    f"(train it with `python -m e2ed2.metrics.train_clip`)")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if set(SMALL_CONFIG) - set(ckpt.get("config", {})):
            raise ValueError(f"{path}: not a small-CLIP checkpoint (no open_clip config inside)")
        register_small_config(SMALL_NAME, ckpt["config"])
        model = open_clip.create_model(SMALL_NAME, pretrained=None)
        model.load_state_dict(ckpt["state_dict"])
        info = {"name": f"{SMALL_NAME} (open_clip, trained on {ckpt.get('data', '?')})", "sha256": sha256(path),
                "path": str(path), "zero_shot_accuracy": ckpt.get("eval", {}).get("zero_shot_accuracy")}
        return Backbone(model, open_clip.get_tokenizer(SMALL_NAME), info, device)
    if kind not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {kind!r}; see open_clip.list_models()")
    try:
        model = open_clip.create_model(kind, pretrained=rest)
    except Exception as e:  # no weights in the cache (offline) or a bad file: say which
        raise RuntimeError(f"open_clip could not load {kind} weights {rest!r} (not in the local cache or not a "
                           f"valid file; set HF_HUB_OFFLINE=0 to allow the hub): {e}") from e
    info = {"name": f"{kind}:{rest}", "sha256": sha256(rest) if Path(rest).is_file() else None, "path": rest}
    return Backbone(model, open_clip.get_tokenizer(kind), info, device)


def clip_score(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Per-pair CLIP score 100·max(cos(image, caption), 0) (Hessel et al. 2021, w = 100)."""
    a = image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)
    b = text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
    return 100 * np.maximum((a * b).sum(axis=1), 0)
