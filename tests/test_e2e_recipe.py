"""E2ED² recipe knobs: OT pairing, VQGAN's adaptive adversarial weight, the discriminator schedule,
the teacher-feature discriminator, the regression schedule, diagnostics — and the default path
unchanged (bitwise) by them."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import pytest
import torch
from torch import nn

from e2ed2.checkpoint import save_checkpoint
from e2ed2.data import load_dataset
from e2ed2.discriminator import TeacherFeatureDiscriminator
from e2ed2.losses.adversarial import adaptive_weight, d_hinge, g_hinge, r1_penalty
from e2ed2.losses.distance import distance
from e2ed2.methods import Batch, build_method, load_method
from e2ed2.methods.e2ed2 import rec_weight
from e2ed2.pairing import ot_permutation
from e2ed2.text import tokenize
from e2ed2.train import Trainer, main as train_main, train
from tests.conftest import TINY_NET, make_tiny_dataset

B, SHAPE = 4, (1, 8, 8)
EDM = {"schedule": "edm", "precond": "edm"}


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    make_tiny_dataset(path)
    return str(path)


@pytest.fixture(scope="module")
def teacher(tiny_path, tmp_path_factory):
    """A tiny EDM checkpoint (a few steps: the weights only need to be non-trivial)."""
    cfg = {"data": tiny_path, "method": {"name": "edm"}, "net": dict(TINY_NET),
           "train": {"steps": 6, "batch_size": 4, "warmup": 1, "lr": 1e-2, "ckpt_every": 6, "log_every": 6}}
    return str(train(cfg, tmp_path_factory.mktemp("teacher")))


def run_config(tiny_path, steps=4, **knobs):
    return {"data": tiny_path, "method": {"name": "e2ed2", **knobs}, "net": dict(TINY_NET),
            "train": {"steps": steps, "batch_size": B, "warmup": 1, "lr": 1e-2, "log_every": 1}}


def scratch(tiny_path, **knobs):
    """An E2ED² method at random (output layers un-zeroed so outputs depend on the input)."""
    torch.manual_seed(0)
    m = build_method(run_config(tiny_path, init="scratch", **{"T": 100, **knobs}))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.net.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def batch(n=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = tokenize([f"a blob of class {i}" for i in range(n)], TINY_NET["vocab_size"], TINY_NET["max_tokens"])
    return Batch(torch.rand((n, *SHAPE), generator=g) * 2 - 1, tokens, torch.arange(n))


def params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# ---- (a) minibatch OT pairing ------------------------------------------------------------------
def total_cost(z, x, perm):
    return float((z.double() - x[perm].double()).flatten(1).pow(2).sum())


def test_ot_permutation_lowers_the_cost_and_is_scale_free():
    g = torch.Generator().manual_seed(0)
    z, x = torch.randn(32, *SHAPE, generator=g), torch.rand(32, *SHAPE, generator=g) * 2 - 1
    perm = ot_permutation(z, x)
    assert sorted(perm.tolist()) == list(range(32)) and perm.dtype == torch.long
    identity = torch.arange(32)
    assert total_cost(z, x, perm) < total_cost(z, x, identity) - 1.0
    # the prior σ_max·z pairs the same way as z (module docstring): only Σ⟨z_i, x_π(i)⟩ depends on π
    assert torch.equal(ot_permutation(80.0 * z, x), perm)


@pytest.mark.parametrize("n", [1, 2, 5, 6])
def test_ot_permutation_equals_brute_force(n):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        z, x = torch.randn(n, *SHAPE, generator=g), torch.rand(n, *SHAPE, generator=g)
        best = min(itertools.permutations(range(n)), key=lambda p: total_cost(z, x, torch.tensor(p)))
        assert ot_permutation(z, x).tolist() == list(best)


# ---- (b) VQGAN's adaptive weight ---------------------------------------------------------------
def test_adaptive_weight_is_the_gradient_norm_ratio_at_the_last_layer():
    """y = W·h + b (the last layer); rec = mean((y − t)²) and adv = −mean(y) have closed-form
    gradients in W: 2/N·(y − t)ᵀh and −1/N·Σ_n 1ᵀh_n."""
    g = torch.Generator().manual_seed(0)
    trunk, last = nn.Linear(5, 4), nn.Linear(4, 3)
    x, t = torch.randn(6, 5, generator=g), torch.randn(6, 3, generator=g)
    h = torch.tanh(trunk(x))
    y = last(h)
    rec, adv = (y - t).pow(2).mean(), -y.mean()
    N = y.numel()
    g_rec = 2 / N * (y - t).T @ h
    g_adv = -torch.ones(3, 6) @ h / N
    expected = g_rec.norm() / (g_adv.norm() + 1e-4)
    lam = adaptive_weight(rec, adv, last.weight, max_weight=1e4)
    torch.testing.assert_close(lam, expected.detach())
    assert lam.grad_fn is None and not lam.requires_grad
    assert float(adaptive_weight(rec, adv, last.weight, max_weight=0.01)) == pytest.approx(0.01)  # clamped
    (rec + lam * adv).backward()  # the graphs are kept for the caller's backward
    assert last.weight.grad is not None


def test_adaptive_weight_in_the_method(tiny_path):
    m = scratch(tiny_path, lambda_adv=0.5, adv_weight="adaptive")
    m.loss(batch(), torch.Generator().manual_seed(1)).mean().backward()  # through the checkpointed chain again
    assert m.net.conv_out.weight.grad.abs().sum() > 0
    lam = m.step_stats()["lambda_adv_eff"]
    assert math.isfinite(lam) and lam > 0 and lam != 0.5
    capped = scratch(tiny_path, lambda_adv=0.5, adv_weight="adaptive", adv_weight_max=1e-3)
    capped.loss(batch(), torch.Generator().manual_seed(1))
    assert capped.step_stats()["lambda_adv_eff"] == pytest.approx(0.5e-3)


# ---- (c) the teacher-feature discriminator -----------------------------------------------------
def teacher_disc_config(tiny_path, teacher, **knobs):
    return run_config(tiny_path, teacher=teacher, lambda_adv=0.5, disc="teacher", r1_gamma=1.0, **EDM, **knobs)


def test_teacher_discriminator_never_updates_the_teacher(tiny_path, teacher):
    trainer = Trainer(teacher_disc_config(tiny_path, teacher, lambda_rec=0.0, lambda_perc=0.0),
                      load_dataset(tiny_path))
    m = trainer.method
    assert isinstance(m.disc, TeacherFeatureDiscriminator) and bool(m.disc.teacher_loaded)
    frozen, _ = load_method(teacher)  # the teacher's EMA weights, as build_training loads them
    source = frozen.net.state_dict()
    trunk0, heads0 = m.disc.trunk.state_dict(), params(m.disc.heads)
    assert all(torch.equal(v, source[k]) for k, v in trunk0.items())
    in_optim = {id(p) for o in trainer.optims.values() for grp in o.param_groups for p in grp["params"]}
    assert not in_optim & {id(p) for p in m.disc.trunk.parameters()}
    assert {id(p) for p in m.disc.heads.parameters()} <= in_optim
    # only the adversarial term is on: gradients reach the generator through the frozen encoder
    m.loss(batch(), torch.Generator().manual_seed(0)).mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.net.parameters())
    assert all(p.grad is None for p in m.disc.trunk.parameters())
    m.zero_grad(set_to_none=True)
    trainer.method.train()
    for _ in range(3):
        stats = trainer.step()
    assert {"loss_disc", "loss_main", "d_acc_real", "d_acc_fake", "d_logit_gap"} <= set(stats)
    assert all(math.isfinite(v) for v in stats.values())
    assert not m.disc.trunk.training
    assert all(torch.equal(v, trunk0[k]) for k, v in m.disc.trunk.state_dict().items())  # bitwise unchanged
    assert not same(params(m.disc.heads), heads0)  # the heads trained


def test_teacher_discriminator_checkpoint_samples_without_the_teacher_file(tiny_path, teacher, tmp_path):
    own = tmp_path / "teacher.pt"
    shutil.copy(teacher, own)
    trainer = Trainer(teacher_disc_config(tiny_path, str(own)), load_dataset(tiny_path))
    trainer.step()
    save_checkpoint(trainer.state(), tmp_path / "c.pt")
    own.unlink()
    loaded, _ = load_method(tmp_path / "c.pt", ema=False)
    assert bool(loaded.disc.teacher_loaded)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), trainer.method.state_dict().values()))
    z = torch.randn((B, *SHAPE), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.isfinite(loaded.sample(z, batch().tokens, 2)).all()


def test_teacher_discriminator_needs_the_teacher(tiny_path):
    from e2ed2.config import ConfigError

    with pytest.raises(ConfigError, match="disc 'teacher' .* set init: teacher and teacher: PATH"):
        build_method(run_config(tiny_path, init="scratch", lambda_adv=0.5, disc="teacher", **EDM))


# ---- (d) the discriminator schedule ------------------------------------------------------------
def test_disc_warmup_freezes_the_generator_and_disc_steps_repeat_d(tiny_path):
    trainer = Trainer(run_config(tiny_path, init="scratch", T=100, lambda_adv=0.5, disc_warmup=2, disc_steps=2),
                      load_dataset(tiny_path))
    m = trainer.method
    assert m.phases == ("disc", "main") and set(trainer.optims) == {"disc", "main"}
    net0, disc0 = params(m.net), params(m.disc)
    for _ in range(2):
        stats = trainer.step()
        assert "loss_main" not in stats and "loss_disc" in stats
    assert same(params(m.net), net0)  # warm-up: the generator does not move
    assert not same(params(m.disc), disc0)  # while D trains
    d_opt = trainer.optims["disc"]
    assert all(int(d_opt.state[p]["step"]) == 4 for p in m.disc.parameters())  # 2 D updates per iteration
    stats = trainer.step()
    assert "loss_main" in stats and not same(params(m.net), net0)
    assert m.begin_step(1, 10) == ("disc", "disc") and m.begin_step(2, 10) == ("disc", "disc", "main")


@pytest.mark.parametrize("disc_steps,warmup", [(1, 0), (2, 1)])
def test_disc_fakes_reuse_runs_one_chain_per_iteration(tiny_path, disc_steps, warmup):
    """disc_fakes: reuse — the generator phase uses the x̂ the last D phase scored (detached there):
    K fewer UNet calls per iteration (the last D phase's own chain); D still trains and G still moves;
    an iteration without a generator phase (warm-up) keeps no graph."""
    K = 2
    knobs = dict(init="scratch", T=100, lambda_adv=0.5, steps=K, disc_steps=disc_steps, disc_warmup=warmup)
    calls = {}
    for fakes in ("fresh", "reuse"):
        trainer = Trainer(run_config(tiny_path, disc_fakes=fakes, **knobs), load_dataset(tiny_path))
        m, counted = trainer.method, []
        m.net.register_forward_hook(lambda *_, seen=counted: seen.append(1))
        for _ in range(warmup + 1):
            n0, net0, disc0 = len(counted), params(m.net), params(m.disc)
            stats = trainer.step()
            assert m._chain is None  # nothing kept past its iteration
            assert not same(params(m.disc), disc0) and math.isfinite(stats["loss_disc"])
        assert "loss_main" in stats and not same(params(m.net), net0)
        calls[fakes] = len(counted) - n0
    assert calls["fresh"] - calls["reuse"] == K  # the last D phase's own K-step chain is gone


# ---- (e) OT pairing keeps each caption with its image ------------------------------------------
def test_ot_pairing_keeps_captions_with_their_images(tiny_path, monkeypatch):
    m = scratch(tiny_path, pairing="ot", lambda_perc=0.0)
    b = batch(n=8, seed=3)
    seen = []
    generate = m.generate

    def recording(z, cond, x0=None, generator=None, steps=None):
        x_hat = generate(z, cond, x0, generator, steps)
        seen.append((z, cond, x0, x_hat))
        return x_hat

    monkeypatch.setattr(m, "generate", recording)
    loss = m.loss(b, torch.Generator().manual_seed(4))
    z, cond, x0, x_hat = seen[0]
    perm = ot_permutation(z, b.x)
    assert not torch.equal(perm, torch.arange(8))  # guard: the pairing moved something
    torch.testing.assert_close(x0, b.x[perm], rtol=0, atol=0)  # z_i is paired with its OT datum
    for i in range(8):  # caption i is the caption of the image at row i
        j = next(j for j in range(8) if torch.equal(b.x[j], x0[i]))
        assert torch.equal(cond[i], b.tokens[j])
    torch.testing.assert_close(loss, distance(x_hat, x0), rtol=0, atol=0)  # the target is that datum


# ---- (f) the defaults are today's E2ED², bitwise -----------------------------------------------
def old_loss(m, b: Batch, generator, phase="main"):
    """E2ED2.loss as it was before the recipe knobs (data pairing, conv D), copied."""
    x0, c, cfg = b.x, b.tokens, m.cfg
    z = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    if phase == "disc":
        with torch.no_grad():
            fake = m.generate(z, c, x0, generator)
        gamma = cfg.r1_gamma
        real = x0.detach().requires_grad_(gamma > 0)
        real_logits = m.disc(real, b.tokens)
        loss = d_hinge(real_logits, m.disc(fake, c))
        if gamma > 0:
            loss = loss + gamma / 2 * r1_penalty(real_logits, real)
        return loss
    x_hat = m.generate(z, c, x0, generator)
    loss = cfg.lambda_rec * distance(x_hat, x0, cfg.rec_distance)
    if m.perceptual is not None:
        loss = loss + cfg.lambda_perc * m.perceptual(x_hat, x0)
    if cfg.lambda_adv > 0:
        loss = loss + cfg.lambda_adv * g_hinge(m.disc(x_hat, c))
    return loss


@pytest.mark.parametrize("knobs", [{}, {"lambda_adv": 0.5, "r1_gamma": 1.0}, {"lambda_adv": 0.2, "start": "leaky"}])
def test_default_knobs_give_the_old_loss_bitwise(tiny_path, knobs):
    m = scratch(tiny_path, **knobs)
    for phase in m.phases:
        new = m.loss(batch(), torch.Generator().manual_seed(1), phase)
        new.mean().backward()
        g_new = [p.grad.clone() if p.grad is not None else None for p in m.parameters()]
        m.zero_grad(set_to_none=True)
        old = old_loss(m, batch(), torch.Generator().manual_seed(1), phase)
        old.mean().backward()
        g_old = [p.grad.clone() if p.grad is not None else None for p in m.parameters()]
        m.zero_grad(set_to_none=True)
        assert torch.equal(new, old), phase
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g_new, g_old)), phase


# ---- regression schedule, diagnostics, knob listing ---------------------------------------------
def test_rec_schedules():
    from e2ed2.methods.e2ed2 import E2ED2Config

    for kind in ("cosine_decay", "linear_decay"):
        cfg = E2ED2Config(lambda_rec=2.0, rec_schedule=kind, rec_final=0.25)
        assert rec_weight(cfg, 0, 101) == 2.0 and rec_weight(cfg, 100, 101) == pytest.approx(0.5)
        assert rec_weight(cfg, 50, 101) == pytest.approx(1.25)  # both pass the midpoint at (1 + f)/2
        assert rec_weight(cfg, 25, 101) > rec_weight(cfg, 75, 101)
    cos, lin = (E2ED2Config(rec_schedule=k) for k in ("cosine_decay", "linear_decay"))
    assert rec_weight(cos, 25, 101) > rec_weight(lin, 25, 101)  # cosine decays slower at first
    assert rec_weight(E2ED2Config(lambda_rec=3.0), 99, 100) == 3.0


def test_gradient_diagnostics_are_logged_and_change_nothing(tiny_path):
    runs = {}
    for every in (0, 1):
        cfg = run_config(tiny_path, init="scratch", T=100, lambda_adv=0.5, diag_every=every)
        torch.manual_seed(0)
        trainer = Trainer(cfg, load_dataset(tiny_path))
        runs[every] = ([trainer.step() for _ in range(2)], params(trainer.method))
    stats_off, stats_on = runs[0][0][-1], runs[1][0][-1]
    assert not {"gx_rec", "gx_perc", "gx_adv"} & set(stats_off)
    assert all(stats_on[k] > 0 and math.isfinite(stats_on[k]) for k in ("gx_rec", "gx_perc", "gx_adv"))
    assert same(runs[0][1], runs[1][1])  # the extra backward passes change no weight
    assert {k: v for k, v in stats_on.items() if not k.startswith("gx_")} == stats_off


def test_list_knobs_shows_the_recipe_knobs(capsys):
    assert train_main(["--list-knobs", "e2ed2"]) == 0
    out = capsys.readouterr().out
    for k in ("pairing = 'data'", "adv_weight = 'fixed'", "adv_weight_max", "disc = 'conv'", "disc_sigma_mean",
              "disc_sigma_std", "disc_steps = 1", "disc_warmup = 0", "rec_schedule = 'constant'", "rec_final",
              "diag_every = 0", "'ot'"):
        assert k in out, k


def test_recipe_knobs_resume_bitwise(tiny_path, teacher, tmp_path):
    """The schedules follow the loop's step (begin_step), so kill + resume equals an uninterrupted run."""
    cfg = teacher_disc_config(tiny_path, teacher, pairing="ot", adv_weight="adaptive", disc_warmup=1, disc_steps=2,
                              rec_schedule="cosine_decay", rec_final=0.1)
    cfg["train"].update(steps=4, ckpt_every=2)
    full = torch.load(train(cfg, tmp_path / "full"), weights_only=True)
    train(cfg, tmp_path / "resumed", stop_after=2)
    resumed = torch.load(train(cfg, tmp_path / "resumed"), weights_only=True)
    assert all(torch.equal(v, resumed["state_dict"][k]) for k, v in full["state_dict"].items())

    def log(run):  # the logged training values, without timings
        lines = (tmp_path / run / "stats.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k.startswith(("loss", "grad", "lambda", "d_"))}
                for line in lines]

    assert log("full") == log("resumed") and "lambda_rec_eff" in log("full")[-1]
