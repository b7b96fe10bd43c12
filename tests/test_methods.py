"""E2ED² and the baselines: registry contract, E2ED² gradients/starts/phases, consistency
losses, perceptual backends, and DDIM = the DDPM checkpoint under the DDIM sampler."""

from __future__ import annotations

import pytest
import torch

from e2ed2.checkpoint import save_checkpoint
from e2ed2.config import ConfigError
from e2ed2.data import load_dataset, to_uint8
from e2ed2.losses import build_perceptual
from e2ed2.methods import Batch, build_method, build_training, load_method, method_names
from e2ed2.methods.consistency import ct_grid_size, lognormal_index_probs
from e2ed2.methods.diffusion import DDIM
from e2ed2.text import tokenize
from e2ed2.train import Trainer, train
from tests.conftest import TINY_NET, make_tiny_dataset

B, SHAPE = 4, (1, 8, 8)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    make_tiny_dataset(path)
    return str(path)


EDM = {"schedule": "edm", "precond": "edm"}


@pytest.fixture(scope="module")
def teacher(tiny_path, tmp_path_factory):
    """A tiny EDM checkpoint (a few steps: the weights only need to be non-trivial)."""
    cfg = {"data": tiny_path, "method": {"name": "edm"}, "net": dict(TINY_NET),
           "train": {"steps": 6, "batch_size": 4, "warmup": 1, "lr": 1e-2, "ckpt_every": 6, "log_every": 6}}
    return str(train(cfg, tmp_path_factory.mktemp("teacher")))


def run_config(tiny_path, name, **knobs):
    return {"data": tiny_path, "method": {"name": name, **knobs}, "net": dict(TINY_NET),
            "train": {"steps": 2, "batch_size": B, "warmup": 1, "lr": 1e-3}}


def contract_knobs(name, teacher_path):
    return {"cd": {"teacher": teacher_path, "N": 6, **EDM},
            "e2ed2": {"teacher": teacher_path, "lambda_adv": 0.1, "r1_gamma": 1.0, **EDM}}.get(name, {"T": 100})


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
    if method.trainable:
        for phase in method.phases:
            loss = method.loss(b, torch.Generator().manual_seed(1), phase, teacher=trainer.teacher)
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
    # checkpoint round trip through the registry: same typed config, same weights, same samples
    save_checkpoint(trainer.state(), tmp_path / "c.pt")
    loaded, ckpt = load_method(tmp_path / "c.pt", ema=False)
    assert type(loaded) is type(method) and loaded.cfg == method.cfg and ckpt["config"]["method"]["name"] == name
    assert ckpt["config"]["method"] == method.config_dict()  # every knob, defaults included
    with torch.no_grad():
        a = method.sample(z, b.tokens, 2, generator=torch.Generator().manual_seed(3))
        c = loaded.sample(z, b.tokens, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, c, rtol=0, atol=0)


# ---- E2ED² ----------------------------------------------------------------------------
def e2ed2(tiny_path, **knobs):
    torch.manual_seed(0)
    m = build_method(run_config(tiny_path, "e2ed2", init="scratch", **{"T": 100, **knobs}))
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
    m, frozen = build_training(run_config(tiny_path, "e2ed2", teacher=teacher, pairing="teacher", teacher_steps=4,
                                          **EDM))
    assert all(torch.equal(a, b) for a, b in zip(m.net.state_dict().values(), t.net.state_dict().values()))
    assert frozen is not None and not any(p.requires_grad for p in frozen.parameters())
    loss = m.loss(batch(), torch.Generator().manual_seed(0), teacher=frozen)
    assert loss.shape == (B,) and torch.isfinite(loss).all()
    with pytest.raises(ValueError, match="pairing 'teacher' needs the frozen teacher"):
        m.loss(batch(), torch.Generator().manual_seed(0))
    # init from the teacher without pairing: the teacher is not kept for the loss
    assert build_training(run_config(tiny_path, "e2ed2", teacher=teacher, **EDM))[1] is None


def test_bad_knobs_and_missing_teacher_fail_clearly(tiny_path, tmp_path, teacher):
    with pytest.raises(FileNotFoundError, match="teacher checkpoint not found: .*missing.pt"):
        build_training(run_config(tiny_path, "e2ed2", teacher=str(tmp_path / "missing.pt"), **EDM))
    with pytest.raises(ConfigError, match="teacher .* has schedule='edm' but this method has schedule='linear'"):
        build_training(run_config(tiny_path, "cd", teacher=teacher))
    with pytest.raises(ConfigError, match="perceptual.*'lpipz' is not one of"):
        build_method(run_config(tiny_path, "e2ed2", init="scratch", perceptual="lpipz"))
    with pytest.raises(ConfigError, match="start.*'dirty' is not one of"):
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


