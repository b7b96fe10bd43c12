"""Core Method behaviour: parameterisations, clip_denoised, restoring without the teacher file."""

from __future__ import annotations

import shutil

import pytest
import torch

from e2ed2.checkpoint import load_method
from e2ed2.method import Batch
from e2ed2.registry import build_method
from e2ed2.train import train
from tests.conftest import TINY_NET


class OracleNet(torch.nn.Module):
    """Knows x₀ and outputs the F for which the method's own denoiser returns exactly x₀."""

    def __init__(self, method, x0):
        super().__init__()
        self.method, self.x0, self.config = method, x0, method.net.config
        self.prediction = method.cfg["prediction"]

    def forward(self, x_vp, t, tokens):
        sigma = self.method.train_sigmas[t.round().long()].to(x_vp.dtype).view(-1, 1, 1, 1)
        c_in = 1 / (sigma**2 + 1).sqrt()
        x = x_vp / c_in
        # invert D(x, σ) = x₀ for each parameterisation of VPDenoiser
        return {"eps": (x - self.x0) / sigma, "v": (x * c_in**2 - self.x0) / (sigma * c_in), "x0": self.x0}[self.prediction]


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_ddpm_loss_target_matches_denoiser_parameterisation(prediction):
    method = build_method({"method": {"name": "ddpm", "prediction": prediction}, "net": TINY_NET})
    x0 = torch.rand(6, 1, 8, 8) * 2 - 1
    method.net = OracleNet(method, x0)
    loss = method.loss(Batch(x0, torch.zeros(6, 8, dtype=torch.long), torch.zeros(6)), torch.Generator().manual_seed(0))
    assert loss.max() < 1e-6
    other = {"eps": "v", "v": "x0", "x0": "eps"}[prediction]  # guard: a mismatched parameterisation is not zero
    method.cfg["prediction"] = other
    assert method.loss(Batch(x0, torch.zeros(6, 8, dtype=torch.long), torch.zeros(6)), torch.Generator().manual_seed(0)).max() > 1e-3


def test_clip_denoised_is_a_recorded_knob():
    ddpm = build_method({"method": {"name": "ddpm"}, "net": TINY_NET})
    assert ddpm.cfg["clip_denoised"] is True  # Ho et al.'s reference sampler clips x̂₀
    for p in ddpm.net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.5)
    x, sigma = torch.randn(4, 1, 8, 8) * 100, torch.full((4,), 100.0)
    assert ddpm.denoiser()(x, sigma).abs().max() <= 1
    ddpm.cfg["clip_denoised"] = False
    assert ddpm.denoiser()(x, sigma).abs().max() > 1


@pytest.mark.parametrize("method", ["e2ed2", "cd"])
def test_student_checkpoint_samples_without_teacher_file(method, tiny_config, tmp_path):
    teacher = train(tiny_config("ddpm", steps=2), tmp_path / "teacher")
    cfg = tiny_config(method, steps=2, teacher=str(teacher))
    student = train(cfg, tmp_path / method)
    moved = tmp_path / "elsewhere.pt"
    shutil.move(teacher, moved)
    restored, _ = load_method(student)
    with torch.no_grad():
        out = restored.sample(torch.randn(2, 1, 8, 8), None, 2)
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all()
    with pytest.raises(FileNotFoundError, match="teacher checkpoint not found"):
        train({**cfg, "train": {**cfg["train"], "steps": 4}}, tmp_path / f"{method}-fresh")
