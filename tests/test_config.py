"""Typed configs: every key and value checked at load, errors naming the dotted key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from e2ed2.config import ConfigError, knob, load_run_config, parse
from e2ed2.methods import method_config
from e2ed2.train import TrainConfig


@dataclass(frozen=True)
class Knobs:
    lr: float = knob(1e-3, gt=0)
    steps: int = knob(10, min=1)
    flag: bool = False
    kind: Literal["a", "b"] = "a"
    betas: tuple[float, float] = (0.9, 0.99)
    path: str | None = None


def test_values_are_typed_in_any_yaml_spelling():
    k = parse(Knobs, {"lr": "1e-3", "steps": "1e3", "betas": [0.5, 0.6], "path": None}, "x")
    assert k.lr == 1e-3 and k.steps == 1000 and k.betas == (0.5, 0.6)


@pytest.mark.parametrize("values, match", [
    ({"lr": "1e-3x"}, r"x\.lr: expected a number, got '1e-3x'"),
    ({"lr": 0}, r"x\.lr: 0 must be greater than 0"),
    ({"steps": 0}, r"x\.steps: 0 is below the minimum 1"),
    ({"steps": -5}, r"x\.steps: -5 is below the minimum 1"),
    ({"steps": 2.5}, r"x\.steps: expected an integer"),
    ({"flag": "yes"}, r"x\.flag: expected true or false"),
    ({"kind": "c"}, r"x\.kind: 'c' is not one of \['a', 'b'\]"),
    ({"betas": [1]}, r"x\.betas: expected a list of 2 values"),
    ({"lrr": 1}, r"x: unknown key\(s\) \['lrr'\] \(did you mean 'lr'\?\); valid keys: "
                 r"\['betas', 'flag', 'kind', 'lr', 'path', 'steps'\]"),
])
def test_bad_values_name_the_key(values, match):
    with pytest.raises(ConfigError, match=match):
        parse(Knobs, values, "x")


@pytest.mark.parametrize("train, match", [
    ({"steps": -5}, "train.steps"), ({"steps": 0}, "train.steps"), ({"batch_size": 0}, "train.batch_size"),
    ({"ckpt_every": 0}, "train.ckpt_every"), ({"lr": "fast"}, "train.lr"), ({"ema_decay": 1.0}, "train.ema_decay"),
])
def test_train_config_ranges(train, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(train)


def test_method_configs_reject_unknown_and_invalid_knobs():
    with pytest.raises(ConfigError, match=r"method 'ddpm': unknown key\(s\) \['predicton'\]"):
        method_config({"name": "ddpm", "predicton": "v"})
    with pytest.raises(ConfigError, match=r"method 'ddpm'\.precond: 'x' is not one of"):
        method_config({"name": "ddpm", "precond": "x"})
    with pytest.raises(ConfigError, match="needs a VP schedule"):
        method_config({"name": "ddpm", "schedule": "edm", "precond": "eps"})
    with pytest.raises(ConfigError, match="backprop_last"):
        method_config({"name": "e2ed2", "steps": 2, "backprop_last": 3})
    with pytest.raises(ConfigError, match="unknown method 'dpm'"):
        method_config({"name": "dpm"})


def test_run_config_rejects_unknown_top_level_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: mnist5k\nmethod: {name: ddpm}\ntrian: {steps: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) \['trian'\]"):
        load_run_config(str(path))
    cfg = load_run_config(None, '{"data": "mnist5k", "method": {"name": "ddpm"}}', ["train.lr=1e-4", "train.steps=5"])
    assert cfg["train"] == {"lr": "1e-4", "steps": 5} and TrainConfig.from_dict(cfg["train"]).lr == 1e-4


def test_the_example_run_config_is_valid():
    from pathlib import Path

    from e2ed2.methods import validate_run_config

    cfg = load_run_config(str(Path(__file__).resolve().parents[1] / "docs/run.example.yaml"))
    validate_run_config(cfg)
    assert TrainConfig.from_dict(cfg["train"]).steps == 200


def test_attention_width_is_checked_at_the_level_that_has_attention():
    """A width repeated at two levels (channel_mult 3, 1, 3): the level at 8×8 has attention, so its
    6 channels (not a multiple of the 4 heads) are refused, though the first level's 6 need none."""
    from e2ed2.nets import UNetConfig

    with pytest.raises(ConfigError, match="attention a multiple of 4"):
        UNetConfig(channels=2, channel_mult=(3, 1, 3), attn_resolutions=(8,))
    assert UNetConfig(channels=2, channel_mult=(3, 1, 3), attn_resolutions=()).channels == 2
