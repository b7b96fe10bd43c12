"""Core Method behaviour: clip_denoised, construction without files, restoring without the teacher file."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from e2ed2.methods import build_method, build_training, load_method
from e2ed2.train import train
from tests.conftest import TINY_NET


def test_clip_denoised_is_a_recorded_knob():
    ddpm = build_method({"method": {"name": "ddpm"}, "net": TINY_NET})
    assert ddpm.cfg.clip_denoised is True  # Ho et al.'s reference sampler clips x̂₀
    for p in ddpm.net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.5)
    x, sigma = torch.randn(4, 1, 8, 8) * 100, torch.full((4,), 100.0)
    assert ddpm.denoiser()(x, sigma).abs().max() <= 1
    unclipped = build_method({"method": {"name": "ddpm", "clip_denoised": False}, "net": TINY_NET})
    unclipped.load_state_dict(ddpm.state_dict())
    assert unclipped.denoiser()(x, sigma).abs().max() > 1


def test_checkpoint_module_is_file_io_only():
    """No import cycle: the checkpoint module imports neither the registry nor any method."""
    code = ("import sys, e2ed2.checkpoint; bad = [m for m in sys.modules if m.startswith(('e2ed2.methods', "
            "'baselines'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("method", ["e2ed2", "cd"])
def test_student_checkpoint_samples_without_teacher_file(method, tiny_config, tmp_path):
    teacher = train(tiny_config("edm", steps=2), tmp_path / "teacher")
    cfg = tiny_config(method, steps=2, teacher=str(teacher), schedule="edm", precond="edm")
    student = train(cfg, tmp_path / method)
    moved = tmp_path / "elsewhere.pt"
    shutil.move(teacher, moved)
    restored, _ = load_method(student)
    with torch.no_grad():
        out = restored.sample(torch.randn(2, 1, 8, 8), None, 2)
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all()
    with pytest.raises(FileNotFoundError, match="teacher checkpoint not found"):
        build_training(cfg)


def test_baselines_is_a_deprecated_alias_of_the_methods_package():
    """The old top-level package still imports, warns, and hands out the classes of e2ed2.methods."""
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    import baselines\nexcept DeprecationWarning as w:\n    assert 'e2ed2.methods' in str(w)\n"
            "else:\n    raise SystemExit('no DeprecationWarning')\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            "from baselines.ddpm import DDPM\nfrom baselines.ddim import DDIM\n"
            "from baselines.consistency import ConsistencyDistillation\n"
            "from e2ed2 import methods\n"
            "assert (DDPM, DDIM, ConsistencyDistillation) == (methods.METHODS['ddpm'], methods.METHODS['ddim'], "
            "methods.METHODS['cd'])")
    subprocess.run([sys.executable, "-c", code], check=True)
