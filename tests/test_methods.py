"""E2ED² and the baselines: registry contract, E2ED² gradients/starts/phases, consistency
losses, perceptual backends, and DDIM = the DDPM checkpoint under the DDIM sampler."""

from __future__ import annotations

import pytest
import torch

from baselines.consistency import ConsistencyFunction, ct_schedule
from baselines.ddim import from_ddpm_checkpoint
from e2ed2.checkpoint import load_method, save_checkpoint
from e2ed2.data import load_dataset, to_uint8
from e2ed2.losses import build_perceptual
from e2ed2.method import Batch
from e2ed2.registry import build_method, method_names
from e2ed2.text import tokenize
from e2ed2.train import Trainer, train
from tests.conftest import TINY_NET, make_tiny_dataset

B, SHAPE = 4, (1, 8, 8)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    make_tiny_dataset(path)
    return str(path)


@pytest.fixture(scope="module")
def teacher(tiny_path, tmp_path_factory):
    """A tiny DDPM checkpoint (a few steps: the weights only need to be non-trivial)."""
    cfg = {"data": tiny_path, "method": {"name": "ddpm", "T": 100}, "net": dict(TINY_NET),
           "train": {"steps": 6, "batch_size": 4, "warmup": 1, "lr": 1e-2, "ckpt_every": 6, "log_every": 6}}
    return str(train(cfg, tmp_path_factory.mktemp("teacher")))


def run_config(tiny_path, name, **knobs):
    return {"data": tiny_path, "method": {"name": name, "T": 100, **knobs}, "net": dict(TINY_NET),
            "train": {"steps": 2, "batch_size": B, "warmup": 1, "lr": 1e-3}}


def contract_knobs(name, teacher_path):
    return {"cd": {"teacher": teacher_path, "N": 6},
            "e2ed2": {"teacher": teacher_path, "lambda_adv": 0.1, "r1_gamma": 1.0}}.get(name, {})


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = tokenize([f"a blob of class {i}" for i in range(B)], TINY_NET["vocab_size"], TINY_NET["max_tokens"])
    return Batch(torch.rand((B, *SHAPE), generator=g) * 2 - 1, tokens, torch.arange(B))


