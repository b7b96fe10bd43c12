"""One small conditional UNet shared by every method (fairness: same architecture, same size).

Layout after Ho et al. 2020 / Dhariwal & Nichol 2021 at small scale: residual blocks with
GroupNorm and SiLU, a sinusoidal timestep embedding, self-attention at chosen resolutions,
and text conditioning from a small learned transformer encoder over caption tokens whose
pooled output is added to the timestep embedding (adaptive scale/shift in every block).
Tokens that are all padding give a learned "null" condition, which is what condition dropout
produces during training for classifier-free guidance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError, knob, parse


@dataclass
class UNetConfig:
    """The ``net:`` block: typed and bounded like the method knobs (e2ed2.config.parse), and
    checked for a buildable architecture (a resolution that halves cleanly at every level,
    attention only at resolutions the UNet reaches, widths GroupNorm and the heads divide)."""
    image_channels: int = knob(1, min=1, doc="channels of the images (1 grey, 3 RGB)")
    resolution: int = knob(32, min=1, doc="height = width of the images")
    channels: int = knob(16, min=1, doc="base width; level i has channels × channel_mult[i]")  # ≈1.0 M params
    channel_mult: tuple[int, ...] = knob((1, 2, 4), min=1, doc="width multiplier per level (one level per entry)")
    num_res_blocks: int = knob(1, min=1, doc="residual blocks per level")
    attn_resolutions: tuple[int, ...] = knob((8,), min=1, doc="resolutions with self-attention")
    dropout: float = knob(0.0, min=0.0, lt=1.0, doc="dropout in the residual blocks")
    vocab_size: int = knob(4096, min=2, doc="caption token vocabulary (hashed words)")
    max_tokens: int = knob(16, min=1, doc="caption length in tokens")
    text_dim: int = knob(64, min=4, doc="width of the caption encoder (4 heads)")
    text_layers: int = knob(1, min=0, doc="transformer layers of the caption encoder")

    def __post_init__(self):
        levels = len(self.channel_mult)
        if levels == 0:
            raise ConfigError("net.channel_mult: needs at least one level, e.g. [1, 2, 4]", key="channel_mult")
        if self.resolution % 2 ** (levels - 1):
            raise ConfigError(f"net.resolution: {self.resolution} does not halve {levels - 1} times "
                              f"({levels} levels of channel_mult); use a multiple of {2 ** (levels - 1)} or "
                              "fewer levels", key="resolution")
        reached = [self.resolution // 2 ** i for i in range(levels)]
        unused = [r for r in self.attn_resolutions if r not in reached]
        if unused:
            raise ConfigError(f"net.attn_resolutions: {unused} not reached; the UNet's levels are at {reached}",
                              key="attn_resolutions")
        for level, mult in enumerate(self.channel_mult):
            c = self.channels * mult
            if c % min(8, c) or (reached[level] in self.attn_resolutions and c % 4):
                raise ConfigError(f"net.channels × channel_mult = {c}: GroupNorm needs a multiple of 8 (or < 8) and "
                                  "attention a multiple of 4; e.g. channels: 16", key="channels")
        if self.text_dim % 4:
            raise ConfigError(f"net.text_dim: {self.text_dim} is not a multiple of the caption encoder's 4 heads",
                              key="text_dim")

    @classmethod
    def from_dict(cls, d: dict | None) -> UNetConfig:
        """The typed block; a bad key or value is a ConfigError naming ``net.<key>`` (with its key)."""
        return parse(cls, d, "net")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (continuous) timesteps (Vaswani et al. 2017; Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.drop = _norm(c_out), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight), nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        # adaptive group norm: scale/shift from the (time + text) embedding
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, ch: int, heads: int = 4):
        super().__init__()
        self.norm, self.heads = _norm(ch), heads
        self.qkv, self.proj = nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight), nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class TextEncoder(nn.Module):
    """Token embedding + positional embedding + a small transformer; masked mean pooling."""

    def __init__(self, vocab_size: int, max_tokens: int, dim: int, layers: int):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(max_tokens, dim))
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=2 * dim, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False) if layers > 0 else nn.Identity()
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = tokens != 0
        h = self.tok(tokens) + self.pos[: tokens.shape[1]]
        if not isinstance(self.encoder, nn.Identity):
            h = self.encoder(h, src_key_padding_mask=~mask)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        empty = ~mask.any(1, keepdim=True)
        return torch.where(empty, self.null.expand_as(pooled), pooled)


class UNet(nn.Module):
    """F(x, t, tokens) → output of the same shape as x (ε, v or x₀ depending on the method)."""

    def __init__(self, config: UNetConfig | dict | None = None):
        super().__init__()
        cfg = config if isinstance(config, UNetConfig) else UNetConfig.from_dict(config)
        self.config = cfg
        ch, emb_dim = cfg.channels, 4 * cfg.channels
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.text = TextEncoder(cfg.vocab_size, cfg.max_tokens, cfg.text_dim, cfg.text_layers)
        self.text_proj = nn.Linear(cfg.text_dim, emb_dim)
        self.conv_in = nn.Conv2d(cfg.image_channels, ch, 3, padding=1)

        # encoder: num_res_blocks per level, downsample between levels; skips remembered
        self.down, skips, res, c = nn.ModuleList(), [ch], cfg.resolution, ch
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                block = nn.ModuleList([ResBlock(c, ch * mult, emb_dim, cfg.dropout)])
                c = ch * mult
                if res in cfg.attn_resolutions:
                    block.append(Attention(c))
                self.down.append(block), skips.append(c)
            if level != len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, cfg.dropout), Attention(c),
                                  ResBlock(c, c, emb_dim, cfg.dropout)])

        # decoder: num_res_blocks + 1 per level, each consuming one skip; upsample between
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                block = nn.ModuleList([ResBlock(c + skips.pop(), ch * mult, emb_dim, cfg.dropout)])
                c = ch * mult
                if res in cfg.attn_resolutions:
                    block.append(Attention(c))
                self.up.append(block)
            if level != 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(c, c, 3, padding=1)]))
                res *= 2
        self.norm_out, self.conv_out = _norm(c), nn.Conv2d(c, cfg.image_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight), nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        if tokens is None:
            tokens = torch.zeros(x.shape[0], self.config.max_tokens, dtype=torch.long, device=x.device)
        emb = self.time_mlp(timestep_embedding(t, self.config.channels).to(x.dtype))
        emb = F.silu(emb + self.text_proj(self.text(tokens)))
        h, hs = self.conv_in(x), []
        hs.append(h)
        for block in self.down:
            h = self._run(block, h, emb)
            hs.append(h)
        h = self._run(self.mid, h, emb)
        for block in self.up:
            if isinstance(block[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(block, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))

    @staticmethod
    def _run(block: nn.ModuleList, h, emb):
        for layer in block:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
