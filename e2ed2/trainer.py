"""ONE shared training loop for every method: AdamW, LR warm-up, EMA, clipping, checkpoints
(the knobs: ``e2ed2.train_config``; the CLI: ``python -m e2ed2.train``).

Resume is exact: the checkpoint holds the method, optimizers, EMA, step and every RNG state
(the loop's own generator, which draws batches, noise and condition dropout, and torch's
global RNG), so 10 steps + kill + resume to 20 equals 20 steps bitwise on CPU. Resume happens
only into a run of the same identity (``e2ed2.runs``): a folder trained with other knobs, other
data or another teacher is refused with the changed keys named, or restarted with
``on_mismatch="restart"`` (what the workflow asks for: its job reran because a knob changed).

GPU path (config switches in ``train``): ``amp: bf16`` (autocast around the loss), ``tf32``,
``compile`` (``torch.compile`` of the network's forward). DDP through torchrun: every rank
draws the same *global* batch indices from the shared loop generator and keeps its own slice,
so the global batch is the same for any rank count; the method's noise comes from a per-rank
generator (the loop generator itself on one rank), gradients are averaged over ranks, and
rank 0 alone writes checkpoints and logs (see ``e2ed2.distributed``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from . import distributed, methods, runs
from .atomic import write_json
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, as_dict
from .data import ImageDataset, load_dataset, to_model_range
from .methods import Batch, Method, RunConfig
from .nets import UNetConfig, count_parameters
from .text import tokenize
from .train_config import TrainConfig, autocast, ema_decay_at, ema_summary, warn_if_ema_decay_unused


class NonFiniteLossError(RuntimeError):
    def __init__(self, step: int, phase: str, value: float):
        super().__init__(f"non-finite {phase} loss ({value}) at step {step}; stopped before updating the weights")
        self.step = step


class Interrupted(RuntimeError):
    """Training stopped on request (its parent process died); the last checkpoint is kept."""


def training_tensor(run: RunConfig, data: ImageDataset, train: ImageDataset) -> torch.Tensor:
    """x₀ for training: the train images in [-1, 1], or their VAE latents with ``run.latent``."""
    if run.latent:
        from .latent import load_latents  # latent runs only: it pulls in the asset resolver (+0.45 s per job)

        return load_latents(run.latent, data, "train")
    return to_model_range(train.images)


class Trainer:
    """State of one training run (method, teacher, optimizers, EMA, RNG) and one ``step()``,
    built from a parsed :class:`RunConfig` (a dict is parsed here, once)."""

    def __init__(self, config: RunConfig | dict, data: ImageDataset, dist_info: distributed.DistInfo | None = None):
        self.run = RunConfig.parse(config)
        self.tc: TrainConfig = self.run.train
        self.dist = dist_info or distributed.DistInfo()
        self.rows = distributed.batch_slice(self.tc.batch_size, self.dist)
        self.device = distributed.resolve_device(self.tc.device, self.dist)
        torch.manual_seed(self.tc.seed)  # network initialisation (identical on every rank)
        method, teacher = methods.build_training(self.run)
        self.method: Method = method.to(self.device)
        self.teacher = teacher.to(self.device) if teacher is not None else None
        self.ema = copy.deepcopy(self.method.net).requires_grad_(False)
        if self.tc.compile:
            self.method.net.compile()  # in place: state_dict keys are unchanged
        self.optims = {
            phase: torch.optim.AdamW(self.method.phase_parameters(phase), lr=self.tc.lr, betas=self.tc.betas,
                                     weight_decay=self.tc.weight_decay)
            for phase in dict.fromkeys(self.method.phases)  # one optimizer per phase name
        }
        # the loop generator draws the global batch (same on every rank); the method's noise
        # comes from a per-rank generator, which on one rank is the loop generator itself
        self.generator = torch.Generator("cpu").manual_seed(self.tc.seed)
        self.method_generator = self.generator
        if self.dist.active:
            self.method_generator = torch.Generator("cpu").manual_seed(self.tc.seed + 100_003 * (self.dist.rank + 1))
        train = data.subset("train")
        if len(train) == 0:
            raise ValueError(f"{data.name}: no training images (split == 0)")
        self.images = training_tensor(self.run, data, train)
        net_cfg = self.method.net.config
        self.tokens = tokenize(list(train.captions), net_cfg.vocab_size, net_cfg.max_tokens)
        self.labels = torch.as_tensor(train.labels)
        self.step_idx = 0
        teacher_path = self.method.teacher_path()
        self.identity = runs.identity(
            self.method.config_dict(), net_cfg.to_dict(), as_dict(self.tc), self.run.data,
            latent=self.run.latent, world_size=self.dist.world_size,
            teacher=methods.teacher_identity(teacher_path) if teacher_path else None)
        self.run_hash = runs.run_hash(self.identity)

    # ---- state ------------------------------------------------------------------------
    def state(self) -> dict:
        """Checkpoint contents; under DDP a collective (every rank calls it, rank 0 saves)."""
        rng = {"loop": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.dist.active:
            rng["per_rank"] = distributed.all_gather_objects(self.method_generator.get_state())
        return {
            "method": self.method.name,
            "config": self.run.as_dict(),
            "run_hash": self.run_hash,
            "identity": self.identity,
            "step": self.step_idx,
            "world_size": self.dist.world_size,
            "state_dict": self.method.state_dict(),
            "ema": self.ema.state_dict(),
            "optim": {k: o.state_dict() for k, o in self.optims.items()},
            "rng": rng,
        }

    def check_identity(self, ckpt: dict, where) -> None:
        """Raise RunMismatchError (naming the changed keys) unless ``ckpt`` is a run of this config."""
        if ckpt.get("run_hash") == self.run_hash:
            return
        changes = runs.changed_keys(ckpt.get("identity") or {}, self.identity) or ["(checkpoint has no identity)"]
        raise runs.RunMismatchError(
            f"{where} holds a run of another configuration ({len(changes)} change(s): " + "; ".join(changes[:8])
            + (" …" if len(changes) > 8 else "") + "). Use a new output folder, or restart this one "
            "(python -m e2ed2.train --restart)")

    def load_state(self, ckpt: dict) -> None:
        if ckpt["method"] != self.method.name:
            raise ValueError(f"checkpoint is for method {ckpt['method']!r}, this run trains {self.method.name!r}")
        self.method.load_state_dict(ckpt["state_dict"])
        self.ema.load_state_dict(ckpt["ema"])
        for k, o in self.optims.items():
            o.load_state_dict(ckpt["optim"][k])
        saved_world = int(ckpt.get("world_size", 1))
        if saved_world != self.dist.world_size:
            raise ValueError(f"checkpoint was written by {saved_world} rank(s); resume it with the same "
                             f"WORLD_SIZE (this run has {self.dist.world_size}) so the RNG streams continue exactly")
        self.generator.set_state(ckpt["rng"]["loop"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if self.dist.active:
            self.method_generator.set_state(ckpt["rng"]["per_rank"][self.dist.rank])
        self.step_idx = int(ckpt["step"])

    # ---- one iteration ----------------------------------------------------------------
    def next_batch(self) -> Batch:
        g, B = self.generator, self.tc.batch_size
        idx = torch.randint(0, len(self.images), (B,), generator=g)
        tokens = self.tokens[idx].clone()
        drop = torch.rand(B, generator=g) < self.tc.cond_drop
        tokens[drop] = 0
        idx, tokens = idx[self.rows], tokens[self.rows]  # this rank's slice of the global batch
        return Batch(self.images[idx].to(self.device), tokens.to(self.device), self.labels[idx].to(self.device))

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``; then constant, or cosine decay to 0 at the last step
        (SGDR without restarts, Loshchilov & Hutter 2017)."""
        tc = self.tc
        lr = tc.lr * min(1.0, (step + 1) / max(1, tc.warmup))
        if tc.lr_schedule == "cosine" and step >= tc.warmup:
            lr *= 0.5 * (1 + math.cos(math.pi * (step - tc.warmup) / max(1, tc.steps - tc.warmup)))
        return lr

    def step(self) -> dict:
        """One iteration: the method's phases for this step in order (loss → backward → clip → AdamW;
        a repeated phase logs its last update), the method's diagnostics, then EMA."""
        batch, stats = self.next_batch(), {}
        for phase in self.method.begin_step(self.step_idx, self.tc.steps):  # a phase may repeat (E2ED²'s D)
            opt = self.optims[phase]
            for group in opt.param_groups:
                group["lr"] = self.lr_at(self.step_idx)
            with autocast(self.device, self.tc.amp):
                loss = self.method.loss(batch, self.method_generator, phase, teacher=self.teacher).mean()
            loss_global = distributed.mean_scalar(loss)  # same value (and same verdict) on every rank
            if not torch.isfinite(loss_global):
                raise NonFiniteLossError(self.step_idx + 1, phase, loss_global.item())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for grp in opt.param_groups for p in grp["params"]]
            distributed.average_gradients(params)
            norm = torch.nn.utils.clip_grad_norm_(params, self.tc.grad_clip if self.tc.grad_clip > 0 else math.inf)
            if not torch.isfinite(norm):
                raise NonFiniteLossError(self.step_idx + 1, phase + " gradient-norm", float(norm))
            opt.step()
            stats[f"loss_{phase}"], stats[f"grad_norm_{phase}"] = loss_global.item(), norm.item()
        stats.update(self.method.step_stats())
        self.method.after_step(self.step_idx, self.tc.steps)
        self.update_ema()
        self.step_idx += 1
        stats["lr"] = self.lr_at(self.step_idx - 1)
        return stats

    @torch.no_grad()
    def update_ema(self) -> None:
        """θ_ema ← d_s·θ_ema + (1 − d_s)·θ, d_s = min(decay, (1+s)/(10+s)) (``ema_decay_at``)."""
        d = ema_decay_at(self.tc.ema_decay, self.step_idx)
        for pe, p in zip(self.ema.parameters(), self.method.net.parameters()):
            pe.lerp_(p.detach(), 1 - d)
        for be, b in zip(self.ema.buffers(), self.method.net.buffers()):
            be.copy_(b)