def unzero(net, seed=0):
    """Give the zero-initialised output layers random weights so outputs depend on the input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


# ---- registry contract ------------------------------------------------------------------
@pytest.mark.parametrize("name", method_names())
def test_registry_contract(name, tiny_path, teacher, tmp_path):
    cfg = run_config(tiny_path, name, **contract_knobs(name, teacher))
    trainer = Trainer(cfg, load_dataset(tiny_path))
    method = trainer.method
    assert method.name == name and set(method.phases) <= {"main", "disc"} and method.phases[-1] == "main"
    b = batch()
    if getattr(method, "trainable", True):
        for phase in method.phases:
            loss = method.loss(b, torch.Generator().manual_seed(1), phase)
            assert loss.shape == (B,) and torch.isfinite(loss).all()
            params = method.phase_parameters(phase)
            for p in params:
                p.grad = None
            loss.mean().backward()
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params), f"{name}/{phase}: no gradient"
        trainer.step()
        trainer.step()
    else:
        with pytest.raises(RuntimeError, match="no training of its own"):
            method.loss(b, torch.Generator().manual_seed(1))
    # sampling: shape, finite, range after the uint8 conversion, every NFE of the workflow
    z = torch.randn((B, *SHAPE), generator=torch.Generator().manual_seed(2))
    for steps in (1, 2, 4):
        with torch.no_grad():
            x = method.sample(z, b.tokens, steps, generator=torch.Generator().manual_seed(3))
        assert x.shape == (B, *SHAPE) and torch.isfinite(x).all()
        u = to_uint8(x)
        assert u.dtype.name == "uint8" and u.shape == (B, *SHAPE)
    # checkpoint round trip through the registry: same knobs, same weights, same samples
    save_checkpoint(trainer.state(), tmp_path / "c.pt")
    loaded, ckpt = load_method(tmp_path / "c.pt", ema=False)
    assert type(loaded) is type(method) and loaded.cfg == method.cfg and ckpt["config"]["method"]["name"] == name
    if name in ("e2ed2", "cd", "ct"):  # every knob, defaults included, is in the checkpoint
        assert ckpt["extra"]["method_config"] == method.cfg
    with torch.no_grad():
        a = method.sample(z, b.tokens, 2, generator=torch.Generator().manual_seed(3))
        c = loaded.sample(z, b.tokens, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, c, rtol=0, atol=0)


# ---- E2ED² ----------------------------------------------------------------------------
def e2ed2(tiny_path, **knobs):
    torch.manual_seed(0)
    m = build_method(run_config(tiny_path, "e2ed2", init="scratch", **knobs))
    unzero(m.net)
    return m


@pytest.mark.parametrize("checkpointing", [True, False])
def test_e2ed2_gradients_reach_first_step(tiny_path, checkpointing):
    """z enters only the first of K=3 steps: ∂L/∂z ≠ 0 iff gradients flow through every step."""
    m = e2ed2(tiny_path, steps=3, checkpointing=checkpointing)
    b = batch()
    z = torch.randn((B, *SHAPE), generator=torch.Generator().manual_seed(0)).requires_grad_()
    m.generate(z, b.tokens, b.x).square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert m.net.conv_in.weight.grad.abs().sum() > 0


def test_e2ed2_checkpointing_gives_the_same_gradients(tiny_path):
    grads = []
    for ckpt in (True, False):
        m = e2ed2(tiny_path, steps=3, checkpointing=ckpt)
        m.loss(batch(), torch.Generator().manual_seed(5)).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.net.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_e2ed2_backprop_last_truncates(tiny_path):
    m = e2ed2(tiny_path, steps=3, backprop_last=1)
    b = batch()
    z = torch.randn((B, *SHAPE), generator=torch.Generator().manual_seed(0)).requires_grad_()
    m.generate(z, b.tokens, b.x).square().sum().backward()
    assert z.grad is None  # the graph is cut before the last step
    assert m.net.conv_in.weight.grad.abs().sum() > 0  # the last step still trains the net


def test_leaky_and_pure_starts(tiny_path):
    """pure: x_vp = z (no data); leaky: x_vp = sqrt(ᾱ_T)·x₀ + sqrt(1 − ᾱ_T)·z, same z."""
    pure, leaky = e2ed2(tiny_path), e2ed2(tiny_path, start="leaky")
    b, z = batch(), torch.randn((B, *SHAPE), generator=torch.Generator().manual_seed(0))
    sigma_max = pure.sigmas(2)[0]
    ab_T = float(1 / (1 + sigma_max.double() ** 2))
    c_in = ab_T**0.5
    x_pure, x_leaky = pure.start(z, b.x, sigma_max), leaky.start(z, b.x, sigma_max)
    torch.testing.assert_close(x_pure * c_in, z)
    torch.testing.assert_close(x_leaky * c_in, ab_T**0.5 * b.x + (1 - ab_T) ** 0.5 * z)
    # the generator: pure ignores x₀, leaky does not
    other = batch(seed=9).x
    with torch.no_grad():
        assert torch.equal(pure.generate(z, b.tokens, b.x), pure.generate(z, b.tokens, other))
        assert not torch.equal(leaky.generate(z, b.tokens, b.x), leaky.generate(z, b.tokens, other))


def test_e2ed2_samples_through_its_training_chain(tiny_path):
    m = e2ed2(tiny_path, steps=2, sampler="euler")
    assert m.default_sampler == "euler"
    b, z = batch(), torch.randn((B, *SHAPE), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(m.sample(z, b.tokens, 2), m.generate(z, b.tokens), rtol=0, atol=0)
    clipped = e2ed2(tiny_path, steps=2, clip_denoised=True)
    sigma = clipped.sigmas(2)[:1].expand(B)
    with torch.no_grad():
        assert m.denoiser()(50 * z, sigma, b.tokens).abs().max() > 1  # guard: unclipped leaves the range
        assert clipped.denoiser()(50 * z, sigma, b.tokens).abs().max() <= 1
        assert clipped.sample(z, b.tokens, 2).abs().max() <= 1


def test_e2ed2_adversarial_phases_are_separate(tiny_path):
    m = e2ed2(tiny_path, lambda_adv=0.5, r1_gamma=1.0)
    assert m.phases == ("disc", "main")
    disc, gen = set(m.phase_parameters("disc")), set(m.phase_parameters("main"))
    assert disc and gen and not disc & gen
    m.loss(batch(), torch.Generator().manual_seed(0), "disc").mean().backward()
    assert all(p.grad is None for p in m.net.parameters())  # fakes are detached in the disc phase
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.disc.parameters())
    assert e2ed2(tiny_path).phases == ("main",) and not hasattr(e2ed2(tiny_path), "disc")


def test_e2ed2_teacher_init_and_pairing(tiny_path, teacher):
    t, _ = load_method(teacher)
    m = build_method(run_config(tiny_path, "e2ed2", teacher=teacher, pairing="teacher", teacher_steps=4))
    assert all(torch.equal(a, b) for a, b in zip(m.net.state_dict().values(), t.net.state_dict().values()))
    loss = m.loss(batch(), torch.Generator().manual_seed(0))
    assert loss.shape == (B,) and torch.isfinite(loss).all()


def test_bad_knobs_and_missing_teacher_fail_clearly(tiny_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher checkpoint not found: .*missing.pt"):
        build_method(run_config(tiny_path, "e2ed2", teacher=str(tmp_path / "missing.pt")))
    with pytest.raises(ValueError, match="knob 'teacher'"):
        build_method(run_config(tiny_path, "cd"))
    with pytest.raises(ValueError, match="perceptual backend 'lpipz'"):
        build_method(run_config(tiny_path, "e2ed2", init="scratch", perceptual="lpipz"))
    with pytest.raises(ValueError, match="start must be"):
        build_method(run_config(tiny_path, "e2ed2", init="scratch", start="dirty"))


# ---- perceptual backends ---------------------------------------------------------------
def test_lpips_without_backbone_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"hub/checkpoints/alexnet-owt-7be5be79\.pth"):
        build_perceptual("lpips")


@pytest.mark.parametrize("name", ["mslap", "lpips-randalex"])
def test_offline_perceptual_backends(name):
    x = torch.rand((2, 1, 32, 32)) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    state = torch.get_rng_state()
    loss = build_perceptual(name)
    assert torch.equal(state, torch.get_rng_state())  # never consumes the training RNG
    same, diff = loss(x, x), loss(x, y)
    assert same.shape == diff.shape == (2,)
    assert same.abs().max() < 1e-6 and (diff > 1e-4).all()
    torch.testing.assert_close(build_perceptual(name)(x, y), diff)  # same features every build


# ---- consistency models ----------------------------------------------------------------
class PointMass(torch.nn.Module):
    """Data = the single image c. Exact denoiser D = c; exact consistency function
    f(x, σ) = c + σ_min/σ·(x − c) (ODE trajectories are c + σ·z)."""

    def __init__(self, c, sigma_min=None):
        super().__init__()
        self.c, self.sigma_min = c, sigma_min

    def forward(self, x, sigma, cond=None):
        s = sigma.to(x.dtype).view(-1, 1, 1, 1)
        return self.c.expand_as(x) if self.sigma_min is None else self.c + self.sigma_min / s * (x - self.c)


@pytest.mark.parametrize("name", ["cd", "ct"])
def test_consistency_loss_zero_on_a_consistent_function(name, tiny_path, teacher, monkeypatch):
    m = build_method(run_config(tiny_path, name, **({"teacher": teacher, "solver": "euler"} if name == "cd" else {"total_steps": 10})))
    if name == "ct":
        m.k.fill_(5)  # a mid-curriculum N(k) > 2
    c = torch.rand((1, *SHAPE)) * 2 - 1
    b = batch()
    b.x = c.expand(B, *SHAPE).clone()
    f = PointMass(c, m.sigma_min)
    monkeypatch.setattr(m, "denoiser", lambda net=None: f)  # online and target agree on f
    monkeypatch.setattr(m, "teacher_denoiser", lambda device: PointMass(c), raising=False)
    loss = m.loss(b, torch.Generator().manual_seed(0))
    assert loss.abs().max() < 1e-5
    # guard: a target that disagrees gives a positive loss
    g = PointMass(c + 0.1, m.sigma_min)
    monkeypatch.setattr(m, "denoiser", lambda net=None: f if net is m.net else g)
    assert (m.loss(b, torch.Generator().manual_seed(0)) > 1e-3).all()


def test_consistency_boundary_and_schedule(tiny_path, teacher):
    m = build_method(run_config(tiny_path, "cd", teacher=teacher))
    t, _ = load_method(teacher)
    assert all(torch.equal(a, b) for a, b in zip(m.net.state_dict().values(), t.net.state_dict().values()))
    unzero(m.net)
    x = torch.randn((B, *SHAPE))
    f = m.denoiser()
    torch.testing.assert_close(f(x, torch.full((B,), m.sigma_min, dtype=torch.float64)), x)  # f(x, σ_min) = x
    assert not torch.allclose(f(x, torch.full((B,), 10.0, dtype=torch.float64)), x)
    assert ct_schedule(0, 100) == (2, pytest.approx(0.9))
    assert ct_schedule(100, 100)[0] == 151 and ct_schedule(50, 100)[0] < 151
    s = m.sigmas(2)
    assert len(s) == 3 and float(s[0]) == pytest.approx(m.sigma_max) and s[1] > m.sigma_min and s[2] == 0


def test_ct_target_is_an_ema_and_curriculum_advances(tiny_path):
    cfg = run_config(tiny_path, "ct", total_steps=10)
    trainer = Trainer(cfg, load_dataset(tiny_path))
    m = trainer.method
    before = [p.clone() for p in m.target.parameters()]
    trainer.step()
    assert int(m.k) == 1
    moved = [not torch.equal(a, b) for a, b in zip(before, m.target.parameters())]
    assert any(moved)
    assert not all(torch.equal(a, b) for a, b in zip(m.target.parameters(), m.net.parameters()))


# ---- DDIM --------------------------------------------------------------------------------
def test_ddim_is_the_ddpm_checkpoint_under_the_ddim_sampler(teacher):
    ddpm, _ = load_method(teacher)
    ddim = from_ddpm_checkpoint(teacher)
    assert ddim.name == "ddim" and ddim.default_sampler == "ddim"
    sd_a, sd_b = ddpm.state_dict(), ddim.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)  # no retraining
    z = torch.randn((B, *SHAPE), generator=torch.Generator().manual_seed(0))
    tokens = batch().tokens
    with torch.no_grad():
        for steps in (1, 4, 25):
            x_ddim = ddim.sample(z, tokens, steps)
            torch.testing.assert_close(x_ddim, ddpm.sample(z, tokens, steps, sampler="ddim"), rtol=0, atol=0)
        ancestral = ddpm.sample(z, tokens, 4, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(ancestral, ddim.sample(z, tokens, 4))  # guard: the samplers differ
