"""The method registry (one line per method) and the one builder that turns configs and
checkpoint files into methods.

Adding a baseline = a module in ``e2ed2/methods/`` + a line in ``METHODS``. Methods never open
files: ``build_training`` resolves a method's teacher checkpoint, checks that it fits (same
parameterisation and schedule; the same UNet when initialising from it), initialises the
student from it and returns the frozen teacher for the loss; ``load_method`` rebuilds a
trained method from its checkpoint.

``RunConfig`` is a run config ``{data, method, net, train[, latent]}`` typed: parsed once
(``RunConfig.parse``) where it enters a process — the workflow's plan at DAG build, the train
CLI, a checkpoint's ``config`` — and handed on as this object (the trainer, the builders).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError, load_checkpoint
from ..config import ConfigError, as_dict, check_run_config_keys, parse
from ..nets import UNetConfig
from ..train_config import TrainConfig
from .base import TEACHER_KEYS, Method
from .consistency import ConsistencyDistillation, ConsistencyTraining
from .diffusion import DDIM, DDPM, EDM
from .e2ed2 import E2ED2

# in the order the report shows them (tables, legends, colours)
METHODS: dict[str, type[Method]] = {
    "edm": EDM,
    "ddpm": DDPM,
    "ddim": DDIM,
    "cd": ConsistencyDistillation,
    "ct": ConsistencyTraining,
    "e2ed2": E2ED2,
}


def method_names() -> list[str]:
    return sorted(METHODS)


def display_of(name: str) -> dict:
    """How the report shows a registered method (labels of its metric JSONs; e2ed2.report.names):
    its class's display name, and its place in the registry, which fixes its rank and colour (a
    method appended to the registry leaves every other method's labels, and so its jobs, as they are)."""
    cls = get_method(name)
    return {"method_name": cls.display_name or cls.name, "method_order": list(METHODS).index(name)}


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; registered: {method_names()}")
    return METHODS[name]


def method_config(method: dict):
    """The typed config of ``{name: ..., knobs}`` (unknown knobs and bad values are ConfigErrors)."""
    if not isinstance(method, dict) or "name" not in method:
        raise ConfigError(f"method config needs 'name' (one of {method_names()}), got {method!r}")
    cls = get_method(method["name"])
    return cls, parse(cls.Config, {k: v for k, v in method.items() if k != "name"}, f"method {method['name']!r}")


@dataclass(frozen=True)
class RunConfig:
    """One training run's config, every block typed: ``method`` is the method's ``Config``
    (``cls`` its class), ``net`` a UNetConfig, ``train`` a TrainConfig; ``data`` and ``latent``
    as written. ``source`` keeps the dict it was parsed from (what config.json and checkpoints
    store, so they read as the user wrote them)."""

    data: str | None
    cls: type[Method]
    method: Any
    net: UNetConfig
    train: TrainConfig
    latent: dict | None = None
    source: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, config: dict | RunConfig, require_data: bool = True) -> RunConfig:
        """Every block checked (unknown keys, types, bounds: ConfigErrors naming the key); a
        RunConfig is returned as it is. ``require_data=False`` for a bare {method, net} (tests)."""
        if isinstance(config, RunConfig):
            return config
        if require_data:
            check_run_config_keys(config)
        method_cls, method = method_config(config.get("method"))
        return cls(data=config.get("data"), cls=method_cls, method=method, net=UNetConfig.from_dict(config.get("net")),
                   train=TrainConfig.from_dict(config.get("train")), latent=config.get("latent") or None,
                   source=config)

    def as_dict(self) -> dict:
        """The run config as stored beside the weights: as written, with the method's every knob resolved."""
        return {**self.source, "method": {"name": self.cls.name, **as_dict(self.method)}}


def validate_run_config(config: dict) -> None:
    """Check every method/net/train knob of a run config without building anything (for the DAG)."""
    RunConfig.parse(config, require_data=False)


def build_method(config: dict | RunConfig) -> Method:
    """The method of a run config (``{"method": {"name", knobs}, "net": {...}}`` or a RunConfig),
    randomly initialised."""
    run = RunConfig.parse(config, require_data=False)
    return run.cls(run.method, run.net)


def build_training(config: dict | RunConfig) -> tuple[Method, Method | None]:
    """(method, teacher) for training: the method initialised from its teacher when its config
    says so; the frozen teacher is returned only when the method's loss uses it."""
    method = build_method(config)
    path = method.teacher_path()
    if path is None:
        return method, None
    teacher = load_teacher(path, method)
    if getattr(method.cfg, "init", "scratch") == "teacher":
        method.init_from(teacher)
    return method, teacher if method.uses_teacher() else None


def load_method(path: str | os.PathLike, ema: bool = True, map_location="cpu") -> tuple[Method, dict]:
    """Rebuild the method of a checkpoint; with ``ema`` the network gets the EMA weights."""
    ckpt = load_checkpoint(path, map_location)
    try:
        method = build_method(ckpt["config"])
        method.load_state_dict(ckpt["state_dict"])
        if ema and ckpt.get("ema") is not None:
            method.net.load_state_dict(ckpt["ema"])
    except (ConfigError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its config or weights do not rebuild a method with this code: {e}") from e
    return method, ckpt


def load_teacher(path: str | os.PathLike, student: Method) -> Method:
    """The frozen teacher (EMA weights) of ``student`` from checkpoint ``path``, checked to fit."""
    who = student.name
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{who}: teacher checkpoint not found: {p} (train the teacher first, or set "
                                f"method.teacher to its final.pt)")
    teacher, _ = load_method(p, ema=True)
    for k in TEACHER_KEYS:
        a, b = getattr(teacher.cfg, k), getattr(student.cfg, k)
        if a != b:
            raise ConfigError(f"{who}: teacher {p} has {k}={a!r} but this method has {k}={b!r}; they must agree")
    if getattr(student.cfg, "init", "scratch") == "teacher" and teacher.net.config != student.net.config:
        raise ConfigError(f"{who}: teacher {p} network config {teacher.net.config.to_dict()} differs from this "
                          f"method's {student.net.config.to_dict()}; init from the teacher needs the same UNet")
    return teacher.requires_grad_(False).eval()


def teacher_identity(path: str | os.PathLike) -> dict:
    """What identifies a teacher's weights in a student's run identity: its run hash and step."""
    ckpt = load_checkpoint(path)
    return {"run_hash": ckpt.get("run_hash"), "step": int(ckpt["step"])}
