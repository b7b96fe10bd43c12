"""GPU-hour budgets for the paper-scale configs from FLOP counts (no GPU on the dev machines).

Every network is built on the ``meta`` device (no memory, no weights) and one forward pass per
image is counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmul/conv FLOPs, 2 per
multiply-add). Stage costs multiply that by forward-equivalents per image (training:
forward + backward ≈ 3 forwards) and convert to hours at an assumed sustained throughput.

    python benchmarks/budget_flops.py --out docs/budget_flops.json
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

PEAK_BF16 = 989e12  # H100 SXM dense bf16 tensor-core peak, FLOP/s
MFU = 0.30  # assumed sustained fraction of peak for these conv/attention nets (not measured)

CIFAR_NET = {"image_channels": 3, "resolution": 32, "channels": 128, "channel_mult": [1, 2, 2, 2], "num_res_blocks": 2,
             "attn_resolutions": [16], "dropout": 0.1, "text_dim": 256, "text_layers": 2}
COCO_NET = {"image_channels": 4, "resolution": 32, "channels": 192, "channel_mult": [1, 2, 4], "num_res_blocks": 2,
            "attn_resolutions": [16, 8], "text_dim": 512, "text_layers": 4, "max_tokens": 32, "vocab_size": 32768}


def forward_flops(build, *inputs) -> float:
    with torch.device("meta"):
        model = build()
        args = [x() for x in inputs]
    with FlopCounterMode(display=False) as counter:
        model(*args)
    return counter.get_total_flops() / args[0].shape[0]


def unet_flops(cfg: dict) -> float:
    from e2ed2.nets import UNet

    c, r, L = cfg["image_channels"], cfg["resolution"], cfg.get("max_tokens", 16)
    return forward_flops(lambda: UNet(cfg), lambda: torch.zeros(2, c, r, r), lambda: torch.zeros(2),
                         lambda: torch.ones(2, L, dtype=torch.long))


def inception_flops() -> float:
    from torchvision.models import inception_v3

    return forward_flops(lambda: inception_v3(weights=None, aux_logits=False, init_weights=False).eval(),
                         lambda: torch.zeros(2, 3, 299, 299))


def vae_flops(res: int) -> tuple[float, float]:
    from diffusers import AutoencoderKL

    cfg = dict(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
               block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4)  # SD VAE
    enc = forward_flops(lambda: _Enc(AutoencoderKL(**cfg)), lambda: torch.zeros(1, 3, res, res))
    dec = forward_flops(lambda: _Dec(AutoencoderKL(**cfg)), lambda: torch.zeros(1, 4, res // 8, res // 8))
    return enc, dec


class _Enc(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        return self.vae.encode(x).latent_dist.mean


class _Dec(_Enc):
    def forward(self, z):
        return self.vae.decode(z).sample


def clip_image_flops(name: str) -> float:
    import open_clip

    return forward_flops(lambda: open_clip.create_model(name, pretrained=None, device="meta").visual,
                         lambda: torch.zeros(1, 3, 224, 224))


def lpips_alex_flops(res: int) -> float:
    from torchvision.models import alexnet

    return forward_flops(lambda: alexnet(weights=None).features, lambda: torch.zeros(2, 3, res, res))


def hours(flops: float) -> float:
    return flops / (PEAK_BF16 * MFU) / 3600


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write the counts as JSON here")
    args = p.parse_args(argv)
    counts = {"unet_cifar10": unet_flops(CIFAR_NET), "unet_coco30k_latent": unet_flops(COCO_NET),
              "inception_299": inception_flops(), "lpips_alex_64": lpips_alex_flops(64),
              "lpips_alex_256": lpips_alex_flops(256)}
    counts["vae_encode_256"], counts["vae_decode_256"] = vae_flops(256)
    for name in ("ViT-B-32", "ViT-L-14", "ViT-g-14"):
        counts[f"clip_{name}"] = clip_image_flops(name)
    result = {"basis": "FLOP counts (FlopCounterMode on meta tensors); no GPU measured", "peak_flops": PEAK_BF16,
              "mfu_assumed": MFU, "gflops_per_image_forward": {k: v / 1e9 for k, v in counts.items()}}
    g = result["gflops_per_image_forward"]
    result["stages"] = {name: [(stage, f / 1e18, hours(f), hours(f) * MFU / 0.1) for stage, f in rows]
                        for name, rows in budgets(g).items()}
    for name, rows in result["stages"].items():
        print(f"\n{name}\n| stage | PFLOP | GPU-h at MFU {MFU:.0%} | GPU-h at MFU 10% |\n|---|---|---|---|")
        for stage, ef, h30, h10 in rows:
            print(f"| {stage} | {ef * 1e3:,.0f} | {h30:.1f} | {h10:.1f} |")
        print(f"| total | {sum(r[1] for r in rows) * 1e3:,.0f} | {sum(r[2] for r in rows):.1f} "
              f"| {sum(r[3] for r in rows):.1f} |")
    if args.out:
        from e2ed2.atomic import write_json

        write_json(args.out, result)
    return 0



# ---- stage tables ------------------------------------------------------------------------
# Forward-equivalents per training sample: plain denoising fwd+bwd = 3; CD adds the EMA
# target (1) and a Heun teacher step (2); CT adds the target (1); E2ED² with per-step
# checkpointing runs K forwards, K recomputes and K backwards (≈ 2 each) = 4K.
def stage_rows(g: dict, unet: str, batch: int, train: dict, k_variants: list[int], perc_fwd: float,
               sampling: list[tuple[str, int, int]], eval_fwd: float, decode: float = 0.0) -> list[tuple[str, float]]:
    F = g[unet] * 1e9
    rows = [("DDPM teacher", train["ddpm"] * batch * 3 * F),
            ("CD (from the teacher)", train["cd"] * batch * 6 * F),
            ("CT", train["ct"] * batch * 4 * F)]
    e2e = sum(train["e2ed2"] * batch * (4 * k * F + 3 * perc_fwd * 1e9) for k in k_variants)
    rows.append((f"E2ED² ({len(k_variants)} variants, K={k_variants})", e2e))
    images = sum(n for _, n, _ in sampling)
    rows.append(("sampling (all sets)", sum(n * nfe * F + n * decode * 1e9 for _, n, nfe in sampling)))
    rows.append((f"metrics ({images:,} images + refs)", (images + 60_000) * eval_fwd * 1e9))
    return rows


def budgets(g: dict) -> dict:
    """The two paper-scale configs (step counts and sampling plan as in workflows/config)."""
    # cifar10: DDPM 200k, CD 50k, CT 200k, six E2ED² variants of 20k at batch 128; LPIPS-alex at 64²;
    # sampling 10k images per set (3 seed blocks for the main sets); Inception features for metrics
    cifar_sets = ([("ddpm", 10_000, 1000), ("ddpm", 10_000, 100)]
                  + [("ddim", 30_000, k) for k in (1, 2, 4, 10, 50, 100)]
                  + [(m, 30_000, k) for m in ("cd", "ct", "e2ed2") for k in (1, 2, 4)]
                  + [(m, 10_000, k) for m in ("k1", "k4") for k in (1, 2, 4)] + [(m, 10_000, 2) for m in range(3)])
    cifar = stage_rows(g, "unet_cifar10", 128, {"ddpm": 200_000, "cd": 50_000, "ct": 200_000, "e2ed2": 20_000},
                       [2, 1, 4, 2, 2, 2], g["lpips_alex_64"], cifar_sets, g["inception_299"])
    # coco30k (latent 32×32×4 from 256² images): same plan at batch 256 with 30k images per set;
    # E2ED²'s pixel-space LPIPS needs the VAE decoder forward+backward (decode 1 + 2); every
    # sample is decoded; metrics = Inception + CLIP ViT-g-14 per image
    coco_sets = [(m, n * 3, k) for m, n, k in cifar_sets]
    coco = stage_rows(g, "unet_coco30k_latent", 256, {"ddpm": 200_000, "cd": 50_000, "ct": 200_000, "e2ed2": 20_000},
                      [2, 1, 4, 2, 2, 2], g["lpips_alex_256"] + g["vae_decode_256"], coco_sets,
                      g["inception_299"] + g["clip_ViT-g-14"], decode=g["vae_decode_256"])
    coco.insert(0, ("VAE encode of 113k train+val images", 113_000 * g["vae_encode_256"] * 1e9))
    return {"cifar10": cifar, "coco30k": coco}


if __name__ == "__main__":
    sys.exit(main())