def _save(trainer: Trainer, path: Path, info: distributed.DistInfo, ema_only: bool = False) -> None:
    """Every rank builds the state (it gathers per-rank RNG); rank 0 writes; all wait for it."""
    distributed.check_in_sync(trainer.method, f"weights at step {trainer.step_idx}")
    state = trainer.state()
    if ema_only:  # a snapshot for learning curves: enough to sample, not to resume
        state = {k: v for k, v in state.items() if k not in ("optim", "rng")}
    if info.is_main:
        save_checkpoint(state, path)
    distributed.barrier()


RUN_FILES = ("latest.pt", "final.pt", "stats.jsonl", "config.json")


def clear_run(out: Path) -> None:
    """Remove a run's outputs (checkpoints, log, snapshots) so the folder can start afresh."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "snapshots", ignore_errors=True)


def _prepare_folder(trainer: Trainer, out: Path, on_mismatch: str, info) -> bool:
    """Resume from ``latest.pt`` when it is a run of this config; otherwise refuse or restart.
    True when ``final.pt`` alone holds this config's finished run (nothing to do).
    Every rank reads the folder between two barriers, so all decide on the same files before rank 0
    clears any (or, later, writes config.json and the log); then rank 0 acts and all meet again."""
    distributed.barrier()
    try:
        clear = _folder_decision(trainer, out, on_mismatch)
    finally:
        distributed.barrier()
    if clear is FINISHED:
        return True
    if clear:
        print(f"restarting {out}: {clear}", file=sys.stderr)
        if info.is_main:
            clear_run(out)
        distributed.barrier()
    return False


FINISHED = "finished"  # _folder_decision: this config's run is complete in final.pt


def _folder_decision(trainer: Trainer, out: Path, on_mismatch: str) -> str | None:
    """Read ``out`` (no writes): load the state to resume, refuse (raise), say the run is FINISHED,
    or return why the folder must be cleared before a fresh start (None: nothing to clear)."""
    latest = out / "latest.pt"
    if latest.exists():
        try:
            ckpt = load_checkpoint(latest)
        except CheckpointError as e:  # truncated or corrupt: nothing to resume from
            if on_mismatch != "restart":
                raise CheckpointError(f"{e}; delete {latest} to start this run afresh, or pass --restart") from None
            return str(e)
        try:
            trainer.check_identity(ckpt, latest)
        except runs.RunMismatchError as e:
            if on_mismatch != "restart":
                raise
            return str(e)
        trainer.load_state(ckpt)
        return None
    # no latest.pt: training starts at step 0, so anything here belongs to an earlier run
    final = out / "final.pt"
    if final.exists() and on_mismatch != "restart":
        trainer.check_identity(load_checkpoint(final), final)  # another config: refused
        return FINISHED  # this config, already trained: final.pt stands as it is
    earlier = [p.name for p in (final, out / "stats.jsonl") if p.exists()] + \
        (["snapshots/"] if any((out / "snapshots").glob("step-*.pt")) else [])
    if not earlier:
        return None
    if on_mismatch != "restart":
        raise runs.RunMismatchError(f"{out} holds {', '.join(earlier)} of an earlier run but no latest.pt to resume "
                                    "from; use a new output folder, or clear it (python -m e2ed2.train --restart)")
    return f"no latest.pt to resume from; removing the earlier run's {', '.join(earlier)}"


def train(config: RunConfig | dict, out_dir: str | os.PathLike, on_step: Callable[[Progress], None] | None = None,
          stop_after: int | None = None, on_mismatch: Literal["error", "restart"] = "error",
          should_stop: Callable[[], bool] | None = None) -> Path:
    """Run (or resume) training into ``out_dir``; returns the final checkpoint path.

    Files: ``latest.pt`` (every ckpt_every steps), ``final.pt`` (at the end), ``stats.jsonl``,
    ``config.json`` (resolved), ``snapshots/step-<s>.pt`` (EMA, at ``train.snapshots``).
    ``on_step`` gets a :class:`Progress` after every step (rank 0; the CLI prints from it);
    ``stop_after`` ends early after that many total steps (tests); ``should_stop`` is polled
    between steps (a true answer saves latest.pt and raises :class:`Interrupted`).
    ``config``: a parsed :class:`RunConfig`, or a run config dict (parsed here).
    """
    out = Path(out_dir)
    run = RunConfig.parse(config)
    tc = run.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    # TF32 is a process-wide switch: set from the config, both ways, so runs are explicit
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tc.tf32
    info = distributed.env_info()
    distributed.init(distributed.resolve_device(tc.device, info))
    data = load_dataset(run.data)
    check_data_fits_net(run.source, data.images.shape[1:])
    trainer = Trainer(run, data, info)
    with runs.writing(out, RUN_FILES, info.is_main):  # one writer; a killed writer's temp files removed
        if _prepare_folder(trainer, out, on_mismatch, info):  # finished: write nothing, not even the log
            print(f"{out / 'final.pt'}: this configuration is trained already; nothing to do", file=sys.stderr)
            return out / "final.pt"
        if info.is_main:  # the config and the folder are accepted: say what the EMA will be
            warn_if_ema_decay_unused(tc)
            write_json(out / "config.json", {**run.source, "run_hash": trainer.run_hash, "resolved": {
                "train": as_dict(tc), "ema": ema_summary(tc), "method": trainer.method.config_dict(),
                "net": trainer.method.net.config.to_dict(),
                "parameters": count_parameters(trainer.method.net), "world_size": info.world_size}})
            runs.truncate_log(out / "stats.jsonl", trainer.step_idx)
        return _loop(trainer, out, tc, info, on_step, stop_after, should_stop)


def check_data_fits_net(config: dict, shape: tuple[int, ...]) -> None:
    """The UNet's image_channels and resolution equal the data's (pixel space): a UNet trained on
    28×28 images would sample 32×32 ones that no FID reference matches, so refuse before training.
    ``shape``: the images' (channels, height[, width]). Read from the raw net block (its defaults
    where unset), so that this — the data decides the shape — is said before the net's own checks."""
    if config.get("latent"):
        return  # the net sees the VAE's latents, not these images
    net = config.get("net") or {}
    c, h = shape[0], shape[1]
    has = {k: net.get(k, getattr(UNetConfig, k)) for k in ("image_channels", "resolution")}
    wrong = {k: v for k, v in {"image_channels": c, "resolution": h}.items() if has[k] != v}
    if wrong:
        shown = "×".join(str(d) for d in (c, h, shape[2] if len(shape) > 2 else h))
        raise ConfigError(f"data {config['data']}: images are {shown}, but the net has "
                          + ", ".join(f"{k}={has[k]}" for k in wrong) + "; set "
                          + " and ".join(f"net.{k}: {v}" for k, v in wrong.items()) + " in the run config ("
                          + " ".join(f"--set net.{k}={v}" for k, v in wrong.items()) + ")")


