"""The shared training loop's typed knobs (``TrainConfig``, the run config's ``train:`` block) and
the maths they imply that needs no model: the EMA warm-up, bf16 autocast.

The loop itself is ``e2ed2.trainer``; the CLI ``python -m e2ed2.train``. The workflow's plan reads
these knobs at DAG build (the teacher-pairs budget, ``amp``) without importing the loop.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from dataclasses import dataclass
from typing import Literal

import torch

from .config import ConfigError, knob, parse

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TrainConfig:
    steps: int = knob(3000, min=1, doc="optimizer steps")
    batch_size: int = knob(32, min=1, doc="global batch")
    lr: float = knob(5e-4, gt=0, doc="AdamW learning rate")
    betas: tuple[float, float] = knob((0.9, 0.999), min=0.0, lt=1.0, doc="AdamW β1, β2")
    weight_decay: float = knob(0.0, min=0.0)
    warmup: int = knob(100, min=0, doc="linear LR warm-up steps")
    lr_schedule: Literal["constant", "cosine"] = knob("constant",
                                                      doc="after warm-up: constant, or cosine decay to 0 at `steps`")
    grad_clip: float = knob(1.0, min=0.0, doc="max global grad norm per phase (0 = off)")
    ema_decay: float = knob(0.999, min=0.0, lt=1.0,
                            doc="EMA decay d, warmed up as min(d, (1+s)/(10+s)): reached only from step "
                                "⌈(10d−1)/(1−d)⌉ on (0.995: 1,790), so a shorter run warns that d changes nothing")
    cond_drop: float = knob(0.1, min=0.0, max=1.0, doc="P(caption dropped), for classifier-free guidance")
    ckpt_every: int = knob(500, min=1, doc="steps between latest.pt checkpoints")
    log_every: int = knob(50, min=1, doc="steps between stats.jsonl lines")
    snapshots: tuple[int, ...] = knob((), min=1, doc="steps at which to keep an EMA snapshot (learning curves)")
    seed: int = knob(0, doc="network init, batches and noise")
    device: str = knob("auto", doc="auto | cpu | cuda (cuda:LOCAL_RANK under torchrun)")
    threads: int = knob(0, min=0, doc="torch CPU threads (0 = leave as is)")
    amp: Literal["none", "bf16"] = knob("none", doc="bf16 autocast around the loss (weights stay fp32)")
    tf32: bool = knob(False, doc="allow TF32 matmul/conv on Ampere+ GPUs")
    compile: bool = knob(False, doc="torch.compile the network's forward")

    def __post_init__(self):
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(f"train.device: {self.device!r} is not a device; use auto, cpu, cuda, cuda:N or mps",
                              key="device")

    @classmethod
    def from_dict(cls, d: dict | None) -> TrainConfig:
        return parse(cls, d, "train")


# ---- the EMA of the weights --------------------------------------------------------------------
# θ_ema ← d_s·θ_ema + (1 − d_s)·θ after step s, with the warm-up d_s = min(d, (1+s)/(10+s)) (the
# num_updates ramp of TensorFlow's ExponentialMovingAverage): early steps average over few steps,
# and d itself applies only once the ramp has reached it.
def ema_decay_at(decay: float, s: int) -> float:
    """d_s, the EMA decay used after step s (0-based)."""
    return min(decay, (1 + s) / (10 + s))


def ema_reached_at(decay: float) -> int:
    """The first step s with (1+s)/(10+s) ≥ d: before it, the ramp alone sets the EMA."""
    s = max(0, math.ceil((10 * decay - 1) / (1 - decay)))
    while s > 0 and ema_decay_at(1.0, s - 1) >= decay:  # float rounding of the closed form
        s -= 1
    while ema_decay_at(1.0, s) < decay:
        s += 1
    return s


class EMADecayUnusedWarning(UserWarning):
    """train.ema_decay is never reached within train.steps: changing it changes no weight."""


def ema_summary(tc: TrainConfig) -> dict:
    """What the EMA of this run is: d, the step that reaches it, the last step's d_s."""
    return {"decay": tc.ema_decay, "reached_at_step": ema_reached_at(tc.ema_decay),
            "last_step_decay": round(ema_decay_at(tc.ema_decay, tc.steps - 1), 6)}


def warn_if_ema_decay_unused(tc: TrainConfig) -> None:
    e = ema_summary(tc)
    if tc.steps - 1 < e["reached_at_step"]:
        warnings.warn(EMADecayUnusedWarning(
            f"train.ema_decay = {tc.ema_decay} has no effect on this {tc.steps}-step run: the EMA warm-up "
            f"min(d, (1+s)/(10+s)) reaches it only at step {e['reached_at_step']}, so the EMA weights are "
            f"the warm-up's alone (d = {e['last_step_decay']} at the last step). Set ema_decay below "
            f"{e['last_step_decay']} or train ≥ {e['reached_at_step'] + 1} steps for it to matter."), stacklevel=2)


def autocast(device: torch.device, amp: str):
    """bf16 autocast when ``amp == 'bf16'``; otherwise no context at all (bitwise fp32)."""
    dtype = AMP_DTYPES[amp]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
