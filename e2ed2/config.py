"""Run configs: load YAML/JSON, apply ``key.sub=value`` overrides, write JSON atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml


def load_run_config(path: str | None = None, json_text: str | None = None, overrides=()) -> dict:
    config: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            config = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{p}: invalid YAML ({e})") from e
    if json_text:
        try:
            config = deep_merge(config, json.loads(json_text))
        except json.JSONDecodeError as e:
            raise ValueError(f"--config-json is not valid JSON: {e}") from e
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must be KEY=VALUE")
        set_path(config, key, yaml.safe_load(value))
    if "data" not in config:
        raise KeyError("run config needs 'data' (a built-in name such as mnist5k, an .npz, or an image folder)")
    return config


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def set_path(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)