@pytest.mark.parametrize("name,dist", [("cd", "l2"), ("cd", "mslap"), ("ct", "l2")])
def test_consistency_loss_zero_on_a_consistent_function(name, dist, tiny_path, teacher, monkeypatch):
    knobs = {"teacher": teacher, "solver": "euler", **EDM} if name == "cd" else {"recipe": "ct"}
    knobs["distance"] = dist
    m = build_method(run_config(tiny_path, name, **knobs))
    frozen = build_training(run_config(tiny_path, name, **knobs))[1]
    if name == "ct":
        m.k.fill_(5)
        m.total.fill_(10)  # a mid-curriculum N(k) > 2
    c = torch.rand((1, *SHAPE)) * 2 - 1
    b = batch()
    b.x = c.expand(B, *SHAPE).clone()
    f = PointMass(c, m.sigma_min)
    monkeypatch.setattr(m, "denoiser", lambda net=None: f)  # online and target agree on f
    if frozen is not None:
        monkeypatch.setattr(frozen, "denoiser", lambda net=None: PointMass(c))
    loss = m.loss(b, torch.Generator().manual_seed(0), teacher=frozen)
    assert loss.abs().max() < 1e-5
    # guard: a target that disagrees gives a positive loss
    g = PointMass(c + 0.1, m.sigma_min)
    monkeypatch.setattr(m, "denoiser", lambda net=None: f if net is m.net else g)
    assert (m.loss(b, torch.Generator().manual_seed(0), teacher=frozen) > 1e-3).all()


def test_consistency_boundary_and_schedule(tiny_path, teacher):
    m, _ = build_training(run_config(tiny_path, "cd", teacher=teacher, **EDM))
    t, _ = load_method(teacher)
    assert all(torch.equal(a, b) for a, b in zip(m.net.state_dict().values(), t.net.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(m.target.state_dict().values(), t.net.state_dict().values()))
    unzero(m.net)
    x = torch.randn((B, *SHAPE))
    f = m.denoiser()
    torch.testing.assert_close(f(x, torch.full((B,), m.sigma_min, dtype=torch.float64)), x)  # f(x, σ_min) = x
    assert not torch.allclose(f(x, torch.full((B,), 10.0, dtype=torch.float64)), x)
    s = m.sigmas(2)
    assert len(s) == 3 and float(s[0]) == pytest.approx(80.0) and s[1] > m.sigma_min and s[2] == 0
    # explicit intermediate σ (improved CT's 0.821 for two steps) replaces the Karras point, and
    # reaches the sampler: a different τ_1 gives different images from the same noise
    assert m.sigmas(2, [0.821]).tolist() == pytest.approx([80.0, 0.821, 0.0])
    with pytest.raises(ValueError, match="takes 1 intermediate"):
        m.sigmas(2, [0.821, 0.3])
    with pytest.raises(ValueError, match="descend strictly"):
        m.sigmas(3, [0.3, 0.821])
    z, c = torch.randn((B, *SHAPE)), batch().tokens
    with torch.no_grad():
        a, b = (m.sample(z, c, 2, generator=torch.Generator().manual_seed(0), mid_sigmas=v) for v in ([0.821], [5.0]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="option of the consistency sampler"):
        m.sample(z, c, 2, sampler="ddim", mid_sigmas=[0.821])


def test_ct_curricula_come_from_the_run_length():
    # ct (Song et al. 2023, App. C): N(0) = s0, N(K) = s1 + 1;  ict: doubling from s0 to s1
    assert ct_grid_size(0, 100, 2, 150, "ct") == 2 and ct_grid_size(100, 100, 2, 150, "ct") == 151
    assert ct_grid_size(50, 100, 2, 150, "ct") < 151
    sizes = [ct_grid_size(k, 800, 10, 1280, "ict") for k in (0, 99, 100, 799)]
    assert sizes == [11, 11, 21, 1281]
    assert ct_grid_size(100, 1600, 10, 1280, "ict") == 11  # the same step of a longer run is earlier
    probs = lognormal_index_probs(torch.linspace(0.002, 80, 11, dtype=torch.float64), -1.1, 2.0)
    assert probs.shape == (10,) and float(probs.sum()) == pytest.approx(1.0) and probs[0] > probs[-1]


def test_ct_target_and_curriculum_advance(tiny_path):
    cfg = run_config(tiny_path, "ct", recipe="ct")
    cfg["train"]["steps"] = 10
    trainer = Trainer(cfg, load_dataset(tiny_path))
    m = trainer.method
    before = [p.clone() for p in m.target.parameters()]
    trainer.step()
    assert int(m.k) == 1 and int(m.total) == 10
    moved = [not torch.equal(a, b) for a, b in zip(before, m.target.parameters())]
    assert any(moved)
    assert not all(torch.equal(a, b) for a, b in zip(m.target.parameters(), m.net.parameters()))


# ---- DDIM --------------------------------------------------------------------------------
def test_ddim_is_the_teacher_checkpoint_under_the_ddim_sampler(teacher):
    model, _ = load_method(teacher)
    ddim = DDIM.of(model)
    assert ddim.name == "ddim" and ddim.default_sampler == "ddim"
    sd_a, sd_b = model.net.state_dict(), ddim.net.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)  # no retraining
    z = torch.randn((B, *SHAPE), generator=torch.Generator().manual_seed(0))
    tokens = batch().tokens
    with torch.no_grad():
        for steps in (1, 4, 25):
            x_ddim = ddim.sample(z, tokens, steps)
            torch.testing.assert_close(x_ddim, model.sample(z, tokens, steps, sampler="ddim"), rtol=0, atol=0)
        ancestral = model.sample(z, tokens, 4, sampler="ddpm", generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(ancestral, ddim.sample(z, tokens, 4))  # guard: the samplers differ
