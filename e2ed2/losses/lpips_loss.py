"""LPIPS (Zhang et al. 2018) with its ImageNet AlexNet/VGG backbone from the local torch hub cache.

lpips ships only its linear heads; the backbone is torchvision's ImageNet checkpoint, which
must already be in ``$TORCH_HOME/hub/checkpoints/`` (torch.hub.get_dir()). We check for the
file first and raise an error naming it, so torchvision never attempts a download.
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn


def backbone_file(net: str) -> str:
    """The path torchvision loads the ``net`` ImageNet weights from (no download)."""
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    url = {"alex": AlexNet_Weights.IMAGENET1K_V1.url, "vgg": VGG16_Weights.IMAGENET1K_V1.url}[net]
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def lpips_input(x: torch.Tensor, min_size: int = 64) -> torch.Tensor:
    """[-1, 1] images → 3 channels, bilinearly upsized to ≥ min_size (AlexNet's stride-4 stem
    leaves 1×1 maps at 32×32)."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] < min_size:
        x = F.interpolate(x, size=(min_size, min_size), mode="bilinear", align_corners=False)
    return x


def build_lpips(net: str, random_backbone: bool) -> nn.Module:
    import lpips

    with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation notices
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net=net, pnet_rand=random_backbone, verbose=False)
    return model.eval().requires_grad_(False)


class LPIPSLoss(nn.Module):
    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in ("alex", "vgg"):
            raise ValueError(f"LPIPS backbone must be 'alex' or 'vgg', got {net!r}")
        path = backbone_file(net)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"LPIPS ({net}) needs torchvision's ImageNet backbone weights at {path}; copy "
                f"{os.path.basename(path)} there (or set TORCH_HOME), or choose the offline perceptual "
                f"backend 'mslap' or 'lpips-randalex' (which are not LPIPS)")
        self.name = "lpips" if net == "alex" else "lpips-vgg"
        self.model = build_lpips(net, random_backbone=False)

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.model(lpips_input(x_hat), lpips_input(x)).flatten()