@dataclass(frozen=True)
class Progress:
    """Where a run is after a step: ``step`` of ``total``, ``elapsed_s`` seconds after this session
    began at ``start_step`` (a resumed run counts from its checkpoint); ``stats`` of that step."""
    step: int
    total: int
    start_step: int
    elapsed_s: float
    batch_size: int
    stats: dict

    @property
    def images_per_s(self) -> float:
        return (self.step - self.start_step) * self.batch_size / max(self.elapsed_s, 1e-9)

    @property
    def eta_s(self) -> float:
        """Seconds to ``total`` at this session's mean step rate."""
        return (self.total - self.step) * self.elapsed_s / max(self.step - self.start_step, 1)


def _loop(trainer: Trainer, out: Path, tc: TrainConfig, info, on_step, stop_after, should_stop) -> Path:
    """The steps from the resumed step to the end, with logs, checkpoints and snapshots."""
    final, latest = out / "final.pt", out / "latest.pt"
    end = tc.steps if stop_after is None else min(tc.steps, stop_after)
    t0, start = time.perf_counter(), trainer.step_idx
    t_last, steps_since = t0, 0
    with open(out / "stats.jsonl", "a") if info.is_main else contextlib.nullcontext() as log:
        while trainer.step_idx < end:
            if should_stop is not None and should_stop():
                _save(trainer, latest, info)
                raise Interrupted(f"stopped at step {trainer.step_idx}; {latest} holds it and a rerun resumes there")
            stats = trainer.step()
            steps_since += 1
            s, now = trainer.step_idx, time.perf_counter()
            progress = Progress(s, tc.steps, start, now - t0, tc.batch_size, stats)
            if log and (s % tc.log_every == 0 or s == end):
                rec = {"step": s, **stats, "sec_per_step": (now - t_last) / steps_since,
                       "images_seen": s * tc.batch_size, "total_steps": tc.steps, "eta_s": round(progress.eta_s, 1)}
                log.write(json.dumps(rec) + "\n")  # one whole line per write, flushed at once
                log.flush()
                t_last, steps_since = now, 0
            if on_step is not None and info.is_main:
                on_step(progress)
            if s in tc.snapshots:
                _save(trainer, out / "snapshots" / f"step-{s}.pt", info, ema_only=True)
            if s % tc.ckpt_every == 0 or s == end:
                _save(trainer, latest, info)
    if trainer.step_idx >= tc.steps and (start < tc.steps or not final.exists()):
        _save(trainer, final, info)  # a finished run rerun unchanged leaves its final.pt as it is
    return final
