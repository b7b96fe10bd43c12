"""Discriminators for E2ED²'s adversarial term (``disc: conv | teacher``).

``Discriminator`` (conv): a projection discriminator (Miyato & Koyama 2018), D(x, c) = ψ(φ(x)) +
⟨e(c), φ(x)⟩, with φ a stride-2 conv stack down to 4×4 followed by global sum pooling, and e(c) the
masked mean of its own caption-token embeddings (it does not share the generator's text encoder).

``TeacherFeatureDiscriminator`` (teacher): Latent Adversarial Diffusion Distillation (Sauer et al.
2024) at this scale. The input is re-noised, x_σ = x + σ·n with ln σ ~ N(P_mean, P_std²), and fed
to the FROZEN teacher UNet's encoder (down path + middle block, with the teacher's own time and
caption embedding); a light trainable head reads each level's last feature map and the middle
block's, and the logits are summed. The encoder's weights are copied from the frozen teacher once
(``set_teacher``), never in an optimizer (``trainable_parameters`` lists the heads only), kept in
eval mode, and stored in the method's state_dict so that a trained checkpoint rebuilds without the
teacher file. Gradients flow through the encoder into its input (the generator's x̂).

Both: logits [B]; an all-padding caption (a dropped condition) gives e(c) = 0, the unconditional
score; ``generator`` draws the teacher discriminator's σ and n (the conv one ignores it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .nets import ResBlock, UNet, UNetConfig, timestep_embedding
from .schedules import lognormal_sigmas


class Discriminator(nn.Module):
    def __init__(self, image_channels: int, resolution: int, channels: int = 16, vocab_size: int = 4096,
                 max_channels: int = 128):
        super().__init__()
        layers, c, res = [nn.Conv2d(image_channels, channels, 3, padding=1), nn.LeakyReLU(0.2)], channels, resolution
        # φ: halve the resolution until 4×4, doubling channels up to max_channels
        while res > 4:
            c_next = min(2 * c, max_channels)
            layers += [nn.Conv2d(c, c_next, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c, res = c_next, res // 2
        self.phi = nn.Sequential(*layers)
        self.psi = nn.Linear(c, 1)
        self.embed = nn.Embedding(vocab_size, c)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, generator=None) -> torch.Tensor:
        """Logits [B]."""
        h = self.phi(x).sum((2, 3))
        mask = (tokens != 0).to(h.dtype)
        e = (self.embed(tokens) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.psi(h).squeeze(1) + (e * h).sum(1)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())


class TeacherEncoder(nn.Module):
    """The encoder half of ``e2ed2.nets.UNet`` (embeddings, down path, middle block) under the UNet's
    own parameter names, so a teacher's state_dict loads into it. Its forward repeats the first
    half of ``UNet.forward`` and must follow it."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        unet = UNet(config)
        self.config = config
        self.time_mlp, self.text, self.text_proj = unet.time_mlp, unet.text, unet.text_proj
        self.conv_in, self.down, self.mid = unet.conv_in, unet.down, unet.mid
        # channels of the features returned: each level's last map, then the middle block's
        c, self.feature_channels = config.channels, []
        for mult in config.channel_mult:
            c = config.channels * mult if config.num_res_blocks > 0 else c
            self.feature_channels.append(c)
        self.feature_channels.append(c)

    def forward(self, x, t, tokens) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(feature maps, pooled caption embedding [B, text_dim]) of the network input x at c_noise t."""
        text = self.text(tokens)
        emb = F.silu(self.time_mlp(timestep_embedding(t, self.config.channels).to(x.dtype)) + self.text_proj(text))
        h, feats = self.conv_in(x), []
        for block in self.down:
            if not isinstance(block[0], ResBlock):  # a downsample ends a resolution level
                feats.append(h)
            h = UNet._run(block, h, emb)
        feats.append(h)
        feats.append(UNet._run(self.mid, h, emb))
        return feats, text


class ProjectionHead(nn.Module):
    """ψ(φ) + ⟨W·e(c), φ⟩ with φ = mean-pooled LeakyReLU(1×1 conv(h)) (projection, Miyato & Koyama 2018)."""

    def __init__(self, c_in: int, width: int, text_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, width, 1)
        self.psi = nn.Linear(width, 1)
        self.embed = nn.Linear(text_dim, width, bias=False)

    def forward(self, h: torch.Tensor, e: torch.Tensor, has_caption: torch.Tensor) -> torch.Tensor:
        phi = F.leaky_relu(self.conv(h), 0.2).mean((2, 3))
        return self.psi(phi).squeeze(1) + has_caption * (self.embed(e) * phi).sum(1)


class TeacherFeatureDiscriminator(nn.Module):
    def __init__(self, net_config: UNetConfig, param, width: int = 16, sigma_mean: float = -0.6,
                 sigma_std: float = 1.6):
        super().__init__()
        self.param, self.sigma_mean, self.sigma_std = param, sigma_mean, sigma_std
        self.trunk = TeacherEncoder(net_config).requires_grad_(False).eval()
        self.heads = nn.ModuleList(ProjectionHead(c, width, net_config.text_dim)
                                   for c in self.trunk.feature_channels)
        # whether the trunk holds a teacher's weights (set_teacher, or a trained state_dict loaded)
        self.register_buffer("teacher_loaded", torch.zeros((), dtype=torch.bool))

    def set_teacher(self, teacher_net: UNet) -> None:
        """Copy the frozen teacher's encoder weights into the trunk (same UNet config required)."""
        if teacher_net.config != self.trunk.config:
            raise ValueError(f"disc 'teacher': the teacher's UNet {teacher_net.config.to_dict()} differs from this "
                             f"method's {self.trunk.config.to_dict()}; the discriminator reads the teacher's "
                             f"encoder with this method's UNet layout, so train the student with the teacher's net")
        source = teacher_net.state_dict()
        self.trunk.load_state_dict({k: source[k] for k in self.trunk.state_dict()})
        self.teacher_loaded.fill_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk.eval()  # frozen: always in eval mode
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, generator=None) -> torch.Tensor:
        """Logits [B] of images x (data range) with captions ``tokens``."""
        # re-noise: x_σ = x + σ·n, ln σ ~ N(P_mean, P_std²), fed to the encoder as D's network input
        B = x.shape[0]
        sigma = lognormal_sigmas(B, self.sigma_mean, self.sigma_std, generator).to(x.device)
        n = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        s = sigma.view(-1, *([1] * (x.ndim - 1)))
        c_in = self.param.scalings(s)[2].to(x.dtype)
        feats, text = self.trunk((x + s.to(x.dtype) * n) * c_in, self.param.c_noise(sigma).to(x.dtype), tokens)
        # one projection head per feature map, logits summed
        has_caption = tokens.ne(0).any(1).to(x.dtype)
        return sum(head(h, text, has_caption) for head, h in zip(self.heads, feats))
