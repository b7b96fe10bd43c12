"""ONE shared training loop for every method: AdamW, LR warm-up, EMA, clipping, checkpoints.

Resume is exact: the checkpoint holds the method, optimizers, EMA, step and every RNG state
(the loop's own generator, which draws batches, noise and condition dropout, and torch's
global RNG), so 10 steps + kill + resume to 20 equals 20 steps bitwise on CPU.

GPU path (config switches in ``train``): ``amp: bf16`` (autocast around the loss), ``tf32``,
``compile`` (``torch.compile`` of the network's forward). DDP through torchrun: every rank
draws the same *global* batch indices from the shared loop generator and keeps its own slice,
so the global batch is the same for any rank count; the method's noise comes from a per-rank
generator (the loop generator itself on one rank), gradients are averaged over ranks, and
rank 0 alone writes checkpoints and logs (see ``e2ed2.distributed``).

CLI: ``python -m e2ed2.train --config run.yaml --out results/run/train/ddpm [--set k=v ...]``;
multi-GPU: ``torchrun --standalone --nproc_per_node 8 -m e2ed2.train ...`` (same arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import config as config_mod
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .data import ImageDataset, load_dataset, to_model_range
from .method import Batch, Method
from .nets import count_parameters
from .registry import build_method
from .text import tokenize


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16}


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup: int = 100  # linear LR warm-up steps
    grad_clip: float = 1.0  # max global grad norm per phase (0 = off)
    ema_decay: float = 0.999  # with the warm-up min(decay, (1+s)/(10+s))
    cond_drop: float = 0.1  # P(caption dropped) for classifier-free guidance
    ckpt_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda (cuda:LOCAL_RANK under torchrun)
    threads: int = 0  # torch CPU threads (0 = leave as is)
    amp: str = "none"  # none | bf16 (autocast around the loss; weights and optimizer stay fp32)
    tf32: bool = False  # allow TF32 matmul/conv on Ampere+ GPUs
    compile: bool = False  # torch.compile the network's forward

    def __post_init__(self):
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"train.amp={self.amp!r}; expected one of {sorted(AMP_DTYPES)}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise KeyError(f"unknown train config keys {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


class NonFiniteLossError(RuntimeError):
    def __init__(self, step: int, phase: str, value: float):
        super().__init__(f"non-finite {phase} loss ({value}) at step {step}; stopped before updating the weights")
        self.step = step


def autocast(device: torch.device, amp: str):
    """bf16 autocast when ``amp == 'bf16'``; otherwise no context at all (bitwise fp32)."""
    dtype = AMP_DTYPES[amp]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def training_tensor(config: dict, data: ImageDataset, train: ImageDataset) -> torch.Tensor:
    """x₀ for training: the train images in [-1, 1], or their VAE latents with ``config.latent``."""
    if config.get("latent"):
        from .latent import load_latents

        return load_latents(config["latent"], data, "train")
    return to_model_range(train.images)


class Trainer:
    """State of one training run (method, optimizers, EMA, RNG) and one ``step()``."""

    def __init__(self, config: dict, data: ImageDataset, dist_info: distributed.DistInfo | None = None):
        self.config = config
        self.tc = TrainConfig.from_dict(config.get("train"))
        self.dist = dist_info or distributed.DistInfo()
        self.rows = distributed.batch_slice(self.tc.batch_size, self.dist)
        self.device = distributed.resolve_device(self.tc.device, self.dist)
        torch.manual_seed(self.tc.seed)  # network initialisation (identical on every rank)
        self.method: Method = build_method(config).to(self.device)
        self.ema = copy.deepcopy(self.method.net).requires_grad_(False)
        if self.tc.compile:
            self.method.net.compile()  # in place: state_dict keys are unchanged
        self.optims = {
            phase: torch.optim.AdamW(self.method.phase_parameters(phase), lr=self.tc.lr, betas=self.tc.betas, weight_decay=self.tc.weight_decay)
            for phase in self.method.phases
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
        self.images = training_tensor(config, data, train)
        net_cfg = self.method.net.config
        self.tokens = tokenize(list(train.captions), net_cfg.vocab_size, net_cfg.max_tokens)
        self.labels = torch.as_tensor(train.labels)
        self.step_idx = 0

    # ---- state ------------------------------------------------------------------------
    def state(self) -> dict:
        """Checkpoint contents; under DDP a collective (every rank calls it, rank 0 saves)."""
        rng = {"loop": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.dist.active:
            rng["per_rank"] = distributed.all_gather_objects(self.method_generator.get_state())
        return {
            "method": self.method.name,
            "config": self.config,
            "step": self.step_idx,
            "world_size": self.dist.world_size,
            "state_dict": self.method.state_dict(),
            "ema": self.ema.state_dict(),
            "optim": {k: o.state_dict() for k, o in self.optims.items()},
            "rng": rng,
            "extra": self.method.extra_state(),
        }

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
        return self.tc.lr * min(1.0, (step + 1) / max(1, self.tc.warmup))

    def step(self) -> dict:
        """One iteration: every phase in order (loss → backward → clip → AdamW), then EMA."""
        batch, stats = self.next_batch(), {}
        for phase, opt in self.optims.items():
            for group in opt.param_groups:
                group["lr"] = self.lr_at(self.step_idx)
            with autocast(self.device, self.tc.amp):
                loss = self.method.loss(batch, self.method_generator, phase).mean()
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
        self.method.after_step(self.step_idx)
        self.update_ema()
        self.step_idx += 1
        stats["lr"] = self.lr_at(self.step_idx - 1)
        return stats

    @torch.no_grad()
    def update_ema(self) -> None:
        """θ_ema ← d·θ_ema + (1 - d)·θ with d = min(decay, (1+s)/(10+s))."""
        s = self.step_idx
        d = min(self.tc.ema_decay, (1 + s) / (10 + s))
        for pe, p in zip(self.ema.parameters(), self.method.net.parameters()):
            pe.lerp_(p.detach(), 1 - d)
        for be, b in zip(self.ema.buffers(), self.method.net.buffers()):
            be.copy_(b)


def _truncate_stats(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    keep = [l for l in path.read_text().splitlines() if l.strip() and json.loads(l).get("step", 0) <= step]
    path.write_text("".join(l + "\n" for l in keep))


def _save(trainer: Trainer, path: Path, info: distributed.DistInfo) -> None:
    """Every rank builds the state (it gathers per-rank RNG); rank 0 writes; all wait for it."""
    distributed.check_in_sync(trainer.method, f"weights at step {trainer.step_idx}")
    state = trainer.state()
    if info.is_main:
        save_checkpoint(state, path)
    distributed.barrier()


def train(config: dict, out_dir: str | os.PathLike, progress: bool = False, stop_after: int | None = None) -> Path:
    """Run (or resume) training into ``out_dir``; returns the final checkpoint path.

    Files: ``latest.pt`` (every ckpt_every steps), ``final.pt`` (at the end), ``stats.jsonl``,
    ``config.json`` (resolved). ``stop_after`` ends early after that many total steps (tests).
    """
    out = Path(out_dir)
    tc = TrainConfig.from_dict(config.get("train"))
    if tc.threads:
        torch.set_num_threads(tc.threads)
    # TF32 is a process-wide switch: set from the config, both ways, so runs are explicit
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tc.tf32
    info = distributed.env_info()
    distributed.init(distributed.resolve_device(tc.device, info))
    final, latest, stats_path = out / "final.pt", out / "latest.pt", out / "stats.jsonl"
    trainer = Trainer(config, load_dataset(config["data"]), info)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        config_mod.write_json_atomic(out / "config.json", {**config, "resolved": {
            "train": asdict(tc), "method": trainer.method.cfg, "net": trainer.method.net.config.to_dict(),
            "parameters": count_parameters(trainer.method.net), "world_size": info.world_size}})
    if latest.exists():
        trainer.load_state(load_checkpoint(latest))
    if info.is_main:
        _truncate_stats(stats_path, trainer.step_idx)

    end = tc.steps if stop_after is None else min(tc.steps, stop_after)
    bar = None
    if progress and info.is_main:
        from tqdm import tqdm

        bar = tqdm(total=tc.steps, initial=trainer.step_idx, desc=f"train {trainer.method.name}", dynamic_ncols=True)
    t_last, steps_since = time.perf_counter(), 0
    with open(stats_path, "a") if info.is_main else contextlib.nullcontext() as log:
        while trainer.step_idx < end:
            stats = trainer.step()
            steps_since += 1
            if bar:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items() if k.startswith("loss")})
            s = trainer.step_idx
            if log and (s % tc.log_every == 0 or s == end):
                now = time.perf_counter()
                rec = {"step": s, **stats, "sec_per_step": (now - t_last) / steps_since, "images_seen": s * tc.batch_size}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                t_last, steps_since = now, 0
            if s % tc.ckpt_every == 0 or s == end:
                _save(trainer, latest, info)
    if bar:
        bar.close()
    if trainer.step_idx >= tc.steps:
        _save(trainer, final, info)
    return final


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Train one method with the shared loop (resumes from <out>/latest.pt).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML/JSON run config: {data, method: {name, ...}, net: {...}, train: {...}}")
    p.add_argument("--config-json", help="the same config as a JSON string (used by the workflow)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.steps=100")
    p.add_argument("--out", required=True, help="run folder (final.pt, latest.pt, stats.jsonl, config.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    config = config_mod.load_run_config(args.config, args.config_json, args.set)
    try:
        final = train(config, args.out, progress=not args.no_progress)
    except NonFiniteLossError as e:
        print(f"error: training stopped: {e}. The last good checkpoint is {Path(args.out) / 'latest.pt'}.", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown()
    if distributed.env_info().is_main:
        print(json.dumps({"checkpoint": str(final)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
